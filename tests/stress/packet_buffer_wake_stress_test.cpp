// Stress of the packet buffer's wake-ups ([PB4] in src/packet_buffer.cpp:
// commit and reclaim check for waiters behind the light side of the port's
// asymmetric fence, a waiter pays the heavy side before its re-check). Every
// wait here is without a deadline, so a lost wake-up is a hang, which the
// watchdog turns into a failure; deliveries are counted exactly and in order.
//   - hand-off: the consumer blocks in claim_until(forever) for each packet
//     while the producer commits one packet at a time, so most commits meet
//     a consumer that is going to sleep or asleep;
//   - room: two producers block in alloc_until(forever) on a buffer that
//     holds two packets while the consumer frees one packet at a time (with
//     drop_oldest too: a waiting allocation drops nothing, it waits for the
//     free as without).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/packet_buffer.hpp>

namespace {

using namespace std::chrono_literals;

// Each hand-off may cost a sleep and a wake-up (system calls): keep the
// counts to a few seconds on a loaded 2-core machine.
#if defined(SLUICE_SANITIZED)
constexpr std::uint32_t packets = 400;
#else
constexpr std::uint32_t packets = 1'500;
#endif

// Aborts the process when `progress` has not moved for `limit` (a hang:
// every wait in these tests is without a deadline).
class watchdog {
 public:
  watchdog(const char* what, std::chrono::seconds limit)
      : thread_([this, what, limit] {
          std::uint32_t seen = progress.load();
          auto since = std::chrono::steady_clock::now();
          while (!done_.load()) {
            std::this_thread::sleep_for(10ms);
            const std::uint32_t now = progress.load();
            if (now != seen) {
              seen = now;
              since = std::chrono::steady_clock::now();
            } else if (std::chrono::steady_clock::now() - since > limit) {
              std::fprintf(stderr, "%s: no progress for %lld s (lost wake-up?), at %u\n", what,
                           static_cast<long long>(limit.count()), now);
              std::abort();
            }
          }
        }) {}
  ~watchdog() {
    done_ = true;
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  std::atomic<std::uint32_t> progress{0};

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

void hand_off(sluice::overflow_policy policy) {
  std::vector<std::uint32_t> storage(64);
  sluice::packet_buffer pb({.storage = storage.data(), .size_words = 64, .policy = policy});
  watchdog dog("packet_buffer hand-off", 20s);
  std::atomic<std::uint32_t> taken{0};
  std::atomic<bool> bad{false};
  std::thread consumer([&] {
    for (std::uint32_t seq = 0; seq < packets; ++seq) {
      auto c = pb.claim_until(sluice::time_point::max());
      if (!c || c.size() != 2 || c.payload()[0] != seq) {
        bad = true;
        return;
      }
      c.reset();
      taken.store(seq + 1, std::memory_order_release);
      dog.progress.store(seq + 1);
    }
  });
  for (std::uint32_t seq = 0; seq < packets && !bad.load(); ++seq) {
    auto a = pb.try_alloc(2);
    if (!a) {
      ADD_FAILURE() << "one packet at a time always fits";
      bad = true;  // the consumer stays blocked: the watchdog ends the run
      break;
    }
    a->payload()[0] = seq;
    std::move(*a).commit();
    // Wait until it is taken, so that the next commit finds the consumer
    // on its way to sleep or asleep. Mostly spinning: yielding at once
    // slows a sleeping consumer's wake-up on some schedulers.
    for (std::uint32_t spins = 1; taken.load(std::memory_order_acquire) != seq + 1 && !bad.load();
         ++spins) {
      if (spins % 4096 == 0) std::this_thread::yield();
    }
  }
  consumer.join();
  EXPECT_FALSE(bad.load());
  EXPECT_EQ(taken.load(), packets);
  EXPECT_EQ(pb.counters().claimed, packets);
  EXPECT_EQ(pb.counters().dropped, 0u);
}

void room(sluice::overflow_policy policy) {
  // Two packets of 4 words fill the buffer: nearly every allocation waits
  // (without a deadline) for the consumer's free; the consumer also waits
  // without a deadline for each packet.
  std::vector<std::uint32_t> storage(8);
  sluice::packet_buffer pb({.storage = storage.data(), .size_words = 8, .policy = policy});
  watchdog dog("packet_buffer room", 20s);
  constexpr std::uint32_t producers = 2;
  std::vector<std::thread> threads;
  std::atomic<std::uint32_t> failed{0};
  for (std::uint32_t pid = 0; pid < producers; ++pid) {
    threads.emplace_back([&, pid] {
      for (std::uint32_t seq = 0; seq < packets; ++seq) {
        auto a = pb.alloc_until(4, sluice::time_point::max());
        if (!a) {
          failed.fetch_add(1);
          return;
        }
        a->payload()[0] = pid;
        a->payload()[1] = seq;
        std::move(*a).commit();
      }
    });
  }
  std::vector<std::uint32_t> next(producers, 0);
  std::uint32_t bad = 0;
  for (std::uint32_t received = 0; received < producers * packets && failed.load() == 0;
       ++received) {
    auto c = pb.claim_until(sluice::time_point::max());
    const std::uint32_t pid = c ? c.payload()[0] : producers;
    if (pid >= producers || c.payload()[1] != next[pid]) {
      ++bad;
      break;
    }
    ++next[pid];
    dog.progress.store(received + 1);
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(failed.load(), 0u);
  EXPECT_EQ(next[0] + next[1], producers * packets);
  EXPECT_EQ(pb.counters().claimed, producers * packets);
  EXPECT_EQ(pb.counters().dropped, 0u);
}

TEST(PacketBufferWakeStress, CommitWakesBlockedConsumer) {
  hand_off(sluice::overflow_policy::reject_new);
}
TEST(PacketBufferWakeStress, CommitWakesBlockedConsumerWithOverwrite) {
  hand_off(sluice::overflow_policy::drop_oldest);
}
TEST(PacketBufferWakeStress, FreeWakesBlockedProducers) {
  room(sluice::overflow_policy::reject_new);
}
TEST(PacketBufferWakeStress, FreeWakesBlockedProducersWithOverwrite) {
  room(sluice::overflow_policy::drop_oldest);
}

}  // namespace
