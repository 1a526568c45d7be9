// Timers for tasks: sleep_for / sleep_until, and with_timeout around any
// sluice awaitable.
//
//   co_await sluice::sleep_for(10ms);
//   auto r = co_await sluice::with_timeout(50ms, rx.recv_async());
//   if (!r) { /* r.error() == sluice::timeout_error::timed_out */ }
//   else    { recv_result<int>& inner = *r; }
//
// A sleeping task is a node in its executor's timer queue (no allocation);
// the workers fire due timers before taking the next task, and an idle
// worker's wait on the run queue ends at the earliest deadline. Destroying
// the awaiter (the task is cancelled, or the timeout lost) disarms the timer.
#pragma once

#include <coroutine>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/deadline_awaiter.hpp>
#include <sluice/detail/task_header.hpp>
#include <sluice/detail/timer_queue.hpp>
#include <sluice/poll.hpp>
#include <sluice/port.hpp>
#include <sluice/result.hpp>
#include <sluice/task.hpp>
#include <sluice/time.hpp>

namespace sluice {

class sleep_awaiter {
 public:
  explicit sleep_awaiter(time_point deadline) noexcept : deadline_(deadline) {}
  sleep_awaiter(const sleep_awaiter&) = delete;
  sleep_awaiter& operator=(const sleep_awaiter&) = delete;
  ~sleep_awaiter() {
    if (queue_ != nullptr) (void)queue_->disarm(node_);
  }

  bool await_ready() noexcept { return port::now() >= deadline_; }

  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> coroutine) noexcept {
    Promise& promise = coroutine.promise();
    queue_ = &detail::timers_of(coroutine);
    queue_->arm(node_, deadline_, promise.current_waker().clone());
    promise.set_poll_hook(poll_hook{&poll_thunk, this});
    return true;
  }
  void await_resume() noexcept {}

 private:
  static poll_status poll_thunk(void* self, const waker&) noexcept {
    return static_cast<sleep_awaiter*>(self)->node_.has_fired() ? poll_status::ready
                                                                : poll_status::pending;
  }

  time_point deadline_;
  detail::timer_node node_;
  detail::timer_queue* queue_ = nullptr;
};

// Suspends the task until `deadline` (a sluice or std::chrono time point).
template <class Deadline>
[[nodiscard]] sleep_awaiter sleep_until(const Deadline& deadline) {
  return sleep_awaiter{to_time_point(deadline)};
}

// Suspends the task for `d` (a sluice::duration or any std::chrono duration).
[[nodiscard]] inline sleep_awaiter sleep_for(duration d) noexcept {
  return sleep_awaiter{deadline_after(d)};
}

// with_timeout's awaiter (detail/deadline_awaiter.hpp).
template <class Awaitable>
using timeout_awaiter =
    detail::deadline_awaiter<decltype(detail::pollable_of(std::declval<Awaitable&>())),
                             detail::timeout_result::wrapped>;

// co_await with_timeout(d, awaitable) -> result<R, timeout_error>, where R is
// what co_await awaitable would give. Use it within one co_await expression
// (the awaitable is referred to, not copied): an awaiter such as
// recv_async()'s is passed as a temporary, and a named one is refused at
// compile time. On timeout the inner operation is abandoned: its awaiter
// leaves its waiter list at once (one moved in by name, which lives on,
// too, so that it cannot take a wake-up meant for another waiter), a recv
// took nothing from the channel, and a send_async sent nothing, its value
// destroyed with the awaiter (as when the task is cancelled there).
// To keep an unsent value, await tx.send_async_for(value, d) instead: its
// timeout is send_error::timeout, with the value back (the channel and the
// packet buffer have such a _for and _until form of each await).
template <class Awaitable>
[[nodiscard]] timeout_awaiter<std::remove_reference_t<Awaitable>> with_timeout(
    duration d, Awaitable&& awaitable) noexcept {
  static_assert(
      !std::is_lvalue_reference_v<Awaitable> ||
          !requires(std::remove_reference_t<Awaitable> & a) { a.try_complete(); },
      "with_timeout: pass the awaiter as a temporary in the co_await expression "
      "(with_timeout(d, rx.recv_async())), not a named one: after a timeout it "
      "would stay listed as a waiter");
  return {deadline_after(d), awaitable};
}

}  // namespace sluice
