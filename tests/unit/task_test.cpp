// task<T>, the task header and run_task on a single-threaded recording
// scheduler: exact sequences of pushes, runs and completions.
#include <sluice/detail/task_header.hpp>
#include <sluice/frame_pool.hpp>
#include <sluice/join_handle.hpp>
#include <sluice/task.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "build_checks.hpp"
#include "manual_scheduler.hpp"

namespace {

using sluice::task;
using sluice::test::manual_event;
using sluice::test::manual_scheduler;
using trace_t = std::vector<std::string>;

// Counts its own destructions: put one in a frame to see it destroyed once.
struct frame_probe {
  int* destroyed;
  ~frame_probe() { ++*destroyed; }
};

task<int> wait_then_return(manual_event& e, int value, int* started, int* destroyed) {
  frame_probe probe{destroyed};
  ++*started;
  co_await e;
  co_return value;
}

TEST(Task, IsLazyAndRunsOnlyWhenScheduled) {
  manual_scheduler s;
  manual_event e;
  int started = 0;
  int destroyed = 0;
  task<int> t = wait_then_return(e, 7, &started, &destroyed);
  EXPECT_EQ(started, 0);
  auto h = s.spawn(std::move(t), "a");
  EXPECT_EQ(started, 0);
  EXPECT_TRUE(s.run_one());
  EXPECT_EQ(started, 1);
  EXPECT_FALSE(h.is_finished());
  e.set();
  s.run_until_idle();
  ASSERT_TRUE(h.is_finished());
  EXPECT_EQ(destroyed, 1);
  auto r = h.join();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::move(r).value(), 7);
  EXPECT_EQ(s.trace, (trace_t{"push a", "run a", "push a", "run a", "complete a"}));
}

TEST(Task, SeveralWakesBeforeItRunsQueueItOnce) {
  manual_scheduler s;
  manual_event e;
  int started = 0;
  int destroyed = 0;
  auto h = s.spawn(wait_then_return(e, 1, &started, &destroyed), "a");
  s.run_one();
  ASSERT_TRUE(e.has_waker());
  for (int i = 0; i < 5; ++i)
    e.spurious_wake();
  EXPECT_EQ(s.queue.size(), 1u);
  s.run_one();  // polled, still pending
  EXPECT_TRUE(s.queue.empty());
  EXPECT_EQ(e.polls, 2);
  EXPECT_EQ(s.trace, (trace_t{"push a", "run a", "push a", "run a"}));
  e.set();
  e.set();  // the waker is gone after the first: nothing more
  s.run_until_idle();
  EXPECT_TRUE(h.is_finished());
  EXPECT_EQ(destroyed, 1);
}

// Wakes itself (through the borrowed waker) while it runs, several times.
struct wake_self_while_running : sluice::pollable_awaiter<wake_self_while_running> {
  int* polls;
  bool try_complete() noexcept { return false; }
  sluice::poll_status poll(const sluice::waker& w) noexcept {
    if ((*polls)++ > 0) return sluice::poll_status::ready;
    w.wake_by_ref();
    w.wake_by_ref();
    w.wake_by_ref();
    return sluice::poll_status::pending;
  }
  void await_resume() noexcept {}
};

task<void> self_waking(int* polls) {
  co_await wake_self_while_running{{}, polls};
}

TEST(Task, WakeWhileRunningRequeuesOnceAfterItSuspends) {
  manual_scheduler s;
  int polls = 0;
  auto h = s.spawn(self_waking(&polls), "a");
  s.run_one();
  EXPECT_EQ(s.queue.size(), 1u);  // re-queued once, by end_run
  s.run_until_idle();
  EXPECT_EQ(polls, 2);
  EXPECT_TRUE(h.is_finished());
  EXPECT_EQ(s.trace, (trace_t{"push a", "run a", "push a", "run a", "complete a"}));
}

TEST(Task, WakeAfterCompletionDoesNothing) {
  manual_scheduler s;
  manual_event e;
  int started = 0;
  int destroyed = 0;
  auto h = s.spawn(wait_then_return(e, 3, &started, &destroyed), "a");
  s.run_one();
  sluice::waker kept = e.stored_waker().clone();
  e.set();
  s.run_until_idle();
  ASSERT_TRUE(h.is_finished());
  const auto before = s.trace;
  kept.wake_by_ref();
  std::move(kept).wake();
  EXPECT_TRUE(s.queue.empty());
  EXPECT_EQ(s.trace, before);
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(started, 1);
}

task<int> leaf(manual_event& e, int v) {
  co_await e;
  co_return v;
}
task<int> middle(manual_event& e1, manual_event& e2) {
  const int a = co_await leaf(e1, 10);
  const int b = co_await leaf(e2, 20);
  co_return a + b;
}
task<int> root(manual_event& e1, manual_event& e2) {
  co_return 1 + co_await middle(e1, e2);
}

TEST(Task, NestedTasksAreDrivenThroughTheRootsWaker) {
  manual_scheduler s;
  manual_event e1;
  manual_event e2;
  auto h = s.spawn(root(e1, e2), "root");
  s.run_one();
  ASSERT_TRUE(e1.has_waker());
  // The innermost awaiter holds the root task's waker.
  EXPECT_EQ(e1.stored_waker().as_raw().data, static_cast<const void*>(h.cell()));
  e1.set();
  s.run_one();
  ASSERT_TRUE(e2.has_waker());
  EXPECT_EQ(e2.stored_waker().as_raw().data, static_cast<const void*>(h.cell()));
  EXPECT_FALSE(h.is_finished());
  e2.set();
  s.run_until_idle();
  auto r = h.join();
  EXPECT_EQ(*std::move(r), 31);
}

TEST(Task, CancelWhileSuspendedDestroysTheFrameOnceAndJoinReportsIt) {
  manual_scheduler s;
  manual_event e;
  int started = 0;
  int destroyed = 0;
  auto h = s.spawn(wait_then_return(e, 5, &started, &destroyed), "a");
  s.run_one();
  EXPECT_TRUE(h.cancel());
  EXPECT_TRUE(h.cancel());  // idempotent while not complete
  s.run_until_idle();
  EXPECT_EQ(destroyed, 1);
  ASSERT_TRUE(h.is_finished());
  EXPECT_FALSE(h.cancel());  // too late
  e.set();                   // the stored waker: the task is complete
  EXPECT_TRUE(s.queue.empty());
  auto r = h.join();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), sluice::join_error::cancelled);
  EXPECT_EQ(s.trace, (trace_t{"push a", "run a", "push a", "run a", "complete a"}));
}

TEST(Task, CancelBeforeFirstRunNeverStartsIt) {
  manual_scheduler s;
  manual_event e;
  int started = 0;
  int destroyed = 0;
  auto h = s.spawn(wait_then_return(e, 5, &started, &destroyed), "a");
  EXPECT_TRUE(h.cancel());
  s.run_until_idle();
  EXPECT_EQ(started, 0);
  EXPECT_EQ(destroyed, 0);  // the body never ran: the probe was never built
  EXPECT_EQ(h.join().error(), sluice::join_error::cancelled);
}

TEST(Task, CancelWhileRunningIsSeenAtTheNextSuspension) {
  manual_scheduler s;
  sluice::join_handle<void> self;
  int after = 0;
  auto body = [](sluice::join_handle<void>* me, manual_event* never, int* after) -> task<void> {
    me->cancel();  // requested while running
    co_await *never;
    ++*after;
  };
  manual_event never;
  self = s.spawn(body(&self, &never, &after), "a");
  s.run_until_idle();
  EXPECT_EQ(after, 0);
  ASSERT_TRUE(self.is_finished());
  EXPECT_EQ(self.join().error(), sluice::join_error::cancelled);
  EXPECT_EQ(s.trace, (trace_t{"push a", "run a", "complete a"}));
}

task<int> throws() {
  throw std::runtime_error("boom");
  co_return 0;
}
task<int> rethrows_nested() {
  co_return co_await throws();
}

TEST(Task, ExceptionsReachTheJoiner) {
  manual_scheduler s;
  auto h = s.spawn(rethrows_nested(), "a");
  s.run_until_idle();
  EXPECT_THROW((void)h.join(), std::runtime_error);
}

task<void> yielder(int* steps) {
  for (int i = 0; i < 3; ++i) {
    ++*steps;
    co_await sluice::yield();
  }
}

TEST(Task, YieldRequeuesBehindOthers) {
  manual_scheduler s;
  int a = 0;
  int b = 0;
  auto ha = s.spawn(yielder(&a), "a");
  auto hb = s.spawn(yielder(&b), "b");
  s.run_until_idle();
  EXPECT_EQ(s.trace, (trace_t{"push a", "push b", "run a", "push a", "run b", "push b", "run a",
                              "push a", "run b", "push b", "run a", "push a", "run b", "push b",
                              "run a", "complete a", "run b", "complete b"}));
  EXPECT_EQ(a, 3);
  EXPECT_EQ(b, 3);
}

task<int> joiner(sluice::join_handle<int>& other) {
  auto r = co_await other;
  co_return *std::move(r) + 1;
}

TEST(Task, AwaitingAJoinHandleFromATask) {
  manual_scheduler s;
  manual_event e;
  int started = 0;
  int destroyed = 0;
  auto inner = s.spawn(wait_then_return(e, 41, &started, &destroyed), "inner");
  auto outer = s.spawn(joiner(inner), "outer");
  s.run_until_idle();
  EXPECT_FALSE(outer.is_finished());
  e.set();
  s.run_until_idle();
  EXPECT_EQ(*outer.join(), 42);
  EXPECT_EQ(s.trace,
            (trace_t{"push inner", "push outer", "run inner", "run outer", "push inner",
                     "run inner", "push outer", "complete inner", "run outer", "complete outer"}));
}

task<int> pooled(sluice::frame_pool&, int v) {
  co_return v;
}

TEST(Task, FramesFromAPoolAndExhaustionGivesAnInvalidTask) {
  alignas(sluice::frame_pool::block_alignment) static std::byte
      storage[sluice::frame_pool::storage_for(512, 3)];
  sluice::frame_pool pool{storage, sizeof storage, 512};
  ASSERT_EQ(pool.capacity(), 3u);
  manual_scheduler s;
  task<int> t1 = pooled(pool, 1);
  ASSERT_TRUE(t1.valid());
  EXPECT_EQ(pool.approx_in_use(), 1u);
  auto h1 = s.spawn(std::move(t1), "a", &pool);  // the cell from the pool too
  ASSERT_TRUE(h1.valid());
  EXPECT_EQ(pool.approx_in_use(), 2u);
  task<int> t2 = pooled(pool, 2);
  ASSERT_TRUE(t2.valid());
  task<int> t3 = pooled(pool, 3);
  EXPECT_FALSE(t3.valid());  // exhausted: no crash, no throw
  s.run_until_idle();
  EXPECT_EQ(*h1.join(), 1);
  EXPECT_EQ(pool.approx_in_use(), 1u);  // frame and cell returned
  t2 = task<int>{};
  EXPECT_EQ(pool.approx_in_use(), 0u);
}

// A parent awaiting a child whose frame the pool had no room for: a debug
// build names it, a release build throws std::bad_alloc into the parent
// (which may catch it; one that lets it go hands it to its joiner). It
// dereferenced the null frame.
task<int> await_a_child_from(sluice::frame_pool* pool, bool catches) {
  if (!catches) co_return co_await pooled(*pool, 5);
  try {
    co_return co_await pooled(*pool, 5);
  } catch (const std::bad_alloc&) {
    co_return -1;
  }
}

void await_a_child_without_a_frame() {
  alignas(sluice::frame_pool::block_alignment) static std::byte
      storage[sluice::frame_pool::storage_for(512, 1)];
  sluice::frame_pool pool{storage, sizeof storage, 512};
  task<int> hog = pooled(pool, 0);
  manual_scheduler s;
  auto h = s.spawn(await_a_child_from(&pool, true), "a");
  s.run_until_idle();
}

TEST(TaskDeathTest, AwaitingAnInvalidTaskIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only (release, below)");
  EXPECT_DEATH(await_a_child_without_a_frame(), "co_await on an invalid task");
}

TEST(Task, AwaitingAChildWithoutAFrameThrowsBadAllocInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  alignas(sluice::frame_pool::block_alignment) static std::byte
      storage[sluice::frame_pool::storage_for(512, 1)];
  sluice::frame_pool pool{storage, sizeof storage, 512};
  task<int> hog = pooled(pool, 0);  // the one block
  ASSERT_FALSE(pooled(pool, 1).valid());
  manual_scheduler s;
  auto caught = s.spawn(await_a_child_from(&pool, true), "a");
  auto thrown = s.spawn(await_a_child_from(&pool, false), "b");
  s.run_until_idle();
  EXPECT_EQ(*caught.join(), -1);
  EXPECT_THROW((void)thrown.join(), std::bad_alloc);
  hog = task<int>{};
  EXPECT_EQ(pool.approx_in_use(), 0u);
}

}  // namespace
