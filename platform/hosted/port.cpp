// The hosted port: Linux threads. wait/notify is the futex system call
// (async-signal-safe, with a timeout, unlike std::atomic::wait), the clock is
// CLOCK_MONOTONIC, a critical section blocks the thread's signals (the hosted
// stand-in for masking interrupts: a signal handler must not run while the
// code it interrupted holds a lock it may want), the heavy side of the
// asymmetric fence is membarrier(2), and each thread's parker
// lives on the heap for as long as the thread or a waker needs it.
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdlib>

#include <sluice/detail/retire_list.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>

namespace sluice::port {

namespace {

long futex(const detail::atomic<std::uint32_t>& word, int op, std::uint32_t value,
           const struct timespec* timeout) noexcept {
  static_assert(sizeof(detail::atomic<std::uint32_t>) == sizeof(std::uint32_t),
                "futex needs a plain 32-bit word");
  // The futex call takes the address of the word; std::atomic<uint32_t> is
  // layout-compatible with uint32_t on Linux.
  auto* address = const_cast<detail::atomic<std::uint32_t>*>(&word);
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(address), op, value, timeout, nullptr,
                 0);
}

}  // namespace

wait_status wait_until(const detail::atomic<std::uint32_t>& word, std::uint32_t expected,
                       time_point deadline) noexcept {
  if (deadline == time_point::max()) {
    futex(word, FUTEX_WAIT_PRIVATE, expected, nullptr);
    return wait_status::woken;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so retries
  // after EINTR need no recomputation.
  struct timespec at {};
  at.tv_sec = static_cast<time_t>(deadline.ns / 1'000'000'000u);
  at.tv_nsec = static_cast<long>(deadline.ns % 1'000'000'000u);
  const long rc =
      syscall(SYS_futex,
              reinterpret_cast<std::uint32_t*>(const_cast<detail::atomic<std::uint32_t>*>(&word)),
              FUTEX_WAIT_BITSET_PRIVATE, expected, &at, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == -1 && errno == ETIMEDOUT) return wait_status::timed_out;
  return wait_status::woken;
}

void notify_one(const detail::atomic<std::uint32_t>& word) noexcept {
  futex(word, FUTEX_WAKE_PRIVATE, 1, nullptr);
}

void notify_all(const detail::atomic<std::uint32_t>& word) noexcept {
  futex(word, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
}

time_point now() noexcept {
  struct timespec t {};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return time_point{static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000u +
                    static_cast<std::uint64_t>(t.tv_nsec)};
}

namespace {

// Nesting depth and the mask to restore, per thread. Both change only while
// the thread's signals are blocked (enter_critical blocks them first), so a
// handler never runs between a change of the depth and the mask: one that
// interrupted a thread about to enter finds the depth 0 and masks for
// itself (restoring the mask it ran with), and nothing it takes can be
// held by a second handler while unmasked. An atomic, lock-free, as a
// handler reads it (may_block) and changes it.
thread_local constinit detail::atomic<std::uint32_t> critical_depth{0};
thread_local sigset_t critical_saved_mask;

}  // namespace

// This thread's id, cached (read inline by context_token(), port.hpp):
// gettid() is async-signal-safe, and a handler that finds it unset computes
// the same value as its thread would. A lock-free atomic, as a signal
// handler may write it.
thread_local constinit detail::atomic<std::uint32_t> context_token_cache{0};

namespace {

// A child of fork() runs on one thread, whose cache holds the parent
// thread's id; the child's own differs. Cleared, the next context_token()
// reads it afresh (otherwise a thread id reused in the child could match).
struct context_token_after_fork {
  context_token_after_fork() noexcept {
    (void)pthread_atfork(nullptr, nullptr, [] {
      // Relaxed: the only thread of the child.
      context_token_cache.store(0, std::memory_order_relaxed);
    });
  }
} const context_token_after_fork_instance;

}  // namespace

std::uint32_t context_token_first() noexcept {
  // Linux thread ids are below 2^22 (PID_MAX_LIMIT): within [1, 2^30).
  const auto token = static_cast<std::uint32_t>(syscall(SYS_gettid));
  // Relaxed: a cache of a value every writer computes alike; it orders
  // nothing.
  context_token_cache.store(token, std::memory_order_relaxed);
  return token;
}

void yield_core() noexcept {
  // Safe in a signal handler: one system call, no state.
  (void)sched_yield();
}

critical_state enter_critical() noexcept {
  // Masked first, then counted: see critical_depth. (A nested enter pays
  // the system call too; critical sections are rare hosted.)
  sigset_t all;
  sigset_t before;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &before);
  // Relaxed, both: this thread's own word, changed only while masked.
  const std::uint32_t depth = critical_depth.load(std::memory_order_relaxed);
  if (depth == 0) critical_saved_mask = before;
  critical_depth.store(depth + 1, std::memory_order_relaxed);
  return critical_state{0};
}

void leave_critical(critical_state) noexcept {
  // Relaxed, both: as in enter_critical (still masked here).
  const std::uint32_t depth = critical_depth.load(std::memory_order_relaxed) - 1;
  critical_depth.store(depth, std::memory_order_relaxed);
  if (depth == 0) pthread_sigmask(SIG_SETMASK, &critical_saved_mask, nullptr);
}

bool signal_mask_outside_critical(sigset_t& mask) noexcept {
  // Relaxed: this thread's own word.
  if (critical_depth.load(std::memory_order_relaxed) == 0) return false;
  mask = critical_saved_mask;
  return true;
}

bool may_block() noexcept {
  // Relaxed: this thread's own word.
  return critical_depth.load(std::memory_order_relaxed) == 0;
}

namespace {

// Whether asymmetric_fence_heavy() is a process-wide membarrier. The state
// is port::asymmetric_fence_state (port.hpp), which light() reads inline.
//   value  name         set by                          invariant
//   0      unknown      initial                         light() fences
//   1      membarrier   the first heavy(), registered   light() is a compiler barrier;
//                                                       every heavy() is a membarrier
//   2      unavailable  the first heavy(), refused      light() and heavy() fence
// Edges: 0 -> 1 or 0 -> 2 once (compare-and-swap); never left after.
constexpr std::uint32_t membarrier_unknown = 0;
constexpr std::uint32_t membarrier_ready = asymmetric_fence_membarrier;
constexpr std::uint32_t membarrier_unavailable = 2;
detail::atomic<std::uint32_t>& membarrier_state = asymmetric_fence_state;

// Leaves `unknown` (see the table above); returns the state.
std::uint32_t settle_membarrier() noexcept {
  // Relaxed: a choice of fence, see the state table.
  std::uint32_t state = membarrier_state.load(std::memory_order_relaxed);
  if (state != membarrier_unknown) return state;
  const std::uint32_t next =
      syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0
          ? membarrier_ready
          : membarrier_unavailable;
  // Relaxed: the value is a fact about the kernel; a losing thread takes
  // the winner's.
  if (membarrier_state.compare_exchange_strong(state, next, std::memory_order_relaxed,
                                               std::memory_order_relaxed))
    state = next;
  return state;
}

// Registers at start-up, so that light() is cheap from the first call on
// (until then it fences, which is correct as well).
[[maybe_unused]] const std::uint32_t membarrier_at_start = settle_membarrier();

}  // namespace

void asymmetric_fence_heavy() noexcept {
  if (settle_membarrier() == membarrier_ready) {
    // [AF1] membarrier: every running thread of the process passes a full
    // fence before this returns, so a light() side whose store this load
    // misses has not yet issued its own load (and will see our store).
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
      panic("sluice: membarrier failed after registration", __FILE__, __LINE__);
    }
    return;
  }
  // [AF1] seq_cst fence: pairs with the seq_cst fence in light().
  detail::fence(std::memory_order_seq_cst);
}

namespace {

// write(2) of a C string: async-signal-safe, as panic may run in a handler.
void write_text(const char* text) noexcept {
  std::size_t n = 0;
  while (text[n] != '\0')
    ++n;
  (void)!write(STDERR_FILENO, text, n);
}

}  // namespace

void panic(const char* message, const char* file, int line) noexcept {
  // "file:line: message", without stdio (not safe in a signal handler).
  char number[16];
  char* digits = number + sizeof number;
  *--digits = '\0';
  unsigned value = line > 0 ? static_cast<unsigned>(line) : 0;
  do {
    *--digits = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  write_text(file);
  write_text(":");
  write_text(digits);
  write_text(": ");
  write_text(message);
  write_text("\n");
  std::abort();
}

namespace {

// A thread's parker, with the link of the list of retired parkers.
struct hosted_parker final : parker {
  hosted_parker() noexcept : parker(&retire_parker) {}
  hosted_parker* retired_next = nullptr;

  // The last release of a parker: the thread's own (at its exit) or a
  // waker's, which may be in a signal handler, where `delete` may not run.
  // So it only retires the parker (lock-free), and thread context deletes
  // it: the exiting thread's own release right after, a thread's first
  // current_parker(), or the program's exit.
  static void retire_parker(parker* p) noexcept;
};

// Parkers released for the last time, not yet deleted ([RL1] in
// retire_list.hpp).
constinit detail::retire_list<hosted_parker, &hosted_parker::retired_next> retired;

void hosted_parker::retire_parker(parker* p) noexcept {
  retired.push(*static_cast<hosted_parker*>(p));
}

void delete_retired_parkers() noexcept {
  retired.take_all([](hosted_parker& p) noexcept { delete &p; });
}

// The thread's parker and the thread's reference to it; wakers may hold
// more and keep the parker alive after the thread has gone. Constant-
// initialised and trivially destructible, so that they stay readable
// after the thread's exit-time destructors ran.
thread_local constinit hosted_parker* this_thread_parker = nullptr;
thread_local constinit bool this_thread_exited = false;

// Parkers of threads that blocked after their exit had released the one
// before (a destructor of a static or thread_local object that waits, such
// as a global executor's shutdown on the main thread): kept to the end of
// the program, reachable from here (one per such thread: a program that
// keeps starting threads whose late destructors wait keeps one each).
// Their link is retired_next: a kept parker is never released by its
// thread, so never retired.
constinit detail::retire_list<hosted_parker, &hosted_parker::retired_next> kept_after_exit;

// Releases the thread's reference at its exit. Registered by the thread's
// first current_parker(), whose store to `used` is the first use of this
// thread_local: that constructs it and registers its destructor.
struct thread_parker_release {
  bool used = false;  // written only for that first use
  ~thread_parker_release() {
    this_thread_exited = true;
    hosted_parker* const p = this_thread_parker;
    this_thread_parker = nullptr;
    if (p == nullptr) return;
    p->release();
    delete_retired_parkers();
  }
};

thread_local thread_parker_release this_thread_parker_release;

// Deletes at the program's exit what no thread exit deleted since.
struct retired_parkers_at_exit {
  ~retired_parkers_at_exit() { delete_retired_parkers(); }
} const retired_parkers_at_exit_instance;

}  // namespace

parker& current_parker() noexcept {
  if (this_thread_parker == nullptr) {
    delete_retired_parkers();
    auto* const p = new hosted_parker();
    this_thread_parker = p;
    if (this_thread_exited) {
      kept_after_exit.push(*p);  // no exit left to release it
    } else {
      this_thread_parker_release.used = true;  // registers the release at exit
    }
  }
  return *this_thread_parker;
}

}  // namespace sluice::port
