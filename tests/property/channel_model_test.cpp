// Seeded random operation sequences on one thread, checked step by step
// against std::deque as the reference model. Capacities straddle the ring's
// wrap and the unbounded flavour's block size. The seed is printed on
// failure; SLUICE_SEED=<n> adds a seed of your choice.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <sluice/channel.hpp>

#include "channel_test_support.hpp"

namespace {

using sluice::recv_error;
using sluice::send_error;
using sluice::test::counted;
using sluice::test::tally;

std::vector<std::uint64_t> seeds() {
  std::vector<std::uint64_t> s{1, 2, 3, 42, 20261123};
  if (const char* env = std::getenv("SLUICE_SEED")) s.push_back(std::strtoull(env, nullptr, 10));
  return s;
}

constexpr std::size_t unlimited = static_cast<std::size_t>(-1);

// One run: `steps` random operations; every result is compared with the
// model, and the count of live elements with the model's size.
template <class Tx, class Rx>
void run_model(Tx& tx, Rx& rx, std::size_t capacity, std::uint64_t seed, tally& t, int steps) {
  std::mt19937_64 rng(seed);
  std::deque<int> model;
  int next = 0;
  bool closed = false;
  auto pick = [&](int n) { return int(rng() % std::uint64_t(n)); };
  auto room = [&] {
    return capacity == unlimited ? std::size_t(1) << 40 : capacity - model.size();
  };

  for (int step = 0; step < steps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    // Bias towards sends while the queue is short and receives while long,
    // so runs keep crossing both empty and full.
    const int op = pick(100);
    if (op < 35) {
      const int v = next++;
      auto r = tx.try_send(counted{t, v});
      if (closed) {
        ASSERT_FALSE(r);
        ASSERT_EQ(r.error(), send_error::closed);
        ASSERT_EQ(r.peek_value().value(), v);
      } else if (room() == 0) {
        ASSERT_FALSE(r);
        ASSERT_EQ(r.error(), send_error::full);
        ASSERT_EQ(r.peek_value().value(), v);
      } else {
        ASSERT_TRUE(r);
        model.push_back(v);
      }
    } else if (op < 65) {
      auto r = rx.try_recv();
      if (model.empty()) {
        ASSERT_FALSE(r);
        ASSERT_EQ(r.error(), closed ? recv_error::closed : recv_error::empty);
      } else {
        ASSERT_TRUE(r);
        ASSERT_EQ(r->value(), model.front());
        model.pop_front();
      }
    } else if (op < 75) {
      const std::size_t k = std::size_t(pick(int(capacity == unlimited ? 80 : 2 * capacity + 2)));
      std::vector<counted> batch;
      for (std::size_t i = 0; i < k; ++i)
        batch.emplace_back(t, next++);
      const std::size_t sent = tx.try_send_n(batch.begin(), batch.end());
      const std::size_t expected = closed ? 0 : std::min(k, room());
      ASSERT_EQ(sent, expected);
      for (std::size_t i = 0; i < sent; ++i)
        model.push_back(batch[i].value());
    } else if (op < 85) {
      const std::size_t k = std::size_t(pick(int(capacity == unlimited ? 80 : 2 * capacity + 2)));
      std::vector<counted> out;
      const std::size_t got = rx.try_recv_n(std::back_inserter(out), k);
      ASSERT_EQ(got, std::min(k, model.size()));
      for (const counted& c : out) {
        ASSERT_EQ(c.value(), model.front());
        model.pop_front();
      }
    } else if (op < 90) {
      const int v = next++;
      auto r = tx.send_for(counted{t, v}, sluice::duration{0});
      if (closed) {
        ASSERT_EQ(r.error(), send_error::closed);
      } else if (room() == 0) {
        ASSERT_FALSE(r);
        ASSERT_EQ(r.error(), send_error::timeout);
        ASSERT_EQ(r.peek_value().value(), v);
      } else {
        ASSERT_TRUE(r);
        model.push_back(v);
      }
    } else if (op < 95) {
      auto r = rx.recv_for(sluice::duration{0});
      if (model.empty()) {
        ASSERT_FALSE(r);
        ASSERT_EQ(r.error(), closed ? recv_error::closed : recv_error::timeout);
      } else {
        ASSERT_TRUE(r);
        ASSERT_EQ(r->value(), model.front());
        model.pop_front();
      }
    } else if (op < 99) {
      ASSERT_EQ(rx.approx_size(), model.size());
      ASSERT_EQ(tx.is_closed(), closed);
    } else if (step > steps / 2 && !closed) {
      tx.close();
      closed = true;
    }
    ASSERT_EQ(t.live(), long(model.size())) << "elements alive must be exactly those inside";
    ASSERT_EQ(t.double_destroyed.load(), 0);
  }
}

template <class Make>
void for_each_seed(const char* flavour, std::size_t capacity, int steps, Make make) {
  for (std::uint64_t seed : seeds()) {
    SCOPED_TRACE(std::string("flavour ") + flavour + ", capacity " + std::to_string(capacity) +
                 ", seed " + std::to_string(seed) +
                 " (rerun with SLUICE_SEED=" + std::to_string(seed) + ")");
    tally t;
    make(seed, t, steps);
    EXPECT_EQ(t.live(), 0) << "values left inside must be destroyed with the channel";
    EXPECT_EQ(t.double_destroyed.load(), 0);
  }
}

#if defined(SLUICE_SANITIZED)
constexpr int steps = 1500;
#else
constexpr int steps = 4000;
#endif

TEST(ChannelModel, Bounded) {
  for (std::size_t cap : {1u, 2u, 3u, 5u, 8u, 13u, 64u}) {
    for_each_seed("bounded", cap, steps, [cap](std::uint64_t seed, tally& t, int n) {
      auto [tx, rx] = sluice::channel<counted>::bounded(cap);
      run_model(tx, rx, cap, seed, t, n);
    });
  }
}

TEST(ChannelModel, Unbounded) {
  for_each_seed("unbounded", unlimited, steps, [](std::uint64_t seed, tally& t, int n) {
    auto [tx, rx] = sluice::channel<counted>::unbounded();
    run_model(tx, rx, unlimited, seed, t, n);
  });
}

template <std::size_t N>
void static_model() {
  for_each_seed("static", N, steps, [](std::uint64_t seed, tally& t, int n) {
    auto ch = std::make_unique<sluice::static_channel<counted, N>>();
    run_model(*ch, *ch, N, seed, t, n);
  });
}

TEST(ChannelModel, Static) {
  static_model<1>();
  static_model<3>();
  static_model<8>();
}

}  // namespace
