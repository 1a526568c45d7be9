// The platform port contract: the whole of what sluice asks of a platform.
//
// A port is one translation unit (platform/<name>/port.cpp) that defines the
// functions declared here; the build links exactly one. Nothing else in the
// code asks which platform it runs on.
//
//   wait/notify on a 32-bit atomic word   (hosted: futex; AArch64: WFE/SEV;
//                                          Cortex-M: WFI)
//   a monotonic clock                     now()
//   a critical section                    (interrupt mask on a single-core
//                                          MCU; signal mask hosted)
//   an asymmetric fence pair (optional)   hosted: membarrier
//   a panic hook                          broken preconditions end here
//   the calling context's parker          per thread (hosted) or per core
//
// How workers start (threads or secondary cores) belongs to the executor's
// part of the contract.
#pragma once

#include <cstdint>

#include <sluice/detail/atomic.hpp>
#include <sluice/time.hpp>

namespace sluice {

class parker;

namespace port {

enum class wait_status : std::uint8_t {
  woken,      // notified, or returned spuriously: the caller re-checks
  timed_out,  // the deadline passed
};

// Blocks the caller while `word` holds `expected`, until a notify on the
// same word, the deadline, or spuriously. Returns at once if the word no
// longer holds `expected`. Never called from an interrupt or signal handler.
wait_status wait_until(const detail::atomic<std::uint32_t>& word, std::uint32_t expected,
                       time_point deadline) noexcept;

// Wakes one / all callers blocked in wait_until on `word`. Safe from any
// thread, a POSIX signal handler and an interrupt handler.
void notify_one(const detail::atomic<std::uint32_t>& word) noexcept;
void notify_all(const detail::atomic<std::uint32_t>& word) noexcept;

// The monotonic clock. On hosted Linux it is CLOCK_MONOTONIC, the clock of
// std::chrono::steady_clock.
time_point now() noexcept;

// Opaque saved state of a critical section (the interrupt mask).
struct critical_state {
  std::uintptr_t saved;
};

// Enters a critical section on the calling core: nothing on this core can
// interrupt until leave_critical. Hosted: blocks the thread's signals, so a
// signal handler cannot interrupt code that holds a lock it also takes
// (threads still preempt). Nests.
critical_state enter_critical() noexcept;
void leave_critical(critical_state state) noexcept;

// Whether the calling context may block in a wait: not in an interrupt
// handler and not inside a critical section (interrupts masked). Hosted it
// is false only inside a critical section: the port cannot tell a signal
// handler from the thread it interrupted. Where it is false, the packet
// buffer's timed forms make one try instead of waiting (as Zephyr's
// mpsc_pbuf_alloc pends only in thread context with interrupts unmasked).
[[nodiscard]] bool may_block() noexcept;

// [AF1] An asymmetric pair of fences for a store-load (Dekker) handshake
// whose one side is hot and the other rare: on one side `store A; light();
// load B`, on the other `store C; heavy(); load D`: then B sees C or D sees
// A, as if both were seq_cst fences. heavy() is the port's (weak default in
// src/packet_buffer.cpp: a seq_cst fence). light() is inline, so the hot
// side costs no call. Both are safe from any context, including a signal
// or interrupt handler and inside a critical section: a packet buffer's
// dropper may run heavy() there, holding the overwrite lock. So a port's
// heavy() must not wait for another core that may be masked or spinning
// on that lock (hosted, membarrier waits for no lock of the program).
//
// light() is a seq_cst fence, except hosted once asymmetric_fence_state
// reads asymmetric_fence_membarrier: the hosted port's choice
// (platform/hosted/port.cpp has its table), made once and never left, that
// every heavy() makes every other thread of the program pass a full fence
// (Linux membarrier, registered at start-up); light() is then a compiler
// barrier.
#if __STDC_HOSTED__
inline constexpr std::uint32_t asymmetric_fence_membarrier = 1;
extern detail::atomic<std::uint32_t> asymmetric_fence_state;  // in src/packet_buffer.cpp
#endif
[[gnu::always_inline]] inline void asymmetric_fence_light() noexcept {
#if __STDC_HOSTED__
  // Relaxed: the state only chooses the fence. Seeing `membarrier` means
  // that every heavy() from now on (and any that could pair with this call,
  // whose own load saw it or which set it) is a membarrier, which runs a
  // full fence on this thread somewhere in program order ([AF1]).
  if (asymmetric_fence_state.load(std::memory_order_relaxed) == asymmetric_fence_membarrier) {
    // [AF1] compiler barrier: keeps the caller's store before its load; the
    // CPU's store-load order comes from the membarrier in heavy().
    detail::signal_fence(std::memory_order_seq_cst);
    return;
  }
#endif
  // [AF1] seq_cst fence: pairs with the fence or membarrier in heavy().
  detail::fence(std::memory_order_seq_cst);
}
void asymmetric_fence_heavy() noexcept;

// Lets another thread run on this core, for a wait on a lock whose holder
// may have been preempted (more threads than cores): hosted, sched_yield;
// the weak default (src/packet_buffer.cpp) does nothing, as on bare metal,
// where a holder on another core is never descheduled. Any context.
void yield_core() noexcept;

// A number in [1, 2^30) that tells the calling thread apart from every other
// live thread of the program, the same in a signal handler running on that
// thread; 0 where the port has none. A packet buffer's droppers use it to
// see that they interrupted their own thread while it holds the overwrite
// lock (and give up) instead of masking around the lock; with 0 they mask
// (the weak default in src/packet_buffer.cpp returns 0). Any context.
// Hosted, the thread's id, cached in a thread_local and read inline (the
// consumer's turn asks for it twice per packet). A hosted build with
// SLUICE_TEST_NO_CONTEXT_TOKENS gets the weak default's 0 instead: the
// tests of a port without tokens (tests/no_tokens/).
#if __STDC_HOSTED__ && !defined(SLUICE_TEST_NO_CONTEXT_TOKENS)
extern thread_local constinit detail::atomic<std::uint32_t> context_token_cache;
std::uint32_t context_token_first() noexcept;  // fills the cache
inline std::uint32_t context_token() noexcept {
  // Relaxed: a cache of a value every writer computes alike.
  const std::uint32_t cached = context_token_cache.load(std::memory_order_relaxed);
  const std::uint32_t token = cached != 0 ? cached : context_token_first();
  // Within [1, 2^30), as promised above (a thread id): told to the
  // compiler, which then drops the callers' tests for a port without
  // tokens (0) from a thread's code, such as the check at the end of each
  // turn of a packet buffer's consumer.
  if (token - 1 >= (1u << 30) - 1) __builtin_unreachable();
  return token;
}
#else
std::uint32_t context_token() noexcept;
#endif

// Reports a broken precondition or an impossible state and never returns.
[[noreturn]] void panic(const char* message, const char* file, int line) noexcept;

// The parker of the calling thread (hosted) or core (bare metal), created on
// first use and alive while the thread lives and any waker refers to it.
parker& current_parker() noexcept;

}  // namespace port

// Scoped critical section.
class critical_section {
 public:
  critical_section() noexcept : state_(port::enter_critical()) {}
  ~critical_section() { port::leave_critical(state_); }
  critical_section(const critical_section&) = delete;
  critical_section& operator=(const critical_section&) = delete;

 private:
  port::critical_state state_;
};

// A deadline from a sluice::time_point or from any std::chrono steady or
// system time_point (converted through the distance from its clock's now).
constexpr time_point to_time_point(time_point t) noexcept {
  return t;
}

template <detail::chrono_time_point_like P>
time_point to_time_point(const P& deadline) {
  const P now = P::clock::now();
  // Passed, min() included (a common "already expired"): now. Decided
  // before the difference, which for a deadline that far below now would
  // overflow (and, wrapped, wait some 292 years).
  if (deadline <= now) return port::now();
  // deadline > now: the difference overflows only where the clock's now is
  // negative and the deadline near max(): forever.
  if (now.time_since_epoch() < P::duration::zero() &&
      deadline.time_since_epoch() > P::duration::max() + now.time_since_epoch())
    return time_point::max();
  return port::now() + duration{deadline - now};
}

// The deadline `d` from now.
inline time_point deadline_after(duration d) noexcept {
  return port::now() + d;
}

}  // namespace sluice
