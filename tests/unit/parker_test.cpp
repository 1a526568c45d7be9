#include <sluice/parker.hpp>
#include <sluice/port.hpp>

#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace std::chrono_literals;

namespace {

TEST(Parker, UnparkBeforeParkIsKept) {
  sluice::parker& p = sluice::port::current_parker();
  p.unpark();
  p.park();  // returns at once: the token was kept
  SUCCEED();
}

TEST(Parker, OneTokenAtMost) {
  sluice::parker& p = sluice::port::current_parker();
  p.unpark();
  p.unpark();
  p.park();
  const auto start = sluice::port::now();
  p.park_until(sluice::deadline_after(20ms));  // second token was not kept
  EXPECT_GE((sluice::port::now() - start).ns, sluice::duration{20ms}.ns);
}

TEST(Parker, TimesOut) {
  sluice::parker& p = sluice::port::current_parker();
  const auto start = sluice::port::now();
  p.park_until(sluice::deadline_after(10ms));
  EXPECT_GE((sluice::port::now() - start).ns, sluice::duration{10ms}.ns);
}

TEST(Parker, UnparkFromAnotherThreadWakes) {
  sluice::parker& p = sluice::port::current_parker();
  std::atomic<bool> flag{false};
  sluice::waker w = p.make_waker();
  std::thread t([&, w = std::move(w)]() mutable {
    flag.store(true, std::memory_order_relaxed);
    std::move(w).wake();
  });
  while (!flag.load(std::memory_order_relaxed))
    p.park();
  t.join();
}

// parked_now tells a parked owner from one that runs: false before the
// park, true while it waits (seen from another thread, which then unparks
// it), false again once it returned, and false after a park that found a
// token and never waited.
TEST(Parker, ParkedNowTellsAWaitingOwner) {
  sluice::parker& p = sluice::port::current_parker();
  EXPECT_FALSE(p.parked_now());
  p.unpark();
  p.park();  // the token: no wait
  EXPECT_FALSE(p.parked_now());
  std::atomic<bool> returned{false};
  std::thread unparker([&] {
    // Until it is seen parked (the watchdog of the test binary ends a hang).
    while (!p.parked_now())
      std::this_thread::yield();
    EXPECT_FALSE(returned.load());  // seq_cst: pairs with the store after park()
    p.unpark();
  });
  p.park();
  returned.store(true);  // seq_cst: the unparker's check above
  unparker.join();
  EXPECT_FALSE(p.parked_now());
}

TEST(Parker, WakerOutlivesItsThread) {
  sluice::waker w;
  std::thread t([&] { w = sluice::port::current_parker().make_waker(); });
  t.join();
  // The thread is gone; its parker lives until this last reference drops.
  w.wake_by_ref();
  w.reset();
}

TEST(Parker, ManyWakesFromManyThreadsNoneLost) {
  sluice::parker& p = sluice::port::current_parker();
  constexpr int threads = 4;
  constexpr int per_thread = 2000;
  std::atomic<int> produced{0};
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&, w = p.make_waker()] {
      for (int k = 0; k < per_thread; ++k) {
        produced.fetch_add(1, std::memory_order_release);
        w.wake_by_ref();
      }
    });
  }
  while (produced.load(std::memory_order_acquire) < threads * per_thread)
    p.park();
  for (auto& t : pool)
    t.join();
}

// A waker woken from a POSIX signal handler: the handler does only an
// atomic exchange and a futex wake.
sluice::raw_waker signal_target;
std::atomic<int> signal_wakes{0};

void on_signal(int) {
  signal_wakes.fetch_add(1, std::memory_order_relaxed);
  sluice::borrowed_waker w(signal_target);
  w.get().wake_by_ref();
}

TEST(Parker, WakeFromSignalHandler) {
  signal_wakes.store(0, std::memory_order_relaxed);  // counts this run only (--gtest_repeat)
  sluice::parker& p = sluice::port::current_parker();
  sluice::waker w = p.make_waker();
  signal_target = w.as_raw();
  struct sigaction action {};
  action.sa_handler = &on_signal;
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &action, nullptr), 0);

  std::atomic<bool> done{false};
  const pthread_t target = pthread_self();
  std::thread sender([&] {
    // Each signal interrupts the parked thread; it must see every wake.
    for (int i = 0; i < 100; ++i) {
      const int before = signal_wakes.load(std::memory_order_relaxed);
      pthread_kill(target, SIGUSR1);
      while (signal_wakes.load(std::memory_order_relaxed) == before && !done.load()) {
        std::this_thread::yield();
      }
    }
  });
  int seen = 0;
  while (seen < 100) {
    p.park();
    seen = signal_wakes.load(std::memory_order_relaxed);
  }
  done.store(true);
  sender.join();
  signal(SIGUSR1, SIG_DFL);
  EXPECT_EQ(signal_wakes.load(), 100);
}

}  // namespace
