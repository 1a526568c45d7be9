// How sluice's awaitables suspend a coroutine and resume it through its waker.
//
// A C++ awaiter cannot suspend again once its coroutine has resumed, yet a
// wake-up only says "try again" (another consumer may have taken the value
// first). So sluice's awaiters are polled, as futures are in Rust: when the
// coroutine suspends on one, the awaiter leaves a poll hook in the
// coroutine's promise; when the coroutine's waker is woken, the driver (the
// executor, or a test driver) calls the hook with the waker first:
//
//   ready    the operation completed; the driver clears the hook and
//            resumes the coroutine, whose await_resume returns the result
//   pending  the awaiter registered the waker again; the coroutine stays
//            suspended until the next wake
//
// Contract for a promise that can await sluice awaitables:
//   current_waker()   the waker of the task the coroutine belongs to (may be
//                     borrowed: awaiters clone it when they keep it)
//   set_poll_hook(h)  stores h until the driver runs it
// A driver must not resume a coroutine that has a hook until the hook says
// ready, and must clear the hook before resuming.
//
// Ready is final. A poll that says ready may already have done the part of
// the operation that cannot be undone: a receive has taken its value out of
// the channel, a claim its packet out of the buffer. Until await_resume
// hands it over, that result exists only inside the awaiter, and nothing
// can put it back where it came from. So:
//   - A driver whose hook said ready resumes the coroutine; it must not
//     destroy it instead. A driver may look at a cancellation request before
//     it polls (and then not poll at all), but one that arrives during the
//     poll or after it takes effect at the task's next suspension, after
//     the coroutine has received the result.
//   - A driver may destroy a suspended coroutine only while its hook has not
//     said ready (never polled, or the last poll said pending). An awaiter
//     destroyed then holds nothing taken: it unregisters its waker, passes on
//     a notification it consumed, and leaves the value where it was.
// Together: every value is delivered once, through await_resume, or stays in
// its channel, where another receiver gets it or the channel destroys it
// once when it is dropped. (The same holds for await_suspend: when its poll
// says ready, it returns false and the coroutine resumes at once.) The
// channel's awaiters check the rule in their destructors (SLUICE_ASSERT): one
// destroyed after saying ready but before await_resume names the driver's
// mistake instead of losing the value silently.
//
// The drivers in sluice follow it: the executor's run_task decides between
// polling and cancelling once, when a run begins, and always resumes after a
// ready hook (detail/task_header.hpp); the test driver resumes in the same
// step as the ready poll (tests/support/test_driver.hpp).
#pragma once

#include <concepts>
#include <coroutine>
#include <cstdint>

#include <sluice/waker.hpp>

namespace sluice {

enum class poll_status : std::uint8_t { ready, pending };

struct poll_hook {
  poll_status (*fn)(void* awaiter, const waker& w) noexcept = nullptr;
  void* awaiter = nullptr;

  [[nodiscard]] explicit operator bool() const noexcept { return fn != nullptr; }
  poll_status operator()(const waker& w) const noexcept { return fn(awaiter, w); }
};

template <class Promise>
concept poll_driven_promise = requires(Promise& p, poll_hook h) {
  { p.current_waker() }
  noexcept->std::convertible_to<const waker&>;
  { p.set_poll_hook(h) }
  noexcept;
};

// Base of sluice's awaiters. Derived provides:
//   bool try_complete() noexcept
//       attempts the operation without waiting; true when it completed
//       (successfully or with a final error) and the result is stored
//   poll_status poll(const waker& w) noexcept
//       attempts it; if it cannot complete, registers w (cloned) so that a
//       change wakes it, re-checks, and returns pending only if still not done
//   await_resume()
//       returns the stored result
template <class Derived>
class pollable_awaiter {
 public:
  bool await_ready() noexcept { return derived().try_complete(); }

  template <poll_driven_promise Promise>
  bool await_suspend(std::coroutine_handle<Promise> coroutine) noexcept {
    Promise& promise = coroutine.promise();
    if (derived().poll(promise.current_waker()) == poll_status::ready) return false;
    promise.set_poll_hook(poll_hook{&poll_thunk, static_cast<Derived*>(this)});
    return true;
  }

 private:
  Derived& derived() noexcept { return static_cast<Derived&>(*this); }
  static poll_status poll_thunk(void* self, const waker& w) noexcept {
    return static_cast<Derived*>(self)->poll(w);
  }
};

}  // namespace sluice
