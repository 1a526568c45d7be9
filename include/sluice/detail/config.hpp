// Build-wide constants and switches of the core.
#pragma once

#include <cstddef>

namespace sluice::detail {

// Separates data written by different cores. 64 bytes covers x86-64,
// Cortex-A53 and Cortex-A72; two lines are used where the adjacent-line
// prefetcher of x86 would otherwise pair them.
inline constexpr std::size_t cache_line = 64;

// The executor's per-worker next-task slots and FIFOs (executor.hpp). A
// port whose executor has one worker (a single core) may build with
// SLUICE_EXECUTOR_SLOTS=0: they save it no traffic between cores, and every
// wake then goes through the run queue, in less code. It also leaves
// out waking a parked worker for a newly armed earlier timer (the one
// worker armed it, and sees it when it next parks).
#if !defined(SLUICE_EXECUTOR_SLOTS) || SLUICE_EXECUTOR_SLOTS
inline constexpr bool executor_slots = true;
#else
inline constexpr bool executor_slots = false;
#endif

// Whether the image runs on one core, where a context that masks
// interrupts (a critical section) runs alone: nothing else can touch
// memory until it unmasks. A one-core bare-metal port builds with
// SLUICE_SINGLE_CORE=1; the packet buffer then leaves out the consumer's
// side of the handshake with an observer (is_pending without overwrite,
// src/packet_buffer.cpp [PB8]), whose masking alone keeps the consumer
// from freeing the words it reads.
#if defined(SLUICE_SINGLE_CORE) && SLUICE_SINGLE_CORE
inline constexpr bool single_core = true;
#else
inline constexpr bool single_core = false;
#endif

// With the slots (multi-core builds) the executor also lists a task for
// shutdown only once it first suspends, and a task that no other thread
// can reach starts and completes without a read-modify-write on its state
// (task_state.hpp, [T5]). One-core images list every task from its spawn
// and always use the CAS, in less code.
inline constexpr bool task_lazy_listing = executor_slots;

// Whether the packet buffer's consumer masks interrupts around its short
// hold of the overwrite lock (claim and free with drop_oldest). A port
// whose critical section costs a few instructions (bare metal) builds with
// SLUICE_PBUF_CONSUMER_MASKS=1, so that an interrupt producer never meets
// the lock held by the consumer it interrupted. Hosted, masking signals is
// two system calls: the consumer does not mask, and a handler producer
// that interrupted it and must drop to fit gets no_room (pbuf_core.hpp).
#if defined(SLUICE_PBUF_CONSUMER_MASKS) && SLUICE_PBUF_CONSUMER_MASKS
inline constexpr bool pbuf_consumer_masks = true;
#else
inline constexpr bool pbuf_consumer_masks = false;
#endif

// Whether a task frame from the heap keeps room in front of it for the
// header that a spawn makes (task.hpp, frame_pool.hpp): one allocation per
// spawned task instead of two. Hosted builds do. A freestanding build, whose
// tasks come from a frame_pool as a rule, leaves that code out (on a
// Cortex-M it is a few dozen bytes); SLUICE_HEAP_HEADER_ROOM=1 or =0
// decides either way.
#if defined(SLUICE_HEAP_HEADER_ROOM)
inline constexpr bool heap_header_room = SLUICE_HEAP_HEADER_ROOM != 0;
#else
inline constexpr bool heap_header_room = __STDC_HOSTED__ != 0;
#endif

// Whether a heap task whose last reference a waker drops is retired (put
// on a lock-free list and destroyed later in thread context,
// task_header.hpp) instead of destroyed on the spot. A waker may be dropped
// in a signal handler, and destroying a task there would free heap memory.
// Hosted builds do. A task from a frame_pool is destroyed at once in every
// build, and so is every task of a freestanding build: the pool's free is
// lock-free and safe in an interrupt handler. No user code runs in either
// case: by then the result was taken by a join or dropped in thread or task
// context ([T7] in task_state.hpp).
inline constexpr bool retire_from_wakers = __STDC_HOSTED__ != 0;

// Whether heap blocks of tasks go through each thread's cache of freed
// blocks (detail/frame_cache.hpp) instead of straight to operator new and
// delete: hosted builds with room for the header, except under
// AddressSanitizer, whose use-after-free checks need every block freed;
// SLUICE_FRAME_CACHE=1 or =0 decides either way (hosted only).
#if defined(__SANITIZE_ADDRESS__)
#define SLUICE_DETAIL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLUICE_DETAIL_ASAN 1
#endif
#endif
#if defined(SLUICE_FRAME_CACHE)
inline constexpr bool frame_cache_on = SLUICE_FRAME_CACHE != 0 && __STDC_HOSTED__ != 0;
#elif defined(SLUICE_DETAIL_ASAN)
inline constexpr bool frame_cache_on = false;
#else
inline constexpr bool frame_cache_on = heap_header_room;
#endif

// Whether to build the shortcuts that buy speed with code: not where the
// compiler optimises for size (-Os: the Cortex-M image, whose size is a
// budget).
#if defined(__OPTIMIZE_SIZE__)
inline constexpr bool speed_over_size = false;
#else
inline constexpr bool speed_over_size = true;
#endif

#if defined(NDEBUG) && !defined(SLUICE_DEBUG_CHECKS)
inline constexpr bool debug_checks = false;
#else
inline constexpr bool debug_checks = true;
#endif

}  // namespace sluice::detail
