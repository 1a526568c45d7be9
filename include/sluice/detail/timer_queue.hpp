// timer_queue: the executor's sleeping tasks, ordered by deadline.
//
// Nodes are intrusive: a timer_node lives in the awaiter of a sleeping
// coroutine (sleep_for / sleep_until / with_timeout), so arming a timer
// allocates nothing. The list is sorted by deadline (ties in arming order);
// insertion scans from the back, which is O(1) for the common case of
// deadlines arriving roughly in order. Expiries are driven by the workers:
// each worker fires what is due before it takes the next task, and an idle
// worker's timed wait on the run queue ends at the earliest deadline, so no
// thread polls the clock.
//
// Who may call what: arm / disarm / fire_expired from thread or task
// context only (they take a short spin lock); never from a handler.
//
// Node state:
//   value  name    set by                       cleared by
//   0      idle    constructor, disarm          arm
//   1      armed   arm                          fire_expired (-> fired), disarm
//   2      fired   fire_expired, after moving   arm (re-arming)
//                  the waker out of the node
// A firing worker moves the waker out before it stores `fired` [Q1], so a
// task that sees `fired` may destroy its node at once.
#pragma once

#include <cstdint>
#include <utility>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/atomic.hpp>
#include <sluice/detail/spin_lock.hpp>
#include <sluice/time.hpp>
#include <sluice/waker.hpp>

namespace sluice::detail {

class timer_queue;

class timer_node {
 public:
  timer_node() noexcept = default;
  timer_node(const timer_node&) = delete;
  timer_node& operator=(const timer_node&) = delete;
  ~timer_node() {
    // Relaxed: the owner's own last store (disarm), or fire_expired's that
    // has_fired() or disarm() already acquired [Q1].
    SLUICE_ASSERT(state_.load(std::memory_order_relaxed) != armed,
                  "timer_node destroyed while armed (missing disarm)");
  }

  // Acquire [Q1]: pairs with the release store in fire_expired.
  [[nodiscard]] bool has_fired() const noexcept {
    return state_.load(std::memory_order_acquire) == fired;
  }
  [[nodiscard]] time_point deadline() const noexcept { return deadline_; }

 private:
  friend class timer_queue;
  static constexpr std::uint32_t idle = 0;
  static constexpr std::uint32_t armed = 1;
  static constexpr std::uint32_t fired = 2;

  time_point deadline_;
  timer_node* prev_ = nullptr;
  timer_node* next_ = nullptr;
  waker waker_;
  atomic<std::uint32_t> state_{idle};
};

class timer_queue {
 public:
  // Called (outside the lock) when an arm makes its timer the earliest:
  // whoever waits until the old earliest deadline must look again.
  using earliest_moved_fn = void (*)(void* context) noexcept;

  constexpr timer_queue() noexcept = default;
  constexpr timer_queue(earliest_moved_fn on_earliest, void* context) noexcept
      : on_earliest_(on_earliest), context_(context) {}
  timer_queue(const timer_queue&) = delete;
  timer_queue& operator=(const timer_queue&) = delete;
  ~timer_queue() { SLUICE_ASSERT(head_ == nullptr, "timer_queue destroyed with armed timers"); }

  // Arms `node` to wake `w` at `deadline`. Requires: not armed.
  void arm(timer_node& node, time_point deadline, waker w) noexcept {
    // Relaxed: an unarmed node is its owner's; no worker stores to it.
    SLUICE_ASSERT(node.state_.load(std::memory_order_relaxed) != timer_node::armed,
                  "timer armed twice");
    node.deadline_ = deadline;
    node.waker_ = std::move(w);
    lock_.lock();
    timer_node* after = tail_;
    while (after != nullptr && after->deadline_ > deadline)
      after = after->prev_;
    node.prev_ = after;
    node.next_ = after != nullptr ? after->next_ : head_;
    if (node.next_ != nullptr) {
      node.next_->prev_ = &node;
    } else {
      tail_ = &node;
    }
    if (after != nullptr) {
      after->next_ = &node;
    } else {
      head_ = &node;
    }
    // Relaxed: the node is read under the lock; the unlock releases it.
    node.state_.store(timer_node::armed, std::memory_order_relaxed);
    // Relaxed: a hint read by workers to skip the lock; a worker that
    // misses it sees the timer on its next pass (this arming worker makes
    // one before it sleeps).
    count_.fetch_add(1, std::memory_order_relaxed);
    const bool earliest = head_ == &node;
    lock_.unlock();
    if (earliest && on_earliest_ != nullptr) on_earliest_(context_);
  }

  // Takes `node` out if still armed. Returns true if it was (it will not
  // fire); false if it had fired (or was never armed).
  bool disarm(timer_node& node) noexcept {
    // Acquire [Q1]: a firing seen here is complete.
    if (node.state_.load(std::memory_order_acquire) != timer_node::armed) {
      // Relaxed: the firing worker's [Q1] store was its last touch of the node.
      node.state_.store(timer_node::idle, std::memory_order_relaxed);
      return false;
    }
    lock_.lock();
    // Relaxed: fire_expired stores `fired` only under the lock, so the
    // acquire of lock_ [SL1] already ordered any such store before this.
    const bool was_armed = node.state_.load(std::memory_order_relaxed) == timer_node::armed;
    if (was_armed) {
      unlink(node);
      count_.fetch_sub(1, std::memory_order_relaxed);  // Relaxed: a hint (see arm)
    }
    waker dropped = std::move(node.waker_);
    // Relaxed: the node is ours again; the lock orders it against firing.
    node.state_.store(timer_node::idle, std::memory_order_relaxed);
    lock_.unlock();
    return was_armed;
  }

  // Fires every timer whose deadline is at or before `now`; returns how
  // many fired.
  std::uint32_t fire_expired(time_point now) noexcept {
    // Relaxed: a hint; see arm.
    if (count_.load(std::memory_order_relaxed) == 0) return 0;
    std::uint32_t fired_count = 0;
    for (;;) {
      // Wake outside the lock, a batch at a time.
      constexpr int batch = 16;
      waker due[batch];
      int n = 0;
      lock_.lock();
      while (n < batch && head_ != nullptr && head_->deadline_ <= now) {
        timer_node* node = head_;
        unlink(*node);
        count_.fetch_sub(1, std::memory_order_relaxed);  // Relaxed: a hint (see arm)
        due[n++] = std::move(node->waker_);
        // Release [Q1]: the waker has left the node; its owner may free it.
        node->state_.store(timer_node::fired, std::memory_order_release);
      }
      const bool more = head_ != nullptr && head_->deadline_ <= now;
      lock_.unlock();
      for (int i = 0; i < n; ++i)
        std::move(due[i]).wake();
      fired_count += static_cast<std::uint32_t>(n);
      if (!more) return fired_count;
    }
  }

  // The earliest armed deadline, or time_point::max() if none.
  [[nodiscard]] time_point next_deadline() noexcept {
    if (count_.load(std::memory_order_relaxed) == 0) return time_point::max();  // Relaxed: hint
    lock_.lock();
    const time_point t = head_ != nullptr ? head_->deadline_ : time_point::max();
    lock_.unlock();
    return t;
  }

  [[nodiscard]] std::uint32_t approx_size() const noexcept {
    return count_.load(std::memory_order_relaxed);  // Relaxed: an observer
  }

 private:
  void unlink(timer_node& node) noexcept {
    if (node.prev_ != nullptr) {
      node.prev_->next_ = node.next_;
    } else {
      head_ = node.next_;
    }
    if (node.next_ != nullptr) {
      node.next_->prev_ = node.prev_;
    } else {
      tail_ = node.prev_;
    }
    node.prev_ = node.next_ = nullptr;
  }

  earliest_moved_fn on_earliest_ = nullptr;
  void* context_ = nullptr;
  spin_lock lock_;  // [SL1] guards the list (head_, tail_, the nodes' links and states)
  atomic<std::uint32_t> count_{0};
  timer_node* head_ = nullptr;
  timer_node* tail_ = nullptr;
};

}  // namespace sluice::detail
