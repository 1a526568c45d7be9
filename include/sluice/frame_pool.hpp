// frame_pool: fixed-size blocks in storage the caller provides, for task
// frames and task headers when there is no heap (bare metal) or it must not
// be touched after start-up.
//
//   alignas(16) static std::byte storage[sluice::frame_pool::storage_for(256, 32)];
//   sluice::frame_pool pool{storage, sizeof storage, 256};
//   sluice::task<int> work(sluice::frame_pool&, int x);   // frame from `pool`
//   sluice::executor ex{{.pool = &pool}};                  // headers from `pool`
//
// allocate() returns null when the pool is exhausted or the request is
// larger than a block; the caller reports that (spawn returns an error).
// allocate and deallocate are lock-free (a Treiber stack of block indices),
// so deallocate is safe where the last reference to a task may be dropped.
//
// Free-list head (one pointer-sized word, no wider atomic needed):
//   bits 0..15   index of the first free block + 1 (0: none free)
//   bits 16..    tag, incremented by every pop, against ABA: 16 bits where
//                pointers have 32 (a 32-bit core), 48 where they have 64
// ABA needs a thread to stall between its load and its CAS across exactly
// a multiple of 2^16 pops (2^48 on a 64-bit core) and find the same block
// on top. On a 64-bit server, where a preempted thread may stall for
// milliseconds while others pop 2^16 blocks, 2^48 pops take a month at a
// hundred million a second; on a 32-bit core (bare metal, where a stall is
// an interrupt handler's run) the design accepts 2^16.
// The next-indices live in an array of atomics apart from the blocks, so a
// stale reader never races with a block's new owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/atomic.hpp>
#include <sluice/detail/config.hpp>
#include <sluice/detail/frame_cache.hpp>

namespace sluice {

class frame_pool {
 public:
  static constexpr std::size_t block_alignment = alignof(std::max_align_t);
  static constexpr std::size_t max_blocks = 0xffff;

  // Bytes of storage that `blocks` blocks of `block_size` bytes need; the
  // largest size_t where that does not fit in one.
  static constexpr std::size_t storage_for(std::size_t block_size, std::size_t blocks) noexcept {
    constexpr std::size_t most = ~std::size_t{0};
    if (block_size > largest_block || blocks > most / sizeof(detail::atomic<std::uint32_t>) / 2)
      return most;
    const std::size_t index = index_bytes(blocks);
    const std::size_t block = round_up(block_size);
    if (blocks != 0 && block > (most - index) / blocks) return most;
    return index + block * blocks;
  }

  // Requires: `storage` is aligned to block_alignment and outlives the pool
  // and every block handed out; 1 <= block_size; room for at least one
  // block. A debug build names a breach; a release build starts at the
  // first aligned byte, and a pool without room for a block, with no
  // storage, or with a block size of 0 or above half of size_t's range
  // hands out none: every allocate answers null.
  frame_pool(void* storage, std::size_t bytes, std::size_t block_size) noexcept
      : block_size_(round_up(block_size - 1 < largest_block ? block_size : 1)) {
    SLUICE_ASSERT(reinterpret_cast<std::uintptr_t>(storage) % block_alignment == 0,
                  "frame_pool storage is not aligned to alignof(max_align_t)");
    SLUICE_ASSERT(block_size - 1 < largest_block,
                  "frame_pool block size is 0, or more than half of size_t");
    const std::size_t skew = -reinterpret_cast<std::uintptr_t>(storage) % block_alignment;
    std::size_t n = 0;
    if (storage != nullptr && block_size - 1 < largest_block && bytes >= skew) {
      storage = static_cast<std::byte*>(storage) + skew;
      while (n < max_blocks && storage_for(block_size_, n + 1) <= bytes - skew)
        ++n;
    }
    SLUICE_ASSERT(n >= 1, "frame_pool storage too small for one block");
    blocks_ = static_cast<std::uint32_t>(n);
    next_ = static_cast<detail::atomic<std::uint32_t>*>(storage);
    base_ = static_cast<std::byte*>(storage) + index_bytes(n);
    for (std::uint32_t i = 0; i < blocks_; ++i) {
      // Block i links to i+1; the last to none (0).
      ::new (static_cast<void*>(&next_[i]))
          detail::atomic<std::uint32_t>(i + 1 < blocks_ ? i + 2 : 0);
    }
    // Relaxed: the pool is published to other threads by whatever shares it.
    head_.store(n != 0 ? 1 : 0, std::memory_order_relaxed);
  }
  frame_pool(const frame_pool&) = delete;
  frame_pool& operator=(const frame_pool&) = delete;

  // A free block of at least `bytes`, or null (exhausted, or too large).
  [[nodiscard]] void* allocate(std::size_t bytes) noexcept {
    if (bytes > block_size_) return nullptr;
    // Acquire [F1]: pairs with the release in deallocate: we read the
    // pushed block's next-index as its pusher wrote it.
    std::uintptr_t head = head_.load(std::memory_order_acquire);
    for (;;) {
      const auto index = static_cast<std::uint32_t>(head & index_mask);
      if (index == 0) return nullptr;
      // Relaxed: ordered by the acquire of `head` above ([F1]); if the
      // block was taken meanwhile, the tag makes the CAS below fail.
      const std::uint32_t next = next_[index - 1].load(std::memory_order_relaxed);
      const std::uintptr_t tag = (head >> 16) + 1;  // wraps within the word
      // Acquire [F1] on success (the block's previous owner released it);
      // acquire on failure to read the new head's next-index safely.
      if (head_.compare_exchange_weak(head, (tag << 16) | next, std::memory_order_acquire,
                                      std::memory_order_acquire)) {
        // Relaxed: marks the block handed out (its next-index names
        // itself, which no free block's does), for deallocate's check; a
        // stale allocator that reads it fails its CAS on the tag (or,
        // after a multiple of 2^16 pops in between, 2^48 on a 64-bit core,
        // installs this block, in range: the ABA window above), and the
        // block's next owner sees it through whatever hands it the block.
        next_[index - 1].store(index, std::memory_order_relaxed);
        // Relaxed: this counter is only an observer.
        in_use_.fetch_add(1, std::memory_order_relaxed);
        return base_ + static_cast<std::size_t>(index - 1) * block_size_;
      }
    }
  }

  // Requires: `block` came from this pool's allocate and is not free. A
  // release build ignores a pointer that is not one of its blocks, and a
  // block that is free already (a second deallocate of it, unless it was
  // handed out again in between).
  [[gnu::always_inline]] void deallocate(void* block) noexcept {
    const auto offset =
        reinterpret_cast<std::uintptr_t>(block) - reinterpret_cast<std::uintptr_t>(base_);
    // (block_size_ is never 0: an unusable size makes a pool of no blocks.)
    const bool ours = offset % block_size_ == 0 && offset / block_size_ < blocks_;
    SLUICE_ASSERT(ours, "frame_pool::deallocate of a pointer that is not one of its blocks");
    if (!ours) return;
    const auto index = static_cast<std::uint32_t>(offset / block_size_) + 1;
    // Relaxed: written by the allocate that handed the block out, which the
    // hand-over to this caller orders before us.
    const bool handed = next_[index - 1].load(std::memory_order_relaxed) == index;
    SLUICE_ASSERT(handed, "frame_pool::deallocate of a block that is free already (a double free)");
    if (!handed) return;
    // Relaxed: the CAS below re-reads.
    std::uintptr_t head = head_.load(std::memory_order_relaxed);
    for (;;) {
      // Relaxed: published by the release CAS below [F1].
      next_[index - 1].store(static_cast<std::uint32_t>(head & index_mask),
                             std::memory_order_relaxed);
      // Release [F1]: publishes the next-index and everything the block's
      // owner wrote to the next allocator of this block.
      if (head_.compare_exchange_weak(head, (head & ~index_mask) | index, std::memory_order_release,
                                      std::memory_order_relaxed))
        break;
    }
    // Relaxed: an observer counter.
    in_use_.fetch_sub(1, std::memory_order_relaxed);
  }

  [[nodiscard]] std::size_t block_size() const noexcept { return block_size_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return blocks_; }
  // Blocks handed out and not yet returned; may be stale.
  [[nodiscard]] std::size_t approx_in_use() const noexcept {
    // Relaxed: an observer.
    return in_use_.load(std::memory_order_relaxed);
  }

 private:
  // The largest block size taken: half of size_t, far beyond any storage,
  // so that rounding up and storage_for's sums cannot wrap.
  static constexpr std::size_t largest_block = ~std::size_t{0} / 2;

  static constexpr std::size_t round_up(std::size_t n) noexcept {
    return (n + block_alignment - 1) / block_alignment * block_alignment;
  }
  static constexpr std::size_t index_bytes(std::size_t blocks) noexcept {
    return round_up(blocks * sizeof(detail::atomic<std::uint32_t>));
  }

  std::size_t block_size_;
  std::uint32_t blocks_ = 0;
  detail::atomic<std::uint32_t>* next_ = nullptr;
  std::byte* base_ = nullptr;
  // The head's index bits (the rest is the tag).
  static constexpr std::uintptr_t index_mask = 0xffff;

  detail::atomic<std::uintptr_t> head_{0};
  static_assert(detail::atomic<std::uintptr_t>::is_always_lock_free,
                "frame_pool needs a lock-free pointer-sized atomic");
  detail::atomic<std::uint32_t> in_use_{0};
};

namespace detail {

// Every task frame and task header starts with this prefix, so that freeing
// needs no size and no knowledge of where the memory came from. Heap blocks
// carry the function that frees them, so code that only ever uses a pool
// never refers to operator delete (and links with no C++ runtime).
struct alignas(frame_pool::block_alignment) allocation_prefix {
  frame_pool* pool;                              // null: see free_fn
  void (*free_fn)(allocation_prefix*) noexcept;  // used when pool is null
};

// Null when the pool has no room.
inline void* allocate_in(frame_pool& pool, std::size_t bytes) noexcept {
  void* block = pool.allocate(bytes + sizeof(allocation_prefix));
  if (block == nullptr) return nullptr;
  auto* prefix = ::new (block) allocation_prefix{&pool, nullptr};
  return prefix + 1;
}

// A heap block of a task: through the thread's cache (frame_cache.hpp)
// where frame_cache_on, else the nothrow forms of the global allocation
// functions, which pair even where a program replaces only some of them.
// Hosted only. Null when out of memory.
inline void* new_heap_block(std::size_t bytes) noexcept {
  if constexpr (frame_cache_on) return frame_cache_allocate(bytes);
  return ::operator new(bytes, std::nothrow);
}
inline void delete_heap_block(void* block) noexcept {
  if constexpr (frame_cache_on) return frame_cache_free(block);
  ::operator delete(block, std::nothrow);
}

inline void free_heap_block(allocation_prefix* prefix) noexcept {
  delete_heap_block(prefix);
}

// Hosted only (uses the global operator new). Null when out of memory.
inline void* allocate_on_heap(std::size_t bytes) noexcept {
  void* block = new_heap_block(bytes + sizeof(allocation_prefix));
  if (block == nullptr) return nullptr;
  auto* prefix = ::new (block) allocation_prefix{nullptr, &free_heap_block};
  return prefix + 1;
}

// A heap block with room in front of the frame for the task header that a
// spawn makes (task_header.hpp): one allocation per spawned task instead of
// two. Layout, `room` bytes before the frame's prefix:
//
//   [header's prefix][task header (task_cell<T>)][frame's prefix][frame]
//   ^ the block                                   ^ block + room
//
// Until a spawn places a header there, the frame's prefix frees the whole
// block (free_heap_block_before<room>). A spawn that does turns the frame's
// free into nothing (keep_heap_block) and gives the header the block's own
// prefix, so the block goes with the header's last reference, which always
// comes after the frame's destruction (task_header::finish).
template <std::size_t Room>
void free_heap_block_before(allocation_prefix* prefix) noexcept {
  delete_heap_block(reinterpret_cast<std::byte*>(prefix) - Room);
}
inline void keep_heap_block(allocation_prefix*) noexcept {}

// Hosted only. `Room` is a multiple of the prefix's alignment. Null when out
// of memory.
template <std::size_t Room>
void* allocate_on_heap_with_room(std::size_t bytes) noexcept {
  static_assert(Room % alignof(allocation_prefix) == 0);
  void* block = new_heap_block(Room + bytes + sizeof(allocation_prefix));
  if (block == nullptr) return nullptr;
  auto* prefix = ::new (static_cast<std::byte*>(block) + Room)
      allocation_prefix{nullptr, &free_heap_block_before<Room>};
  return prefix + 1;
}

// From `pool`, or from the heap when it is null (hosted only).
inline void* allocate_from(frame_pool* pool, std::size_t bytes) noexcept {
  return pool != nullptr ? allocate_in(*pool, bytes) : allocate_on_heap(bytes);
}

inline void free_allocation(void* memory) noexcept {
  auto* prefix = static_cast<allocation_prefix*>(memory) - 1;
  if (prefix->pool != nullptr) {
    prefix->pool->deallocate(prefix);
  } else {
    prefix->free_fn(prefix);
  }
}

}  // namespace detail

}  // namespace sluice
