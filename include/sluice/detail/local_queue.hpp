// local_queue: an executor worker's own FIFO of runnable tasks (executor.hpp,
// "Worker queue"). Bounded, lock-free, one producer (the owning worker) and
// any number of consumers (the owner, and other workers stealing):
//
//   push   owner only: writes slot tail % Capacity, then publishes tail + 1;
//          refuses when Capacity items are queued (the caller puts the item
//          elsewhere)
//   pop    anyone: reads the slot at head, then claims it by moving head
//          from h to h + 1 with a compare-and-swap; the oldest item first
//
// Positions are free-running std::size_t counters; a slot is rewritten only
// a whole lap after it was claimed, so a consumer whose compare-and-swap
// succeeds read the item of its own lap: head was h from its read to its
// compare-and-swap (head only grows), and the owner writes position
// h + Capacity only once head has passed h.
//
//   [L1] a consumer's read of a slot, then its release compare-and-swap of
//        head -> the owner's acquire load of head before it rewrites the
//        slot a lap later: the read happens before the rewrite
//   [L2] the owner's write of a slot, then its release store of tail ->
//        a consumer's acquire load of tail: the item is visible
//   [L3] a consumer's acquire load (or failed compare-and-swap) of head
//        -> pairs with the release compare-and-swap that wrote it: the
//        tail that consumer read happens before ours, so ours is no older
//        (read-read coherence) and head <= tail holds for us too
//   [L4] push publishes tail with a seq_cst read-modify-write: a waiter
//        whose re-check reads tail (any pop does) and an owner that
//        notifies after its push pair as waiter_list's [W1'] says
//
// Slots are atomics (relaxed) because a consumer that loses its
// compare-and-swap may read a slot while the owner rewrites it; the value
// it read is then dropped.
#pragma once

#include <cstddef>

#include <sluice/detail/atomic.hpp>
#include <sluice/detail/config.hpp>

namespace sluice::detail {

template <class T, std::size_t Capacity>
class local_queue {
  static_assert(Capacity >= 2 && (Capacity & (Capacity - 1)) == 0,
                "local_queue capacity must be a power of two");

 public:
  local_queue() noexcept = default;
  local_queue(const local_queue&) = delete;
  local_queue& operator=(const local_queue&) = delete;

  // Owner only. False (and nothing queued) when full.
  [[nodiscard]] bool push(T* item) noexcept {
    // Relaxed: only the owner writes tail_.
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    // Acquire [L1]: whoever claimed the slot a lap ago has read it.
    if (tail - head_.load(std::memory_order_acquire) >= Capacity) return false;
    // Relaxed: published by the release store of tail_ [L2].
    slots_[tail % Capacity].store(item, std::memory_order_relaxed);
    // Release [L2]: the item, to whoever pops it. seq_cst [L4]: an
    // exchange, so that the caller's notify after it can be a seq_cst load
    // instead of a fence (waiter_list.hpp, [W1']).
    (void)tail_.exchange(tail + 1, std::memory_order_seq_cst);
    return true;
  }

  // Anyone. The oldest item, or null when empty.
  [[nodiscard]] T* pop() noexcept {
    // Acquire [L3]: see below.
    std::size_t head = head_.load(std::memory_order_acquire);
    for (;;) {
      // Acquire [L2]: the items below tail are visible. head <= tail here
      // [L3]: whoever moved head to its value had read a tail at least that
      // far, and that read happens before this one.
      if (head == tail_.load(std::memory_order_acquire)) return nullptr;
      // Relaxed: valid if the compare-and-swap below succeeds (see above).
      T* const item = slots_[head % Capacity].load(std::memory_order_relaxed);
      // Release [L1]: our read comes before the owner's rewrite a lap
      // later; acquire [L3] on success and failure: the head we read next
      // time is as far as its writer's read of tail.
      if (head_.compare_exchange_weak(head, head + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
        return item;
    }
  }

  // May be stale; exact when no other thread uses the queue.
  [[nodiscard]] bool approx_empty() const noexcept {
    // Relaxed: an observer.
    return head_.load(std::memory_order_relaxed) == tail_.load(std::memory_order_relaxed);
  }

 private:
  // head_ is written by every consumer, tail_ only by the owner.
  alignas(cache_line) atomic<std::size_t> head_{0};
  alignas(cache_line) atomic<std::size_t> tail_{0};
  atomic<T*> slots_[Capacity] = {};
};

}  // namespace sluice::detail
