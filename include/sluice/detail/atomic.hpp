// The one place where std::atomic is named. Everything in sluice reaches
// atomics through sluice::detail::atomic so that a model checker or a
// race-detecting replacement can be swapped in here without touching the
// algorithms.
#pragma once

#include <atomic>
#include <cstdint>

namespace sluice::detail {

template <class T>
using atomic = std::atomic<T>;

// Atomic access to a plain object in caller-provided storage (the words of
// a packet buffer), for as long as the reference lives: load and store, the
// operations the engine needs, over the builtins that std::atomic_ref wraps.
// sluice's own so that they are always inline: GCC left std::atomic_ref's
// members out of line in a large caller (a call per header word, and per
// word zeroed).
template <class T>
class atomic_ref {
  static_assert(sizeof(T) <= sizeof(void*) && __atomic_always_lock_free(sizeof(T), 0),
                "atomic_ref: for words the hardware loads and stores atomically");
  // Every T is then at an address the builtins may use (std::atomic_ref's
  // required_alignment, which for such words is their size).
  static_assert(alignof(T) >= sizeof(T), "atomic_ref: for naturally aligned words");

 public:
  explicit atomic_ref(T& object) noexcept : object_(&object) {}

  [[gnu::always_inline]] T load(std::memory_order order) const noexcept {
    return __atomic_load_n(object_, static_cast<int>(order));
  }
  [[gnu::always_inline]] void store(T value, std::memory_order order) const noexcept {
    __atomic_store_n(object_, value, static_cast<int>(order));
  }

 private:
  T* object_;
};
// The builtins take the orders as the C++ enumerators' values.
static_assert(static_cast<int>(std::memory_order_relaxed) == __ATOMIC_RELAXED &&
              static_cast<int>(std::memory_order_acquire) == __ATOMIC_ACQUIRE &&
              static_cast<int>(std::memory_order_release) == __ATOMIC_RELEASE &&
              static_cast<int>(std::memory_order_seq_cst) == __ATOMIC_SEQ_CST);

inline void fence(std::memory_order order) noexcept {
  std::atomic_thread_fence(order);
}

inline void signal_fence(std::memory_order order) noexcept {
  std::atomic_signal_fence(order);
}

#if defined(__SANITIZE_THREAD__)
#define SLUICE_DETAIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLUICE_DETAIL_TSAN 1
#endif
#endif

// Makes a relaxed load of `a`, already made, an acquire: what the release
// whose value it read (or the head of that value's release sequence)
// published is visible from here on. An acquire fence, the least code;
// under ThreadSanitizer, which does not model fences, an acquire load of
// `a` instead, so that it sees the pairing. (The caller's value must stay
// in that release sequence: a flag never cleared, changed only by
// read-modify-writes after it was set.)
template <class T>
inline void acquire_after_load([[maybe_unused]] const atomic<T>& a) noexcept {
#if defined(SLUICE_DETAIL_TSAN)
  (void)a.load(std::memory_order_acquire);
#else
  fence(std::memory_order_acquire);
#endif
}

// Atomics are never wider than a pointer (DESIGN.md, Layers): a 32-bit core
// has no 64-bit compare-and-swap.
static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
              "sluice needs lock-free 32-bit atomics");
static_assert(std::atomic<void*>::is_always_lock_free,
              "sluice needs lock-free pointer-sized atomics");

}  // namespace sluice::detail
