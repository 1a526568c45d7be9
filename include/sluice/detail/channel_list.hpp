// The unbounded flavour's engine: a linked list of blocks of slots, after
// crossbeam-channel's list flavour (itself after Vyukov's and the
// Michael-Scott queues), with blocks recycled through a per-channel pool so
// that steady state does not allocate.
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
// last slot of a block installs the next block (taken from the pool, or
// allocated beforehand, outside the claim, when the pool looked empty) and
// moves tail_ past the gap; then it writes the value and sets the slot's
// `written` bit.
// Receive: claim head_.index (after checking that the position is not beyond
// the last send); the receiver of a block's last slot moves head_ to the next
// block; then wait for `written`, move the value out, set the slot's read
// mark.
//
// Cache lines, and who writes them (a receive that finds the channel empty
// writes nothing and reads one line that senders write: tail_):
//   tail_               senders' claims; read by receivers only when
//                       head_.tail_seen does not show a value ahead of them
//   head_               receivers' claims and tail_seen (the last tail_.index
//                       a receiver read that showed values): while it shows
//                       values ahead, receivers leave tail_ alone, so a sender
//                       keeps tail_'s line while receivers drain behind it
//   a block's slots     its senders (value, `written`); receivers only read
//   a block's read marks  its receivers; senders never touch them (a sender
//                       writing slot k+1 would otherwise fight the receiver
//                       marking slot k read on the same line)
// Freeing a block: it may go only when every slot is read. The receiver of
// the block's last slot, after reading its own, looks at the other slots:
// if all are read it retires the block to the pool; if some receiver
// is still reading, it pushes the block on the `deferred_` stack instead and
// moves on. Every later receiver of a block's last slot takes the whole
// stack, retires the blocks that are now fully read and pushes back the
// rest; the destructor frees what is left. So no receiver waits for another
// to free a block, and freeing costs no read-modify-write per receive (one
// per block, on the stack, and only when a block had to wait). A block's last
// slot is written after its sender installed the next block, so no sender
// touches a block once it is retired.
//
// The pool: a stack of retired blocks, pushed by whoever retires one and popped
// only by the installing sender, who is one thread at a time (while it
// installs, tail_ sits on the gap and every other sender waits). One popper
// makes the stack free of ABA: the top it read cannot leave the stack, nor
// its link change, before its own compare-exchange. It keeps up to about
// pool_bytes of blocks (the peak a backlog needed, within that bound); more
// are freed. A sender that runs ahead of its receivers by many blocks, as a
// descheduled receiver makes it, then reuses them instead of freeing and
// allocating a block every lap (measured on x86-64, 1P1C: with a 4-block
// cache most of the time went to the allocator).
//
// Slot state and read mark (each written once by one thread, so plain stores
// suffice: no read-modify-write per slot):
//   word       value  name     stored by                  meaning
//   state      0      empty    reset (recycling)          not written yet
//   state      1      written  push, after constructing   the value is there
//   read_mark  0      unread   reset (recycling)          a receiver may still use it
//   read_mark  1      read     pop, after moving it out   the slot is done
// Initial: both 0, also after recycling (reset() by the retiring thread).
//
// Trade (the same as the bounded flavour's): a receiver that claimed a slot
// whose sender has not finished writing waits for it. That makes `empty`
// exact, and keeps a send to one compare-exchange and one store and a
// receive to one compare-exchange and one store. (crossbeam frees through a
// read-modify-write on every slot; measured on x86-64, a per-receive RMW
// adds 6-8 ns to a 20 ns send+receive pair.)
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
//   [L2] written: the sender's release store -> the receiver's acquire
//        load: the value is visible
//   [L3] read mark: each receiver's release store -> the acquire load of the
//        block's last receiver: every use of the block happens before it is
//        retired
//   [L6] head_.tail_seen: a hint that only ever holds a value tail_.index
//        had. Tail only grows, so a value ahead of head means a sender has
//        claimed head's position: the same fact the relaxed tail_ load would
//        give (the value itself comes through [L2]). Empty is only ever
//        concluded from tail_ itself, so [C1] holds. Release store ->
//        acquire load: the tail_ read behind the hint happens before the
//        claim that used it, and through that claim's compare-and-swap
//        before every later receiver's read of tail_, which can then not
//        return an older tail_ (one behind head: a claim past tail_).
//   [L5] the deferred stack: release compare-exchange when pushing ->
//        acquire exchange when taking it all: the pushed blocks' links are
//        visible (pushes are read-modify-writes, so one release sequence).
//        Push-only plus take-all has no ABA.
//   [L4] the pool: release compare-exchange when pushing -> acquire load or
//        compare-exchange when popping: the reset block and its link are
//        visible (pushes are read-modify-writes, so one release sequence)
//   [A3]/[C1] head_/tail_ index compare-exchanges are seq_cst (the waiting
//        layer relies on it; see channel_ops.hpp)
//   [L7] close()'s release fetch_or of the flag -> the acquire that
//        closed_seen() adds to pop's relaxed look at tail_.index before it
//        returns closed: what the closing thread did before close()
//        happens before a receive's `closed` (as Go's channels promise).
//        (push's loads are acquire [L1], so a send's `closed` is ordered
//        too, but only the receive's is promised, as for the bounded
//        flavour.)
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
    static_assert(alignof(list_engine) >= contention_spacing,
                  "head_ and tail_ must sit on their own cache lines");
    static_assert(
        sizeof(position) <= contention_spacing && sizeof(receive_position) <= contention_spacing,
        "a position must fit in the space that separates head_ from tail_");
    // Relaxed throughout: we are the only thread left.
    std::size_t head = head_.index.load(std::memory_order_relaxed) & ~flag;
    const std::size_t tail = tail_.index.load(std::memory_order_relaxed) & ~flag;
    block* current = head_.segment.load(std::memory_order_relaxed);
    while (head != tail) {
      const std::size_t offset = (head / step) % lap;
      if (offset < block_cap) {
        current->slots[offset].value.destroy();
      } else {
        // Relaxed: the only thread left (see above).
        block* next = current->next.load(std::memory_order_relaxed);
        delete current;
        current = next;
      }
      head += step;
    }
    delete current;
    // Relaxed, both: the only thread left; every retire and defer happened
    // before the last handle let go of the channel.
    for (block* b = pool_.load(std::memory_order_relaxed); b != nullptr;) {
      block* next = b->pool_next;
      delete b;
      b = next;
    }
    for (block* b = deferred_.load(std::memory_order_relaxed); b != nullptr;) {
      block* next = b->deferred_next;
      delete b;
      b = next;
    }
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
        // Acquire, both [L1]: as the first reads, for the block installed
        // meanwhile.
        tail = tail_.index.load(std::memory_order_acquire);
        current = tail_.segment.load(std::memory_order_acquire);
        continue;
      }
      // About to take a block's last slot: have the next block ready before
      // claiming, so the install after the claim is short.
      // Relaxed: only a guess; after the claim the pool is popped for real.
      if (offset + 1 == block_cap && next_block == nullptr &&
          pool_.load(std::memory_order_relaxed) == nullptr)
        next_block = new block;
      // seq_cst [A3]/[C1]: claims position `tail`. Failure acquire [L1]: we
      // reload the block for the new index.
      if (tail_.index.compare_exchange_weak(tail, tail + step, std::memory_order_seq_cst,
                                            std::memory_order_acquire)) {
        if (offset + 1 == block_cap) {
          // We are the installer: the one thread that may pop the pool now.
          if (next_block == nullptr) next_block = take_pooled();
          // Release [L1]: publishes the (reset) next block.
          tail_.segment.store(next_block, std::memory_order_release);
          tail_.index.fetch_add(step, std::memory_order_release);  // past the gap
          current->next.store(next_block, std::memory_order_release);
          next_block = nullptr;
        }
        slot& s = current->slots[offset];
        s.value.construct(static_cast<T&&>(value));
        // Release [L2]: publishes the value to its receiver.
        s.state.store(written, std::memory_order_release);
        result = op_status::ok;
        break;
      }
      // Acquire [L1]: the failed CAS reloaded `tail` with acquire; this
      // pairs with the installer's release store of tail_.segment, so the
      // block is the index's or a later one (and then the CAS fails: the
      // index has moved on).
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
        // Acquire, both [L1]: as the first reads, for the block head_
        // moved to meanwhile.
        head = head_.index.load(std::memory_order_acquire);
        current = head_.segment.load(std::memory_order_acquire);
        continue;
      }
      std::size_t new_head = head + step;
      if ((head & flag) == 0) {
        // Acquire [L6]: a tail_ value seen before; if it is ahead of head,
        // tail_ need not be read (its line stays with the senders).
        // Only with 64-bit positions: with 32 bits, a receiver preempted
        // between its read of tail_ and this store while the others take
        // 2^30 positions could leave a value that looks ahead again after
        // the wrap, and the receivers would claim past tail_. 2^62
        // positions do not wrap in any run.
        std::size_t tail = tail_seen_usable ? head_.tail_seen.load(std::memory_order_acquire) : 0;
        if (!tail_seen_usable || !is_ahead(tail, head)) {
          // Relaxed: tells empty from not-empty; the value comes through [L2].
          tail = tail_.index.load(std::memory_order_relaxed);
          if (head / step == tail / step) {
            return (tail & flag) != 0 ? closed_seen() : op_status::would_block;
          }
          // Release [L6]: a hint for the receivers after us.
          if (tail_seen_usable) head_.tail_seen.store(tail, std::memory_order_release);
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
          release_block(current);
        } else {
          // Release [L3]: our use of the block is over.
          current->read_marks[offset].store(1, std::memory_order_release);
        }
        return op_status::ok;
      }
      // Acquire [L1]: as in push; pairs with the release store of
      // head_.segment by the receiver that moved head_ to a new block.
      current = head_.segment.load(std::memory_order_acquire);
      wait.spin();
    }
  }

  bool close() noexcept {
    // acq_rel: one more modification of tail_.index, ordered with the
    // senders' claims. Release [L7]: pairs with closed_seen().
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
  static constexpr std::uint32_t written = 1;

  // pop's relaxed load of tail_.index showed the flag. Acquire [L7]: the
  // flag is never cleared and tail_.index changes only by
  // read-modify-writes after it (senders' claims fail on it), so that load
  // read close()'s fetch_or or its release sequence.
  [[nodiscard]] op_status closed_seen() const noexcept {
    acquire_after_load(tail_.index);
    return op_status::closed;
  }
  // The most the pool keeps, in bytes (at least 16 blocks).
  static constexpr std::size_t pool_bytes = std::size_t{1} << 22;

  struct slot {
    atomic<std::uint32_t> state{0};
    raw_storage<T> value;
  };

  struct block {
    atomic<block*> next{nullptr};
    // Link in deferred_; owned by whoever holds the block (see [L5]).
    block* deferred_next = nullptr;
    // Link in pool_; written before the push that publishes it [L4].
    block* pool_next = nullptr;
    slot slots[block_cap];
    // Written by receivers only, on a line of their own (see Cache lines).
    alignas(cache_line) atomic<std::uint8_t> read_marks[block_cap] = {};

    // Requires: the caller owns the block.
    void reset() noexcept {
      // Relaxed, all: published by the release push in retire() [L4].
      next.store(nullptr, std::memory_order_relaxed);
      for (slot& s : slots)
        s.state.store(0, std::memory_order_relaxed);
      for (atomic<std::uint8_t>& mark : read_marks)
        mark.store(0, std::memory_order_relaxed);
    }
  };

  static constexpr std::size_t pool_limit = pool_bytes / sizeof(block) > 16
                                                ? pool_bytes / sizeof(block)
                                                : 16;

  struct position {
    atomic<std::size_t> index{0};
    atomic<block*> segment{nullptr};
  };

  struct receive_position {
    atomic<std::size_t> index{0};
    atomic<block*> segment{nullptr};
    // [L6]: the last tail_.index a receiver read that showed values.
    atomic<std::size_t> tail_seen{0};
  };

  static constexpr bool tail_seen_usable = sizeof(std::size_t) >= 8;

  // True when position `tail` is after position `head` (flags ignored).
  // Positions count modulo 2^(N-1) (see Wrapping); a stale `tail` is at most
  // as far behind `head` as the receivers have moved since it was seen, far
  // less than half the range.
  static bool is_ahead(std::size_t tail, std::size_t head) noexcept {
    constexpr std::size_t mask = std::numeric_limits<std::size_t>::max() / step;
    const std::size_t distance = (tail / step - head / step) & mask;
    return distance != 0 && distance <= mask / 2;
  }

  static block* wait_next(block& b) noexcept {
    backoff wait;
    for (;;) {
      // Acquire [L1]: pairs with the installer's release store.
      if (block* next = b.next.load(std::memory_order_acquire)) return next;
      wait.wait();
    }
  }

  static void wait_written(slot& s) noexcept {
    backoff wait;
    // Acquire [L2]: pairs with the sender's release store.
    while (s.state.load(std::memory_order_acquire) == 0)
      wait.wait();
  }

  // True when slots 0 .. block_cap-2 of `b` are read (the last slot is the
  // caller's own).
  static bool all_read(block& b) noexcept {
    for (std::size_t i = 0; i + 1 < block_cap; ++i) {
      // Acquire [L3]: pairs with the release store of the read mark in pop:
      // that receiver's use of the block happens before we retire it.
      if (b.read_marks[i].load(std::memory_order_acquire) == 0) return false;
    }
    return true;
  }

  // Called by the receiver of `b`'s last slot once it has read it.
  void release_block(block* b) noexcept {
    // Acquire [L5]: take every deferred block with its link.
    block* pending = deferred_.exchange(nullptr, std::memory_order_acquire);
    retire_or_defer(b);
    while (pending != nullptr) {
      block* next = pending->deferred_next;
      retire_or_defer(pending);
      pending = next;
    }
  }

  void retire_or_defer(block* b) noexcept {
    if (all_read(*b)) {
      retire(b);
      return;
    }
    // Relaxed: only a first guess; the compare-exchange checks it.
    block* top = deferred_.load(std::memory_order_relaxed);
    do {
      b->deferred_next = top;
      // Release [L5]: publishes deferred_next to whoever takes the stack.
    } while (!deferred_.compare_exchange_weak(top, b, std::memory_order_release,
                                              std::memory_order_relaxed));
  }

  // Requires: the caller is installing a block (tail_ is on the gap), so
  // no other thread pops the pool (see The pool).
  block* take_pooled() {
    // Acquire [L4]: the top block's reset and link are visible.
    block* top = pool_.load(std::memory_order_acquire);
    // Success acquire [L4]: as above, for the top we take; failure acquire:
    // a new top pushed meanwhile, with its link.
    while (top != nullptr &&
           !pool_.compare_exchange_weak(top, top->pool_next, std::memory_order_acquire,
                                        std::memory_order_acquire)) {
    }
    if (top == nullptr) return new block;  // emptied since the look before the claim
    // Relaxed: a count for the bound only; the stack itself is exact.
    pooled_.fetch_sub(1, std::memory_order_relaxed);
    return top;
  }

  void retire(block* b) noexcept {
    // Relaxed, both: the bound is approximate (concurrent retirers may pass
    // it by one block each); ownership goes through pool_ [L4].
    if (pooled_.load(std::memory_order_relaxed) >= pool_limit) {
      delete b;
      return;
    }
    pooled_.fetch_add(1, std::memory_order_relaxed);
    b->reset();
    // Relaxed: only a first guess; the compare-exchange checks it.
    block* top = pool_.load(std::memory_order_relaxed);
    do {
      b->pool_next = top;
      // Release [L4]: publishes the reset and pool_next to the popper.
    } while (
        !pool_.compare_exchange_weak(top, b, std::memory_order_release, std::memory_order_relaxed));
  }

  // Written by receivers.
  alignas(contention_spacing) receive_position head_;
  // Written by senders (and close).
  alignas(contention_spacing) position tail_;
  // Touched once per block: the pool (see The pool) and its size.
  alignas(contention_spacing) atomic<block*> pool_{nullptr};
  atomic<std::size_t> pooled_{0};
  // Blocks whose receivers had not all finished when the block was done.
  atomic<block*> deferred_{nullptr};
};

}  // namespace sluice::detail
