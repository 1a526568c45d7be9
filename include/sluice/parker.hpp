// parker: a one-token binary semaphore on the port's wait/notify, and a
// wakeable whose wake unparks the thread (or core) that owns it. Every
// blocking operation in sluice waits on its caller's parker, so the same
// waiter lists serve threads and tasks.
//
// State word (one token at most):
//
//   value     name      set by                     cleared by
//   0         empty     park (consuming notified)  -
//   1         notified  unpark                     park
//   2         parked    park, before waiting       unpark (-> notified)
//
// Initial: empty. Edges:
//   E1 unpark:  any     -> notified   (exchange, release [P1])
//   E2 park:    notified-> empty      (compare-exchange, acquire [P1]); returns
//   E3 park:    empty   -> parked     (compare-exchange); then waits while parked
//   E4 park:    parked  -> empty      (exchange, acquire) on timeout
// unpark notifies the port only when it saw `parked` (E1 from E3's state),
// so an unpark with nobody waiting is one atomic exchange.
#pragma once

#include <cstdint>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/atomic.hpp>
#include <sluice/port.hpp>
#include <sluice/time.hpp>
#include <sluice/waker.hpp>

namespace sluice {

class parker {
 public:
  using release_fn = void (*)(parker*) noexcept;

  // `on_last_release` frees the parker when its last reference goes; null
  // for a parker whose storage outlives every waker (static, per core).
  constexpr explicit parker(release_fn on_last_release = nullptr) noexcept
      : on_last_release_(on_last_release) {}
  parker(const parker&) = delete;
  parker& operator=(const parker&) = delete;

  // Returns after an unpark (consuming its token), at the deadline, or
  // spuriously; callers re-check their condition.
  void park_until(time_point deadline) noexcept {
    // E2 [P1]: acquire pairs with the release in unpark, so what the
    // unparking thread wrote before unpark is visible after we return.
    std::uint32_t expected = notified;
    if (state_.compare_exchange_strong(expected, empty, std::memory_order_acquire,
                                       std::memory_order_relaxed))
      return;
    // E3: relaxed is enough; the token we wait for is read with acquire below.
    expected = empty;
    if (!state_.compare_exchange_strong(expected, parked, std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
      // An unpark landed between the two CAS: consume it (E2) [P1].
      state_.exchange(empty, std::memory_order_acquire);
      return;
    }
    for (;;) {
      const port::wait_status status = port::wait_until(state_, parked, deadline);
      expected = notified;
      // E2 [P1]
      if (state_.compare_exchange_strong(expected, empty, std::memory_order_acquire,
                                         std::memory_order_relaxed))
        return;
      if (status == port::wait_status::timed_out) {
        // E4 [P1]: an unpark racing the timeout is consumed here, not kept
        // for a later park; the caller re-checks its condition either way.
        state_.exchange(empty, std::memory_order_acquire);
        return;
      }
    }
  }

  void park() noexcept { park_until(time_point::max()); }

  // Safe from any thread, a signal handler and an interrupt handler.
  void unpark() noexcept {
    // E1 [P1]: release publishes the unparker's writes to the parked thread.
    if (state_.exchange(notified, std::memory_order_release) == parked) port::notify_one(state_);
  }

  // Whether the owner waits in park_until now (E3 done, no unpark since):
  // an observer, stale once it returns. A test waits for it before it
  // wakes the owner, so that the wake reaches a parked thread.
  [[nodiscard]] bool parked_now() const noexcept {
    // Relaxed: a snapshot; nothing is read through it.
    return state_.load(std::memory_order_relaxed) == parked;
  }

  // wakeable
  void wake_by_ref() noexcept { unpark(); }
  void add_ref() noexcept {
    // Relaxed: a new reference is made from an existing one, which already
    // keeps the parker alive.
    refs_.fetch_add(1, std::memory_order_relaxed);
  }
  void release() noexcept {
    // acq_rel [P2]: every release's prior uses of the parker happen before
    // the last one frees it.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1 && on_last_release_ != nullptr)
      on_last_release_(this);
  }

  // A waker that unparks this parker (takes a reference).
  [[nodiscard]] waker make_waker() noexcept { return sluice::make_waker(*this); }

 private:
  static constexpr std::uint32_t empty = 0;
  static constexpr std::uint32_t notified = 1;
  static constexpr std::uint32_t parked = 2;

  detail::atomic<std::uint32_t> state_{empty};
  // The owner (the thread or core) holds one reference.
  detail::atomic<std::uint32_t> refs_{1};
  release_fn on_last_release_;
};

}  // namespace sluice
