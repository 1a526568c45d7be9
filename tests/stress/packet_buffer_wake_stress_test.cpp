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
//     free as without);
//   - tasks: the same with producer tasks in alloc_async and the consumer
//     task in claim_async, on an executor, one producer cancelled again and
//     again.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/executor.hpp>
#include <sluice/join_handle.hpp>
#include <sluice/packet_buffer.hpp>
#include <sluice/task.hpp>

#include "executor_test_support.hpp"

namespace {

using namespace std::chrono_literals;

// Each hand-off may cost a sleep and a wake-up (system calls): keep the
// counts to a few seconds on a loaded 2-core machine.
#if defined(SLUICE_SANITIZED)
constexpr std::uint32_t packets = 400;
#else
constexpr std::uint32_t packets = 1'500;
#endif

void hand_off(sluice::overflow_policy policy) {
  std::vector<std::uint32_t> storage(64);
  sluice::packet_buffer pb({.storage = storage.data(), .size_words = 64, .policy = policy});
  sluice::test::progress_watchdog dog("packet_buffer hand-off", 20s);
  // taken: release by the consumer after each free, acquire by the
  // producer before its next packet. bad: a relaxed stop flag for both
  // loops, read again after the join (which orders it).
  std::atomic<std::uint32_t> taken{0};
  std::atomic<bool> bad{false};
  std::thread consumer([&] {
    for (std::uint32_t seq = 0; seq < packets; ++seq) {
      auto c = pb.claim_until(sluice::time_point::max());
      if (!c || c.size() != 2 || c.payload()[0] != seq) {
        bad.store(true, std::memory_order_relaxed);
        return;
      }
      c.reset();
      taken.store(seq + 1, std::memory_order_release);
      dog.progress.store(seq + 1, std::memory_order_relaxed);  // the watchdog only sees it move
    }
  });
  for (std::uint32_t seq = 0; seq < packets && !bad.load(std::memory_order_relaxed); ++seq) {
    auto a = pb.try_alloc(2);
    if (!a) {
      ADD_FAILURE() << "one packet at a time always fits";
      bad.store(
          true,
          std::memory_order_relaxed);  // the consumer stays blocked: the watchdog ends the run
      break;
    }
    a->payload()[0] = seq;
    std::move(*a).commit();
    // Wait until it is taken, so that the next commit finds the consumer
    // on its way to sleep or asleep. Mostly spinning: yielding at once
    // slows a sleeping consumer's wake-up on some schedulers.
    for (std::uint32_t spins = 1;
         taken.load(std::memory_order_acquire) != seq + 1 && !bad.load(std::memory_order_relaxed);
         ++spins) {
      if (spins % 4096 == 0) std::this_thread::yield();
    }
  }
  consumer.join();
  EXPECT_FALSE(bad.load(std::memory_order_relaxed));
  EXPECT_EQ(taken.load(std::memory_order_relaxed), packets);  // after the join
  EXPECT_EQ(pb.counters().claimed, packets);
  EXPECT_EQ(pb.counters().dropped, 0u);
}

void room(sluice::overflow_policy policy) {
  // Two packets of 4 words fill the buffer: nearly every allocation waits
  // (without a deadline) for the consumer's free; the consumer also waits
  // without a deadline for each packet.
  std::vector<std::uint32_t> storage(8);
  sluice::packet_buffer pb({.storage = storage.data(), .size_words = 8, .policy = policy});
  sluice::test::progress_watchdog dog("packet_buffer room", 20s);
  constexpr std::uint32_t producers = 2;
  std::vector<std::thread> threads;
  // Relaxed: a stop flag for the consumer loop, read again after the joins
  // (which order it); nothing is read through it.
  std::atomic<std::uint32_t> failed{0};
  for (std::uint32_t pid = 0; pid < producers; ++pid) {
    threads.emplace_back([&, pid] {
      for (std::uint32_t seq = 0; seq < packets; ++seq) {
        auto a = pb.alloc_until(4, sluice::time_point::max());
        if (!a) {
          failed.fetch_add(1, std::memory_order_relaxed);
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
  for (std::uint32_t received = 0;
       received < producers * packets && failed.load(std::memory_order_relaxed) == 0; ++received) {
    auto c = pb.claim_until(sluice::time_point::max());
    const std::uint32_t pid = c ? c.payload()[0] : producers;
    if (pid >= producers || c.payload()[1] != next[pid]) {
      ++bad;
      break;
    }
    ++next[pid];
    dog.progress.store(received + 1, std::memory_order_relaxed);  // the watchdog only sees it move
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(failed.load(std::memory_order_relaxed), 0u);
  EXPECT_EQ(next[0] + next[1], producers * packets);
  EXPECT_EQ(pb.counters().claimed, producers * packets);
  EXPECT_EQ(pb.counters().dropped, 0u);
}

// Tasks on a 2-worker executor: three producer tasks wait for room in
// alloc_async on a buffer that holds two packets, the consumer task waits
// for each packet in claim_async, and a fourth producer is cancelled over
// and over, wherever it is (mostly waiting for room: its awaiter must leave
// the waiter list). Every committed packet is claimed once, in order per
// producer; nothing is dropped. (Each free wakes every listed producer, so
// a lost wake-up heals here at the next free: the hook test
// AsyncRoom.TheRecheckSeesRoomFreedBeforeTheTaskIsListed covers that.)
constexpr std::uint32_t task_producers = 3;
constexpr std::uint32_t pest = task_producers;  // the cancelled one's id
constexpr std::uint32_t sentinel = 99;          // the last packet, from the test thread

// All relaxed. failed and out_of_order are flags: the test thread's loop
// reads out_of_order to stop early, and both are read again after the
// joins, which order them. committed[pid] is its producer's count, read by
// the others after the joins. Nothing is read through any of them.
struct task_counts {
  std::atomic<std::uint32_t> committed[task_producers + 1] = {};
  std::atomic<std::uint32_t> failed{0};
  std::atomic<std::uint32_t> out_of_order{0};
  std::uint32_t received[task_producers + 1] = {};  // the consumer task's
};

// `started` (if given) is set when the body begins (relaxed: read by the
// test thread after the join, which orders it): a task cancelled after
// that was cancelled in alloc_async, its only suspension, listed or woken
// and not yet run.
sluice::task<void> produce(sluice::packet_buffer& pb, task_counts& counts, std::uint32_t pid,
                           std::uint32_t count, std::atomic<bool>* started = nullptr) {
  if (started != nullptr) started->store(true, std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < count; ++i) {
    auto a = co_await pb.alloc_async(4);
    if (!a) {
      counts.failed.fetch_add(1, std::memory_order_relaxed);
      co_return;
    }
    // Relaxed: only this producer (one task at a time for the pest) counts
    // its packets; the join orders the final read.
    const std::uint32_t seq = counts.committed[pid].load(std::memory_order_relaxed);
    a->payload()[0] = pid;
    a->payload()[1] = seq;
    a->payload()[2] = ~seq;
    std::move(*a).commit();
    counts.committed[pid].store(seq + 1, std::memory_order_relaxed);
  }
}

sluice::task<void> consume(sluice::packet_buffer& pb, task_counts& counts,
                           std::atomic<std::uint32_t>& progress) {
  for (;;) {
    sluice::claimed_packet c = co_await pb.claim_async();
    const std::uint32_t pid = c.payload()[0];
    if (pid == sentinel) co_return;
    if (c.size() != 4 || pid > pest || c.payload()[1] != counts.received[pid] ||
        c.payload()[2] != ~c.payload()[1]) {
      counts.out_of_order.fetch_add(1, std::memory_order_relaxed);
      co_return;
    }
    ++counts.received[pid];
    // The regular producers' packets only: a stranded producer stops it,
    // whatever the pests still send. Relaxed: the watchdog only sees it move.
    if (pid != pest) progress.fetch_add(1, std::memory_order_relaxed);
  }
}

void tasks_room(sluice::overflow_policy policy) {
  std::vector<std::uint32_t> storage(8);
  sluice::packet_buffer pb({.storage = storage.data(), .size_words = 8, .policy = policy});
  sluice::test::progress_watchdog dog("packet_buffer tasks", 20s);
  task_counts counts;
  std::uint32_t cancels = 0;
  {
    sluice::executor ex{{.workers = 2}};
    const auto spawn = [&ex](sluice::task<void> t) {
      auto h = ex.spawn(std::move(t));
      if (!h) {
        std::fprintf(stderr, "packet_buffer tasks: spawn failed (%s)\n", to_string(h.error()));
        std::abort();  // the handles below need a task
      }
      return std::move(h).value();
    };
    auto consumer = spawn(consume(pb, counts, dog.progress));
    std::vector<sluice::join_handle<void>> producers;
    for (std::uint32_t pid = 0; pid < task_producers; ++pid)
      producers.push_back(spawn(produce(pb, counts, pid, packets)));
    const auto producers_done = [&] {
      for (auto& h : producers)
        if (!h.is_finished()) return false;
      return true;
    };
    // Until the others are done, and at least 8 pests were cancelled while
    // they waited in alloc_async (a pest alone still waits: the buffer
    // holds two packets); bounded, so that a stranded producer ends in the
    // watchdog.
    for (std::uint32_t tries = 0;
         tries < 100'000 && counts.out_of_order.load(std::memory_order_relaxed) == 0 &&
         (!producers_done() || cancels < 8);
         ++tries) {
      std::atomic<bool> started{false};
      auto h = spawn(produce(pb, counts, pest, packets, &started));
      std::this_thread::sleep_for(std::chrono::microseconds(20 + tries % 7 * 30));
      (void)h.cancel();
      // One pest at a time: its count has one writer. Cancelled after it
      // began: in alloc_async, its only suspension.
      if (!h.join() && started.load(std::memory_order_relaxed)) ++cancels;
      // Once the others are done no producer can be stranded: the pests'
      // tries are the progress. Relaxed: the watchdog only sees it move.
      if (producers_done()) dog.progress.fetch_add(1, std::memory_order_relaxed);
    }
    // A consumer that found a wrong packet has stopped: the producers may
    // wait for ever.
    if (counts.out_of_order.load(std::memory_order_relaxed) != 0)
      for (auto& h : producers)
        (void)h.cancel();
    for (auto& h : producers)
      (void)h.join();
    // From this thread: the consumer task ends at it.
    if (counts.out_of_order.load(std::memory_order_relaxed) == 0) {
      auto last = pb.alloc_until(4, sluice::time_point::max());
      EXPECT_TRUE(last);
      if (last) {
        last->payload()[0] = sentinel;
        std::move(*last).commit();
      }
      (void)consumer.join();
    } else {
      (void)consumer.cancel();
      (void)consumer.join();
    }
  }
  EXPECT_EQ(counts.failed.load(std::memory_order_relaxed), 0u);
  EXPECT_EQ(counts.out_of_order.load(std::memory_order_relaxed), 0u);
  std::uint32_t total = 0;
  for (std::uint32_t pid = 0; pid <= pest; ++pid) {
    EXPECT_EQ(counts.received[pid], counts.committed[pid].load(std::memory_order_relaxed))
        << "producer " << pid;
    total += counts.committed[pid].load(std::memory_order_relaxed);
  }
  for (std::uint32_t pid = 0; pid < task_producers; ++pid)
    EXPECT_EQ(counts.committed[pid].load(std::memory_order_relaxed), packets) << "producer " << pid;
  EXPECT_EQ(pb.counters().claimed, total + 1);  // and the sentinel
  EXPECT_EQ(pb.counters().dropped, 0u);
  EXPECT_GE(cancels, 8u) << "pests cancelled while they waited for room";
  std::printf(
      "packet_buffer tasks: %u packets claimed, %u from the cancelled producer, %u cancels in "
      "alloc_async\n",
      total, counts.committed[pest].load(std::memory_order_relaxed), cancels);
}

TEST(PacketBufferWakeStress, FreeWakesProducerTasksSomeCancelled) {
  tasks_room(sluice::overflow_policy::reject_new);
}
TEST(PacketBufferWakeStress, FreeWakesProducerTasksSomeCancelledWithOverwrite) {
  tasks_room(sluice::overflow_policy::drop_oldest);
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
