// The bounded flavour's engine: a ring of slots with per-slot sequence
// stamps, after Dmitry Vyukov's bounded MPMC queue ("Bounded MPMC queue",
// 1024cores.net), with the lap encoding of crossbeam-channel's array flavour
// so that any capacity >= 1 is exact (not rounded to a power of two).
//
// Positions. head_ and tail_ are words {lap | mark | index}:
//   index  bits below mark_bit: the slot, 0 .. capacity-1
//   mark   mark_bit = bit_ceil(capacity + 1): in tail_, "closed"; never set
//          in head_
//   lap    the bits from one_lap = 2 * mark_bit up: counts trips round the ring
// Advancing a position: index + 1 while below capacity, else {lap + one_lap,
// index 0}. A slot's stamp says what the slot waits for:
//   stamp == tail         empty, waiting for the sender at position `tail`
//   stamp == pos + 1      holds the value sent at position `pos`, waiting for
//                         the receiver at `pos`
//   stamp == pos + one_lap  read at `pos`; waiting for the next lap's sender
// Initially slot i has stamp i (lap 0, empty). Slots store stamp - i, so the
// initial state is all zeros and a static engine lives in .bss.
//
// Wrapping: positions are std::size_t and wrap modulo 2^N. one_lap is a power
// of two that divides 2^N, so lap arithmetic stays consistent across the wrap,
// and the algorithm only compares positions for equality. The one hazard is
// Vyukov's: a thread stalled between loading a position and its
// compare-exchange while the position goes all the way round (2^N / one_lap
// laps: 2^20 laps of a 1024-slot ring even on a 32-bit core) could succeed on
// a stale slot; nothing smaller than that can confuse it.
//
// Never spurious. try_push reports full only when head is exactly one lap
// behind tail, and try_pop reports empty only when head == tail; when a slot
// is claimed but its value not yet written (or read), the caller waits for
// the other thread with detail::backoff instead of failing. The trade: a
// thread preempted between its claim and its stamp store holds up the next
// operation on that slot (the queue is lock-free in the common case, not
// strictly), which is what makes "full" and "empty" exact. It also means a
// signal or interrupt handler must not use a channel that the code it
// interrupted may be using (see channel.hpp).
//
// Memory order summary:
//   [A1] the receiver's release store of stamp pos + one_lap (value moved out)
//        -> the next lap's sender's acquire load of the stamp: the slot is free
//   [A2] the sender's release store of stamp pos + 1 (value constructed)
//        -> the receiver's acquire load: the value is visible
//   [A3] head_ / tail_ compare-exchange are seq_cst: the channel's waiting
//        layer relies on them (see channel_ops.hpp, [C1]).
//   [A4] close()'s release fetch_or of the mark -> the acquire that
//        closed_seen() adds to pop's relaxed look at tail_ before it
//        returns closed: what the closing thread did before close()
//        happens before a receive's `closed` (as Go's channels promise).
//        A send's `closed` promises nothing of the kind (push's loads are
//        relaxed, the hot path's).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <type_traits>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/atomic.hpp>
#include <sluice/detail/backoff.hpp>
#include <sluice/detail/channel_common.hpp>
#include <sluice/detail/config.hpp>

namespace sluice::detail {

// One slot on its own cache line: a sender filling slot i+1 does not steal
// the line a receiver is reading slot i from.
template <class T>
struct alignas(cache_line) array_slot {
  // Stamp minus the slot's index (see the file comment): 0 initially.
  atomic<std::size_t> relative_stamp{0};
  raw_storage<T> value;

  constexpr array_slot() noexcept = default;

  [[nodiscard]] std::size_t load_stamp(std::size_t index) const noexcept {
    // Acquire [A1]/[A2]: pairs with store_stamp's release; see the callers.
    return relative_stamp.load(std::memory_order_acquire) + index;
  }
  void store_stamp(std::size_t index, std::size_t stamp) noexcept {
    // Release [A1]/[A2]: publishes the value written or the slot emptied.
    relative_stamp.store(stamp - index, std::memory_order_release);
  }
};

// Lap constants of a ring of `capacity` slots.
struct ring_geometry {
  std::size_t capacity;
  std::size_t mark_bit;
  std::size_t one_lap;

  static constexpr ring_geometry of(std::size_t capacity) noexcept {
    const std::size_t mark = std::bit_ceil(capacity + 1);
    return ring_geometry{capacity, mark, 2 * mark};
  }

  // The position after `pos` (see the file comment). A member of the
  // geometry rather than of array_engine, so that every engine shares one
  // copy of it where it is not inlined (-Os).
  [[nodiscard]] constexpr std::size_t advance(std::size_t pos) const noexcept {
    const std::size_t index = pos & (mark_bit - 1);
    return index + 1 < capacity ? pos + 1 : (pos & ~(one_lap - 1)) + one_lap;
  }
};

// Slots in storage the caller owns, capacity chosen at run time: no heap
// (the executor's run queue on bare metal).
template <class T>
class span_slots {
 public:
  // Requires: `storage` holds `capacity` default-constructed slots, outlives
  // the engine, and nothing else uses it.
  span_slots(array_slot<T>* storage, std::size_t capacity) noexcept
      : geometry_(ring_geometry::of(capacity)), slots_(storage) {
    SLUICE_ASSERT(storage != nullptr, "bounded channel storage is null");
    SLUICE_ASSERT(capacity >= 1, "bounded channel capacity must be at least 1");
    SLUICE_ASSERT(capacity <= std::numeric_limits<std::size_t>::max() / 8,
                  "bounded channel capacity too large for the lap encoding");
  }
  span_slots(const span_slots&) = delete;
  span_slots& operator=(const span_slots&) = delete;

  [[nodiscard]] array_slot<T>& operator[](std::size_t i) noexcept { return slots_[i]; }
  [[nodiscard]] ring_geometry geometry() const noexcept { return geometry_; }

 protected:
  [[nodiscard]] array_slot<T>* data() const noexcept { return slots_; }

 private:
  ring_geometry geometry_;
  array_slot<T>* slots_;
};

// Slots on the heap, capacity chosen at run time (hosted): span_slots over
// an array this owns.
template <class T>
class heap_slots : public span_slots<T> {
 public:
  explicit heap_slots(std::size_t capacity) : span_slots<T>(allocate(capacity), capacity) {}
  ~heap_slots() { delete[] this->data(); }
  heap_slots(const heap_slots&) = delete;
  heap_slots& operator=(const heap_slots&) = delete;

 private:
  // A count whose bytes do not fit in size_t is bad_array_new_length, as
  // new[] itself says with GCC (clang 14 allocates the wrapped size of
  // this over-aligned type and constructs past it).
  static array_slot<T>* allocate(std::size_t capacity) {
    if (capacity > std::numeric_limits<std::size_t>::max() / sizeof(array_slot<T>)) {
#if defined(__cpp_exceptions)
      throw std::bad_array_new_length();
#else
      port::panic("sluice: bounded channel: capacity too large to allocate", __FILE__, __LINE__);
#endif
    }
    return new array_slot<T>[capacity];
  }
};

// Slots inline, capacity fixed at compile time: no heap, constant-initialised.
template <class T, std::size_t Capacity>
class inline_slots {
  static_assert(Capacity >= 1, "a static channel needs a capacity of at least 1");

 public:
  constexpr inline_slots() noexcept = default;
  [[nodiscard]] array_slot<T>& operator[](std::size_t i) noexcept { return slots_[i]; }
  [[nodiscard]] static constexpr ring_geometry geometry() noexcept {
    return ring_geometry::of(Capacity);
  }

 private:
  array_slot<T> slots_[Capacity];
};

template <class T, class Slots>
class array_engine {
 public:
  using value_type = T;

  // Throws what the slots' constructor throws (heap_slots: bad_alloc).
  template <class... Args>
  constexpr explicit array_engine(Args&&... args) noexcept(
      std::is_nothrow_constructible_v<Slots, Args&&...>)
      : slots_(static_cast<Args&&>(args)...) {}
  array_engine(const array_engine&) = delete;
  array_engine& operator=(const array_engine&) = delete;

  // Destroys the values still inside. Requires: no other thread uses it.
  ~array_engine() {
    static_assert(sizeof(array_slot<T>) % cache_line == 0,
                  "array slots must fill whole cache lines (no false sharing between slots)");
    static_assert(alignof(array_engine) >= contention_spacing,
                  "head_ and tail_ must sit on their own cache lines");
    // A T without a destructor leaves nothing to walk (the loop would
    // stay in the code all the same).
    if constexpr (!std::is_trivially_destructible_v<T>) {
      const ring_geometry g = slots_.geometry();
      // Relaxed: we are the only thread left.
      std::size_t head = head_.load(std::memory_order_relaxed);
      const std::size_t tail = tail_.load(std::memory_order_relaxed) & ~g.mark_bit;
      while (head != tail) {
        const std::size_t index = head & (g.mark_bit - 1);
        slots_[index].value.destroy();
        head = g.advance(head);
      }
    }
  }

  // Moves `value` into the channel (leaving it moved-from) and returns ok, or
  // leaves it untouched and returns would_block (full) or closed.
  [[nodiscard]] op_status push(T& value) noexcept {
    const ring_geometry g = slots_.geometry();
    backoff wait;
    // Relaxed: only a guess; the slot's stamp (acquire) and the
    // compare-exchange validate it.
    std::size_t tail = tail_.load(std::memory_order_relaxed);
    for (;;) {
      if ((tail & g.mark_bit) != 0) return op_status::closed;
      const std::size_t index = tail & (g.mark_bit - 1);
      array_slot<T>& slot = slots_[index];
      // Acquire [A1]: the previous lap's receiver has moved its value out.
      const std::size_t stamp = slot.load_stamp(index);
      if (stamp == tail) {
        // seq_cst [A3]/[C1]: claims position `tail`; the notify after this
        // send relies on it being seq_cst. Failure relaxed: retried.
        if (tail_.compare_exchange_weak(tail, g.advance(tail), std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          slot.value.construct(static_cast<T&&>(value));
          // Release [A2]: publishes the value to the receiver at `tail`.
          slot.store_stamp(index, tail + 1);
          return op_status::ok;
        }
        wait.spin();
      } else if (stamp + g.one_lap == tail + 1) {
        // The slot still holds last lap's value. Relaxed: head_ only tells
        // full from "a receiver is mid-read"; no data is consumed through it.
        const std::size_t head = head_.load(std::memory_order_relaxed);
        if (head + g.one_lap == tail) return op_status::would_block;
        wait.snooze();  // a receiver claimed it and is moving the value out
        tail = tail_.load(std::memory_order_relaxed);
      } else {
        wait.snooze();  // another sender took `tail` first, or is writing
        tail = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  // Moves the oldest value into `out` and returns ok, or returns would_block
  // (empty) or closed (empty and closed).
  [[nodiscard]] op_status pop(raw_storage<T>& out) noexcept {
    const ring_geometry g = slots_.geometry();
    backoff wait;
    // Relaxed: a guess validated by the stamp and the compare-exchange.
    std::size_t head = head_.load(std::memory_order_relaxed);
    for (;;) {
      const std::size_t index = head & (g.mark_bit - 1);
      array_slot<T>& slot = slots_[index];
      // Acquire [A2]: the sender's value is visible.
      const std::size_t stamp = slot.load_stamp(index);
      if (stamp == head + 1) {
        // seq_cst [A3]/[C1]: claims position `head`. Failure relaxed: retried.
        if (head_.compare_exchange_weak(head, g.advance(head), std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          T& stored = slot.value.get();
          out.construct(static_cast<T&&>(stored));
          slot.value.destroy();
          // Release [A1]: the slot is free for the next lap's sender.
          slot.store_stamp(index, head + g.one_lap);
          return op_status::ok;
        }
        wait.spin();
      } else if (stamp == head) {
        // Nothing written at `head` yet. Relaxed: tail_ only tells empty
        // from "a sender is mid-write"; the value itself comes through [A2].
        const std::size_t tail = tail_.load(std::memory_order_relaxed);
        if ((tail & ~g.mark_bit) == head)
          return (tail & g.mark_bit) != 0 ? closed_seen() : op_status::would_block;
        wait.snooze();  // a sender claimed `head` and is writing
        head = head_.load(std::memory_order_relaxed);
      } else {
        wait.snooze();  // another receiver took `head` first
        head = head_.load(std::memory_order_relaxed);
      }
    }
  }

  // Marks the channel closed; true if this call did it.
  bool close() noexcept {
    const std::size_t mark = slots_.geometry().mark_bit;
    // acq_rel: the mark is one more modification of tail_, ordered with the
    // senders' claims. Release [A4]: pairs with closed_seen().
    return (tail_.fetch_or(mark, std::memory_order_acq_rel) & mark) == 0;
  }

  [[nodiscard]] bool is_closed() const noexcept {
    // Acquire: pairs with close(); an observer.
    return (tail_.load(std::memory_order_acquire) & slots_.geometry().mark_bit) != 0;
  }

  // May be stale by the time it returns.
  [[nodiscard]] std::size_t approx_size() const noexcept {
    const ring_geometry g = slots_.geometry();
    // Relaxed: an observer; the two loads are not a consistent snapshot.
    const std::size_t tail = tail_.load(std::memory_order_relaxed) & ~g.mark_bit;
    const std::size_t head = head_.load(std::memory_order_relaxed);
    const std::size_t hix = head & (g.mark_bit - 1);
    const std::size_t tix = tail & (g.mark_bit - 1);
    if (hix < tix) return tix - hix;
    if (hix > tix) return g.capacity - hix + tix;
    return tail == head ? 0 : g.capacity;
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return slots_.geometry().capacity; }

 private:
  // pop's relaxed load of tail_ showed the mark. Acquire [A4]: the mark is
  // never cleared and tail_ changes only by read-modify-writes after it,
  // so that load read close()'s fetch_or or its release sequence.
  [[nodiscard]] op_status closed_seen() const noexcept {
    acquire_after_load(tail_);
    return op_status::closed;
  }

  // Written by receivers only.
  alignas(contention_spacing) atomic<std::size_t> head_{0};
  // Written by senders (and close).
  alignas(contention_spacing) atomic<std::size_t> tail_{0};
  // Read-mostly geometry and the slots.
  alignas(contention_spacing) Slots slots_;
};

}  // namespace sluice::detail
