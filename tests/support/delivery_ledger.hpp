// An exact account of values travelling through a channel, for the tests of
// "every value is delivered once or reported once" (sluice/poll.hpp, "ready
// is final"), and an awaitable that cancels its own task in the window
// between a ready poll and the resume.
//
// Each ledger_value carries an id. The ledger counts, per id:
//   attempted   a sender made the value
//   sent        the send completed ok (send_async / send said so)
//   received    a receiver took it (take())
//   dropped     a live instance was destroyed while the ledger is in its
//               drop phase (the channel destroying what was left inside)
//   destroyed   a live instance was destroyed at any other time
// A moved-from instance counts for nothing. check() wants, for every id:
// sent ones received once or dropped once and never destroyed otherwise;
// attempted but unsent ones (their sender was cancelled while suspended)
// destroyed once with the sender's frame and never received or dropped.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <sluice/detail/task_header.hpp>
#include <sluice/poll.hpp>
#include <sluice/task.hpp>
#include <sluice/waker.hpp>

namespace sluice::test {

class delivery_ledger {
 public:
  explicit delivery_ledger(std::size_t ids)
      : attempted_(ids), sent_(ids), received_(ids), dropped_(ids), destroyed_(ids) {}

  void attempted(int id) { attempted_[index(id)].fetch_add(1, std::memory_order_relaxed); }
  void sent(int id) { sent_[index(id)].fetch_add(1, std::memory_order_relaxed); }
  void received(int id) { received_[index(id)].fetch_add(1, std::memory_order_relaxed); }
  void destroyed(int id) {
    // Relaxed: the phase is switched by the test thread after every task
    // and thread that could hold a value has been joined.
    auto& counter = dropping_.load(std::memory_order_relaxed) ? dropped_ : destroyed_;
    counter[index(id)].fetch_add(1, std::memory_order_relaxed);
  }
  // From now on a destruction counts as the channel's drop.
  void begin_drop() { dropping_.store(true, std::memory_order_relaxed); }

  [[nodiscard]] std::size_t size() const { return received_.size(); }
  [[nodiscard]] long total_received() const { return total(received_); }
  [[nodiscard]] long total_sent() const { return total(sent_); }
  [[nodiscard]] long total_dropped() const { return total(dropped_); }
  [[nodiscard]] long total_unsent() const { return total(attempted_) - total(sent_); }

  // Empty if every id is accounted for exactly once; else the first few
  // ids that are not, with their counts.
  [[nodiscard]] std::string check() const {
    std::ostringstream out;
    int reported = 0;
    for (std::size_t i = 0; i < size() && reported < 8; ++i) {
      const int a = attempted_[i].load(), s = sent_[i].load(), r = received_[i].load(),
                d = dropped_[i].load(), x = destroyed_[i].load();
      const bool ok = a == 0   ? (s + r + d + x == 0)
                      : s == 1 ? (a == 1 && r + d == 1 && x == 0)
                               : (a == 1 && s == 0 && r + d == 0 && x == 1);
      if (ok) continue;
      out << "id " << i << ": attempted " << a << " sent " << s << " received " << r << " dropped "
          << d << " destroyed elsewhere " << x << "\n";
      ++reported;
    }
    return out.str();
  }

 private:
  std::size_t index(int id) const {
    const auto i = static_cast<std::size_t>(id);
    if (id < 0 || i >= received_.size()) std::abort();
    return i;
  }
  static long total(const std::vector<std::atomic<int>>& v) {
    long n = 0;
    for (const auto& c : v)
      n += c.load();
    return n;
  }

  std::vector<std::atomic<int>> attempted_, sent_, received_, dropped_, destroyed_;
  std::atomic<bool> dropping_{false};
};

class ledger_value {
 public:
  ledger_value(delivery_ledger& ledger, int id) : ledger_(&ledger), id_(id) {
    ledger.attempted(id);
  }
  ledger_value(ledger_value&& other) noexcept
      : ledger_(other.ledger_), id_(std::exchange(other.id_, moved_from)) {}
  ledger_value& operator=(ledger_value&& other) noexcept {
    if (this != &other) {
      release();
      ledger_ = other.ledger_;
      id_ = std::exchange(other.id_, moved_from);
    }
    return *this;
  }
  ledger_value(const ledger_value&) = delete;
  ledger_value& operator=(const ledger_value&) = delete;
  ~ledger_value() { release(); }

  [[nodiscard]] int id() const { return id_; }
  // Records the receipt; the instance then counts for nothing.
  int take() {
    const int id = std::exchange(id_, moved_from);
    ledger_->received(id);
    return id;
  }

 private:
  static constexpr int moved_from = -1;
  void release() {
    if (id_ != moved_from) ledger_->destroyed(std::exchange(id_, moved_from));
  }
  delivery_ledger* ledger_;
  int id_;
};

// co_await cancel_self_after_ready{inner}: awaits the pollable awaiter
// `inner` (by reference, so use it within one full-expression, e.g.
// `co_await cancel_self_after_ready{rx.recv_async()}`), and the moment one
// of its polls says ready (the value is taken), cancels the task it runs in:
// the cancellation arrives between the ready poll and the resume. Only in a
// task spawned on an executor (or a manual_scheduler).
template <class Inner>
class cancel_self_after_ready {
 public:
  explicit cancel_self_after_ready(Inner&& inner) noexcept : inner_(inner) {}

  bool await_ready() noexcept { return false; }  // the result always comes from a poll
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> coroutine) noexcept {
    Promise& promise = coroutine.promise();
    self_ = promise.context().header;
    if (poll_thunk(this, promise.current_waker()) == poll_status::ready) return false;
    promise.set_poll_hook(poll_hook{&poll_thunk, this});
    return true;
  }
  decltype(auto) await_resume() noexcept { return inner_.await_resume(); }

 private:
  static poll_status poll_thunk(void* me, const waker& w) noexcept {
    auto& self = *static_cast<cancel_self_after_ready*>(me);
    const poll_status s = self.inner_.poll(w);
    if (s == poll_status::ready) (void)self.self_->cancel();
    return s;
  }

  Inner& inner_;
  detail::task_header* self_ = nullptr;
};

template <class Inner>
cancel_self_after_ready(Inner&&) -> cancel_self_after_ready<Inner>;

}  // namespace sluice::test
