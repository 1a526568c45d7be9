// detail::local_queue, a worker's FIFO (one producer, any consumers): order,
// capacity, and under threads every item taken exactly once.
#include <sluice/detail/local_queue.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

#include "executor_test_support.hpp"

namespace {

using sluice::detail::local_queue;

TEST(LocalQueue, PopsInPushOrderAndNullWhenEmpty) {
  int items[3] = {};
  local_queue<int, 4> q;
  EXPECT_TRUE(q.approx_empty());
  EXPECT_EQ(q.pop(), nullptr);
  for (int& i : items)
    ASSERT_TRUE(q.push(&i));
  EXPECT_FALSE(q.approx_empty());
  for (int& i : items)
    EXPECT_EQ(q.pop(), &i);
  EXPECT_EQ(q.pop(), nullptr);
  EXPECT_TRUE(q.approx_empty());
}

TEST(LocalQueue, RefusesWhenFullAndTakesAgainAfterAPop) {
  int items[5] = {};
  local_queue<int, 4> q;
  for (int k = 0; k < 4; ++k)
    ASSERT_TRUE(q.push(&items[k]));
  EXPECT_FALSE(q.push(&items[4])) << "a full queue refuses";
  EXPECT_EQ(q.pop(), &items[0]);
  EXPECT_TRUE(q.push(&items[4])) << "one popped, one place";
  for (int k = 1; k < 5; ++k)
    EXPECT_EQ(q.pop(), &items[k]);
  EXPECT_EQ(q.pop(), nullptr);
}

TEST(LocalQueue, WrapsAroundManyLaps) {
  int items[3] = {};
  local_queue<int, 2> q;
  for (int lap = 0; lap < 1000; ++lap) {
    ASSERT_TRUE(q.push(&items[lap % 3]));
    ASSERT_TRUE(q.push(&items[(lap + 1) % 3]));
    ASSERT_FALSE(q.push(&items[0]));
    ASSERT_EQ(q.pop(), &items[lap % 3]);
    ASSERT_EQ(q.pop(), &items[(lap + 1) % 3]);
  }
}

// The owner pushes every item once (and pops some itself) while thieves
// pop: each item is taken exactly once, and each thread sees the items it
// takes in push order (the queue is FIFO for every consumer).
TEST(LocalQueue, OwnerAndThievesTakeEveryItemExactlyOnce) {
  const int n = 200000 / sluice::test::sanitizer_scale;
  constexpr int thieves = 3;
  std::vector<int> items(static_cast<std::size_t>(n));
  std::vector<std::atomic<int>> taken(static_cast<std::size_t>(n));
  for (int k = 0; k < n; ++k)
    items[static_cast<std::size_t>(k)] = k;
  local_queue<int, 8> q;  // small: the owner meets a full queue often
  std::atomic<bool> done{false};
  std::atomic<int> out_of_order{0};
  auto take = [&](int* item, int& last) {
    taken[static_cast<std::size_t>(*item)].fetch_add(1, std::memory_order_relaxed);
    if (*item <= last) out_of_order.fetch_add(1, std::memory_order_relaxed);
    last = *item;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < thieves; ++t) {
    threads.emplace_back([&] {
      int last = -1;
      for (;;) {
        if (int* item = q.pop()) {
          take(item, last);
        } else if (done.load(std::memory_order_acquire)) {
          return;
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  int last = -1;
  for (int k = 0; k < n; ++k) {
    while (!q.push(&items[static_cast<std::size_t>(k)])) {
      if (int* item = q.pop()) take(item, last);  // full: the owner helps
    }
    if (k % 7 == 0) {
      if (int* item = q.pop()) take(item, last);
    }
  }
  while (int* item = q.pop())
    take(item, last);
  done.store(true, std::memory_order_release);
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(q.pop(), nullptr);
  int wrong = 0;
  for (int k = 0; k < n; ++k) {
    const int c = taken[static_cast<std::size_t>(k)].load();
    if (c != 1 && wrong++ < 5) ADD_FAILURE() << "item " << k << " taken " << c << " times";
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(out_of_order.load(), 0);
}

}  // namespace
