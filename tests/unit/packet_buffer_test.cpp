// Unit tests of sluice::packet_buffer: every behaviour of the Zephyr
// mpsc_pbuf contract, single-threaded except where a wake-up is the point.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sluice/executor.hpp>
#include <sluice/packet_buffer.hpp>
#include <sluice/sleep.hpp>
#include <sluice/task.hpp>
#include <test_driver.hpp>

#include "build_checks.hpp"
#include "executor_test_support.hpp"
#include "park_watch.hpp"
#include "pbuf_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::alloc_error;
using sluice::overflow_policy;

struct drop_log {
  std::vector<std::vector<std::uint32_t>> packets;  // payloads, as seen in the callback
  static void record(void* context, const std::uint32_t* packet, std::uint32_t words) noexcept {
    static_cast<drop_log*>(context)->packets.emplace_back(packet + 1, packet + words);
  }
};

struct param {
  std::uint32_t size;
  overflow_policy policy;
};

class PacketBufferTest : public ::testing::TestWithParam<param> {
 protected:
  std::vector<std::uint32_t> storage = std::vector<std::uint32_t>(GetParam().size, 0xdeadbeef);
  drop_log drops;
  sluice::packet_buffer pb{{.storage = storage.data(),
                            .size_words = GetParam().size,
                            .policy = GetParam().policy,
                            .utilization = sluice::utilization_tracking::track_max,
                            .on_drop = &drop_log::record,
                            .context = &drops}};

  bool overwrite() const { return GetParam().policy == overflow_policy::drop_oldest; }

  // Allocates `words` words tagged with `tag` in every payload word, commits.
  void put(std::uint32_t words, std::uint32_t tag) {
    auto a = pb.try_alloc(words);
    ASSERT_TRUE(a) << "alloc of " << words << " failed: " << sluice::to_string(a.error());
    for (std::uint32_t i = 0; i < a->payload_size(); ++i)
      a->payload()[i] = tag;
    std::move(*a).commit();
  }
  // Claims one packet and returns its tag (its first payload word), or -1.
  std::int64_t take() {
    auto c = pb.try_claim();
    if (!c) return -1;
    return c.payload_size() == 0 ? 0 : static_cast<std::int64_t>(c.payload()[0]);
  }
};

TEST_P(PacketBufferTest, CommitClaimFreeKeepsContents) {
  auto a = pb.try_alloc(4);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size(), 4u);
  for (std::uint32_t i = 0; i < 3; ++i)
    a->payload()[i] = 10 + i;
  EXPECT_TRUE(std::move(*a).commit());
  auto c = pb.try_claim();
  ASSERT_TRUE(c);
  ASSERT_EQ(c.size(), 4u);
  for (std::uint32_t i = 0; i < 3; ++i)
    EXPECT_EQ(c.payload()[i], 10 + i);
  EXPECT_FALSE(pb.try_claim());
}

// After commit() or abandon() the handle forgets the words: a late write
// through it cannot reach a published packet or free words.
TEST_P(PacketBufferTest, AnEndedAllocatedPacketForgetsItsWords) {
  auto a = pb.try_alloc(3);
  auto b = pb.try_alloc(3);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(std::move(*a).commit());
  std::move(*b).abandon();
  for (auto* ended : {&*a, &*b}) {
    EXPECT_EQ(ended->words(), nullptr);
    EXPECT_EQ(ended->size(), 0u);
    EXPECT_EQ(ended->payload_size(), 0u);
  }
}

TEST_P(PacketBufferTest, ClaimFollowsAllocationOrderNotCommitOrder) {
  auto a = pb.try_alloc(2);
  auto b = pb.try_alloc(2);
  auto c = pb.try_alloc(2);
  ASSERT_TRUE(a && b && c);
  a->payload()[0] = 1;
  b->payload()[0] = 2;
  c->payload()[0] = 3;
  std::move(*b).commit();
  EXPECT_EQ(take(), -1) << "an uncommitted packet must hold back later ones";
  std::move(*a).commit();
  EXPECT_EQ(take(), 1);
  EXPECT_EQ(take(), 2);
  EXPECT_EQ(take(), -1);
  std::move(*c).commit();
  EXPECT_EQ(take(), 3);
}

TEST_P(PacketBufferTest, WholeCapacityIsUsable) {
  const std::uint32_t n = GetParam().size;
  for (std::uint32_t i = 0; i < n; ++i)
    ASSERT_TRUE(pb.put_word(pb.default_header(1))) << i;
  EXPECT_EQ(pb.approx_used_words(), n);
  if (!overwrite()) {
    EXPECT_FALSE(pb.put_word(pb.default_header(1)));
    auto r = pb.try_alloc(1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), alloc_error::no_room);
  }
  std::uint32_t claimed = 0;
  while (pb.try_claim())
    ++claimed;
  EXPECT_EQ(claimed, n);
}

TEST_P(PacketBufferTest, FullSizeAllocationWorksAndLargerFails) {
  const std::uint32_t n = GetParam().size;
  auto big = pb.try_alloc(n + 1);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error(), alloc_error::too_large);
  auto huge = pb.try_alloc(~std::uint32_t{0});
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error(), alloc_error::too_large);
  // Move the indices off slot 0 first: the buffer is empty but misaligned.
  put(3, 1);
  EXPECT_EQ(take(), 1);
  put(n, 2);
  EXPECT_EQ(take(), 2);
  put(n, 3);
  EXPECT_EQ(take(), 3);
}

TEST_P(PacketBufferTest, AZeroWordAllocationFailsAsTooLargeAndTakesNothing) {
  // A packet holds at least its header word: zero words never fit, in
  // every build (a 0-word packet's header would be the next packet's).
  auto none = pb.try_alloc(0);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), alloc_error::too_large);
  auto timed = pb.alloc_for(0, 1ms);
  ASSERT_FALSE(timed);
  EXPECT_EQ(timed.error(), alloc_error::too_large);
  EXPECT_EQ(pb.approx_used_words(), 0u);
  put(2, 7);
  EXPECT_EQ(take(), 7);
  EXPECT_FALSE(pb.try_claim());
}

TEST_P(PacketBufferTest, WrapLeavesASkipPacketAndStartsAtSlotZero) {
  const std::uint32_t n = GetParam().size;  // 8..16
  const std::uint32_t len = n / 2 - 1;
  put(len, 1);
  put(len, 2);
  {
    auto c = pb.try_claim();
    ASSERT_TRUE(c);
    EXPECT_EQ(c.payload()[0], 1u);
  }
  // Tail = n - 2*len < len: it wraps (tail + len words are free).
  ASSERT_GT(len, n - 2 * len);
  auto a = pb.try_alloc(len);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->words(), storage.data()) << "a wrapped packet starts at slot 0";
  a->payload()[0] = 3;
  std::move(*a).commit();
  EXPECT_EQ(take(), 2);
  EXPECT_EQ(take(), 3);  // the skip at the tail is passed silently
  EXPECT_EQ(take(), -1);
  EXPECT_TRUE(drops.packets.empty());
}

TEST_P(PacketBufferTest, AbandonedPacketIsNeverClaimed) {
  auto a = pb.try_alloc(3);
  ASSERT_TRUE(a);
  put(2, 7);
  EXPECT_EQ(take(), -1);
  std::move(*a).abandon();
  EXPECT_EQ(take(), 7);
  EXPECT_EQ(take(), -1);
  EXPECT_EQ(pb.approx_used_words(), 0u);
}

TEST_P(PacketBufferTest, PutFormsCopyAndPublish) {
  const std::uint32_t ptr_words = sizeof(void*) / 4;
  ASSERT_TRUE(pb.put_word(pb.default_header(1)));
  int target = 0;
  ASSERT_TRUE(pb.put_word_ext(pb.default_header(1 + ptr_words), &target));
  const std::uint32_t data[3] = {pb.default_header(3), 0xabc, 0xdef};
  ASSERT_TRUE(pb.put_data(data, 3));
  {
    auto c = pb.try_claim();
    ASSERT_TRUE(c);
    EXPECT_EQ(c.size(), 1u);
  }
  {
    auto c = pb.try_claim();
    ASSERT_TRUE(c);
    ASSERT_EQ(c.size(), 1 + ptr_words);
    const void* p = nullptr;
    std::memcpy(&p, c.payload(), sizeof p);
    EXPECT_EQ(p, &target);
  }
  {
    auto c = pb.try_claim();
    ASSERT_TRUE(c);
    ASSERT_EQ(c.size(), 3u);
    EXPECT_EQ(c.payload()[0], 0xabcu);
    EXPECT_EQ(c.payload()[1], 0xdefu);
  }
  EXPECT_FALSE(pb.put_data(data, 0));
}

TEST_P(PacketBufferTest, UtilizationAndMaximum) {
  EXPECT_EQ(pb.approx_used_words(), 0u);
  put(3, 1);
  put(2, 2);
  EXPECT_EQ(pb.approx_used_words(), 5u);
  EXPECT_EQ(pb.max_used_words(), 5u);
  EXPECT_EQ(take(), 1);
  EXPECT_EQ(pb.approx_used_words(), 2u);
  EXPECT_EQ(take(), 2);
  EXPECT_EQ(pb.approx_used_words(), 0u);
  EXPECT_EQ(pb.max_used_words(), 5u);
}

TEST_P(PacketBufferTest, PendingAndCounters) {
  EXPECT_FALSE(pb.is_pending());
  auto a = pb.try_alloc(2);
  ASSERT_TRUE(a);
  EXPECT_FALSE(pb.is_pending()) << "allocated, not committed: nothing to claim";
  std::move(*a).commit();
  EXPECT_TRUE(pb.is_pending());
  EXPECT_EQ(take(), 0);
  EXPECT_FALSE(pb.is_pending());
  const auto k = pb.counters();
  EXPECT_EQ(k.committed, 1u);
  EXPECT_EQ(k.claimed, 1u);
  EXPECT_EQ(k.dropped, 0u);
}

TEST_P(PacketBufferTest, PendingMeansAClaimWouldFindAPacket) {
  auto first = pb.try_alloc(2);
  auto second = pb.try_alloc(2);
  ASSERT_TRUE(first && second);
  std::move(*second).commit();
  EXPECT_FALSE(pb.is_pending()) << "the first, not committed, holds the second back";
  std::move(*first).abandon();  // a skip in front of the second
  EXPECT_TRUE(pb.is_pending());
  auto c = pb.try_claim();
  ASSERT_TRUE(c);
  EXPECT_FALSE(pb.is_pending()) << "claimed: nothing more to claim";
  c.reset();
  auto third = pb.try_alloc(1);
  ASSERT_TRUE(third);
  std::move(*third).abandon();
  // Only a skip waits. With overwrite, producers pass it themselves: not
  // pending. Without, only a claim passes it: pending, so that a consumer
  // that claims only when told to still brings its room back.
  EXPECT_EQ(pb.is_pending(), !overwrite()) << "only a skip waits";
  EXPECT_FALSE(pb.try_claim());
  EXPECT_FALSE(pb.is_pending()) << "the claim passed the skip";
}

// A whole-size packet abandoned leaves a skip over every word. Without
// overwrite producers never pass a skip: is_pending() says yes, and the
// claim that follows passes it, so the room comes back for a consumer that
// claims only when is_pending() says so. With overwrite the dropper's turn
// passes it: nothing pending, and the room is there anyway.
TEST_P(PacketBufferTest, ASkipInFrontComesBackToAConsumerThatAsksIsPendingFirst) {
  auto whole = pb.try_alloc(pb.capacity_words());
  ASSERT_TRUE(whole);
  std::move(*whole).abandon();
  if (pb.is_pending()) {
    EXPECT_FALSE(pb.try_claim()) << "a skip claimed";
  }
  EXPECT_EQ(pb.is_pending(), false);
  auto next = pb.try_alloc(pb.capacity_words());
  ASSERT_TRUE(next) << "the abandoned packet's words did not come back";
  std::move(*next).abandon();
}

TEST_P(PacketBufferTest, CommitsAreCountedWhenTheyLeaveTheBuffer) {
  put(2, 1);
  put(2, 2);
  EXPECT_EQ(pb.counters().committed, 0u) << "committed packets still waiting are not counted";
  EXPECT_EQ(take(), 1);
  const auto k = pb.counters();
  EXPECT_EQ(k.committed, 1u);
  EXPECT_EQ(k.claimed, 1u);
  EXPECT_EQ(k.committed, k.claimed + k.dropped);
}

TEST_P(PacketBufferTest, ClaimedPacketsCanBeFreedInAnyOrder) {
  put(2, 1);
  put(2, 2);
  put(2, 3);
  auto c1 = pb.try_claim();
  auto c2 = pb.try_claim();
  ASSERT_TRUE(c1 && c2);
  c2.reset();
  EXPECT_EQ(pb.approx_used_words(), 6u) << "space is reclaimed in order only";
  c1.reset();
  EXPECT_EQ(pb.approx_used_words(), 2u);
  EXPECT_EQ(take(), 3);
}

TEST_P(PacketBufferTest, PanicFlushDrainsCommittedPacketsWithoutTheConsumer) {
  put(2, 1);
  put(2, 2);
  auto held = pb.try_claim();  // the consumer was interrupted holding this one
  ASSERT_TRUE(held);
  put(2, 3);
  auto pending = pb.try_alloc(2);  // never committed
  ASSERT_TRUE(pending);
  std::vector<std::uint32_t> seen;
  const auto n = pb.panic_flush(
      [](void* ctx, const std::uint32_t* p, std::uint32_t) noexcept {
        static_cast<std::vector<std::uint32_t>*>(ctx)->push_back(p[1]);
      },
      &seen);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{2, 3}));
  std::move(*pending).abandon();
}

// A timed allocation drops nothing in either policy (Zephyr's alloc with
// a timeout waits before it would drop): with overwrite too, a full buffer
// of committed packets makes it wait, and time out.
TEST_P(PacketBufferTest, TimedAllocTimesOutWhenNothingMakesRoom) {
  put(GetParam().size, 1);
  auto r = pb.alloc_for(1, 20ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), alloc_error::timeout);
  EXPECT_TRUE(drops.packets.empty()) << "a timed allocation dropped a packet";
  EXPECT_EQ(pb.counters().dropped, 0u);
  EXPECT_EQ(take(), 1) << "the packet in the way must still be there";
  // The same behind an uncommitted packet.
  auto a = pb.try_alloc(GetParam().size);
  ASSERT_TRUE(a);
  auto behind = pb.alloc_for(1, 20ms);
  ASSERT_FALSE(behind);
  EXPECT_EQ(behind.error(), alloc_error::timeout);
  std::move(*a).abandon();
  // try_alloc is the form that drops.
  if (overwrite()) {
    put(GetParam().size, 2);
    put(1, 3);
    ASSERT_EQ(drops.packets.size(), 1u);
    EXPECT_EQ(drops.packets[0][0], 2u);
  }
}

// The waits below have no deadline: a timed wait's last try at its
// deadline would find the room (or the packet) whether it was woken or
// not. A lost wake-up hangs instead, and the watchdog names it.
TEST_P(PacketBufferTest, TimedAllocIsWokenByFree) {
  const sluice::test::abort_watchdog dog{std::chrono::seconds(20),
                                         "a timed alloc not woken by a free"};
  auto blocker = pb.try_alloc(GetParam().size);
  ASSERT_TRUE(blocker);
  std::move(*blocker).commit();
  auto c = pb.try_claim();
  ASSERT_TRUE(c);
  std::atomic<bool> done{false};
  sluice::test::park_watch waiting;
  std::thread producer([&] {
    waiting.arrive();
    auto r = pb.alloc_until(GetParam().size, sluice::time_point::max());
    waiting.leave();
    EXPECT_TRUE(r);
    if (r) std::move(*r).commit();
    done = true;
  });
  EXPECT_TRUE(waiting.parked()) << "the allocation did not wait";
  c.reset();
  producer.join();
  EXPECT_TRUE(done);
  EXPECT_EQ(take(), 0);
}

// Committing the oldest packet is not room: with overwrite as without, the
// timed allocation waits on until the consumer takes it, and drops nothing.
// (Here the take usually comes before the woken producer looks again, so a
// producer that dropped instead would seldom be caught: the deterministic
// check is PacketBufferOverwriteWait below, which sees the waiter listed.
// This one is the wake through the consumer's free, in every size.)
TEST_P(PacketBufferTest, TimedAllocWaitsPastTheCommitOfTheOldestForTheConsumer) {
  const sluice::test::abort_watchdog dog{std::chrono::seconds(20),
                                         "a timed alloc not woken by the consumer's free"};
  auto oldest = pb.try_alloc(GetParam().size - 1);
  ASSERT_TRUE(oldest);
  oldest->payload()[0] = 1;
  std::atomic<bool> got{false};
  sluice::test::park_watch waiting;
  std::thread producer([&] {
    waiting.arrive();
    auto r = pb.alloc_until(2, sluice::time_point::max());
    waiting.leave();
    EXPECT_TRUE(r) << "never woken: a lost wake-up";
    got = static_cast<bool>(r);
    if (r) std::move(*r).abandon();
  });
  EXPECT_TRUE(waiting.parked()) << "the allocation did not wait";
  std::move(*oldest).commit();
  EXPECT_EQ(take(), 1) << "the oldest packet was dropped instead of waited for";
  producer.join();
  EXPECT_TRUE(got.load());
  EXPECT_TRUE(drops.packets.empty());
}

TEST_P(PacketBufferTest, TimedAllocIsWokenByTheConsumerPassingASkip) {
  if (overwrite()) GTEST_SKIP() << "overwrite passes skips itself";
  const std::uint32_t n = GetParam().size;
  const std::uint32_t len = n / 2 - 1;  // two of them leave a tail of >= 2
  const std::uint32_t tail = n - 2 * len;
  put(len, 1);
  put(len, 2);
  EXPECT_EQ(take(), 1);        // slot 0..len free
  auto held = pb.try_claim();  // packet 2 stays claimed for a while
  ASSERT_TRUE(held);
  // Wraps: a skip of `tail` words, then `len` words at slot 0.
  put(len, 3);
  held.reset();  // the skip now sits at the read position, unclaimed
  // Needs everything but packet 3: only there once the skip is passed.
  const std::uint32_t want = n - len;
  ASSERT_FALSE(pb.try_alloc(want));
  // No deadline: a timed wait's last try at its deadline would find the
  // room the skip gave back, woken or not. A lost wake-up hangs instead,
  // and the watchdog names it.
  const sluice::test::abort_watchdog dog{std::chrono::seconds(20),
                                         "a timed alloc not woken by the consumer passing a skip"};
  sluice::test::park_watch waiting;
  std::thread producer([&] {
    waiting.arrive();
    auto r = pb.alloc_until(want, sluice::time_point::max());
    waiting.leave();
    EXPECT_TRUE(r) << "not woken by the consumer passing the skip";
    if (r) std::move(*r).abandon();
  });
  // The producer found no room and waits when the skip is passed.
  EXPECT_TRUE(waiting.parked()) << "the allocation did not wait";
  // Passes the skip first: that makes the room and wakes the producer.
  // Packet 3 stays claimed until the producer is done, so that its free
  // (which would make the room as well) cannot be what woke it.
  auto third = pb.try_claim();
  EXPECT_TRUE(third);
  if (third) {
    EXPECT_EQ(third.payload()[0], 3u);
  }
  producer.join();
  third.reset();
  (void)tail;
}

// The same wake, told by a count: a producer task's allocation is polled
// to pending (it is listed), then the consumer's claim passes the skip.
TEST_P(PacketBufferTest, AWaitingAllocIsWokenByTheConsumerPassingASkip) {
  if (overwrite()) GTEST_SKIP() << "overwrite passes skips itself";
  const std::uint32_t n = GetParam().size;
  const std::uint32_t len = n / 2 - 1;  // two of them leave a tail of >= 2
  put(len, 1);
  put(len, 2);
  EXPECT_EQ(take(), 1);
  auto held = pb.try_claim();
  ASSERT_TRUE(held);
  put(len, 3);   // wraps: a skip, then `len` words at slot 0
  held.reset();  // the skip now sits at the read position, unclaimed
  sluice::test::wake_counter wakes;
  sluice::alloc_awaiter waiting = pb.alloc_async(n - len);
  ASSERT_EQ(waiting.poll(sluice::make_waker(wakes)), sluice::poll_status::pending);
  EXPECT_EQ(wakes.count(), 0);
  auto third = pb.try_claim();  // passes the skip, then claims packet 3
  ASSERT_TRUE(third);
  EXPECT_EQ(third.payload()[0], 3u);
  EXPECT_EQ(wakes.count(), 1) << "the consumer passed the skip and woke nobody";
  ASSERT_EQ(waiting.poll(sluice::make_waker(wakes)), sluice::poll_status::ready);
  auto a = waiting.await_resume();
  ASSERT_TRUE(a);
  std::move(*a).abandon();
}

TEST_P(PacketBufferTest, ConsumerTaskIsWokenByCommit) {
  auto consumer = [&]() -> sluice::test::task<std::uint32_t> {
    auto c = co_await pb.claim_async();
    co_return c.payload()[0];
  };
  // The driver parks this thread while the task waits.
  sluice::test::park_watch driving;
  driving.arrive();
  std::thread producer([&] {
    EXPECT_TRUE(driving.parked()) << "the claim did not wait";
    put(2, 42);
  });
  EXPECT_EQ(sluice::test::block_on(consumer()), 42u);
  driving.leave();
  producer.join();
}

// A producer task waits for room and is woken by the consumer's free; with
// drop_oldest too, a waiting allocation drops nothing.
TEST_P(PacketBufferTest, ProducerTaskIsWokenByFreeAndDropsNothing) {
  const std::uint32_t n = GetParam().size;
  put(n / 2, 1);
  put(n - n / 2, 2);  // full
  auto producer = [&]() -> sluice::test::task<std::uint32_t> {
    auto a = co_await pb.alloc_async(n / 2);
    if (!a) co_return 0;
    const std::uint32_t words = a->size();
    a->payload()[0] = 3;
    std::move(*a).commit();
    co_return words;
  };
  auto t = producer();
  t.step();  // suspends: no room
  ASSERT_FALSE(t.done()) << "the task allocated in a full buffer";
  EXPECT_EQ(t.wake_count(), 0u);
  EXPECT_EQ(take(), 1);  // frees the first packet: room for the task's
  EXPECT_EQ(t.wake_count(), 1u) << "the free did not wake the waiting task";
  sluice::test::run_all(t);
  EXPECT_EQ(t.result(), n / 2);
  EXPECT_EQ(take(), 2);
  EXPECT_EQ(take(), 3);
  EXPECT_EQ(take(), -1);
  EXPECT_TRUE(drops.packets.empty());
  EXPECT_EQ(pb.counters().dropped, 0u);
}

// Room now: no suspension; too large: the error at once, in either policy.
TEST_P(PacketBufferTest, ProducerTaskGetsRoomOrTooLargeWithoutWaiting) {
  const std::uint32_t n = GetParam().size;
  auto producer = [&](std::uint32_t words) -> sluice::test::task<int> {
    auto a = co_await pb.alloc_async(words);
    if (!a) co_return a.error() == alloc_error::too_large ? -1 : -2;
    a->payload()[0] = 7;
    std::move(*a).commit();
    co_return static_cast<int>(words);
  };
  for (const std::uint32_t words : {0u, n + 1, n}) {
    auto awaiter = pb.alloc_async(words);
    ASSERT_TRUE(awaiter.await_ready()) << words << " words: no suspension";
    auto a = awaiter.await_resume();
    EXPECT_EQ(static_cast<bool>(a), words == n) << words << " words";
    if (a) std::move(*a).abandon();
  }
  EXPECT_FALSE(pb.try_claim());  // passes the abandoned words: empty again
  // In a task: one step runs each to its end, without a suspension.
  for (const std::uint32_t words : {0u, n + 1, n}) {
    auto t = producer(words);
    t.step();
    ASSERT_TRUE(t.done()) << words << " words: the task waited";
    EXPECT_EQ(t.result(), words == n ? static_cast<int>(n) : -1) << words << " words";
  }
  auto c = pb.try_claim();
  ASSERT_TRUE(c);
  EXPECT_EQ(c.size(), n);
  EXPECT_EQ(c.payload()[0], 7u);
}

// An awaiter dropped while it waits leaves the waiter list: the free that
// follows wakes nobody (a node left listed would be a dead one, which the
// sanitizers also name), and the room stays for the next producer.
TEST_P(PacketBufferTest, ProducerAwaiterDroppedWhileWaitingLeavesTheList) {
  const std::uint32_t n = GetParam().size;
  put(n, 1);  // full
  sluice::test::wake_counter wakes;
  {
    auto awaiter = pb.alloc_async(1);
    EXPECT_FALSE(awaiter.await_ready());
    EXPECT_EQ(awaiter.poll(sluice::make_waker(wakes)), sluice::poll_status::pending);
    EXPECT_EQ(wakes.live_refs(), 1) << "the listed awaiter's waker";
  }
  EXPECT_EQ(wakes.live_refs(), 0) << "the list kept the dropped awaiter's waker";
  EXPECT_EQ(take(), 1);
  EXPECT_EQ(wakes.count(), 0) << "the free woke a dropped awaiter";
  auto a = pb.try_alloc(n);
  EXPECT_TRUE(a) << "the dropped awaiter took no words";
  if (a) std::move(*a).abandon();
}

TEST_P(PacketBufferTest, BlockingClaimIsWokenByCommit) {
  const sluice::test::abort_watchdog dog{std::chrono::seconds(20),
                                         "a blocking claim not woken by a commit"};
  sluice::test::park_watch claiming;
  claiming.arrive();
  std::thread producer([&] {
    EXPECT_TRUE(claiming.parked()) << "the claim did not wait";
    put(2, 9);
  });
  auto c = pb.claim_until(sluice::time_point::max());
  claiming.leave();
  ASSERT_TRUE(c);
  EXPECT_EQ(c.payload()[0], 9u);
  producer.join();
  EXPECT_FALSE(pb.claim_for(1ms));
}

// ------------------------------------------------------------ overwrite only

class OverwriteTest : public PacketBufferTest {
 protected:
  // Fills the buffer with 2-word packets whose payloads count from 100,
  // and claims the first (100): the packet a producer then steps over.
  sluice::claimed_packet fill_and_hold_the_first() {
    for (std::uint32_t i = 0; i < GetParam().size / 2; ++i)
      put(2, 100 + i);
    auto held = pb.try_claim();
    EXPECT_TRUE(held);
    if (held) {
      EXPECT_EQ(held.payload()[0], 100u);
    }
    return held;
  }
  // Claims (and frees) until nothing is left: the payloads, in order.
  std::vector<std::int64_t> take_all() {
    std::vector<std::int64_t> got;
    for (std::int64_t t; (t = take()) != -1;)
      got.push_back(t);
    return got;
  }
};

TEST_P(OverwriteTest, DropsOldestWithContentsIntact) {
  const std::uint32_t n = GetParam().size;
  const std::uint32_t count = n / 2;  // 2-word packets fill it (plus a 1-word tail if odd)
  for (std::uint32_t i = 0; i < count; ++i)
    put(2, 100 + i);
  put(2, 200);
  put(2, 201);
  ASSERT_EQ(drops.packets.size(), 2u);
  EXPECT_EQ(drops.packets[0], (std::vector<std::uint32_t>{100}));
  EXPECT_EQ(drops.packets[1], (std::vector<std::uint32_t>{101}));
  EXPECT_EQ(pb.counters().dropped, 2u);
  const std::vector<std::int64_t> got = take_all();
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front(), 102);
  EXPECT_EQ(got.back(), 201);
  EXPECT_EQ(got.size() + drops.packets.size(), count + 2);
}

TEST_P(OverwriteTest, ClaimedPacketIsSteppedOverAndNotDeliveredTwice) {
  const std::uint32_t count = GetParam().size / 2;
  auto held = fill_and_hold_the_first();
  ASSERT_TRUE(held);
  put(2, 200);  // cannot use 100's words: steps over them, drops 101
  ASSERT_FALSE(drops.packets.empty());
  EXPECT_EQ(drops.packets[0], (std::vector<std::uint32_t>{101}));
  EXPECT_EQ(held.payload()[0], 100u) << "a claimed packet is never overwritten";
  held.reset();
  const std::vector<std::int64_t> got = take_all();
  for (auto t : got)
    EXPECT_NE(t, 100) << "the stepped-over packet came back";
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), 200);
  EXPECT_EQ(got.size() + drops.packets.size() + 1, count + 1);
}

// A held packet that a producer stepped over re-enters the stream ahead of
// the consumer. A claim that reaches it passes it (it is not delivered
// twice), so the consumer gets what follows while it still holds it, and
// is_pending says so.
TEST_P(OverwriteTest, AClaimPassesTheHeldPacketAProducerSteppedOver) {
  const std::uint32_t n = GetParam().size;
  const std::uint32_t count = n / 2;
  auto held = fill_and_hold_the_first();
  ASSERT_TRUE(held);
  for (std::uint32_t i = 0; i < count; ++i)
    put(2, 200 + i);  // the first steps over 100's words
  EXPECT_TRUE(pb.is_pending());
  const std::vector<std::int64_t> got = take_all();
  EXPECT_FALSE(pb.is_pending());
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), 200 + count - 1) << "the claims stopped at the held packet";
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NE(got[i], 100) << "the held packet was delivered again";
    if (i > 0) {
      EXPECT_LT(got[i - 1], got[i]) << "out of order";
    }
  }
  EXPECT_EQ(got.size() + drops.packets.size() + 1, 2 * count);
  EXPECT_EQ(held.payload()[0], 100u) << "a claimed packet is never overwritten";
  held.reset();
  EXPECT_EQ(pb.approx_used_words(), 0u) << "its free reclaims its words";
  put(n, 300);
  EXPECT_EQ(take(), 300);
  EXPECT_EQ(take(), -1);
}

TEST_P(OverwriteTest, ClaimedPacketMetTwiceDoesNotLoop) {
  const std::uint32_t n = GetParam().size;
  put(n - 2, 1);
  auto held = pb.try_claim();
  ASSERT_TRUE(held);
  // Needs the held packet's words whichever way it goes around: fails.
  auto r = pb.try_alloc(n);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), alloc_error::no_room);
  auto small = pb.try_alloc(2);
  ASSERT_TRUE(small) << "the words beside the held packet are still usable";
  std::move(*small).commit();
  held.reset();
  EXPECT_EQ(take(), 0);
}

// A full-size packet stepped over while claimed re-enters the stream ahead
// of the consumer, in its own words: freeing it then only turns it into a
// skip. (Reclaiming it as the oldest claimed packet instead moved rd_idx
// past the consumer and lost the count of the words in use; the packet
// buffer's model test found that.)
TEST_P(OverwriteTest, FullSizePacketSteppedOverWhileClaimedIsFreedAsASkip) {
  const std::uint32_t n = GetParam().size;
  put(n, 7);
  auto held = pb.try_claim();
  ASSERT_TRUE(held);
  auto r = pb.try_alloc(1);  // steps over the held packet, then meets it again
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), alloc_error::no_room);
  EXPECT_EQ(pb.approx_used_words(), n);
  held.reset();
  EXPECT_EQ(pb.approx_used_words(), n) << "the freed packet is a skip the consumer has not passed";
  EXPECT_EQ(take(), -1) << "a stepped-over packet is never delivered twice";
  EXPECT_EQ(pb.approx_used_words(), 0u) << "passing the skip reclaims its words";
  put(n, 8);
  EXPECT_EQ(take(), 8);
  EXPECT_TRUE(drops.packets.empty());
}

TEST_P(OverwriteTest, UncommittedOldestIsNotDropped) {
  auto a = pb.try_alloc(GetParam().size - 1);
  ASSERT_TRUE(a);
  auto r = pb.try_alloc(2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), alloc_error::no_room);
  std::move(*a).commit();
  auto s = pb.try_alloc(2);
  ASSERT_TRUE(s);
  std::move(*s).commit();
  EXPECT_EQ(drops.packets.size(), 1u);
}

std::string name(const ::testing::TestParamInfo<param>& info) {
  return std::string(info.param.policy == overflow_policy::drop_oldest ? "Overwrite"
                                                                       : "NoOverwrite") +
         "Size" + std::to_string(info.param.size);
}

INSTANTIATE_TEST_SUITE_P(Sizes, PacketBufferTest,
                         ::testing::Values(param{8, overflow_policy::reject_new},
                                           param{11, overflow_policy::reject_new},
                                           param{16, overflow_policy::reject_new},
                                           param{8, overflow_policy::drop_oldest},
                                           param{11, overflow_policy::drop_oldest},
                                           param{16, overflow_policy::drop_oldest}),
                         name);
INSTANTIATE_TEST_SUITE_P(Sizes, OverwriteTest,
                         ::testing::Values(param{8, overflow_policy::drop_oldest},
                                           param{11, overflow_policy::drop_oldest},
                                           param{16, overflow_policy::drop_oldest}),
                         name);

}  // namespace

namespace {

TEST(PacketBufferThreadsOnly, OverwriteWithoutCriticalSectionDropsOldest) {
  std::uint32_t storage[8];
  drop_log drops;
  sluice::packet_buffer pb({.storage = storage,
                            .size_words = 8,
                            .policy = overflow_policy::drop_oldest,
                            .contexts = sluice::buffer_contexts::threads_only,
                            .on_drop = &drop_log::record,
                            .context = &drops});
  for (std::uint32_t i = 0; i < 5; ++i) {
    auto a = pb.try_alloc(2);
    ASSERT_TRUE(a);
    a->payload()[0] = i;
    std::move(*a).commit();
  }
  ASSERT_EQ(drops.packets.size(), 1u);
  EXPECT_EQ(drops.packets[0][0], 0u);
  for (std::uint32_t i = 1; i < 5; ++i) {
    auto c = pb.try_claim();
    ASSERT_TRUE(c);
    EXPECT_EQ(c.payload()[0], i);
  }
}

// Free words read zero (pbuf_core.hpp, Positions): a reservation's header
// reads "reserved" until its producer writes it, because the freeing
// consumer zeroed every word of every packet it freed (inline for short
// packets, through memset for long ones) and every padding it passed. Every
// payload word here is all ones, which reads as a claimed packet if left
// behind; whenever the buffer is empty again, its whole storage must read
// zero. Packets of 1 to 40 words, two in flight and freed in either order,
// in buffers that wrap, with and without a power-of-two size.
TEST(PacketBufferStorage, EveryWordReadsZeroWhenTheBufferIsEmptyAgain) {
  for (const std::uint32_t size : {128u, 131u}) {
    for (const auto policy : {overflow_policy::reject_new, overflow_policy::drop_oldest}) {
      std::vector<std::uint32_t> storage(size, 0xdeadbeef);
      sluice::packet_buffer pb({.storage = storage.data(), .size_words = size, .policy = policy});
      std::uint32_t state = 12345;  // a fixed sequence of lengths
      const auto length = [&state] {
        state = state * 1103515245u + 12345u;
        return 1 + (state >> 16) % 40;
      };
      for (int round = 0; round < 400; ++round) {
        const std::uint32_t n[2] = {length(), length()};
        for (const std::uint32_t words : n) {
          auto a = pb.try_alloc(words);
          ASSERT_TRUE(a) << "size " << size << ", round " << round << ": alloc of " << words
                         << " failed: " << sluice::to_string(a.error());
          for (std::uint32_t i = 0; i < a->payload_size(); ++i)
            a->payload()[i] = ~std::uint32_t{0};
          ASSERT_TRUE(std::move(*a).commit());
        }
        sluice::claimed_packet c[2] = {pb.try_claim(), pb.try_claim()};
        for (int k = 0; k < 2; ++k) {
          ASSERT_TRUE(c[k]) << "size " << size << ", round " << round;
          ASSERT_EQ(c[k].size(), n[k]);
        }
        // In turn, or the second first: it becomes a skip behind the
        // first, and the first one's free passes (and zeroes) it.
        c[round % 2].reset();
        c[1 - round % 2].reset();
        ASSERT_EQ(pb.approx_used_words(), 0u);
        for (std::uint32_t i = 0; i < size; ++i)
          ASSERT_EQ(storage[i], 0u)
              << "size " << size << ", round " << round << ", packets of " << n[0] << " and "
              << n[1] << " words: word " << i << " was not zeroed";
      }
    }
  }
}

}  // namespace

namespace {

// A driver that breaks "ready is final" (poll.hpp): polls a claim awaiter,
// gets ready, and destroys it instead of resuming. The claimed packet must
// not be freed undelivered without a word.
void claim_ready_then_destroy() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  auto p = pb.try_alloc(2);
  if (!p) std::abort();
  p->payload()[0] = 7;
  std::move(*p).commit();
  sluice::waker w = sluice::port::current_parker().make_waker();
  auto awaiter = pb.claim_async();
  if (awaiter.poll(w) != sluice::poll_status::ready) std::abort();
}

// The same for an alloc awaiter: the packet it reserved must not vanish
// (a release build abandons it, so that it holds nothing back).
void alloc_ready_then_destroy() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  sluice::waker w = sluice::port::current_parker().make_waker();
  auto awaiter = pb.alloc_async(2);
  if (awaiter.poll(w) != sluice::poll_status::ready) std::abort();
}

TEST(PacketBufferDeathTest, AllocAwaiterDestroyedAfterAReadyPollIsReported) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only");
  EXPECT_DEATH(alloc_ready_then_destroy(),
               "alloc awaiter was destroyed holding an allocated packet");
}

// A driver that resumes an alloc awaiter that never polled ready (or
// resumes it twice): debug builds name the misuse; a release build answers
// no_room and takes no words.
void alloc_resumed_before_ready() {
  std::uint32_t words[4];
  sluice::packet_buffer pb({.storage = words, .size_words = 4});
  auto full = pb.try_alloc(4);
  if (!full) std::abort();
  auto awaiter = pb.alloc_async(1);
  (void)awaiter.await_resume();
  std::move(*full).abandon();
}

TEST(PacketBufferDeathTest, AnAllocAwaiterResumedWithoutAPacketIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only");
  EXPECT_DEATH(alloc_resumed_before_ready(), "alloc awaiter: await_resume without a packet");
}

TEST(PacketBufferAsync, AnAllocAwaiterResumedWithoutAPacketAnswersNoRoomInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  std::uint32_t words[4];
  sluice::packet_buffer pb({.storage = words, .size_words = 4});
  auto full = pb.try_alloc(4);
  ASSERT_TRUE(full);
  auto awaiter = pb.alloc_async(1);
  auto early = awaiter.await_resume();  // never polled
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error(), alloc_error::no_room);
  std::move(*full).abandon();
  EXPECT_FALSE(pb.try_claim());  // passes the padding: empty again
  EXPECT_EQ(pb.approx_used_words(), 0u) << "the early resume took words";
  sluice::waker w = sluice::port::current_parker().make_waker();
  auto ready = pb.alloc_async(4);
  ASSERT_EQ(ready.poll(w), sluice::poll_status::ready);
  auto got = ready.await_resume();
  ASSERT_TRUE(got) << "the resumed awaiter took words";
  auto again = ready.await_resume();  // a second time
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), alloc_error::no_room);
  std::move(*got).abandon();
  EXPECT_FALSE(pb.try_claim());
  EXPECT_EQ(pb.approx_used_words(), 0u);
}

// Three producer awaiters listed; one takes a wake and is dropped without
// using it: the wake goes on to another, which is dropped in turn and
// passes it to the last. One dropped without a wake wakes nobody. Each
// dropped awaiter leaves the list.
// A driver that polls a claim awaiter again after a ready poll breaks the
// awaiter protocol (debug builds name it); a release build keeps the packet
// it has instead of claiming a second one over it, which would never be
// delivered or freed.
TEST(PacketBufferAsync, AClaimAwaiterPolledAgainAfterReadyKeepsItsPacketInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at the second poll");
  std::uint32_t words[8];
  sluice::detail::pbuf_core core({.buffer = words, .size = 8});
  (void)sluice::test::put_with_length(core, 2);
  (void)sluice::test::put_with_length(core, 2);
  {
    sluice::claim_awaiter a(core);
    ASSERT_TRUE(a.try_complete());
    ASSERT_TRUE(a.try_complete());
    sluice::claimed_packet first = a.await_resume();
    ASSERT_TRUE(first);
    EXPECT_EQ(first.words(), words) << "the second poll claimed over the first";
  }
  const sluice::detail::pbuf_span second = core.try_claim();
  ASSERT_NE(second.words, nullptr) << "the second packet was claimed and lost";
  EXPECT_EQ(second.words, words + 2);
  core.free(second.words);
  EXPECT_EQ(core.used_words(), 0u);
}

TEST(PacketBufferAsync, AProducerAwaiterDroppedWithAWakePassesItOn) {
  std::uint32_t words[8];
  sluice::detail::pbuf_core core({.buffer = words, .size = 8});
  (void)sluice::test::put_with_length(core, 8);  // full
  constexpr int count = 3;
  sluice::test::wake_counter wakes[count];
  sluice::test::wake_counter quiet[2];  // for the second part; outlive the awaiters
  std::optional<sluice::alloc_awaiter> awaiters[count];
  for (int i = 0; i < count; ++i) {
    awaiters[i].emplace(core, 2);
    ASSERT_EQ(awaiters[i]->poll(sluice::make_waker(wakes[i])), sluice::poll_status::pending);
  }
  const auto total = [&] {
    int sum = 0;
    for (auto& w : wakes)
      sum += w.count();
    return sum;
  };
  // The one woken and still listed, if exactly one is.
  const auto woken_one = [&] {
    int found = -1;
    for (int i = 0; i < count; ++i)
      if (awaiters[i] && wakes[i].count() == 1) found = found == -1 ? i : -2;
    return found;
  };
  core.space_waiters.notify_one();
  ASSERT_EQ(total(), 1);
  for (int dropped = 1; dropped <= count; ++dropped) {
    const int woken = woken_one();
    ASSERT_GE(woken, 0) << "no single woken awaiter before drop " << dropped;
    awaiters[woken].reset();  // never used its wake: passes it on
    EXPECT_EQ(wakes[woken].live_refs(), 0) << "drop " << dropped << " left its waker behind";
    if (dropped < count) {
      EXPECT_EQ(total(), dropped + 1) << "the wake was not passed on (drop " << dropped << ")";
    } else {
      EXPECT_EQ(total(), count) << "a wake with nobody listed went somewhere";
    }
  }
  EXPECT_FALSE(core.space_waiters.approx_has_waiters()) << "a dropped awaiter stayed listed";

  for (int i = 0; i < 2; ++i) {
    awaiters[i].emplace(core, 2);
    ASSERT_EQ(awaiters[i]->poll(sluice::make_waker(quiet[i])), sluice::poll_status::pending);
  }
  awaiters[0].reset();  // listed, never woken
  EXPECT_EQ(quiet[0].live_refs(), 0) << "the list kept the dropped awaiter's waker";
  EXPECT_EQ(quiet[1].count(), 0) << "a drop without a wake woke another";
  awaiters[1].reset();
  EXPECT_FALSE(core.space_waiters.approx_has_waiters()) << "a dropped awaiter stayed listed";
}

// A task's allocation and claim under with_timeout (sleep.hpp), on the
// engine itself (so that the test can see who waits): the words it got
// (committed), or -1 on timeout, -2 too large.
sluice::task<int> alloc_within(sluice::detail::pbuf_core& core, std::uint32_t words,
                               sluice::duration d) {
  auto r = co_await sluice::with_timeout(d, sluice::alloc_awaiter(core, words));
  if (!r) co_return -1;
  if (!*r) co_return -2;
  const int got = static_cast<int>((*r)->size());
  (*r)->payload()[0] = static_cast<std::uint32_t>(got);
  std::move(**r).commit();
  co_return got;
}
// The claimed packet's first payload word, or -1 on timeout.
sluice::task<int> claim_within(sluice::detail::pbuf_core& core, sluice::duration d) {
  auto r = co_await sluice::with_timeout(d, sluice::claim_awaiter(core));
  if (!r) co_return -1;
  co_return static_cast<int>(r->payload()[0]);
}

// A claim awaiter moved in by name lives on after with_timeout's timeout:
// 1 if it is still listed as the consumer's waiter then (it would take a
// commit's wake meant for another wait), 0 if it left, -2 if it claimed.
sluice::task<int> named_claim_still_listed(sluice::detail::pbuf_core& core, sluice::duration d) {
  sluice::claim_awaiter named(core);
  auto r = co_await sluice::with_timeout(d, std::move(named));
  if (r) co_return -2;
  co_return core.data_waiters.approx_has_waiters() ? 1 : 0;
}

// On a real executor: the timeout wins over a full (or empty) buffer and
// takes nothing; the free (or commit) wins over a long timeout, made while
// the task waits. With drop_oldest too: a waiting allocation drops nothing.
TEST(PacketBufferAsync, TimeoutsAroundAllocAndClaimInATask) {
  // Under the unit binary's 60 s limit, so that a hang is named.
  sluice::test::abort_watchdog dog(50s, "packet buffer timeouts in tasks");
  // A timeout that must not fire: the waits it bounds end by the other
  // thread's free or commit (the watchdog ends a hang), however slow the
  // machine.
  constexpr sluice::duration never = std::chrono::hours(1);
  for (const std::uint32_t flags : {0u, sluice::detail::pbuf_flag_overwrite}) {
    std::uint32_t words[8];
    sluice::detail::pbuf_core core({.buffer = words, .size = 8, .flags = flags});
    sluice::executor ex{{.workers = 2}};
    EXPECT_EQ(*sluice::block_on(ex, claim_within(core, 10ms)), -1);  // nothing committed
    EXPECT_EQ(*sluice::block_on(ex, named_claim_still_listed(core, 10ms)), 0)
        << "a timed-out awaiter that lives on stayed listed";
    EXPECT_FALSE(core.data_waiters.approx_has_waiters()) << "the timed-out claim stayed listed";
    EXPECT_EQ(*sluice::block_on(ex, alloc_within(core, 9, never)), -2);
    EXPECT_EQ(*sluice::block_on(ex, alloc_within(core, 4, never)), 4);
    EXPECT_EQ(*sluice::block_on(ex, alloc_within(core, 3, never)), 3);  // 7 of 8 words used
    EXPECT_EQ(*sluice::block_on(ex, alloc_within(core, 2, 10ms)), -1);  // the timeout wins
    EXPECT_FALSE(core.space_waiters.approx_has_waiters()) << "the timed-out task stayed listed";
    std::atomic<bool> done{false};
    std::thread consumer([&] {
      if (!sluice::test::listed_before(core.space_waiters, done)) return;  // the check below fails
      const sluice::detail::pbuf_span c = core.try_claim();
      ASSERT_NE(c.words, nullptr);
      EXPECT_EQ(c.words[1], 4u);
      core.free(c.words);  // room for the waiting task
    });
    const int got = *sluice::block_on(ex, alloc_within(core, 2, never));
    done.store(true, std::memory_order_relaxed);  // listed_before's stop flag
    consumer.join();
    EXPECT_EQ(got, 2) << "the free while the task waited";
    EXPECT_EQ(*sluice::block_on(ex, claim_within(core, never)), 3);
    EXPECT_EQ(*sluice::block_on(ex, claim_within(core, never)), 2);
    done.store(false, std::memory_order_relaxed);  // nobody reads it until the thread starts
    std::thread producer([&] {
      if (!sluice::test::listed_before(core.data_waiters, done)) return;  // the check below fails
      const std::uint32_t packet[2] = {sluice::packet_buffer::default_header(2), 5};
      EXPECT_TRUE(core.put_data(packet, 2));
    });
    const int claimed = *sluice::block_on(ex, claim_within(core, never));
    done.store(true, std::memory_order_relaxed);  // listed_before's stop flag
    producer.join();
    EXPECT_EQ(claimed, 5) << "the commit while the task waited";
    EXPECT_FALSE(core.data_waiters.approx_has_waiters()) << "a claim that returned stayed listed";
    EXPECT_FALSE(core.space_waiters.approx_has_waiters());
    EXPECT_EQ(core.claimed.load(), 4u);
    EXPECT_EQ(core.dropped.load(), 0u);
  }
}

// Release builds: the words of a packet reserved by a ready poll whose
// awaiter was then destroyed become padding, and hold nothing back.
TEST(PacketBufferAsync, AnAllocAwaiterDestroyedAfterAReadyPollGivesItsWordsBackInRelease) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  std::uint32_t words[8];
  sluice::packet_buffer pb({.storage = words, .size_words = 8});
  sluice::waker w = sluice::port::current_parker().make_waker();
  {
    auto awaiter = pb.alloc_async(3);
    ASSERT_EQ(awaiter.poll(w), sluice::poll_status::ready);
  }
  ASSERT_TRUE(pb.put_word(pb.default_header(1)));
  auto c = pb.try_claim();
  ASSERT_TRUE(c) << "the abandoned words held back the packet after them";
  EXPECT_EQ(c.size(), 1u);
  c.reset();
  EXPECT_EQ(pb.approx_used_words(), 0u);
}

TEST(PacketBufferDeathTest, ClaimAwaiterDestroyedAfterAReadyPollIsReported) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only");
  EXPECT_DEATH(claim_ready_then_destroy(), "claim awaiter was destroyed holding a claimed packet");
}

}  // namespace

namespace {

// Overwrite: a full-size allocation cannot step over the packet the
// consumer holds and waits. When the consumer frees it, the waiting
// producer must be woken, not left until an unrelated commit. (The case of
// a packet freed after an overwrite stepped over it, away from the front,
// is covered by the same wake in free_unlocked; no test here forces that
// interleaving.)
TEST(PacketBufferWakeups, FreeingTheClaimedPacketWakesAWaitingOverwriteProducer) {
  const sluice::test::abort_watchdog dog{std::chrono::seconds(20),
                                         "an overwrite producer not woken by the free"};
  std::uint32_t words[8] = {};
  sluice::packet_buffer pb({.storage = words,
                            .size_words = 8,
                            .policy = overflow_policy::drop_oldest,
                            .contexts = sluice::buffer_contexts::threads_only});
  auto a = pb.try_alloc(4);
  ASSERT_TRUE(a);
  std::move(*a).commit();
  sluice::claimed_packet held = pb.try_claim();
  ASSERT_TRUE(held);
  ASSERT_FALSE(pb.try_alloc(8));  // the claimed packet is in the way
  std::atomic<bool> got{false};
  sluice::test::park_watch waiting;
  std::thread producer([&] {
    waiting.arrive();
    // No deadline: only the free below can let it through.
    auto r = pb.alloc_until(8, sluice::time_point::max());
    waiting.leave();
    got = static_cast<bool>(r);
    if (r) std::move(*r).abandon();
  });
  EXPECT_TRUE(waiting.parked()) << "the allocation did not wait";
  held = sluice::claimed_packet{};  // free
  producer.join();
  EXPECT_TRUE(got.load());
}

}  // namespace

namespace {

using sluice::test::length_in_user_bits;  // set_user_bits(n) below

// Fills a 16-word buffer with 4 committed packets of 4 words, payloads
// first, first + 1, ...
void fill_with_four_packets(sluice::packet_buffer& pb, std::uint32_t first) {
  for (std::uint32_t i = 0; i < 4; ++i) {
    auto a = pb.try_alloc(4);
    ASSERT_TRUE(a);
    a->set_user_bits(4);
    a->payload()[0] = first + i;
    std::move(*a).commit();
  }
}

// A producer that runs inside the consumer's claim or free (as a signal or
// interrupt handler that interrupts the consumer would): the packet_words
// callback, which claim and free call while they hold the overwrite lock,
// plays that producer here. The consumer holds the lock outside any
// critical section, so a producer that needs room must give up (no_room)
// instead of waiting for it forever, and must leave the buffer as it was.
struct nested_producer {
  sluice::packet_buffer* pb = nullptr;
  drop_log drops;
  bool armed = false;
  int runs = 0;
  bool got_room = false;
  alloc_error error = alloc_error::too_large;

  static std::uint32_t words(void* context, const std::uint32_t* packet) noexcept {
    auto& self = *static_cast<nested_producer*>(context);
    if (self.armed) {
      self.armed = false;
      ++self.runs;
      auto a = self.pb->try_alloc(4);  // needs a drop: the buffer is full
      self.got_room = static_cast<bool>(a);
      if (a) {
        a->set_user_bits(4);
        std::move(*a).abandon();
      } else {
        self.error = a.error();
      }
    }
    return length_in_user_bits(packet);
  }
  static void dropped(void* context, const std::uint32_t* packet, std::uint32_t words) noexcept {
    drop_log::record(&static_cast<nested_producer*>(context)->drops, packet, words);
  }
};

// A full 16-word drop_oldest buffer (four packets, payloads 100..103) whose
// callbacks are a nested_producer's.
class PacketBufferNested : public ::testing::Test {
 protected:
  void SetUp() override {
    nest.pb = &pb;
    fill_with_four_packets(pb, 100);
  }
  std::uint32_t storage[16] = {};
  nested_producer nest;
  sluice::packet_buffer pb{{.storage = storage,
                            .size_words = 16,
                            .policy = overflow_policy::drop_oldest,
                            .on_drop = &nested_producer::dropped,
                            .packet_words = &nested_producer::words,
                            .context = &nest}};
};

TEST_F(PacketBufferNested, ProducerInsideTheConsumersClaimOrFreeGivesUpInsteadOfWaiting) {
  nest.armed = true;
  sluice::claimed_packet c = pb.try_claim();
  ASSERT_TRUE(c);
  EXPECT_EQ(c.payload()[0], 100u);
  ASSERT_EQ(nest.runs, 1);
  EXPECT_FALSE(nest.got_room) << "a producer nested in claim took the consumer's lock";
  EXPECT_EQ(nest.error, alloc_error::no_room);
  EXPECT_TRUE(nest.drops.packets.empty());

  nest.armed = true;
  c.reset();  // free: the nested producer runs again, under the consumer's lock
  ASSERT_EQ(nest.runs, 2);
  EXPECT_FALSE(nest.got_room) << "a producer nested in free took the consumer's lock";
  EXPECT_EQ(nest.error, alloc_error::no_room);
  EXPECT_TRUE(nest.drops.packets.empty());

  // Outside the consumer, the same buffer drops as usual: 8 words need 101.
  auto a = pb.try_alloc(8);
  ASSERT_TRUE(a);
  a->set_user_bits(8);
  a->payload()[0] = 200;
  std::move(*a).commit();
  ASSERT_EQ(nest.drops.packets.size(), 1u);
  EXPECT_EQ(nest.drops.packets[0][0], 101u);
  std::vector<std::uint32_t> got;
  for (sluice::claimed_packet p; (p = pb.try_claim());)
    got.push_back(p.payload()[0]);
  EXPECT_EQ(got, (std::vector<std::uint32_t>{102, 103, 200}));
  EXPECT_EQ(pb.counters().dropped, 1u);
}

// A producer that runs inside another producer's turn with the overwrite
// lock (as a signal handler that interrupts a dropper on its own thread
// would; hosted, droppers do not mask signals: the lock names its holder's
// thread): the packet_words callback, which the dropper calls under the
// lock, plays it. It must give up (no_room) at once, not wait for a lock
// its own thread holds; the outer producer then drops and allocates.
TEST_F(PacketBufferNested, ProducerInsideADroppersTurnGivesUpInsteadOfWaiting) {
  sluice::test::abort_watchdog dog{std::chrono::seconds(60), "a producer nested in a dropper"};
  nest.armed = true;
  auto a = pb.try_alloc(4);  // drops 100; its length is read under the lock
  ASSERT_TRUE(a);
  ASSERT_EQ(nest.runs, 1);
  EXPECT_FALSE(nest.got_room) << "a producer nested in a dropper's turn took the lock";
  EXPECT_EQ(nest.error, alloc_error::no_room);
  a->set_user_bits(4);
  a->payload()[0] = 200;
  std::move(*a).commit();
  ASSERT_EQ(nest.drops.packets.size(), 1u);
  EXPECT_EQ(nest.drops.packets[0][0], 100u);
  std::vector<std::uint32_t> got;
  for (sluice::claimed_packet p; (p = pb.try_claim());)
    got.push_back(p.payload()[0]);
  EXPECT_EQ(got, (std::vector<std::uint32_t>{101, 102, 103, 200}));
  EXPECT_EQ(pb.counters().dropped, 1u);
}

// A producer on another thread that needs a drop while the consumer holds
// the overwrite lock (here: for 50 ms, inside its packet_words callback)
// waits for the lock instead of giving up: an untimed try_alloc made while
// the consumer holds it succeeds. With threads_only no handler can have
// interrupted the consumer; with `any` the hosted port's context tokens
// tell this thread from a handler on the consumer's thread (which gives up
// at once: PacketBufferNested above). Only on a port without tokens (and
// without masking) would it give up after a short spin.
struct slow_consumer {
  std::atomic<bool> stall{false};
  std::atomic<bool> inside{false};
  std::atomic<bool> calling{false};  // the producer is about to call try_alloc
  std::atomic<bool> left{false};     // its stall is over
  static std::uint32_t words(void* context, const std::uint32_t* packet) noexcept {
    auto& self = *static_cast<slow_consumer*>(context);
    if (self.stall.exchange(false)) {
      self.inside = true;
      // The 50 ms start once the producer is at its call (a producer
      // scheduled late would otherwise call after them), within 5 s.
      const auto give_up = std::chrono::steady_clock::now() + 5s;
      while (!self.calling.load() && std::chrono::steady_clock::now() < give_up)
        std::this_thread::yield();
      std::this_thread::sleep_for(50ms);
      self.left = true;
    }
    return length_in_user_bits(packet);
  }
};

class PacketBufferOtherThread : public ::testing::TestWithParam<sluice::buffer_contexts> {};

TEST_P(PacketBufferOtherThread, ProducerWaitsForTheConsumersLock) {
  sluice::test::abort_watchdog dog{std::chrono::seconds(30), "a producer waiting for the lock"};
  // A try counts only if the producer called try_alloc while the consumer
  // was inside its stall (a producer thread scheduled late could start
  // after it): the buffer is full and the claim frees nothing, so a
  // success then is a drop made after waiting for the consumer's turn.
  bool met = false;
  for (int attempt = 0; attempt < 20 && !met; ++attempt) {
    std::uint32_t storage[16] = {};
    slow_consumer consumer;
    sluice::packet_buffer pb({.storage = storage,
                              .size_words = 16,
                              .policy = overflow_policy::drop_oldest,
                              .contexts = GetParam(),
                              .packet_words = &slow_consumer::words,
                              .context = &consumer});
    fill_with_four_packets(pb, 0);
    if (HasFatalFailure()) return;
    consumer.stall = true;
    std::atomic<bool> got{false}, during{false}, after{false};
    std::thread producer([&] {
      while (!consumer.inside.load())
        std::this_thread::yield();
      consumer.calling = true;
      during = !consumer.left.load();  // the consumer holds its turn now
      auto r = pb.try_alloc(4);
      after = consumer.left.load();  // it returned once the turn was over
      got = static_cast<bool>(r);
      if (r) std::move(*r).abandon();
    });
    // Holds its turn for 50 ms; the packet stays claimed until the end, so
    // the producer's room comes from a drop, not from this free.
    sluice::claimed_packet c = pb.try_claim();
    EXPECT_TRUE(c);
    producer.join();
    if (!during.load()) continue;  // started after the stall: try again
    met = true;
    EXPECT_TRUE(got.load()) << "a producer on another thread gave up on the consumer's lock";
    EXPECT_TRUE(after.load()) << "the producer's allocation ended inside the consumer's turn";
    EXPECT_EQ(pb.counters().dropped, 1u);  // the oldest unclaimed packet made the room
  }
  EXPECT_TRUE(met) << "in 20 tries the producer never called try_alloc during the consumer's turn";
}

INSTANTIATE_TEST_SUITE_P(Contexts, PacketBufferOtherThread,
                         ::testing::Values(sluice::buffer_contexts::any,
                                           sluice::buffer_contexts::threads_only));

// The commit and free paths' light fence ([PB4], [AF1] in sluice/port.hpp)
// is a compiler barrier only where the heavy side is a membarrier; the
// hosted port says which through asymmetric_fence_state.
TEST(HostedPort, LightFenceIsABarrierExactlyWhenTheKernelGivesAMembarrier) {
  sluice::port::asymmetric_fence_heavy();  // settles the choice (done at start-up too)
  const long commands = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  const bool expedited = commands > 0 && (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0;
  EXPECT_EQ(
      sluice::port::asymmetric_fence_state.load() == sluice::port::asymmetric_fence_membarrier,
      expedited)
      << "MEMBARRIER_CMD_QUERY answered " << commands;
}

}  // namespace

namespace {

// The engine's own interface (sluice/detail/pbuf_core.hpp), as the C API
// uses it: where a test needs to see its waiter list or its positions.
using sluice::detail::pbuf_core;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

// A producer in alloc_until on its own thread, which abandons what it
// gets. listed_or_done() returns once it either returned (done) or is on
// the waiter list: observed, not timed.
class waiting_producer {
 public:
  waiting_producer(pbuf_core& c, std::uint32_t words, sluice::time_point deadline)
      : core_(c), thread_([this, words, deadline] {
          pbuf_span q;
          const pbuf_status s = core_.alloc_until(words, deadline, q);
          if (s == pbuf_status::ok) core_.abandon(q.words, words);
          status_ = s;
          done_.store(true, std::memory_order_relaxed);  // listed_before's stop flag
        }) {}
  ~waiting_producer() {
    if (thread_.joinable()) thread_.join();
  }
  bool listed_or_done() { return !sluice::test::listed_before(core_.space_waiters, done_); }
  pbuf_status join() {
    thread_.join();
    return status_.load();
  }

 private:
  pbuf_core& core_;
  std::atomic<bool> done_{false};
  std::atomic<pbuf_status> status_{pbuf_status::no_room};
  std::thread thread_;
};

// With overwrite, a timed allocation on a buffer full of committed packets
// waits (it is seen on the waiter list) rather than dropping the oldest,
// and the consumer's free lets it through. Both steps are observed, not
// timed: the producer either returns or is listed first.
// The fast paths (inline in pbuf_core.hpp) read lengths from the header
// and apply only where the constructor marked the buffer so: with no
// length callback, and only where speed comes first. A buffer never marked
// would still work, slowly; one marked with a callback would read user
// bits as lengths.
TEST(PacketBufferFastPaths, TheHeaderLengthsFlagFollowsTheLengthSource) {
  using sluice::detail::pbuf_flag_header_lengths;
  std::uint32_t storage[16];
  const pbuf_core plain({.buffer = storage, .size = 16});
  EXPECT_EQ((plain.flags & pbuf_flag_header_lengths) != 0, sluice::detail::speed_over_size);
  const pbuf_core cpp_callback(
      {.buffer = storage,
       .size = 16,
       .words = [](void*, const std::uint32_t*) noexcept -> std::uint32_t { return 1; }});
  EXPECT_EQ(cpp_callback.flags & pbuf_flag_header_lengths, 0u);
  // A caller's own bit 9 is not taken for the mark.
  const pbuf_core c_callback(
      {.buffer = storage,
       .size = 16,
       .flags = pbuf_flag_header_lengths,
       .c_get_wlen = [](const union mpsc_pbuf_generic*) -> std::uint32_t { return 1; }});
  EXPECT_EQ(c_callback.flags & pbuf_flag_header_lengths, 0u);
}

TEST(PacketBufferOverwriteWait, ATimedAllocationWaitsForTheFreeInsteadOfDropping) {
  std::uint32_t storage[16];
  pbuf_core c({.buffer = storage, .size = 16, .flags = sluice::detail::pbuf_flag_overwrite});
  for (std::uint32_t tag = 1; tag <= 4; ++tag) {
    pbuf_span p;
    ASSERT_EQ(c.try_alloc(4, p), pbuf_status::ok);
    p.words[1] = tag;
    sluice::test::commit_with_length(c, p);
  }
  const sluice::test::abort_watchdog dog{std::chrono::seconds(20),
                                         "an overwrite timed alloc not woken by the free"};
  waiting_producer producer(c, 4, sluice::time_point::max());
  EXPECT_FALSE(producer.listed_or_done()) << "the timed allocation returned without waiting";
  EXPECT_EQ(c.dropped.load(), 0u) << "the timed allocation dropped a packet";
  const pbuf_span oldest = c.try_claim();
  ASSERT_NE(oldest.words, nullptr);
  EXPECT_EQ(oldest.words[1], 1u);
  c.free(oldest.words);
  EXPECT_EQ(producer.join(), pbuf_status::ok);
  EXPECT_EQ(c.dropped.load(), 0u);
  for (std::uint32_t tag = 2; tag <= 4; ++tag) {
    const pbuf_span p = c.try_claim();
    ASSERT_NE(p.words, nullptr);
    EXPECT_EQ(p.words[1], tag);
    c.free(p.words);
  }
  EXPECT_EQ(c.try_claim().words, nullptr) << "the abandoned packet is padding";
}

// With overwrite, a waiting producer can pass a skip at the front itself
// (the consumer here never claims): abandoning the packet that held it back
// must wake it (wake_after::skip), though a commit there would not.
TEST(PacketBufferOverwriteWait, AnAbandonedOldestPacketWakesAWaitingProducer) {
  std::uint32_t storage[16];
  pbuf_core c({.buffer = storage, .size = 16, .flags = sluice::detail::pbuf_flag_overwrite});
  pbuf_span oldest;
  ASSERT_EQ(c.try_alloc(16, oldest), pbuf_status::ok);
  waiting_producer producer(c, 4, sluice::time_point::max());
  ASSERT_FALSE(producer.listed_or_done()) << "room without the abandon";
  c.abandon(oldest.words, 16);
  // Without the wake-up, for ever (the test's time limit fails it).
  EXPECT_EQ(producer.join(), pbuf_status::ok);
  EXPECT_EQ(c.try_claim().words, nullptr);
  EXPECT_EQ(c.dropped.load(), 0u);
}

// Overwrite: a request that cannot fit beside a held 1-word packet meets
// it again one lap after stepping over it, and gives up there. (The bound
// counted the words stepped over: `size` meetings, a lap each, all under
// the lock the consumer needs to free the packet.) Seen in how far the
// write position moved.
TEST(PacketBufferOverwriteSteps, AHeldOneWordPacketIsSteppedOverOnceNotOncePerWord) {
  constexpr std::uint32_t size = 64;
  std::uint32_t storage[size];
  pbuf_core c({.buffer = storage, .size = size, .flags = sluice::detail::pbuf_flag_overwrite});
  pbuf_span p;
  ASSERT_EQ(c.try_alloc(1, p), pbuf_status::ok);
  sluice::test::commit_with_length(c, p);
  const pbuf_span held = c.try_claim();
  ASSERT_NE(held.words, nullptr);
  const std::uint32_t before = c.tmp_wr_idx.load();
  pbuf_span none;
  EXPECT_EQ(c.try_alloc(size, none), pbuf_status::no_room);
  const std::uint32_t moved = c.tmp_wr_idx.load() - before;
  EXPECT_LE(moved, 2 * size) << "the write position went " << moved / size
                             << " laps around a held 1-word packet";
  c.free(held.words);
  ASSERT_EQ(c.try_alloc(size, p), pbuf_status::ok) << "freed, the whole buffer is usable";
  c.abandon(p.words, size);
  EXPECT_EQ(c.try_claim().words, nullptr);
}

// The lap that bounds stepping over claimed packets starts again from a
// claimed packet met more than a lap after the first one. Between turns
// (the drop callback runs outside the lock) the consumer may free the
// packet stepped over and claim one that the next turn meets first, more
// than a lap on: that one is met once, and stepping over it (and dropping
// what follows) makes room. Counted from the first packet alone, the
// allocation gave up with no_room there. The callback plays the consumer
// and a producer.
struct turn_scene {
  pbuf_core* core = nullptr;
  pbuf_span held;  // the consumer's packet
  std::vector<std::uint32_t> dropped_words;
};
turn_scene* scene_now = nullptr;

using sluice::test::put_with_length;

void consumer_between_turns(void*, const std::uint32_t*, std::uint32_t words) noexcept {
  turn_scene& s = *scene_now;
  s.dropped_words.push_back(words);
  if (s.dropped_words.size() == 1) {
    s.core->free(s.held.words);  // the packet the first turn stepped over
  } else if (s.dropped_words.size() == 2) {
    EXPECT_EQ(s.core->try_claim().words, nullptr);  // passes the skips
    put_with_length(*s.core, 1);                    // B
    put_with_length(*s.core, 1);                    // C
    s.held = s.core->try_claim();                   // B, a lap on
    EXPECT_NE(s.held.words, nullptr);
  }
}

TEST(PacketBufferOverwriteSteps, TheLapStartsAgainFromAPacketMetMoreThanALapOn) {
  std::uint32_t storage[16];
  pbuf_core c({.buffer = storage,
               .size = 16,
               .flags = sluice::detail::pbuf_flag_overwrite,
               .drop = consumer_between_turns});
  turn_scene s;
  s.core = &c;
  scene_now = &s;
  put_with_length(c, 1);  // X
  put_with_length(c, 2);  // Y
  put_with_length(c, 1);  // V
  s.held = c.try_claim();
  ASSERT_EQ(s.held.words, storage);  // X
  pbuf_span big;
  // Steps over X and drops Y; then drops V; then meets B once, steps over
  // it and drops C.
  ASSERT_EQ(c.try_alloc(14, big), pbuf_status::ok) << "gave up a lap after a packet since freed";
  EXPECT_EQ(s.dropped_words, (std::vector<std::uint32_t>{2, 1, 1}));
  sluice::test::commit_with_length(c, big);
  c.free(s.held.words);  // B
  const pbuf_span got = c.try_claim();
  ASSERT_NE(got.words, nullptr);
  EXPECT_EQ(got.size, 14u);
  c.free(got.words);
  EXPECT_EQ(c.try_claim().words, nullptr);
  EXPECT_EQ(c.used_words(), 0u);
  scene_now = nullptr;
}

}  // namespace

namespace {

// The handles: what an empty, moved-from or freed one answers, and the
// misuses that debug builds stop with a message naming them.
TEST(PacketBufferHandles, EmptyMovedFromAndFreedHandlesAnswerNothing) {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  sluice::claimed_packet none = pb.try_claim();
  EXPECT_FALSE(none);
  EXPECT_EQ(none.payload(), nullptr);
  EXPECT_EQ(none.payload_size(), 0u);
  EXPECT_EQ(none.size(), 0u);

  auto a = pb.try_alloc(3);
  ASSERT_TRUE(a);
  sluice::allocated_packet moved = std::move(*a);
  EXPECT_EQ(a->words(), nullptr) << "a moved-from packet still points at the words";
  EXPECT_EQ(a->size(), 0u);
  moved.payload()[0] = 5;
  std::move(moved).commit();

  sluice::claimed_packet c = pb.try_claim();
  ASSERT_TRUE(c);
  sluice::claimed_packet taken = std::move(c);
  EXPECT_FALSE(c);
  EXPECT_EQ(c.words(), nullptr);
  EXPECT_EQ(c.payload_size(), 0u);
  EXPECT_EQ(taken.payload()[0], 5u);
  taken.reset();
  EXPECT_FALSE(taken);
  EXPECT_EQ(taken.words(), nullptr) << "a freed packet's handle still points at its words";
  EXPECT_EQ(taken.payload_size(), 0u);
  EXPECT_EQ(pb.counters().claimed, 1u);
}

std::uint32_t length_in_bits(void*, const std::uint32_t* packet) noexcept {
  return length_in_user_bits(packet);
}

void commit_twice() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  auto a = pb.try_alloc(2);
  if (!a) std::abort();
  sluice::allocated_packet p = std::move(*a);
  std::move(p).commit();
  std::move(p).commit();
}

void user_bits_without_a_callback() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  auto a = pb.try_alloc(2);
  if (!a) std::abort();
  a->set_user_bits(1);  // would overwrite the length
}

void commit_with_a_length_the_callback_does_not_read() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16, .packet_words = &length_in_bits});
  auto a = pb.try_alloc(4);
  if (!a) std::abort();
  a->set_user_bits(3);
  std::move(*a).commit();
}

void put_a_word_that_says_two() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  (void)pb.put_word(pb.default_header(2));
}

void put_data_that_says_five() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  const std::uint32_t data[2] = {pb.default_header(5), 7};
  (void)pb.put_data(data, 2);
}

void put_a_word_the_callback_reads_as_three() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16, .packet_words = &length_in_bits});
  (void)pb.put_word(3u << sluice::detail::pbuf_hdr_bits);
}

TEST(PacketBufferHandlesDeathTest, APutWhoseWordsGiveAnotherLengthIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the checks are assertions: debug builds only (release, below)");
  EXPECT_DEATH(put_a_word_that_says_two(), "a put's words give another length than it puts");
  EXPECT_DEATH(put_data_that_says_five(), "a put's words give another length than it puts");
  EXPECT_DEATH(put_a_word_the_callback_reads_as_three(),
               "a put's words give another length than it puts");
}

// A release build refuses a put whose words give another length than it
// puts, and takes nothing. (A word that said 5 was put as a 5-word packet:
// the consumer took the next two packets for its payload, and they were
// never delivered.)
TEST(PacketBufferHandles, APutWhoseWordsGiveAnotherLengthIsRefusedInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  std::uint32_t words[64];
  sluice::packet_buffer pb({.storage = words, .size_words = 64});
  EXPECT_FALSE(pb.put_word(pb.default_header(5)));
  EXPECT_FALSE(pb.put_word(pb.default_header(0)));
  EXPECT_FALSE(pb.put_word(pb.default_header(1000)));
  const int target = 0;
  EXPECT_FALSE(pb.put_word_ext(pb.default_header(1), &target));
  const std::uint32_t says_three[2] = {pb.default_header(3), 1};
  EXPECT_FALSE(pb.put_data(says_three, 2));
  EXPECT_EQ(pb.approx_used_words(), 0u) << "a refused put took words";
  for (std::uint32_t v = 1; v <= 3; ++v) {
    const std::uint32_t data[2] = {pb.default_header(2), 1000 + v};
    ASSERT_TRUE(pb.put_data(data, 2));
  }
  for (std::uint32_t v = 1; v <= 3; ++v) {
    sluice::claimed_packet c = pb.try_claim();
    ASSERT_TRUE(c) << v;
    ASSERT_EQ(c.size(), 2u) << v;
    EXPECT_EQ(c.payload()[0], 1000 + v);
  }
  EXPECT_FALSE(pb.try_claim());
  EXPECT_EQ(pb.counters().claimed, 3u);
}

// A release build keeps the length where set_user_bits has no callback to
// read the user's bits, and abandons a packet whose callback reads another
// length than was allocated. (The first made a 2-word packet read as 500
// words, which the consumer's free cleared past the storage; the second
// handed the consumer a packet of the wrong length.)
TEST(PacketBufferHandles, APacketWhoseLengthWouldBeMisreadStaysWholeInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at both (the death test below)");
  {
    std::uint32_t words[16];
    sluice::packet_buffer pb({.storage = words, .size_words = 16});
    auto a = pb.try_alloc(2);
    ASSERT_TRUE(a);
    a->set_user_bits(500);
    a->payload()[0] = 42;
    std::move(*a).commit();
    sluice::claimed_packet c = pb.try_claim();
    ASSERT_TRUE(c);
    EXPECT_EQ(c.size(), 2u);
    EXPECT_EQ(c.payload()[0], 42u);
  }
  {
    std::uint32_t words[16];
    sluice::packet_buffer pb({.storage = words, .size_words = 16, .packet_words = &length_in_bits});
    auto a = pb.try_alloc(4);
    ASSERT_TRUE(a);
    a->set_user_bits(3);  // the callback reads 3 words of 4
    std::move(*a).commit();
    EXPECT_FALSE(pb.try_claim()) << "a packet of the wrong length was delivered";
    auto b = pb.try_alloc(2);
    ASSERT_TRUE(b);
    b->set_user_bits(2);
    b->payload()[0] = 7;
    std::move(*b).commit();
    sluice::claimed_packet c = pb.try_claim();
    ASSERT_TRUE(c);
    EXPECT_EQ(c.size(), 2u);
    EXPECT_EQ(c.payload()[0], 7u);
    EXPECT_EQ(pb.counters().claimed, 1u);
  }
}

// Puts whose words give their length, through the callback too, are taken;
// one larger than the buffer is too large (false) without asking the
// callback about words it could not hold.
TEST(PacketBufferHandles, PutsThatGiveTheirLengthAreTakenWithACallbackToo) {
  std::uint32_t words[8];
  sluice::packet_buffer pb({.storage = words, .size_words = 8, .packet_words = &length_in_bits});
  constexpr std::uint32_t pointer_words = sizeof(void*) / sizeof(std::uint32_t);
  const int target = 0;
  ASSERT_TRUE(pb.put_word(1u << sluice::detail::pbuf_hdr_bits));
  ASSERT_TRUE(pb.put_word_ext((1u + pointer_words) << sluice::detail::pbuf_hdr_bits, &target));
  const std::uint32_t three[3] = {3u << sluice::detail::pbuf_hdr_bits, 30, 31};
  ASSERT_TRUE(pb.put_data(three, 3));
  std::uint32_t sixteen[16] = {16u << sluice::detail::pbuf_hdr_bits};
  EXPECT_FALSE(pb.put_data(sixteen, 16)) << "larger than the buffer";
  for (const std::uint32_t n : {1u, 1u + pointer_words, 3u}) {
    sluice::claimed_packet c = pb.try_claim();
    ASSERT_TRUE(c) << n;
    EXPECT_EQ(c.size(), n);
  }
  EXPECT_FALSE(pb.try_claim());
}

void commit_with_the_length_overwritten() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  auto a = pb.try_alloc(2);
  if (!a) std::abort();
  a->words()[0] = pb.default_header(9);
  std::move(*a).commit();
}

TEST(PacketBufferHandlesDeathTest, ALengthOverwrittenInWordZeroIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only (release, below)");
  EXPECT_DEATH(commit_with_the_length_overwritten(), "bits 2..31 of word 0 hold the length");
}

// Without a callback, word 0 written by hand with another length: a
// release build abandons the packet rather than hand the consumer a
// 9-word packet of 2 words (7 of its words were not the packet's).
TEST(PacketBufferHandles, ALengthOverwrittenInWordZeroIsAbandonedInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  auto a = pb.try_alloc(2);
  ASSERT_TRUE(a);
  a->words()[0] = pb.default_header(9);
  EXPECT_FALSE(std::move(*a).commit()) << "a refused commit said it published";
  EXPECT_FALSE(pb.try_claim()) << "a packet of the wrong length was delivered";
  const std::uint32_t data[2] = {pb.default_header(2), 5};
  ASSERT_TRUE(pb.put_data(data, 2));
  sluice::claimed_packet c = pb.try_claim();
  ASSERT_TRUE(c);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c.payload()[0], 5u);
}

// With a packet_words callback, a commit before set_user_bits (the fresh
// words read a length of 0), or with user bits that state a length running
// past the storage's end, is refused like any other wrong length: a release
// build abandons the packet and says so, it does not stop the program (the
// stop is for lengths read at claim or drop).
TEST(PacketBufferHandles, ACommitWithNoLengthOrOnePastTheEndIsAbandonedInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test below)");
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16, .packet_words = &length_in_bits});
  auto a = pb.try_alloc(2);
  ASSERT_TRUE(a);
  EXPECT_FALSE(std::move(*a).commit()) << "a packet stating no length was published";
  // Packets until one sits at slot 14 (the abandoned one came first).
  for (std::uint32_t i = 0; i < 6; ++i) {
    auto b = pb.try_alloc(2);
    ASSERT_TRUE(b);
    b->set_user_bits(2);
    EXPECT_TRUE(std::move(*b).commit());
  }
  auto c = pb.try_alloc(2);
  ASSERT_TRUE(c);
  ASSERT_EQ(c->words(), words + 14);
  c->set_user_bits(3);  // 3 words from slot 14 of 16
  EXPECT_FALSE(std::move(*c).commit()) << "a packet running past the storage was published";
  for (std::uint32_t i = 0; i < 6; ++i) {
    sluice::claimed_packet p = pb.try_claim();
    ASSERT_TRUE(p);
    EXPECT_EQ(p.size(), 2u);
  }
  EXPECT_FALSE(pb.try_claim());
}

TEST(PacketBufferHandlesDeathTest, MisusesOfAnAllocatedPacketAreNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the checks are assertions: debug builds only");
  EXPECT_DEATH(commit_twice(), "commit\\(\\) after it was moved or ended");
  EXPECT_DEATH(user_bits_without_a_callback(), "set_user_bits\\(\\) needs a packet_words callback");
  EXPECT_DEATH(commit_with_a_length_the_callback_does_not_read(),
               "reads another length than was allocated");
}

void drop_an_allocated_packet() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  auto a = pb.try_alloc(4);
  if (!a) std::abort();
}

TEST(PacketBufferHandlesDeathTest, AnAllocatedPacketDroppedWithoutAnEndIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS(
      "the check is an assertion: debug builds only (release abandons, below)");
  EXPECT_DEATH(drop_an_allocated_packet(), "destroyed without commit\\(\\) or abandon\\(\\)");
}

// A release build abandons a dropped allocated packet: its words come back
// as padding instead of holding back every packet after them for good.
TEST(PacketBufferHandles, AnAllocatedPacketDroppedWithoutAnEndIsAbandonedInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  for (const auto policy : {overflow_policy::reject_new, overflow_policy::drop_oldest}) {
    std::uint32_t words[16];
    sluice::packet_buffer pb({.storage = words, .size_words = 16, .policy = policy});
    for (std::uint32_t round = 0; round < 8; ++round) {
      {
        auto dropped = pb.try_alloc(5);
        ASSERT_TRUE(dropped) << round;
      }
      auto a = pb.try_alloc(3);
      ASSERT_TRUE(a) << round;
      a->payload()[0] = round;
      std::move(*a).commit();
      sluice::claimed_packet c = pb.try_claim();
      ASSERT_TRUE(c) << "the dropped packet held back the next one, round " << round;
      EXPECT_EQ(c.payload()[0], round);
      c.reset();
      EXPECT_FALSE(pb.try_claim());
      EXPECT_EQ(pb.approx_used_words(), 0u) << "the dropped packet's words stayed reserved";
    }
    EXPECT_EQ(pb.counters().claimed, 8u);
    EXPECT_EQ(pb.counters().dropped, 0u);
  }
}

}  // namespace

namespace {

// Configurations that debug builds refuse by name. A release build does
// what it can with them: no fault, no wrong packet.

void make_a_buffer_of_no_words() {
  std::uint32_t words[1];
  sluice::packet_buffer pb({.storage = words, .size_words = 0});
}

void make_a_buffer_without_storage() {
  sluice::packet_buffer pb({.storage = nullptr, .size_words = 8});
}

void make_a_buffer_of_2_to_the_29_plus_1_words() {
  std::uint32_t words[4];
  sluice::packet_buffer pb({.storage = words, .size_words = (1u << 29) + 1});
}

void make_a_pow2_buffer_of_12_words() {
  std::uint32_t words[12];
  sluice::detail::pbuf_core core(
      {.buffer = words, .size = 12, .flags = sluice::detail::pbuf_flag_pow2});
}

// A length callback that answers `length` for every packet (but 2 for one
// at the storage's start when `at` is 2), on a buffer of 8 words: a 2-word
// packet is committed at slot `at` (0 or 2, after one at 0 came and went),
// then claimed.
std::uint32_t callback_storage[8];
template <std::uint32_t length, std::uint32_t at>
void claim_with_a_callback_length() {
  sluice::detail::pbuf_core core({.buffer = callback_storage,
                                  .size = 8,
                                  .flags = sluice::detail::pbuf_flag_overwrite,
                                  .words = [](void*, const std::uint32_t* packet) noexcept {
                                    return at == 2 && packet == callback_storage ? 2 : length;
                                  }});
  sluice::detail::pbuf_span p;
  if (at == 2) {
    if (core.try_alloc(2, p) != sluice::detail::pbuf_status::ok) std::abort();
    core.commit(p.words);
    p = core.try_claim();
    if (p.words != callback_storage) std::abort();
    core.free(p.words);
  }
  if (core.try_alloc(2, p) != sluice::detail::pbuf_status::ok) std::abort();
  if (p.words != callback_storage + at) std::abort();
  core.commit(p.words);
  (void)core.try_claim();
}

// Named in release builds too (they would loop for ever on a length of 0,
// or read past the storage), except in a build optimised for size. A
// length that the buffer could hold but that runs past the storage's end
// from where the packet starts (7 words at slot 2 of 8) is named as well.
TEST(PacketBufferConfigDeathTest, ALengthNoPacketCanHaveIsNamed) {
  if (!sluice::detail::debug_checks && !sluice::detail::speed_over_size)
    GTEST_SKIP() << "a release build optimised for size does not check";
  const char* const named = "length .* is 0 or runs past the end of the buffer";
  EXPECT_DEATH((claim_with_a_callback_length<0, 0>()), named);
  EXPECT_DEATH((claim_with_a_callback_length<9, 0>()), named);
  EXPECT_DEATH((claim_with_a_callback_length<7, 2>()), named);
}

// The free checks the length in the header again (the claim checked it): a
// header written over while the packet was claimed stops the program
// rather than having words past the packet, or past the storage, zeroed.
// Lengths in the header (no callback), both policies.
void free_after_the_header_was_written_over(std::uint32_t flags, std::uint32_t length) {
  std::uint32_t words[8] = {};
  sluice::detail::pbuf_core core({.buffer = words, .size = 8, .flags = flags});
  sluice::detail::pbuf_span p;
  if (core.try_alloc(2, p) != sluice::detail::pbuf_status::ok) std::abort();
  sluice::test::commit_with_length(core, p);
  p = core.try_claim();
  if (p.words != words) std::abort();
  // The state bits stay those of a claimed packet; the length changes.
  p.words[0] = (length << sluice::detail::pbuf_hdr_bits) | (p.words[0] & 3u);
  core.free(p.words);
}

TEST(PacketBufferConfigDeathTest, AFreeOfAPacketWhoseLengthWasWrittenOverIsNamed) {
  if (!sluice::detail::debug_checks && !sluice::detail::speed_over_size)
    GTEST_SKIP() << "a release build optimised for size does not check";
  const char* const named = "length .* is 0 or runs past the end of the buffer";
  for (const std::uint32_t flags : {0u, sluice::detail::pbuf_flag_overwrite}) {
    EXPECT_DEATH(free_after_the_header_was_written_over(flags, 9), named);
    EXPECT_DEATH(free_after_the_header_was_written_over(flags, 0), named);
  }
}

TEST(PacketBufferConfigDeathTest, ImpossibleConfigurationsAreNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the checks are assertions: debug builds only (release, below)");
  EXPECT_DEATH(make_a_buffer_of_no_words(), "size must be 1 to 2\\^29 words");
  EXPECT_DEATH(make_a_buffer_of_2_to_the_29_plus_1_words(), "size must be 1 to 2\\^29 words");
  EXPECT_DEATH(make_a_buffer_without_storage(), "packet buffer: no storage given");
  EXPECT_DEATH(make_a_pow2_buffer_of_12_words(),
               "MPSC_PBUF_SIZE_POW2 set but the size is not a power of two");
}

// A buffer given no storage, or a size out of range (0 words, or more
// than 2^29: likelier a wrong argument than a 2 GiB buffer), holds no
// words in a release build: it refuses every allocation as too large
// (there is nothing it could ever hold) and never touches the storage.
// Before that, a release build cleared 2^29 + 1 words from an array of 4.
TEST(PacketBufferConfig, AnUnusableBufferRefusesEveryAllocationInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop in the constructor (above)");
  // Storage of no words: AddressSanitizer reports any read or write.
  const std::unique_ptr<std::uint32_t[]> no_words(new std::uint32_t[0]);
  std::uint32_t four[4] = {0xdead0001, 0xdead0002, 0xdead0003, 0xdead0004};
  struct unusable {
    const char* what;
    std::uint32_t* storage;
    std::uint32_t size;
  };
  const unusable configs[] = {{"0 words", no_words.get(), 0},
                              {"no storage", nullptr, 8},
                              {"2^29 + 1 words", four, (1u << 29) + 1},
                              {"2^32 - 1 words", four, ~0u}};
  for (const unusable& bad : configs) {
    for (const auto policy : {overflow_policy::reject_new, overflow_policy::drop_oldest}) {
      SCOPED_TRACE(std::string(bad.what) +
                   (policy == overflow_policy::drop_oldest ? ", drop_oldest" : ", reject_new"));
      sluice::packet_buffer pb({.storage = bad.storage,
                                .size_words = bad.size,
                                .policy = policy,
                                .utilization = sluice::utilization_tracking::track_max});
      EXPECT_EQ(pb.capacity_words(), 0u);
      for (const std::uint32_t n : {0u, 1u, 2u, 4u, 8u}) {
        auto now = pb.try_alloc(n);
        ASSERT_FALSE(now) << n << " words";
        EXPECT_EQ(now.error(), alloc_error::too_large) << n << " words";
        auto timed = pb.alloc_for(n, 1ms);
        ASSERT_FALSE(timed) << n << " words";
        EXPECT_EQ(timed.error(), alloc_error::too_large) << n << " words";
      }
      constexpr std::uint32_t pointer_words = sizeof(void*) / sizeof(std::uint32_t);
      const std::uint32_t data[1] = {pb.default_header(1)};
      EXPECT_FALSE(pb.put_word(pb.default_header(1)));
      EXPECT_FALSE(pb.put_word_ext(pb.default_header(1 + pointer_words), data));
      EXPECT_FALSE(pb.put_data(data, 1));
      EXPECT_FALSE(pb.try_claim());
      EXPECT_FALSE(pb.claim_for(1ms));
      EXPECT_FALSE(pb.is_pending());
      EXPECT_EQ(pb.approx_used_words(), 0u);
      EXPECT_EQ(pb.max_used_words(), 0u);
      EXPECT_EQ(pb.panic_flush([](void*, const std::uint32_t*, std::uint32_t) noexcept {}, nullptr),
                0u);
    }
  }
  EXPECT_EQ(four[0], 0xdead0001u) << "the storage was written";
  EXPECT_EQ(four[3], 0xdead0004u) << "the storage was written";
  // As Zephyr's init, 0 words is not a power of two.
  std::uint32_t none[1];
  const sluice::detail::pbuf_core core({.buffer = none, .size = 0});
  EXPECT_EQ(core.flags & sluice::detail::pbuf_flag_pow2, 0u);
}

// The power-of-two flag follows the size: given for 12 words (the C API
// passes the caller's flags on), a release build maps positions to slots
// by division, so packets that cross the first lap keep their words.
TEST(PacketBufferConfig, APowerOfTwoFlagOnAnotherSizeIsIgnoredInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop in the constructor (above)");
  std::uint32_t words[12];
  sluice::detail::pbuf_core core(
      {.buffer = words, .size = 12, .flags = sluice::detail::pbuf_flag_pow2});
  std::uint32_t put = 0;
  for (std::uint32_t taken = 0; taken < 40; ++taken) {
    for (; put < taken + 3; ++put) {  // three 3-word packets in flight
      sluice::detail::pbuf_span p;
      ASSERT_EQ(core.try_alloc(3, p), sluice::detail::pbuf_status::ok) << "packet " << put;
      p.words[1] = put;
      p.words[2] = ~put;
      sluice::test::commit_with_length(core, p);
    }
    const sluice::detail::pbuf_span c = core.try_claim();
    ASSERT_NE(c.words, nullptr) << "packet " << taken;
    ASSERT_EQ(c.words[1], taken);
    ASSERT_EQ(c.words[2], ~taken);
    core.free(c.words);
  }
}

}  // namespace
