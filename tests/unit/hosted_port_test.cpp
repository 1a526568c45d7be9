// The hosted port's workers: their signal mask and how many start by
// default.
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <optional>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include <sluice/detail/worker_port.hpp>
#include <sluice/executor.hpp>
#include <sluice/port.hpp>

namespace {

sluice::task<bool> sigusr1_blocked_here() {
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  co_return sigismember(&mask, SIGUSR1) == 1;
}

// A thread inherits its creator's mask, and a critical_section blocks
// every signal: workers started inside one must still take signals.
TEST(HostedWorkers, StartedInsideACriticalSectionTheyTakeTheMaskFromOutsideIt) {
  sigset_t outside;
  pthread_sigmask(SIG_BLOCK, nullptr, &outside);
  ASSERT_EQ(sigismember(&outside, SIGUSR1), 0) << "the test needs SIGUSR1 unblocked here";
  std::optional<sluice::executor> ex;
  {
    const sluice::critical_section masked;
    ex.emplace(sluice::executor_config{.workers = 1});
  }
  sluice::join_result<bool> blocked = sluice::block_on(*ex, sigusr1_blocked_here());
  ASSERT_TRUE(blocked.has_value());
  EXPECT_FALSE(std::move(blocked).value())
      << "a worker started inside a critical section blocks every signal";
}

// As many workers by default as CPUs the process may run on: asked on a
// thread narrowed to one CPU (as taskset narrows a process), one.
TEST(HostedWorkers, TheDefaultCountIsTheCpusOfTheAffinityMask) {
  cpu_set_t all;
  CPU_ZERO(&all);
  ASSERT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
  EXPECT_EQ(sluice::port::default_worker_count(), static_cast<unsigned>(CPU_COUNT(&all)));
  if (CPU_COUNT(&all) < 2) GTEST_SKIP() << "one CPU: a narrower mask cannot be told apart";
  int first = 0;
  while (!CPU_ISSET(first, &all))
    ++first;
  unsigned narrowed = 0;
  int set_rc = -1;
  std::thread([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    set_rc = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    narrowed = sluice::port::default_worker_count();
  }).join();
  ASSERT_EQ(set_rc, 0);
  EXPECT_EQ(narrowed, 1u) << "the default ignores the affinity mask";
}

}  // namespace
