// Handles (counting, last sender / last receiver), capacity 1, exact
// capacities, and the static channel's constant initialisation.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <limits>
#include <memory>
#include <new>
#include <thread>
#include <type_traits>
#include <vector>

#include <sluice/channel.hpp>

#include "build_checks.hpp"
#include "channel_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::recv_error;
using sluice::send_error;
using sluice::test::counted;
using sluice::test::park_watch;
using sluice::test::tally;
using sluice::test::watchdog;

template <class Flavour>
class ChannelHandles : public ::testing::Test {};

using HeapFlavours =
    ::testing::Types<sluice::test::bounded_flavour, sluice::test::unbounded_flavour>;

TYPED_TEST_SUITE(ChannelHandles, HeapFlavours, sluice::test::flavour_names);

TYPED_TEST(ChannelHandles, LastSenderGoneClosesAfterDrain) {
  auto ch = TypeParam::template make<int>();
  sluice::sender<int> copy = ch.tx();
  ASSERT_TRUE(copy.try_send(1));
  ch.tx_ = sluice::sender<int>{};  // drop the original: one sender left
  EXPECT_FALSE(ch.rx().is_closed());
  ASSERT_TRUE(copy.try_send(2));
  { sluice::sender<int> gone = std::move(copy); }
  EXPECT_FALSE(copy.valid());
  EXPECT_TRUE(ch.rx().is_closed());
  EXPECT_EQ(*ch.rx().recv(), 1);
  EXPECT_EQ(*ch.rx().recv(), 2);
  EXPECT_EQ(ch.rx().recv().error(), recv_error::closed);
}

TYPED_TEST(ChannelHandles, LastReceiverGoneFailsSendsAndDestroysValuesOnce) {
  tally t;
  {
    auto ch = TypeParam::template make<counted>();
    ASSERT_TRUE(ch.tx().try_send(counted{t, 1}));
    ASSERT_TRUE(ch.tx().try_send(counted{t, 2}));
    sluice::receiver<counted> copy = ch.rx();
    ch.rx_ = sluice::receiver<counted>{};
    EXPECT_FALSE(ch.tx().is_closed());
    EXPECT_EQ(t.live(), 2);
    copy = sluice::receiver<counted>{};  // the last receiver goes
    EXPECT_TRUE(ch.tx().is_closed());
    EXPECT_EQ(t.live(), 0) << "values inside are destroyed when the last receiver goes";
    auto r = ch.tx().try_send(counted{t, 3});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), send_error::closed);
    EXPECT_EQ(r.peek_value().value(), 3);
  }
  EXPECT_EQ(t.live(), 0);
  EXPECT_EQ(t.double_destroyed.load(), 0);
}

TYPED_TEST(ChannelHandles, SenderOutlivingEverythingFreesTheState) {
  tally t;
  sluice::sender<counted> tx;
  {
    auto ch = TypeParam::template make<counted>();
    ASSERT_TRUE(ch.tx().try_send(counted{t, 1}));
    tx = ch.tx();
  }
  EXPECT_EQ(t.live(), 0);
  EXPECT_EQ(tx.try_send(counted{t, 2}).error(), send_error::closed);
  tx = sluice::sender<counted>{};  // frees the state (ASan would report a leak)
  EXPECT_EQ(t.live(), 0);
  EXPECT_EQ(t.double_destroyed.load(), 0);
}

TYPED_TEST(ChannelHandles, ReceiverOutlivingSendersDrainsThenCloses) {
  tally t;
  sluice::receiver<counted> rx;
  {
    auto ch = TypeParam::template make<counted>();
    ASSERT_TRUE(ch.tx().try_send(counted{t, 5}));
    rx = ch.rx();
  }
  auto r = rx.try_recv();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value(), 5);
  EXPECT_EQ(rx.try_recv().error(), recv_error::closed);
}

TYPED_TEST(ChannelHandles, LastSenderGoneWakesBlockedReceivers) {
  auto ch = TypeParam::template make<int>();
  watchdog dog(10s);
  std::atomic<int> closed_seen{0};
  std::array<park_watch, 2> receiving;
  std::vector<std::thread> receivers;
  for (auto& watch : receiving) {
    receivers.emplace_back([&, rx = ch.rx(), w = &watch]() mutable {
      w->arrive();
      const auto r = rx.recv();
      w->leave();
      if (!r && r.error() == recv_error::closed) closed_seen.fetch_add(1);
    });
  }
  for (const auto& watch : receiving)
    EXPECT_TRUE(watch.parked()) << "a receiver did not wait";
  ch.tx_ = sluice::sender<int>{};
  for (auto& t : receivers)
    t.join();
  EXPECT_EQ(closed_seen.load(), 2);
}

TEST(ChannelHandles, LastReceiverGoneWakesBlockedSenders) {
  auto [tx, rx] = sluice::channel<int>::bounded(1);
  ASSERT_TRUE(tx.try_send(0));
  watchdog dog(10s);
  std::atomic<int> closed_seen{0};
  std::array<park_watch, 2> sending;
  std::vector<std::thread> senders;
  for (auto& watch : sending) {
    senders.emplace_back([&, tx = tx, w = &watch]() mutable {
      w->arrive();
      const auto r = tx.send(1);
      w->leave();
      if (!r && r.error() == send_error::closed) closed_seen.fetch_add(1);
    });
  }
  for (const auto& watch : sending)
    EXPECT_TRUE(watch.parked()) << "a sender did not wait";
  rx = sluice::receiver<int>{};
  for (auto& t : senders)
    t.join();
  EXPECT_EQ(closed_seen.load(), 2);
}

TEST(ChannelHandles, CopiesAndAssignmentsKeepCounts) {
  auto [tx, rx] = sluice::channel<int>::unbounded();
  sluice::sender<int> a = tx;
  sluice::sender<int> b;
  b = a;
  a = std::move(b);
  tx = sluice::sender<int>{};
  ASSERT_TRUE(a.try_send(1));
  EXPECT_FALSE(rx.is_closed());
  a = sluice::sender<int>{};
  EXPECT_TRUE(rx.is_closed());
  EXPECT_EQ(*rx.try_recv(), 1);
}

TEST(ChannelCapacity, CapacityOneWorks) {
  auto [tx, rx] = sluice::channel<int>::bounded(1);
  EXPECT_EQ(tx.capacity(), 1u);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(tx.try_send(i));
    auto full = tx.try_send(-1);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error(), send_error::full);
    EXPECT_EQ(rx.approx_size(), 1u);
    EXPECT_EQ(*rx.try_recv(), i);
    EXPECT_EQ(rx.try_recv().error(), recv_error::empty);
  }
  sluice::static_channel<int, 1> one;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(one.try_send(i));
    EXPECT_EQ(one.try_send(-1).error(), send_error::full);
    EXPECT_EQ(*one.try_recv(), i);
  }
}

TEST(ChannelCapacity, CapacitiesAreExact) {
  for (std::size_t cap : {1u, 2u, 3u, 5u, 7u, 8u, 9u, 100u, 1000u}) {
    auto [tx, rx] = sluice::channel<std::size_t>::bounded(cap);
    EXPECT_EQ(tx.capacity(), cap);
    for (int lap = 0; lap < 3; ++lap) {
      for (std::size_t i = 0; i < cap; ++i)
        ASSERT_TRUE(tx.try_send(i)) << cap;
      EXPECT_EQ(tx.try_send(cap).error(), send_error::full) << cap;
      EXPECT_EQ(rx.approx_size(), cap);
      for (std::size_t i = 0; i < cap; ++i)
        ASSERT_EQ(*rx.try_recv(), i) << cap;
      EXPECT_EQ(rx.try_recv().error(), recv_error::empty);
    }
  }
}

void bounded_channel_of_no_slots() {
  auto pair = sluice::channel<int>::bounded(0);
}

TEST(ChannelCapacityDeathTest, ACapacityOfZeroIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only (release, below)");
  EXPECT_DEATH(bounded_channel_of_no_slots(), "bounded channel capacity must be at least 1");
}

// A release build given 0 makes one slot. (It made none, and the first
// send wrote past a ring of no slots.)
TEST(ChannelCapacity, ACapacityOfZeroMakesOneSlotInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  tally t;
  {
    auto [tx, rx] = sluice::channel<counted>::bounded(0);
    EXPECT_EQ(tx.capacity(), 1u);
    ASSERT_TRUE(tx.try_send(counted(t, 1)));
    auto full = tx.try_send(counted(t, 2));
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error(), send_error::full);
    EXPECT_EQ(std::move(full).value_back().value(), 2) << "the value is handed back";
    EXPECT_EQ(rx.try_recv()->value(), 1);
    EXPECT_EQ(rx.try_recv().error(), recv_error::empty);
    ASSERT_TRUE(tx.try_send(counted(t, 3)));  // left inside: destroyed with the channel
  }
  EXPECT_EQ(t.live(), 0);
  EXPECT_EQ(t.double_destroyed.load(), 0);
}

// A ring too large to count in bytes is std::bad_alloc from bounded()
// (std::bad_array_new_length), which the caller can catch. (It called
// std::terminate: the allocation ran inside a noexcept constructor.)
TEST(ChannelCapacity, ARingTooLargeToAllocateThrowsBadAlloc) {
  for (const std::size_t cap :
       {std::numeric_limits<std::size_t>::max(), std::numeric_limits<std::size_t>::max() / 8}) {
    bool threw = false;
    try {
      auto pair = sluice::channel<int>::bounded(cap);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    EXPECT_TRUE(threw) << cap;
  }
  auto [tx, rx] = sluice::channel<int>::bounded(4);  // the heap is whole
  ASSERT_TRUE(tx.try_send(1));
  EXPECT_EQ(*rx.try_recv(), 1);
}

TEST(ChannelCapacity, UnboundedCapacityIsSizeMax) {
  auto [tx, rx] = sluice::channel<int>::unbounded();
  EXPECT_EQ(tx.capacity(), static_cast<std::size_t>(-1));
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE(tx.try_send(i));
  EXPECT_EQ(rx.approx_size(), 1000u);
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(*rx.try_recv(), i);
  EXPECT_EQ(rx.approx_size(), 0u);
}

// Constant-initialised: this global needs no constructor to run.
constinit sluice::static_channel<int, 8> global_channel;

TEST(StaticChannel, ConstinitGlobalWorks) {
  EXPECT_EQ(global_channel.capacity(), 8u);
  ASSERT_TRUE(global_channel.try_send(1));
  ASSERT_TRUE(global_channel.send(2));
  EXPECT_EQ(*global_channel.recv(), 1);
  EXPECT_EQ(*global_channel.try_recv(), 2);
  EXPECT_EQ(global_channel.try_recv().error(), recv_error::empty);
}

TEST(StaticChannel, DestructionDestroysValuesInside) {
  tally t;
  {
    sluice::static_channel<counted, 3> ch;
    ASSERT_TRUE(ch.try_send(counted{t, 1}));
    ASSERT_TRUE(ch.try_send(counted{t, 2}));
    ASSERT_TRUE(ch.try_recv());
    ASSERT_TRUE(ch.try_send(counted{t, 3}));
    ASSERT_TRUE(ch.try_send(counted{t, 4}));
    EXPECT_EQ(t.live(), 3);
  }
  EXPECT_EQ(t.live(), 0);
  EXPECT_EQ(t.double_destroyed.load(), 0);
}

TEST(StaticChannel, ZeroStateIsValid) {
  // The engine's state is all zeros before first use (stamps are stored
  // relative to the slot index), so zero-filled storage is a valid channel.
  alignas(sluice::static_channel<int, 5>) static unsigned char
      zeros[sizeof(sluice::static_channel<int, 5>)] = {};
  static_assert(std::is_trivially_copyable_v<int>);
  auto* ch = ::new (static_cast<void*>(zeros)) sluice::static_channel<int, 5>();
  for (unsigned char byte : zeros)
    ASSERT_EQ(byte, 0);
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(ch->try_send(i));
    ASSERT_EQ(*ch->try_recv(), i);
  }
  ch->~static_channel();
}

}  // namespace
