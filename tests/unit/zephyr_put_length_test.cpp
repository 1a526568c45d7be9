// The Zephyr C API's puts (mpsc_pbuf_put_word, _put_word_ext, _put_data)
// whose words give another length, through get_wlen, than they put. Zephyr
// stores such a packet as it is put, and the consumer then reads the stream
// at the length get_wlen gives: a word that says 3 put as one word makes it
// take the next two packets for that one's payload, and they are never
// delivered. sluice names the put in a debug build and refuses it (nothing
// taken) in a release build, as its C++ puts do.
#include <zephyr/sys/mpsc_pbuf.h>

#include <cstdint>
#include <cstring>

#include <gtest/gtest.h>

#include "build_checks.hpp"
#include "zephyr_c_buffer.hpp"

namespace {

// The application's first word: the buffer's 2 header bits, then the
// length in words (as Zephyr's log messages keep it).
std::uint32_t first_word(std::uint32_t words) {
  return words << MPSC_PBUF_HDR_BITS | 1u;  // valid set, as Zephyr's put callers do
}

std::uint32_t get_wlen(const union mpsc_pbuf_generic* packet) {
  return packet->raw >> MPSC_PBUF_HDR_BITS;
}

union mpsc_pbuf_generic as_item(std::uint32_t raw) {
  union mpsc_pbuf_generic item;
  item.raw = raw;
  return item;
}

constexpr std::uint32_t pointer_words = sizeof(void*) / sizeof(std::uint32_t);

struct c_buffer : sluice::test::zephyr_c_buffer<64> {
  c_buffer() : zephyr_c_buffer(get_wlen) {}
};

void put_a_word_that_says_three() {
  c_buffer b;
  mpsc_pbuf_put_word(&b.buffer, as_item(first_word(3)));
}

void put_data_that_says_two() {
  c_buffer b;
  const std::uint32_t data[3] = {first_word(2), 7, 8};
  mpsc_pbuf_put_data(&b.buffer, data, 3);
}

TEST(ZephyrPutLengthDeathTest, APutWhoseGetWlenGivesAnotherLengthIsNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only (release, below)");
  EXPECT_DEATH(put_a_word_that_says_three(), "a put's words give another length than it puts");
  EXPECT_DEATH(put_data_that_says_two(), "a put's words give another length than it puts");
}

TEST(ZephyrPutLength, APutWhoseGetWlenGivesAnotherLengthIsRefusedInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  c_buffer b;
  mpsc_pbuf_put_word(&b.buffer, as_item(first_word(3)));
  mpsc_pbuf_put_word(&b.buffer, as_item(first_word(0)));
  static int target;
  mpsc_pbuf_put_word_ext(&b.buffer, as_item(first_word(1)), &target);
  const std::uint32_t says_two[3] = {first_word(2), 7, 8};
  mpsc_pbuf_put_data(&b.buffer, says_two, 3);
  std::uint32_t size_bytes = 0, now = 1;
  mpsc_pbuf_get_utilization(&b.buffer, &size_bytes, &now);
  EXPECT_EQ(now, 0u) << "a refused put took words";
  EXPECT_FALSE(mpsc_pbuf_is_pending(&b.buffer));

  // The same puts with their true lengths, then claimed in order.
  mpsc_pbuf_put_word(&b.buffer, as_item(first_word(1)));
  mpsc_pbuf_put_word_ext(&b.buffer, as_item(first_word(1 + pointer_words)), &target);
  const std::uint32_t says_three[3] = {first_word(3), 7, 8};
  mpsc_pbuf_put_data(&b.buffer, says_three, 3);
  const union mpsc_pbuf_generic* c = mpsc_pbuf_claim(&b.buffer);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(get_wlen(c), 1u);
  mpsc_pbuf_free(&b.buffer, c);
  c = mpsc_pbuf_claim(&b.buffer);
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(get_wlen(c), 1 + pointer_words);
  const void* pointer = nullptr;
  std::memcpy(&pointer, reinterpret_cast<const std::uint32_t*>(c) + 1, sizeof pointer);
  EXPECT_EQ(pointer, &target);
  mpsc_pbuf_free(&b.buffer, c);
  c = mpsc_pbuf_claim(&b.buffer);
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(get_wlen(c), 3u);
  EXPECT_EQ(reinterpret_cast<const std::uint32_t*>(c)[1], 7u);
  EXPECT_EQ(reinterpret_cast<const std::uint32_t*>(c)[2], 8u);
  mpsc_pbuf_free(&b.buffer, c);
  EXPECT_EQ(mpsc_pbuf_claim(&b.buffer), nullptr);
}

}  // namespace
