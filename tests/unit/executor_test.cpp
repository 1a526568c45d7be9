// The executor driven on one thread (worker_threads::none) with a recording
// trace, so that exact sequences can be asserted; and a few small
// multi-worker checks of spawn, join, block_on, sleep and timeouts.
#include <sluice/channel.hpp>
#include <sluice/executor.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "build_checks.hpp"
#include "executor_test_support.hpp"
#include "manual_scheduler.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::task;

class recording_trace final : public sluice::executor_trace {
 public:
  void record(sluice::trace_event e, const void* t) noexcept override {
    std::string s = sluice::to_string(e);
    if (t != nullptr) {
      // Two appends, not `" " + name(t)`: GCC 12 at -O3 reports a false
      // -Wrestrict on that operator+ (libstdc++ inlined memcpy).
      s += ' ';
      s += name(t);
    }
    events.push_back(s);
  }
  std::string name(const void* t) {
    for (std::size_t i = 0; i < tasks.size(); ++i)
      if (tasks[i] == t) return std::string(1, static_cast<char>('a' + i));
    tasks.push_back(t);
    return std::string(1, static_cast<char>('a' + tasks.size() - 1));
  }
  std::vector<std::string> events;
  std::vector<const void*> tasks;
};

using trace_t = std::vector<std::string>;

task<int> value(int v) {
  co_return v;
}

task<int> add_after_yield(int a, int b) {
  co_await sluice::yield();
  co_return co_await value(a) + co_await value(b);
}

TEST(Executor, SingleThreadedTraceOfSpawnYieldAndComplete) {
  recording_trace tr;
  sluice::executor ex{{.threads = sluice::worker_threads::none, .trace = &tr}};
  auto h = ex.spawn(add_after_yield(2, 3));
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(ex.run_until_idle(), 2u);
  ASSERT_TRUE(h->is_finished());
  EXPECT_EQ(*h->join(), 5);
  EXPECT_EQ(tr.events,
            (trace_t{"spawn a", "schedule a", "run a", "schedule a", "run a", "complete a"}));
}

// Waits for `e`, then returns 1.
task<int> await_event(sluice::test::manual_event& e) {
  co_await e;
  co_return 1;
}

TEST(Executor, ManyWakesQueueOnceAndWakeAfterCompletionIsIgnored) {
  recording_trace tr;
  sluice::executor ex{{.threads = sluice::worker_threads::none, .trace = &tr}};
  sluice::test::manual_event e;
  auto h = ex.spawn(await_event(e));
  ASSERT_TRUE(h.has_value());
  ex.run_until_idle();
  sluice::waker kept = e.stored_waker().clone();
  e.spurious_wake();
  e.spurious_wake();
  kept.wake_by_ref();
  EXPECT_EQ(ex.run_until_idle(), 1u);  // queued once, polled, still pending
  e.set();
  EXPECT_EQ(ex.run_until_idle(), 1u);
  kept.wake_by_ref();  // complete: nothing
  EXPECT_EQ(ex.run_until_idle(), 0u);
  EXPECT_EQ(tr.events, (trace_t{"spawn a", "schedule a", "run a", "schedule a", "run a",
                                "schedule a", "run a", "complete a"}));
  EXPECT_EQ(*h->join(), 1);
}

TEST(Executor, SpawnFailsCleanlyWhenFull) {
  sluice::executor ex{{.max_tasks = 2, .threads = sluice::worker_threads::none}};
  auto a = ex.spawn(value(1));
  auto b = ex.spawn(value(2));
  auto c = ex.spawn(value(3));
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error(), sluice::spawn_error::too_many_tasks);
  ex.run_until_idle();
  auto d = ex.spawn(value(4));  // room again
  ASSERT_TRUE(d.has_value());
  ex.run_until_idle();
  EXPECT_EQ(*a->join() + *b->join() + *d->join(), 7);
}

task<int> pooled(sluice::frame_pool&, int v) {
  co_await sluice::yield();
  co_return v;
}

TEST(Executor, PoolExhaustionIsAnErrorNotACrash) {
  alignas(sluice::frame_pool::block_alignment) static std::byte
      storage[sluice::frame_pool::storage_for(512, 4)];
  sluice::frame_pool pool{storage, sizeof storage, 512};
  sluice::executor ex{{.pool = &pool, .threads = sluice::worker_threads::none}};
  auto a = ex.spawn(pooled(pool, 1));  // frame + header: 2 blocks
  auto b = ex.spawn(pooled(pool, 2));  // 4 blocks
  auto c = ex.spawn(pooled(pool, 3));  // no frame
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error(), sluice::spawn_error::no_memory);
  ex.run_until_idle();
  EXPECT_EQ(*a->join() + *b->join(), 3);
  EXPECT_EQ(pool.approx_in_use(), 0u);
}

// Holds one thread inside schedule(), between the wake's decision and its
// push, for 50 ms, and says when it is there.
class slow_schedule_on final : public sluice::executor_trace {
 public:
  void record(sluice::trace_event e, const void*) noexcept override {
    if (e == sluice::trace_event::schedule && std::this_thread::get_id() == slow.load()) {
      inside.store(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  std::atomic<std::thread::id> slow{};
  std::atomic<bool> inside{false};
};

TEST(Executor, ShutdownWithoutWorkersRunsAWakeThatPushedAfterItsCancel) {
  sluice::test::abort_watchdog dog{std::chrono::seconds(60), "shutdown waiting for a late push"};
  slow_schedule_on tr;
  sluice::executor ex{{.threads = sluice::worker_threads::none, .trace = &tr}};
  sluice::test::manual_event e;
  auto h = ex.spawn(await_event(e));
  ASSERT_TRUE(h.has_value());
  ex.run_until_idle();  // suspended on `e`
  std::thread waker([&] {
    tr.slow = std::this_thread::get_id();
    e.set();  // decides to push, then sits in the trace for 50 ms
  });
  while (!tr.inside.load())
    std::this_thread::yield();
  // cancel_all finds the task scheduled (no push of its own) and the run
  // queue empty; the push lands up to 50 ms later (a descheduled shutdown
  // may find it there already), and shutdown must still run it.
  ex.shutdown();
  waker.join();
  EXPECT_EQ(h->join().error(), sluice::join_error::cancelled);
}

TEST(Executor, ShutdownCancelsQueuedAndWaitingTasksAndRefusesNewOnes) {
  sluice::executor ex{{.threads = sluice::worker_threads::none}};
  sluice::test::manual_event never;
  auto waiting = ex.spawn(await_event(never));
  ex.run_until_idle();
  auto queued = ex.spawn(value(2));
  ex.shutdown();
  EXPECT_EQ(waiting->join().error(), sluice::join_error::cancelled);
  EXPECT_EQ(queued->join().error(), sluice::join_error::cancelled);
  auto late = ex.spawn(value(3));
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error(), sluice::spawn_error::shut_down);
  EXPECT_EQ(ex.approx_live_tasks(), 0u);
}

TEST(Executor, BlockOnWithWorkers) {
  sluice::executor ex{{.workers = 2}};
  auto r = sluice::block_on(ex, add_after_yield(20, 22));
  EXPECT_EQ(*std::move(r), 42);
}

task<int> sleepy(sluice::duration d, int v) {
  co_await sluice::sleep_for(d);
  co_return v;
}

TEST(Executor, SleepCompletesOnAWorkerTimedWait) {
  sluice::executor ex{{.workers = 2}};
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(*sluice::block_on(ex, sleepy(20ms, 7)), 7);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);  // never early
}

task<int> recv_with_timeout(sluice::receiver<int> rx, sluice::duration d) {
  auto r = co_await sluice::with_timeout(d, rx.recv_async());
  if (!r) co_return -1;
  co_return r->has_value() ? r->value() : -2;
}

TEST(Executor, TimeoutThatWinsAndOneThatLoses) {
  sluice::executor ex{{.workers = 2}};
  auto [tx, rx] = sluice::channel<int>::bounded(4);
  // Wins: nothing is ever sent.
  EXPECT_EQ(*sluice::block_on(ex, recv_with_timeout(rx, 10ms)), -1);
  // Loses: the value is there long before a generous deadline.
  ASSERT_TRUE(tx.try_send(5));
  EXPECT_EQ(*sluice::block_on(ex, recv_with_timeout(rx, 10s)), 5);
}

// --- spawn_detached ----------------------------------------------------------

using sluice::test::frame_probe;

// Adds `v` to `sum` after one yield; its value (v) is nobody's.
task<int> add_to(std::atomic<int>& sum, int v, frame_probe = {}) {
  co_await sluice::yield();
  sum.fetch_add(v);
  co_return v;
}

task<int> await_event_probed(sluice::test::manual_event& e, frame_probe = {}) {
  co_await e;
  co_return 1;
}

TEST(ExecutorDetached, RunsEachTaskAndDestroysItsFrameOnce) {
  frame_probe::reset();
  recording_trace tr;
  sluice::executor ex{{.threads = sluice::worker_threads::none, .trace = &tr}};
  std::atomic<int> sum{0};
  ASSERT_TRUE(ex.spawn_detached(add_to(sum, 1)));
  ASSERT_TRUE(ex.spawn_detached(add_to(sum, 10)));
  EXPECT_EQ(frame_probe::live(), 2);
  EXPECT_EQ(ex.approx_live_tasks(), 2u);
  EXPECT_EQ(ex.run_until_idle(), 4u);  // each: first run to the yield, then the end
  EXPECT_EQ(sum.load(), 11);
  EXPECT_EQ(frame_probe::live(), 0);
  EXPECT_EQ(ex.approx_live_tasks(), 0u);
  EXPECT_EQ(tr.events,
            (trace_t{"spawn a", "schedule a", "spawn b", "schedule b", "run a", "schedule a",
                     "run b", "schedule b", "run a", "complete a", "run b", "complete b"}));
}

TEST(ExecutorDetached, ARefusalSaysWhyAndDestroysTheTaskUnrun) {
  frame_probe::reset();
  sluice::executor ex{{.max_tasks = 1, .threads = sluice::worker_threads::none}};
  std::atomic<int> sum{0};
  ASSERT_TRUE(ex.spawn_detached(add_to(sum, 1)));
  auto full = ex.spawn_detached(add_to(sum, 100));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error(), sluice::spawn_error::too_many_tasks);
  EXPECT_EQ(frame_probe::live(), 1) << "the refused task's frame is destroyed at once";
  EXPECT_EQ(ex.run_until_idle(), 2u);
  EXPECT_EQ(sum.load(), 1);
  ex.shutdown();
  auto late = ex.spawn_detached(add_to(sum, 1000));
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error(), sluice::spawn_error::shut_down);
  EXPECT_EQ(frame_probe::live(), 0);
  EXPECT_EQ(sum.load(), 1);
}

// block_on answers a refused spawn at once, with the reason, and the task
// is destroyed unrun. (It used to join a handle that was never made: a
// release build waited for ever.) No worker is needed for a refusal.
TEST(Executor, BlockOnAnswersARefusedSpawnWithItsReason) {
  sluice::test::abort_watchdog dog{std::chrono::seconds(50), "block_on of a refused spawn"};
  frame_probe::reset();
  std::atomic<int> sum{0};  // add_to's; no workers: every task runs on this thread
  {
    sluice::executor ex{{.max_tasks = 1, .threads = sluice::worker_threads::none}};
    ASSERT_TRUE(ex.spawn_detached(add_to(sum, 1)));
    auto full = sluice::block_on(ex, add_to(sum, 100));
    ASSERT_FALSE(full.has_value());
    EXPECT_EQ(full.error(), sluice::join_error::too_many_tasks);
    EXPECT_STREQ(sluice::to_string(full.error()), "not spawned: too many tasks");
    EXPECT_EQ(frame_probe::live(), 1) << "the refused task's frame is destroyed at once";
    ex.run_until_idle();
    ex.shutdown();
    auto late = sluice::block_on(ex, add_to(sum, 1000));
    ASSERT_FALSE(late.has_value());
    EXPECT_EQ(late.error(), sluice::join_error::shut_down);
    EXPECT_STREQ(sluice::to_string(late.error()), "not spawned: shut down");
  }
  {
    alignas(sluice::frame_pool::block_alignment) static std::byte
        storage[sluice::frame_pool::storage_for(512, 2)];
    sluice::frame_pool pool{storage, sizeof storage, 512};
    sluice::executor ex{{.pool = &pool, .threads = sluice::worker_threads::none}};
    auto first = ex.spawn(pooled(pool, 1));  // frame + header: both blocks
    ASSERT_TRUE(first.has_value());
    auto none = sluice::block_on(ex, pooled(pool, 2));
    ASSERT_FALSE(none.has_value());
    EXPECT_EQ(none.error(), sluice::join_error::no_memory);
    EXPECT_STREQ(sluice::to_string(none.error()), "not spawned: no memory");
    ex.run_until_idle();
    EXPECT_EQ(*first->join(), 1);
  }
  EXPECT_EQ(frame_probe::live(), 0);
  EXPECT_EQ(sum.load(), 1) << "a refused task ran";
}

void executor_for_no_tasks() {
  sluice::executor ex{{.max_tasks = 0, .threads = sluice::worker_threads::none}};
}

TEST(ExecutorDeathTest, NoRoomForATaskIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only (release, below)");
  EXPECT_DEATH(executor_for_no_tasks(), "executor max_tasks must be at least 1");
}

// Counts the workers' parks: each is recorded after a look at the run
// queue that found nothing.
class park_counter final : public sluice::executor_trace {
 public:
  void record(sluice::trace_event e, const void*) noexcept override {
    // Relaxed: a count the test polls; nothing is read through it.
    if (e != sluice::trace_event::park) return;
    parks.fetch_add(1, std::memory_order_relaxed);
    // Each executor's workers are threads of their own.
    thread_local bool counted = false;
    if (!std::exchange(counted, true)) parked_threads.fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic<int> parks{0};
  std::atomic<int> parked_threads{0};  // threads that parked at least once
};

// max_tasks 0 in a release build: every spawn is refused, and the workers
// look at a queue of one fresh slot that no task enters, not at the
// caller's run_queue storage. (They read its slot 0 uninitialised: here
// filled with 0xbe, as AddressSanitizer fills fresh heap blocks, a worker
// took it for a task, or spun on it and never parked.)
TEST(Executor, NoRoomForATaskRefusesEverySpawnInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop in the constructor (the death test above)");
  for (const auto threads : {sluice::worker_threads::none, sluice::worker_threads::start}) {
    SCOPED_TRACE(threads == sluice::worker_threads::none ? "no workers" : "two workers");
    sluice::test::abort_watchdog dog{std::chrono::seconds(50), "an executor for no tasks"};
    sluice::run_queue_slot dirty[2];
    std::memset(static_cast<void*>(dirty), 0xbe, sizeof dirty);
    park_counter parks;
    sluice::executor ex{
        {.workers = 2, .max_tasks = 0, .threads = threads, .trace = &parks, .run_queue = dirty}};
    auto h = ex.spawn(value(1));
    ASSERT_FALSE(h.has_value());
    EXPECT_EQ(h.error(), sluice::spawn_error::too_many_tasks);
    auto r = sluice::block_on(ex, value(2));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), sluice::join_error::too_many_tasks);
    if (threads == sluice::worker_threads::none) {
      EXPECT_EQ(ex.run_until_idle(), 0u);
    } else {
      // Both workers looked at the queue, found nothing and parked.
      while (parks.parked_threads.load(std::memory_order_relaxed) < 2)
        std::this_thread::yield();
    }
    EXPECT_EQ(ex.approx_live_tasks(), 0u);
    ex.shutdown();
  }
}

TEST(ExecutorDetached, ShutdownCancelsAWaitingDetachedTask) {
  frame_probe::reset();
  sluice::executor ex{{.threads = sluice::worker_threads::none}};
  sluice::test::manual_event never;
  ASSERT_TRUE(ex.spawn_detached(await_event_probed(never)));
  EXPECT_EQ(ex.run_until_idle(), 1u);  // suspended on `never`
  EXPECT_EQ(frame_probe::live(), 1);
  ex.shutdown();
  EXPECT_EQ(frame_probe::live(), 0);
  EXPECT_EQ(ex.approx_live_tasks(), 0u);
}

// A waker clone outlives the detached task: the last reference is the
// waker's, and a wake through it after completion does nothing.
TEST(ExecutorDetached, AWakerKeptPastCompletionIsTheLastReference) {
  frame_probe::reset();
  sluice::executor ex{{.threads = sluice::worker_threads::none}};
  sluice::test::manual_event e;
  ASSERT_TRUE(ex.spawn_detached(await_event_probed(e)));
  EXPECT_EQ(ex.run_until_idle(), 1u);
  sluice::waker kept = e.stored_waker().clone();
  e.set();
  EXPECT_EQ(ex.run_until_idle(), 1u);
  EXPECT_EQ(frame_probe::live(), 0) << "the frame goes at completion";
  kept.wake_by_ref();
  EXPECT_EQ(ex.run_until_idle(), 0u);
  std::move(kept).wake();  // drops the last reference (ASan checks the free)
}

// A task whose only reference is the scheduler's and that never suspended
// starts and completes with plain stores ([T5] in task_state.hpp). These
// check the cases where that must not happen, or must see what others did.

std::atomic<int> bodies_run{0};
task<int> counts_its_run(frame_probe = {}) {
  bodies_run.fetch_add(1);
  co_return 0;
}

// A cancel through the join handle, then the handle dropped: the first run
// (with the scheduler's reference the only one) must see the cancel.
TEST(ExecutorDetached, ACancelMadeBeforeTheHandleWasDroppedIsSeenByTheFirstRun) {
  frame_probe::reset();
  bodies_run = 0;
  sluice::executor ex{{.threads = sluice::worker_threads::none}};
  auto h = ex.spawn(counts_its_run());
  ASSERT_TRUE(h.has_value());
  EXPECT_TRUE(h->cancel());
  h->detach();
  EXPECT_EQ(ex.run_until_idle(), 1u);
  EXPECT_EQ(bodies_run.load(), 0) << "a cancelled task must not be polled";
  EXPECT_EQ(frame_probe::live(), 0);
}

// Holds its worker until `go` is set.
task<int> holds_the_worker(std::atomic<bool>& go) {
  while (!go.load())
    std::this_thread::yield();
  co_return 0;
}

// The same on a worker thread: the test thread cancels and drops the handle
// while the only worker is held, so the task's first run comes after both,
// on another thread.
TEST(ExecutorDetached, ACancelFromAnotherThreadBeforeTheDropIsSeenOnAWorker) {
  sluice::test::abort_watchdog dog{std::chrono::seconds(60), "cancel, drop, run on a worker"};
  frame_probe::reset();
  bodies_run = 0;
  {
    sluice::executor ex{{.workers = 1}};
    for (int round = 0; round < 50; ++round) {
      std::atomic<bool> go{false};
      auto holder = ex.spawn(holds_the_worker(go));
      ASSERT_TRUE(holder.has_value());
      auto h = ex.spawn(counts_its_run());
      ASSERT_TRUE(h.has_value());
      EXPECT_TRUE(h->cancel());  // the worker is held (or has not started): not complete
      h->detach();
      go = true;
      (void)holder->join();
    }
  }
  EXPECT_EQ(bodies_run.load(), 0);
  EXPECT_EQ(frame_probe::live(), 0);
}

// Clones the running task's waker into `out` without suspending.
struct clone_own_waker {
  sluice::waker* out;
  bool await_ready() noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
    *out = h.promise().context().current_waker->clone();
    return false;
  }
  void await_resume() noexcept {}
};

task<int> hands_out_its_waker(sluice::waker* out, frame_probe = {}) {
  co_await clone_own_waker{out};
  co_return 0;
}

// A detached task that never suspended but gave a clone of its waker away:
// it completes with the clone still held (so not unshared), and a wake and
// the drop of that clone afterwards are harmless (ASan checks the free).
TEST(ExecutorDetached, AWakerCloneMadeInTheOnlyRunOutlivesTheTask) {
  frame_probe::reset();
  sluice::executor ex{{.threads = sluice::worker_threads::none}};
  sluice::waker kept;
  ASSERT_TRUE(ex.spawn_detached(hands_out_its_waker(&kept)));
  EXPECT_EQ(ex.run_until_idle(), 1u);
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(frame_probe::live(), 0);
  kept.wake_by_ref();  // complete: nothing is queued
  EXPECT_EQ(ex.run_until_idle(), 0u);
  std::move(kept).wake();  // the last reference
}

TEST(ExecutorDetached, ManyDetachedTasksOnTwoWorkers) {
  sluice::test::abort_watchdog dog{std::chrono::seconds(60), "detached tasks on two workers"};
  frame_probe::reset();
  constexpr int n = 20'000 / sluice::test::sanitizer_scale;
  std::atomic<int> sum{0};
  {
    sluice::executor ex{{.workers = 2}};
    for (int i = 0; i < n; ++i) {
      // A full run queue (max_tasks live) is a refusal: wait and retry.
      while (!ex.spawn_detached(add_to(sum, 1)))
        std::this_thread::yield();
    }
    while (sum.load() != n)
      std::this_thread::yield();
  }
  EXPECT_EQ(sum.load(), n);
  EXPECT_EQ(frame_probe::live(), 0);
}

}  // namespace
