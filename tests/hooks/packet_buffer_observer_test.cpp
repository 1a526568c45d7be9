// [PB8]: without overwrite, is_pending may be asked from any context while
// the consumer runs. It reads the header at the claim position, so the
// consumer's free, which zeroes the freed words (and lets producers reuse
// them), waits while an observer is counted. Held at observer_counted (the
// observer counted, about to look), a free on another thread must not
// finish; once the observer is done, it does.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/packet_buffer.hpp>

#include "executor_test_support.hpp"
#include "hooks.hpp"
#include "pbuf_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::detail::pbuf_hook;

// What the hook needs (a hook takes no context).
struct scene {
  sluice::claimed_packet* held = nullptr;
  const std::uint32_t* payload = nullptr;  // the held packet's first payload word
  std::unique_ptr<std::thread> consumer;
  std::atomic<bool> freeing{false};  // the consumer thread is about to free
  std::atomic<bool> freed{false};
  bool freed_while_counted = true;
  std::uint32_t payload_while_counted = 0;
  int counted = 0;
};
scene* scene_now = nullptr;

void at_observer_counted(pbuf_hook point) {
  if (point != pbuf_hook::observer_counted) return;
  scene& s = *scene_now;
  ++s.counted;
  s.consumer = std::make_unique<std::thread>([&s] {
    s.freeing.store(true, std::memory_order_release);
    s.held->reset();  // the free: zeroes the packet's words
    s.freed.store(true, std::memory_order_release);
  });
  // Until the consumer thread is in the free (under the test's watchdog),
  // then long enough for a free that does not wait to end.
  while (!s.freeing.load(std::memory_order_acquire))
    std::this_thread::yield();
  std::this_thread::sleep_for(100ms);
  // Acquire: pairs with the release above.
  s.freed_while_counted = s.freed.load(std::memory_order_acquire);
  // The free waits before it zeroes: nothing writes the word now. (Were it
  // not waiting, this read would race with its zeroing, and it would read
  // 0.)
  if (!s.freed_while_counted) s.payload_while_counted = *s.payload;
}

TEST(PacketBufferObserver, AFreeWaitsForAnObserverBeforeItZeroesTheWords) {
  if (sluice::detail::single_core) GTEST_SKIP() << "one core: the observer's masking suffices";
  sluice::test::abort_watchdog dog{30s, "a free waiting for an observer, or the observer"};
  std::uint32_t words[16] = {};
  sluice::packet_buffer pb({.storage = words, .size_words = 16});
  auto a = pb.try_alloc(4);
  ASSERT_TRUE(a);
  a->payload()[0] = 77;
  std::move(*a).commit();
  sluice::claimed_packet held = pb.try_claim();
  ASSERT_TRUE(held);
  // A packet past the claim position (with none, is_pending answers from
  // the indices alone and reads no header).
  auto b = pb.try_alloc(2);
  ASSERT_TRUE(b);
  std::move(*b).commit();
  scene s;
  s.held = &held;
  s.payload = held.payload();
  scene_now = &s;
  observe_hook.store(&at_observer_counted, std::memory_order_release);
  const bool pending = pb.is_pending();
  observe_hook.store(nullptr, std::memory_order_release);
  ASSERT_EQ(s.counted, 1) << "is_pending did not count itself as an observer";
  s.consumer->join();
  EXPECT_FALSE(s.freed_while_counted) << "the free zeroed the words while an observer looked";
  EXPECT_EQ(s.payload_while_counted, 77u);
  EXPECT_TRUE(s.freed.load()) << "the free did not finish once the observer was done";
  EXPECT_EQ(words[1], 0u) << "the freed words were not zeroed";
  EXPECT_TRUE(pending) << "the second packet waits";
  EXPECT_TRUE(pb.try_claim()) << "the second packet";
  auto whole = pb.try_alloc(16);
  ASSERT_TRUE(whole) << "the freed words did not come back";
  std::move(*whole).abandon();
  scene_now = nullptr;
}

// An observer held inside its look at observer_counted until its gate
// opens (the test sets the gate of the thread it starts).
thread_local std::atomic<bool>* my_gate = nullptr;
thread_local std::atomic<bool>* my_counted = nullptr;

void hold_at_observer_counted(pbuf_hook point) {
  if (point != pbuf_hook::observer_counted || my_gate == nullptr) return;
  // Release: pairs with the test's acquire in wait_for (the look is counted).
  my_counted->store(true, std::memory_order_release);
  // Acquire: pairs with the test's release of the gate.
  while (!my_gate->load(std::memory_order_acquire))
    std::this_thread::yield();
}

// A thread that asks is_pending and is held inside its look until `gate`.
std::thread held_observer(sluice::detail::pbuf_core& core, std::atomic<bool>& gate,
                          std::atomic<bool>& counted) {
  return std::thread([&core, &gate, &counted] {
    my_gate = &gate;
    my_counted = &counted;
    (void)core.is_pending();
  });
}

void wait_for(const std::atomic<bool>& flag) {
  // Acquire: pairs with the release store of the flag's writer.
  while (!flag.load(std::memory_order_acquire))
    std::this_thread::yield();
}

// The free waits for the looks that were running when it came, not for
// the ones that start while it waits: else looks that keep starting (two
// threads asking in turn) hold it up for as long as they keep asking.
// Observer A looks, the free comes and waits, observer B starts a look;
// once A is done, the free ends while B still looks.
TEST(PacketBufferObserver, AFreeDoesNotWaitForALookThatStartedAfterIt) {
  if (sluice::detail::single_core) GTEST_SKIP() << "one core: the observer's masking suffices";
  sluice::test::abort_watchdog dog{30s,
                                   "a free waiting for a look that started after it, or a look"};
  std::uint32_t words[16] = {};
  sluice::detail::pbuf_core c({.buffer = words, .size = 16});
  const sluice::detail::pbuf_span held = sluice::test::put_with_length(c, 4);
  ASSERT_EQ(c.try_claim().words, held.words);
  // A packet past the claim position: is_pending reads its header.
  (void)sluice::test::put_with_length(c, 2);
  observe_hook.store(&hold_at_observer_counted, std::memory_order_release);
  std::atomic<bool> gate_a{false}, counted_a{false}, gate_b{false}, counted_b{false};
  std::atomic<bool> freed{false};
  std::thread a = held_observer(c, gate_a, counted_a);
  wait_for(counted_a);
  // Relaxed: the epoch is only compared; nothing is read through it.
  const std::uint32_t epoch_before =
      c.observers.load(std::memory_order_relaxed) & sluice::detail::pbuf_observer_epoch;
  std::thread consumer([&] {
    c.free(held.words);
    // Release: pairs with the test's acquire loads of `freed`.
    freed.store(true, std::memory_order_release);
  });
  // Until the free has flipped the bucket that new looks join (it found
  // A's look, and waits). Relaxed, as above.
  while ((c.observers.load(std::memory_order_relaxed) & sluice::detail::pbuf_observer_epoch) ==
         epoch_before)
    std::this_thread::yield();
  // Acquire: pairs with the consumer thread's release.
  EXPECT_FALSE(freed.load(std::memory_order_acquire))
      << "the free did not wait for the look that ran when it came";
  std::thread b = held_observer(c, gate_b, counted_b);
  wait_for(counted_b);
  gate_a.store(true, std::memory_order_release);
  a.join();
  // The free ends while B still looks (a free that waits for B too never
  // does: the watchdog names it).
  wait_for(freed);
  gate_b.store(true, std::memory_order_release);
  b.join();
  consumer.join();
  observe_hook.store(nullptr, std::memory_order_release);
  // Relaxed: every thread that wrote it is joined.
  EXPECT_EQ(c.observers.load(std::memory_order_relaxed) & sluice::detail::pbuf_observer_counts, 0u);
  EXPECT_EQ(words[1], 0u) << "the freed words were not zeroed";
  const sluice::detail::pbuf_span next = c.try_claim();
  ASSERT_NE(next.words, nullptr) << "the second packet";
  c.free(next.words);
  EXPECT_EQ(c.used_words(), 0u);
}

// A buffer asked from another thread all the time while one thread
// produces (padding now and then) and consumes: the observer moves
// nothing, so the consumer gets every committed packet, whole and in
// order, and passes every skip. (An observer that passed skips itself, or
// read a header while the consumer zeroed it, fails here or under
// ThreadSanitizer.)
TEST(PacketBufferObserver, AnObserverThreadBesideTheConsumerChangesNothing) {
  std::uint32_t words[32] = {};
  sluice::packet_buffer pb({.storage = words, .size_words = 32});
  constexpr std::uint32_t count = 20000;
  constexpr std::uint32_t least_looks = 1000;
  std::atomic<bool> done{false};
  std::atomic<std::uint32_t> looks{0};
  std::thread observer([&] {
    while (!done.load()) {
      (void)pb.is_pending();
      looks.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::uint32_t next = 0, sent = 0;
  bool in_order = true;
  // Room lost, or an observer that never looks: no packet moves.
  sluice::test::progress_watchdog dog("an observer beside the consumer", 20s);
  // At least `count` packets, and on until the observer has looked often
  // enough (its thread may start late).
  while (in_order && (sent < count || looks.load(std::memory_order_relaxed) < least_looks)) {
    if (auto a = pb.try_alloc(1 + sent % 5)) {
      if (a->size() > 1) a->payload()[0] = sent;
      if (sent % 7 == 3) {
        std::move(*a).abandon();  // padding in front now and then
      } else {
        std::move(*a).commit();
      }
      ++sent;
    }
    dog.progress.store(sent + looks.load(std::memory_order_relaxed), std::memory_order_relaxed);
    while (auto c = pb.try_claim()) {
      while (next % 7 == 3)
        ++next;  // abandoned
      const bool right = c.size() == 1 + next % 5 && (c.size() == 1 || c.payload()[0] == next);
      EXPECT_TRUE(right) << "packet " << next << ": " << c.size() << " words";
      in_order = in_order && right;
      ++next;
    }
  }
  done.store(true);
  observer.join();
  while (next < sent && next % 7 == 3)
    ++next;
  EXPECT_EQ(next, sent) << "a committed packet was not delivered";
  EXPECT_FALSE(pb.try_claim());
  EXPECT_FALSE(pb.is_pending());
  EXPECT_GE(looks.load(), least_looks);
}

}  // namespace
