// The workers' next-task slots and FIFOs (executor.hpp, "Next-task slot"
// and "Worker queue"): a task woken or spawned on a worker goes to that
// worker's slot, a task that yields to that worker's FIFO, and nothing may
// starve because of either.
#include <sluice/channel.hpp>
#include <sluice/executor.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
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

// Spawns `spin_until` (which lands in this worker's slot and, run next on
// this worker, blocks it until `flag` is set), then yields: the rest of
// this task, which sets the flag, waits in this worker's FIFO, where only
// another worker, stealing, can take it (unless that worker stole the
// spinner from the slot first).
task<int> spawn_spinner_then_yield(std::atomic<bool>& flag) {
  sluice::executor& ex = co_await sluice::current_executor();
  auto h = ex.spawn(spin_until(flag));
  if (!h) co_return -1;
  co_await sluice::yield();
  flag.store(true);
  co_return 1 + *co_await *h;
}

TEST(ExecutorFifo, AYieldedTaskIsStolenWhileItsWorkerIsBlocked) {
  abort_watchdog dog{60s, "a yielded task stuck behind a blocked worker"};
  sluice::executor ex{{.workers = 2}};
  for (int round = 0; round < 50; ++round) {
    std::atomic<bool> flag{false};
    auto h = ex.spawn(spawn_spinner_then_yield(flag));
    ASSERT_TRUE(h.has_value());
    EXPECT_EQ(*h->join(), 1);
  }
}

task<int> yield_times(int n, std::atomic<long>& yields) {
  for (int i = 0; i < n; ++i) {
    co_await sluice::yield();
    yields.fetch_add(1, std::memory_order_relaxed);
  }
  co_return n;
}
task<long> spawn_yielders(int tasks, int each, std::atomic<long>& yields) {
  sluice::executor& ex = co_await sluice::current_executor();
  std::vector<sluice::join_handle<int>> hs;
  for (int t = 0; t < tasks; ++t) {
    auto h = ex.spawn(yield_times(each, yields));
    if (!h) co_return -1;
    hs.push_back(std::move(h).value());
  }
  long sum = 0;
  for (auto& h : hs)
    sum += *co_await h;
  co_return sum;
}

// More yielding tasks than a FIFO holds (256), spawned on a worker: the
// overflow goes to the run queue, and every yield and task completes,
// with one worker and with two.
TEST(ExecutorFifo, MoreYieldingTasksThanAFifoHoldsAllComplete) {
  abort_watchdog dog{60s, "FIFO overflow"};
  for (unsigned workers : {1u, 2u}) {
    sluice::executor ex{{.workers = workers}};
    std::atomic<long> yields{0};
    sluice::join_result<long> r = sluice::block_on(ex, spawn_yielders(600, 20, yields));
    ASSERT_TRUE(r.has_value());
    const long sum = std::move(r).value();
    EXPECT_EQ(sum, 600L * 20);
    EXPECT_EQ(yields.load(), 600L * 20);
  }
}

// A yield lets the run queue's head go first, but queued tasks that yield
// in turn must not hold the yielder up: with one worker and a run queue
// full of tasks that each yield, the yielder runs again after at most one
// of them.
struct run_log {
  std::mutex m;
  std::vector<std::string> entries;
  void add(std::string e) {
    const std::lock_guard<std::mutex> lock(m);
    entries.push_back(std::move(e));
  }
};
task<int> yield_once_logged(run_log& log) {
  log.add("g");
  co_await sluice::yield();
  log.add("g");
  co_return 0;
}
task<int> yield_when_queued(run_log& log, std::atomic<int>& spawned, std::atomic<bool>& done) {
  while (spawned.load() < 10)  // the run queue fills meanwhile
    std::this_thread::yield();
  log.add("X yields");
  co_await sluice::yield();
  log.add("X again");
  done.store(true);
  co_return 0;
}

TEST(ExecutorFifo, QueuedTasksThatYieldDoNotHoldUpAYieldedTask) {
  abort_watchdog dog{60s, "a yielded task held up"};
  sluice::executor ex{{.workers = 1}};
  run_log log;
  std::atomic<int> spawned{0};
  std::atomic<bool> done{false};
  auto x = ex.spawn(yield_when_queued(log, spawned, done));
  ASSERT_TRUE(x.has_value());
  std::vector<sluice::join_handle<int>> hs;
  while (!done.load() && hs.size() < 2000) {
    auto h = ex.spawn(yield_once_logged(log));
    ASSERT_TRUE(h.has_value());
    hs.push_back(std::move(h).value());
    spawned.store(static_cast<int>(hs.size()));
  }
  EXPECT_EQ(*x->join(), 0);
  for (auto& h : hs)
    EXPECT_EQ(*h.join(), 0);
  const auto& e = log.entries;
  const auto yielded = std::find(e.begin(), e.end(), "X yields");
  const auto again = std::find(e.begin(), e.end(), "X again");
  ASSERT_NE(yielded, e.end());
  ASSERT_NE(again, e.end());
  EXPECT_LE(again - yielded, 2) << "runs of other tasks between the yield and the resume: "
                                << (again - yielded - 1);
}

}  // namespace
