// frame_cache: each thread's cache of freed heap blocks of tasks (hosted
// builds for speed; frame_cache_on in config.hpp), so that a task that
// spawns the next and completes, on one thread, takes its block from the
// last one's instead of from malloc and free, which cost a spawn as much as
// the rest of it together (a chain of spawns on one worker: about 7 ns of
// 42).
//
// Blocks are sorted into classes of 16 bytes (malloc's own step): class k
// holds blocks of (k + 1) * 16 bytes, for requests of up to 1 KiB (64
// classes); a larger request goes straight to operator new. Every block
// starts with a tag of its class (16 bytes, keeping the block's alignment),
// so that a free needs no size. A class keeps up to 8 blocks, and a thread
// up to 32 in all (at most 32 KiB), on lists linked through their first
// word; beyond that a free goes to operator delete. A block freed on one
// thread may serve a spawn on another later (memory is memory).
//
// Thread only: no handler ever allocates or frees a heap block of a task
// (spawn is for threads and tasks; a waker's last release in a handler
// retires a heap task, task_header.hpp), so the cache needs no atomics.
//
// A thread's cache:
//   phase    meaning                         set by
//   unused   no block cached yet             initial (constant)
//   caching  frees are kept; the thread's    its first kept free, which
//            exit frees them                 registers that exit's drain
//   exited   frees go to operator delete     the drain (thread exit)
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include <sluice/detail/config.hpp>

#if __STDC_HOSTED__

namespace sluice::detail {

inline constexpr std::size_t frame_cache_granule = 16;
inline constexpr std::uint32_t frame_cache_classes = 64;
inline constexpr std::uint8_t frame_cache_depth = 8;        // blocks per class
inline constexpr std::uint8_t frame_cache_max_blocks = 32;  // blocks per thread

// The tag in front of every block the cache hands out; the caller's part
// starts after it.
struct alignas(alignof(std::max_align_t)) frame_cache_tag {
  std::uint32_t cls;  // its class, or frame_cache_classes for an uncached size
};

struct frame_cache_state {
  enum class phase : std::uint8_t { unused, caching, exited };
  void* head[frame_cache_classes];
  std::uint8_t count[frame_cache_classes];
  std::uint8_t blocks;  // the sum of count, kept so that a free checks the limit in one load
  phase now;
  std::uint32_t hits;  // requests served from the cache (wrapping; for tests)
};

inline constinit thread_local frame_cache_state frame_cache_of_thread{};

// Frees every block the thread keeps: at its exit.
struct frame_cache_drain {
  frame_cache_drain() noexcept = default;
  frame_cache_drain(const frame_cache_drain&) = delete;
  frame_cache_drain& operator=(const frame_cache_drain&) = delete;
  ~frame_cache_drain() {
    frame_cache_state& cache = frame_cache_of_thread;
    for (std::uint32_t c = 0; c < frame_cache_classes; ++c) {
      while (void* block = cache.head[c]) {
        cache.head[c] = *static_cast<void**>(block);
        ::operator delete(block, std::nothrow);
      }
      cache.count[c] = 0;
    }
    cache.blocks = 0;
    cache.now = frame_cache_state::phase::exited;
  }
};

// The first kept free of a thread: registers the drain at its exit.
[[gnu::noinline]] inline void frame_cache_start() noexcept {
  static thread_local frame_cache_drain at_exit;
  static_cast<void>(&at_exit);
  frame_cache_of_thread.now = frame_cache_state::phase::caching;
}

// A block with `bytes` for the caller after its tag; null when out of
// memory.
inline void* frame_cache_allocate(std::size_t bytes) noexcept {
  const std::size_t total = bytes + sizeof(frame_cache_tag);
  const std::size_t cls = (total - 1) / frame_cache_granule;
  void* block = nullptr;
  if (cls < frame_cache_classes) {
    frame_cache_state& cache = frame_cache_of_thread;
    block = cache.head[cls];
    if (block != nullptr) {
      cache.head[cls] = *static_cast<void**>(block);
      --cache.count[cls];
      --cache.blocks;
      ++cache.hits;
    } else {
      block = ::operator new((cls + 1) * frame_cache_granule, std::nothrow);
    }
  } else {
    block = ::operator new(total, std::nothrow);
  }
  if (block == nullptr) return nullptr;
  auto* tag = ::new (block) frame_cache_tag{
      static_cast<std::uint32_t>(cls < frame_cache_classes ? cls : frame_cache_classes)};
  return tag + 1;
}

// Frees what frame_cache_allocate returned.
inline void frame_cache_free(void* memory) noexcept {
  auto* tag = static_cast<frame_cache_tag*>(memory) - 1;
  const std::uint32_t cls = tag->cls;
  frame_cache_state& cache = frame_cache_of_thread;
  if (cls < frame_cache_classes && cache.count[cls] < frame_cache_depth &&
      cache.blocks < frame_cache_max_blocks && cache.now != frame_cache_state::phase::exited) {
    if (cache.now == frame_cache_state::phase::unused) frame_cache_start();
    void* block = tag;
    *static_cast<void**>(block) = cache.head[cls];
    cache.head[cls] = block;
    ++cache.count[cls];
    ++cache.blocks;
    return;
  }
  ::operator delete(static_cast<void*>(tag), std::nothrow);
}

// Requests of this thread served from its cache so far (for tests).
inline std::uint32_t frame_cache_hits() noexcept {
  return frame_cache_of_thread.hits;
}

// The blocks this thread keeps (for tests).
inline std::uint32_t frame_cache_blocks() noexcept {
  return frame_cache_of_thread.blocks;
}

}  // namespace sluice::detail

#else  // freestanding: no cache (frame_cache_on is false)

namespace sluice::detail {

// Declared only, so that callers choose with `if constexpr (frame_cache_on)`
// and no #if; a discarded statement needs no definition.
void* frame_cache_allocate(std::size_t bytes) noexcept;
void frame_cache_free(void* memory) noexcept;

}  // namespace sluice::detail

#endif  // __STDC_HOSTED__
