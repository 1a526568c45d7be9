// join_handle<T>: the spawner's end of a spawned task.
//
//   auto h = ex.spawn(work());            // spawn_result<T>: a handle or an error
//   join_result<int> r = h->join();        // from a thread: blocks
//   join_result<int> r = co_await *h;      // from a task: suspends
//   h->cancel();                           // seen at the task's next suspension
//   h->detach();                           // forget it; the task runs on
//
// A join reports the value, or join_error::cancelled. Hosted with
// exceptions, an exception that left the task is rethrown by join / co_await.
// Dropping a handle detaches (the task is not cancelled).
//
// Waiting: the handle waits on the task's joiner list (detail/waiter_list):
// the worker that completes the task stores `complete` with release, then
// notifies every joiner; a joiner enqueues, re-checks with acquire, and
// sleeps (a thread: detail::wait_until, which spins briefly first, then
// parks; a task: suspended, woken through its waker).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/blocking_wait.hpp>
#include <sluice/detail/task_header.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/poll.hpp>
#include <sluice/task.hpp>

namespace sluice {

enum class join_error : std::uint8_t {
  cancelled,  // cancel() or shutdown() ended the task before it finished
  // From block_on, when_all and when_any only: the task never ran, as its
  // spawn was refused (the spawn_error of the same name says why).
  no_memory,       // the task's frame or header (or the run queue) could not be allocated
  too_many_tasks,  // max_tasks tasks were live
  shut_down,       // shutdown() had begun
};

constexpr const char* to_string(join_error e) noexcept {
  switch (e) {
    case join_error::cancelled:
      return "cancelled";
    case join_error::no_memory:
      return "not spawned: no memory";
    case join_error::too_many_tasks:
      return "not spawned: too many tasks";
    case join_error::shut_down:
      return "not spawned: shut down";
  }
  return "?";
}

// The outcome of a task: its value, or why there is none.
template <class T>
class [[nodiscard]] join_result {
 public:
  join_result(join_error e) noexcept : error_(e) {}  // NOLINT(google-explicit-constructor)
  explicit join_result(detail::value_slot<T>& from) noexcept(
      std::is_nothrow_move_constructible_v<T>) {
    value_.move_from(from);
  }
  join_result(join_result&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : error_(other.error_) {
    value_.move_from(other.value_);
  }
  join_result& operator=(join_result&&) = delete;

  [[nodiscard]] bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  // Requires: has_value().
  [[nodiscard]] decltype(auto) value() && noexcept(std::is_nothrow_move_constructible_v<T>) {
    SLUICE_ASSERT(value_.has_value(),
                  "join_result::value() on a task that was cancelled or never spawned");
    return value_.take();
  }
  [[nodiscard]] decltype(auto) operator*() && noexcept(std::is_nothrow_move_constructible_v<T>) {
    return std::move(*this).value();
  }
  // Requires: !has_value().
  [[nodiscard]] join_error error() const noexcept {
    SLUICE_ASSERT(!value_.has_value(), "join_result::error() on a task that finished");
    return error_;
  }

 private:
  detail::value_slot<T> value_;
  join_error error_ = join_error::cancelled;
};

namespace detail {

inline constexpr std::size_t counted_at_run_time = ~std::size_t{0};

// Waiting, in a task, for any of n tasks to complete: a join (N = 1, fixed
// so that the loops fold away) or when_any (n counted at run time). Each
// task that is not null has its node on its joiner list while the poll is
// pending. Completion notifies every joiner, so a notification that a
// withdrawal consumed needs no passing on.
template <std::size_t N>
class completion_poll {
 public:
  completion_poll(task_header* const* tasks, waiter* nodes, std::size_t n = N) noexcept
      : tasks_(tasks), nodes_(nodes), n_(N != counted_at_run_time ? N : n) {}
  completion_poll(const completion_poll&) = delete;
  completion_poll& operator=(const completion_poll&) = delete;
  ~completion_poll() { withdraw(); }

  // The index of a task that has completed (acquiring its completion), or
  // n when none has.
  [[nodiscard]] std::size_t completed() const noexcept {
    for (std::size_t i = 0; i < count(); ++i)
      if (tasks_[i] != nullptr && tasks_[i]->state().is_complete()) return i;
    return count();
  }
  // Ready when completed() says one has; else lists `w` (cloned) on every
  // joiner list and looks again after the lists' [W1] fence.
  poll_status poll(const waker& w) noexcept {
    withdraw();
    if (completed() != count()) return poll_status::ready;
    for (std::size_t i = 0; i < count(); ++i)
      if (tasks_[i] != nullptr) tasks_[i]->joiners().enqueue(nodes_[i], w.clone());
    listed_ = true;
    if (completed() != count()) {
      withdraw();
      return poll_status::ready;
    }
    return poll_status::pending;
  }

 private:
  void withdraw() noexcept {
    if (!listed_) return;
    listed_ = false;
    for (std::size_t i = 0; i < count(); ++i)
      if (tasks_[i] != nullptr) (void)tasks_[i]->joiners().cancel(nodes_[i]);
  }
  [[nodiscard]] std::size_t count() const noexcept {
    if constexpr (N != counted_at_run_time) {
      return N;
    } else {
      return n_;
    }
  }

  task_header* const* tasks_;
  waiter* nodes_;
  std::size_t n_;
  bool listed_ = false;
};

}  // namespace detail

template <class T>
class join_handle {
 public:
  join_handle() noexcept = default;
  explicit join_handle(detail::task_cell<T>* cell) noexcept : cell_(cell) {}
  join_handle(join_handle&& other) noexcept : cell_(std::exchange(other.cell_, nullptr)) {}
  join_handle& operator=(join_handle&& other) noexcept {
    if (this != &other) {
      detach();
      cell_ = std::exchange(other.cell_, nullptr);
    }
    return *this;
  }
  join_handle(const join_handle&) = delete;
  join_handle& operator=(const join_handle&) = delete;
  ~join_handle() { detach(); }

  [[nodiscard]] bool valid() const noexcept { return cell_ != nullptr; }

  // True once the task has completed (finished or cancelled); may be stale
  // the other way (false when it completes right after).
  [[nodiscard]] bool is_finished() const noexcept {
    SLUICE_ASSERT(cell_ != nullptr, "is_finished() on an empty join_handle");
    return cell_->state().is_complete();
  }

  // Requests cancellation. Returns false if the task had already completed.
  // Requires: valid().
  bool cancel() noexcept {
    SLUICE_ASSERT(cell_ != nullptr, "cancel() on an empty join_handle");
    return cell_->cancel();
  }

  // Lets the task run on without a handle. The handle becomes empty. The
  // result, which nobody can take now, is destroyed here if the task has
  // finished, else by the worker that completes it.
  void detach() noexcept {
    if (cell_ != nullptr) std::exchange(cell_, nullptr)->detach_handle();
  }

  // Blocks the calling thread until the task completes. Not from a task
  // (use co_await) and not from a handler. Requires: valid(). Consumes the
  // handle's result: the handle is empty afterwards.
  join_result<T> join() {
    SLUICE_ASSERT(cell_ != nullptr, "join() on an empty join_handle");
    detail::task_header& t = *cell_;
    const bool complete = detail::wait_until(t.joiners(), time_point::max(), [&t]() noexcept {
      return t.state().is_complete();  // acquires the completion
    });
    SLUICE_ASSERT(complete, "join: a wait without a deadline ended without completion");
    return take();
  }

  class awaiter : public pollable_awaiter<awaiter> {
   public:
    explicit awaiter(join_handle& h) noexcept : handle_(&h), task_(h.cell_) {}
    awaiter(const awaiter&) = delete;
    awaiter& operator=(const awaiter&) = delete;
    bool try_complete() noexcept { return poll_.completed() == 0; }
    poll_status poll(const waker& w) noexcept { return poll_.poll(w); }
    join_result<T> await_resume() { return handle_->take(); }

   private:
    join_handle* handle_;
    detail::task_header* task_;
    detail::waiter node_;
    detail::completion_poll<1> poll_{&task_, &node_};
  };

  // Requires: valid(). The handle must outlive the co_await expression.
  awaiter operator co_await() & noexcept {
    SLUICE_ASSERT(cell_ != nullptr, "co_await on an empty join_handle");
    return awaiter{*this};
  }
  awaiter operator co_await() && noexcept { return operator co_await(); }

  // For the executor's tests: the task's header.
  [[nodiscard]] detail::task_cell<T>* cell() const noexcept { return cell_; }

 private:
  // Requires: the task is complete (acquired).
  join_result<T> take() {
    detail::task_cell<T>* cell = std::exchange(cell_, nullptr);
    // Whatever happens here (a result's move that throws leaves it in its
    // slot), nothing is left in the cell for a later last release, which a
    // waker may make in a handler: the slots are emptied first ([T7]).
    struct release_on_exit {
      detail::task_cell<T>* cell;
      ~release_on_exit() {
        cell->drop_slots();
        cell->release_now();
      }
    } guard{cell};
    if (cell->state().was_cancelled()) return join_result<T>{join_error::cancelled};
    cell->exception().rethrow_if_any();
    return join_result<T>{cell->result()};
  }

  detail::task_cell<T>* cell_ = nullptr;
};

}  // namespace sluice
