// spin_lock: a test-and-test-and-set lock for short critical sections
// between threads or cores (the executor's live list, the timer queue).
// Never taken in a signal or interrupt handler: a handler that interrupted
// the holder would spin forever.
#pragma once

#include <cstdint>

#include <sluice/detail/atomic.hpp>
#include <sluice/detail/backoff.hpp>

namespace sluice::detail {

class spin_lock {
 public:
  void lock() noexcept {
    backoff spin;
    // Acquire [SL1]: pairs with the release in unlock(); the new holder
    // sees everything the previous holders wrote under the lock.
    while (locked_.exchange(1, std::memory_order_acquire) != 0) {
      // Relaxed: wait until it looks free before trying again (no write,
      // so waiting holders do not take the line from each other).
      while (locked_.load(std::memory_order_relaxed) != 0)
        spin.spin();
    }
  }
  void unlock() noexcept {
    // Release [SL1].
    locked_.store(0, std::memory_order_release);
  }

 private:
  atomic<std::uint32_t> locked_{0};
};

}  // namespace sluice::detail
