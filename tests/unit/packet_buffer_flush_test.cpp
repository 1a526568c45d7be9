// panic_flush: a context that took over drains what is committed without
// the consumer, starting where the consumer would (following the move of
// an empty buffer to slot 0, which the consumer may not have followed
// yet), and frees what it drained, so that the buffer works afterwards.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include "pbuf_test_support.hpp"

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;
using sluice::detail::pbuf_valid;

constexpr std::uint32_t size_words = 8;

struct flushed_packet {
  std::uint32_t first_payload_word;
  std::uint32_t words;
  bool operator==(const flushed_packet&) const = default;
};

void collect(void* context, const std::uint32_t* packet, std::uint32_t words) noexcept {
  static_cast<std::vector<flushed_packet>*>(context)->push_back({packet[1], words});
}

class PacketBufferFlush : public testing::TestWithParam<bool> {
 protected:
  std::uint32_t storage[size_words]{};
  pbuf_core core{{.buffer = storage,
                  .size = size_words,
                  .flags = GetParam() ? sluice::detail::pbuf_flag_overwrite : 0u}};

  // A committed packet of n words whose payload words all read `fill`.
  void put(std::uint32_t n, std::uint32_t fill) {
    pbuf_span p;
    ASSERT_EQ(core.try_alloc(n, p), pbuf_status::ok);
    for (std::uint32_t i = 1; i < n; ++i)
      p.words[i] = fill;
    sluice::test::commit_with_length(core, p);
  }

  std::vector<flushed_packet> flush() {
    std::vector<flushed_packet> seen;
    const std::uint32_t count = core.panic_flush(collect, &seen);
    EXPECT_EQ(count, seen.size());
    return seen;
  }
};

TEST_P(PacketBufferFlush, FollowsTheMoveToSlotZero) {
  sluice::test::make_empty_at(core, 5);
  put(6, 11);  // 6 words do not fit in the 3 before the wrap: moves to slot 0
  put(2, 22);
  EXPECT_EQ(flush(), (std::vector<flushed_packet>{{11, 6}, {22, 2}}));
  EXPECT_EQ(core.used_words(), 0u);
  EXPECT_EQ(core.try_claim().words, nullptr);
}

TEST_P(PacketBufferFlush, FollowsTheMoveToSlotZeroWherePayloadReadsAsAHeader) {
  sluice::test::make_empty_at(core, 5);
  // Each payload word reads as a committed 2-word packet's header; the
  // word at slot 5, where the consumer last stood, is one of them.
  constexpr std::uint32_t looks_committed = (2u << 2) | pbuf_valid;
  put(6, looks_committed);
  put(2, 22);
  EXPECT_EQ(flush(), (std::vector<flushed_packet>{{looks_committed, 6}, {22, 2}}));
}

TEST_P(PacketBufferFlush, FreesWhatItDrained) {
  put(4, 1);
  put(4, 2);  // full
  EXPECT_EQ(flush(), (std::vector<flushed_packet>{{1, 4}, {2, 4}}));
  EXPECT_EQ(core.used_words(), 0u);
  pbuf_span p;
  ASSERT_EQ(core.try_alloc(1, p), pbuf_status::ok);
  EXPECT_EQ(core.used_words(), 1u);
  core.abandon(p.words, 1);
  EXPECT_EQ(core.try_claim().words, nullptr);
}

TEST_P(PacketBufferFlush, FreesUpToAPacketTheConsumerStillHolds) {
  put(2, 1);
  put(2, 2);
  const pbuf_span held = core.try_claim();  // the consumer was stopped holding it
  ASSERT_EQ(held.words, storage);
  put(2, 3);
  EXPECT_EQ(flush(), (std::vector<flushed_packet>{{2, 2}, {3, 2}}));
  EXPECT_EQ(core.used_words(), 6u) << "the held packet keeps what follows it";
  core.free(held.words);
  EXPECT_EQ(core.used_words(), 0u);
  pbuf_span p;
  EXPECT_EQ(core.try_alloc(size_words, p), pbuf_status::ok);
}

INSTANTIATE_TEST_SUITE_P(Policies, PacketBufferFlush, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "Overwrite" : "NoOverwrite";
                         });

}  // namespace
