// The move of an empty buffer to slot 0 (no overwrite; pbuf_core.hpp, "A
// request that does not fit only because of the padding at the wrap"),
// held between its two steps: the producer making it has moved tmp_wr_idx
// to the next slot 0 and not yet rd_idx.
//
// - Another producer reserves at the new slot 0 meanwhile, so that,
//   counted from the old rd_idx, the buffer looks almost full, and a third
//   producer finds no room and waits. The move's store of rd_idx frees the
//   words between the two positions: it must wake that waiter.
// - A claim looks at rd_idx (not moved yet) and, before it reads the
//   header at its position, the move ends and the mover's packet covers
//   that slot with payload: the claim must drop what it read and follow.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include <sluice/time.hpp>
#include "hooks.hpp"
#include "pbuf_test_support.hpp"

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_hook;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;
using sluice::detail::pbuf_valid;

// The thread held at moving_to_slot_zero, and where it is: 1 held, 2 let go.
std::atomic<std::thread::id> held_thread{};
std::atomic<int> stage{0};
// Set once the held mover committed its packet (the claim test).
std::atomic<bool> mover_committed{false};
// Whether the claim test's consumer runs the mover inside its claim.
std::atomic<bool> run_mover_in_claim{false};

}  // namespace

std::atomic<void (*)()> at_claim_looked{nullptr};

void sluice_pbuf_test_hook(pbuf_hook point) noexcept {
  if (point == pbuf_hook::claim_looked) {
    if (auto* action = at_claim_looked.exchange(nullptr)) {
      action();
      return;
    }
  }
  if (point == pbuf_hook::moving_to_slot_zero && std::this_thread::get_id() == held_thread.load() &&
      stage.load() == 0) {
    stage.store(1);
    while (stage.load() != 2)
      std::this_thread::yield();
  } else if (point == pbuf_hook::claim_looked && run_mover_in_claim.exchange(false)) {
    // The consumer looked at rd_idx; let the mover end the move, reserve
    // and fill its packet before the consumer reads the header. Acquire:
    // the mover's words are ours to look at afterwards.
    stage.store(2);
    while (!mover_committed.load(std::memory_order_acquire))
      std::this_thread::yield();
  }
}

namespace {

constexpr std::uint32_t size_words = 16;

void reset_hooks() {
  held_thread.store({});
  stage.store(0);
  mover_committed.store(false);
  run_mover_in_claim.store(false);
}

TEST(PacketBufferMove, TheMoveToSlotZeroWakesAProducerWaitingForRoom) {
  reset_hooks();
  std::uint32_t storage[size_words];
  pbuf_core core({.buffer = storage, .size = size_words});
  sluice::test::make_empty_at(core, 5);

  // The mover: 14 words do not fit in the 11 before the wrap, so it moves
  // the empty buffer to position 16 (slot 0), and is held there.
  pbuf_status mover_status = pbuf_status::ok;
  std::thread mover([&] {
    held_thread.store(std::this_thread::get_id());
    pbuf_span q;
    mover_status = core.try_alloc(14, q);
    if (mover_status == pbuf_status::ok) core.abandon(q.words, 14);
  });
  while (stage.load() != 1)
    std::this_thread::yield();

  // A producer reserves 3 words at the new slot 0: from the old rd_idx
  // (5), 14 of 16 words now look used.
  pbuf_span early;
  ASSERT_EQ(core.try_alloc(3, early), pbuf_status::ok);
  EXPECT_EQ(early.words, storage);

  // A producer that needs 6 words finds no room and waits, with no deadline.
  std::atomic<bool> waiter_done{false};
  pbuf_status waiter_status = pbuf_status::no_room;
  std::thread waiter([&] {
    pbuf_span q;
    waiter_status = core.alloc_until(6, sluice::time_point::max(), q);
    if (waiter_status == pbuf_status::ok) core.abandon(q.words, 6);
    waiter_done.store(true);
  });
  while (!core.space_waiters.approx_has_waiters())
    std::this_thread::yield();
  // Past its re-check and asleep (a re-check that ran after the move
  // would find room by itself).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(waiter_done.load());

  // The move ends: rd_idx = 16, so 3 words are used and 6 fit.
  stage.store(2);
  mover.join();
  EXPECT_EQ(mover_status, pbuf_status::no_room);  // 3 + 14 > 16
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!waiter_done.load() && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  EXPECT_TRUE(waiter_done.load()) << "the move freed room, and the waiting producer sleeps on";

  // Whatever happened, let the waiter finish: freeing the early packet
  // makes room and wakes it.
  early.words[0] = 3u << 2;
  core.commit(early.words);
  const pbuf_span c = core.try_claim();
  ASSERT_EQ(c.words, storage);
  core.free(c.words);
  waiter.join();
  EXPECT_EQ(waiter_status, pbuf_status::ok);
}

// A length callback for the second run below (the claim then takes its
// full path): the length in the user bits, as the buffer keeps it itself.
std::uint32_t length_in_user_bits(void*, const std::uint32_t* packet) noexcept {
  return sluice::detail::atomic_ref<std::uint32_t>(*const_cast<std::uint32_t*>(packet))
             .load(std::memory_order_relaxed) >>
         2;
}

class PacketBufferMoveDuringClaim : public testing::TestWithParam<bool> {};

TEST_P(PacketBufferMoveDuringClaim, TheClaimDropsAHeaderReadAfterTheMoveAndFollows) {
  reset_hooks();
  std::uint32_t storage[size_words];
  pbuf_core core(
      {.buffer = storage, .size = size_words, .words = GetParam() ? length_in_user_bits : nullptr});
  sluice::test::make_empty_at(core, 3);

  // The mover: 14 words do not fit in the 13 before the wrap, so it moves
  // the empty buffer to position 16 (slot 0), and is held there. Let go, it
  // reserves [16, 30), which covers slot 3, fills every payload word with
  // what a committed 3-word packet's header reads, and commits.
  constexpr std::uint32_t looks_committed = (3u << 2) | pbuf_valid;
  std::uint32_t* moved_packet = nullptr;
  std::thread mover([&] {
    held_thread.store(std::this_thread::get_id());
    pbuf_span q;
    if (core.try_alloc(14, q) == pbuf_status::ok) {
      q.words[0] = 14u << 2;
      for (std::uint32_t i = 1; i < 14; ++i)
        q.words[i] = looks_committed;
      moved_packet = q.words;
      core.commit(q.words);
    }
    // Release: the packet's words, to the consumer's hook (acquire).
    mover_committed.store(true, std::memory_order_release);
  });
  while (stage.load() != 1)
    std::this_thread::yield();

  // The claim sees something reserved past slot 3 and rd_idx not moved;
  // at claim_looked the move ends and slot 3 becomes payload.
  run_mover_in_claim.store(true);
  const pbuf_span got = core.try_claim();
  mover.join();
  EXPECT_FALSE(run_mover_in_claim.load()) << "the claim never reached claim_looked";
  ASSERT_NE(moved_packet, nullptr);
  EXPECT_EQ(got.words, moved_packet) << "claimed a payload word as a header";
  EXPECT_EQ(got.size, 14u);
  if (got.words != nullptr) core.free(got.words);
  EXPECT_EQ(core.try_claim().words, nullptr);
  EXPECT_EQ(core.used_words(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Lengths, PacketBufferMoveDuringClaim, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "FromACallback" : "InTheHeader";
                         });

}  // namespace
