// The move of an empty buffer to slot 0 (no overwrite; pbuf_core.hpp, "A
// request that does not fit only because of the padding at the wrap"),
// held between its two steps: the producer making it has moved tmp_wr_idx
// to the next slot 0 and not yet rd_idx. Another producer reserves at the
// new slot 0 meanwhile, so that, counted from the old rd_idx, the buffer
// looks almost full, and a third producer finds no room and waits. The
// move's store of rd_idx frees the words between the two positions: it
// must wake that waiter.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/time.hpp>

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_hook;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

// The thread held at the hook, and where it is: 1 held, 2 let go.
std::atomic<std::thread::id> held_thread{};
std::atomic<int> stage{0};

}  // namespace

void sluice_pbuf_test_hook(pbuf_hook point) noexcept {
  if (point != pbuf_hook::moving_to_slot_zero || std::this_thread::get_id() != held_thread.load())
    return;
  stage.store(1);
  while (stage.load() != 2)
    std::this_thread::yield();
}

namespace {

constexpr std::uint32_t size_words = 16;

TEST(PacketBufferMove, TheMoveToSlotZeroWakesAProducerWaitingForRoom) {
  std::uint32_t storage[size_words];
  pbuf_core core({.buffer = storage, .size = size_words});
  // Empty, at position 5.
  pbuf_span p;
  ASSERT_EQ(core.try_alloc(5, p), pbuf_status::ok);
  p.words[0] = 5u << 2;
  core.commit(p.words);
  const pbuf_span first = core.try_claim();
  ASSERT_EQ(first.words, storage);
  core.free(first.words);
  ASSERT_EQ(core.used_words(), 0u);

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

}  // namespace
