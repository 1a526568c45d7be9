// The consumer's calls run one at a time (without overwrite): a debug build
// names two that overlap. The second call is made at claim_looked, inside a
// claim, as a free on another thread or a second consumer would land there.
#include <cstdint>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/packet_buffer.hpp>

#include "build_checks.hpp"
#include "hooks.hpp"

namespace {

constexpr std::uint32_t size_words = 16;
const char* const overlap_message = "two consumer calls at once";

// The buffer of the call made inside the claim (a hook action takes no
// arguments).
sluice::packet_buffer* inner_buffer = nullptr;
sluice::claimed_packet* inner_claim = nullptr;

void put(sluice::packet_buffer& pb, std::uint32_t tag) {
  auto a = pb.try_alloc(2);
  if (!a) std::abort();
  a->payload()[0] = tag;
  std::move(*a).commit();
}

// Claims the first packet and keeps it, then claims again with `inner` run
// inside that claim.
void claim_with_another_call_inside(void (*inner)()) {
  std::uint32_t words[size_words];
  sluice::packet_buffer pb({.storage = words, .size_words = size_words});
  put(pb, 1);
  put(pb, 2);
  sluice::claimed_packet first = pb.try_claim();
  if (!first) std::abort();
  inner_buffer = &pb;
  inner_claim = &first;
  at_claim_looked.store(inner, std::memory_order_release);
  (void)pb.try_claim();
}

TEST(PacketBufferConsumerCallDeathTest, AFreeDuringAClaimIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only");
  EXPECT_DEATH(claim_with_another_call_inside(+[] { inner_claim->reset(); }), overlap_message);
}

TEST(PacketBufferConsumerCallDeathTest, TwoClaimsAtOnceAreNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only");
  EXPECT_DEATH(claim_with_another_call_inside(+[] { (void)inner_buffer->try_claim(); }),
               overlap_message);
}

// is_pending is no consumer call: any context may ask while the consumer
// claims (it reads one header, in a handshake with the consumer's frees).
// Asked inside a claim, after the claim's look at the next packet, it says
// that packet waits.
bool inner_answer = false;
TEST(PacketBufferConsumerCall, IsPendingDuringAClaimIsNoMisuse) {
  claim_with_another_call_inside(+[] { inner_answer = inner_buffer->is_pending(); });
  EXPECT_TRUE(inner_answer) << "the second packet was committed and not yet claimed";
}

// Calls one after another are no misuse, on any thread: the consumer may
// move between threads, and a packet may be freed where it went.
TEST(PacketBufferConsumerCall, CallsOneAfterAnotherOnOtherThreadsPass) {
  std::uint32_t words[size_words];
  sluice::packet_buffer pb({.storage = words, .size_words = size_words});
  for (std::uint32_t round = 0; round < 3 * size_words; ++round) {
    put(pb, round);
    sluice::claimed_packet c;
    std::thread([&] { c = pb.try_claim(); }).join();
    ASSERT_TRUE(c);
    EXPECT_EQ(c.payload()[0], round);
    std::thread([&] { c.reset(); }).join();
    EXPECT_FALSE(pb.is_pending());
  }
}

}  // namespace
