// Turns a hang (a lost wake-up) into a failure: if the guarded scope has
// not finished within the limit, print what was being waited for and abort.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

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

#if defined(SLUICE_SANITIZED)
inline constexpr int sanitizer_scale = 8;  // divide iteration counts by this
#else
inline constexpr int sanitizer_scale = 1;
#endif

}  // namespace sluice::test
