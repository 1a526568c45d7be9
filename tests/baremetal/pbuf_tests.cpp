// The packet buffer on bare metal: alloc/commit/claim/free, wrap-around,
// both overflow policies with exact drop counts, and three producer cores
// feeding one consumer.
#include <cstdint>
#include <utility>

#include <sluice/detail/atomic.hpp>
#include <sluice/packet_buffer.hpp>

#include "runner.hpp"

namespace {

using sluice::detail::atomic;

TEST_CASE(pbuf_alloc_commit_claim_free) {
  static std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  CHECK(!pb.try_claim());
  auto p = pb.try_alloc(3);
  if (!CHECK(p.has_value())) return;
  p->payload()[0] = 11;
  p->payload()[1] = 22;
  CHECK(!pb.try_claim());  // allocated, not committed: invisible
  std::move(*p).commit();
  CHECK(pb.is_pending());
  {
    sluice::claimed_packet c = pb.try_claim();
    CHECK(c && c.size() == 3 && c.payload()[0] == 11 && c.payload()[1] == 22);
    CHECK(!pb.try_claim());
  }  // freed
  CHECK(!pb.is_pending());
  CHECK(pb.try_alloc(17).error() == sluice::alloc_error::too_large);
  const sluice::packet_buffer_counters n = pb.counters();
  CHECK(n.committed == 1 && n.claimed == 1 && n.dropped == 0);
}

TEST_CASE(pbuf_wraps_around_with_contents_intact) {
  static std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  for (std::uint32_t i = 0; i < 200; ++i) {
    const std::uint32_t size = 2 + i % 5;  // sizes that do not divide 16
    auto p = pb.try_alloc(size);
    if (!CHECK(p.has_value())) return;
    for (std::uint32_t w = 0; w + 1 < size; ++w)
      p->payload()[w] = i * 100 + w;
    std::move(*p).commit();
    sluice::claimed_packet c = pb.try_claim();
    if (!CHECK(c && c.size() == size)) return;
    for (std::uint32_t w = 0; w + 1 < size; ++w)
      CHECK_EQ(c.payload()[w], i * 100 + w);
  }
}

TEST_CASE(pbuf_reject_new_when_full) {
  static std::uint32_t words[16];
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  std::uint32_t committed = 0;
  for (;;) {
    auto p = pb.try_alloc(4);
    if (!p) {
      CHECK(p.error() == sluice::alloc_error::no_room);
      break;
    }
    p->payload()[0] = committed++;
    std::move(*p).commit();
  }
  CHECK_EQ(committed, 4u);
  for (std::uint32_t i = 0; i < committed; ++i) {
    sluice::claimed_packet c = pb.try_claim();
    CHECK(c && c.payload()[0] == i);  // nothing dropped, in order
  }
  CHECK_EQ(pb.counters().dropped, 0u);
}

struct drop_count {
  std::uint32_t calls = 0;
  std::uint32_t last_dropped = 0;
};
void on_drop(void* context, const std::uint32_t* packet, std::uint32_t) noexcept {
  auto& d = *static_cast<drop_count*>(context);
  ++d.calls;
  d.last_dropped = packet[1];
}

TEST_CASE(pbuf_overwrite_drops_the_oldest_and_reports_each) {
  static std::uint32_t words[16];
  drop_count drops;
  sluice::packet_buffer pb({.storage = words,
                            .size_words = 16,
                            .policy = sluice::overflow_policy::drop_oldest,
                            .on_drop = &on_drop,
                            .context = &drops});
  constexpr std::uint32_t produced = 50;
  for (std::uint32_t i = 0; i < produced; ++i) {
    auto p = pb.try_alloc(3);
    if (!CHECK(p.has_value())) return;
    p->payload()[0] = i;
    std::move(*p).commit();
  }
  std::uint32_t claimed = 0;
  std::uint32_t previous = 0;
  while (sluice::claimed_packet c = pb.try_claim()) {
    const std::uint32_t seq = c.payload()[0];
    CHECK(claimed == 0 ? seq == drops.last_dropped + 1
                       : seq == previous + 1);  // the newest, in order
    previous = seq;
    ++claimed;
  }
  CHECK_EQ(previous, produced - 1);
  CHECK_EQ(claimed + drops.calls, produced);
  CHECK_EQ(pb.counters().dropped, drops.calls);
  CHECK(claimed >= 4);
}

// Three producer cores (reject_new, retrying on no_room) and core 0 as the
// consumer: every packet is claimed exactly once, each producer's in order.
constexpr std::uint32_t mpsc_packets = 5000;  // per producer

struct mpsc_state {
  std::uint32_t words[64];
  sluice::packet_buffer pb{{.storage = words, .size_words = 64}};
  std::uint32_t claimed[4] = {};
  std::uint32_t out_of_order = 0;
  atomic<std::uint32_t> alloc_failures{0};
};

void mpsc_core(unsigned core, void* context) noexcept {
  auto& s = *static_cast<mpsc_state*>(context);
  if (core != 0) {
    for (std::uint32_t i = 0; i < mpsc_packets;) {
      auto p = s.pb.try_alloc(2 + core);
      if (!p) {
        if (p.error() != sluice::alloc_error::no_room)
          s.alloc_failures.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      p->payload()[0] = core;
      p->payload()[1] = i++;
      std::move(*p).commit();
    }
    return;
  }
  std::uint32_t total = 0;
  while (total != 3 * mpsc_packets) {
    sluice::claimed_packet c = s.pb.try_claim();
    if (!c) continue;
    const std::uint32_t from = c.payload()[0];
    if (!CHECK(from >= 1 && from <= 3 && c.size() == 2 + from)) return;
    if (c.payload()[1] != s.claimed[from]) ++s.out_of_order;
    ++s.claimed[from];
    ++total;
  }
}

TEST_CASE(pbuf_three_producer_cores_one_consumer_exact) {
  static mpsc_state s;
  runner::on_all_cores(&mpsc_core, &s);
  CHECK_EQ(s.alloc_failures.load(std::memory_order_relaxed), 0u);
  CHECK_EQ(s.out_of_order, 0u);
  for (unsigned c = 1; c < 4; ++c)
    CHECK_EQ(s.claimed[c], mpsc_packets);
  CHECK(!s.pb.try_claim());
}

}  // namespace
