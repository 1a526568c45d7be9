// Channel awaitables under cancellation on a real executor (2 workers):
// sender and receiver tasks are cancelled at random mid-stream and replaced,
// some receivers cancel themselves in the window between a ready poll and
// the resume, and at the end the receivers are cancelled with values still
// in the channel, which the channel destroys when it is dropped. The test
// thread paces the stream: each round releases a slice of the ids and
// cancels one task, so cancellations land mid-stream however fast the
// executor runs (a free-running stream can end before the first one). An exact
// ledger (tests/support/delivery_ledger.hpp) then wants every value that was
// sent received exactly once or destroyed exactly once by the channel's
// drop, and every value whose send never completed destroyed exactly once
// with its sender. A watchdog turns a lost wake-up into a failure.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <random>
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
using sluice::test::cancel_self_after_ready;
using sluice::test::delivery_ledger;
using sluice::test::ledger_value;

struct shared_counts {
  std::atomic<int> next_id{0};
  std::atomic<int> released{0};       // ids below this may be taken (the test thread raises it)
  std::atomic<long> closed_sends{0};  // must stay 0: nobody closes before the end
};

task<void> send_values(sender<ledger_value>& tx, delivery_ledger& ledger, shared_counts& counts,
                       int total) {
  for (int i = 1;; ++i) {
    // Takes the next id once the test thread has released it.
    // Relaxed: the id only has to be unique; the ledger's counters are atomic.
    int id = counts.next_id.load(std::memory_order_relaxed);
    for (;;) {
      if (id >= total) co_return;
      if (id >= counts.released.load(std::memory_order_relaxed)) {
        co_await sluice::sleep_for(50us);
        id = counts.next_id.load(std::memory_order_relaxed);
      } else if (counts.next_id.compare_exchange_weak(id, id + 1, std::memory_order_relaxed)) {
        break;
      }
    }
    auto r = co_await tx.send_async(ledger_value(ledger, id));
    if (!r) {
      counts.closed_sends.fetch_add(1, std::memory_order_relaxed);
      co_return;
    }
    ledger.sent(id);
    // An unbounded send never suspends: yield so that cancellations land
    // and the receivers keep up (the stream stays a stream).
    if (i % 16 == 0) co_await sluice::yield();
    while (tx.approx_size() > 32)
      co_await sluice::yield();
  }
}

// Takes a received value; false once the channel reports closed.
bool consume(sluice::recv_result<ledger_value> r) {
  if (!r) return false;
  (void)r->take();
  return true;
}

// Receives until cancelled; every `self_cancel_every`-th receive (0: never)
// cancels its own task between the ready poll and the resume.
task<void> receive_values(receiver<ledger_value>& rx, int self_cancel_every) {
  for (int i = 1;; ++i) {
    const bool got = self_cancel_every != 0 && i % self_cancel_every == 0
                         ? consume(co_await cancel_self_after_ready{rx.recv_async()})
                         : consume(co_await rx.recv_async());
    if (!got) co_return;  // closed: not expected before the end
    if (i % 16 == 0) co_await sluice::yield();
  }
}

template <class MakeChannel>
void run_cancellation_stress(MakeChannel make_channel, const char* what) {
  const int total = 50000 / sluice::test::sanitizer_scale;
  constexpr std::size_t senders = 2;
  constexpr std::size_t receivers = 3;
  // The stream takes at least this many rounds, each with one cancel
  // attempt; nearly every attempt finds its victim live.
  constexpr int rounds = 200;
  sluice::test::abort_watchdog dog(120s, what);
  delivery_ledger ledger(static_cast<std::size_t>(total));
  shared_counts counts;
  long cancels = 0;
  {
    auto [tx, rx] = make_channel();
    {
      sluice::executor ex{{.workers = 2}};
      std::vector<sluice::join_handle<void>> tx_tasks(senders);
      std::vector<sluice::join_handle<void>> rx_tasks(receivers);
      const auto spawn = [&ex](task<void> t) {
        auto h = ex.spawn(std::move(t));
        EXPECT_TRUE(h.has_value());
        return h ? std::move(h).value() : sluice::join_handle<void>{};
      };
      for (std::size_t i = 0; i < receivers; ++i)
        rx_tasks[i] = spawn(receive_values(rx, i == 0 ? 0 : static_cast<int>(5 + i)));
      for (auto& h : tx_tasks)
        h = spawn(send_values(tx, ledger, counts, total));

      std::mt19937 random(12345);
      const int slice = (total + rounds - 1) / rounds;
      const auto senders_done = [&] {
        for (auto& h : tx_tasks)
          if (h.valid() && !h.is_finished()) return false;
        return counts.next_id.load(std::memory_order_relaxed) >= total;
      };
      while (!senders_done()) {
        // Replace what has completed (cancelled, or a receiver that
        // cancelled itself); senders only while ids are left.
        for (std::size_t i = 0; i < receivers; ++i)
          if (!rx_tasks[i].valid() || rx_tasks[i].is_finished())
            rx_tasks[i] = spawn(receive_values(rx, static_cast<int>(5 + random() % 8)));
        if (counts.next_id.load(std::memory_order_relaxed) < total) {
          for (auto& h : tx_tasks)
            if (!h.valid() || h.is_finished()) h = spawn(send_values(tx, ledger, counts, total));
        }
        // Release the next slice of ids, then cancel one task at random,
        // wherever it is.
        const int released = counts.released.load(std::memory_order_relaxed);
        counts.released.store(std::min(total, released + slice), std::memory_order_relaxed);
        const std::size_t victim = random() % (senders + receivers);
        auto& h = victim < senders ? tx_tasks[victim] : rx_tasks[victim - senders];
        if (h.valid() && h.cancel()) ++cancels;
        std::this_thread::sleep_for(200us);
      }
      // Mid-stream: the receivers go with values possibly still inside.
      for (auto& h : rx_tasks)
        if (h.valid()) (void)h.cancel();
      for (auto& h : rx_tasks)
        if (h.valid()) (void)h.join();
      for (auto& h : tx_tasks)
        if (h.valid()) (void)h.join();
    }  // executor shut down: no task holds a value any more
    ledger.begin_drop();
  }  // the channel destroys what is left inside
  EXPECT_EQ(ledger.check(), "");
  EXPECT_EQ(counts.closed_sends.load(), 0);
  EXPECT_EQ(ledger.total_sent() + ledger.total_unsent(), total) << "every id attempted once";
  EXPECT_EQ(ledger.total_received() + ledger.total_dropped(), ledger.total_sent());
  EXPECT_GE(cancels, rounds / 4);
  std::printf(
      "%s: %d ids, %ld sent, %ld unsent (sender cancelled), %ld received, %ld dropped, "
      "%ld cancels\n",
      what, total, ledger.total_sent(), ledger.total_unsent(), ledger.total_received(),
      ledger.total_dropped(), cancels);
}

TEST(ChannelAsyncCancelStress, BoundedCancellationsMidStreamLoseNothing) {
  run_cancellation_stress([] { return sluice::channel<ledger_value>::bounded(8); },
                          "bounded cancellation stress");
}

TEST(ChannelAsyncCancelStress, UnboundedCancellationsMidStreamLoseNothing) {
  run_cancellation_stress([] { return sluice::channel<ledger_value>::unbounded(); },
                          "unbounded cancellation stress");
}

}  // namespace
