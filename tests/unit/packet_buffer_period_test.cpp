// Positions run over [0, period) and start again at 0 there (pbuf_core.hpp,
// "Positions"). For a power-of-two size the period is 2^31 and the fast
// paths take positions, distances and slots as masks; for other sizes it
// is the largest multiple of the size up to 2^31, and they compare. A
// buffer reaches that point only after about 2^31 words, so these tests
// start an empty engine's positions just before it and run packets
// through it, for both kinds of size and both policies: each packet in
// its slot, whole, in order (or dropped oldest first, and reported), the
// figures right, and every position below the period. With overwrite the
// consumer sometimes holds a packet claimed while producers allocate, so
// that droppers step over it near and across the period's end.
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include "pbuf_test_support.hpp"

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_moving;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

struct shape_case {
  std::uint32_t size;
  bool overwrite;
};

class PacketBufferPeriod : public ::testing::TestWithParam<shape_case> {};

struct expected_packet {
  std::uint32_t offset;  // its slot: words from the start of the storage
  std::uint32_t size;
  std::uint32_t id;
};

// The packets dropped by an overwrite, as the drop callback reports them.
struct drop_log {
  const std::uint32_t* storage;
  std::vector<expected_packet> dropped;
  static void on_drop(void* context, const std::uint32_t* packet, std::uint32_t words) noexcept {
    auto* self = static_cast<drop_log*>(context);
    self->dropped.push_back(
        {static_cast<std::uint32_t>(packet - self->storage), words, words >= 2 ? packet[1] : 0});
  }
};

// Moves every position of a new, empty engine to `pos`, as if that many
// words had been through it. Relaxed: nothing else runs on it yet.
void start_positions_at(pbuf_core& core, std::uint32_t pos) {
  ASSERT_EQ(core.used_words(), 0u);
  core.tmp_wr_idx.store(pos, std::memory_order_relaxed);
  core.rd_seen.store(pos, std::memory_order_relaxed);
  core.tmp_rd_idx.store(pos, std::memory_order_relaxed);
  core.wr_idx.store(pos, std::memory_order_relaxed);
  core.wr_seen = pos;
  core.rd_idx.store(pos, std::memory_order_relaxed);
}

// Every index below the period (a move to slot 0 may mark tmp_wr_idx).
void expect_positions_in_period(const pbuf_core& core) {
  // Relaxed: read between operations, on the thread that made them.
  EXPECT_LT(core.tmp_wr_idx.load(std::memory_order_relaxed) & ~pbuf_moving, core.period);
  EXPECT_LT(core.tmp_rd_idx.load(std::memory_order_relaxed), core.period);
  EXPECT_LT(core.rd_idx.load(std::memory_order_relaxed), core.period);
  EXPECT_LT(core.wr_seen, core.period);
}

// Claims the oldest packet and checks it against `e`; `got` is what was
// claimed.
void claim_checking(pbuf_core& core, const std::uint32_t* storage, const expected_packet& e,
                    pbuf_span& got) {
  got = core.try_claim();
  ASSERT_NE(got.words, nullptr) << "packet " << e.id << " not claimed";
  ASSERT_EQ(got.words - storage, e.offset) << "packet " << e.id;
  ASSERT_EQ(got.size, e.size) << "packet " << e.id;
  for (std::uint32_t i = 1; i < got.size; ++i)
    ASSERT_EQ(got.words[i], e.id ^ (i - 1)) << "packet " << e.id << ", word " << i;
}

// The same, and frees it.
void claim_expecting(pbuf_core& core, const std::uint32_t* storage, const expected_packet& e) {
  pbuf_span got;
  claim_checking(core, storage, e, got);
  if (got.words != nullptr) core.free(got.words);
}

// One run from `before` words before the period's end, packets and
// choices drawn from `seed`.
void run_past_the_end(std::uint32_t size, bool overwrite, std::uint32_t before,
                      std::uint32_t seed) {
  std::vector<std::uint32_t> storage(size, 0);
  drop_log drops{storage.data(), {}};
  pbuf_core core({.buffer = storage.data(),
                  .size = size,
                  .flags = overwrite ? sluice::detail::pbuf_flag_overwrite : 0u,
                  .drop = &drop_log::on_drop,
                  .context = &drops});
  ASSERT_EQ(core.period % size, 0u);
  const bool pow2 = (size & (size - 1)) == 0;
  if (pow2) {
    ASSERT_EQ(core.period, 1u << 31);
  }
  const std::uint32_t start = core.period - before;
  start_positions_at(core, start);

  std::mt19937 rng(seed);
  std::deque<expected_packet> in_buffer;
  std::uint32_t next_id = 1;
  std::uint32_t wraps = 0;
  std::uint32_t last_wr = start;
  // With overwrite: a packet the consumer holds claimed (not in in_buffer,
  // never dropped), freed later, out of turn with the claims after it.
  // Its words must be as claimed when it is freed: stepped over, never
  // written over.
  pbuf_span held{};
  std::uint32_t held_id = 0;
  std::uint32_t holds = 0;
  const auto let_go = [&] {
    for (std::uint32_t i = 1; i < held.size; ++i)
      EXPECT_EQ(held.words[i], held_id ^ (i - 1)) << "held packet " << held_id << ", word " << i;
    core.free(held.words);
    held = pbuf_span{};
  };
  for (int step = 0; step < 4000; ++step) {
    if (rng() % 3 != 0) {
      const std::uint32_t n = 1 + rng() % size;
      drops.dropped.clear();
      pbuf_span p;
      const pbuf_status s = core.try_alloc(n, p);
      // Dropped: the oldest, in order, whole; each once. (An allocation
      // that meets the held packet a second time gives up, keeping what it
      // dropped before: dropped and reported all the same.)
      for (const expected_packet& d : drops.dropped) {
        ASSERT_FALSE(in_buffer.empty()) << "dropped packet " << d.id << " was not in the buffer";
        const expected_packet& oldest = in_buffer.front();
        if (d.size >= 2) {
          ASSERT_EQ(d.id, oldest.id);  // payload word 1
        }
        ASSERT_EQ(d.offset, oldest.offset);
        ASSERT_EQ(d.size, oldest.size);
        in_buffer.pop_front();
      }
      if (s == pbuf_status::no_room && held.words != nullptr) {
        // The room behind the held packet (stepped over, never dropped)
        // was not enough: it goes now.
        let_go();
        continue;
      }
      if (s == pbuf_status::no_room) {
        ASSERT_FALSE(overwrite) << "an overwrite of a buffer with nothing claimed made no room";
        ASSERT_FALSE(in_buffer.empty()) << n << " words found no room in an empty buffer";
        claim_expecting(core, storage.data(), in_buffer.front());
        in_buffer.pop_front();
        continue;
      }
      ASSERT_EQ(s, pbuf_status::ok);
      const std::uint32_t id = next_id++;
      for (std::uint32_t i = 1; i < n; ++i)
        p.words[i] = id ^ (i - 1);
      sluice::test::commit_with_length(core, p);
      in_buffer.push_back({static_cast<std::uint32_t>(p.words - storage.data()), n, id});
      // Relaxed: this thread's own stores.
      const std::uint32_t wr = core.tmp_wr_idx.load(std::memory_order_relaxed);
      if (wr < last_wr) ++wraps;
      last_wr = wr;
    } else if (held.words != nullptr && rng() % 2 == 0) {
      let_go();
    } else if (!in_buffer.empty()) {
      if (overwrite && held.words == nullptr && rng() % 4 == 0) {
        claim_checking(core, storage.data(), in_buffer.front(), held);
        held_id = in_buffer.front().id;
        ++holds;
      } else {
        claim_expecting(core, storage.data(), in_buffer.front());
      }
      in_buffer.pop_front();
    }
    if (::testing::Test::HasFatalFailure()) return;
    expect_positions_in_period(core);
    EXPECT_EQ(core.is_pending(), !in_buffer.empty());
    EXPECT_LE(core.used_words(), size);
    if (in_buffer.empty() && held.words == nullptr) {
      // A freed packet that had been stepped over is padding ahead of the
      // claim position, holding its words until a claim passes it.
      EXPECT_EQ(core.try_claim().words, nullptr);
      EXPECT_EQ(core.used_words(), 0u);
    }
  }
  if (held.words != nullptr) let_go();
  if (overwrite) {
    EXPECT_GT(holds, 0u) << "no packet was held claimed while others were allocated";
  }
  while (!in_buffer.empty()) {
    claim_expecting(core, storage.data(), in_buffer.front());
    in_buffer.pop_front();
  }
  EXPECT_EQ(core.try_claim().words, nullptr);
  EXPECT_EQ(core.used_words(), 0u);
  // The run went past the end of the period (once: 2^31 words more would
  // take it round again).
  EXPECT_EQ(wraps, 1u);
}

TEST_P(PacketBufferPeriod, PacketsPassThePeriodsEndWhole) {
  const auto [size, overwrite] = GetParam();
  // From three laps before the end, and a few words off a lap, so that the
  // end comes within each run at different points of the packets.
  for (std::uint32_t seed = 1; seed <= 16; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    run_past_the_end(size, overwrite, 3 * size + seed % size, seed * 2 + (overwrite ? 1 : 0));
    if (::testing::Test::HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, PacketBufferPeriod,
                         ::testing::Values(shape_case{1, false}, shape_case{2, false},
                                           shape_case{8, false}, shape_case{16, false},
                                           shape_case{64, false}, shape_case{3, false},
                                           shape_case{11, false}, shape_case{40, false},
                                           shape_case{1, true}, shape_case{2, true},
                                           shape_case{8, true}, shape_case{16, true},
                                           shape_case{64, true}, shape_case{3, true},
                                           shape_case{11, true}, shape_case{40, true}),
                         [](const ::testing::TestParamInfo<shape_case>& info) {
                           return std::string(info.param.overwrite ? "Overwrite" : "NoOverwrite") +
                                  "Size" + std::to_string(info.param.size);
                         });

}  // namespace
