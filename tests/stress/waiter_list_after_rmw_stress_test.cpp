// No lost wake-up for waiter_list::notify_one_after_seq_cst_rmw against a
// waiter that re-checks a counter bumped by a seq_cst read-modify-write.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <sluice/detail/waiter_list.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>

#include "channel_test_support.hpp"

namespace {

// The Dekker pattern the channel relies on: the waiter enqueues and then
// re-checks a counter; the notifier bumps the counter with a seq_cst RMW and
// then notifies. Every bump must either be seen by the re-check or wake the
// waiter; a lost one leaves the waiter parked and the watchdog fails the test.
TEST(WaiterListAfterRmw, NoLostWakeUpAgainstSeqCstRmw) {
  const int rounds = int(20000 / sluice::test::stress_scale);
  sluice::detail::waiter_list list;
  std::atomic<int> counter{0};
  std::atomic<int> acknowledged{0};
  sluice::test::watchdog dog(std::chrono::seconds(60));
  std::thread notifier([&] {
    for (int i = 1; i <= rounds; ++i) {
      while (acknowledged.load(std::memory_order_acquire) != i - 1)
        std::this_thread::yield();
      counter.fetch_add(1, std::memory_order_seq_cst);
      list.notify_one_after_seq_cst_rmw();
    }
  });
  sluice::parker& self = sluice::port::current_parker();
  for (int i = 1; i <= rounds; ++i) {
    sluice::detail::waiter node;
    for (;;) {
      if (counter.load(std::memory_order_relaxed) >= i) break;
      list.enqueue(node, self.make_waker());
      if (counter.load(std::memory_order_relaxed) >= i) {
        // A notification consumed here needs no passing on: nobody else waits.
        (void)list.cancel(node);
        break;
      }
      while (!node.is_notified())
        self.park();
      (void)list.cancel(node);
    }
    acknowledged.store(i, std::memory_order_release);
  }
  notifier.join();
  EXPECT_EQ(counter.load(), rounds);
}

}  // namespace
