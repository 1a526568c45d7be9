// With overwrite, hosted with context tokens, a dropper holds the lock
// unmasked, so a signal handler on its thread may interrupt its turn and
// call the consumer's side: the handler cannot wait for the lock (its
// thread holds it and cannot go on until the handler returns), and it
// cannot act without it (the holder keeps indices and a header it read in
// registers). So a claim there takes nothing, and a free is deferred to the
// dropper, which frees the packet after its turn. Held at front_read (the
// dropper holds the lock and has read the header at rd_idx: a claimed
// packet it is about to step over), the hook runs on the dropper's own
// thread, with its context token: as such a handler does.
//
// Before this, the engine's claim there went on without the lock and then
// unlocked the dropper's lock (a debug build stopped, naming a re-entered
// consumer), and the C API's free waited for ever on its consumer lock
// when a second thread held it, waiting for the dropper's lock.
#include <zephyr/sys/mpsc_pbuf.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include "hooks.hpp"
#include "pbuf_test_support.hpp"
#include "zephyr_c_buffer.hpp"

namespace {

using sluice::detail::pbuf_busy;
using sluice::detail::pbuf_core;
using sluice::detail::pbuf_hdr_mask;
using sluice::detail::pbuf_hook;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;
using sluice::detail::pbuf_valid;

// Whether a thread waited for the lock (lock_awaited) since the test's
// action was set (hook_action's `also`, from any thread: release, read with
// acquire).
std::atomic<bool> lock_awaited{false};

void note_lock_awaited(pbuf_hook point) {
  if (point == pbuf_hook::lock_awaited) lock_awaited.store(true, std::memory_order_release);
}

constexpr std::uint32_t size_words = 16;

// Read on the thread that last wrote it (nothing runs beside the test).
std::uint32_t header_bits(const std::uint32_t* packet) {
  return *packet & pbuf_hdr_mask;
}

// Three committed packets of 4 words, the first claimed: a 8-word
// allocation then steps over it (at rd_idx) and drops the other two.
TEST(HandlerOnDropper, AClaimTakesNothingAndAFreeIsDoneAfterTheDroppersTurn) {
  alignas(64) std::uint32_t words[size_words] = {};
  pbuf_core core(
      {.buffer = words, .size = size_words, .flags = sluice::detail::pbuf_flag_overwrite});
  pbuf_span p;
  for (int i = 0; i < 3; ++i)
    ASSERT_NE(sluice::test::put_with_length(core, 4).words, nullptr);
  const pbuf_span held = core.try_claim();
  ASSERT_EQ(held.words, words);

  pbuf_span claimed_inside{};
  std::uint32_t bits_after_free_inside = 0;
  std::uint32_t deferred_inside = 0;
  std::uint32_t flag_inside = 0;
  const hook_action action(pbuf_hook::front_read, [&] {
    claimed_inside = core.try_claim();  // a packet is committed behind the claimed one
    core.free(held.words);
    bits_after_free_inside = header_bits(held.words);
    for (const auto& entry : core.deferred_frees)
      deferred_inside += entry.load(std::memory_order_relaxed) != 0 ? 1 : 0;
    flag_inside = core.deferred_any.load(std::memory_order_relaxed);
  });
  ASSERT_EQ(core.try_alloc(8, p), pbuf_status::ok);
  ASSERT_TRUE(action.ran());

  EXPECT_EQ(claimed_inside.words, nullptr) << "a claim went on under its own thread's dropper";
  EXPECT_EQ(bits_after_free_inside, pbuf_valid | pbuf_busy) << "the free acted inside the turn";
  EXPECT_EQ(deferred_inside, 1u);
  EXPECT_EQ(flag_inside, 1u) << "a deferred free that no dropper's look would see";
  // Freed once the dropper's turn ended: the packet reads as a skip, and
  // no entry is left.
  EXPECT_EQ(header_bits(held.words), pbuf_busy);
  for (const auto& entry : core.deferred_frees)
    EXPECT_EQ(entry.load(std::memory_order_relaxed), 0u);
  EXPECT_EQ(core.deferred_any.load(std::memory_order_relaxed), 0u);
  EXPECT_EQ(core.dropped.load(std::memory_order_relaxed), 2u);

  sluice::test::commit_with_length(core, p);
  const pbuf_span next = core.try_claim();
  EXPECT_EQ(next.words, p.words);
  EXPECT_EQ(next.size, 8u);
  core.free(next.words);
  EXPECT_EQ(core.try_claim().words, nullptr);
  EXPECT_EQ(core.used_words(), 0u);
}

// What the hook's action works on (as an action captures it).
struct c_buffer : sluice::test::zephyr_c_buffer<size_words> {
  c_buffer() : zephyr_c_buffer(nullptr, MPSC_PBUF_MODE_OVERWRITE) {}
  void put(std::uint32_t n) {
    union mpsc_pbuf_generic* q = mpsc_pbuf_alloc(&buffer, n, K_NO_WAIT);
    ASSERT_NE(q, nullptr);
    mpsc_pbuf_commit(&buffer, q);
  }
};

// The C API: a second thread's claim holds the consumer lock and waits for
// the dropper's lock; a handler on the dropper's thread frees. Waiting for
// the consumer lock there would never end.
TEST(HandlerOnDropper, TheCApisFreeDoesNotWaitForAClaimThatWaitsForTheDropper) {
  c_buffer b;
  for (int i = 0; i < 3; ++i)
    b.put(4);
  const union mpsc_pbuf_generic* held = mpsc_pbuf_claim(&b.buffer);
  ASSERT_NE(held, nullptr);

  // A hang is the failure this test looks for: stop with a message.
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 2000 && !done.load(std::memory_order_acquire); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!done.load(std::memory_order_acquire)) {
      std::fprintf(stderr, "watchdog: the free inside the dropper's turn did not return\n");
      std::abort();
    }
  });

  const union mpsc_pbuf_generic* second_claim = held;  // overwritten by the thread
  const union mpsc_pbuf_generic* claimed_inside = held;
  bool second_waited = false;
  std::thread second;
  lock_awaited.store(false, std::memory_order_relaxed);  // before the action is set
  const hook_action action(
      pbuf_hook::front_read,
      [&] {
        second = std::thread([&] { second_claim = mpsc_pbuf_claim(&b.buffer); });
        // Until the second thread holds the consumer lock and waits for ours.
        // Acquire: pairs with the release in note_lock_awaited().
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!lock_awaited.load(std::memory_order_acquire) &&
               std::chrono::steady_clock::now() < give_up)
          std::this_thread::yield();
        second_waited = lock_awaited.load(std::memory_order_acquire);
        mpsc_pbuf_free(&b.buffer, held);
        claimed_inside = mpsc_pbuf_claim(&b.buffer);
      },
      &note_lock_awaited);
  union mpsc_pbuf_generic* fresh = mpsc_pbuf_alloc(&b.buffer, 8, K_NO_WAIT);
  second.join();
  done.store(true, std::memory_order_release);
  watchdog.join();
  ASSERT_TRUE(action.ran());
  ASSERT_NE(fresh, nullptr);

  EXPECT_TRUE(second_waited) << "the second claim never waited for the dropper's lock";
  EXPECT_EQ(claimed_inside, nullptr);
  // The allocation is not committed yet: it holds back everything after.
  EXPECT_EQ(second_claim, nullptr);
  mpsc_pbuf_commit(&b.buffer, fresh);
  const union mpsc_pbuf_generic* next = mpsc_pbuf_claim(&b.buffer);
  EXPECT_EQ(next, fresh);
  if (next != nullptr) mpsc_pbuf_free(&b.buffer, next);
  EXPECT_FALSE(mpsc_pbuf_is_pending(&b.buffer));
  std::uint32_t size = 0;
  std::uint32_t now = 1;
  mpsc_pbuf_get_utilization(&b.buffer, &size, &now);
  EXPECT_EQ(now, 0u) << "the deferred free left words in use";
  // Read after the join: nothing runs beside the test.
  for (const std::uint32_t entry : b.buffer.sluice_deferred_frees)
    EXPECT_EQ(entry, 0u);
  EXPECT_EQ(b.buffer.sluice_deferred_any, 0u);
}

}  // namespace
