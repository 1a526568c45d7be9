// A single-threaded scheduler for the executor's unit tests: the run queue
// is a deque, and every push, run and completion is appended to a trace so
// that exact sequences can be asserted.
#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include <sluice/detail/task_header.hpp>
#include <sluice/join_handle.hpp>
#include <sluice/poll.hpp>
#include <sluice/task.hpp>

namespace sluice::test {

class manual_scheduler final : public detail::task_scheduler {
 public:
  void schedule(detail::task_header& t) noexcept override {
    trace.push_back("push " + name_of(t));
    queue.push_back(&t);
  }
  void task_completed(detail::task_header& t) noexcept override {
    trace.push_back("complete " + name_of(t));
  }

  detail::timer_queue& timers() noexcept override { return timer_queue_; }

  template <class T>
  join_handle<T> spawn(task<T> t, std::string name, frame_pool* pool = nullptr) {
    auto* cell = detail::task_cell<T>::create(t, *this, pool);
    if (cell == nullptr) return {};
    names.emplace_back(static_cast<detail::task_header*>(cell), std::move(name));
    schedule(*cell);  // the initial state is `scheduled`
    return join_handle<T>{cell};
  }

  // Runs the task at the front of the queue; false if there is none.
  bool run_one() {
    if (queue.empty()) return false;
    detail::task_header* t = queue.front();
    queue.pop_front();
    trace.push_back("run " + name_of(*t));
    detail::run_task(*t);
    return true;
  }
  int run_until_idle() {
    int n = 0;
    while (run_one())
      ++n;
    return n;
  }

  std::string name_of(detail::task_header& t) const {
    for (const auto& [h, n] : names)
      if (h == &t) return n;
    return "?";
  }

  detail::timer_queue timer_queue_;
  std::deque<detail::task_header*> queue;
  std::vector<std::string> trace;
  std::vector<std::pair<detail::task_header*, std::string>> names;
};

// An awaitable event set by the test: pollable, keeps a clone of the waker.
class manual_event {
 public:
  class awaiter : public pollable_awaiter<awaiter> {
   public:
    explicit awaiter(manual_event& e) noexcept : event_(&e) {}
    bool try_complete() noexcept { return event_->set_; }
    poll_status poll(const waker& w) noexcept {
      ++event_->polls;
      if (event_->set_) return poll_status::ready;
      event_->waker_ = w.clone();
      return poll_status::pending;
    }
    void await_resume() noexcept {}

   private:
    manual_event* event_;
  };
  awaiter operator co_await() noexcept { return awaiter{*this}; }

  void set() {
    set_ = true;
    waker_.wake();
  }
  void reset() { set_ = false; }
  // Wakes without setting: the awaiter is polled and stays pending.
  void spurious_wake() { waker_.wake_by_ref(); }
  [[nodiscard]] bool has_waker() const { return !waker_.empty(); }
  waker& stored_waker() { return waker_; }
  int polls = 0;

 private:
  bool set_ = false;
  waker waker_;
};

}  // namespace sluice::test
