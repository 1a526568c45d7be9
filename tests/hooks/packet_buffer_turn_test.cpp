// The consumer's biased turn (overwrite; pbuf_core.hpp, "The consumer's
// biased turn"), held at claim_looked, inside it:
// - a signal handler on the consumer's thread that must drop to fit, while
//   a dropper on another thread holds the lock and waits for the turn to
//   end, gives up instead of waiting for that dropper (which waits for a
//   turn that cannot end before the handler returns);
// - is_pending from another thread waits for the turn like a dropper,
//   instead of entering it a second time (which would end it under the
//   consumer's feet);
// - a dropper ends its victim (E8) only once the turn is over: a claim
//   inside the turn may pass the victim and ask its length.
// And the consumer's turn with the lock (the bias ended by a drop before):
// a dropper on another thread, which has a context token, waits for it
// however long it lasts, then makes its room.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/port.hpp>

#include "consumer_lock_turn.hpp"
#include "executor_test_support.hpp"
#include "hooks.hpp"
#include "pbuf_test_support.hpp"
#include "victim_turn.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::detail::pbuf_core;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

constexpr std::uint32_t size_words = 16;

pbuf_core* core = nullptr;  // for the hook actions and the handler

// A producer that must drop to fit, on its own thread.
std::thread dropper;
std::atomic<bool> dropper_done{false};
void start_dropper() {
  dropper_done.store(false);
  dropper = std::thread([] {
    pbuf_span q;
    if (core->try_alloc(4, q) == pbuf_status::ok) {
      q.words[1] = 5u << 2;
      sluice::test::commit_with_length(*core, q);
    }
    dropper_done.store(true);
  });
  // It holds the lock and has ended the bias: it waits for our turn.
  while (core->lock.load() == 0 || core->lock_bias.load() != 0)
    std::this_thread::yield();
}

std::atomic<int> handler_status{-1};
void producing_handler(int) {
  pbuf_span q;
  const pbuf_status s = core->try_alloc(4, q);
  if (s == pbuf_status::ok) core->abandon(q.words, 4);
  handler_status.store(static_cast<int>(s));
}

TEST(PacketBufferTurn, AHandlerInsideItsThreadsBiasedTurnGivesUpOnADropper) {
  if (!sluice::detail::speed_over_size) GTEST_SKIP() << "no biased turn in a size-optimised build";
  std::uint32_t storage[size_words];
  pbuf_core c(
      {.buffer = storage, .size = size_words, .flags = sluice::detail::pbuf_flag_overwrite});
  core = &c;
  sluice::test::fill_four_tagged(c);
  struct sigaction sa {};
  sa.sa_handler = &producing_handler;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, nullptr), 0);
  handler_status.store(-1);
  at_claim_looked.store(
      +[] {
        ASSERT_NE(core->consumer_in.load(), 0u) << "not in a biased turn";
        start_dropper();
        raise(SIGUSR1);
      },
      std::memory_order_release);
  pbuf_span got;
  {
    // A handler that waited would never return: say so instead of hanging.
    const sluice::test::abort_watchdog dog{
        10s, "the handler waits for the dropper, which waits for its turn"};
    got = c.try_claim();
    if (dropper.joinable()) dropper.join();
  }
  signal(SIGUSR1, SIG_DFL);
  EXPECT_EQ(handler_status.load(), static_cast<int>(pbuf_status::no_room));
  ASSERT_NE(got.words, nullptr);
  EXPECT_EQ(got.words[1] >> 2, 1u);
  c.free(got.words);
  EXPECT_TRUE(dropper_done.load());
}

std::atomic<std::uint32_t> consumer_in_after{0};
std::atomic<bool> observer_done{false};
std::atomic<bool> observer_answer{false};
std::atomic<bool> observer_waits{false};  // it reached turn_awaited
std::thread observer;

TEST(PacketBufferTurn, IsPendingFromAnotherThreadWaitsForTheConsumersTurn) {
  if (!sluice::detail::speed_over_size) GTEST_SKIP() << "no biased turn in a size-optimised build";
  std::uint32_t storage[size_words];
  pbuf_core c(
      {.buffer = storage, .size = size_words, .flags = sluice::detail::pbuf_flag_overwrite});
  core = &c;
  sluice::test::fill_four_tagged(c);
  observer_done.store(false);
  observer_waits.store(false);
  // Only the observer can reach turn_awaited: the consumer is held inside
  // its turn (below), and nobody else runs.
  observe_hook.store(
      +[](sluice::detail::pbuf_hook point) {
        if (point == sluice::detail::pbuf_hook::turn_awaited) observer_waits.store(true);
      },
      std::memory_order_release);
  at_claim_looked.store(
      +[] {
        observer = std::thread([] {
          observer_answer.store(core->is_pending());
          observer_done.store(true);
        });
        // Either it finishes, which it may not while we are inside the turn,
        // or it finds us inside and waits. (The deadline only turns a hang
        // into a message.)
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!observer_done.load() && !observer_waits.load() &&
               std::chrono::steady_clock::now() < deadline)
          std::this_thread::yield();
        consumer_in_after.store(core->consumer_in.load());
        EXPECT_FALSE(observer_done.load()) << "is_pending ran inside the consumer's turn";
        EXPECT_TRUE(observer_waits.load()) << "is_pending did not wait for the consumer's turn";
      },
      std::memory_order_release);
  const pbuf_span got = c.try_claim();
  if (observer.joinable()) observer.join();
  observe_hook.store(nullptr, std::memory_order_release);
  EXPECT_NE(consumer_in_after.load(), 0u) << "an observer ended the consumer's turn";
  EXPECT_TRUE(observer_answer.load()) << "three committed packets wait";
  ASSERT_NE(got.words, nullptr);
  c.free(got.words);
  for (int i = 0; i < 3; ++i) {
    const pbuf_span p = c.try_claim();
    ASSERT_NE(p.words, nullptr);
    c.free(p.words);
  }
  EXPECT_FALSE(c.is_pending());
}

// The victim's drop callback holds the dropper until the consumer is inside
// a biased turn (victim_turn.hpp): the dropper takes the lock, ends the bias
// and waits for the turn. The victim must still read claimed then.
TEST(PacketBufferTurn, ADropperEndsItsVictimOnlyAfterTheConsumersBiasedTurn) {
  if (!sluice::detail::speed_over_size) GTEST_SKIP() << "no biased turn in a size-optimised build";
  sluice::test::victim_turn_buffer b;
  const sluice::test::victim_turn_seen seen =
      sluice::test::victim_beside_a_biased_turn(b.core, sluice::detail::pbuf_hook::turn_awaited);
  sluice::test::expect_victim_claimed_at_the_point(
      seen, "the dropper did not wait for the consumer's turn");
  sluice::test::expect_the_rest_in_order(b.core, seen);
}

// With tokens a dropper tells the consumer on another thread from a turn
// it interrupted itself, so it waits: the consumer holds its locked turn
// until the dropper has looked at the lock three times as often as a
// dropper without tokens would before giving up; it must still be waiting
// then, and once the turn ends it steps over packet 2 (claimed in that
// turn) and drops packet 3 to fit packet 6.
TEST(PacketBufferTurn, ADropperOnAnotherThreadWaitsOutTheConsumersLockedTurn) {
  ASSERT_NE(sluice::port::context_token(), 0u) << "this binary's port has tokens";
  sluice::test::lock_turn_buffer b;
  const sluice::test::lock_turn_seen seen =
      sluice::test::dropper_beside_a_locked_turn(b.core, 3 * sluice::detail::pbuf_lock_patience);
  EXPECT_TRUE(seen.consumer_locked) << "the claim did not reach claim_looked holding the lock";
  EXPECT_GE(seen.awaited, 3 * sluice::detail::pbuf_lock_patience);
  EXPECT_EQ(seen.awaited_role, sluice::detail::pbuf_lock_consumer);
  EXPECT_EQ(seen.status_at_release, -1) << "the dropper returned inside the consumer's turn";
  EXPECT_EQ(seen.dropper_status, static_cast<int>(pbuf_status::ok));
  sluice::test::expect_tags_then_nothing(b.core, seen, {4, 5, 6});
  EXPECT_EQ(b.core.dropped.load(), 2u);
}

}  // namespace
