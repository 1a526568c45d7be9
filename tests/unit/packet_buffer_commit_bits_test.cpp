// A packet's valid and busy bits (bits 0..1 of its first word) are the
// buffer's. The valid bit alone publishes a packet (no shared write index
// moves at commit), so one that the application sets before commit (a
// whole header copied from another packet, say) lets a claim take the
// packet before its words are written, and valid with busy makes claims
// pass it as held. Debug builds name such a commit; commit itself always
// stores the header with busy clear and valid set.
#include <zephyr/sys/mpsc_pbuf.h>

#include <cstdint>

#include <gtest/gtest.h>
#include <sluice/packet_buffer.hpp>

#include "build_checks.hpp"
#include "zephyr_c_buffer.hpp"

namespace {

std::uint32_t get_wlen(const union mpsc_pbuf_generic* packet) {
  return packet->raw >> MPSC_PBUF_HDR_BITS;
}

struct c_buffer : sluice::test::zephyr_c_buffer<32> {
  c_buffer() : zephyr_c_buffer(get_wlen) {}
};

// Allocates 3 words and stores the header `bits` with the length 3, as code
// that copies a whole header would.
union mpsc_pbuf_generic* alloc_with_bits(c_buffer& b, std::uint32_t bits) {
  union mpsc_pbuf_generic* p = mpsc_pbuf_alloc(&b.buffer, 3, K_NO_WAIT);
  if (p == nullptr) std::abort();
  p->raw = 3u << MPSC_PBUF_HDR_BITS | bits;
  return p;
}

void commit_c_packet_with(std::uint32_t bits) {
  c_buffer b;
  mpsc_pbuf_commit(&b.buffer, alloc_with_bits(b, bits));
}

void commit_cpp_packet_with_valid() {
  std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  auto a = pb.try_alloc(2);
  if (!a) std::abort();
  a->words()[0] |= 1;
  std::move(*a).commit();
}

constexpr const char* bits_set = "commit of a packet whose valid or busy bit is already set";

TEST(PacketBufferCommitBitsDeathTest, ACommitOfAPacketWithItsBitsSetIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only (release, below)");
  EXPECT_DEATH(commit_c_packet_with(1), bits_set);
  EXPECT_DEATH(commit_c_packet_with(2), bits_set);
  EXPECT_DEATH(commit_c_packet_with(3), bits_set);
  EXPECT_DEATH(commit_cpp_packet_with_valid(), bits_set);
}

// Release: with no claim between, commit stores the header as committed
// (valid, busy clear) whatever bits the application left, and the packet
// is claimed once, its length intact.
TEST(PacketBufferCommitBits, CommitStoresTheHeaderAsCommittedInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  for (std::uint32_t bits = 1; bits <= 3; ++bits) {
    c_buffer b;
    mpsc_pbuf_commit(&b.buffer, alloc_with_bits(b, bits));
    const union mpsc_pbuf_generic* c = mpsc_pbuf_claim(&b.buffer);
    ASSERT_NE(c, nullptr) << "bits " << bits;
    EXPECT_EQ(get_wlen(c), 3u);
    mpsc_pbuf_free(&b.buffer, c);
    EXPECT_EQ(mpsc_pbuf_claim(&b.buffer), nullptr) << "bits " << bits;
    std::uint32_t size_bytes = 0, now = 1;
    mpsc_pbuf_get_utilization(&b.buffer, &size_bytes, &now);
    EXPECT_EQ(now, 0u) << "bits " << bits;
  }
}

}  // namespace
