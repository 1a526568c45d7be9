// The overwrite consumer's biased turn (pbuf_core.hpp, "The consumer's
// biased turn"; [PB6] and the table beside enter_consumer in
// src/packet_buffer.cpp): when it is on and off, that a dropper on another
// thread waits for a biased turn as for a locked one, and that a producer
// running inside the consumer's turn (as a signal handler on its thread
// would) gives up in either kind of turn. On the engine itself, whose
// fields these tests read.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include "executor_test_support.hpp"
#include "pbuf_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::detail::pbuf_core;
using sluice::detail::pbuf_rebias_after;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

constexpr std::uint32_t size_words = 16;

// An overwrite engine on `storage` (size_words) whose packet length callback
// is `words` (null: lengths in the header).
pbuf_core overwrite_core(std::uint32_t* storage, sluice::detail::pbuf_words_fn words = nullptr,
                         void* context = nullptr) {
  return pbuf_core({.buffer = storage,
                    .size = size_words,
                    .flags = sluice::detail::pbuf_flag_overwrite,
                    .words = words,
                    .context = context});
}

// Relaxed loads of the engine's words: these tests read them between
// operations, on the thread that made them, or after joining the others.
std::uint32_t bias(const pbuf_core& core) {
  return core.lock_bias.load(std::memory_order_relaxed);
}

// Allocates, fills and commits a 4-word packet whose length is in its user
// bits (read back by the callbacks below) and whose payload is `value`.
void put4(pbuf_core& core, std::uint32_t value) {
  pbuf_span p;
  ASSERT_EQ(core.try_alloc(4, p), pbuf_status::ok);
  p.words[1] = value;
  sluice::test::commit_with_length(core, p);  // the user bits: its length
}

// The length a packet states in its user bits (see put4).
using sluice::test::length_in_user_bits;

// Claims the oldest packet and frees it: two turns of the consumer.
std::uint32_t claim_and_free(pbuf_core& core) {
  const pbuf_span p = core.try_claim();
  EXPECT_NE(p.words, nullptr);
  if (p.words == nullptr) return 0;
  const std::uint32_t value = p.words[1];
  core.free(p.words);
  return value;
}

class PacketBufferBias : public ::testing::Test {
 protected:
  void SetUp() override {
    if constexpr (!sluice::detail::speed_over_size) GTEST_SKIP() << "no bias when built for size";
  }
};

TEST_F(PacketBufferBias, ADropEndsItAndTheConsumersLockedTurnsSetItAgain) {
  std::uint32_t storage[size_words] = {};
  pbuf_core core = overwrite_core(storage);
  EXPECT_EQ(bias(core), 1u) << "the consumer starts biased";
  put4(core, 1);
  EXPECT_EQ(claim_and_free(core), 1u);
  EXPECT_EQ(bias(core), 1u) << "the consumer's own turns do not end the bias";
  EXPECT_EQ(core.consumer_in.load(), 0u);
  EXPECT_EQ(core.lock.load(), 0u) << "a biased turn took the lock";

  for (std::uint32_t i = 0; i < 4; ++i)
    put4(core, 10 + i);
  EXPECT_EQ(bias(core), 1u) << "room without a drop ended the bias";
  put4(core, 14);  // drops 10
  EXPECT_EQ(core.dropped.load(), 1u);
  EXPECT_EQ(bias(core), 0u) << "a dropper's turn left the bias on";
  EXPECT_EQ(core.rebias_after, pbuf_rebias_after);
  EXPECT_EQ(core.lock.load(), 0u);

  // Locked turns from here: the bias comes back with the last of them.
  std::uint32_t turns = 0;
  std::uint32_t expected = 11;
  for (; expected <= 14; ++expected) {
    ASSERT_EQ(claim_and_free(core), expected);
    turns += 2;
  }
  while (turns < pbuf_rebias_after) {
    ASSERT_EQ(bias(core), 0u) << "the bias came back after " << turns << " turns";
    put4(core, expected);
    const pbuf_span q = core.try_claim();
    ASSERT_NE(q.words, nullptr);
    ASSERT_EQ(q.words[1], expected);
    ++turns;
    ASSERT_EQ(bias(core), turns == pbuf_rebias_after ? 1u : 0u) << "after " << turns << " turns";
    core.free(q.words);
    ++turns;
    ++expected;
  }
  EXPECT_EQ(bias(core), 1u);
  EXPECT_EQ(core.lock.load(), 0u);
  put4(core, 7);
  EXPECT_EQ(claim_and_free(core), 7u);
  EXPECT_EQ(bias(core), 1u);
}

// is_pending takes a dropper's turn, which ends the bias; on a buffer with
// nothing allocated it answers without one, so a consumer that polls it
// while idle keeps its biased turns.
TEST_F(PacketBufferBias, IsPendingOnAnEmptyBufferLeavesItOn) {
  std::uint32_t storage[size_words] = {};
  pbuf_core core = overwrite_core(storage);
  EXPECT_FALSE(core.is_pending());
  EXPECT_EQ(bias(core), 1u) << "is_pending on a buffer never used ended the bias";
  put4(core, 1);
  EXPECT_EQ(claim_and_free(core), 1u);
  EXPECT_FALSE(core.is_pending());
  EXPECT_EQ(bias(core), 1u) << "is_pending on an emptied buffer ended the bias";
  EXPECT_EQ(core.lock.load(), 0u);
  // Something allocated: a dropper's turn (not committed yet: false).
  pbuf_span p;
  ASSERT_EQ(core.try_alloc(4, p), pbuf_status::ok);
  EXPECT_FALSE(core.is_pending());
  EXPECT_EQ(bias(core), 0u) << "is_pending looked at an allocated packet without a turn";
  p.words[1] = 2;
  sluice::test::commit_with_length(core, p);
  EXPECT_TRUE(core.is_pending());
  EXPECT_EQ(claim_and_free(core), 2u);
  EXPECT_FALSE(core.is_pending());
}

// Consumer turns in pairs (claim, free) on a full buffer, with a drop before
// each pair: the buffer holds 4 packets of 4 words.
void turns_with_drops(pbuf_core& core, std::uint32_t turns, std::uint32_t& value) {
  for (std::uint32_t made = 0; made < turns; made += 2) {
    const std::uint32_t dropped = core.dropped.load(std::memory_order_relaxed);
    put4(core, value++);
    EXPECT_EQ(core.dropped.load(std::memory_order_relaxed), dropped + 1) << "no drop";
    EXPECT_NE(claim_and_free(core), 0u);
    put4(core, value++);  // fills the room the free made, no drop
  }
}

// The same without drops: each pair makes room for the packet put after it.
void turns_without_drops(pbuf_core& core, std::uint32_t turns, std::uint32_t& value) {
  for (std::uint32_t made = 0; made < turns; made += 2) {
    const std::uint32_t dropped = core.dropped.load(std::memory_order_relaxed);
    EXPECT_NE(claim_and_free(core), 0u);
    put4(core, value++);
    EXPECT_EQ(core.dropped.load(std::memory_order_relaxed), dropped) << "a drop";
  }
}

// Droppers all along: each stretch of locked turns that met a dropper is
// followed by one twice as long (so the bias is not set, and no dropper
// pays the heavy fence to end it), up to pbuf_rebias_max; the first
// stretch without a dropper sets the bias again, and the next starts at
// pbuf_rebias_after.
TEST_F(PacketBufferBias, DroppersAllAlongLengthenTheLockedStretch) {
  using sluice::detail::pbuf_rebias_max;
  std::uint32_t storage[size_words] = {};
  pbuf_core core = overwrite_core(storage);
  std::uint32_t value = 1;
  for (std::uint32_t i = 0; i < 4; ++i)
    put4(core, value++);
  put4(core, value++);  // drops the oldest: the bias ends
  ASSERT_EQ(bias(core), 0u);
  ASSERT_EQ(core.rebias_after, pbuf_rebias_after);

  std::uint32_t stretch = pbuf_rebias_after;
  for (int i = 0; i < 8; ++i) {
    turns_with_drops(core, stretch, value);
    ASSERT_EQ(bias(core), 0u) << "a stretch with droppers set the bias again";
    stretch = stretch * 2 < pbuf_rebias_max ? stretch * 2 : pbuf_rebias_max;
    ASSERT_EQ(core.rebias_stretch, stretch);
    ASSERT_EQ(core.rebias_after, stretch) << "stretch " << i;
  }
  ASSERT_EQ(stretch, pbuf_rebias_max) << "the test should reach the longest stretch";

  // No dropper from here: the bias comes back at the end of this stretch.
  turns_without_drops(core, stretch - 2, value);
  ASSERT_EQ(bias(core), 0u) << "the bias came back before its stretch ended";
  turns_without_drops(core, 2, value);
  ASSERT_EQ(bias(core), 1u) << "a stretch without droppers left the bias off";
  EXPECT_EQ(core.rebias_stretch, pbuf_rebias_after);

  // The next drop ends it again, with the first stretch length.
  turns_with_drops(core, 2, value);
  EXPECT_EQ(bias(core), 0u);
  EXPECT_EQ(core.rebias_after, pbuf_rebias_after - 2);  // the pair's two turns
  EXPECT_EQ(core.lock.load(), 0u);
}

// Inside the consumer's turn: says so, waits until the other thread is
// about to drop (so that the drop always meets the turn, however late that
// thread starts), stays 50 ms more, and says when it leaves.
struct turn_window {
  std::atomic<bool> inside{false};
  std::atomic<bool> attempting{false};  // set by the dropper just before it tries
  std::atomic<bool> leaving{false};
  void hold() noexcept {
    inside = true;
    while (!attempting.load())
      std::this_thread::yield();
    std::this_thread::sleep_for(50ms);
    leaving = true;
  }
};

// A producer on another thread that must drop 4 words to fit: once the
// consumer is inside its turn, it says it is about to try, and tries.
// `got`: it made room; `during`: it did so while the consumer was still
// inside (which a dropper must never do).
struct other_thread_dropper {
  std::atomic<bool> got{false};
  std::atomic<bool> during{false};
  std::thread thread;
  other_thread_dropper(pbuf_core& core, turn_window& window)
      : thread([this, &core, &window] {
          while (!window.inside.load())
            std::this_thread::yield();
          pbuf_span p;
          window.attempting = true;
          got = core.try_alloc(4, p) == pbuf_status::ok;
          during = !window.leaving.load();
          if (got) core.abandon(p.words, 4);
        }) {}
  void join() { thread.join(); }
};

// A consumer whose packet length callback holds its turn open once.
struct stalling_consumer : turn_window {
  std::atomic<bool> stall{false};
  static std::uint32_t words(void* context, const std::uint32_t* packet) noexcept {
    auto& self = *static_cast<stalling_consumer*>(context);
    if (self.stall.exchange(false)) self.hold();
    return length_in_user_bits(packet);
  }
};

// A producer on another thread that must drop while the consumer is inside
// its turn waits for the turn to end (it does not give up: the hosted
// port's context tokens tell it from a handler on the consumer's thread),
// then drops. Biased: the dropper ends the bias and waits for consumer_in;
// locked: it waits for the lock.
class PacketBufferBiasOtherThread : public ::testing::TestWithParam<bool> {};

TEST_P(PacketBufferBiasOtherThread, DropperWaitsForTheConsumersTurnToEnd) {
  const bool biased = GetParam();
  if (biased && !sluice::detail::speed_over_size) GTEST_SKIP() << "no bias when built for size";
  std::uint32_t storage[size_words] = {};
  stalling_consumer consumer;
  pbuf_core core = overwrite_core(storage, &stalling_consumer::words, &consumer);
  if (!biased) {
    // As a dropper leaves it after ending the bias (relaxed: no other
    // thread yet).
    core.lock_bias.store(0, std::memory_order_relaxed);
    core.rebias_after = pbuf_rebias_after;
  }
  for (std::uint32_t i = 0; i < 4; ++i)
    put4(core, i);
  ASSERT_EQ(bias(core), biased ? 1u : 0u);
  sluice::test::abort_watchdog dog{std::chrono::seconds(30), "a dropper waiting for the consumer"};
  consumer.stall = true;
  other_thread_dropper producer{core, consumer};
  // Inside the turn for 50 ms; the packet stays claimed until the end, so
  // the producer's room comes from a drop, not from this free.
  const pbuf_span held = core.try_claim();
  ASSERT_NE(held.words, nullptr);
  EXPECT_EQ(held.words[1], 0u);
  producer.join();
  EXPECT_TRUE(producer.got.load()) << "a dropper on another thread gave up on the consumer's turn";
  EXPECT_FALSE(producer.during.load())
      << "a dropper made room while the consumer was inside its turn";
  EXPECT_EQ(core.dropped.load(), 1u);  // 1, the oldest unclaimed packet
  EXPECT_EQ(bias(core), 0u);
  core.free(held.words);
  EXPECT_EQ(claim_and_free(core), 2u);
  EXPECT_EQ(claim_and_free(core), 3u);
  EXPECT_EQ(core.try_claim().words, nullptr) << "the abandoned packet was delivered";
}

INSTANTIATE_TEST_SUITE_P(Turns, PacketBufferBiasOtherThread, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Biased" : "Locked"; });

// A producer that runs inside the consumer's turn, as a signal handler on
// the consumer's thread would: the length callback plays it. It must give
// up (no_room) at once in either kind of turn, and leave the buffer as it
// was; ending the bias on its way is allowed (the next turn is locked).
struct nested_producer {
  pbuf_core* core = nullptr;
  bool armed = false;
  int runs = 0;
  pbuf_status status = pbuf_status::ok;
  std::uint32_t bias_inside = 2;
  static std::uint32_t words(void* context, const std::uint32_t* packet) noexcept {
    auto& self = *static_cast<nested_producer*>(context);
    if (self.armed) {
      self.armed = false;
      ++self.runs;
      self.bias_inside = bias(*self.core);
      pbuf_span p;
      self.status = self.core->try_alloc(4, p);  // needs a drop: the buffer is full
      if (self.status == pbuf_status::ok) self.core->abandon(p.words, 4);
    }
    return length_in_user_bits(packet);
  }
};

TEST_F(PacketBufferBias, ProducerInsideTheConsumersTurnGivesUpInEitherKind) {
  sluice::test::abort_watchdog dog{std::chrono::seconds(30), "a producer nested in the consumer"};
  std::uint32_t storage[size_words] = {};
  nested_producer nest;
  pbuf_core core = overwrite_core(storage, &nested_producer::words, &nest);
  nest.core = &core;
  for (std::uint32_t i = 0; i < 4; ++i)
    put4(core, 100 + i);

  nest.armed = true;
  const pbuf_span held = core.try_claim();  // a biased turn
  ASSERT_NE(held.words, nullptr);
  EXPECT_EQ(held.words[1], 100u);
  ASSERT_EQ(nest.runs, 1);
  EXPECT_EQ(nest.bias_inside, 1u) << "the claim was not a biased turn";
  EXPECT_EQ(nest.status, pbuf_status::no_room) << "a producer nested in a biased turn made room";
  EXPECT_EQ(core.dropped.load(), 0u);
  EXPECT_EQ(bias(core), 0u) << "the nested dropper did not end the bias";
  EXPECT_EQ(core.lock.load(), 0u) << "the nested dropper kept the lock";

  nest.armed = true;
  core.free(held.words);  // a locked turn
  ASSERT_EQ(nest.runs, 2);
  EXPECT_EQ(nest.bias_inside, 0u);
  EXPECT_EQ(nest.status, pbuf_status::no_room) << "a producer nested in a locked turn made room";
  EXPECT_EQ(core.dropped.load(), 0u);

  // Outside the consumer, the same buffer drops as usual: 8 words need 101.
  pbuf_span p;
  ASSERT_EQ(core.try_alloc(8, p), pbuf_status::ok);
  p.words[1] = 200;
  sluice::test::commit_with_length(core, p);
  EXPECT_EQ(core.dropped.load(), 1u);
  EXPECT_EQ(claim_and_free(core), 102u);
  EXPECT_EQ(claim_and_free(core), 103u);
  EXPECT_EQ(claim_and_free(core), 200u);
  EXPECT_EQ(core.try_claim().words, nullptr);
}

// A turn outlives a dropper that gave up on it: a producer nested in the
// consumer's biased turn (as a signal handler on its thread) ends the bias
// and gives up; the turn then goes on until a dropper on another thread
// tries, and 50 ms more. That dropper takes the lock meanwhile, finds the
// bias already ended, and must still wait for the turn before it makes
// room.
struct handler_then_stall : turn_window {
  pbuf_core* core = nullptr;
  bool armed = false;
  pbuf_status nested = pbuf_status::ok;
  static std::uint32_t words(void* context, const std::uint32_t* packet) noexcept {
    auto& self = *static_cast<handler_then_stall*>(context);
    if (self.armed) {
      self.armed = false;
      pbuf_span p;
      self.nested = self.core->try_alloc(4, p);  // gives up: its own thread's turn
      if (self.nested == pbuf_status::ok) self.core->abandon(p.words, 4);
      self.hold();
    }
    return length_in_user_bits(packet);
  }
};

TEST_F(PacketBufferBias, DropperWaitsForATurnThatAnEarlierDropperGaveUpOn) {
  std::uint32_t storage[size_words] = {};
  handler_then_stall consumer;
  pbuf_core core = overwrite_core(storage, &handler_then_stall::words, &consumer);
  consumer.core = &core;
  for (std::uint32_t i = 0; i < 4; ++i)
    put4(core, i);
  ASSERT_EQ(bias(core), 1u);
  sluice::test::abort_watchdog dog{std::chrono::seconds(30), "a dropper waiting for the consumer"};
  consumer.armed = true;
  other_thread_dropper producer{core, consumer};  // the bias is ended by then
  const pbuf_span held = core.try_claim();        // the biased turn, 50 ms long
  producer.join();
  ASSERT_NE(held.words, nullptr);
  EXPECT_EQ(held.words[1], 0u);
  EXPECT_EQ(consumer.nested, pbuf_status::no_room);
  EXPECT_TRUE(producer.got.load());
  EXPECT_FALSE(producer.during.load())
      << "a dropper made room while the consumer was inside its turn";
  EXPECT_EQ(core.dropped.load(), 1u);
  core.free(held.words);
  EXPECT_EQ(claim_and_free(core), 2u);
  EXPECT_EQ(claim_and_free(core), 3u);
  EXPECT_EQ(core.try_claim().words, nullptr);
}

}  // namespace
