// Shared by the hook tests and the no-token tests: a dropper on another
// thread meets the consumer's turn with the overwrite lock (not a biased
// turn: a dropper ended the bias before). Uses the hooks declared in
// hooks.hpp, which each binary defines.
//
// A full overwrite buffer of four 4-word packets tagged 1..4. A first
// dropper, with nobody else running, drops packet 1 to fit packet 5: that
// ends the consumer's bias, so its next turns take the lock. Then the
// consumer claims, held at claim_looked inside its locked turn, while a
// second dropper on another thread needs room for packet 6. The consumer
// holds its turn until the dropper returned (without tokens it must give
// up on the consumer's lock after a short spin) or, with `release_after`
// > 0, until the dropper has looked at the held lock that many times (with
// tokens it must still be waiting then, and get the lock once the turn
// ends).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include "executor_test_support.hpp"
#include "hooks.hpp"
#include "pbuf_test_support.hpp"
#include "victim_turn.hpp"

namespace sluice::test {

struct lock_turn_seen {
  bool consumer_locked = false;    // at claim_looked: the lock held by the consumer, no biased turn
  std::uint32_t awaited = 0;       // the dropper's looks at the held lock (lock_awaited)
  std::uint32_t awaited_role = 0;  // the lock's role at the dropper's first look
  int dropper_status = -1;         // its pbuf_status once it returned
  int status_at_release = -1;      // the same, when the consumer went on (-1: still inside)
  detail::pbuf_span got;           // the consumer's claim (packet 2)
};

// Every atomic of the scenario is seq_cst (the default): they are the
// handshakes between the test thread, the dropper and the hooks, none on
// the buffer's path; the loads of the buffer's own words are snapshots for
// the checks.
namespace lock_turn_detail {
inline std::atomic<detail::pbuf_core*> core{nullptr};
inline std::atomic<bool> in_turn{false}, locked{false};
inline std::atomic<std::uint32_t> awaited{0}, role{0}, release_after{0};
inline std::atomic<int> status{-1}, status_at_release{-1};
}  // namespace lock_turn_detail

// Runs the scenario on `c`: an empty overwrite buffer of 16 words whose
// drop callback, if any, returns at once.
inline lock_turn_seen dropper_beside_a_locked_turn(detail::pbuf_core& c,
                                                   std::uint32_t release_after) {
  namespace v = lock_turn_detail;
  using namespace std::chrono_literals;
  abort_watchdog dog(50s, "a dropper beside the consumer's locked turn");
  lock_turn_seen seen;
  v::core.store(&c);
  v::in_turn.store(false);
  v::locked.store(false);
  v::awaited.store(0);
  v::role.store(0);
  v::release_after.store(release_after);
  v::status.store(-1);
  v::status_at_release.store(-1);
  fill_four_tagged(c);
  if (::testing::Test::HasFatalFailure()) return seen;
  {
    detail::pbuf_span p;
    EXPECT_EQ(c.try_alloc(4, p), detail::pbuf_status::ok) << "the first drop";
    if (p.words == nullptr) return seen;
    p.words[1] = 5u << 2;
    commit_with_length(c, p);
  }
  EXPECT_EQ(c.lock_bias.load(), 0u) << "the first drop did not end the consumer's bias";
  observe_hook.store(
      +[](detail::pbuf_hook point) {
        if (point != detail::pbuf_hook::lock_awaited || !v::in_turn.load()) return;
        if (v::awaited.fetch_add(1) == 0)
          v::role.store(v::core.load()->lock.load() & detail::pbuf_lock_role_mask);
      },
      std::memory_order_release);
  at_claim_looked.store(
      +[] {
        detail::pbuf_core& core = *v::core.load();
        v::locked.store((core.lock.load() & detail::pbuf_lock_role_mask) ==
                            detail::pbuf_lock_consumer &&
                        core.consumer_in.load() == 0);
        v::in_turn.store(true);
        // Until the dropper returns, or looked at the lock release_after
        // times; bounded under the watchdog's limit, so that a dropper that
        // does neither fails the checks instead of hanging the test.
        const auto deadline = std::chrono::steady_clock::now() + 40s;
        while (v::status.load() == -1 &&
               (v::release_after.load() == 0 || v::awaited.load() < v::release_after.load()) &&
               std::chrono::steady_clock::now() < deadline)
          std::this_thread::yield();
        v::status_at_release.store(v::status.load());
      },
      std::memory_order_release);
  std::thread dropper([&c] {
    while (!v::in_turn.load())
      std::this_thread::yield();
    detail::pbuf_span q;
    const detail::pbuf_status s = c.try_alloc(4, q);  // packet 2 is claimed: drops 3
    if (s == detail::pbuf_status::ok) {
      q.words[1] = 6u << 2;
      commit_with_length(c, q);
    }
    v::status.store(static_cast<int>(s));
  });
  seen.got = c.try_claim();
  v::in_turn.store(true);  // a claim that never reached the hook must not hang the dropper
  dropper.join();
  observe_hook.store(nullptr, std::memory_order_release);
  at_claim_looked.store(nullptr, std::memory_order_release);
  seen.consumer_locked = v::locked.load();
  seen.awaited = v::awaited.load();
  seen.awaited_role = v::role.load();
  seen.dropper_status = v::status.load();
  seen.status_at_release = v::status_at_release.load();
  return seen;
}

// The buffer of the scenario: overwrite, 16 words, no drop callback.
struct lock_turn_buffer {
  std::uint32_t storage[16];
  detail::pbuf_core core{{.buffer = storage, .size = 16, .flags = detail::pbuf_flag_overwrite}};
};

// The packets left after the consumer's claim (packet 2, freed here), in
// order, then nothing.
inline void expect_tags_then_nothing(detail::pbuf_core& c, const lock_turn_seen& seen,
                                     std::initializer_list<std::uint32_t> tags) {
  ASSERT_NE(seen.got.words, nullptr);
  EXPECT_EQ(seen.got.words[1] >> 2, 2u);
  c.free(seen.got.words);
  for (std::uint32_t tag : tags) {
    const detail::pbuf_span p = c.try_claim();
    ASSERT_NE(p.words, nullptr) << "packet " << tag << " missing";
    EXPECT_EQ(p.words[1] >> 2, tag);
    c.free(p.words);
  }
  EXPECT_FALSE(c.is_pending());
}

}  // namespace sluice::test
