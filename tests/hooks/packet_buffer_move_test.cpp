// The move of an empty buffer to slot 0 (no overwrite; pbuf_core.hpp, "A
// request that does not fit only because of the padding at the wrap"),
// with the producer making it held right after it marked tmp_wr_idx.
//
// - Other producers meet the mark and end the move themselves: a producer
//   that stalls there holds up nobody, and once it goes on it must not
//   take rd_idx back.
// - A claim during the move finds nothing and reads no header (the word
//   at its position is the next lap's payload once the move ends); after
//   the move it follows to slot 0 and claims the mover's packet.
#include <atomic>
#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include "hooks.hpp"
#include "pbuf_test_support.hpp"

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_hook;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;
using sluice::detail::pbuf_valid;

// All seq_cst (the default): handshakes between the test thread and the
// thread at the hook, each read in the order the test describes; none is on
// the buffer's path.
// The thread held at held_point, and where it is: 1 held, 2 let go.
std::atomic<std::thread::id> held_thread{};
std::atomic<pbuf_hook> held_point{pbuf_hook::moving_to_slot_zero};
std::atomic<int> stage{0};
// Set while a claim must not reach a header read; counts those that did
// (the test sets the flag before it claims and reads the count after).
std::atomic<bool> watch_claims{false};
std::atomic<int> claims_looked{0};

}  // namespace

void sluice_pbuf_test_hook(pbuf_hook point) noexcept {
  if (run_shared_hooks(point)) return;
  if (point == pbuf_hook::claim_looked && watch_claims.load()) claims_looked.fetch_add(1);
  if (point == held_point.load() && std::this_thread::get_id() == held_thread.load() &&
      stage.load() == 0) {
    stage.store(1);
    while (stage.load() != 2)
      std::this_thread::yield();
  }
}

namespace {

constexpr std::uint32_t size_words = 16;

void reset_hooks() {
  held_thread.store({});
  held_point.store(pbuf_hook::moving_to_slot_zero);
  stage.store(0);
  watch_claims.store(false);
  claims_looked.store(0);
}

// A thread that asks for `words`, which do not fit before the wrap of the
// empty buffer, so it marks the move to slot 0 and is held there (the
// constructor returns once it is); `then` runs in it with what it got.
// let_go() (or the destructor, after a failed assertion) lets it go on.
class held_mover {
 public:
  template <class Then>
  held_mover(pbuf_core& core, std::uint32_t words, Then then)
      : thread_([&core, words, then] {
          held_thread.store(std::this_thread::get_id());
          pbuf_span q;
          const pbuf_status status = core.try_alloc(words, q);
          then(status, q);
        }) {
    while (stage.load() != 1)
      std::this_thread::yield();
  }
  held_mover(const held_mover&) = delete;
  held_mover& operator=(const held_mover&) = delete;
  ~held_mover() { let_go(); }

  void let_go() {
    stage.store(2);
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
};

TEST(PacketBufferMove, AProducerMeetingAMoveInProgressEndsItAndReservesAtSlotZero) {
  reset_hooks();
  std::uint32_t storage[size_words];
  pbuf_core core({.buffer = storage, .size = size_words});
  sluice::test::make_empty_at(core, 5);

  // The mover: 14 words do not fit in the 11 before the wrap, so it marks
  // the move of the empty buffer to position 16 (slot 0), and is held.
  pbuf_status mover_status = pbuf_status::ok;
  held_mover mover(core, 14, [&](pbuf_status status, pbuf_span q) {
    mover_status = status;
    if (status == pbuf_status::ok) core.abandon(q.words, 14);
  });

  // Another producer ends the move and reserves 3 words at slot 0; then 6
  // more fit at once (counted from rd_idx = 16, 9 of 16 words are used). A
  // move that only its maker could end would leave rd_idx at 5 and make
  // the buffer look almost full.
  pbuf_span early, second;
  ASSERT_EQ(core.try_alloc(3, early), pbuf_status::ok);
  EXPECT_EQ(early.words, storage);
  ASSERT_EQ(core.try_alloc(6, second), pbuf_status::ok) << "the move was not ended for us";
  EXPECT_EQ(second.words, storage + 3);
  EXPECT_EQ(core.used_words(), 9u);

  // The first packet goes through, so rd_idx moves past slot 0 (to 19).
  sluice::test::commit_with_length(core, early);
  const pbuf_span c1 = core.try_claim();
  ASSERT_EQ(c1.words, storage);
  core.free(c1.words);
  EXPECT_EQ(core.used_words(), 6u);

  // The mover goes on: its move was ended by others, and it must not move
  // rd_idx back to 16 (that would count the freed words as used again).
  mover.let_go();
  EXPECT_EQ(mover_status, pbuf_status::no_room);  // 6 + 14 > 16
  EXPECT_EQ(core.used_words(), 6u);

  sluice::test::commit_with_length(core, second);
  sluice::test::claim_in_order(core, {{storage + 3, 6}});
}

// The mover held between the two steps of ending its own move: rd_idx is
// at the new position, tmp_wr_idx still marked at the old one.
TEST(PacketBufferMove, BetweenTheTwoStepsOfTheMoveTheBufferIsEmptyAndAnotherProducerEndsIt) {
  reset_hooks();
  held_point.store(pbuf_hook::moved_rd_idx);
  std::uint32_t storage[size_words];
  pbuf_core core({.buffer = storage, .size = size_words});
  sluice::test::make_empty_at(core, 5);

  pbuf_status mover_status = pbuf_status::no_room;
  pbuf_span mover_packet;
  held_mover mover(core, 14, [&](pbuf_status status, pbuf_span q) {
    mover_status = status;
    mover_packet = q;
  });

  // rd_idx = 16 is ahead of the marked position 5: the buffer is empty,
  // not full (distance 16 - 5 would count a whole lap), and nothing is
  // there to claim or flush.
  EXPECT_EQ(core.used_words(), 0u) << "the buffer looked used during the move";
  EXPECT_FALSE(core.is_pending());
  EXPECT_EQ(core.try_claim().words, nullptr);
  int flushed = 0;
  const auto count = [](void* context, const std::uint32_t*, std::uint32_t) noexcept {
    ++*static_cast<int*>(context);
  };
  EXPECT_EQ(core.panic_flush(count, &flushed), 0u);
  EXPECT_EQ(flushed, 0);
  EXPECT_EQ(core.used_words(), 0u);

  // Another producer clears the mark and reserves at slot 0.
  pbuf_span early;
  ASSERT_EQ(core.try_alloc(1, early), pbuf_status::ok);
  EXPECT_EQ(early.words, storage);
  EXPECT_EQ(core.used_words(), 1u);

  // The mover's own clear then fails (it must not take tmp_wr_idx back to
  // 16 over the packet at slot 0); it reserves its 14 words after it.
  mover.let_go();
  ASSERT_EQ(mover_status, pbuf_status::ok);
  EXPECT_EQ(mover_packet.words, storage + 1);
  EXPECT_EQ(core.used_words(), 15u);

  sluice::test::commit_with_length(core, early);
  sluice::test::commit_with_length(core, mover_packet);
  sluice::test::claim_in_order(core, {{storage, 1}, {storage + 1, 14}});
}

// An observer held between used_words' two looks (rd_idx, then
// tmp_wr_idx) while a packet goes all the way through. Looking at
// tmp_wr_idx first would see rd_idx past it and report a full buffer.
TEST(PacketBufferObserver, UsedWordsBetweenItsTwoLooksReportsNoMoreThanWasThere) {
  reset_hooks();
  held_point.store(pbuf_hook::used_looked);
  std::uint32_t storage[size_words];
  pbuf_core core({.buffer = storage, .size = size_words});
  sluice::test::make_empty_at(core, 5);

  std::uint32_t seen = size_words + 1;
  std::thread observer([&] {
    held_thread.store(std::this_thread::get_id());
    seen = core.used_words();
  });
  while (stage.load() != 1)
    std::this_thread::yield();

  // 3 words allocated, committed, claimed and freed: at most 3 were used.
  pbuf_span p;
  const pbuf_status status = core.try_alloc(3, p);
  if (status == pbuf_status::ok) {
    sluice::test::commit_with_length(core, p);
    const pbuf_span got = core.try_claim();
    EXPECT_EQ(got.words, p.words);
    if (got.words != nullptr) core.free(got.words);
  }
  stage.store(2);
  observer.join();
  ASSERT_EQ(status, pbuf_status::ok);
  EXPECT_LE(seen, 3u) << "an observer reported " << seen << " of " << size_words
                      << " words used while at most 3 were";
}

// A length callback for the second run below (the claim then takes its
// full path): the length in the user bits, as the buffer keeps it itself.
std::uint32_t length_in_user_bits(void*, const std::uint32_t* packet) noexcept {
  return sluice::detail::atomic_ref<std::uint32_t>(*const_cast<std::uint32_t*>(packet))
             .load(std::memory_order_relaxed) >>
         2;
}

class PacketBufferMoveDuringClaim : public testing::TestWithParam<bool> {};

TEST_P(PacketBufferMoveDuringClaim, AClaimDuringTheMoveReadsNoHeaderThenFollows) {
  reset_hooks();
  std::uint32_t storage[size_words];
  pbuf_core core(
      {.buffer = storage, .size = size_words, .words = GetParam() ? length_in_user_bits : nullptr});
  sluice::test::make_empty_at(core, 3);

  // The mover: 14 words do not fit in the 13 before the wrap, so it marks
  // the move of the empty buffer to position 16 (slot 0), and is held.
  // Let go, it reserves [16, 30), which covers slot 3, fills every payload
  // word with what a committed 3-word packet's header reads, and commits.
  constexpr std::uint32_t looks_committed = (3u << 2) | pbuf_valid;
  std::atomic<std::uint32_t*> moved_packet{nullptr};
  held_mover mover(core, 14, [&](pbuf_status status, pbuf_span q) {
    if (status != pbuf_status::ok) return;
    for (std::uint32_t i = 1; i < 14; ++i)
      q.words[i] = looks_committed;
    sluice::test::commit_with_length(core, q);
    moved_packet.store(q.words);
  });

  // During the move the buffer holds nothing: a claim finds nothing, and
  // reads no header at slot 3 (once the move ends, that word is payload,
  // and a producer may be writing it while the claim reads).
  watch_claims.store(true);
  EXPECT_EQ(core.try_claim().words, nullptr);
  EXPECT_FALSE(core.is_pending());
  watch_claims.store(false);
  EXPECT_EQ(claims_looked.load(), 0) << "a claim read a header during the move";

  mover.let_go();
  ASSERT_NE(moved_packet.load(), nullptr);
  EXPECT_EQ(moved_packet.load(), storage);
  // The claim follows rd_idx to slot 0; slot 3's payload is never taken
  // for a header.
  const pbuf_span got = core.try_claim();
  EXPECT_EQ(got.words, moved_packet.load()) << "claimed a payload word as a header";
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
