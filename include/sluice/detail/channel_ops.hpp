// The channel's operations, written once over any flavour.
//
// A "core" is an engine (bounded ring, unbounded list, static ring) plus two
// waiter lists. It offers:
//   op_status push(T&)            moves in on ok; would_block = full
//   op_status pop(raw_storage<T>&) constructs the value on ok; would_block = empty
//   bool close_engine()           marks closed; true if this call did it
//   bool is_closed(), approx_size(), capacity()
//   waiter_list& senders_waiting()    senders wait for room here
//   waiter_list& receivers_waiting()  receivers wait for values here
// Everything else (notifications, blocking, timeouts, awaitables, batches,
// range-for) lives here, so no flavour repeats a retry loop.
//
// Notifications. After every successful push one receiver waiter is
// notified; after every successful pop one sender waiter; close notifies all
// of both. [C1] Every push and pop claims its position with a seq_cst
// read-modify-write (the engines' compare-exchange on tail or head), and a
// waiter's re-check that finds the channel full or empty reads that position
// word. So the notifier may use waiter_list::notify_one_after_seq_cst_rmw(),
// whose check is one seq_cst load (a plain load on x86) instead of a seq_cst
// fence; when nobody waits that load is all a send or receive pays.
// (Measured on x86-64, one thread, bounded channel: a try_send + try_recv
// pair takes about 17 ns this way and about 29 ns with the fence.)
//
// Waiting: detail::wait_until (blocking_wait.hpp): spin, then park on the
// waiter list.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/atomic.hpp>
#include <sluice/detail/blocking_wait.hpp>
#include <sluice/detail/channel_common.hpp>
#include <sluice/detail/cpu_relax.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/parker.hpp>
#include <sluice/poll.hpp>
#include <sluice/port.hpp>
#include <sluice/result.hpp>
#include <sluice/time.hpp>
#include <sluice/waker.hpp>

namespace sluice::detail {

template <class Core>
using core_value_t = typename Core::value_type;

template <class Core>
[[nodiscard]] send_result<core_value_t<Core>> try_send(Core& core,
                                                       core_value_t<Core>&& value) noexcept {
  using T = core_value_t<Core>;
  switch (core.push(value)) {
    case op_status::ok:
      core.receivers_waiting().notify_one_after_seq_cst_rmw();  // [C1]
      return send_result<T>::ok();
    case op_status::would_block:
      return send_result<T>::failed(send_error::full, std::move(value));
    case op_status::closed:
      break;
  }
  return send_result<T>::failed(send_error::closed, std::move(value));
}

template <class Core>
[[nodiscard]] send_result<core_value_t<Core>> send_until(Core& core, core_value_t<Core>&& value,
                                                         time_point deadline) noexcept {
  using T = core_value_t<Core>;
  op_status status = op_status::would_block;
  const bool completed = wait_until(core.senders_waiting(), deadline, [&]() noexcept {
    status = core.push(value);
    return status != op_status::would_block;
  });
  if (!completed) return send_result<T>::failed(send_error::timeout, std::move(value));
  if (status == op_status::closed)
    return send_result<T>::failed(send_error::closed, std::move(value));
  core.receivers_waiting().notify_one_after_seq_cst_rmw();  // [C1]
  return send_result<T>::ok();
}

// Pops into `out`; notifies a sender on success.
template <class Core>
[[nodiscard]] op_status pop_and_notify(Core& core, raw_storage<core_value_t<Core>>& out) noexcept {
  const op_status status = core.pop(out);
  if (status == op_status::ok) core.senders_waiting().notify_one_after_seq_cst_rmw();  // [C1]
  return status;
}

// Turns a popped value (or its absence) into a recv_result.
template <class T>
[[nodiscard]] recv_result<T> take_result(op_status status, raw_storage<T>& slot,
                                         recv_error when_blocked) noexcept {
  if (status == op_status::ok) {
    recv_result<T> r(std::move(slot.get()));
    slot.destroy();
    return r;
  }
  return status == op_status::closed ? recv_error::closed : when_blocked;
}

template <class Core>
[[nodiscard]] recv_result<core_value_t<Core>> try_recv(Core& core) noexcept {
  raw_storage<core_value_t<Core>> slot;
  return take_result(pop_and_notify(core, slot), slot, recv_error::empty);
}

template <class Core>
[[nodiscard]] recv_result<core_value_t<Core>> recv_until(Core& core, time_point deadline) noexcept {
  raw_storage<core_value_t<Core>> slot;
  op_status status = op_status::would_block;
  const bool completed = wait_until(core.receivers_waiting(), deadline, [&]() noexcept {
    status = core.pop(slot);
    return status != op_status::would_block;
  });
  if (!completed) return recv_error::timeout;
  if (status == op_status::ok) core.senders_waiting().notify_one_after_seq_cst_rmw();  // [C1]
  return take_result(status, slot, recv_error::timeout);
}

// Moves in values from [first, last) while there is room; returns how many.
// Requires: *first is an lvalue of the element type.
template <class Core, class Iterator, class Sentinel>
std::size_t try_send_n(Core& core, Iterator first, Sentinel last) noexcept {
  std::size_t sent = 0;
  for (; first != last; ++first) {
    core_value_t<Core>& value = *first;
    if (core.push(value) != op_status::ok) break;
    core.receivers_waiting().notify_one_after_seq_cst_rmw();  // [C1]
    ++sent;
  }
  return sent;
}

// Moves up to `max` values out into `out`; returns how many.
template <class Core, class OutputIterator>
std::size_t try_recv_n(Core& core, OutputIterator out, std::size_t max) noexcept {
  std::size_t received = 0;
  raw_storage<core_value_t<Core>> slot;
  while (received < max && pop_and_notify(core, slot) == op_status::ok) {
    *out = std::move(slot.get());
    ++out;
    slot.destroy();
    ++received;
  }
  return received;
}

// Closes the channel and wakes every waiter of both kinds.
template <class Core>
void close(Core& core) noexcept {
  if (core.close_engine()) {
    core.receivers_waiting().notify_all();
    core.senders_waiting().notify_all();
  }
}

// Closes the channel and destroys every value inside (the last receiver has
// gone). Requires: no receiver is left to race with.
template <class Core>
void close_and_discard(Core& core) noexcept {
  close(core);
  raw_storage<core_value_t<Core>> slot;
  // After the mark no new value can enter; values whose senders claimed a
  // position before it are waited for by pop, so each is destroyed once.
  while (core.pop(slot) == op_status::ok)
    slot.destroy();
}

// The awaitable forms: pollable awaiters (see <sluice/poll.hpp>) that register
// the task's waker in the same waiter lists as blocked threads.
//
// Where a value is at every moment (the "ready is final" rule of poll.hpp):
//   send  until a poll or await_ready pushes it, the value is the awaiter's;
//         an awaiter destroyed before that (its task was cancelled while
//         suspended) destroys it with the frame: it was never sent, and the
//         task that would have been told is gone. Once pushed it is the
//         channel's; await_resume says ok (or, closed, hands it back).
//   recv  a poll that says ready has popped the value into the awaiter, and
//         the driver must resume the coroutine, whose await_resume hands it
//         over: so a value leaves the channel only into the task's hands. A
//         task destroyed while suspended had popped nothing; the value stays
//         in the channel for another receiver, or is destroyed, once, with
//         the channel.
// An awaiter destroyed after saying ready but before await_resume means its
// driver broke that rule: checked below (the value cannot go back to the
// front of the channel: a push would go to the back, and may find the
// channel full or closed).
//
// Requires: the channel (handle) outlives the awaiter.
template <class Core>
class [[nodiscard]] send_awaiter : public pollable_awaiter<send_awaiter<Core>> {
 public:
  using value_type = core_value_t<Core>;

  send_awaiter(Core& core, value_type&& value) noexcept
      : core_(&core), waiting_(core.senders_waiting()), value_(std::move(value)) {}
  send_awaiter(const send_awaiter&) = delete;
  send_awaiter& operator=(const send_awaiter&) = delete;
  ~send_awaiter() {
    SLUICE_ASSERT(status_ == op_status::would_block,
                  "a send awaiter was destroyed after it completed but before await_resume "
                  "(a driver destroyed a coroutine whose poll hook said ready)");
  }

  bool try_complete() noexcept {
    SLUICE_ASSERT(!resumed_,
                  "a send awaiter was awaited again after its send completed (its value went "
                  "with the first co_await)");
    status_ = core_->push(value_);
    if (status_ == op_status::ok)
      core_->receivers_waiting().notify_one_after_seq_cst_rmw();  // [C1]
    return status_ != op_status::would_block;
  }

  // Leaves the waiter list (with_timeout, when its timeout wins).
  void withdraw() noexcept { waiting_.withdraw(); }

  poll_status poll(const waker& task) noexcept {
    return waiting_.poll(task, [this]() noexcept { return try_complete(); });
  }

  send_result<value_type> await_resume() noexcept {
    if constexpr (debug_checks) resumed_ = true;
    if (std::exchange(status_, op_status::would_block) == op_status::ok)
      return send_result<value_type>::ok();
    return send_result<value_type>::failed(send_error::closed, std::move(value_));
  }
  // In place of await_resume when the deadline won (send_async_for):
  // nothing was sent, the value comes back.
  send_result<value_type> timed_out() noexcept {
    SLUICE_ASSERT(status_ == op_status::would_block, "a send awaiter timed out after it completed");
    if constexpr (debug_checks) resumed_ = true;
    return send_result<value_type>::failed(send_error::timeout, std::move(value_));
  }

 private:
  Core* core_;
  polled_waiter waiting_;  // for room
  value_type value_;
  op_status status_ = op_status::would_block;  // ok / closed: completed, not yet resumed
  bool resumed_ = false;                       // debug builds: await_resume ran (the value is gone)
};

template <class Core>
class [[nodiscard]] recv_awaiter : public pollable_awaiter<recv_awaiter<Core>> {
 public:
  using value_type = core_value_t<Core>;

  explicit recv_awaiter(Core& core) noexcept : core_(&core), waiting_(core.receivers_waiting()) {}
  recv_awaiter(const recv_awaiter&) = delete;
  recv_awaiter& operator=(const recv_awaiter&) = delete;
  ~recv_awaiter() {
    SLUICE_ASSERT(status_ != op_status::ok,
                  "a recv awaiter was destroyed holding a received value that await_resume "
                  "never took (a driver destroyed a coroutine whose poll hook said ready)");
    if (status_ == op_status::ok) slot_.destroy();  // unchecked builds: not leaked, at least
  }

  bool try_complete() noexcept {
    status_ = pop_and_notify(*core_, slot_);
    return status_ != op_status::would_block;
  }

  // Leaves the waiter list (with_timeout, when its timeout wins).
  void withdraw() noexcept { waiting_.withdraw(); }

  poll_status poll(const waker& task) noexcept {
    return waiting_.poll(task, [this]() noexcept { return try_complete(); });
  }

  recv_result<value_type> await_resume() noexcept {
    const op_status status = std::exchange(status_, op_status::would_block);
    return take_result(status, slot_, recv_error::empty);
  }
  // In place of await_resume when the deadline won (recv_async_for):
  // nothing was taken.
  recv_result<value_type> timed_out() noexcept {
    SLUICE_ASSERT(status_ == op_status::would_block, "a recv awaiter timed out after it completed");
    return recv_error::timeout;
  }

 private:
  Core* core_;
  polled_waiter waiting_;  // for a value
  raw_storage<value_type> slot_;
  op_status status_ = op_status::would_block;  // ok: slot_ holds the value popped
};

// Range-for over a receiving end: each step blocks in recv(); the range ends
// when the channel is closed and drained.
struct recv_sentinel {};

template <class Source, class T>
class recv_iterator {
 public:
  explicit recv_iterator(Source& source) noexcept : source_(&source) { advance(); }
  recv_iterator(recv_iterator&& other) noexcept : source_(other.source_), has_(other.has_) {
    if (has_) {
      current_.construct(std::move(other.current_.get()));
      other.current_.destroy();
      other.has_ = false;
    }
  }
  recv_iterator(const recv_iterator&) = delete;
  recv_iterator& operator=(const recv_iterator&) = delete;
  ~recv_iterator() {
    if (has_) current_.destroy();
  }

  T& operator*() noexcept { return current_.get(); }
  recv_iterator& operator++() noexcept {
    current_.destroy();
    has_ = false;
    advance();
    return *this;
  }
  friend bool operator==(const recv_iterator& it, recv_sentinel) noexcept { return !it.has_; }

 private:
  void advance() noexcept {
    recv_result<T> r = source_->recv();
    if (r) {
      current_.construct(std::move(r).value());
      has_ = true;
    }
  }

  Source* source_;
  raw_storage<T> current_;
  bool has_ = false;
};

}  // namespace sluice::detail
