// The move of an empty buffer to slot 0 under load, with movers that stall
// right after they mark it, so that other producers end most moves (the
// release stress tests see only a few such moves per run). Exact
// accounting as in tests/stress: every packet claimed once, in order per
// producer, payload intact; and the move's steps counted at its hook
// points: every mark is followed by its mover's own attempt to end it.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include "hooks.hpp"

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_hook;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

std::atomic<const pbuf_core*> observed{nullptr};
std::atomic<std::uint64_t> marks{0};       // moving_to_slot_zero
std::atomic<std::uint64_t> mover_ends{0};  // the mover's own finish_move
std::atomic<std::uint64_t> other_ends{0};  // another producer's finish_move
// Moves whose mark was gone when their mover came to end them: another
// producer ended them first. (A mark already set again by a new move is
// not counted: this is a lower bound.)
std::atomic<std::uint64_t> ended_for_mover{0};
thread_local bool marked_here = false;  // between a mark and its mover's end

void count_move_steps(pbuf_hook point) noexcept {
  if (point == pbuf_hook::moving_to_slot_zero) {
    marks.fetch_add(1);
    marked_here = true;
    // Stall, as a preempted mover would: the other producers meet the mark.
    for (int i = 0; i < 4; ++i)
      std::this_thread::yield();
  } else if (point == pbuf_hook::moved_rd_idx) {
    // The mover's next finish_move is the one right after its mark.
    if (marked_here) {
      marked_here = false;
      mover_ends.fetch_add(1);
      if ((observed.load()->tmp_wr_idx.load() & sluice::detail::pbuf_moving) == 0)
        ended_for_mover.fetch_add(1);
    } else {
      other_ends.fetch_add(1);
    }
  }
}

constexpr std::uint32_t size_words = 16;
constexpr int producers = 3;
constexpr std::uint32_t per_producer = 4'000;

// Packets of 9 to 16 words: the buffer holds one at a time, so most
// requests find it empty with too little room before the wrap.
std::uint32_t words_for(int producer, std::uint32_t seq) {
  return 9 + (seq * 7 + static_cast<std::uint32_t>(producer)) % 8;
}

std::uint32_t payload_word(int producer, std::uint32_t seq, std::uint32_t i) {
  return (static_cast<std::uint32_t>(producer) * 0x9e3779b9u) ^ (seq * 0x85ebca6bu) ^ (i << 20);
}

TEST(PacketBufferMoveStress, OthersEndTheMovesOfStalledMoversExactAccounting) {
  marks.store(0);
  mover_ends.store(0);
  other_ends.store(0);
  ended_for_mover.store(0);
  std::uint32_t storage[size_words];
  pbuf_core core({.buffer = storage, .size = size_words});
  observed.store(&core);
  observe_hook.store(count_move_steps, std::memory_order_release);

  std::vector<std::thread> threads;
  for (int id = 0; id < producers; ++id) {
    threads.emplace_back([&core, id] {
      for (std::uint32_t seq = 0; seq < per_producer; ++seq) {
        const std::uint32_t n = words_for(id, seq);
        pbuf_span p;
        while (core.try_alloc(n, p) != pbuf_status::ok)
          std::this_thread::yield();
        // The length in the header's user bits. Atomic: the consumer may
        // be reading the header word (uncommitted, it holds the claim back).
        sluice::detail::atomic_ref<std::uint32_t>(p.words[0])
            .store(n << 2, std::memory_order_relaxed);
        p.words[1] = static_cast<std::uint32_t>(id) << 24 | seq;
        for (std::uint32_t i = 2; i < n; ++i)
          p.words[i] = payload_word(id, seq, i);
        core.commit(p.words);
      }
    });
  }

  std::uint32_t next[producers] = {};
  std::uint64_t received = 0;
  std::uint64_t bad = 0;
  // A hang guard, not a speed check: 30 s without a packet. (A run takes
  // well under a second alone, but on a loaded machine each packet may wait
  // for several threads' turns at the scheduler, since the buffer holds one
  // at a time.) A producer may be stuck inside the buffer then, so it
  // cannot be joined: say where it stopped and end the process.
  constexpr auto patience = std::chrono::seconds(30);
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (received < std::uint64_t{producers} * per_producer) {
    const pbuf_span got = core.try_claim();
    if (got.words == nullptr) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr,
                     "packet_buffer move stress: no packet for 30 s after %llu of %u packets (a "
                     "packet lost, or the buffer wedged), used %u words\n",
                     static_cast<unsigned long long>(received), producers * per_producer,
                     core.used_words());
        std::abort();
      }
      std::this_thread::yield();
      continue;
    }
    const int id = static_cast<int>(got.words[1] >> 24);
    const std::uint32_t seq = got.words[1] & 0xffffffu;
    bool ok = id >= 0 && id < producers && seq == next[id] && got.size == words_for(id, seq);
    for (std::uint32_t i = 2; ok && i < got.size; ++i)
      ok = got.words[i] == payload_word(id, seq, i);
    if (ok) {
      ++next[id];
    } else if (++bad <= 5) {
      ADD_FAILURE() << "packet " << received << ": producer " << id << " seq " << seq << " size "
                    << got.size << " is not the next intact packet";
    }
    core.free(got.words);
    ++received;
    deadline = std::chrono::steady_clock::now() + patience;
  }
  for (auto& t : threads)
    t.join();
  observe_hook.store(nullptr, std::memory_order_release);

  EXPECT_EQ(bad, 0u);
  for (int id = 0; id < producers; ++id)
    EXPECT_EQ(next[id], per_producer) << "producer " << id;
  EXPECT_EQ(core.try_claim().words, nullptr) << "a packet claimed twice, or one extra";
  EXPECT_EQ(core.used_words(), 0u);
  // Every mark is followed by its mover's own attempt to end the move (its
  // compare-and-swaps fail where another producer ended it first).
  EXPECT_GT(marks.load(), 0u) << "no move happened: the test does not test the move";
  EXPECT_EQ(mover_ends.load(), marks.load());
  EXPECT_GT(other_ends.load(), 0u) << "no producer ever met another's mark";
  EXPECT_GT(ended_for_mover.load(), 0u) << "no move was ended while its mover stalled";
  RecordProperty("marks", std::to_string(marks.load()));
  RecordProperty("ends_tried_by_others", std::to_string(other_ends.load()));
  RecordProperty("ended_for_mover", std::to_string(ended_for_mover.load()));
}

}  // namespace
