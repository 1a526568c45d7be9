// sluice::channel: a lock-free multi-producer multi-consumer FIFO channel.
//
//   auto [tx, rx] = sluice::channel<int>::bounded(64);    // exact capacity
//   auto [tx, rx] = sluice::channel<int>::unbounded();
//   constinit sluice::static_channel<int, 16> ch;         // no heap, .bss
//
// Every operation comes in four forms: try_ (never waits), blocking (parks
// the thread), _for / _until (with a timeout), and _async (co_await in a task:
// suspends the task, not the thread), which has _async_for / _async_until
// forms too (the deadline kept by the task's executor timers). A failed
// send hands the value back, a timed-out one included:
//
//   if (auto r = tx.try_send(std::move(frame)); !r) {
//     if (r.error() == sluice::send_error::full) backlog.push(std::move(r).value_back());
//   }
//
// Handles. sender<T> and receiver<T> are copyable and counted. When the last
// sender is gone (or close() is called on any handle) receivers get what is
// left, then `closed`; when the last receiver is gone, sends fail with
// `closed` and the values still inside are destroyed, each once. Either way
// every waiting sender and receiver is woken. What a thread did before it
// closed the channel happens before any receive that then answers `closed`
// (a send's `closed` promises no such order). Whichever side goes last frees
// the shared state. A moved-from or default-constructed handle is empty: only
// destruction, assignment and valid() are allowed on it.
//
// FIFO per producer; each value is received exactly once. try_send reports
// `full` and try_recv `empty` only when the channel really is full or empty
// (see detail/channel_array.hpp for the trade that buys this).
//
// Handlers. Because a try_ operation may wait for another operation that has
// claimed the same slot and not yet finished (the trade above), a POSIX
// signal handler or an interrupt handler must not use a channel that the
// code it interrupts may be in the middle of using: the handler would wait
// for an operation that cannot finish until the handler returns. (Waking
// waiters, which every operation does, is handler-safe.)
//
// Flavours: detail/channel_array.hpp (bounded, static), detail/channel_list.hpp
// (unbounded); the operations common to all: detail/channel_ops.hpp.
// channel<T>::bounded / unbounded allocate and are for hosted builds;
// static_channel needs no heap. An unbounded channel allocates blocks of 63
// slots as its backlog grows and keeps the blocks it retires, up to about
// 4 MiB (at least 16 blocks, so more for very large T), for reuse (so a
// steady state allocates nothing); they are freed when the channel is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/atomic.hpp>
#include <sluice/detail/channel_array.hpp>
#include <sluice/detail/channel_common.hpp>
#include <sluice/detail/channel_list.hpp>
#include <sluice/detail/channel_ops.hpp>
#include <sluice/detail/deadline_awaiter.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/port.hpp>
#include <sluice/result.hpp>
#include <sluice/time.hpp>

namespace sluice {

template <detail::channel_element T>
class sender;
template <detail::channel_element T>
class receiver;

namespace detail {

// An engine with its two waiter lists: a core for channel_ops.hpp.
template <class Engine>
class channel_core {
 public:
  using value_type = typename Engine::value_type;

  template <class... Args>
  constexpr explicit channel_core(Args&&... args) noexcept
      : engine_(static_cast<Args&&>(args)...) {}

  [[nodiscard]] op_status push(value_type& v) noexcept { return engine_.push(v); }
  [[nodiscard]] op_status pop(raw_storage<value_type>& out) noexcept { return engine_.pop(out); }
  bool close_engine() noexcept { return engine_.close(); }
  [[nodiscard]] bool is_closed() const noexcept { return engine_.is_closed(); }
  [[nodiscard]] std::size_t approx_size() const noexcept { return engine_.approx_size(); }
  [[nodiscard]] std::size_t capacity() const noexcept { return engine_.capacity(); }
  waiter_list& senders_waiting() noexcept { return waiters_.senders; }
  waiter_list& receivers_waiting() noexcept { return waiters_.receivers; }

 private:
  Engine engine_;
  // Read on every operation, written only when someone waits: apart from
  // the engine's head and tail lines.
  struct alignas(contention_spacing) lists {
    waiter_list receivers;
    waiter_list senders;
  } waiters_;
};

// The shared state behind sender<T> / receiver<T>: one of the two heap
// flavours, chosen at run time (one predictable branch per operation), the
// waiter lists, and the handle counts.
//
// Counts: senders_ and receivers_ start at 1 (the pair handed out). When
// either reaches 0 that side is finished: close (senders) or close and
// discard (receivers); then it flips done_, and whoever flips it second
// frees the state.
template <class T>
class shared_channel {
 public:
  using value_type = T;
  struct unbounded_tag {};

  explicit shared_channel(std::size_t capacity) : flavour_(flavour::bounded) {
    ::new (static_cast<void*>(&bounded_)) bounded_engine(capacity);
  }
  explicit shared_channel(unbounded_tag) : flavour_(flavour::unbounded) {
    ::new (static_cast<void*>(&unbounded_)) unbounded_engine();
  }
  shared_channel(const shared_channel&) = delete;
  shared_channel& operator=(const shared_channel&) = delete;
  ~shared_channel() {
    if (flavour_ == flavour::bounded) {
      bounded_.~bounded_engine();
    } else {
      unbounded_.~unbounded_engine();
    }
  }

  [[nodiscard]] op_status push(T& v) noexcept {
    return flavour_ == flavour::bounded ? bounded_.push(v) : unbounded_.push(v);
  }
  [[nodiscard]] op_status pop(raw_storage<T>& out) noexcept {
    return flavour_ == flavour::bounded ? bounded_.pop(out) : unbounded_.pop(out);
  }
  bool close_engine() noexcept {
    return flavour_ == flavour::bounded ? bounded_.close() : unbounded_.close();
  }
  [[nodiscard]] bool is_closed() const noexcept {
    return flavour_ == flavour::bounded ? bounded_.is_closed() : unbounded_.is_closed();
  }
  [[nodiscard]] std::size_t approx_size() const noexcept {
    return flavour_ == flavour::bounded ? bounded_.approx_size() : unbounded_.approx_size();
  }
  [[nodiscard]] std::size_t capacity() const noexcept {
    return flavour_ == flavour::bounded ? bounded_.capacity() : unbounded_engine::capacity();
  }
  waiter_list& senders_waiting() noexcept { return senders_waiting_; }
  waiter_list& receivers_waiting() noexcept { return receivers_waiting_; }

  void add_sender() noexcept {
    // Relaxed: made from an existing sender, which keeps the state alive.
    senders_.fetch_add(1, std::memory_order_relaxed);
  }
  void add_receiver() noexcept {
    // Relaxed: as add_sender.
    receivers_.fetch_add(1, std::memory_order_relaxed);
  }
  void release_sender() noexcept {
    // acq_rel [H1]: every sender's operations happen before the last one
    // closes (so receivers see every value sent before `closed`).
    if (senders_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    close(*this);
    finish_side();
  }
  void release_receiver() noexcept {
    // acq_rel [H1]: every receiver's operations happen before the discard.
    if (receivers_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    close_and_discard(*this);
    finish_side();
  }

 private:
  using bounded_engine = array_engine<T, heap_slots<T>>;
  using unbounded_engine = list_engine<T>;
  enum class flavour : std::uint8_t { bounded, unbounded };

  void finish_side() noexcept {
    // acq_rel [H2]: the second side to finish sees everything the first
    // did to the state before freeing it.
    if (done_.exchange(1, std::memory_order_acq_rel) != 0) delete this;
  }

  union {
    bounded_engine bounded_;
    unbounded_engine unbounded_;
  };
  // Read on every operation, written when someone waits or a handle is
  // copied or dropped: apart from the engines' head and tail lines.
  alignas(contention_spacing) const flavour flavour_;
  waiter_list receivers_waiting_;
  waiter_list senders_waiting_;
  atomic<std::size_t> senders_{1};
  atomic<std::size_t> receivers_{1};
  atomic<std::uint32_t> done_{0};
};

// The operations every sending end has, over its core. CRTP so that sender
// and static_channel share one definition.
template <class Derived, class T>
class sending_ops {
 public:
  // Sends if there is room now: ok, or full / closed with the value back.
  [[nodiscard]] send_result<T> try_send(T value) noexcept {
    return detail::try_send(core(), std::move(value));
  }
  // Blocks the thread until there is room: ok, or closed with the value back.
  [[nodiscard]] send_result<T> send(T value) noexcept {
    return detail::send_until(core(), std::move(value), time_point::max());
  }
  // As send, giving up (timeout, value back) after `timeout`.
  [[nodiscard]] send_result<T> send_for(T value, duration timeout) noexcept {
    return detail::send_until(core(), std::move(value), deadline_after(timeout));
  }
  // As send, giving up at `deadline` (sluice::time_point or a std::chrono
  // time_point).
  template <class Deadline>
  [[nodiscard]] send_result<T> send_until(T value, const Deadline& deadline) noexcept {
    return detail::send_until(core(), std::move(value), to_time_point(deadline));
  }
  // co_await in a task: suspends the task until there is room; yields
  // send_result<T> (ok or closed). A task cancelled while suspended here did
  // not send: the value is destroyed with its frame. Requires: the channel
  // outlives the await.
  [[nodiscard]] auto send_async(T value) noexcept {
    return send_awaiter<std::remove_reference_t<decltype(core())>>(core(), std::move(value));
  }
  // As send_async, giving up after `timeout`: ok, or closed or timeout
  // with the value back (with_timeout around send_async would destroy it).
  // The deadline is kept by the task's executor timers.
  [[nodiscard]] auto send_async_for(T value, duration timeout) noexcept {
    return send_async_until(std::move(value), deadline_after(timeout));
  }
  // As send_async, giving up at `deadline` (sluice::time_point or a
  // std::chrono time_point).
  template <class Deadline>
  [[nodiscard]] auto send_async_until(T value, const Deadline& deadline) noexcept {
    using awaiter = send_awaiter<std::remove_reference_t<decltype(core())>>;
    return deadline_awaiter<awaiter, timeout_result::own>(to_time_point(deadline), std::in_place,
                                                          core(), std::move(value));
  }
  // Moves in values from [first, last) while there is room; returns how many
  // were sent (the rest are untouched). Requires: *first is a T lvalue.
  template <class Iterator, class Sentinel>
  std::size_t try_send_n(Iterator first, Sentinel last) noexcept {
    return detail::try_send_n(core(), first, last);
  }

 private:
  decltype(auto) core() noexcept { return static_cast<Derived*>(this)->core_ref(); }
};

template <class Derived, class T>
class receiving_ops {
 public:
  // A value if one is there now; else empty, or closed once closed and drained.
  [[nodiscard]] recv_result<T> try_recv() noexcept { return detail::try_recv(core()); }
  // Blocks the thread until a value comes; closed once closed and drained.
  [[nodiscard]] recv_result<T> recv() noexcept {
    return detail::recv_until(core(), time_point::max());
  }
  [[nodiscard]] recv_result<T> recv_for(duration timeout) noexcept {
    return detail::recv_until(core(), deadline_after(timeout));
  }
  template <class Deadline>
  [[nodiscard]] recv_result<T> recv_until(const Deadline& deadline) noexcept {
    return detail::recv_until(core(), to_time_point(deadline));
  }
  // co_await in a task: yields recv_result<T> (a value, or closed). A value
  // taken for the task always reaches it (a cancel lands at the task's next
  // suspension); a task cancelled while suspended here took none, so the
  // value stays in the channel. Requires: the channel outlives the await.
  [[nodiscard]] auto recv_async() noexcept {
    return recv_awaiter<std::remove_reference_t<decltype(core())>>(core());
  }
  // As recv_async, giving up after `timeout`: a value, closed, or timeout.
  [[nodiscard]] auto recv_async_for(duration timeout) noexcept {
    return recv_async_until(deadline_after(timeout));
  }
  // As recv_async, giving up at `deadline`.
  template <class Deadline>
  [[nodiscard]] auto recv_async_until(const Deadline& deadline) noexcept {
    using awaiter = recv_awaiter<std::remove_reference_t<decltype(core())>>;
    return deadline_awaiter<awaiter, timeout_result::own>(to_time_point(deadline), std::in_place,
                                                          core());
  }
  // Moves up to `max` values that are there now into `out` (each by
  // `*out = std::move(v); ++out`, so an inserter or an iterator over
  // constructed elements); returns how many.
  template <class OutputIterator>
  std::size_t try_recv_n(OutputIterator out, std::size_t max) noexcept {
    return detail::try_recv_n(core(), out, max);
  }
  // Range-for: receives (blocking) until closed and drained.
  [[nodiscard]] recv_iterator<Derived, T> begin() noexcept {
    return recv_iterator<Derived, T>(*static_cast<Derived*>(this));
  }
  [[nodiscard]] recv_sentinel end() const noexcept { return {}; }

 private:
  decltype(auto) core() noexcept { return static_cast<Derived*>(this)->core_ref(); }
};

}  // namespace detail

// Makes channels on the heap (hosted).
template <detail::channel_element T>
struct channel {
  // A ring of exactly `capacity` slots (not rounded). Requires: capacity >=
  // 1; a debug build names 0, a release build makes one slot (there is no
  // rendezvous channel: crossbeam's bounded(0), where a send waits for a
  // receive, has no counterpart here). Throws std::bad_alloc (as new does)
  // when the ring cannot be allocated, a capacity too large to count in
  // bytes included; a build without exceptions stops with a named panic
  // instead.
  [[nodiscard]] static std::pair<sender<T>, receiver<T>> bounded(std::size_t capacity) {
    SLUICE_ASSERT(capacity >= 1, "bounded channel capacity must be at least 1");
    return make(new detail::shared_channel<T>(capacity != 0 ? capacity : 1));
  }
  // Linked blocks of slots, recycled; capacity() is SIZE_MAX.
  [[nodiscard]] static std::pair<sender<T>, receiver<T>> unbounded() {
    return make(new detail::shared_channel<T>(typename detail::shared_channel<T>::unbounded_tag{}));
  }

 private:
  static std::pair<sender<T>, receiver<T>> make(detail::shared_channel<T>* state) noexcept {
    return {sender<T>(state), receiver<T>(state)};
  }
};

namespace detail {

// The counted part of sender<T> and receiver<T>: a pointer to the shared
// state, holding one of the counts of one side (Add takes one, Release gives
// it back, the last one finishing that side), and the observers both ends
// have. Copying takes a count; moving passes it on and leaves the source
// empty (only destruction, assignment and valid() are allowed on it).
template <class T, void (shared_channel<T>::*Add)() noexcept,
          void (shared_channel<T>::*Release)() noexcept>
class counted_handle {
 public:
  counted_handle() noexcept = default;
  counted_handle(const counted_handle& other) noexcept : state_(other.state_) {
    if (state_ != nullptr) (state_->*Add)();
  }
  counted_handle(counted_handle&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  counted_handle& operator=(counted_handle other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~counted_handle() {
    if (state_ != nullptr) (state_->*Release)();
  }

  // Closes the channel for everyone; wakes every waiter.
  void close() noexcept { detail::close(core_ref()); }
  [[nodiscard]] bool is_closed() const noexcept { return core_ref().is_closed(); }
  // May be stale by the time it returns.
  [[nodiscard]] std::size_t approx_size() const noexcept { return core_ref().approx_size(); }
  // The capacity given to bounded() (1 for a release build's bounded(0));
  // SIZE_MAX for unbounded().
  [[nodiscard]] std::size_t capacity() const noexcept { return core_ref().capacity(); }
  // False for a moved-from or default-constructed handle.
  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }

 protected:
  // Adopts one count the caller holds.
  explicit counted_handle(shared_channel<T>* state) noexcept : state_(state) {}
  shared_channel<T>& core_ref() const noexcept {
    SLUICE_ASSERT(state_ != nullptr, "operation on an empty (moved-from) sender or receiver");
    return *state_;
  }

 private:
  shared_channel<T>* state_ = nullptr;
};

template <class T>
using sender_handle =
    counted_handle<T, &shared_channel<T>::add_sender, &shared_channel<T>::release_sender>;
template <class T>
using receiver_handle =
    counted_handle<T, &shared_channel<T>::add_receiver, &shared_channel<T>::release_receiver>;

}  // namespace detail

template <detail::channel_element T>
class sender : public detail::sender_handle<T>, public detail::sending_ops<sender<T>, T> {
 public:
  using value_type = T;

  sender() noexcept = default;

 private:
  friend struct channel<T>;
  friend class detail::sending_ops<sender<T>, T>;
  explicit sender(detail::shared_channel<T>* state) noexcept : detail::sender_handle<T>(state) {}
};

template <detail::channel_element T>
class receiver : public detail::receiver_handle<T>, public detail::receiving_ops<receiver<T>, T> {
 public:
  using value_type = T;

  receiver() noexcept = default;

 private:
  friend struct channel<T>;
  friend class detail::receiving_ops<receiver<T>, T>;
  explicit receiver(detail::shared_channel<T>* state) noexcept
      : detail::receiver_handle<T>(state) {}
};

// A bounded channel with inline storage: constant-initialisable (a constinit
// global lands in .bss), no heap, no reference counting. It has every sender
// and receiver operation itself, plus close(). Destroying it destroys the
// values still inside. Requires: it outlives every thread and task using it.
template <detail::channel_element T, std::size_t Capacity>
class static_channel : public detail::sending_ops<static_channel<T, Capacity>, T>,
                       public detail::receiving_ops<static_channel<T, Capacity>, T> {
  static_assert(Capacity >= 1, "a static channel needs a capacity of at least 1");

 public:
  using value_type = T;
  using detail::receiving_ops<static_channel, T>::begin;
  using detail::receiving_ops<static_channel, T>::end;

  constexpr static_channel() noexcept = default;
  static_channel(const static_channel&) = delete;
  static_channel& operator=(const static_channel&) = delete;

  // Closes the channel: receivers drain what is left, then see closed;
  // sends fail closed; every waiter is woken.
  void close() noexcept { detail::close(core_); }
  [[nodiscard]] bool is_closed() const noexcept { return core_.is_closed(); }
  [[nodiscard]] std::size_t approx_size() const noexcept { return core_.approx_size(); }
  [[nodiscard]] static constexpr std::size_t capacity() noexcept { return Capacity; }

 private:
  friend class detail::sending_ops<static_channel, T>;
  friend class detail::receiving_ops<static_channel, T>;
  using core_type =
      detail::channel_core<detail::array_engine<T, detail::inline_slots<T, Capacity>>>;
  core_type& core_ref() noexcept { return core_; }

  core_type core_;
};

}  // namespace sluice
