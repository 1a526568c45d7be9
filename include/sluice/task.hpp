// task<T>: the coroutine type users write.
//
//   sluice::task<int> answer() { co_return 42; }
//   sluice::task<int> twice() { co_return 2 * co_await answer(); }
//
// A task is lazy (nothing runs until it is spawned on an executor or
// awaited by another task), move-only, and owns its frame until then.
//
// The poll protocol (sluice/poll.hpp) for a chain of nested tasks: all
// coroutines of one spawned task share one task_context, kept in the task's
// header. The context holds the root task's waker while a worker polls it
// (borrowed: no reference-count traffic), the poll hook left by the
// awaiter the chain is suspended on, and the innermost suspended coroutine,
// which is the one a ready hook resumes. Awaiting a nested task transfers
// control to it symmetrically (no stack growth) and makes it the innermost;
// its final suspend hands control back to its awaiter.
//
// Frames come from the heap (hosted), or from a frame_pool when the
// coroutine's first parameter is `sluice::frame_pool&`. When there is no
// room the call returns an invalid task (valid() false): spawn reports it
// as no_memory, and co_await of it throws std::bad_alloc into the awaiting
// task (a named panic where there are no exceptions; a debug build names
// the mistake).
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#if defined(__cpp_exceptions)
#include <exception>
#endif

#include <sluice/detail/assert.hpp>
#include <sluice/detail/config.hpp>
#include <sluice/frame_pool.hpp>
#include <sluice/poll.hpp>
#include <sluice/waker.hpp>

// GCC (12) at -O0 reports -Wmismatched-new-delete at the end of every
// coroutine whose frame comes from the pool form of operator new below,
// because the frame is freed with the one-argument operator delete, as the
// standard requires for coroutine frames. The pairing is correct (both go
// through allocation_prefix), so the false positive is switched off for the
// translation units that use tasks; the diagnostic is reported at the
// user's coroutine, so a push/pop around this header would not reach it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace sluice {

template <class T = void>
class task;

namespace detail {

class task_header;

// Shared by every coroutine in one spawned task's chain.
struct task_context {
  const waker* current_waker = nullptr;  // set by the worker for the length of a poll
  poll_hook hook;                        // left by the awaiter the chain is suspended on
  std::coroutine_handle<> innermost;     // what a ready hook (or a first run) resumes
  task_header* header = nullptr;         // the spawned task (null under other drivers)
};

#if defined(__cpp_exceptions)
// Hosted with exceptions: an exception leaving a task is carried to whoever
// awaits or joins it.
class exception_slot {
 public:
  static constexpr bool holds = true;  // an exception_ptr, released in reset()
  void capture() noexcept { error_ = std::current_exception(); }
  [[nodiscard]] bool has_exception() const noexcept { return static_cast<bool>(error_); }
  void rethrow_if_any() {
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }
  void move_from(exception_slot& other) noexcept { error_ = std::exchange(other.error_, nullptr); }
  void reset() noexcept { error_ = nullptr; }

 private:
  std::exception_ptr error_;
};
#else
// Without exceptions nothing can leave a task that way.
class exception_slot {
 public:
  static constexpr bool holds = false;
  void capture() noexcept {
    SLUICE_ASSERT(false, "unhandled_exception in a build without exceptions");
  }
  [[nodiscard]] bool has_exception() const noexcept { return false; }
  void rethrow_if_any() noexcept {}
  void move_from(exception_slot&) noexcept {}
  void reset() noexcept {}
};
#endif

// Storage for a result that may not be there yet.
template <class T>
class value_slot {
 public:
  value_slot() noexcept {}
  value_slot(const value_slot&) = delete;
  value_slot& operator=(const value_slot&) = delete;
  ~value_slot() { reset(); }

  template <class... Args>
  void emplace(Args&&... args) noexcept(std::is_nothrow_constructible_v<T, Args...>) {
    reset();
    ::new (static_cast<void*>(&value_)) T(std::forward<Args>(args)...);
    has_ = true;
  }
  [[nodiscard]] bool has_value() const noexcept { return has_; }
  // Requires: has_value().
  [[nodiscard]] T take() noexcept(std::is_nothrow_move_constructible_v<T>) {
    SLUICE_ASSERT(has_, "value_slot::take without a value");
    T out(std::move(value_));
    reset();
    return out;
  }
  void move_from(value_slot& other) noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (other.has_) emplace(other.take());
  }
  void reset() noexcept {
    if (has_) {
      value_.~T();
      has_ = false;
    }
  }

 private:
  union {
    T value_;
  };
  bool has_ = false;
};

template <>
class value_slot<void> {
 public:
  void emplace() noexcept { has_ = true; }
  [[nodiscard]] bool has_value() const noexcept { return has_; }
  void take() noexcept { has_ = false; }
  void move_from(value_slot& other) noexcept {
    has_ = other.has_;
    other.has_ = false;
  }
  void reset() noexcept { has_ = false; }

 private:
  bool has_ = false;
};

class promise_base {
 public:
  std::suspend_always initial_suspend() noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      promise_base& p = self.promise();
      if (p.continuation_) {
        // Back to the awaiting coroutine, which is the innermost again.
        if (p.context_ != nullptr) p.context_->innermost = p.continuation_;
        return p.continuation_;
      }
      return std::noop_coroutine();  // the root: its driver sees done()
    }
    void await_resume() noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { exception_.capture(); }

  // The poll protocol (sluice/poll.hpp).
  [[nodiscard]] const waker& current_waker() const noexcept {
    SLUICE_ASSERT(context_ != nullptr && context_->current_waker != nullptr,
                  "a sluice awaitable was awaited outside a running task");
    return *context_->current_waker;
  }
  void set_poll_hook(poll_hook hook) noexcept { context_->hook = hook; }

  // For awaitables that need more than the waker (timers, spawn).
  [[nodiscard]] task_context& context() noexcept { return *context_; }
  void attach(task_context* context) noexcept { context_ = context; }
  void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }

  [[nodiscard]] exception_slot& exception() noexcept { return exception_; }

  // Frames: from a pool if the coroutine's first parameter is one, else
  // from the heap (the heap form is promise<T>'s: it knows the room to
  // keep). Null on failure (see get_return_object_on_allocation_failure).
  template <class... Args>
  static void* operator new(std::size_t bytes, frame_pool& pool, Args&...) noexcept {
    return allocate_in(pool, bytes);
  }
  static void operator delete(void* frame) noexcept { free_allocation(frame); }

 private:
  task_context* context_ = nullptr;
  std::coroutine_handle<> continuation_;
  exception_slot exception_;
};

// The room a heap frame of task<T> keeps in front of it for the header a
// spawn makes (allocate_on_heap_with_room in frame_pool.hpp; hosted builds,
// see heap_header_room in detail/config.hpp): the header's
// prefix, at most task_header_bytes of task_header (task_header.hpp checks
// it), the result and the exception, rounded up. A task that is awaited
// and never spawned leaves the room unused.
inline constexpr std::size_t task_header_bytes = 128;
template <class T>
inline constexpr std::size_t header_room = (sizeof(allocation_prefix) + task_header_bytes +
                                            alignof(value_slot<T>) + sizeof(value_slot<T>) +
                                            sizeof(exception_slot) + alignof(allocation_prefix) -
                                            1) /
                                           alignof(allocation_prefix) * alignof(allocation_prefix);

// A heap frame for a task<T>: with that room where heap_header_room says so.
template <class T>
void* allocate_task_frame(std::size_t bytes) noexcept {
  if constexpr (heap_header_room) return allocate_on_heap_with_room<header_room<T>>(bytes);
  return allocate_on_heap(bytes);
}

template <class T>
class promise : public promise_base {
  // Frames come from the heap or a frame_pool, aligned for max_align_t,
  // and a spawned task's result shares its header's block, no better
  // aligned: a result type that needs more cannot be placed.
  static_assert(alignof(value_slot<T>) <= alignof(std::max_align_t),
                "task<T>: T is over-aligned (beyond alignof(std::max_align_t)); task frames "
                "and spawned tasks' results have no more alignment than that: return it in a "
                "std::unique_ptr, or through a pointer to storage the caller aligns");

 public:
  using promise_base::operator new;  // the pool form
  static void* operator new(std::size_t bytes) noexcept { return allocate_task_frame<T>(bytes); }

  task<T> get_return_object() noexcept;
  static task<T> get_return_object_on_allocation_failure() noexcept;

  template <class U = T>
  void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    result_.emplace(std::forward<U>(value));
  }
  [[nodiscard]] value_slot<T>& result() noexcept { return result_; }

 private:
  value_slot<T> result_;
};

template <>
class promise<void> : public promise_base {
 public:
  using promise_base::operator new;  // the pool form
  static void* operator new(std::size_t bytes) noexcept { return allocate_task_frame<void>(bytes); }

  task<void> get_return_object() noexcept;
  static task<void> get_return_object_on_allocation_failure() noexcept;

  void return_void() noexcept { result_.emplace(); }
  [[nodiscard]] value_slot<void>& result() noexcept { return result_; }

 private:
  value_slot<void> result_;
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  task() noexcept = default;
  explicit task(handle_type h) noexcept : handle_(h) {}
  task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { reset(); }

  // False for a moved-from task, or one whose frame could not be allocated.
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(handle_); }

  // Gives up ownership of the frame (the executor takes it).
  [[nodiscard]] handle_type release() noexcept { return std::exchange(handle_, {}); }

  // Awaiting a task runs it to completion inside the awaiting task's chain.
  class awaiter {
   public:
    explicit awaiter(handle_type h) noexcept : handle_(h) {}
    // An invalid task (release builds) runs nothing: await_resume says why.
    bool await_ready() noexcept { return !handle_; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> parent) noexcept {
      static_assert(std::is_base_of_v<detail::promise_base, Promise>,
                    "a sluice::task can only be awaited from a sluice::task");
      detail::task_context& ctx = parent.promise().context();
      handle_.promise().attach(&ctx);
      handle_.promise().set_continuation(parent);
      ctx.innermost = handle_;
      return handle_;
    }
    T await_resume() {
      if (!handle_) [[unlikely]] {
        // Where there are exceptions, std::bad_alloc reaches the awaiting
        // task (and its joiner, if it lets it go); elsewhere a named stop.
#if defined(__cpp_exceptions)
        throw std::bad_alloc();
#else
        port::panic(
            "sluice: co_await on an invalid task (moved from, or its frame allocation failed)",
            __FILE__, __LINE__);
#endif
      }
      handle_.promise().exception().rethrow_if_any();
      if constexpr (!std::is_void_v<T>) return handle_.promise().result().take();
    }

   private:
    handle_type handle_;
  };

  // Requires: valid() (a debug build names an invalid task here; a release
  // build answers it in await_resume, above). The task stays owned by this
  // object, which must outlive the co_await expression (a temporary does).
  awaiter operator co_await() && noexcept {
    SLUICE_ASSERT(handle_,
                  "co_await on an invalid task (moved from, or its frame allocation failed)");
    return awaiter{handle_};
  }

 private:
  void reset() noexcept {
    if (handle_) std::exchange(handle_, {}).destroy();
  }

  handle_type handle_;
};

namespace detail {

template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<promise<T>>::from_promise(*this)};
}
template <class T>
task<T> promise<T>::get_return_object_on_allocation_failure() noexcept {
  return task<T>{};
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>{std::coroutine_handle<promise<void>>::from_promise(*this)};
}
inline task<void> promise<void>::get_return_object_on_allocation_failure() noexcept {
  return task<void>{};
}

}  // namespace detail

// co_await sluice::yield(): lets other runnable tasks run before this one
// continues. It wakes its own task while it runs, so the task is re-queued
// when it suspends: on an executor worker at the back of that worker's
// FIFO (the run queue when the FIFO is full), and the worker's next pick
// looks at the run queue first (executor.hpp, "Worker queue"); in a build
// without worker slots (SLUICE_EXECUTOR_SLOTS=0) at the back of the run
// queue.
class yield_awaiter : public pollable_awaiter<yield_awaiter> {
 public:
  bool try_complete() noexcept { return false; }
  poll_status poll(const waker& w) noexcept {
    if (yielded_) return poll_status::ready;
    yielded_ = true;
    w.wake_by_ref();
    return poll_status::pending;
  }
  void await_resume() noexcept {}

 private:
  bool yielded_ = false;
};

[[nodiscard]] inline yield_awaiter yield() noexcept {
  return {};
}

}  // namespace sluice
