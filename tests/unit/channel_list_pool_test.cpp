// The unbounded flavour's block pool: a backlog larger than the pool keeps
// (so retiring frees some blocks and pools the rest), drained and built up
// again (so installs pop pooled blocks), keeps FIFO order and destroys every
// value once.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <thread>

#include <sluice/channel.hpp>

#include "channel_test_support.hpp"

namespace {

using sluice::test::counted;
using sluice::test::tally;

// More blocks than the pool keeps for 8-byte values (4 MiB / about 1 KiB).
constexpr std::uint64_t backlog = 300'000;

TEST(ChannelListPool, BacklogBeyondThePoolLimitTwice) {
  auto [tx, rx] = sluice::channel<std::uint64_t>::unbounded();
  std::uint64_t next_in = 0;
  std::uint64_t next_out = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (std::uint64_t i = 0; i < backlog; ++i)
      ASSERT_TRUE(tx.try_send(next_in++));
    EXPECT_EQ(rx.approx_size(), backlog);
    for (std::uint64_t i = 0; i < backlog; ++i) {
      auto r = rx.try_recv();
      ASSERT_TRUE(r);
      ASSERT_EQ(*r, next_out++);
    }
    EXPECT_FALSE(rx.try_recv());
  }
}

TEST(ChannelListPool, ValuesLeftInsideAreDestroyedOnceWithPooledBlocksAround) {
  tally t;
  {
    auto [tx, rx] = sluice::channel<counted>::unbounded();
    // Fill and drain some blocks so the pool holds some, then leave a
    // backlog spanning several blocks inside.
    for (int i = 0; i < 1000; ++i)
      ASSERT_TRUE(tx.try_send(counted(t, i)));
    for (int i = 0; i < 1000; ++i) {
      auto r = rx.try_recv();
      ASSERT_TRUE(r);
      ASSERT_EQ(r->value(), i);
    }
    for (int i = 0; i < 500; ++i)
      ASSERT_TRUE(tx.try_send(counted(t, i)));
  }
  EXPECT_EQ(t.live(), 0);
  EXPECT_EQ(t.double_destroyed.load(), 0);
}

// Two senders race to install blocks (and pop the pool) while a receiver
// retires blocks into it; every value arrives once, each sender's in order.
TEST(ChannelListPool, ConcurrentInstallsAndRetires) {
#ifdef SLUICE_SANITIZED
  constexpr std::uint64_t per_sender = 20'000;
#else
  constexpr std::uint64_t per_sender = 200'000;
#endif
  const sluice::test::watchdog dog(std::chrono::seconds(60));
  auto [tx, rx] = sluice::channel<std::uint64_t>::unbounded();
  auto send_all = [&tx = tx](std::uint64_t id) {
    for (std::uint64_t i = 0; i < per_sender; ++i)
      ASSERT_TRUE(tx.try_send((id << 32) | i));
  };
  std::thread a(send_all, 0);
  std::thread b(send_all, 1);
  std::uint64_t expected[2] = {0, 0};
  for (std::uint64_t got = 0; got < 2 * per_sender;) {
    auto r = rx.try_recv();
    if (!r) continue;
    const std::uint64_t id = *r >> 32;
    ASSERT_LT(id, 2u);
    ASSERT_EQ(*r & 0xffff'ffffu, expected[id]);
    ++expected[id];
    ++got;
  }
  a.join();
  b.join();
  EXPECT_FALSE(rx.try_recv());
  EXPECT_EQ(expected[0], per_sender);
  EXPECT_EQ(expected[1], per_sender);
}

}  // namespace
