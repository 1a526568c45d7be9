// Shared by the packet buffer's unit and hook tests.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/waker.hpp>

namespace sluice::test {

// Publishes an allocated packet whose length lives in its header (the
// default layout): the header's user bits, then commit.
inline void commit_with_length(detail::pbuf_core& core, detail::pbuf_span p) {
  // Relaxed: the producer's own word until commit publishes it (a header
  // word is only ever accessed atomically: claims and droppers may load it).
  detail::atomic_ref<std::uint32_t>(*p.words).store(p.size << detail::pbuf_hdr_bits,
                                                    std::memory_order_relaxed);
  core.commit(p.words);
}

// Leaves a new buffer (nothing put yet) empty at `position` (1 to its
// size): one packet of that many words through, with its length in the
// header. The words it used are zero again.
inline void make_empty_at(detail::pbuf_core& core, std::uint32_t position) {
  detail::pbuf_span p;
  ASSERT_EQ(core.try_alloc(position, p), detail::pbuf_status::ok);
  commit_with_length(core, p);
  const detail::pbuf_span claimed = core.try_claim();
  ASSERT_EQ(claimed.words, p.words);
  core.free(claimed.words);
  ASSERT_EQ(core.used_words(), 0u);
}

// Allocates, and commits with its length in the header, a packet of
// `words`; its span (null words when there was no room).
inline detail::pbuf_span put_with_length(detail::pbuf_core& core, std::uint32_t words) {
  detail::pbuf_span p;
  EXPECT_EQ(core.try_alloc(words, p), detail::pbuf_status::ok) << words << " words";
  if (p.words != nullptr) commit_with_length(core, p);
  return p;
}

// Claims each of `expected` in turn (where and how long), frees it, and
// then finds the buffer empty.
inline void claim_in_order(detail::pbuf_core& core,
                           std::initializer_list<detail::pbuf_span> expected) {
  for (const detail::pbuf_span e : expected) {
    const detail::pbuf_span got = core.try_claim();
    ASSERT_EQ(got.words, e.words);
    EXPECT_EQ(got.size, e.size);
    core.free(got.words);
  }
  EXPECT_EQ(core.used_words(), 0u);
  EXPECT_EQ(core.try_claim().words, nullptr);
}

// A packet_words answer for packets whose header's user bits hold their
// length.
inline std::uint32_t length_in_user_bits(const std::uint32_t* packet) noexcept {
  // Relaxed: the caller (claim, free, a dropper) owns the packet.
  return detail::atomic_ref<std::uint32_t>(*const_cast<std::uint32_t*>(packet))
             .load(std::memory_order_relaxed) >>
         detail::pbuf_hdr_bits;
}

// Exact-once accounting of a stress test: per producer and sequence
// number, how many times the packet was claimed and how many times it was
// reported dropped. The counts are atomic (a drop callback runs on the
// producers' threads); read them once every thread has been joined.
class packet_ledger {
 public:
  // capacities[pid]: how many packets producer pid may send.
  explicit packet_ledger(const std::vector<std::uint32_t>& capacities) {
    for (const std::uint32_t n : capacities) {
      claimed_.emplace_back(new std::atomic<std::uint8_t>[n]());
      dropped_.emplace_back(new std::atomic<std::uint8_t>[n]());
    }
  }
  // Relaxed: tallies, read after the joins.
  void claim(std::uint32_t pid, std::uint32_t seq) {
    claimed_[pid][seq].fetch_add(1, std::memory_order_relaxed);
  }
  void drop(std::uint32_t pid, std::uint32_t seq) {
    dropped_[pid][seq].fetch_add(1, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint32_t claims(std::uint32_t pid, std::uint32_t seq) const {
    return claimed_[pid][seq].load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint32_t drops(std::uint32_t pid, std::uint32_t seq) const {
    return dropped_[pid][seq].load(std::memory_order_relaxed);
  }
  // Fails (naming the first five) for each of producer pid's first `sent`
  // packets that was not claimed or dropped exactly once; adds the claims
  // and drops to the totals.
  void expect_each_once(std::uint32_t pid, std::uint32_t sent, std::uint64_t& claimed_total,
                        std::uint64_t& dropped_total) const {
    std::uint32_t wrong = 0;
    for (std::uint32_t seq = 0; seq < sent; ++seq) {
      const std::uint32_t c = claims(pid, seq), d = drops(pid, seq);
      claimed_total += c;
      dropped_total += d;
      if (c + d != 1 && wrong++ < 5)
        ADD_FAILURE() << "pid " << pid << " seq " << seq << ": claimed " << c << ", dropped " << d;
    }
  }

 private:
  std::vector<std::unique_ptr<std::atomic<std::uint8_t>[]>> claimed_, dropped_;
};

// An engine on 8 words of its own, with or without overwrite.
struct eight_word_core {
  std::uint32_t words[8];
  detail::pbuf_core core;
  explicit eight_word_core(bool overwrite)
      : core({.buffer = words, .size = 8, .flags = overwrite ? detail::pbuf_flag_overwrite : 0u}) {}
  eight_word_core(const eight_word_core&) = delete;
  eight_word_core& operator=(const eight_word_core&) = delete;
};

// Fills a new buffer of 8 words with two committed packets of 4 and claims
// the first: full, and the claimed packet's free is the room. Its span.
inline detail::pbuf_span full_holding_the_first(detail::pbuf_core& core) {
  EXPECT_EQ(core.size, 8u);
  (void)put_with_length(core, 4);
  (void)put_with_length(core, 4);
  const detail::pbuf_span held = core.try_claim();
  EXPECT_NE(held.words, nullptr);
  return held;
}

// Until somebody is listed on `list` (true), or `done` (false: the wait
// being watched returned without listing itself): observed, not timed.
inline bool listed_before(const detail::waiter_list& list, const std::atomic<bool>& done) {
  for (;;) {
    if (list.approx_has_waiters()) return true;
    // Relaxed: a stop flag, set once the wait returned; nothing is read
    // after it (the caller's checks come after joins).
    if (done.load(std::memory_order_relaxed)) return false;
    std::this_thread::yield();
  }
}

// Counts the wakes of the wakers made from it (sluice::make_waker), and
// their references: it must outlive them, and when it goes every one must
// have been released (a waker clone kept by a list it left, or never
// dropped, fails the test). Relaxed: counts, read by the thread that woke
// and released, or after the thread that did is joined (the join orders
// them); nothing else is read through them.
struct wake_counter {
  std::atomic<int> wakes{0};
  std::atomic<int> refs{0};
  wake_counter() = default;
  wake_counter(const wake_counter&) = delete;
  wake_counter& operator=(const wake_counter&) = delete;
  ~wake_counter() {
    EXPECT_EQ(refs.load(std::memory_order_relaxed), 0)
        << "a waker of this counter was never released";
  }
  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept { refs.fetch_sub(1, std::memory_order_relaxed); }
  void wake_by_ref() noexcept { wakes.fetch_add(1, std::memory_order_relaxed); }
  int count() const noexcept { return wakes.load(std::memory_order_relaxed); }
  int live_refs() const noexcept { return refs.load(std::memory_order_relaxed); }
};

}  // namespace sluice::test
