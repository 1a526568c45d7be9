// Each thread's cache of freed heap blocks of tasks (detail/frame_cache.hpp):
// reuse within a class, the per-class and per-thread limits, sizes that
// bypass it, and the drain at thread exit; and that spawned tasks use it.
// The cache is off under AddressSanitizer (config.hpp), where these tests
// skip.
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/detail/frame_cache.hpp>
#include <sluice/executor.hpp>

#include "counting_allocator.hpp"

namespace {

using sluice::detail::frame_cache_allocate;
using sluice::detail::frame_cache_blocks;
using sluice::detail::frame_cache_depth;
using sluice::detail::frame_cache_free;
using sluice::detail::frame_cache_granule;
using sluice::detail::frame_cache_max_blocks;

class FrameCache : public ::testing::Test {
 protected:
  void SetUp() override {
    if constexpr (!sluice::detail::frame_cache_on) GTEST_SKIP() << "no frame cache in this build";
    // Each test runs on a thread of its own, whose cache starts empty.
  }
};

// Runs `body` on a new thread and joins it (each thread has its own cache,
// empty at its start, drained at its exit).
template <class F>
void on_new_thread(F body) {
  std::thread t(body);
  t.join();
}

TEST_F(FrameCache, AFreedBlockServesTheNextRequestOfItsClassOnTheSameThread) {
  on_new_thread([] {
    void* a = frame_cache_allocate(200);
    ASSERT_NE(a, nullptr);
    frame_cache_free(a);
    EXPECT_EQ(frame_cache_blocks(), 1u);
    const long before = sluice::test::allocations;
    void* b = frame_cache_allocate(200 - 7);  // the same class: 193 to 208 bytes
    EXPECT_EQ(b, a) << "the kept block was not reused";
    EXPECT_EQ(sluice::test::allocations, before) << "operator new ran for a kept class";
    EXPECT_EQ(frame_cache_blocks(), 0u);
    void* c = frame_cache_allocate(200 + frame_cache_granule);  // the next one
    EXPECT_NE(c, a);
    frame_cache_free(b);
    frame_cache_free(c);
    EXPECT_EQ(frame_cache_blocks(), 2u);
  });
}

TEST_F(FrameCache, KeepsAtMostItsDepthPerClassAndItsTotalPerThread) {
  on_new_thread([] {
    std::vector<void*> blocks;
    for (std::uint32_t i = 0; i < frame_cache_depth + 3; ++i)
      blocks.push_back(frame_cache_allocate(100));
    const long frees_before = sluice::test::frees;
    for (void* b : blocks)
      frame_cache_free(b);
    EXPECT_EQ(frame_cache_blocks(), frame_cache_depth);
    EXPECT_EQ(sluice::test::frees - frees_before, 3) << "the blocks past the depth were kept";

    // Many classes: the total stops at its limit.
    blocks.clear();
    for (std::uint32_t cls = 10; cls < 30; ++cls)
      for (int i = 0; i < 3; ++i)
        blocks.push_back(frame_cache_allocate(cls * frame_cache_granule));
    for (void* b : blocks)
      frame_cache_free(b);
    EXPECT_EQ(frame_cache_blocks(), frame_cache_max_blocks);
  });
}

TEST_F(FrameCache, ARequestAboveTheLargestClassBypassesIt) {
  on_new_thread([] {
    const long allocations_before = sluice::test::allocations;
    const long frees_before = sluice::test::frees;
    void* big = frame_cache_allocate(4096);
    ASSERT_NE(big, nullptr);
    static_cast<unsigned char*>(big)[4095] = 1;  // all of it is there
    frame_cache_free(big);
    EXPECT_EQ(frame_cache_blocks(), 0u);
    EXPECT_EQ(sluice::test::allocations - allocations_before, 1);
    EXPECT_EQ(sluice::test::frees - frees_before, 1);
  });
}

TEST_F(FrameCache, AThreadsExitFreesWhatItKept) {
  // What a thread's start and exit free by themselves (std::thread's state).
  long before = sluice::test::frees_by_all_threads.load();
  on_new_thread([] {});
  const long thread_itself = sluice::test::frees_by_all_threads.load() - before;
  before = sluice::test::frees_by_all_threads.load();
  on_new_thread([] {
    void* blocks[5];
    for (void*& b : blocks)
      b = frame_cache_allocate(64);
    for (void* b : blocks)
      frame_cache_free(b);
    EXPECT_EQ(frame_cache_blocks(), 5u);
    EXPECT_EQ(sluice::test::frees, 0) << "a kept block was freed";
  });
  EXPECT_EQ(sluice::test::frees_by_all_threads.load() - before, thread_itself + 5)
      << "the thread's exit did not free the blocks it kept";
}

sluice::task<void> link(int depth, int* reached) {
  ++*reached;
  if (depth == 0) co_return;
  sluice::executor& ex = co_await sluice::current_executor();
  if (!ex.spawn_detached(link(depth - 1, reached))) *reached = -1000000;
}

// A chain of spawns, each task spawning the next and completing, on one
// driver: after the first, each spawn takes the block its parent left in
// the cache (the parent completes before the child runs, and the child
// spawns the next): far fewer allocations than spawns.
TEST_F(FrameCache, AChainOfSpawnsReusesBlocks) {
  on_new_thread([] {
    sluice::executor ex{{.threads = sluice::worker_threads::none}};
    constexpr int depth = 200;
    for (int round = 0; round < 3; ++round) {
      int reached = 0;
      const long before = sluice::test::allocations;
      ASSERT_TRUE(ex.spawn_detached(link(depth, &reached)));
      EXPECT_EQ(ex.run_until_idle(), static_cast<std::size_t>(depth + 1));
      EXPECT_EQ(reached, depth + 1);
      EXPECT_LT(sluice::test::allocations - before, 10) << "spawns did not reuse kept blocks";
    }
  });
}

}  // namespace
