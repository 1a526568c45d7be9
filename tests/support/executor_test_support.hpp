// Turns a hang (a lost wake-up) into a failure: if the guarded scope has
// not finished within the limit, print what was being waited for and abort.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace sluice::test {

class abort_watchdog {
 public:
  abort_watchdog(std::chrono::seconds limit, const char* what) : what_(what) {
    thread_ = std::thread([this, limit] {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
        std::fprintf(stderr, "watchdog: '%s' did not finish in %lld s (lost wake-up?)\n", what_,
                     static_cast<long long>(limit.count()));
        std::fflush(stderr);
        std::abort();
      }
    });
  }
  abort_watchdog(const abort_watchdog&) = delete;
  abort_watchdog& operator=(const abort_watchdog&) = delete;
  ~abort_watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  const char* what_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Turns a hang into a failure by progress, not by total time: aborts the
// process, saying what was waited for, when `progress` has not moved for
// `limit`. The guarded code stores or adds to `progress` as it goes (each
// packet claimed, say), so that a run that is only slow (a loaded machine)
// is never cut short. Or `sample`, where given, reads the count (a counter
// the code under test keeps already); `report`, where given, prints more of
// the state before the abort.
class progress_watchdog {
 public:
  progress_watchdog(const char* what, std::chrono::seconds limit,
                    std::function<std::uint32_t()> sample = {}, std::function<void()> report = {})
      : sample_(std::move(sample)), report_(std::move(report)), thread_([this, what, limit] {
          // Relaxed, all: it only sees the count move, and the flag stop;
          // neither publishes anything.
          const auto count = [this] {
            return sample_ ? sample_() : progress.load(std::memory_order_relaxed);
          };
          std::uint32_t seen = count();
          auto since = std::chrono::steady_clock::now();
          while (!done_.load(std::memory_order_relaxed)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            const std::uint32_t now = count();
            if (now != seen) {
              seen = now;
              since = std::chrono::steady_clock::now();
            } else if (std::chrono::steady_clock::now() - since > limit) {
              std::fprintf(stderr, "%s: no progress for %lld s (lost wake-up?), at %u\n", what,
                           static_cast<long long>(limit.count()), now);
              if (report_) report_();
              std::fflush(stderr);
              std::abort();
            }
          }
        }) {}
  ~progress_watchdog() {
    done_.store(true, std::memory_order_relaxed);  // a stop flag; the join follows
    thread_.join();
  }
  progress_watchdog(const progress_watchdog&) = delete;
  progress_watchdog& operator=(const progress_watchdog&) = delete;
  std::atomic<std::uint32_t> progress{0};

 private:
  std::function<std::uint32_t()> sample_;
  std::function<void()> report_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Counts task frames: put one among a coroutine's parameters (they live in
// the frame from the call on), so a task destroyed before its first run
// counts too. live() is zero when every frame is gone; a second
// destruction of one aborts (the count would go below zero).
struct frame_probe {
  frame_probe() { count().fetch_add(1, std::memory_order_relaxed); }
  frame_probe(const frame_probe&) : frame_probe() {}
  frame_probe& operator=(const frame_probe&) = delete;
  ~frame_probe() {
    // Relaxed: a tally; the test reads it after joining what ran the tasks.
    if (count().fetch_sub(1, std::memory_order_relaxed) <= 0) std::abort();
  }
  static long live() { return count().load(std::memory_order_relaxed); }
  static void reset() { count().store(0, std::memory_order_relaxed); }

 private:
  static std::atomic<long>& count() {
    static std::atomic<long> n{0};
    return n;
  }
};

// Awaits `inner` (an awaiter whose await_suspend says whether the task
// suspends), and sets `suspended` once the task has suspended in it: after
// the awaiter listed its waker. A test thread that waits for the flag
// (suspended_before_finished) before it acts then knows that what it does
// reaches a waiting task, instead of being found by the task's first look.
template <class Awaiter>
class noting_suspension {
 public:
  noting_suspension(Awaiter& inner, std::atomic<bool>& suspended) noexcept
      : inner_(inner), suspended_(suspended) {}
  bool await_ready() noexcept { return inner_.await_ready(); }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> coroutine) noexcept {
    // Kept on the stack: once listed, the task may be woken (a timer) and
    // finish, and this awaiter, in its frame, go, before the store.
    std::atomic<bool>& flag = suspended_;
    const bool suspends = inner_.await_suspend(coroutine);
    if (suspends) flag.store(true);  // seq_cst: a handshake with the test thread
    return suspends;
  }
  decltype(auto) await_resume() { return inner_.await_resume(); }

 private:
  Awaiter& inner_;
  std::atomic<bool>& suspended_;
};

// co_await noting(x.recv_async_for(d), flag): the awaiter is a temporary
// of the co_await expression, so it lives across the suspension.
template <class Awaiter>
noting_suspension<Awaiter> noting(Awaiter&& inner, std::atomic<bool>& suspended) noexcept {
  return noting_suspension<Awaiter>(inner, suspended);
}

// Until `suspended` is set (true), or the task behind `handle` finished
// without setting it (false: it never waited). Observed, not timed.
template <class JoinHandle>
bool suspended_before_finished(const std::atomic<bool>& suspended, const JoinHandle& handle) {
  for (;;) {
    // seq_cst, both: the handshake with noting_suspension's store.
    if (suspended.load()) return true;
    if (handle.is_finished()) return suspended.load();
    std::this_thread::yield();
  }
}

#if defined(SLUICE_SANITIZED)
inline constexpr int sanitizer_scale = 8;  // divide iteration counts by this
#else
inline constexpr int sanitizer_scale = 1;
#endif

}  // namespace sluice::test
