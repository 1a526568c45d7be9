// The consumer follows the move of an empty buffer to slot 0 (pbuf_core.hpp,
// "A request that does not fit only because of the padding at the wrap")
// even when the move happens in the middle of its claim, after it passed a
// skip and before it reads the next header. The producer that moves it
// reserves the whole buffer from slot 0, so the word where the consumer
// would have read that header is now the new packet's payload ([PB7] in
// src/packet_buffer.cpp). Here the producer runs where a signal handler on
// the consumer's thread could: inside the claim, woken by the room that
// passing a skip packet makes.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include <sluice/waker.hpp>

#include "executor_test_support.hpp"
#include "pbuf_test_support.hpp"

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;
using sluice::detail::pbuf_valid;

constexpr std::uint32_t size_words = 16;

// A producer woken as a waiter for room: it allocates the whole buffer once
// and fills every payload word with what a committed 3-word packet's header
// would read.
struct whole_buffer_producer {
  pbuf_core* core = nullptr;
  std::uint32_t* packet = nullptr;
  int runs = 0;
  void add_ref() noexcept {}
  void release() noexcept {}
  void wake_by_ref() noexcept {
    if (runs++ != 0) return;
    pbuf_span p;
    if (core->try_alloc(size_words, p) != pbuf_status::ok) return;
    packet = p.words;
    for (std::uint32_t i = 1; i < size_words; ++i)
      p.words[i] = (3u << 2) | pbuf_valid;
    sluice::test::commit_with_length(*core, p);  // the length in the header
  }
};

TEST(PacketBufferFollow, ClaimFollowsAMoveToSlotZeroMadeDuringIt) {
  std::uint32_t storage[size_words];
  pbuf_core core({.buffer = storage, .size = size_words});
  // Move the indices off slot 0: a 3-word packet through, then a 2-word
  // packet abandoned (a skip at [3, 5)).
  sluice::test::make_empty_at(core, 3);
  pbuf_span p;
  ASSERT_EQ(core.try_alloc(2, p), pbuf_status::ok);
  core.abandon(p.words, 2);

  // The claim passes the skip, reclaims its words, and so wakes the
  // producer: the buffer is empty at slot 5, and the whole-buffer request
  // moves it to the next slot 0 and fills slot 5 with payload.
  whole_buffer_producer producer{.core = &core};
  sluice::detail::waiter node;
  core.space_waiters.enqueue(node, sluice::make_waker(producer));
  const pbuf_span got = core.try_claim();
  EXPECT_EQ(producer.runs, 1);
  ASSERT_NE(producer.packet, nullptr) << "the producer did not get the whole buffer";
  EXPECT_EQ(got.words, producer.packet) << "claimed a payload word as a header";
  EXPECT_EQ(got.size, size_words);
  (void)core.space_waiters.cancel(node);
  if (got.words != nullptr) core.free(got.words);
  EXPECT_EQ(core.try_claim().words, nullptr);
  EXPECT_EQ(core.used_words(), 0u);
}

// The same move made on another thread while the consumer does nothing,
// with nothing ordering the consumer after it but what the claim itself
// loads: the consumer's last look left it at slot 3, and the word there is
// now payload, written with a plain store. The claim must not read it (a
// read would be a data race that ThreadSanitizer reports, and a misread
// header): it answers nothing until it sees the commit, then the packet.
TEST(PacketBufferFollow, AClaimAfterAMoveOnAnotherThreadReadsNoPayloadAsAHeader) {
  std::uint32_t storage[size_words];
  pbuf_core core({.buffer = storage, .size = size_words});
  sluice::test::make_empty_at(core, 3);

  std::atomic<bool> produced{false};
  std::thread producer([&] {
    pbuf_span q;
    if (core.try_alloc(size_words, q) == pbuf_status::ok) {  // moves to slot 0
      for (std::uint32_t i = 1; i < size_words; ++i)
        q.words[i] = (3u << 2) | pbuf_valid;  // plain stores
      sluice::test::commit_with_length(core, q);
    }
    // Relaxed: tells the consumer to go on without ordering anything.
    produced.store(true, std::memory_order_relaxed);
  });
  while (!produced.load(std::memory_order_relaxed))
    std::this_thread::yield();
  // Where stores may become visible out of order, a claim may still miss
  // the commit: it answers nothing then, and a later one finds the packet.
  // None may answer anything else.
  sluice::test::abort_watchdog dog(std::chrono::seconds(30), "a claim of a committed packet");
  pbuf_span got = core.try_claim();
  while (got.words == nullptr) {
    std::this_thread::yield();
    got = core.try_claim();
  }
  producer.join();
  EXPECT_EQ(got.words, storage);
  EXPECT_EQ(got.size, size_words);
  if (got.words != nullptr) core.free(got.words);
  EXPECT_EQ(core.used_words(), 0u);
}

}  // namespace
