// The packet buffer's wake-up paths that the other tests reach only by
// chance, one thread, deterministic: a polled awaiter registers a counting
// waker, the test makes the awaited condition true by one path and checks
// that a wake was sent, then that the awaiter gets what it waited for.
#include <cstdint>
#include <optional>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/packet_buffer.hpp>

#include "pbuf_test_support.hpp"

namespace {

using sluice::poll_status;
using sluice::detail::pbuf_core;
using sluice::detail::pbuf_flag_overwrite;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;
using sluice::test::put_with_length;
using sluice::test::wake_counter;

// A waiting producer's awaiter, woken: it now gets its packet, which it
// gives back (abandons), and leaves the list.
void expect_woken_producer_gets_room(std::optional<sluice::alloc_awaiter>& waiting,
                                     wake_counter& wakes) {
  ASSERT_EQ(waiting->poll(sluice::make_waker(wakes)), poll_status::ready);
  auto a = waiting->await_resume();
  ASSERT_TRUE(a);
  std::move(*a).abandon();
  waiting.reset();
}

// Nothing left to claim, and every word free again.
void expect_drained(pbuf_core& c) {
  EXPECT_EQ(c.try_claim().words, nullptr);
  EXPECT_EQ(c.used_words(), 0u);
}

// The newer of a 12- and a 4-word packet survived the drop, and is all.
void expect_only_the_4_word_packet_left(pbuf_core& c) {
  const pbuf_span kept = c.try_claim();
  ASSERT_NE(kept.words, nullptr);
  EXPECT_EQ(kept.size, 4u);
  c.free(kept.words);
  expect_drained(c);
}

// A packet of `n` words put and claimed: the consumer holds it.
pbuf_span put_and_hold(pbuf_core& c, std::uint32_t n) {
  const pbuf_span p = put_with_length(c, n);
  const pbuf_span held = c.try_claim();
  EXPECT_EQ(held.words, p.words);
  return held;
}

// The claimed front packet is stepped over by a dropper that then gives
// up (met twice); its free, now a skip at r == t in the unclaimed stream,
// must wake a waiting producer.
TEST(PacketBufferWakePaths, FreeOfASteppedOverFrontPacketWakesAWaitingProducer) {
  std::uint32_t words[16];
  pbuf_core c({.buffer = words, .size = 16, .flags = pbuf_flag_overwrite});
  const pbuf_span held = put_and_hold(c, 6);
  wake_counter wakes;
  std::optional<sluice::alloc_awaiter> waiting;
  waiting.emplace(c, 14);
  ASSERT_EQ(waiting->poll(sluice::make_waker(wakes)), poll_status::pending);
  pbuf_span d;
  EXPECT_EQ(c.try_alloc(14, d), pbuf_status::no_room);  // steps over, meets it again
  // The held packet re-entered the stream at the front: r == t, its slot.
  // Relaxed, here and below: one thread; the indices are read back.
  EXPECT_EQ(c.rd_idx.load(std::memory_order_relaxed), c.tmp_rd_idx.load(std::memory_order_relaxed));
  EXPECT_EQ(words + c.rd_idx.load(std::memory_order_relaxed) % 16, held.words);
  // Woken by the dropper's reclaim (unlisted then): it looks again and
  // lists itself again, the stepped-over packet at the front.
  ASSERT_EQ(waiting->poll(sluice::make_waker(wakes)), poll_status::pending);
  const int before = wakes.count();
  c.free(held.words);
  EXPECT_GT(wakes.count(), before) << "the free of the stepped-over packet woke nobody";
  expect_woken_producer_gets_room(waiting, wakes);
  expect_drained(c);
}

// A dropper without a callback drops more than it needs: the rest is
// room for a waiting producer, which must be woken.
TEST(PacketBufferWakePaths, ADropOfMoreThanNeededWakesAWaitingProducer) {
  std::uint32_t words[16];
  pbuf_core c({.buffer = words, .size = 16, .flags = pbuf_flag_overwrite});
  (void)put_with_length(c, 12);
  (void)put_with_length(c, 4);
  wake_counter wakes;
  std::optional<sluice::alloc_awaiter> waiting;
  waiting.emplace(c, 8);
  ASSERT_EQ(waiting->poll(sluice::make_waker(wakes)), poll_status::pending);
  pbuf_span d;
  ASSERT_EQ(c.try_alloc(2, d), pbuf_status::ok);  // drops the 12-word packet
  EXPECT_GE(wakes.count(), 1) << "the drop's room woke nobody";
  expect_woken_producer_gets_room(waiting, wakes);
  c.abandon(d.words, 2);
  expect_only_the_4_word_packet_left(c);
}

// With a drop callback, a producer that starts waiting while the victim
// is in the callback (it reads claimed) is woken once the victim ends.
struct callback_scene {
  pbuf_core* core = nullptr;
  wake_counter* wakes = nullptr;
  std::optional<sluice::alloc_awaiter>* waiting = nullptr;
  int drops = 0;
  poll_status in_callback = poll_status::ready;
};
callback_scene* scene_in_callback = nullptr;

void start_waiting_in_first_drop(void*, const std::uint32_t*, std::uint32_t) noexcept {
  ++scene_in_callback->drops;
  if (scene_in_callback->drops == 1) {
    scene_in_callback->waiting->emplace(*scene_in_callback->core, 10);
    scene_in_callback->in_callback =
        (*scene_in_callback->waiting)->poll(sluice::make_waker(*scene_in_callback->wakes));
  }
}

TEST(PacketBufferWakePaths, AVictimsEndWakesAProducerThatWaitedDuringTheCallback) {
  std::uint32_t words[16];
  pbuf_core c({.buffer = words,
               .size = 16,
               .flags = pbuf_flag_overwrite,
               .drop = &start_waiting_in_first_drop});
  wake_counter wakes;
  std::optional<sluice::alloc_awaiter> waiting;
  callback_scene scene{&c, &wakes, &waiting};
  scene_in_callback = &scene;
  (void)put_with_length(c, 12);
  (void)put_with_length(c, 4);
  pbuf_span d;
  ASSERT_EQ(c.try_alloc(2, d), pbuf_status::ok);
  EXPECT_EQ(scene.drops, 1);
  EXPECT_EQ(scene.in_callback, poll_status::pending);
  EXPECT_GE(wakes.count(), 1) << "the victim's end woke nobody";
  expect_woken_producer_gets_room(waiting, wakes);
  c.abandon(d.words, 2);
  scene_in_callback = nullptr;
  expect_only_the_4_word_packet_left(c);
}

// Producers keep stepping over the packet the consumer holds, and drop
// the ones after it, while the consumer claims now and then: the held
// packet is never delivered, the others come in order, each delivered or
// dropped once, and every word comes back.
TEST(PacketBufferWakePaths, AHeldPacketIsNeverDeliveredWhileProducersStepOverIt) {
  std::uint32_t words[16];
  pbuf_core c({.buffer = words, .size = 16, .flags = pbuf_flag_overwrite});
  const pbuf_span held = put_and_hold(c, 4);
  std::uint32_t delivered = 0, committed = 0, last_seq = 0;
  auto take = [&](const pbuf_span& got) {
    EXPECT_NE(got.words, held.words) << "the held packet was delivered";
    EXPECT_GT(got.words[1], last_seq) << "out of order";
    last_seq = got.words[1];
    ++delivered;
    c.free(got.words);
  };
  for (std::uint32_t round = 1; round <= 40; ++round) {
    pbuf_span d;
    if (c.try_alloc(5, d) == pbuf_status::ok) {
      d.words[1] = round;
      sluice::test::commit_with_length(c, d);
      ++committed;
    }
    if (round % 3 == 0) {
      if (const pbuf_span got = c.try_claim(); got.words != nullptr) take(got);
    }
  }
  for (pbuf_span got; (got = c.try_claim()).words != nullptr;)
    take(got);
  // Relaxed: one thread; a counter read back.
  const std::uint32_t dropped = c.dropped.load(std::memory_order_relaxed);
  EXPECT_GT(dropped, 0u) << "no producer had to drop: the scene did not happen";
  EXPECT_EQ(delivered + dropped, committed);
  c.free(held.words);
  expect_drained(c);
}

// Without overwrite, a waiting producer held back by an abandoned
// packet at the front is woken by the consumer's claim that passes it.
TEST(PacketBufferWakePaths, NoOverwriteTheClaimPassingAnAbandonedFrontWakesAProducer) {
  std::uint32_t words[16];
  pbuf_core c({.buffer = words, .size = 16});
  pbuf_span big;
  ASSERT_EQ(c.try_alloc(12, big), pbuf_status::ok);
  wake_counter producer_wakes, consumer_wakes;
  std::optional<sluice::alloc_awaiter> waiting;
  waiting.emplace(c, 8);
  ASSERT_EQ(waiting->poll(sluice::make_waker(producer_wakes)), poll_status::pending);
  std::optional<sluice::claim_awaiter> consumer;
  consumer.emplace(c);
  ASSERT_EQ(consumer->poll(sluice::make_waker(consumer_wakes)), poll_status::pending);
  c.abandon(big.words, 12);
  EXPECT_GE(consumer_wakes.count(), 1);
  EXPECT_EQ(consumer->poll(sluice::make_waker(consumer_wakes)), poll_status::pending);
  EXPECT_GE(producer_wakes.count(), 1) << "the claim passed the abandoned packet, woke nobody";
  expect_woken_producer_gets_room(waiting, producer_wakes);
  consumer.reset();
  expect_drained(c);
}

// A claim awaiter notified, then destroyed before its next poll,
// passes the wake on and leaves nothing listed (asan: no use of the node).
TEST(PacketBufferWakePaths, AClaimAwaiterDestroyedAfterItsWakeLeavesNothingListed) {
  std::uint32_t words[16];
  pbuf_core c({.buffer = words, .size = 16, .flags = pbuf_flag_overwrite});
  wake_counter wakes;
  {
    sluice::claim_awaiter consumer(c);
    ASSERT_EQ(consumer.poll(sluice::make_waker(wakes)), poll_status::pending);
    (void)put_with_length(c, 3);
    EXPECT_EQ(wakes.count(), 1);
  }
  EXPECT_FALSE(c.data_waiters.approx_has_waiters());
  const pbuf_span p = c.try_claim();
  ASSERT_NE(p.words, nullptr) << "the packet stays for the next claim";
  c.free(p.words);
}

}  // namespace
