// Stress: the Zephyr C API with overwrite, its frees made by signal
// handlers on the producer threads, which spend much of their time making
// room (the consumer is slower than two producers): a free that lands
// inside its own thread's turn with the overwrite lock is refused the lock
// and left to that turn, and one that lands elsewhere takes the consumer
// lock beside the consumer's claims. Packet lengths come from get_wlen,
// which decodes the header's user bits (a free that rewrote the header
// inside a dropper's turn would give it a wrong length). Exact accounting:
// every packet is claimed once or reported to notify_drop once, with its
// words intact; at the end nothing is in use and no free is left waiting.
// A watchdog turns a hang (a handler waiting for the consumer lock while
// its holder waits for the handler's thread) into a failure.
#include <zephyr/sys/mpsc_pbuf.h>

#include <pthread.h>
#include <signal.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <new>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/port.hpp>

#include "executor_test_support.hpp"
#include "pbuf_test_support.hpp"
#include "zephyr_c_buffer.hpp"

namespace {

using namespace std::chrono_literals;

#if defined(SLUICE_SANITIZED)
constexpr std::uint32_t per_producer = 30'000;
#else
constexpr std::uint32_t per_producer = 150'000;
#endif
constexpr std::uint32_t producers = 2;
constexpr std::uint32_t size_words = 64;
// The user bits hold the length XOR this, so that a skip's encoding (the
// length in the same bits) decodes to another length.
constexpr std::uint32_t length_key = 0x2b5u;

std::uint32_t words_for(std::uint32_t seq) {
  return 2 + seq % 5;  // 2..6
}
std::uint32_t payload_word(std::uint32_t pid, std::uint32_t seq, std::uint32_t i) {
  return (pid * 0x9e3779b9u) ^ (seq * 0x85ebca6bu) ^ (i * 0xc2b2ae35u);
}

uint32_t length_from_user_bits(const union mpsc_pbuf_generic* packet) {
  // Relaxed: the engine calls it for a packet whose header it may change
  // only under its lock (a plain read would be what a user writes; the
  // test reads atomically so that the race it looks for is the engine's).
  const std::uint32_t first =
      std::atomic_ref<std::uint32_t>(
          *const_cast<std::uint32_t*>(reinterpret_cast<const std::uint32_t*>(packet)))
          .load(std::memory_order_relaxed);
  return (first >> MPSC_PBUF_HDR_BITS) ^ length_key;
}

// Where claimed packets wait for a handler to free them: four, so that at
// most four frees are ever deferred at once (the engine's limit).
constexpr std::size_t mailbox_slots = 4;

struct fixture {
  sluice::test::packet_ledger book{std::vector<std::uint32_t>(producers, per_producer)};
  sluice::test::zephyr_c_buffer<size_words>* buffer = nullptr;
  std::array<std::atomic<const union mpsc_pbuf_generic*>, mailbox_slots> mailbox{};
  std::atomic<std::uint32_t> bad{0};
  std::atomic<std::uint32_t> handler_frees{0};
  std::atomic<std::uint32_t> deferred{0};  // frees that found their thread's dropper holding
  std::atomic<std::uint32_t> progress{0};  // packets claimed or dropped
};
fixture* current = nullptr;  // for the handler and the drop callback

bool intact(const std::uint32_t* w, std::uint32_t n, std::uint32_t& pid, std::uint32_t& seq) {
  pid = w[1] >> 24;
  seq = w[1] & 0xffffffu;
  if (pid >= producers || seq >= per_producer || n != words_for(seq)) return false;
  for (std::uint32_t i = 2; i < n; ++i)
    if (w[i] != payload_word(pid, seq, i)) return false;
  return true;
}

void on_drop(const struct mpsc_pbuf_buffer*, const union mpsc_pbuf_generic* packet) {
  const auto* w = reinterpret_cast<const std::uint32_t*>(packet);
  std::uint32_t pid = 0, seq = 0;
  if (!intact(w, length_from_user_bits(packet), pid, seq)) {
    current->bad.fetch_add(1, std::memory_order_relaxed);  // a tally, read after the joins
    return;
  }
  current->book.drop(pid, seq);
  current->progress.fetch_add(1, std::memory_order_relaxed);  // a tally, for the watchdog
}

// Frees what the mailbox holds. Tallies relaxed: read after the joins.
void free_mailbox(bool in_handler) {
  fixture& f = *current;
  for (auto& slot : f.mailbox) {
    // Acquire: pairs with the consumer's release store; the packet is
    // claimed and the consumer has done with it.
    const union mpsc_pbuf_generic* p = slot.exchange(nullptr, std::memory_order_acquire);
    if (p == nullptr) continue;
    if (in_handler) {
      // The engine lives in the C struct (as the C API's own calls find it).
      const auto& engine =
          *std::launder(reinterpret_cast<const sluice::detail::pbuf_core*>(&f.buffer->buffer));
      if (engine.held_by_own_dropper(sluice::port::context_token()))
        f.deferred.fetch_add(1, std::memory_order_relaxed);
      f.handler_frees.fetch_add(1, std::memory_order_relaxed);
    }
    mpsc_pbuf_free(&f.buffer->buffer, p);
  }
}

void on_signal(int) {
  free_mailbox(true);
}

TEST(ZephyrHandlerFreeStress, FreesFromHandlersInsideTheirThreadsDropsLoseNothing) {
  sluice::test::zephyr_c_buffer<size_words> b(&length_from_user_bits, MPSC_PBUF_MODE_OVERWRITE,
                                              &on_drop);
  fixture f;
  f.buffer = &b;
  current = &f;
  struct sigaction sa {};
  sa.sa_handler = &on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ASSERT_EQ(sigaction(SIGUSR1, &sa, nullptr), 0);

  std::optional<sluice::test::progress_watchdog> watchdog;
  watchdog.emplace("zephyr handler free stress: no packet claimed or dropped", 30s,
                   [&f] { return f.progress.load(std::memory_order_relaxed); });

  std::atomic<std::uint32_t> producing{producers};
  std::atomic<bool> stop_handlers{false};
  std::vector<pthread_t> ids(producers);
  std::atomic<std::uint32_t> started{0};
  std::vector<std::thread> threads;
  for (std::uint32_t pid = 0; pid < producers; ++pid) {
    threads.emplace_back([&, pid] {
      ids[pid] = pthread_self();
      started.fetch_add(1, std::memory_order_release);  // pairs with the consumer's acquire
      for (std::uint32_t seq = 0; seq < per_producer;) {
        const std::uint32_t n = words_for(seq);
        union mpsc_pbuf_generic* p = mpsc_pbuf_alloc(&b.buffer, n, K_NO_WAIT);
        if (p == nullptr) {
          std::this_thread::yield();
          continue;
        }
        auto* w = reinterpret_cast<std::uint32_t*>(p);
        w[1] = pid << 24 | seq;
        for (std::uint32_t i = 2; i < n; ++i)
          w[i] = payload_word(pid, seq, i);
        // One atomic store of the whole first word, its two header bits
        // clear (the README: a claim reads it atomically).
        std::atomic_ref<std::uint32_t>(w[0]).store((n ^ length_key) << MPSC_PBUF_HDR_BITS,
                                                   std::memory_order_relaxed);
        mpsc_pbuf_commit(&b.buffer, p);
        ++seq;
        // Now and then, let the consumer (and the handlers) run: more
        // packets claimed, more frees in handlers.
        if (seq % 4 == 0) std::this_thread::yield();
      }
      producing.fetch_sub(1, std::memory_order_release);  // pairs with the consumer's acquire
      // Stays until the consumer stops signalling (a signal to a thread
      // that has exited is undefined).
      while (!stop_handlers.load(std::memory_order_acquire))
        std::this_thread::sleep_for(1ms);
    });
  }

  std::thread consumer([&] {
    while (started.load(std::memory_order_acquire) != producers)
      std::this_thread::yield();
    std::uint32_t turn = 0;
    for (;;) {
      const union mpsc_pbuf_generic* p = mpsc_pbuf_claim(&b.buffer);
      if (p == nullptr) {
        if (producing.load(std::memory_order_acquire) == 0 && !mpsc_pbuf_is_pending(&b.buffer))
          break;
        std::this_thread::yield();
        continue;
      }
      std::uint32_t pid = 0, seq = 0;
      if (intact(reinterpret_cast<const std::uint32_t*>(p), length_from_user_bits(p), pid, seq)) {
        f.book.claim(pid, seq);
      } else {
        f.bad.fetch_add(1, std::memory_order_relaxed);
      }
      f.progress.fetch_add(1, std::memory_order_relaxed);
      // Into a free slot of the mailbox, for a handler; with none free,
      // freed here (beside the handlers' frees).
      bool posted = false;
      for (auto& slot : f.mailbox) {
        const union mpsc_pbuf_generic* empty = nullptr;
        // Release: pairs with the handler's acquire exchange.
        if (slot.compare_exchange_strong(empty, p, std::memory_order_release,
                                         std::memory_order_relaxed)) {
          posted = true;
          break;
        }
      }
      if (!posted) mpsc_pbuf_free(&b.buffer, p);
      pthread_kill(ids[turn++ % producers], SIGUSR1);
    }
    free_mailbox(false);  // what no handler took
    stop_handlers.store(true, std::memory_order_release);
  });
  consumer.join();
  for (auto& t : threads)
    t.join();
  watchdog.reset();
  signal(SIGUSR1, SIG_DFL);
  // A signal sent last may still have been handled after the consumer's
  // own pass over the mailbox; it found it empty or freed what it took.
  free_mailbox(false);

  EXPECT_EQ(f.bad.load(), 0u) << "a packet claimed or dropped with damaged words";
  std::uint64_t claimed = 0, dropped = 0;
  for (std::uint32_t pid = 0; pid < producers; ++pid)
    f.book.expect_each_once(pid, per_producer, claimed, dropped);
  EXPECT_EQ(claimed + dropped, std::uint64_t{producers} * per_producer);
  std::uint32_t size = 0, now = 1;
  mpsc_pbuf_get_utilization(&b.buffer, &size, &now);
  EXPECT_EQ(now, 0u) << "words still in use: a free was lost or left waiting";
  EXPECT_FALSE(mpsc_pbuf_is_pending(&b.buffer));
  for (const std::uint32_t entry : b.buffer.sluice_deferred_frees)
    EXPECT_EQ(entry, 0u);
  EXPECT_EQ(b.buffer.sluice_deferred_any, 0u);
  std::printf(
      "%llu packets: %llu claimed, %llu dropped; %u freed in handlers, %u of them inside "
      "their own thread's turn with the overwrite lock\n",
      static_cast<unsigned long long>(claimed + dropped), static_cast<unsigned long long>(claimed),
      static_cast<unsigned long long>(dropped), f.handler_frees.load(), f.deferred.load());
}

}  // namespace
