// Two droppers with overwrite, where packet lengths come from a callback
// (pbuf_config::words; C++ packet_words, C get_wlen). Dropper 1 marks the
// oldest packet claimed, leaves the lock and runs the drop callback;
// meanwhile dropper 2 holds the lock, finds that victim at rd_idx and steps
// over it, asking the length callback for its length. The victim's end
// (E8: its header becomes a skip) must not land while dropper 2 reads it:
// the callback would decode the engine's skip encoding, and dropper 2
// would step over a wrong length (indices off the packet boundaries,
// zeroing past the storage). Here dropper 2's length callback lets
// dropper 1 go on and watches the header until dropper 1 waits for the
// lock (hook point lock_awaited), which it must take again after its
// callback: to end the victim, and to reserve.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include "hooks.hpp"

namespace {

using sluice::detail::atomic_ref;
using sluice::detail::pbuf_core;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

constexpr std::uint32_t size_words = 16;
constexpr std::uint32_t guard_words = 32;
constexpr std::uint32_t guard = 0xA5A5A5A5u;

// The user's layout: bits 2..9 of the first word hold length - 1, as a
// user header may encode its length its own way.
constexpr std::uint32_t encode_length(std::uint32_t n) {
  return (n - 1) << 2;
}
constexpr std::uint32_t decode_length(std::uint32_t first) {
  return ((first >> 2) & 0xff) + 1;
}

struct scene {
  std::atomic<int> phase{0};  // 1: dropper 1 in its drop callback; 2: it may go on
  std::atomic<const std::uint32_t*> victim{nullptr};
  std::atomic<bool> header_changed{false};  // while dropper 2 read the length
  std::atomic<std::thread::id> dropper1{};
  std::atomic<bool> dropper1_waits{false};  // it reached lock_awaited
  std::mutex dropped_lock;                  // both droppers report
  std::vector<std::uint32_t> dropped;       // tags
};
scene* current = nullptr;

std::uint32_t length_of(void*, const std::uint32_t* packet) noexcept {
  atomic_ref<std::uint32_t> h(*const_cast<std::uint32_t*>(packet));
  if (packet == current->victim.load() && current->phase.load() == 1) {
    // Dropper 2, stepping over dropper 1's victim: let dropper 1 finish
    // its callback, as a preemption here could, and watch the header until
    // dropper 1 waits for the lock we hold. (The deadline only turns a
    // hang into a message.)
    const std::uint32_t before = h.load(std::memory_order_acquire);
    current->phase.store(2);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (h.load(std::memory_order_acquire) == before && !current->dropper1_waits.load() &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    EXPECT_TRUE(current->dropper1_waits.load() || h.load(std::memory_order_acquire) != before)
        << "dropper 1 neither ended its victim nor waited for the lock in 10 s";
    if (h.load(std::memory_order_acquire) != before) current->header_changed.store(true);
  }
  return decode_length(h.load(std::memory_order_relaxed));
}

void on_drop(void*, const std::uint32_t* packet, std::uint32_t n) noexcept {
  EXPECT_EQ(n, 4u);
  {
    const std::lock_guard<std::mutex> hold(current->dropped_lock);
    current->dropped.push_back(packet[1] >> 2);
  }
  if (current->phase.load() == 0) {
    // Dropper 1: park in the callback until dropper 2 reads the length.
    current->dropper1.store(std::this_thread::get_id());
    current->victim.store(packet);
    current->phase.store(1);
    while (current->phase.load() != 2)
      std::this_thread::yield();
  }
}

void put4(pbuf_core& core, std::uint32_t tag) {
  pbuf_span p;
  ASSERT_EQ(core.try_alloc(4, p), pbuf_status::ok);
  p.words[1] = tag << 2;  // payload words with the header bits clear
  p.words[2] = 0;
  p.words[3] = 0;
  // Relaxed: the producer's own header word until commit publishes it.
  atomic_ref<std::uint32_t>(*p.words).store(encode_length(4), std::memory_order_relaxed);
  core.commit(p.words);
}

TEST(PacketBufferDropRace, AVictimEndsOnlyWhenNoLockHolderReadsItsLength) {
  scene s;
  current = &s;
  std::uint32_t arena[size_words + guard_words];
  for (auto& word : arena)
    word = guard;
  pbuf_core core({.buffer = arena,
                  .size = size_words,
                  .flags = sluice::detail::pbuf_flag_overwrite,
                  .drop = on_drop,
                  .words = length_of});
  for (std::uint32_t tag = 1; tag <= 4; ++tag)
    put4(core, tag);  // full
  observe_hook.store(
      +[](sluice::detail::pbuf_hook point) {
        if (point == sluice::detail::pbuf_hook::lock_awaited &&
            std::this_thread::get_id() == current->dropper1.load())
          current->dropper1_waits.store(true);
      },
      std::memory_order_release);
  std::thread dropper1([&] { put4(core, 5); });  // drops packet 1 and parks
  while (s.phase.load() != 1)
    std::this_thread::yield();
  put4(core, 6);  // dropper 2: steps over packet 1 (claimed), drops packet 2
  dropper1.join();
  observe_hook.store(nullptr, std::memory_order_release);
  EXPECT_FALSE(s.header_changed.load())
      << "the victim's header changed while a lock holder read its length";

  // Every packet put is dropped or claimed once, and nothing outside the
  // storage changed.
  std::vector<std::uint32_t> seen = s.dropped;  // (both droppers joined)
  for (;;) {
    const pbuf_span p = core.try_claim();
    if (p.words == nullptr) break;
    EXPECT_EQ(p.size, 4u);
    seen.push_back(p.words[1] >> 2);
    core.free(p.words);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{1, 2, 3, 4, 5, 6}));
  for (std::uint32_t i = size_words; i < size_words + guard_words; ++i)
    EXPECT_EQ(arena[i], guard) << "word " << i << " past the storage";
  EXPECT_EQ(core.used_words(), 0u);
  pbuf_span p;
  EXPECT_EQ(core.try_alloc(size_words, p), pbuf_status::ok);
  current = nullptr;
}

}  // namespace
