// The workers' next-task slots (executor.hpp, "Next-task slot"): a task
// woken or spawned on a worker goes to that worker's slot, and nothing may
// starve because of it.
#include <sluice/channel.hpp>
#include <sluice/executor.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "executor_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::task;
using sluice::test::abort_watchdog;

task<int> set_flag(std::atomic<bool>& flag) {
  flag.store(true);
  co_return 1;
}

// Spawns `set_flag` (which lands in this worker's slot) and then runs on
// without suspending until the flag is set: only another worker, stealing
// from the slot, can set it.
task<int> spawn_then_spin(std::atomic<bool>& flag) {
  sluice::executor& ex = co_await sluice::current_executor();
  auto h = ex.spawn(set_flag(flag));
  if (!h) co_return -1;
  while (!flag.load())
    std::this_thread::yield();
  co_return *co_await *h;
}

TEST(ExecutorSlot, AParkedWorkerStealsATaskWhoseWorkerRunsOn) {
  abort_watchdog dog{60s, "slot steal by a parked worker"};
  sluice::executor ex{{.workers = 2}};
  // Let both workers finish their spin and park: the spawn into the slot
  // must wake one.
  std::this_thread::sleep_for(50ms);
  std::atomic<bool> flag{false};
  EXPECT_EQ(*sluice::block_on(ex, spawn_then_spin(flag)), 1);
}

TEST(ExecutorSlot, ABusyWorkerStealsATaskWhoseWorkerRunsOn) {
  abort_watchdog dog{60s, "slot steal by a busy worker"};
  sluice::executor ex{{.workers = 2}};
  for (int i = 0; i < 200 / sluice::test::sanitizer_scale; ++i) {
    std::atomic<bool> flag{false};
    ASSERT_EQ(*sluice::block_on(ex, spawn_then_spin(flag)), 1) << "round " << i;
  }
}

task<int> pinger(sluice::sender<int> out, sluice::receiver<int> in, std::atomic<bool>& stop) {
  int rounds = 0;
  while (!stop.load()) {
    if (!co_await out.send_async(rounds)) co_return -1;
    if (!co_await in.recv_async()) co_return -1;
    ++rounds;
  }
  co_return rounds;  // `out` goes: the ponger sees the channel closed
}

task<int> ponger(sluice::receiver<int> in, sluice::sender<int> out) {
  for (;;) {
    auto r = co_await in.recv_async();
    if (!r) co_return 0;
    if (!co_await out.send_async(*r)) co_return -1;
  }
}

TEST(ExecutorSlot, TheRunQueueIsServedWhileTwoTasksHandOverThroughTheSlot) {
  abort_watchdog dog{60s, "run queue starved by slot hand-overs"};
  // One worker: the pair wakes each other through its slot forever unless
  // the worker also serves the run queue, where `set_flag` waits.
  sluice::executor ex{{.workers = 1}};
  std::atomic<bool> stop{false};
  auto [tx1, rx1] = sluice::channel<int>::bounded(1);
  auto [tx2, rx2] = sluice::channel<int>::bounded(1);
  auto a = ex.spawn(pinger(std::move(tx1), std::move(rx2), stop));
  auto b = ex.spawn(ponger(std::move(rx1), std::move(tx2)));
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  std::this_thread::sleep_for(5ms);  // the pair is handing over by now
  auto c = ex.spawn(set_flag(stop));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(*c->join(), 1);
  EXPECT_GE(*a->join(), 1);
  EXPECT_EQ(*b->join(), 0);
}

task<int> spin_until(std::atomic<bool>& release) {
  while (!release.load())
    std::this_thread::yield();
  co_return 0;
}

task<int> record_after_yield(std::mutex& m, std::vector<std::string>& log) {
  {
    const std::lock_guard<std::mutex> lock(m);
    log.emplace_back("a");
  }
  co_await sluice::yield();
  const std::lock_guard<std::mutex> lock(m);
  log.emplace_back("a after yield");
  co_return 0;
}

task<int> record(std::mutex& m, std::vector<std::string>& log) {
  const std::lock_guard<std::mutex> lock(m);
  log.emplace_back("c");
  co_return 0;
}

TEST(ExecutorSlot, AYieldOnAWorkerGoesBehindTheQueuedTasks) {
  abort_watchdog dog{60s, "yield order"};
  sluice::executor ex{{.workers = 1}};
  std::atomic<bool> release{false};
  auto blocker = ex.spawn(spin_until(release));  // holds the one worker
  ASSERT_TRUE(blocker.has_value());
  std::this_thread::sleep_for(5ms);
  std::mutex m;
  std::vector<std::string> log;
  auto a = ex.spawn(record_after_yield(m, log));  // run queue: a, c
  auto c = ex.spawn(record(m, log));
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(c.has_value());
  release.store(true);
  EXPECT_EQ(*blocker->join(), 0);
  EXPECT_EQ(*a->join(), 0);
  EXPECT_EQ(*c->join(), 0);
  // The yield re-queues `a` behind `c`, not into the worker's slot.
  EXPECT_EQ(log, (std::vector<std::string>{"a", "c", "a after yield"}));
}

// A worker's slot is its own: a task of one executor spawned on a worker of
// another goes to its own executor's run queue and runs on that executor's
// worker, not on the spawning worker's thread.
task<std::thread::id> thread_of() {
  co_return std::this_thread::get_id();
}

task<bool> spawn_across(sluice::executor& other) {
  auto h = other.spawn(thread_of());
  if (!h) co_return false;
  const std::thread::id ran_on = *co_await *h;
  co_return ran_on != std::this_thread::get_id();
}

TEST(ExecutorSlot, ASpawnOnAnotherExecutorsWorkerUsesItsOwnQueue) {
  abort_watchdog dog{60s, "spawn across executors"};
  sluice::executor first{{.workers = 1}};
  sluice::executor second{{.workers = 1}};
  EXPECT_TRUE(*sluice::block_on(first, spawn_across(second)));
}

}  // namespace
