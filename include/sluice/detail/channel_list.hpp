// The unbounded flavour's engine: a linked list of blocks of slots, after
// crossbeam-channel's list flavour (itself after Vyukov's and the
// Michael-Scott queues), with blocks recycled through a small per-channel
// cache so that steady state does not allocate.
//
// Positions. head_.index and tail_.index count positions in steps of
// 2 (`step`), leaving bit 0 as a flag:
//   in tail_.index  closed
//   in head_.index  "a later block exists": receivers may skip reading tail_
// Position p lives in block number p / lap at offset p % lap. Offsets
// 0 .. block_cap-1 are slots; offset block_cap (the last of each lap) is a
// gap that marks "the next block is being installed": whoever sees it waits.
//
// Send: claim tail_.index with a compare-exchange; the sender that claims the
// last slot of a block installs the next block (taken from the cache or
// allocated beforehand, outside the claim) and moves tail_ past the gap; then
// it writes the value and sets the slot's `written` bit.
// Receive: claim head_.index (after checking against tail_.index that the
// position is not beyond the last send); the receiver of a block's last slot
// moves head_ to the next block; then wait for `written`, move the value out,
// set `read`.
// Freeing a block: it may go only when every slot is read. The reader of the
// last slot starts at slot 0 and walks forward; at a slot not yet read it sets
// `destroy` and stops, and that slot's reader, finding `destroy`, carries on
// from the next slot. Whoever reaches the end retires the block. A block's
// last slot is written after the sender installed the next block, so no
// sender touches a block once it is retired.
//
// Slot state bits:
//   bit  name     set by                        meaning
//   0    written  push, after constructing      the value is there
//   1    read     pop, after moving it out      the slot is done
//   2    destroy  destroy_from, on an unread    that slot's reader frees on
//                 slot                          (continues the walk)
// Initial: 0, also after recycling (reset() by the retiring thread).
//
// Wrapping: indices are std::size_t and wrap modulo 2^N. The position count
// wraps modulo 2^(N-1), which lap (a power of two) divides, so offsets and
// block boundaries are the same on both sides of the wrap; positions are only
// compared for equality (block numbers too). Two block numbers could only
// alias if tail_ were 2^(N-1) / lap blocks ahead of head_, more blocks than
// memory holds. A thread stalled between its load and its compare-exchange
// while 2^(N-1) positions pass could succeed on a stale block pointer (the
// usual ABA bound); nothing shorter can confuse it.
//
// Memory order summary:
//   [L1] installing a block: release stores of tail_.block, tail_.index and
//        block.next -> acquire loads of them: the block is initialised
//   [L2] written: the sender's release fetch_or -> the receiver's acquire
//        load: the value is visible
//   [L3] read / destroy: acq_rel fetch_or on the slot state: every use of
//        the block happens before whoever retires it
//   [L4] the spare cache: release exchange when retiring -> acquire exchange
//        when taking: the reset block is visible
//   [A3]/[C1] head_/tail_ index compare-exchanges are seq_cst (the waiting
//        layer relies on it; see channel_ops.hpp)
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

#include <sluice/detail/atomic.hpp>
#include <sluice/detail/backoff.hpp>
#include <sluice/detail/channel_common.hpp>

namespace sluice::detail {

template <class T>
class list_engine {
 public:
  using value_type = T;

  // Positions per block (a power of two) and slots per block (one less).
  static constexpr std::size_t lap = 64;
  static constexpr std::size_t block_cap = lap - 1;
  static_assert((lap & (lap - 1)) == 0, "lap must be a power of two (see Wrapping)");

  list_engine() {
    block* first = new block;
    // Relaxed: the engine is not shared yet; handing it out publishes it.
    head_.segment.store(first, std::memory_order_relaxed);
    tail_.segment.store(first, std::memory_order_relaxed);
  }
  list_engine(const list_engine&) = delete;
  list_engine& operator=(const list_engine&) = delete;

  // Destroys the values still inside and frees every block.
  // Requires: no other thread uses it.
  ~list_engine() {
    // Relaxed throughout: we are the only thread left.
    std::size_t head = head_.index.load(std::memory_order_relaxed) & ~flag;
    const std::size_t tail = tail_.index.load(std::memory_order_relaxed) & ~flag;
    block* current = head_.segment.load(std::memory_order_relaxed);
    while (head != tail) {
      const std::size_t offset = (head / step) % lap;
      if (offset < block_cap) {
        current->slots[offset].value.destroy();
      } else {
        block* next = current->next.load(std::memory_order_relaxed);
        delete current;
        current = next;
      }
      head += step;
    }
    delete current;
    for (atomic<block*>& spare : spares_)
      delete spare.load(std::memory_order_relaxed);
  }

  [[nodiscard]] op_status push(T& value) noexcept {
    backoff wait;
    // Acquire [L1]: a block installed before this index is visible.
    std::size_t tail = tail_.index.load(std::memory_order_acquire);
    block* current = tail_.segment.load(std::memory_order_acquire);
    block* next_block = nullptr;
    op_status result = op_status::closed;
    for (;;) {
      if ((tail & flag) != 0) break;  // closed
      const std::size_t offset = (tail / step) % lap;
      if (offset == block_cap) {
        // Another sender is installing the next block.
        wait.snooze();
        tail = tail_.index.load(std::memory_order_acquire);
        current = tail_.segment.load(std::memory_order_acquire);
        continue;
      }
      // About to take a block's last slot: have the next block ready before
      // claiming, so the install after the claim is short.
      if (offset + 1 == block_cap && next_block == nullptr) next_block = take_block();
      // seq_cst [A3]/[C1]: claims position `tail`. Failure acquire [L1]: we
      // reload the block for the new index.
      if (tail_.index.compare_exchange_weak(tail, tail + step, std::memory_order_seq_cst,
                                            std::memory_order_acquire)) {
        if (offset + 1 == block_cap) {
          // Release [L1]: publishes the (reset) next block.
          tail_.segment.store(next_block, std::memory_order_release);
          tail_.index.fetch_add(step, std::memory_order_release);  // past the gap
          current->next.store(next_block, std::memory_order_release);
          next_block = nullptr;
        }
        slot& s = current->slots[offset];
        s.value.construct(static_cast<T&&>(value));
        // Release [L2]: publishes the value to its receiver.
        s.state.fetch_or(written, std::memory_order_release);
        result = op_status::ok;
        break;
      }
      current = tail_.segment.load(std::memory_order_acquire);
      wait.spin();
    }
    if (next_block != nullptr) retire(next_block);  // lost the race for the last slot
    return result;
  }

  [[nodiscard]] op_status pop(raw_storage<T>& out) noexcept {
    backoff wait;
    // Acquire [L1]: the block for this index is visible.
    std::size_t head = head_.index.load(std::memory_order_acquire);
    block* current = head_.segment.load(std::memory_order_acquire);
    for (;;) {
      const std::size_t offset = (head / step) % lap;
      if (offset == block_cap) {
        // Another receiver is moving head_ to the next block.
        wait.snooze();
        head = head_.index.load(std::memory_order_acquire);
        current = head_.segment.load(std::memory_order_acquire);
        continue;
      }
      std::size_t new_head = head + step;
      if ((head & flag) == 0) {
        // Relaxed: tells empty from not-empty; the value comes through [L2].
        const std::size_t tail = tail_.index.load(std::memory_order_relaxed);
        if (head / step == tail / step) {
          return (tail & flag) != 0 ? op_status::closed : op_status::would_block;
        }
        // tail_ is in a later block: this block is full, so readers may stop
        // checking tail_ until the next block.
        if ((head / step) / lap != (tail / step) / lap) new_head |= flag;
      }
      // seq_cst [A3]/[C1]: claims position `head`. Failure acquire [L1].
      if (head_.index.compare_exchange_weak(head, new_head, std::memory_order_seq_cst,
                                            std::memory_order_acquire)) {
        if (offset + 1 == block_cap) {
          block* next = wait_next(*current);
          std::size_t next_index = (new_head & ~flag) + step;  // past the gap
          // Acquire [L1]: is the block after `next` installed already?
          if (next->next.load(std::memory_order_acquire) != nullptr) next_index |= flag;
          // Release [L1]: receivers loading the new index see `next`.
          head_.segment.store(next, std::memory_order_release);
          head_.index.store(next_index, std::memory_order_release);
        }
        slot& s = current->slots[offset];
        wait_written(s);
        out.construct(static_cast<T&&>(s.value.get()));
        s.value.destroy();
        if (offset + 1 == block_cap) {
          destroy_from(*current, 0);
        } else if ((s.state.fetch_or(read, std::memory_order_acq_rel) & destroy) != 0) {  // [L3]
          destroy_from(*current, offset + 1);
        }
        return op_status::ok;
      }
      current = head_.segment.load(std::memory_order_acquire);
      wait.spin();
    }
  }

  bool close() noexcept {
    // acq_rel: one more modification of tail_.index, ordered with the
    // senders' claims.
    return (tail_.index.fetch_or(flag, std::memory_order_acq_rel) & flag) == 0;
  }

  [[nodiscard]] bool is_closed() const noexcept {
    // Acquire: pairs with close(); an observer.
    return (tail_.index.load(std::memory_order_acquire) & flag) != 0;
  }

  // May be stale by the time it returns.
  [[nodiscard]] std::size_t approx_size() const noexcept {
    // Relaxed: an observer; not a consistent snapshot.
    const std::size_t tail = tail_.index.load(std::memory_order_relaxed) / step;
    const std::size_t head = head_.index.load(std::memory_order_relaxed) / step;
    // Positions count modulo 2^(N-1) (see Wrapping).
    constexpr std::size_t mask = std::numeric_limits<std::size_t>::max() / step;
    const std::size_t positions = (tail - head) & mask;
    // Gaps in [head, tail): one per block boundary crossed.
    const std::size_t gaps = (tail / lap - head / lap) & (mask / lap);
    const std::size_t n = positions - gaps;
    return n > positions ? 0 : n;  // a torn snapshot can make it negative
  }

  // An unbounded channel has no capacity limit: the largest std::size_t.
  [[nodiscard]] static constexpr std::size_t capacity() noexcept {
    return std::numeric_limits<std::size_t>::max();
  }

 private:
  static constexpr std::size_t step = 2;
  static constexpr std::size_t flag = 1;
  static constexpr std::uint32_t written = 1u << 0;
  static constexpr std::uint32_t read = 1u << 1;
  static constexpr std::uint32_t destroy = 1u << 2;
  static constexpr std::size_t spare_count = 4;

  struct slot {
    atomic<std::uint32_t> state{0};
    raw_storage<T> value;
  };

  struct block {
    atomic<block*> next{nullptr};
    slot slots[block_cap];

    // Requires: the caller owns the block.
    void reset() noexcept {
      // Relaxed: published by the release exchange in retire() [L4].
      next.store(nullptr, std::memory_order_relaxed);
      for (slot& s : slots)
        s.state.store(0, std::memory_order_relaxed);
    }
  };

  struct position {
    atomic<std::size_t> index{0};
    atomic<block*> segment{nullptr};
  };

  static block* wait_next(block& b) noexcept {
    backoff wait;
    for (;;) {
      // Acquire [L1]: pairs with the installer's release store.
      if (block* next = b.next.load(std::memory_order_acquire)) return next;
      wait.snooze();
    }
  }

  static void wait_written(slot& s) noexcept {
    backoff wait;
    // Acquire [L2]: pairs with the sender's release fetch_or.
    while ((s.state.load(std::memory_order_acquire) & written) == 0)
      wait.snooze();
  }

  // Frees `b` once slots start .. block_cap-2 are read (the last slot's
  // reader calls this with start 0 after reading its own).
  void destroy_from(block& b, std::size_t start) noexcept {
    for (std::size_t i = start; i + 1 < block_cap; ++i) {
      slot& s = b.slots[i];
      // acq_rel [L3]: a reader still busy with slot i will see `destroy`
      // and continue from i + 1; one already done made its use visible.
      if ((s.state.load(std::memory_order_acquire) & read) == 0 &&
          (s.state.fetch_or(destroy, std::memory_order_acq_rel) & read) == 0) {
        return;
      }
    }
    retire(&b);
  }

  block* take_block() {
    for (atomic<block*>& spare : spares_) {
      // Acquire [L4]: the block's reset is visible. An exchange has no ABA.
      if (block* b = spare.exchange(nullptr, std::memory_order_acquire)) return b;
    }
    return new block;
  }

  void retire(block* b) noexcept {
    b->reset();
    for (atomic<block*>& spare : spares_) {
      // acq_rel [L4]: release publishes the reset; acquire takes ownership
      // of whatever block we swap out, which we then try to place further on.
      b = spare.exchange(b, std::memory_order_acq_rel);
      if (b == nullptr) return;
    }
    delete b;  // the cache is full
  }

  // Written by receivers.
  alignas(contention_spacing) position head_;
  // Written by senders (and close).
  alignas(contention_spacing) position tail_;
  // Touched once per block.
  alignas(contention_spacing) atomic<block*> spares_[spare_count] = {};
};

}  // namespace sluice::detail
