// The benchmark's delivery check must catch every way a queue can get items wrong; a
// benchmark whose check cannot fail would report speed for a broken queue.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../../bench/harness.hpp"

namespace {

using sluice::bench::make_item;
using sluice::bench::tally;
using sluice::bench::verify_exact_once;

// Producer p sent sent[p] items; deliver them all to one consumer, in order.
std::vector<tally> deliver_all(const std::vector<std::uint64_t>& sent) {
  std::vector<tally> got(1, tally(static_cast<int>(sent.size())));
  for (std::size_t p = 0; p < sent.size(); ++p) {
    for (std::uint64_t s = 0; s < sent[p]; ++s)
      got[0].add(make_item(static_cast<int>(p), s), true);
  }
  return got;
}

TEST(BenchChecker, ItemsAreNeverTheEmptyMarkerOrThePoisonPill) {
  EXPECT_NE(make_item(0, 0), 0u);
  EXPECT_NE(make_item(0, 0), sluice::bench::poison);
  EXPECT_NE(make_item(1, 0), make_item(0, 0));
  EXPECT_NE(make_item(0, 1), make_item(0, 0));
}

TEST(BenchChecker, ExactDeliveryPasses) {
  const std::vector<std::uint64_t> sent{5, 0, 1000};
  EXPECT_EQ(verify_exact_once(sent, deliver_all(sent)), "");
}

TEST(BenchChecker, ExactDeliverySplitOverConsumersPasses) {
  const std::vector<std::uint64_t> sent{7, 9};
  std::vector<tally> got(3, tally(2));
  int next = 0;
  for (int p = 0; p < 2; ++p) {
    for (std::uint64_t s = 0; s < sent[static_cast<std::size_t>(p)]; ++s) {
      got[static_cast<std::size_t>(next++ % 3)].add(make_item(p, s), true);
    }
  }
  EXPECT_EQ(verify_exact_once(sent, got), "");
}

TEST(BenchChecker, LostItemFails) {
  const std::vector<std::uint64_t> sent{4, 4};
  std::vector<tally> got(1, tally(2));
  for (std::uint64_t s = 0; s < 4; ++s)
    got[0].add(make_item(0, s), true);
  for (std::uint64_t s = 0; s < 4; ++s) {
    if (s != 2) got[0].add(make_item(1, s), true);
  }
  const std::string e = verify_exact_once(sent, got);
  EXPECT_NE(e.find("producer 1"), std::string::npos) << e;
  EXPECT_NE(e.find("lost"), std::string::npos) << e;
}

TEST(BenchChecker, DuplicatedItemFails) {
  const std::vector<std::uint64_t> sent{3};
  std::vector<tally> got = deliver_all(sent);
  got.emplace_back(1);
  got[1].add(make_item(0, 1), true);
  const std::string e = verify_exact_once(sent, got);
  EXPECT_NE(e.find("duplicated"), std::string::npos) << e;
}

TEST(BenchChecker, DuplicateHidingALossFailsOnTheChecksum) {
  const std::vector<std::uint64_t> sent{3};
  std::vector<tally> got(2, tally(1));
  got[0].add(make_item(0, 0), true);
  got[0].add(make_item(0, 1), true);
  got[1].add(make_item(0, 1), true);  // item 2 lost, item 1 twice: the count still matches
  const std::string e = verify_exact_once(sent, got);
  EXPECT_NE(e.find("checksum"), std::string::npos) << e;
}

TEST(BenchChecker, CorruptedItemFails) {
  const std::vector<std::uint64_t> sent{2};
  std::vector<tally> got = deliver_all(sent);
  got[0].add(make_item(7, 0), true);  // names a producer that does not exist
  const std::string e = verify_exact_once(sent, got);
  EXPECT_NE(e.find("no producer"), std::string::npos) << e;
}

TEST(BenchChecker, PerProducerReorderFailsWhereChecked) {
  const std::vector<std::uint64_t> sent{3};
  std::vector<tally> got(1, tally(1));
  got[0].add(make_item(0, 0), true);
  got[0].add(make_item(0, 2), true);
  got[0].add(make_item(0, 1), true);
  const std::string e = verify_exact_once(sent, got);
  EXPECT_NE(e.find("order"), std::string::npos) << e;

  std::vector<tally> unchecked(1, tally(1));
  unchecked[0].add(make_item(0, 0), false);
  unchecked[0].add(make_item(0, 2), false);
  unchecked[0].add(make_item(0, 1), false);
  EXPECT_EQ(verify_exact_once(sent, unchecked), "");
}

}  // namespace
