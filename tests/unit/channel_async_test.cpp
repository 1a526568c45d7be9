// The awaitable forms (send_async / recv_async), driven by the test driver,
// for every flavour.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <sluice/channel.hpp>

#include "build_checks.hpp"
#include "channel_test_support.hpp"
#include "test_driver.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::recv_error;
using sluice::send_error;
using sluice::test::task;
using sluice::test::watchdog;

constexpr int closed_code = -1;
constexpr int other_error_code = -2;

template <class Rx>
task<int> receive_one(Rx& rx) {
  auto r = co_await rx.recv_async();
  if (r) co_return *r;
  co_return r.error() == recv_error::closed ? closed_code : other_error_code;
}

template <class Tx>
task<int> send_one(Tx& tx, int value) {
  auto r = co_await tx.send_async(value);
  if (r) co_return 0;
  if (r.error() != send_error::closed) co_return other_error_code;
  co_return std::move(r).value_back() == value ? closed_code : other_error_code;
}

template <class Rx>
task<int> sum_until_closed(Rx& rx) {
  int sum = 0;
  for (;;) {
    auto r = co_await rx.recv_async();
    if (!r) co_return sum;
    sum += *r;
  }
}

// A named send awaiter awaited twice: the second would send the value that
// the first already sent (moved from).
task<int> send_with_one_awaiter_twice(sluice::sender<int>& tx) {
  auto send = tx.send_async(7);
  (void)co_await send;
  (void)co_await send;
  co_return 0;
}

void await_a_send_awaiter_twice() {
  auto ch = sluice::channel<int>::bounded(4);
  (void)sluice::test::block_on(send_with_one_awaiter_twice(ch.first));
}

TEST(ChannelAsyncDeathTest, ASendAwaiterAwaitedAgainIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only");
  EXPECT_DEATH(await_a_send_awaiter_twice(), "awaited again after its send completed");
}

template <class Flavour>
class ChannelAsync : public ::testing::Test {};

TYPED_TEST_SUITE(ChannelAsync, sluice::test::all_flavours, sluice::test::flavour_names);

TYPED_TEST(ChannelAsync, CompletesWithoutSuspendingWhenReady) {
  auto ch = TypeParam::template make<int>();
  EXPECT_EQ(sluice::test::block_on(send_one(ch.tx(), 5)), 0);
  EXPECT_EQ(sluice::test::block_on(receive_one(ch.rx())), 5);
}

TYPED_TEST(ChannelAsync, SuspendedReceiverIsWokenBySendFromAnotherThread) {
  auto ch = TypeParam::template make<int>();
  auto t = receive_one(ch.rx());
  ASSERT_TRUE(t.step());  // runs to the co_await and suspends
  EXPECT_FALSE(t.done());
  watchdog dog(10s, [&] { ch.tx().close(); });
  sluice::test::park_watch driving;  // run_all parks this thread while the tasks wait
  driving.arrive();
  std::thread sender([&] {
    EXPECT_TRUE(driving.parked()) << "the driver did not wait";
    ASSERT_TRUE(ch.tx().send(77));
  });
  sluice::test::run_all(t);
  driving.leave();
  sender.join();
  EXPECT_EQ(t.result(), 77);
  EXPECT_GE(t.wake_count(), 1u);
}

TYPED_TEST(ChannelAsync, SuspendedSenderOnFullIsWokenByRecv) {
  if constexpr (!TypeParam::is_bounded) {
    GTEST_SKIP() << "an unbounded send never suspends";
  } else {
    auto ch = TypeParam::template make<int>();
    for (std::size_t i = 0; i < TypeParam::capacity; ++i)
      ASSERT_TRUE(ch.tx().try_send(1));
    auto t = send_one(ch.tx(), 9);
    ASSERT_TRUE(t.step());
    EXPECT_FALSE(t.done());
    watchdog dog(10s, [&] { ch.tx().close(); });
    sluice::test::park_watch driving;  // run_all parks this thread while the tasks wait
    driving.arrive();
    std::thread receiver([&] {
      EXPECT_TRUE(driving.parked()) << "the driver did not wait";
      EXPECT_EQ(*ch.rx().recv(), 1);
    });
    sluice::test::run_all(t);
    driving.leave();
    receiver.join();
    EXPECT_EQ(t.result(), 0);
    // Left inside: the other capacity - 1 ones, then the 9, and nothing
    // else.
    std::size_t ones = 0, nines = 0, others = 0;
    while (auto r = ch.rx().try_recv()) {
      if (*r == 1) {
        ++ones;
      } else if (*r == 9) {
        ++nines;
        EXPECT_EQ(ones, TypeParam::capacity - 1) << "9 comes last";
      } else {
        ++others;
      }
    }
    EXPECT_EQ(ones, TypeParam::capacity - 1);
    EXPECT_EQ(nines, 1u) << "the woken send reported ok, but its value is not in the channel";
    EXPECT_EQ(others, 0u);
  }
}

TYPED_TEST(ChannelAsync, CloseWakesSuspendedTasks) {
  auto ch = TypeParam::template make<int>();
  auto a = receive_one(ch.rx());
  auto b = receive_one(ch.rx());
  ASSERT_TRUE(a.step());
  ASSERT_TRUE(b.step());
  watchdog dog(10s);
  sluice::test::park_watch driving;  // run_all parks this thread while the tasks wait
  driving.arrive();
  std::thread closer([&] {
    EXPECT_TRUE(driving.parked()) << "the driver did not wait";
    ch.tx().close();
  });
  sluice::test::run_all(a, b);
  driving.leave();
  closer.join();
  EXPECT_EQ(a.result(), closed_code);
  EXPECT_EQ(b.result(), closed_code);
}

TYPED_TEST(ChannelAsync, CloseWakesSuspendedSenderAndHandsTheValueBack) {
  if constexpr (!TypeParam::is_bounded) {
    GTEST_SKIP() << "an unbounded send never suspends";
  } else {
    auto ch = TypeParam::template make<int>();
    for (std::size_t i = 0; i < TypeParam::capacity; ++i)
      ASSERT_TRUE(ch.tx().try_send(1));
    auto t = send_one(ch.tx(), 33);
    ASSERT_TRUE(t.step());
    watchdog dog(10s);
    sluice::test::park_watch driving;  // run_all parks this thread while the tasks wait
    driving.arrive();
    std::thread closer([&] {
      EXPECT_TRUE(driving.parked()) << "the driver did not wait";
      ch.rx().close();
    });
    sluice::test::run_all(t);
    driving.leave();
    closer.join();
    EXPECT_EQ(t.result(), closed_code);
  }
}

TYPED_TEST(ChannelAsync, TasksPassValuesToEachOther) {
  auto ch = TypeParam::template make<int>();
  auto consumer = sum_until_closed(ch.rx());
  auto producer = [](auto& tx) -> task<int> {
    for (int i = 1; i <= 50; ++i) {
      auto r = co_await tx.send_async(i);
      if (!r) co_return other_error_code;
    }
    tx.close();
    co_return 0;
  }(ch.tx());
  watchdog dog(10s, [&] { ch.tx().close(); });
  sluice::test::run_all(consumer, producer);
  EXPECT_EQ(producer.result(), 0);
  EXPECT_EQ(consumer.result(), 50 * 51 / 2);
}

TYPED_TEST(ChannelAsync, DestroyingASuspendedTaskUnregistersIt) {
  auto ch = TypeParam::template make<int>();
  {
    auto t = receive_one(ch.rx());
    ASSERT_TRUE(t.step());
    EXPECT_FALSE(t.done());
  }  // the frame (and its awaiter, listed in the channel) is destroyed here
  ASSERT_TRUE(ch.tx().try_send(3));  // notifies nobody; ASan would catch a dangling waiter
  EXPECT_EQ(*ch.rx().try_recv(), 3);
}

TYPED_TEST(ChannelAsync, ANotificationConsumedByADestroyedTaskIsPassedOn) {
  auto ch = TypeParam::template make<int>();
  auto b = receive_one(ch.rx());
  {
    auto a = receive_one(ch.rx());
    ASSERT_TRUE(a.step());  // a waits first
    ASSERT_TRUE(b.step());
    ASSERT_TRUE(ch.tx().try_send(4));  // notifies a, which never runs again
    EXPECT_EQ(b.wake_count(), 0u);
  }
  EXPECT_EQ(b.wake_count(), 1u) << "a's notification must pass to b";
  watchdog dog(10s, [&] { ch.tx().close(); });
  sluice::test::run_all(b);
  EXPECT_EQ(b.result(), 4);
}

}  // namespace
