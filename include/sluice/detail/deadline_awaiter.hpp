// deadline_awaiter: an operation a task awaits until it completes or a
// deadline passes, on the task's executor timers. with_timeout (sleep.hpp)
// is one; the channel's send_async_for / recv_async_for and the packet
// buffer's alloc_async_for / claim_async_for (and their _until forms) are
// the others.
//
// The timer node lives in the awaiter (no allocation); destroying the
// awaiter (the operation won, or the task was cancelled) disarms it. The
// operation is polled first, so that where both are ready its result wins
// over the timeout. When the timeout wins, the operation leaves its waiter
// list at once (withdraw), so that it cannot take a wake-up meant for
// another waiter.
//
// How the timeout is told (Result):
//   wrapped  result<R, timeout_error> for any operation whose result is R
//            (with_timeout): the operation is abandoned, and whatever it
//            held goes with its awaiter (a send_async's value is destroyed)
//   own      R itself, from the operation's timed_out(): its own timeout
//            error, with what it holds handed back (a send's value)
#pragma once

#include <coroutine>
#include <type_traits>
#include <utility>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/task_header.hpp>
#include <sluice/detail/timer_queue.hpp>
#include <sluice/poll.hpp>
#include <sluice/port.hpp>
#include <sluice/result.hpp>
#include <sluice/task.hpp>
#include <sluice/time.hpp>

namespace sluice::detail {

// The timer queue of the task whose coroutine awaits.
template <class Promise>
timer_queue& timers_of(std::coroutine_handle<Promise> coroutine) noexcept {
  static_assert(std::is_base_of_v<promise_base, Promise>,
                "sleep and the timed awaits (with_timeout, the _async_for and _async_until "
                "forms) can only be awaited in a sluice::task");
  task_header* header = coroutine.promise().context().header;
  SLUICE_ASSERT(header != nullptr, "a timer awaited in a task that is not spawned on an executor");
  return header->scheduler().timers();
}

// A pollable awaiter (try_complete / poll / await_resume) is used where it
// is (by reference: it lives in the same co_await full-expression); another
// awaitable (a join_handle) gives its awaiter, built in place.
template <class Awaitable>
decltype(auto) pollable_of(Awaitable& a) noexcept {
  if constexpr (requires { a.try_complete(); }) {
    return (a);
  } else {
    return a.operator co_await();
  }
}

enum class timeout_result : bool { wrapped, own };

// Inner: a pollable awaiter, held by value (built in place, the _for
// forms), or a reference to one (with_timeout's temporary).
template <class Inner, timeout_result Result>
class [[nodiscard]] deadline_awaiter {
 public:
  using inner_result = decltype(std::declval<std::remove_reference_t<Inner>&>().await_resume());
  static_assert(!std::is_void_v<inner_result>,
                "with_timeout needs an awaitable with a result (recv_async, send_async, a join)");
  using result_type = std::conditional_t<Result == timeout_result::wrapped,
                                         result<inner_result, timeout_error>, inner_result>;

  // with_timeout: the awaitable's pollable form (pollable_of).
  template <class Awaitable>
  deadline_awaiter(time_point deadline, Awaitable& awaitable) noexcept
      : inner_(pollable_of(awaitable)), deadline_(deadline) {}
  // The _for / _until forms: the operation's awaiter, built here.
  template <class... Args>
  explicit deadline_awaiter(time_point deadline, std::in_place_t, Args&&... args) noexcept
      : inner_(std::forward<Args>(args)...), deadline_(deadline) {}
  deadline_awaiter(const deadline_awaiter&) = delete;
  deadline_awaiter& operator=(const deadline_awaiter&) = delete;
  ~deadline_awaiter() {
    if (queue_ != nullptr) (void)queue_->disarm(node_);
  }

  bool await_ready() noexcept {
    if (inner_.try_complete()) return true;
    if (port::now() >= deadline_) {
      timed_out_ = true;
      return true;
    }
    return false;
  }

  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> coroutine) noexcept {
    Promise& promise = coroutine.promise();
    if (inner_.poll(promise.current_waker()) == poll_status::ready) return false;
    queue_ = &timers_of(coroutine);
    queue_->arm(node_, deadline_, promise.current_waker().clone());
    promise.set_poll_hook(poll_hook{&poll_thunk, this});
    return true;
  }

  result_type await_resume() noexcept(noexcept(std::declval<Inner&>().await_resume())) {
    if constexpr (Result == timeout_result::wrapped) {
      if (timed_out_) return result_type{timeout_error::timed_out};
      return result_type{inner_.await_resume()};
    } else {
      if (timed_out_) return inner_.timed_out();
      return inner_.await_resume();
    }
  }

 private:
  static poll_status poll_thunk(void* self, const waker& w) noexcept {
    auto& me = *static_cast<deadline_awaiter*>(self);
    // The operation first: if both are ready, the result wins over the timeout.
    if (me.inner_.poll(w) == poll_status::ready) return poll_status::ready;
    if (me.node_.has_fired()) {
      me.timed_out_ = true;
      // The inner awaiter may outlive this expression (a named one, moved
      // in): it leaves its waiter list now, so that it cannot take a wake
      // meant for another waiter while it lives on.
      if constexpr (requires { me.inner_.withdraw(); }) me.inner_.withdraw();
      return poll_status::ready;
    }
    return poll_status::pending;
  }

  Inner inner_;
  time_point deadline_;
  timer_node node_;
  timer_queue* queue_ = nullptr;
  bool timed_out_ = false;
};

}  // namespace sluice::detail
