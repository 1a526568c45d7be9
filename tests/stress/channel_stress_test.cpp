// Channel stress tests: real threads, exact accounting.
//
// Every value a producer tries to send is accounted for exactly once:
// received by one consumer, handed back to its sender by a failed send, or
// (when the last receiver goes) destroyed inside the channel. Per-producer
// FIFO is checked by every consumer. Each test runs under a watchdog that
// turns a lost wake-up into a failure.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sluice/channel.hpp>

#include "channel_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::recv_error;
using sluice::send_error;
using sluice::test::stress_scale;
using sluice::test::watchdog;

constexpr std::size_t unbounded = 0;  // capacity value meaning "unbounded"

struct grid_point {
  std::size_t capacity;
  int producers;
  int consumers;
};

std::string name_of(const ::testing::TestParamInfo<grid_point>& info) {
  const grid_point& g = info.param;
  std::string cap = g.capacity == unbounded ? "unbounded" : "cap" + std::to_string(g.capacity);
  return cap + "_" + std::to_string(g.producers) + "p" + std::to_string(g.consumers) + "c";
}

std::vector<grid_point> grid() {
  std::vector<grid_point> points;
  for (std::size_t cap : {std::size_t{1}, std::size_t{2}, std::size_t{1024}, unbounded}) {
    for (auto [p, c] : {std::pair{1, 1}, {2, 2}, {4, 4}, {8, 1}, {1, 8}}) {
      points.push_back({cap, p, c});
    }
  }
  return points;
}

// Per value, how it ended: received / handed back / destroyed inside.
class ledger {
 public:
  ledger(int producers, long per_producer)
      : per_producer_(per_producer),
        received_(new std::atomic<std::uint8_t>[std::size_t(producers) * per_producer]()),
        returned_(new std::atomic<std::uint8_t>[std::size_t(producers) * per_producer]()),
        discarded_(new std::atomic<std::uint8_t>[std::size_t(producers) * per_producer]()),
        producers_(producers) {}

  void received(int p, long seq) { received_[index(p, seq)].fetch_add(1); }
  void returned(int p, long seq) { returned_[index(p, seq)].fetch_add(1); }
  void discarded(int p, long seq) { discarded_[index(p, seq)].fetch_add(1); }

  // attempted[p]: how many values producer p tried to send (0..n-1).
  void check(const std::vector<long>& attempted) const {
    long errors = 0;
    for (int p = 0; p < producers_; ++p) {
      for (long s = 0; s < per_producer_; ++s) {
        const std::size_t i = index(p, s);
        const int r = received_[i].load(), b = returned_[i].load(), d = discarded_[i].load();
        const int expected = s < attempted[std::size_t(p)] ? 1 : 0;
        if (r + b + d != expected && errors++ < 10) {
          ADD_FAILURE() << "producer " << p << " value " << s << ": received " << r
                        << ", handed back " << b << ", destroyed inside " << d << " (expected "
                        << expected << " in total)";
        }
      }
    }
    EXPECT_EQ(errors, 0);
  }

 private:
  std::size_t index(int p, long seq) const {
    return std::size_t(p) * std::size_t(per_producer_) + std::size_t(seq);
  }
  long per_producer_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> received_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> returned_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> discarded_;
  int producers_;
};

// A value that reports to the ledger if it is destroyed without being
// claimed (received or handed back): i.e. destroyed inside the channel.
class item {
 public:
  item(ledger& l, int producer, long seq) : ledger_(&l), producer_(producer), seq_(seq) {}
  item(item&& other) noexcept
      : ledger_(other.ledger_), producer_(other.producer_), seq_(other.seq_), live_(other.live_) {
    other.live_ = false;
  }
  // Requires: this item was moved from (it holds no value of its own).
  item& operator=(item&& other) noexcept {
    if (live_) std::abort();
    ledger_ = other.ledger_;
    producer_ = other.producer_;
    seq_ = other.seq_;
    live_ = std::exchange(other.live_, false);
    return *this;
  }
  ~item() {
    if (live_) ledger_->discarded(producer_, seq_);
  }
  void claim() { live_ = false; }
  [[nodiscard]] int producer() const { return producer_; }
  [[nodiscard]] long seq() const { return seq_; }

 private:
  ledger* ledger_;
  int producer_;
  long seq_;
  bool live_ = true;
};

std::pair<sluice::sender<item>, sluice::receiver<item>> make_channel(std::size_t capacity) {
  return capacity == unbounded ? sluice::channel<item>::unbounded()
                               : sluice::channel<item>::bounded(capacity);
}

// How threads send and receive: each thread uses one form, so every form is
// exercised against every other.
enum class form { blocking, try_spin, timed };
form form_for(int thread_index) {
  return static_cast<form>(thread_index % 3);
}

enum class scenario { run_to_end, close_midway, drop_midway };

// Runs producers and consumers over one channel.
//   run_to_end    producers send everything, drop their senders; consumers
//                 receive until closed
//   close_midway  a closer closes the channel once a quarter of the values
//                 arrived, while producers send; a producer that reaches
//                 three quarters of its values before that waits for the
//                 close, so every producer stops at a refused send (one
//                 each: nothing ends them otherwise)
//   drop_midway   producers stop at different points and drop their
//                 senders; consumers stop after a share and drop their
//                 receivers (the last one destroys what is left inside)
void run_scenario(const grid_point& g, scenario sc) {
  const long total = 8000 / stress_scale;
  const long per_producer = total / g.producers;
  ledger book(g.producers, per_producer);
  std::vector<long> attempted(std::size_t(g.producers), 0);
  std::atomic<long> received_count{0};
  std::atomic<int> fifo_errors{0};
  // seq_cst, both: the close comes before closed_flag, and a producer's
  // send after it reads the flag is refused.
  std::atomic<bool> closed_flag{false};
  std::atomic<int> refused{0};  // producers that stopped at a closed send

  auto [tx, rx] = make_channel(g.capacity);
  // The closer's handle (close_midway); dropped before the joins so that the
  // producers' drops can close the channel.
  sluice::sender<item> closer = tx;
  watchdog dog(60s);

  std::vector<std::thread> threads;
  for (int p = 0; p < g.producers; ++p) {
    const long quota =
        sc == scenario::drop_midway ? per_producer * (p + 1) / g.producers : per_producer;
    threads.emplace_back([&, p, quota, tx = tx]() mutable {
      const form f = form_for(p);
      long s = 0;
      for (; s < quota; ++s) {
        if (sc == scenario::close_midway && s == quota * 3 / 4) {
          while (!closed_flag.load())
            std::this_thread::yield();
        }
        item value(book, p, s);
        bool sent = false;
        for (;;) {
          auto r = f == form::blocking   ? tx.send(std::move(value))
                   : f == form::try_spin ? tx.try_send(std::move(value))
                                         : tx.send_for(std::move(value), 2ms);
          if (r) {
            sent = true;
            break;
          }
          const send_error e = r.error();
          item back = std::move(r).value_back();
          if (back.producer() != p || back.seq() != s) fifo_errors.fetch_add(1);
          if (e == send_error::closed) {
            back.claim();
            book.returned(p, s);
            refused.fetch_add(1);
            break;
          }
          if (f == form::try_spin) std::this_thread::yield();
          value = std::move(back);
        }
        if (!sent) {
          ++s;
          break;
        }
      }
      attempted[std::size_t(p)] = s;
      // tx (this producer's sender) is dropped here.
    });
  }
  for (int c = 0; c < g.consumers; ++c) {
    const long share = sc == scenario::drop_midway ? total / (2 * g.consumers) : -1;
    threads.emplace_back([&, c, share, rx = rx]() mutable {
      const form f = form_for(c + 1);
      std::vector<long> last(std::size_t(g.producers), -1);
      long mine = 0;
      for (;;) {
        if (share >= 0 && mine >= share) break;
        auto r = f == form::blocking   ? rx.recv()
                 : f == form::try_spin ? rx.try_recv()
                                       : rx.recv_for(2ms);
        if (!r) {
          if (r.error() == recv_error::closed) break;
          if (f == form::try_spin) std::this_thread::yield();
          continue;
        }
        item& v = *r;
        v.claim();
        book.received(v.producer(), v.seq());
        if (v.seq() <= last[std::size_t(v.producer())]) fifo_errors.fetch_add(1);
        last[std::size_t(v.producer())] = v.seq();
        ++mine;
        received_count.fetch_add(1, std::memory_order_relaxed);
      }
      // rx (this consumer's receiver) is dropped here.
    });
  }
  tx = sluice::sender<item>{};
  rx = sluice::receiver<item>{};
  if (sc == scenario::close_midway) {
    while (received_count.load(std::memory_order_relaxed) < total / 4)
      std::this_thread::yield();
    closer.close();
    closed_flag.store(true);
  }
  closer = sluice::sender<item>{};
  for (auto& t : threads)
    t.join();

  EXPECT_EQ(fifo_errors.load(), 0) << "per-producer FIFO broken or a wrong value handed back";
  book.check(attempted);
  if (sc == scenario::close_midway) {
    EXPECT_EQ(refused.load(), g.producers) << "a producer was never refused by the close";
  }
  if (sc == scenario::run_to_end) {
    long sum = 0;
    for (long a : attempted)
      sum += a;
    EXPECT_EQ(received_count.load(), sum) << "every value sent must be received";
  }
}

class ChannelStress : public ::testing::TestWithParam<grid_point> {};

TEST_P(ChannelStress, EveryValueReceivedOnceInProducerOrder) {
  run_scenario(GetParam(), scenario::run_to_end);
}

TEST_P(ChannelStress, CloseMidStreamAccountsForEveryValue) {
  run_scenario(GetParam(), scenario::close_midway);
}

TEST_P(ChannelStress, DroppingHandlesMidStreamAccountsForEveryValue) {
  run_scenario(GetParam(), scenario::drop_midway);
}

INSTANTIATE_TEST_SUITE_P(Grid, ChannelStress, ::testing::ValuesIn(grid()), name_of);

// --- checksum over plain integers, try-spin forms ---------------------------

TEST_P(ChannelStress, ChecksumWithTrySpin) {
  const grid_point g = GetParam();
  const long per_producer = 16000 / stress_scale / g.producers;
  auto [tx, rx] = g.capacity == unbounded ? sluice::channel<std::uint64_t>::unbounded()
                                          : sluice::channel<std::uint64_t>::bounded(g.capacity);
  watchdog dog(60s);
  std::atomic<std::uint64_t> sum{0};
  std::atomic<long> count{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < g.producers; ++p) {
    threads.emplace_back([&, p, tx = tx]() mutable {
      for (long s = 1; s <= per_producer; ++s) {
        std::uint64_t v = (std::uint64_t(p) << 32) | std::uint64_t(s);
        while (true) {
          auto r = tx.try_send(v);
          if (r) break;
          if (r.error() == send_error::closed) return;
          std::this_thread::yield();
        }
      }
    });
  }
  for (int c = 0; c < g.consumers; ++c) {
    threads.emplace_back([&, rx = rx]() mutable {
      std::uint64_t local = 0;
      long n = 0;
      std::vector<std::uint64_t> last(std::size_t(g.producers), 0);
      for (;;) {
        auto r = rx.try_recv();
        if (!r) {
          if (r.error() == recv_error::closed) break;
          std::this_thread::yield();
          continue;
        }
        const std::uint64_t v = *r;
        const std::size_t p = std::size_t(v >> 32);
        EXPECT_GT(v & 0xffffffffu, last[p]);
        last[p] = v & 0xffffffffu;
        local += v;
        ++n;
      }
      sum.fetch_add(local);
      count.fetch_add(n);
    });
  }
  tx = sluice::sender<std::uint64_t>{};
  rx = sluice::receiver<std::uint64_t>{};
  for (auto& t : threads)
    t.join();
  std::uint64_t expected = 0;
  for (int p = 0; p < g.producers; ++p) {
    for (long s = 1; s <= per_producer; ++s)
      expected += (std::uint64_t(p) << 32) | std::uint64_t(s);
  }
  EXPECT_EQ(count.load(), per_producer * g.producers);
  EXPECT_EQ(sum.load(), expected);
}

// --- no lost wake-up -----------------------------------------------------------

class ChannelWakeups : public ::testing::TestWithParam<std::size_t> {};

std::string capacity_name(const ::testing::TestParamInfo<std::size_t>& info) {
  return info.param == unbounded ? "unbounded" : "cap" + std::to_string(info.param);
}

TEST_P(ChannelWakeups, BlockingPingPong) {
  const std::size_t cap = GetParam();
  auto make = [cap] {
    return cap == unbounded ? sluice::channel<int>::unbounded()
                            : sluice::channel<int>::bounded(cap);
  };
  // Named handles, not structured bindings: lambdas capture them below.
  auto ping = make();
  auto pong = make();
  sluice::sender<int>& ping_tx = ping.first;
  sluice::receiver<int>& ping_rx = ping.second;
  sluice::sender<int>& pong_tx = pong.first;
  sluice::receiver<int>& pong_rx = pong.second;
  const int rounds = int(5000 / stress_scale);
  watchdog dog(60s, [&] {
    ping_tx.close();
    pong_tx.close();
  });
  std::thread echo([&] {
    for (;;) {
      auto r = ping_rx.recv();
      if (!r) return;
      if (!pong_tx.send(*r + 1)) return;
    }
  });
  int errors = 0;
  for (int i = 0; i < rounds; ++i) {
    if (!ping_tx.send(i)) {
      ++errors;
      break;
    }
    auto r = pong_rx.recv();
    if (!r || *r != i + 1) {
      ++errors;
      break;
    }
  }
  ping_tx.close();
  echo.join();
  EXPECT_EQ(errors, 0);
}

// When the close comes: at once (it races with the waiters on their way
// in: some see it before they wait), after a yield, or, one repeat in
// four, after 2 ms, when the waiters are most likely parked, so that the
// close must wake them.
void pace_close(int rep) {
  if (rep % 4 == 0) {
    std::this_thread::sleep_for(2ms);
  } else if (rep % 2 == 0) {
    std::this_thread::yield();
  }
}

TEST_P(ChannelWakeups, CloseWhileReceiversWait) {
  const std::size_t cap = GetParam();
  const int repeats = int(100 / stress_scale);
  watchdog dog(60s);
  for (int rep = 0; rep < repeats; ++rep) {
    auto [tx, rx] =
        cap == unbounded ? sluice::channel<int>::unbounded() : sluice::channel<int>::bounded(cap);
    std::atomic<int> closed_seen{0};
    std::vector<std::thread> waiters;
    for (int i = 0; i < 3; ++i) {
      waiters.emplace_back([&, rx = rx]() mutable {
        if (rx.recv().error() == recv_error::closed) closed_seen.fetch_add(1);
      });
    }
    pace_close(rep);
    tx.close();
    for (auto& t : waiters)
      t.join();
    ASSERT_EQ(closed_seen.load(), 3) << "repeat " << rep;
  }
}

TEST_P(ChannelWakeups, CloseWhileSendersWait) {
  const std::size_t cap = GetParam();
  if (cap == unbounded) GTEST_SKIP() << "an unbounded send never waits";
  const int repeats = int(100 / stress_scale);
  watchdog dog(60s);
  for (int rep = 0; rep < repeats; ++rep) {
    auto [tx, rx] = sluice::channel<int>::bounded(cap);
    for (std::size_t i = 0; i < cap; ++i)
      ASSERT_TRUE(tx.try_send(0));
    std::atomic<int> handed_back{0};
    std::vector<std::thread> waiters;
    for (int i = 0; i < 3; ++i) {
      waiters.emplace_back([&, i, tx = tx]() mutable {
        auto r = tx.send(i);
        if (!r && r.error() == send_error::closed && std::move(r).value_back() == i) {
          handed_back.fetch_add(1);
        }
      });
    }
    pace_close(rep);
    rx.close();
    for (auto& t : waiters)
      t.join();
    ASSERT_EQ(handed_back.load(), 3) << "repeat " << rep;
  }
}

TEST_P(ChannelWakeups, BlockedSendersAndReceiversAllFinish) {
  // Many blocked threads on both sides of a small channel: every send must
  // eventually meet a receive; a lost wake-up hangs one of them.
  const std::size_t cap = GetParam();
  auto [tx, rx] =
      cap == unbounded ? sluice::channel<int>::unbounded() : sluice::channel<int>::bounded(cap);
  const int per_thread = int(2000 / stress_scale);
  watchdog dog(60s, [tx = tx]() mutable { tx.close(); });
  std::atomic<long> received{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, tx = tx]() mutable {
      for (int k = 0; k < per_thread; ++k)
        ASSERT_TRUE(tx.send(k));
    });
    threads.emplace_back([&, rx = rx]() mutable {
      for (int k = 0; k < per_thread; ++k) {
        if (!rx.recv()) return;
        received.fetch_add(1);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(received.load(), 4L * per_thread);
}

INSTANTIATE_TEST_SUITE_P(Capacities, ChannelWakeups,
                         ::testing::Values(std::size_t{1}, std::size_t{2}, std::size_t{1024},
                                           unbounded),
                         capacity_name);

}  // namespace
