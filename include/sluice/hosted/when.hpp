// when_all / when_any over tasks (hosted: they use std::tuple and
// std::vector). The tasks are spawned on the awaiting task's executor, so
// they run in parallel on its workers.
//
//   auto [a, b] = co_await sluice::when_all(fetch(1), fetch(2));   // join_results
//   auto [index, r] = co_await sluice::when_any(std::move(tasks)); // first to finish
//
// A child that cannot be spawned is reported with the join_error that says
// why (no_memory, too_many_tasks, shut_down, as block_on does); when_any
// passes over such a child and reports the first one's refusal only if no
// child could be spawned. when_any cancels the children that did
// not finish first; their frames are destroyed when a worker next takes
// them. A when_all or when_any that is itself cancelled (or destroyed)
// while it waits cancels every child still running: none outlives it.
#pragma once

#include <cstddef>
#include <tuple>
#include <utility>
#include <vector>

#include <sluice/detail/task_header.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/executor.hpp>
#include <sluice/join_handle.hpp>
#include <sluice/poll.hpp>
#include <sluice/task.hpp>

namespace sluice {

namespace detail {

// A child of when_all or when_any: its handle, or (empty handle) why it was not spawned.
template <class T>
struct child {
  join_handle<T> handle;
  join_error refused = join_error::cancelled;
};

template <class T>
child<T> spawn_child(executor& ex, task<T>&& t) {
  spawn_result<T> r = ex.spawn(std::move(t));
  if (!r) return child<T>{{}, refused_spawn(r.error())};
  return child<T>{std::move(r).value(), join_error::cancelled};
}

// Requests cancellation of the task behind `h`, if any.
template <class T>
void cancel_if_valid(join_handle<T>& h) noexcept {
  if (h.valid()) (void)h.cancel();
}

// Runs `f` when the scope ends, however it ends (a cancelled task's frame
// is destroyed at its suspension point).
template <class F>
class at_scope_exit {
 public:
  explicit at_scope_exit(F f) noexcept : f_(std::move(f)) {}
  at_scope_exit(const at_scope_exit&) = delete;
  at_scope_exit& operator=(const at_scope_exit&) = delete;
  ~at_scope_exit() { f_(); }

 private:
  F f_;
};

// Joins the task behind `h`, then empties `h`; an empty handle's task was
// refused (`refused` says why). `h` stays the caller's while this waits, so
// that a caller cancelled meanwhile (its frame destroyed, this one with it)
// still finds the handle and cancels that task, rather than detaching it.
template <class T>
task<join_result<T>> join_or_refused(join_handle<T>& h, join_error refused) {
  if (!h.valid()) co_return join_result<T>{refused};
  join_result<T> r = co_await h;
  h = join_handle<T>{};
  co_return r;
}

// Ready when any of the valid handles' tasks has completed; gives its
// index. Requires: at least one handle is valid; the handles do not change
// while it waits.
template <class T>
class any_completed : public pollable_awaiter<any_completed<T>> {
 public:
  explicit any_completed(std::vector<join_handle<T>>& handles)
      : tasks_(tasks_of(handles)),
        nodes_(handles.size()),
        poll_(tasks_.data(), nodes_.data(), tasks_.size()) {}
  any_completed(const any_completed&) = delete;
  any_completed& operator=(const any_completed&) = delete;

  bool try_complete() noexcept { return (index_ = poll_.completed()) != tasks_.size(); }
  poll_status poll(const waker& w) noexcept {
    const poll_status s = poll_.poll(w);
    if (s == poll_status::ready) index_ = poll_.completed();
    return s;
  }
  std::size_t await_resume() noexcept { return index_; }

 private:
  static std::vector<task_header*> tasks_of(std::vector<join_handle<T>>& handles) {
    std::vector<task_header*> tasks;
    tasks.reserve(handles.size());
    for (join_handle<T>& h : handles)
      tasks.push_back(h.cell());  // null for an empty handle: skipped
    return tasks;
  }

  std::vector<task_header*> tasks_;
  std::vector<waiter> nodes_;
  completion_poll<counted_at_run_time> poll_;
  std::size_t index_ = 0;
};

}  // namespace detail

// Runs every task in parallel and gives all their join_results, in order.
template <class... Ts>
task<std::tuple<join_result<Ts>...>> when_all(task<Ts>... tasks) {
  executor& ex = co_await current_executor();
  std::tuple<detail::child<Ts>...> children{detail::spawn_child(ex, std::move(tasks))...};
  // Joined handles are empty; the rest are cancelled if this task ends first.
  const detail::at_scope_exit cancel_rest{[&children]() noexcept {
    std::apply([](detail::child<Ts>&... c) noexcept { (detail::cancel_if_valid(c.handle), ...); },
               children);
  }};
  co_return co_await std::apply(
      [](detail::child<Ts>&... c) -> task<std::tuple<join_result<Ts>...>> {
        co_return std::tuple<join_result<Ts>...>{
            co_await detail::join_or_refused(c.handle, c.refused)...};
      },
      children);
}

// Runs every task in parallel; gives the index and result of the first to
// complete and cancels the others. Requires: at least one task.
template <class T>
task<std::pair<std::size_t, join_result<T>>> when_any(std::vector<task<T>> tasks) {
  SLUICE_ASSERT(!tasks.empty(), "when_any of no tasks");
  executor& ex = co_await current_executor();
  std::vector<join_handle<T>> handles;
  handles.reserve(tasks.size());
  join_error first_refused = join_error::cancelled;  // the first child's, if refused
  for (task<T>& t : tasks) {
    detail::child<T> c = detail::spawn_child(ex, std::move(t));
    if (handles.empty()) first_refused = c.refused;
    handles.push_back(std::move(c.handle));
  }
  // Every child but the first to finish (whose handle is emptied by its join) is
  // cancelled when this task ends, whether it ends normally or cancelled.
  const detail::at_scope_exit cancel_rest{[&handles]() noexcept {
    for (join_handle<T>& h : handles)
      detail::cancel_if_valid(h);
  }};
  bool any_spawned = false;
  for (const join_handle<T>& h : handles)
    any_spawned = any_spawned || h.valid();
  if (!any_spawned)
    co_return std::pair<std::size_t, join_result<T>>{0, join_result<T>{first_refused}};
  const std::size_t first = co_await detail::any_completed<T>{handles};
  for (std::size_t i = 0; i < handles.size(); ++i)
    if (i != first) detail::cancel_if_valid(handles[i]);
  join_result<T> r = co_await detail::join_or_refused(handles[first], first_refused);
  co_return std::pair<std::size_t, join_result<T>>{first, std::move(r)};
}

template <class T, class... More>
task<std::pair<std::size_t, join_result<T>>> when_any(task<T> first, task<More>... more) {
  std::vector<task<T>> tasks;
  tasks.push_back(std::move(first));
  (tasks.push_back(std::move(more)), ...);
  co_return co_await when_any(std::move(tasks));
}

}  // namespace sluice
