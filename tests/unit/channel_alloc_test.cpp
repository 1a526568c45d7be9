// Steady state does not allocate: the global allocation functions of this
// test binary are replaced by counting ones (counting_allocator.cpp; per
// thread, so other threads and the test framework do not disturb the count).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <new>

#include <sluice/channel.hpp>
#include <sluice/detail/frame_cache.hpp>
#include <sluice/executor.hpp>
#include <sluice/frame_pool.hpp>

#include "counting_allocator.hpp"
#include "executor_test_support.hpp"

namespace {

template <class Tx, class Rx>
long allocations_in_steady_state(Tx& tx, Rx& rx, int backlog) {
  // Warm up: go round several times so every block the pattern needs exists.
  auto cycle = [&](int n) {
    for (int i = 0; i < n; ++i) {
      for (int k = 0; k < backlog; ++k)
        EXPECT_TRUE(tx.try_send(k));
      for (int k = 0; k < backlog; ++k)
        EXPECT_TRUE(rx.try_recv());
    }
  };
  cycle(500);
  const long before = sluice::test::allocations;
  cycle(2000);
  return sluice::test::allocations - before;
}

TEST(ChannelAllocation, UnboundedSteadyStateDoesNotAllocate) {
  auto [tx, rx] = sluice::channel<int>::unbounded();
  for (int backlog : {1, 10, 63, 64, 100, 200}) {
    EXPECT_EQ(allocations_in_steady_state(tx, rx, backlog), 0) << "backlog " << backlog;
  }
}

TEST(ChannelAllocation, BoundedAndStaticNeverAllocateAfterCreation) {
  auto [tx, rx] = sluice::channel<int>::bounded(100);
  EXPECT_EQ(allocations_in_steady_state(tx, rx, 100), 0);
  const long before = sluice::test::allocations;
  sluice::static_channel<int, 8> ch;
  EXPECT_EQ(allocations_in_steady_state(ch, ch, 8), 0);
  EXPECT_EQ(sluice::test::allocations - before, 0);
}

TEST(ChannelAllocation, CounterSeesAllocations) {
  const long before = sluice::test::allocations;
  auto [tx, rx] = sluice::channel<int>::unbounded();
  EXPECT_GT(sluice::test::allocations - before, 0) << "the counting allocator must be in use";
}

}  // namespace

namespace {

sluice::task<int> pooled_step(sluice::frame_pool&, int v) {
  co_await sluice::yield();
  co_return v + 1;
}

// Awaits a child task (its frame from the pool too) and a channel.
sluice::task<int> pooled_parent(sluice::frame_pool& pool, int v) {
  const int child = co_await pooled_step(pool, v);
  co_return child * 2;
}

}  // namespace

// The bare-metal configuration: task headers and frames from a frame_pool,
// the run queue in caller storage. Nothing touches the heap, from
// construction to destruction.
TEST(ExecutorAllocation, PoolAndRunQueueStorageNeverAllocate) {
  alignas(sluice::frame_pool::block_alignment) static std::byte
      storage[sluice::frame_pool::storage_for(512, 16)];
  static sluice::run_queue_slot queue[8];
  // The hosted port makes this thread's parker on first use (a bare-metal
  // port's are static): make it before counting.
  (void)sluice::port::current_parker();
  const long before = sluice::test::allocations;
  {
    sluice::frame_pool pool{storage, sizeof storage, 512};
    sluice::executor ex{{.max_tasks = 8,
                         .pool = &pool,
                         .threads = sluice::worker_threads::none,
                         .run_queue = queue}};
    long sum = 0;
    for (int round = 0; round < 3; ++round) {
      auto a = ex.spawn(pooled_parent(pool, 1));
      auto b = ex.spawn(pooled_step(pool, 10));
      ASSERT_TRUE(a.has_value());
      ASSERT_TRUE(b.has_value());
      EXPECT_GT(ex.run_until_idle(), 0u);
      sum += *a->join() + *b->join();
    }
    EXPECT_EQ(sum, 3 * (4 + 11));
    EXPECT_EQ(pool.approx_in_use(), 0u);
  }
  EXPECT_EQ(sluice::test::allocations - before, 0);
}

// Without storage the run queue is the one allocation the executor makes
// at construction (the pool still serves every task).
TEST(ExecutorAllocation, HeapRunQueueIsOneAllocationAtConstruction) {
  alignas(sluice::frame_pool::block_alignment) static std::byte
      storage[sluice::frame_pool::storage_for(512, 4)];
  sluice::frame_pool pool{storage, sizeof storage, 512};
  (void)sluice::port::current_parker();  // as above
  const long before = sluice::test::allocations;
  sluice::executor ex{{.max_tasks = 4, .pool = &pool, .threads = sluice::worker_threads::none}};
  EXPECT_EQ(sluice::test::allocations - before, 1);
  auto a = ex.spawn(pooled_step(pool, 1));
  ASSERT_TRUE(a.has_value());
  ex.run_until_idle();
  EXPECT_EQ(*a->join(), 2);
  EXPECT_EQ(sluice::test::allocations - before, 1);
}

sluice::task<int> heap_step(int v) {
  co_return v + 1;
}
sluice::task<long> heap_parent(int v) {
  // An awaited (never spawned) task: its frame is one allocation too.
  co_return 2L * co_await heap_step(v);
}

// The caller's run queue storage serves one executor after another: each
// starts its slots afresh (they would otherwise hold the sequence numbers
// the first one left, and the second's first push would find them full).
TEST(ExecutorAllocation, RunQueueStorageIsReusedByTheNextExecutor) {
  sluice::test::abort_watchdog dog{std::chrono::seconds(60), "a push onto reused run queue slots"};
  static sluice::run_queue_slot queue[4];
  for (int life = 0; life < 3; ++life) {
    sluice::executor ex{
        {.max_tasks = 4, .threads = sluice::worker_threads::none, .run_queue = queue}};
    for (int i = 0; i < 5; ++i) {  // more pushes than slots: the ring laps
      auto h = ex.spawn(heap_step(i));
      ASSERT_TRUE(h.has_value());
      EXPECT_EQ(ex.run_until_idle(), 1u);
      EXPECT_EQ(*h->join(), i + 1);
    }
  }
}

// Heap blocks this thread took so far: from operator new, or from its
// frame cache (detail/frame_cache.hpp), which serves a spawn with a block a
// task freed earlier.
long heap_blocks_taken() {
  return sluice::test::allocations + static_cast<long>(sluice::detail::frame_cache_hits());
}

// A heap frame keeps room for the header a spawn makes: one allocation per
// spawned task (the frame), freed with the task's last reference whichever
// goes last, the frame or the join handle.
TEST(ExecutorAllocation, HeapSpawnIsOneAllocationPerTask) {
  static sluice::run_queue_slot queue[8];
  (void)sluice::port::current_parker();  // as above
  sluice::executor ex{
      {.max_tasks = 8, .threads = sluice::worker_threads::none, .run_queue = queue}};
  long before = heap_blocks_taken();
  auto a = ex.spawn(heap_step(1));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(heap_blocks_taken() - before, 1) << "frame and header in one block";
  before = heap_blocks_taken();
  auto b = ex.spawn(heap_parent(2));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(heap_blocks_taken() - before, 1);
  EXPECT_EQ(ex.run_until_idle(), 2u);
  EXPECT_EQ(heap_blocks_taken() - before, 2) << "the awaited task's frame";
  EXPECT_EQ(*a->join(), 2);
  EXPECT_EQ(*b->join(), 6);
  // Detached before it ran: the handle's reference goes first, then the
  // run destroys the frame and drops the last reference, which frees the
  // block (ASan would report a use after free in the wrong order).
  auto c = ex.spawn(heap_step(3));
  ASSERT_TRUE(c.has_value());
  c->detach();
  EXPECT_EQ(ex.run_until_idle(), 1u);
  // Spawned detached: one allocation as well, freed by the run that
  // completes it (the scheduler's reference is the only one).
  before = heap_blocks_taken();
  ASSERT_TRUE(ex.spawn_detached(heap_step(4)));
  EXPECT_EQ(heap_blocks_taken() - before, 1);
  EXPECT_EQ(ex.run_until_idle(), 1u);
  EXPECT_EQ(heap_blocks_taken() - before, 1);
}
