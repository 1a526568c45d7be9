// The packet buffer as a port without context tokens (and without masking)
// runs it: the engine built with SLUICE_TEST_NO_CONTEXT_TOKENS, where
// port::context_token() is 0 on every thread. A dropper there cannot tell a
// handler that interrupted the holder from a thread, so it gives up on the
// consumer's lock or biased turn after a short spin (droppers_may_give_up).
// - A dropper with a victim to end (its drop callback ran) that meets the
//   consumer's biased turn gives up on it, waits outside the lock for the
//   turn to end, and only then ends the victim (E8): a claim inside the
//   turn may pass the victim and read its length.
// - A dropper that meets the consumer's turn with the lock gives up on it
//   after a short spin (no_room), and makes no change.
// - Stress: three producer threads that drop, and the consumer, with exact
//   accounting: every packet claimed or reported dropped once.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/port.hpp>

#include "consumer_lock_turn.hpp"
#include "executor_test_support.hpp"
#include "hooks.hpp"
#include "pbuf_test_support.hpp"
#include "victim_turn.hpp"

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_hook;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

}  // namespace

// The engine's test hook, for this binary: the shared hooks only.
void sluice_pbuf_test_hook(pbuf_hook point) noexcept {
  (void)run_shared_hooks(point);
}

namespace {

TEST(PacketBufferNoTokens, TheBuildHasNoTokens) {
  EXPECT_EQ(sluice::port::context_token(), 0u);
  std::uint32_t other = 1;
  std::thread([&] { other = sluice::port::context_token(); }).join();
  EXPECT_EQ(other, 0u);
}

// The victim's drop callback holds the dropper until the consumer is inside
// a biased turn (victim_turn.hpp). Without tokens the dropper gives up on
// the turn after a short spin; it must then wait for the turn outside the
// lock (where a handler inside the turn could take the lock and give up),
// with the victim still claimed, and end the victim only after the turn.
TEST(PacketBufferNoTokens, ADropperWaitsOutsideTheLockForTheTurnBeforeItEndsItsVictim) {
  if (!sluice::detail::speed_over_size) GTEST_SKIP() << "no biased turn in a size-optimised build";
  sluice::test::victim_turn_buffer b;
  const sluice::test::victim_turn_seen seen =
      sluice::test::victim_beside_a_biased_turn(b.core, pbuf_hook::victim_awaits_turn);
  sluice::test::expect_victim_claimed_at_the_point(
      seen, "the dropper did not give up on the turn and wait");
  EXPECT_EQ(seen.lock, 0u) << "the dropper waited holding the lock";
  sluice::test::expect_the_rest_in_order(b.core, seen);
  EXPECT_EQ(b.core.dropped.load(), 1u);
}

// The consumer holds its turn with the lock (a first drop ended the bias)
// until the dropper returns: without tokens the dropper cannot tell whether
// it interrupted that turn, so after a short spin it gives up with no_room
// and changes nothing (a dropper that waited would return only after the
// scenario's 40 s bound, with ok). Packets 2 to 5 are all delivered.
TEST(PacketBufferNoTokens, ADropperGivesUpOnTheConsumersLockedTurnAfterAShortSpin) {
  sluice::test::lock_turn_buffer b;
  const sluice::test::lock_turn_seen seen = sluice::test::dropper_beside_a_locked_turn(b.core, 0);
  EXPECT_TRUE(seen.consumer_locked) << "the claim did not reach claim_looked holding the lock";
  EXPECT_GE(seen.awaited, sluice::detail::pbuf_lock_patience);
  EXPECT_EQ(seen.awaited_role, sluice::detail::pbuf_lock_consumer);
  EXPECT_EQ(seen.status_at_release, static_cast<int>(pbuf_status::no_room))
      << "the dropper did not give up inside the consumer's turn";
  EXPECT_EQ(seen.dropper_status, static_cast<int>(pbuf_status::no_room));
  sluice::test::expect_tags_then_nothing(b.core, seen, {3, 4, 5});
  EXPECT_EQ(b.core.dropped.load(), 1u);
}

// Three producers that drop to fit and a consumer that claims, all
// without tokens: whoever gives up (no_room) retries. Every packet is
// claimed or reported dropped exactly once; each producer's arrive in
// order. (A stress test of the whole, not of the giving up: no_room also
// comes from a front packet another producer has not committed yet, so
// the count of refusals printed says how often a producer retried, not
// how often it gave up on the consumer. The deterministic tests above
// hold a dropper at each give-up.)
constexpr std::uint32_t producers = 3;
#if defined(SLUICE_SANITIZED)
constexpr std::uint32_t per_producer = 20'000;
#else
constexpr std::uint32_t per_producer = 100'000;
#endif

struct drop_book {
  sluice::test::packet_ledger ledger{std::vector<std::uint32_t>(producers, per_producer)};
  std::atomic<std::uint32_t> wrong{0};  // victims of no producer, or of no packet sent
  static void on_drop(void* context, const std::uint32_t* packet, std::uint32_t) noexcept {
    auto& book = *static_cast<drop_book*>(context);
    if (packet[1] < producers && packet[2] < per_producer) {
      book.ledger.drop(packet[1], packet[2]);
    } else {
      book.wrong.fetch_add(1, std::memory_order_relaxed);  // a count, read after the joins
    }
  }
};

TEST(PacketBufferNoTokens, DroppersAndTheConsumerCountExactly) {
  using namespace std::chrono_literals;
  // A hang is 30 s without a claim (a run is under a second alone, and
  // much slower beside other tests).
  sluice::test::progress_watchdog dog("no-token droppers and consumer", 30s);
  std::vector<std::uint32_t> storage(64);
  drop_book book;
  pbuf_core c({.buffer = storage.data(),
               .size = 64,
               .flags = sluice::detail::pbuf_flag_overwrite,
               .drop = &drop_book::on_drop,
               .context = &book});
  std::atomic<std::uint32_t> producing{producers};
  std::atomic<std::uint64_t> refusals{0};
  std::atomic<std::uint32_t> failed{0};
  std::vector<std::thread> threads;
  for (std::uint32_t pid = 0; pid < producers; ++pid) {
    threads.emplace_back([&, pid] {
      std::uint64_t refused = 0;
      for (std::uint32_t seq = 0; seq < per_producer;) {
        pbuf_span p;
        const pbuf_status s = c.try_alloc(3 + pid % 2, p);
        if (s == pbuf_status::no_room) {
          ++refused;
          std::this_thread::yield();  // gave up on a held lock or turn, or an uncommitted front
          continue;
        }
        if (s != pbuf_status::ok) {
          // Relaxed: a count, read after the joins.
          failed.fetch_add(1, std::memory_order_relaxed);
          break;
        }
        p.words[1] = pid;
        p.words[2] = seq++;
        sluice::test::commit_with_length(c, p);
      }
      // Relaxed: a count, read after the joins.
      refusals.fetch_add(refused, std::memory_order_relaxed);
      // Release: pairs with the consumer's acquire, so that its last look
      // comes after every commit of this producer.
      producing.fetch_sub(1, std::memory_order_release);
    });
  }
  std::uint32_t next[producers] = {};
  std::uint32_t wrong = 0;
  for (;;) {
    // Acquire: pairs with each producer's release after its last commit.
    const bool last_look = producing.load(std::memory_order_acquire) == 0;
    const pbuf_span p = c.try_claim();
    if (p.words == nullptr) {
      if (last_look) break;
      continue;
    }
    const std::uint32_t pid = p.words[1], seq = p.words[2];
    if (pid >= producers || seq >= per_producer || p.size != 3 + pid % 2 || seq < next[pid]) {
      ++wrong;
    } else {
      next[pid] = seq + 1;
      book.ledger.claim(pid, seq);
    }
    c.free(p.words);
    dog.progress.fetch_add(1, std::memory_order_relaxed);  // the watchdog only sees it move
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(failed.load(), 0u) << "an allocation failed other than for room";
  EXPECT_EQ(wrong, 0u) << "claims out of order, or of no packet sent";
  EXPECT_EQ(book.wrong.load(), 0u);
  std::uint64_t claimed = 0, dropped = 0;
  for (std::uint32_t pid = 0; pid < producers; ++pid)
    book.ledger.expect_each_once(pid, per_producer, claimed, dropped);
  EXPECT_EQ(claimed + dropped, std::uint64_t{producers} * per_producer);
  EXPECT_EQ(c.dropped.load(), dropped);
  // (Three producers outrun one consumer on a 64-word buffer: a run drops
  // thousands. None would mean that no producer ever dropped.)
  EXPECT_GT(dropped, 0u) << "nothing was dropped";
  std::printf("no tokens: %llu claimed, %llu dropped, %llu allocations refused and retried\n",
              static_cast<unsigned long long>(claimed), static_cast<unsigned long long>(dropped),
              static_cast<unsigned long long>(refusals.load()));
}

}  // namespace
