// The packet buffer on bare metal: alloc/commit/claim/free, wrap-around,
// both overflow policies with exact drop counts, three producer cores
// feeding one consumer, and producer and consumer tasks on the executor
// waiting in alloc_async and claim_async.
#include <cstdint>
#include <utility>

#include <sluice/detail/atomic.hpp>
#include <sluice/executor.hpp>
#include <sluice/frame_pool.hpp>
#include <sluice/packet_buffer.hpp>
#include <sluice/port.hpp>
#include <sluice/task.hpp>

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

// With IRQs masked (a critical section, as in an interrupt handler) the
// timed forms make one try: nothing on this core could make room or commit
// while it waits (port::may_block() false). An alloc that waited would
// poll the counter to its deadline and answer timeout, not no_room (the
// claim's answer, nothing, is the same either way: it only shows the one
// try is made).
TEST_CASE(pbuf_timed_forms_make_one_try_with_irqs_masked) {
  static std::uint32_t words[8];
  sluice::packet_buffer pb({.storage = words, .size_words = 8});
  CHECK(sluice::port::may_block());
  for (int i = 0; i < 2; ++i) {
    auto p = pb.try_alloc(4);
    if (!CHECK(p.has_value())) return;
    std::move(*p).commit();
  }
  {
    const sluice::critical_section masked;
    CHECK(!sluice::port::may_block());
    auto p = pb.alloc_for(4, sluice::duration{500'000'000});
    CHECK(!p && p.error() == sluice::alloc_error::no_room);
  }
  for (int i = 0; i < 2; ++i) {
    sluice::claimed_packet c = pb.try_claim();
    CHECK(c);
  }
  const sluice::critical_section masked;
  CHECK(!pb.claim_for(sluice::duration{500'000'000}));
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

// Tasks on the executor (workers on cores 1 to 3, core 0 joins): three
// producer tasks wait in alloc_async on a buffer that holds two packets,
// one consumer task waits in claim_async for each; in both policies every
// packet is claimed once, in order per producer, and none is dropped.
constexpr std::uint32_t async_packets = 400;  // per producer
constexpr std::uint32_t async_max_tasks = 8;
constexpr std::size_t async_frame_block = 512;

struct async_state {
  alignas(sluice::frame_pool::block_alignment)
      std::byte storage[sluice::frame_pool::storage_for(async_frame_block, 2 * async_max_tasks)];
  sluice::frame_pool pool{storage, sizeof storage, async_frame_block};
  sluice::run_queue_slot queue[async_max_tasks];
  std::uint32_t words[8];
  sluice::packet_buffer* pb = nullptr;
  sluice::executor* ex = nullptr;
  std::uint32_t received[3] = {};  // the consumer task's
  std::uint32_t wrong = 0;         // the consumer task's
  atomic<std::uint32_t> failed{0};
};

sluice::task<std::uint32_t> async_producer(sluice::frame_pool&, async_state& s, std::uint32_t pid) {
  for (std::uint32_t seq = 0; seq < async_packets; ++seq) {
    auto a = co_await s.pb->alloc_async(4);
    if (!a) {
      s.failed.fetch_add(1, std::memory_order_relaxed);  // read after the joins
      co_return seq;
    }
    a->payload()[0] = pid;
    a->payload()[1] = seq;
    a->payload()[2] = ~seq;
    std::move(*a).commit();
  }
  co_return async_packets;
}

constexpr std::uint32_t async_sentinel = 99;  // the last packet, from core 0

// Claims until the sentinel; a wrong packet is counted and claiming goes on
// (so that the producers never wait for ever). Returns the packets before
// the sentinel.
sluice::task<std::uint32_t> async_consumer(sluice::frame_pool&, async_state& s) {
  std::uint32_t total = 0;
  for (;;) {
    sluice::claimed_packet c = co_await s.pb->claim_async();
    const std::uint32_t pid = c.payload()[0];
    if (pid == async_sentinel) co_return total;
    ++total;
    if (c.size() != 4 || pid > 2 || c.payload()[1] != s.received[pid] ||
        c.payload()[2] != ~c.payload()[1]) {
      ++s.wrong;
      continue;
    }
    ++s.received[pid];
  }
}

void async_core(unsigned core, void* context) noexcept {
  auto& s = *static_cast<async_state*>(context);
  if (core != 0) {
    s.ex->run_worker();  // returns at shutdown
    return;
  }
  auto consumer = s.ex->spawn(async_consumer(s.pool, s));
  if (!CHECK(consumer.has_value())) {
    // Nobody would claim: the producers would fill the buffer and the
    // joins below would wait for ever.
    s.ex->shutdown();
    return;
  }
  sluice::join_handle<std::uint32_t> producers[3];
  for (std::uint32_t pid = 0; pid < 3; ++pid) {
    auto h = s.ex->spawn(async_producer(s.pool, s, pid));
    if (CHECK(h.has_value())) producers[pid] = std::move(*h);
  }
  for (auto& h : producers) {
    if (!h.valid()) continue;
    sluice::join_result<std::uint32_t> r = h.join();  // blocks core 0
    CHECK(r.has_value() && *std::move(r) == async_packets);
  }
  // The sentinel ends the consumer whatever arrived before it (a packet
  // lost or short would otherwise leave it waiting for ever).
  auto last = s.pb->alloc_until(4, sluice::time_point::max());
  if (CHECK(last.has_value())) {
    last->payload()[0] = async_sentinel;
    std::move(*last).commit();
  }
  if (consumer) {
    sluice::join_result<std::uint32_t> r = consumer->join();
    CHECK(r.has_value() && *std::move(r) == 3 * async_packets);
  }
  s.ex->shutdown();  // the workers return
}

void async_run(sluice::overflow_policy policy) {
  static async_state states[2];  // one each: a state holds its pool, and so cannot be reset
  async_state& s = states[policy == sluice::overflow_policy::drop_oldest ? 1 : 0];
  sluice::packet_buffer pb({.storage = s.words, .size_words = 8, .policy = policy});
  sluice::executor ex{{.max_tasks = async_max_tasks,
                       .pool = &s.pool,
                       .threads = sluice::worker_threads::none,
                       .run_queue = s.queue}};
  s.pb = &pb;
  s.ex = &ex;
  runner::on_all_cores(&async_core, &s);
  CHECK_EQ(s.failed.load(std::memory_order_relaxed), 0u);
  CHECK_EQ(s.wrong, 0u);
  for (std::uint32_t pid = 0; pid < 3; ++pid)
    CHECK_EQ(s.received[pid], async_packets);
  CHECK_EQ(pb.counters().claimed, 3 * async_packets + 1);  // and the sentinel
  CHECK_EQ(pb.counters().dropped, 0u);
  CHECK(!pb.try_claim());
  CHECK_EQ(ex.approx_live_tasks(), 0u);
  CHECK_EQ(s.pool.approx_in_use(), 0u);
}

TEST_CASE(pbuf_async_producer_and_consumer_tasks_on_4_cores) {
  async_run(sluice::overflow_policy::reject_new);
}
TEST_CASE(pbuf_async_producer_and_consumer_tasks_on_4_cores_overwrite) {
  async_run(sluice::overflow_policy::drop_oldest);
}

}  // namespace
