// task_header: what a spawned task is to the executor. A reference count and
// the state word (task_state.hpp), the context its coroutine chain shares
// (task.hpp), the root coroutine frame, and the list of those waiting to
// join it. The header is `wakeable`: the task's waker is {header, static
// vtable}, made with no allocation; a wake is one CAS on the state word and,
// when that says so, one push on the run queue (the scheduler's), so it is
// safe from any thread, a signal handler and an interrupt handler as long as
// the scheduler's push is (the executor's is: see executor.hpp).
//
// The typed part, task_cell<T>, adds the result. The cell outlives the
// coroutine frame, because the frame must be destroyed as soon as the task
// completes or is cancelled (its awaiters unregister in their destructors)
// while wakers and the join handle may still refer to the task. Hosted, a
// heap frame keeps room in front of it for the cell (one allocation, freed
// with the cell: frame_pool.hpp); otherwise the cell is allocated apart.
//
// References: the scheduler holds one from spawn until the task completes
// (that covers the run queue, which holds a task at most once, and the
// running worker); the join handle, if there is one (not with
// spawn_detached), holds one until joined or detached; each waker clone
// holds one. The last release destroys the cell, except that a waker's
// last release (it may run in a signal handler) of a heap task only
// retires it, hosted: see release() and retired_tasks below. The result
// does not wait for the last release: a join takes it, and a handle that
// goes without one (or its absence) has it destroyed in thread or task
// context ([T7] in task_state.hpp), so the cell's own destruction runs no
// user code.
//
// run_task() acts on the state machine's decisions (tokio's harness.rs has
// this role): begin the run, poll the hook or resume the innermost coroutine
// with a borrowed waker, then end the run (idle, re-queue, or cancel), or
// finish: take the result, destroy the frame exactly once, publish
// completion, wake joiners, drop the scheduler's reference.
#pragma once

#include <coroutine>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/atomic.hpp>
#include <sluice/detail/config.hpp>
#include <sluice/detail/retire_list.hpp>
#include <sluice/detail/task_state.hpp>
#include <sluice/detail/timer_queue.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/frame_pool.hpp>
#include <sluice/task.hpp>
#include <sluice/waker.hpp>

namespace sluice {
class executor;
}

namespace sluice::detail {

class task_header;
void destroy_retired_tasks() noexcept;

// Where tasks go when they become runnable, and who is told when one ends.
class task_scheduler {
 public:
  // Puts `t` on the run queue. Any context (thread, signal handler,
  // interrupt handler); must not fail: the task is scheduled exactly once
  // per push decision.
  virtual void schedule(task_header& t) noexcept = 0;
  // Puts `t`, which was woken while it ran (a yield, or a wake from
  // elsewhere during the poll), back after the tasks already waiting: a
  // scheduler with a faster path for fresh wakes must not use it here, or a
  // yield would not let the others run. Called by the worker that ran `t`.
  virtual void reschedule(task_header& t) noexcept { schedule(t); }
  // `t` completed (finished or cancelled); called once per task, by the
  // worker that completed it, before the scheduler's reference is dropped.
  virtual void task_completed(task_header& t) noexcept = 0;
  // `t` is about to suspend for the first time (once per task, by the
  // worker that runs it, before the end_run that may leave it idle): a
  // scheduler that must be able to find suspended tasks (the executor, to
  // cancel them at shutdown) starts tracking it here.
  virtual void first_suspension(task_header& t) noexcept { (void)t; }
  // The timer queue that sleeps of this scheduler's tasks arm.
  virtual timer_queue& timers() noexcept = 0;
  // The executor behind this scheduler, if it is one (spawning from a task).
  virtual executor* owner() noexcept { return nullptr; }

 protected:
  ~task_scheduler() = default;
};

// The drop_result of a task whose result has no destructor (and which
// holds no exception): one function for every such type.
inline void drop_nothing(task_header&) noexcept {}

struct task_vtable {
  // Moves the root coroutine's result (and exception) into the cell. Called
  // once, before the frame is destroyed, only when the coroutine finished.
  void (*take_result)(task_header& t) noexcept;
  // Destroys the cell and frees its memory (last reference).
  void (*destroy)(task_header& t) noexcept;
  // Destroys the result (and releases an exception) that nobody will take
  // ([T7] in task_state.hpp); drop_nothing where that runs no code.
  void (*drop_result)(task_header& t) noexcept;
};

class task_header {
 public:
  // on_heap: the header's memory is the heap's (not a frame_pool's).
  task_header(const task_vtable& vtable, task_scheduler& scheduler, std::coroutine_handle<> frame,
              bool on_heap) noexcept
      : vtable_(&vtable), scheduler_(&scheduler), frame_(frame), on_heap_(on_heap) {
    context_.header = this;
    context_.innermost = frame;
  }
  task_header(const task_header&) = delete;
  task_header& operator=(const task_header&) = delete;

  // --- wakeable -----------------------------------------------------------
  void add_ref() noexcept {
    // Relaxed: a new reference is made from an existing one, which keeps
    // the task alive meanwhile.
    refs_.fetch_add(1, std::memory_order_relaxed);
  }
  // A waker's release (drop, or the end of wake()): any context, a signal
  // handler included. The last one of a task whose header is on the heap
  // retires it, hosted (retire_from_wakers): freeing heap memory is not
  // safe in a handler. One whose header came from a frame_pool is destroyed
  // at once: the pool's free is lock-free, and a retired task would keep
  // its block from the pool (and could outlive the pool itself). Either
  // way no user code runs here: the frame went at completion, and the
  // result was taken by a join or dropped in thread or task context when
  // the handle went ([T7] in task_state.hpp).
  void release() noexcept {
    if (!drop_reference()) return;
    if (retire_from_wakers && on_heap_) {
      retire();
    } else {
      vtable_->destroy(*this);
    }
  }
  // The join handle's and the scheduler's release: thread or task context
  // only. The last one destroys the task.
  void release_now() noexcept {
    if constexpr (retire_from_wakers) {
      if (drop_reference()) vtable_->destroy(*this);
    } else {
      release();  // the same, in one copy of the code
    }
  }
  // Any context. No allocation, no lock: a CAS, and a push if it decides so.
  void wake_by_ref() noexcept {
    if (state_.wake() == task_action::push) scheduler_->schedule(*this);
  }
  void wake() noexcept {
    wake_by_ref();
    release();
  }

  // Requests cancellation; the task sees it at its next suspension point
  // (or before its next run). Returns false if it had already completed.
  bool cancel() noexcept {
    bool was_complete = false;
    if (state_.cancel(was_complete) == task_action::push) scheduler_->schedule(*this);
    return !was_complete;
  }

  // A task spawned without a join handle holds only the scheduler's
  // reference, and its result is dropped when it completes. Relaxed:
  // called before spawn publishes the task (its push on the run queue or
  // into a slot releases these stores with the rest).
  void forgo_handle_reference() noexcept {
    refs_.store(1, std::memory_order_relaxed);
    state_.start_without_handle();
  }

  // The join handle's end without a join (thread or task context): drops
  // the result of a finished task, or leaves that to its completion
  // ([T7]), then releases the handle's reference.
  void detach_handle() noexcept {
    if (state_.detach() == task_action::drop_result) vtable_->drop_result(*this);
    release_now();
  }

  // Destroys a retired task (destroy_retired_tasks).
  void destroy_retired() noexcept { vtable_->destroy(*this); }

  // Destroys a task that was never scheduled nor shared (spawn refused it).
  void discard_unstarted() noexcept {
    std::exchange(frame_, {}).destroy();
    vtable_->destroy(*this);
  }

  [[nodiscard]] task_state& state() noexcept { return state_; }
  [[nodiscard]] const task_state& state() const noexcept { return state_; }
  [[nodiscard]] task_context& context() noexcept { return context_; }
  [[nodiscard]] waiter_list& joiners() noexcept { return joiners_; }
  [[nodiscard]] task_scheduler& scheduler() noexcept { return *scheduler_; }
  // The root coroutine's frame; null once it is destroyed.
  [[nodiscard]] void* frame_address() const noexcept { return frame_.address(); }
  [[nodiscard]] std::uint32_t approx_refs() const noexcept {
    // Relaxed: an observer.
    return refs_.load(std::memory_order_relaxed);
  }

  // Whether the task has suspended (first_suspension ran; always false
  // without task_lazy_listing, config.hpp). Written by the worker that runs
  // the task before that run's end_run; read by the worker of a later run
  // before its begin_run (ordered by [T6]: through the waker that pushed
  // it, or the end_run's own push) and by the one that completes it.
  [[nodiscard]] bool has_suspended() const noexcept { return suspended_; }

  // Links for the scheduler's list of suspended tasks (guarded by its lock).
  task_header* live_prev = nullptr;
  task_header* live_next = nullptr;

 private:
  friend void run_task(task_header& t) noexcept;

  // True for the last reference.
  bool drop_reference() noexcept {
    // [H1] Each release publishes its holder's uses of the task, and the
    // last one acquires all the earlier ones before it destroys the task.
    // The last reference needs no read-modify-write: a count of 1 seen by
    // its holder stays 1, since a reference is only ever made from another
    // one and nothing else refers to the task by then (it has left the
    // live list; the run queue and the slots hold it under the scheduler's
    // reference). So a detached task's last release, the scheduler's, is
    // the load alone. Acquire: pairs with the release of every earlier
    // decrement (they form one release sequence). Otherwise acq_rel, paired
    // with itself.
    return refs_.load(std::memory_order_acquire) == 1 ||
           refs_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

  // Pushes the task, which nothing refers to any more, on retired_tasks:
  // a lock-free push, safe in a signal handler. The link is live_next,
  // free since the task left the scheduler's list at completion.
  void retire() noexcept;

  void finish(task_outcome outcome) noexcept {
    if (outcome == task_outcome::finished) vtable_->take_result(*this);
    // The frame is destroyed here and nowhere else: once, by the worker
    // that owns the run.
    std::exchange(frame_, {}).destroy();
    task_action a;
    if (unshared()) {
      // [T5]: nobody else can read or change the word, nobody can join.
      a = state_.complete_unshared(outcome);
    } else {
      a = state_.complete(outcome);
      // [T4]: complete() was a seq_cst RMW on the word joiners re-check.
      joiners_.notify_all_after_seq_cst_rmw();
    }
    SLUICE_ASSERT(a == task_action::finish || a == task_action::finish_unjoined,
                  "task completed twice or while not running");
    // [T7]: the handle is gone (or never was): nobody will take the result
    // (a cancelled task has none: its slots are empty).
    if (a == task_action::finish_unjoined) vtable_->drop_result(*this);
    scheduler_->task_completed(*this);
    release_now();  // the scheduler's reference
    // A worker's completion is where tasks retired by wakers meet their
    // end (one load when there are none).
    if constexpr (retire_from_wakers) destroy_retired_tasks();
  }

  // No other thread can reach the task ([T5] in task_state.hpp): it has
  // never suspended (so no scheduler lists it) and the caller's reference
  // is its only one, which no one else can copy. Acquire [H1]: pairs with
  // the release of every dropped reference, so what their holders did to
  // the task (a cancel through the join handle, a wake) happens before.
  // (Never, where the scheduler lists tasks from their spawn on.)
  [[nodiscard]] bool unshared() const noexcept {
    if constexpr (!task_lazy_listing) return false;
    return !suspended_ && refs_.load(std::memory_order_acquire) == 1;
  }

  task_state state_;
  atomic<std::uint32_t> refs_{2};  // the scheduler's and the join handle's (or 1: detached)
  const task_vtable* vtable_;
  task_scheduler* scheduler_;
  std::coroutine_handle<> frame_;
  task_context context_;
  waiter_list joiners_;
  bool suspended_ = false;  // see has_suspended()
  bool on_heap_;            // see release()
};

// Tasks whose last reference a waker dropped (hosted: retire_from_wakers;
// heap tasks only), linked through live_next, waiting to be destroyed in
// thread context: by the next completion on any executor's worker (finish),
// by an executor's destructor, or by destroy_retired_tasks() called by the
// program. One list for the whole program, since a waker may outlive its
// executor. [RL1] in retire_list.hpp.
inline constinit retire_list<task_header, &task_header::live_next> retired_tasks;

inline void task_header::retire() noexcept {
  retired_tasks.push(*this);
}

// Destroys every retired task. Thread or task context only.
inline void destroy_retired_tasks() noexcept {
  retired_tasks.take_all([](task_header& t) noexcept { t.destroy_retired(); });
}

// Runs a task a worker took off the run queue: one poll, then whatever the
// state machine decides. Requires: the task was on the run queue.
inline void run_task(task_header& t) noexcept {
  // A task spawned detached (or whose handle is gone) starts its first run
  // with no read-modify-write ([T5]).
  task_action a = t.unshared() ? t.state_.begin_run_unshared() : t.state_.begin_run();
  SLUICE_ASSERT(a == task_action::poll || a == task_action::cancel,
                "a task was run that was not scheduled");
  if (a == task_action::poll) {
    task_context& ctx = t.context_;
    // The task's own waker, borrowed: resuming costs no reference count;
    // an awaiter that keeps it clones it.
    const borrowed_waker self(raw_waker_for(t));
    ctx.current_waker = &self.get();
    // Cancellation is not looked at between the hook and the resume: a hook
    // that said ready has taken its result (a value out of a channel), which
    // only the coroutine's await_resume can hand on ("ready is final" in
    // poll.hpp). A cancel() that came before or during the poll is seen by
    // end_run (E7) when the coroutine next suspends.
    bool resume = true;
    if (ctx.hook) {
      if (ctx.hook(self.get()) == poll_status::pending) {
        resume = false;
      } else {
        ctx.hook = poll_hook{};
      }
    }
    if (resume) ctx.innermost.resume();
    ctx.current_waker = nullptr;
    if (t.frame_.done()) {  // the root coroutine is at its final suspend
      t.finish(task_outcome::finished);
      return;
    }
    if constexpr (task_lazy_listing) {
      if (!t.suspended_) {
        t.suspended_ = true;
        t.scheduler_->first_suspension(t);  // before end_run can leave it idle
      }
    }
    a = t.state_.end_run();
    if (a == task_action::push) t.scheduler_->reschedule(t);
    if (a != task_action::cancel) return;
  }
  // Cancelled: destroying the root frame destroys the whole chain (each
  // awaited task is owned by its awaiter's frame) and every awaiter in it,
  // which unregisters its waker.
  t.finish(task_outcome::cancelled);
}

// The typed part: the result of a task<T>.
template <class T>
class task_cell final : public task_header {
 public:
  using handle_type = typename task<T>::handle_type;

  // Makes the cell for `t` and takes the frame: in the room a heap frame
  // keeps in front of it (frame_pool.hpp, allocate_on_heap_with_room) when
  // `pool` is null, else from `pool`, or from the heap for a frame from a
  // frame_pool. Null (and `t` left untouched) when there is no memory.
  static task_cell* create(task<T>& t, task_scheduler& scheduler, frame_pool* pool) noexcept {
    handle_type frame = t.release();
    void* memory = nullptr;
    if constexpr (heap_header_room) {
      if (pool == nullptr) memory = room_before(frame);
    }
    if (memory == nullptr) memory = allocate_from(pool, sizeof(task_cell));
    if (memory == nullptr) {
      t = task<T>(frame);  // untouched
      return nullptr;
    }
    auto* cell = ::new (memory) task_cell(scheduler, frame, pool == nullptr);
    frame.promise().attach(&cell->context());
    return cell;
  }

  [[nodiscard]] value_slot<T>& result() noexcept { return result_; }
  [[nodiscard]] exception_slot& exception() noexcept { return exception_; }
  // Empties both slots, as the vtable's drop_result does (for a join,
  // which knows T).
  void drop_slots() noexcept { drop_result(*this); }

 private:
  task_cell(task_scheduler& scheduler, handle_type frame, bool on_heap) noexcept
      : task_header(table, scheduler, frame, on_heap) {}

  // The room in front of a heap frame, now the cell's (see create), or
  // null for a frame from a frame_pool. A coroutine frame's address is the
  // pointer its operator new returned (GCC and Clang).
  static void* room_before(handle_type frame) noexcept {
    constexpr std::size_t room = header_room<T>;
    static_assert(sizeof(allocation_prefix) + sizeof(task_cell) <= room,
                  "task_header_bytes (task.hpp) is too small for the task header");
    auto* frame_prefix = static_cast<allocation_prefix*>(frame.address()) - 1;
    if (frame_prefix->pool != nullptr) return nullptr;
    SLUICE_ASSERT(frame_prefix->free_fn == &free_heap_block_before<room>,
                  "a task frame from the heap without room for its header");
    // The frame's destruction must no longer free the block; the cell's
    // last reference does, through the block's own prefix.
    frame_prefix->free_fn = &keep_heap_block;
    auto* block_prefix = ::new (reinterpret_cast<std::byte*>(frame_prefix) - room)
        allocation_prefix{nullptr, &free_heap_block};
    return block_prefix + 1;
  }

  static void take_result(task_header& t) noexcept {
    auto& self = static_cast<task_cell&>(t);
    auto& promise = handle_type::from_address(self.frame_address()).promise();
    self.result_.move_from(promise.result());
    self.exception_.move_from(promise.exception());
  }
  static void destroy(task_header& t) noexcept {
    auto* self = static_cast<task_cell*>(&t);
    self->~task_cell();
    free_allocation(self);
  }
  static void drop_result(task_header& t) noexcept {
    auto& self = static_cast<task_cell&>(t);
    self.result_.reset();
    self.exception_.reset();
  }
  // Nothing to drop: a result with no destructor, and no exception to hold.
  static constexpr bool result_has_destructor =
      !std::is_void_v<T> && !std::is_trivially_destructible_v<T>;
  static constexpr bool drops_nothing = !result_has_destructor && !exception_slot::holds;
  static constexpr task_vtable table{&take_result, &destroy,
                                     drops_nothing ? &drop_nothing : &drop_result};

  value_slot<T> result_;
  exception_slot exception_;
};

}  // namespace sluice::detail
