// The channel's timed awaits under load on a real executor (2 workers):
// sender tasks send every value with send_async_for and short deadlines,
// and a value whose send timed out comes back and is sent again, until it
// goes; receiver tasks take with recv_async_for and short deadlines, and
// now and then sleep, so that the channel fills and both kinds of timeout
// happen, many times, racing with the completions they time (the test
// thread makes sure of one of each first). An exact
// ledger (tests/support/delivery_ledger.hpp) then wants every value sent
// once and received once, never lost or doubled by a timeout, and each
// value that came back the very one that was sent. A watchdog turns a lost
// wake-up into a failure.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

#include <sluice/channel.hpp>
#include <sluice/executor.hpp>
#include <sluice/join_handle.hpp>
#include <sluice/sleep.hpp>
#include <sluice/task.hpp>

#include "delivery_ledger.hpp"
#include "executor_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::receiver;
using sluice::sender;
using sluice::task;
using sluice::test::delivery_ledger;
using sluice::test::ledger_value;

struct timed_counts {
  std::atomic<int> next_id{0};
  std::atomic<int> received{0};
  std::atomic<long> send_timeouts{0};
  std::atomic<long> recv_timeouts{0};
  std::atomic<long> wrong_value_back{0};  // must stay 0
  std::atomic<long> unexpected{0};        // closed, or an error no timed await gives: must stay 0
  std::atomic<bool> receivers_paused{false};
};

// Deadlines of 10 to 160 us: short against a receiver's sleep, so sends
// time out while the channel is full, and long enough that many complete.
sluice::duration deadline_for(int i) {
  return sluice::duration{10'000 + (i % 16) * 10'000};
}

task<void> send_timed(sender<ledger_value>& tx, delivery_ledger& ledger, timed_counts& counts,
                      int total) {
  for (int i = 0;; ++i) {
    // Relaxed: the id only has to be unique; the ledger's counters are atomic.
    const int id = counts.next_id.fetch_add(1, std::memory_order_relaxed);
    if (id >= total) co_return;
    ledger_value value(ledger, id);
    for (int attempt = 0;; ++attempt) {
      auto r = co_await tx.send_async_for(std::move(value), deadline_for(i + attempt));
      if (r) break;
      if (r.error() != sluice::send_error::timeout) {
        counts.unexpected.fetch_add(1, std::memory_order_relaxed);
        co_return;
      }
      counts.send_timeouts.fetch_add(1, std::memory_order_relaxed);
      value = std::move(r).value_back();
      if (value.id() != id) counts.wrong_value_back.fetch_add(1, std::memory_order_relaxed);
    }
    ledger.sent(id);
  }
}

task<void> receive_timed(receiver<ledger_value>& rx, timed_counts& counts, int total) {
  for (int i = 0; counts.received.load(std::memory_order_relaxed) < total; ++i) {
    // Relaxed: a pacing hint from the test thread.
    if (counts.receivers_paused.load(std::memory_order_relaxed)) {
      co_await sluice::sleep_for(100us);
      continue;
    }
    auto r = co_await rx.recv_async_for(deadline_for(i));
    if (!r) {
      if (r.error() == sluice::recv_error::timeout) {
        counts.recv_timeouts.fetch_add(1, std::memory_order_relaxed);
      } else {
        counts.unexpected.fetch_add(1, std::memory_order_relaxed);
        co_return;
      }
      continue;
    }
    (void)r->take();
    counts.received.fetch_add(1, std::memory_order_relaxed);
    // Now and then a pause longer than most deadlines: the senders' sends
    // time out against a full channel meanwhile.
    if (i % 64 == 0) co_await sluice::sleep_for(200us);
  }
}

void run_timed_stress(std::size_t capacity, const char* what) {
  const int total = 40000 / sluice::test::sanitizer_scale;
  constexpr std::size_t senders = 3;
  constexpr std::size_t receivers = 2;
  sluice::test::abort_watchdog dog(120s, what);
  delivery_ledger ledger(static_cast<std::size_t>(total));
  timed_counts counts;
  {
    auto [tx, rx] = sluice::channel<ledger_value>::bounded(capacity);
    sluice::executor ex{{.workers = 2}};
    std::vector<sluice::join_handle<void>> tasks;
    const auto spawn = [&](task<void> t) {
      auto h = ex.spawn(std::move(t));
      ASSERT_TRUE(h.has_value());
      tasks.push_back(std::move(h).value());
    };
    // Both kinds of timeout, for certain, before the stream runs free:
    // receivers alone on the empty channel time out; then, with the
    // receivers paused, the senders fill it and time out.
    const auto wait_for = [](const std::atomic<long>& n) {
      while (n.load(std::memory_order_relaxed) == 0)
        std::this_thread::sleep_for(100us);
    };
    for (std::size_t i = 0; i < receivers; ++i)
      spawn(receive_timed(rx, counts, total));
    wait_for(counts.recv_timeouts);
    counts.receivers_paused.store(true, std::memory_order_relaxed);
    for (std::size_t i = 0; i < senders; ++i)
      spawn(send_timed(tx, ledger, counts, total));
    wait_for(counts.send_timeouts);
    counts.receivers_paused.store(false, std::memory_order_relaxed);
    for (auto& h : tasks)
      EXPECT_TRUE(h.join().has_value());
  }
  EXPECT_EQ(ledger.check(), "");
  EXPECT_EQ(ledger.total_sent(), total);
  EXPECT_EQ(ledger.total_received(), total);
  EXPECT_EQ(counts.wrong_value_back.load(), 0);
  EXPECT_EQ(counts.unexpected.load(), 0);
  std::printf(
      "%s: %d values, %ld send timeouts (each value back and sent again), %ld recv timeouts\n",
      what, total, counts.send_timeouts.load(), counts.recv_timeouts.load());
}

TEST(ChannelTimedStress, TimedOutSendsHandEveryValueBackAndNothingIsLostOrDoubled) {
  run_timed_stress(4, "timed send/recv stress, capacity 4");
}

TEST(ChannelTimedStress, TheSameWithOneSlot) {
  run_timed_stress(1, "timed send/recv stress, capacity 1");
}

}  // namespace
