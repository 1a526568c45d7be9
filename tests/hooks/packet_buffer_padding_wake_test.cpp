// The skip that pads the tail before the wrap, written by a producer that
// reserved lock-free, is room that others can get back: with overwrite a
// producer waiting for room passes a skip at the front itself, without
// overwrite the consumer passes it in a claim (and wakes the producers).
// So writing it must wake them. Held at padding_reserved (the padding and
// the packet reserved, the skip not yet written), a waiter lists itself
// and finds nothing it can pass (the header there still reads reserved);
// it must be woken once the producer goes on, with no commit in between.
// (Without that wake, a waiting producer waited until the padding
// producer committed and the consumer claimed, or until its deadline.)
#include <atomic>
#include <cstdint>
#include <optional>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/packet_buffer.hpp>

#include "hooks.hpp"
#include "pbuf_test_support.hpp"

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_hook;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

constexpr std::uint32_t size_words = 16;

TEST(PaddingWake, WithOverwriteAProducerWaitingForRoomIsWokenByThePadding) {
  std::uint32_t words[size_words];
  pbuf_core core(
      {.buffer = words, .size = size_words, .flags = sluice::detail::pbuf_flag_overwrite});
  sluice::test::make_empty_at(core, 12);  // empty, 4 words before the wrap
  sluice::test::wake_counter wakes;
  std::optional<sluice::alloc_awaiter> waiting;
  pbuf_span p;
  {
    const hook_action hold(pbuf_hook::padding_reserved, [&] {
      // 6 of 16 words are reserved (the padding and p): 9 do not fit
      // unless the padding is passed, and its header still reads
      // reserved. A waiting allocation drops nothing, so it waits.
      waiting.emplace(core, 9);
      EXPECT_EQ(waiting->poll(sluice::make_waker(wakes)), sluice::poll_status::pending);
    });
    ASSERT_EQ(core.try_alloc(6, p), pbuf_status::ok);  // 4 words of padding first
    ASSERT_TRUE(hold.ran()) << "the allocation did not pad";
  }
  EXPECT_EQ(p.words, words) << "after the padding the packet starts at slot 0";
  EXPECT_EQ(wakes.count(), 1) << "the padding's skip, which a waiting producer passes, woke nobody";
  // Woken, it passes the skip and fits (what a wake up would do).
  ASSERT_EQ(waiting->poll(sluice::make_waker(wakes)), sluice::poll_status::ready);
  auto a = waiting->await_resume();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->words(), words + 6);
  std::move(*a).abandon();
  core.abandon(p.words, p.size);
  waiting.reset();
}

TEST(PaddingWake, WithoutOverwriteTheConsumerIsWokenToPassThePadding) {
  std::uint32_t words[size_words];
  pbuf_core core({.buffer = words, .size = size_words});
  sluice::test::make_empty_at(core, 8);
  // Not empty: a producer pads a buffer that holds a packet (an empty one
  // it moves to slot 0 instead).
  const pbuf_span first = sluice::test::put_with_length(core, 4);  // [8, 12)
  ASSERT_NE(first.words, nullptr);
  sluice::test::wake_counter consumer_wakes;
  sluice::test::wake_counter producer_wakes;
  std::optional<sluice::claim_awaiter> consumer;
  std::optional<sluice::alloc_awaiter> producer;
  pbuf_span p;
  {
    const hook_action hold(pbuf_hook::padding_reserved, [&] {
      // The consumer takes the packet in front of the padding and waits
      // for the next: the header at its position still reads reserved.
      const pbuf_span claimed = core.try_claim();
      EXPECT_EQ(claimed.words, first.words);
      if (claimed.words != nullptr) core.free(claimed.words);
      consumer.emplace(core);
      EXPECT_EQ(consumer->poll(sluice::make_waker(consumer_wakes)), sluice::poll_status::pending);
      // 10 of 16 words reserved (the padding and p): 9 fit only once the
      // consumer has passed the padding.
      producer.emplace(core, 9);
      EXPECT_EQ(producer->poll(sluice::make_waker(producer_wakes)), sluice::poll_status::pending);
    });
    ASSERT_EQ(core.try_alloc(6, p), pbuf_status::ok);  // 4 words of padding first
    ASSERT_TRUE(hold.ran()) << "the allocation did not pad";
  }
  EXPECT_EQ(p.words, words);
  EXPECT_GE(consumer_wakes.count(), 1)
      << "the padding's skip woke no consumer, though only a claim passes it and gives its room "
         "back";
  // The consumer's look passes the skip (p is not committed yet) and wakes
  // the producer, which fits.
  EXPECT_EQ(consumer->poll(sluice::make_waker(consumer_wakes)), sluice::poll_status::pending);
  EXPECT_GE(producer_wakes.count(), 1) << "the consumer passed the padding and woke nobody";
  ASSERT_EQ(producer->poll(sluice::make_waker(producer_wakes)), sluice::poll_status::ready);
  auto a = producer->await_resume();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->words(), words + 6);
  std::move(*a).abandon();
  // p is then delivered as usual.
  sluice::test::commit_with_length(core, p);
  ASSERT_EQ(consumer->poll(sluice::make_waker(consumer_wakes)), sluice::poll_status::ready);
  const sluice::claimed_packet c = consumer->await_resume();
  EXPECT_EQ(c.words(), p.words);
}

}  // namespace
