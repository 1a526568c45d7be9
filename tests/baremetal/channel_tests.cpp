// The channel on four cores: try/blocking forms, FIFO, close, and MPMC
// traffic with exact counts.
#include <cstdint>

#include <sluice/channel.hpp>
#include <sluice/detail/atomic.hpp>
#include <sluice/port.hpp>

#include "runner.hpp"

namespace {

using sluice::detail::atomic;

TEST_CASE(channel_try_forms_fifo_and_close) {
  static constinit sluice::static_channel<std::uint32_t, 4> ch;
  for (std::uint32_t i = 1; i <= 4; ++i)
    CHECK(static_cast<bool>(ch.try_send(i)));
  auto full = ch.try_send(5u);
  CHECK(!full && full.error() == sluice::send_error::full);
  CHECK_EQ(std::move(full).value_back(), 5u);
  for (std::uint32_t i = 1; i <= 2; ++i) {
    auto r = ch.try_recv();
    CHECK(r && *r == i);
  }
  ch.close();
  CHECK(ch.try_send(6u).error() == sluice::send_error::closed);
  for (std::uint32_t i = 3; i <= 4; ++i) {  // what was sent before close still arrives
    auto r = ch.recv();
    CHECK(r && *r == i);
  }
  CHECK(ch.try_recv().error() == sluice::recv_error::closed);
  CHECK(ch.recv().error() == sluice::recv_error::closed);
}

TEST_CASE(channel_timeouts_end_at_the_deadline) {
  static constinit sluice::static_channel<std::uint32_t, 1> ch;
  const sluice::time_point start = sluice::port::now();
  CHECK(ch.recv_for(sluice::duration{2'000'000}).error() == sluice::recv_error::timeout);
  CHECK(sluice::port::now() >= start + sluice::duration{2'000'000});
  CHECK(static_cast<bool>(ch.send(1u)));
  CHECK(ch.send_for(2u, sluice::duration{1'000'000}).error() == sluice::send_error::timeout);
  auto r = ch.recv_for(sluice::duration{1'000'000});
  CHECK(r && *r == 1u);
}

// Two producer cores and two consumer cores with the blocking forms on a
// small channel; the last producer closes it and the consumers drain to
// `closed`. Every message arrives exactly once; each consumer sees each
// producer's messages in order.
constexpr std::uint32_t blocking_messages = 20000;  // per producer

struct blocking_state {
  sluice::static_channel<std::uint32_t, 8> ch;
  atomic<std::uint32_t> producers_left{2};
  atomic<std::uint32_t> received[2]{};      // per producer
  atomic<std::uint64_t> sequence_sum[2]{};  // per producer
  atomic<std::uint32_t> out_of_order{0};
};

void blocking_core(unsigned core, void* context) noexcept {
  auto& s = *static_cast<blocking_state*>(context);
  if (core < 2) {
    for (std::uint32_t i = 0; i < blocking_messages; ++i)
      if (!CHECK(static_cast<bool>(s.ch.send(core << 24 | i)))) return;
    // acq_rel: the last producer closes after both finished sending.
    if (s.producers_left.fetch_sub(1, std::memory_order_acq_rel) == 1) s.ch.close();
    return;
  }
  std::uint32_t next[2] = {0, 0};
  for (;;) {
    auto r = s.ch.recv();
    if (!r) {
      CHECK(r.error() == sluice::recv_error::closed);
      return;
    }
    const std::uint32_t producer = *r >> 24;
    const std::uint32_t seq = *r & 0xffffff;
    if (!CHECK(producer < 2)) continue;
    if (seq < next[producer]) s.out_of_order.fetch_add(1, std::memory_order_relaxed);
    next[producer] = seq + 1;
    // Relaxed: totals read after the rendezvous.
    s.received[producer].fetch_add(1, std::memory_order_relaxed);
    s.sequence_sum[producer].fetch_add(seq, std::memory_order_relaxed);
  }
}

TEST_CASE(channel_blocking_mpmc_2x2_cores_exact) {
  static blocking_state s;
  runner::on_all_cores(&blocking_core, &s);
  const std::uint64_t expected_sum = std::uint64_t{blocking_messages} * (blocking_messages - 1) / 2;
  for (int p = 0; p < 2; ++p) {
    CHECK_EQ(s.received[p].load(std::memory_order_relaxed), blocking_messages);
    CHECK_EQ(s.sequence_sum[p].load(std::memory_order_relaxed), expected_sum);
  }
  CHECK_EQ(s.out_of_order.load(std::memory_order_relaxed), 0u);
}

// Every core sends and receives with the try forms until all messages
// went through: each of the 4 x N values is received exactly once.
constexpr std::uint32_t try_messages = 10000;  // per core

struct try_state {
  sluice::static_channel<std::uint32_t, 16> ch;
  atomic<std::uint32_t> received_total{0};
  atomic<std::uint32_t> seen[4][try_messages / 32 + 1]{};  // one bit per message
  atomic<std::uint32_t> duplicates{0};
};

void try_core(unsigned core, void* context) noexcept {
  auto& s = *static_cast<try_state*>(context);
  std::uint32_t sent = 0;
  // Relaxed: a progress count; the values themselves come through the channel.
  while (s.received_total.load(std::memory_order_relaxed) != 4 * try_messages) {
    if (sent < try_messages && s.ch.try_send(core << 24 | sent)) ++sent;
    if (auto r = s.ch.try_recv()) {
      const std::uint32_t from = *r >> 24;
      const std::uint32_t seq = *r & 0xffffff;
      if (!CHECK(from < 4 && seq < try_messages)) continue;
      const std::uint32_t bit = 1u << (seq % 32);
      // Relaxed: a set of seen values, read after the rendezvous.
      if (s.seen[from][seq / 32].fetch_or(bit, std::memory_order_relaxed) & bit)
        s.duplicates.fetch_add(1, std::memory_order_relaxed);
      s.received_total.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

TEST_CASE(channel_try_mpmc_all_4_cores_exactly_once) {
  static try_state s;
  runner::on_all_cores(&try_core, &s);
  CHECK_EQ(s.duplicates.load(std::memory_order_relaxed), 0u);
  std::uint32_t missing = 0;
  for (std::uint32_t c = 0; c < 4; ++c)
    for (std::uint32_t i = 0; i < try_messages; ++i)
      if ((s.seen[c][i / 32].load(std::memory_order_relaxed) & (1u << (i % 32))) == 0) ++missing;
  CHECK_EQ(missing, 0u);
  CHECK(s.ch.try_recv().error() == sluice::recv_error::empty);
}

}  // namespace
