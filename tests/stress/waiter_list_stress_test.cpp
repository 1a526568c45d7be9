// Threads wait on a counter through a waiter_list while others bump it and
// notify: every waiter must see every increment it waits for (a lost
// wake-up shows as a watchdog failure, not a hang).
#include <sluice/detail/waiter_list.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

#if defined(SLUICE_SANITIZED)
constexpr int rounds = 2000;
#else
constexpr int rounds = 20000;
#endif

TEST(WaiterListStress, TokensHandedThroughNotifyOneAreNeverLost) {
  // A semaphore built on the list: producers add tokens and notify_one;
  // consumers take a token or wait, with no deadline, so that a lost
  // wake-up leaves a consumer parked while tokens wait (the watchdog below
  // fails then). A consumer that takes a token after it listed itself
  // passes on a notification it consumed, as the channel does; the one
  // that takes the last token wakes every consumer still waiting.
  std::atomic<int> tokens{0};
  std::atomic<int> taken{0};
  sluice::detail::waiter_list list;
  constexpr int producers = 2;
  constexpr int consumers = 3;
  const int total = rounds * producers;

  auto try_take = [&] {
    int t = tokens.load(std::memory_order_acquire);
    while (t > 0) {
      if (tokens.compare_exchange_weak(t, t - 1, std::memory_order_acq_rel)) return true;
    }
    return false;
  };
  // seq_cst: the last taker's increment comes before its notify_all, and a
  // consumer's look at `taken` after it listed itself either sees it or is
  // woken by that notify_all (the list's [W1] fences).
  auto took = [&] {
    if (taken.fetch_add(1) + 1 == total) list.notify_all();
  };

  std::vector<std::thread> pool;
  for (int c = 0; c < consumers; ++c) {
    pool.emplace_back([&] {
      sluice::parker& p = sluice::port::current_parker();
      sluice::detail::waiter w;
      for (;;) {
        if (taken.load() >= total) return;
        if (try_take()) {
          took();
          continue;
        }
        list.enqueue(w, p.make_waker());
        if (try_take()) {
          if (!list.cancel(w)) list.notify_one();
          took();
          continue;
        }
        if (taken.load() >= total) {
          (void)list.cancel(w);
          return;
        }
        while (!w.is_notified())
          p.park();
        // Woken (and taken off the list): loop round and try again.
      }
    });
  }
  for (int i = 0; i < producers; ++i) {
    pool.emplace_back([&] {
      for (int k = 0; k < rounds; ++k) {
        tokens.fetch_add(1, std::memory_order_release);
        list.notify_one();
      }
    });
  }
  const auto watchdog = std::chrono::steady_clock::now() + 60s;
  while (taken.load() < total && std::chrono::steady_clock::now() < watchdog) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(taken.load(), total) << "tokens waited while consumers slept: lost wake-up";
  taken.store(total);  // release stragglers
  list.notify_all();
  for (auto& t : pool)
    t.join();
  EXPECT_EQ(tokens.load(), 0);
}

// Waiters block with no deadline; a lost wake-up would hang them, which the
// watchdog turns into a failure. `waiters` above the list's wake batch (8)
// makes each notify_all wake in several turns of the lock, racing with
// the waiters' own enqueues and cancels.
void blocking_waiters_all_woken(int waiters, int bumpers) {
  std::atomic<int> value{0};
  std::atomic<int> finished{0};
  sluice::detail::waiter_list list;
  const int target = rounds / 4;
  std::vector<std::thread> pool;
  for (int i = 0; i < waiters; ++i) {
    pool.emplace_back([&] {
      sluice::parker& p = sluice::port::current_parker();
      sluice::detail::waiter w;
      int seen = 0;
      while (seen < target) {
        list.enqueue(w, p.make_waker());
        if (value.load(std::memory_order_acquire) != seen) {
          (void)list.cancel(w);
        } else {
          while (!w.is_notified())
            p.park();
        }
        seen = value.load(std::memory_order_acquire);
      }
      finished.fetch_add(1);
    });
  }
  std::vector<std::thread> bumping;
  for (int b = 0; b < bumpers; ++b) {
    bumping.emplace_back([&] {
      // Relaxed: a first guess for the CAS, which hands out the increments
      // and publishes each one (release on success) before its notify.
      int k = value.load(std::memory_order_relaxed);
      while (k < target) {
        if (value.compare_exchange_weak(k, k + 1, std::memory_order_release,
                                        std::memory_order_relaxed)) {
          list.notify_all();
          ++k;
        }
      }
    });
  }
  const auto watchdog = std::chrono::steady_clock::now() + 60s;
  while (finished.load() < waiters && std::chrono::steady_clock::now() < watchdog) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(finished.load(), waiters) << "a waiter was never woken: lost wake-up";
  for (auto& t : bumping)
    t.join();
  for (auto& t : pool)
    t.join();
}

TEST(WaiterListStress, BlockingWaitersAllWokenWithoutTimeouts) {
  blocking_waiters_all_woken(3, 1);
}

TEST(WaiterListStress, MoreBlockingWaitersThanAWakeBatchAllWoken) {
  blocking_waiters_all_woken(20, 2);
}

}  // namespace
