// The packet buffer as a port without context tokens (and without masking)
// runs it: the engine built with SLUICE_TEST_NO_CONTEXT_TOKENS, where
// port::context_token() is 0 on every thread. A dropper there cannot tell a
// handler that interrupted the holder from a thread, so it gives up on the
// consumer's lock or biased turn after a short spin (droppers_may_give_up).
// - A dropper with a victim to end (its drop callback ran) that meets the
//   consumer's biased turn gives up on it, waits outside the lock for the
//   turn to end, and only then ends the victim (E8): a claim inside the
//   turn may pass the victim and read its length.
// - Stress: three producer threads that drop, and the consumer, with exact
//   accounting: every packet claimed or reported dropped once.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/port.hpp>

#include "pbuf_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::detail::pbuf_core;
using sluice::detail::pbuf_hook;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

std::atomic<void (*)()> at_claim_looked{nullptr};
std::atomic<void (*)(pbuf_hook)> at_hook{nullptr};

}  // namespace

// The engine's test hook, for this binary.
void sluice_pbuf_test_hook(pbuf_hook point) noexcept {
  if (auto* action = at_hook.load()) action(point);
  if (point == pbuf_hook::claim_looked) {
    if (auto* action = at_claim_looked.exchange(nullptr)) action();
  }
}

namespace {

constexpr std::uint32_t size_words = 16;
pbuf_core* core = nullptr;

// A full overwrite buffer of four 4-word packets, tagged 1..4.
void fill(pbuf_core& c) {
  for (std::uint32_t tag = 1; tag <= 4; ++tag) {
    pbuf_span p;
    ASSERT_EQ(c.try_alloc(4, p), pbuf_status::ok);
    p.words[1] = tag << 2;
    sluice::test::commit_with_length(c, p);
  }
}

TEST(PacketBufferNoTokens, TheBuildHasNoTokens) {
  EXPECT_EQ(sluice::port::context_token(), 0u);
  std::uint32_t other = 1;
  std::thread([&] { other = sluice::port::context_token(); }).join();
  EXPECT_EQ(other, 0u);
}

// The victim's drop callback holds the dropper until the consumer is inside
// a biased turn (the test sets the bias again, as the consumer's locked
// turns would after a stretch).
std::atomic<bool> in_callback{false}, callback_go{false}, waits_outside{false};
std::atomic<std::uint32_t> victim_tag{0}, victim_header_outside{0}, lock_outside{0};

void hold_in_callback(void*, const std::uint32_t* packet, std::uint32_t) noexcept {
  victim_tag.store(packet[1] >> 2);
  in_callback.store(true);
  while (!callback_go.load())
    std::this_thread::yield();
}

TEST(PacketBufferNoTokens, ADropperWaitsOutsideTheLockForTheTurnBeforeItEndsItsVictim) {
  if (!sluice::detail::speed_over_size) GTEST_SKIP() << "no biased turn in a size-optimised build";
  std::uint32_t storage[size_words];
  pbuf_core c({.buffer = storage,
               .size = size_words,
               .flags = sluice::detail::pbuf_flag_overwrite,
               .drop = &hold_in_callback});
  core = &c;
  fill(c);
  in_callback.store(false);
  callback_go.store(false);
  waits_outside.store(false);
  victim_header_outside.store(0);
  lock_outside.store(~0u);
  std::atomic<int> dropper_status{-1};
  std::thread dropper([&] {
    pbuf_span q;
    const pbuf_status s = c.try_alloc(4, q);  // drops packet 1, the victim
    if (s == pbuf_status::ok) {
      q.words[1] = 5u << 2;
      sluice::test::commit_with_length(c, q);
    }
    dropper_status.store(static_cast<int>(s));
  });
  while (!in_callback.load())
    std::this_thread::yield();
  c.lock_bias.store(1);
  at_hook.store(+[](pbuf_hook point) {
    if (point != pbuf_hook::victim_awaits_turn || waits_outside.load()) return;
    victim_header_outside.store(std::atomic_ref<std::uint32_t>(core->buf[0]).load());
    lock_outside.store(core->lock.load());
    waits_outside.store(true);
  });
  at_claim_looked.store(+[] {
    EXPECT_NE(core->consumer_in.load(), 0u) << "not in a biased turn";
    callback_go.store(true);  // whatever the check says: the dropper must not hang
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!waits_outside.load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    EXPECT_TRUE(waits_outside.load()) << "the dropper did not give up on the turn and wait";
  });
  const pbuf_span got = c.try_claim();
  const bool hook_ran = callback_go.load();
  callback_go.store(true);  // a claim that never reached the hook must not hang the test
  dropper.join();
  at_hook.store(nullptr);
  EXPECT_TRUE(hook_ran) << "the claim did not reach claim_looked";
  EXPECT_EQ(victim_tag.load(), 1u);
  EXPECT_EQ(victim_header_outside.load() & sluice::detail::pbuf_hdr_mask,
            sluice::detail::pbuf_valid | sluice::detail::pbuf_busy)
      << "the victim ended beside the consumer's biased turn";
  EXPECT_EQ(lock_outside.load(), 0u) << "the dropper waited holding the lock";
  EXPECT_EQ(dropper_status.load(), static_cast<int>(pbuf_status::ok));
  ASSERT_NE(got.words, nullptr);
  EXPECT_EQ(got.words[1] >> 2, 2u);
  c.free(got.words);
  for (std::uint32_t tag : {3u, 4u, 5u}) {
    const pbuf_span p = c.try_claim();
    ASSERT_NE(p.words, nullptr);
    EXPECT_EQ(p.words[1] >> 2, tag);
    c.free(p.words);
  }
  EXPECT_EQ(c.try_claim().words, nullptr);
  EXPECT_EQ(c.dropped.load(), 1u);
}

// Three producers that drop to fit and a consumer that claims, all
// without tokens: whoever gives up retries. Every packet is claimed or
// reported dropped exactly once; each producer's arrive in order.
struct ledger {
  static constexpr std::uint32_t producers = 3;
  std::atomic<std::uint32_t> dropped[producers] = {};
  static void on_drop(void* context, const std::uint32_t* packet, std::uint32_t) noexcept {
    static_cast<ledger*>(context)->dropped[packet[1]].fetch_add(1);
  }
};

TEST(PacketBufferNoTokens, DroppersAndTheConsumerCountExactly) {
#if defined(SLUICE_SANITIZED)
  constexpr std::uint32_t per_producer = 20'000;
#else
  constexpr std::uint32_t per_producer = 100'000;
#endif
  std::vector<std::uint32_t> storage(64);
  ledger book;
  pbuf_core c({.buffer = storage.data(),
               .size = 64,
               .flags = sluice::detail::pbuf_flag_overwrite,
               .drop = &ledger::on_drop,
               .context = &book});
  std::atomic<std::uint32_t> producing{ledger::producers};
  std::vector<std::thread> threads;
  for (std::uint32_t pid = 0; pid < ledger::producers; ++pid) {
    threads.emplace_back([&, pid] {
      for (std::uint32_t seq = 0; seq < per_producer;) {
        pbuf_span p;
        const pbuf_status s = c.try_alloc(3 + pid % 2, p);
        if (s != pbuf_status::ok) {
          std::this_thread::yield();  // gave up on a held lock or turn
          continue;
        }
        p.words[1] = pid;
        p.words[2] = seq++;
        sluice::test::commit_with_length(c, p);
      }
      producing.fetch_sub(1);
    });
  }
  std::uint32_t claimed[ledger::producers] = {};
  std::uint32_t next[ledger::producers] = {};
  std::uint32_t wrong = 0;
  for (;;) {
    const bool last_look = producing.load() == 0;
    const pbuf_span p = c.try_claim();
    if (p.words == nullptr) {
      if (last_look) break;
      continue;
    }
    const std::uint32_t pid = p.words[1], seq = p.words[2];
    if (pid >= ledger::producers || p.size != 3 + pid % 2 || seq < next[pid]) {
      ++wrong;
    } else {
      next[pid] = seq + 1;
      ++claimed[pid];
    }
    c.free(p.words);
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(wrong, 0u);
  std::uint32_t dropped_total = 0;
  for (std::uint32_t pid = 0; pid < ledger::producers; ++pid) {
    EXPECT_EQ(claimed[pid] + book.dropped[pid].load(), per_producer) << "producer " << pid;
    dropped_total += book.dropped[pid].load();
  }
  EXPECT_EQ(c.dropped.load(), dropped_total);
}

}  // namespace
