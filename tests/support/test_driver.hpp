// A minimal, single-threaded coroutine driver for tests of sluice's
// awaitables, ahead of (and independent from) the executor.
//
//   sluice::test::task<int> t = some_coroutine();
//   int v = sluice::test::block_on(std::move(t));
//   sluice::test::run_all(a, b, c);   // interleaves several on this thread
//
// It follows the poll protocol of <sluice/poll.hpp>: a woken task with a
// poll hook is polled first and resumed only when the hook says ready.
// Wakes may come from any thread or a signal handler; the driver thread
// parks on its parker while no task is runnable.
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include <sluice/detail/atomic.hpp>
#include <sluice/parker.hpp>
#include <sluice/poll.hpp>
#include <sluice/port.hpp>
#include <sluice/waker.hpp>

namespace sluice::test {

// The wakeable of one test task: a flag plus the driver thread's parker.
// Heap-allocated and counted, so a waker outlives the coroutine frame.
class wake_flag {
 public:
  explicit wake_flag(waker unpark_driver) : unpark_driver_(std::move(unpark_driver)) {}

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void wake_by_ref() noexcept {
    wakes_.fetch_add(1, std::memory_order_relaxed);
    // Release pairs with the acquire exchange in take().
    woken_.store(true, std::memory_order_release);
    unpark_driver_.wake_by_ref();
  }
  bool take() noexcept { return woken_.exchange(false, std::memory_order_acquire); }
  std::uint32_t wake_count() const noexcept { return wakes_.load(std::memory_order_relaxed); }

 private:
  detail::atomic<std::uint32_t> refs_{1};
  detail::atomic<bool> woken_{false};
  detail::atomic<std::uint32_t> wakes_{0};
  waker unpark_driver_;
};

template <class T>
class task;

namespace detail_driver {

struct promise_base {
  wake_flag* flag = nullptr;  // owned reference
  waker self_waker;
  poll_hook hook;

  promise_base() {
    flag = new wake_flag(port::current_parker().make_waker());
    self_waker = make_waker(*flag);
  }
  ~promise_base() { flag->release(); }

  std::suspend_always initial_suspend() noexcept { return {}; }
  std::suspend_always final_suspend() noexcept { return {}; }
  void unhandled_exception() { std::terminate(); }

  const waker& current_waker() const noexcept { return self_waker; }
  void set_poll_hook(poll_hook h) noexcept { hook = h; }
};

template <class T>
struct promise : promise_base {
  std::optional<T> value;
  task<T> get_return_object() noexcept;
  void return_value(T v) { value.emplace(std::move(v)); }
};

template <>
struct promise<void> : promise_base {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
};

}  // namespace detail_driver

template <class T = void>
class task {
 public:
  using promise_type = detail_driver::promise<T>;
  using handle = std::coroutine_handle<promise_type>;

  explicit task(handle h) noexcept : h_(h) {}
  task(task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  ~task() {
    if (h_) h_.destroy();
  }

  [[nodiscard]] bool done() const noexcept { return !h_ || h_.done(); }

  // Runs the task one step if it is runnable: the first time, or when woken
  // (and its poll hook, if any, says ready). Returns true if it made progress.
  bool step() {
    promise_type& p = h_.promise();
    if (started_ && !p.flag->take()) return false;
    if (started_ && p.hook) {
      if (p.hook(p.current_waker()) == poll_status::pending) return true;
      p.hook = poll_hook{};
    }
    started_ = true;
    h_.resume();
    return true;
  }

  // How many times the task's waker was woken so far.
  [[nodiscard]] std::uint32_t wake_count() const noexcept {
    return h_.promise().flag->wake_count();
  }

  T result() {
    if constexpr (!std::is_void_v<T>) return std::move(*h_.promise().value);
  }

 private:
  handle h_;
  bool started_ = false;
};

namespace detail_driver {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<promise<T>>::from_promise(*this)};
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>{std::coroutine_handle<promise<void>>::from_promise(*this)};
}
}  // namespace detail_driver

// Runs the given tasks on this thread until all are done.
template <class... Tasks>
void run_all(Tasks&... tasks) {
  for (;;) {
    bool all_done = true;
    bool progressed = false;
    (
        [&] {
          if (!tasks.done()) {
            progressed |= tasks.step();
            all_done &= tasks.done();
          }
        }(),
        ...);
    if (all_done) return;
    if (!progressed) port::current_parker().park();
  }
}

template <class T>
T block_on(task<T> t) {
  run_all(t);
  return t.result();
}

}  // namespace sluice::test
