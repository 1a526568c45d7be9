// The hosted port: Linux threads. wait/notify is the futex system call
// (async-signal-safe, with a timeout, unlike std::atomic::wait), the clock is
// CLOCK_MONOTONIC, a critical section is nothing, and each thread's parker
// lives on the heap for as long as the thread or a waker needs it.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>

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

critical_state enter_critical() noexcept {
  return critical_state{0};
}
void leave_critical(critical_state) noexcept {}

void panic(const char* message, const char* file, int line) noexcept {
  std::fprintf(stderr, "%s:%d: %s\n", file, line, message);
  std::fflush(stderr);
  std::abort();
}

namespace {

void free_parker(parker* p) noexcept {
  delete p;
}

// Owns the thread's reference to its parker; wakers may hold more and keep
// the parker alive after the thread has gone.
struct thread_parker {
  parker* p = nullptr;
  ~thread_parker() {
    if (p != nullptr) p->release();
  }
};

thread_local thread_parker this_thread_parker;

}  // namespace

parker& current_parker() noexcept {
  if (this_thread_parker.p == nullptr) this_thread_parker.p = new parker(&free_parker);
  return *this_thread_parker.p;
}

}  // namespace sluice::port
