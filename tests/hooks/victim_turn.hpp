// Shared by the hook tests and the no-token tests: a dropper's victim beside
// the consumer's biased turn (overwrite; pbuf_core.hpp, "The consumer's
// biased turn"). Uses the hooks declared in hooks.hpp, which each binary
// defines.
//
// A full buffer of four 4-word packets tagged 1..4. A dropper, on its own
// thread, needs room for a fifth (tag 5): it drops packet 1, the victim,
// and its drop callback holds it until the consumer is inside a biased
// turn (the test sets the bias again, as the consumer's locked turns would
// after a stretch), held at claim_looked. There the consumer lets the
// dropper go and waits until the dropper reaches `wait_point`, where the
// victim's header and the lock word are recorded; then the claim goes on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

#include "executor_test_support.hpp"
#include "hooks.hpp"
#include "pbuf_test_support.hpp"

namespace sluice::test {

struct victim_turn_seen {
  bool consumer_in_turn = false;  // at claim_looked, inside a biased turn
  bool dropper_reached = false;   // the dropper reached wait_point meanwhile
  std::uint32_t victim_tag = 0;
  std::uint32_t victim_header = 0;  // at wait_point
  std::uint32_t lock = 0;           // the lock word at wait_point
  int dropper_status = -1;          // its pbuf_status
  detail::pbuf_span got;            // the consumer's claim (packet 2)
};

// Every atomic of the scenario is seq_cst (the default): they are the
// handshakes between the test thread, the dropper and the hooks, read in
// the order the scenario describes, and none is on the buffer's path; the
// loads of the buffer's own words (lock, consumer_in, the victim's header)
// are snapshots for the checks.
namespace victim_turn_detail {
inline std::atomic<detail::pbuf_core*> core{nullptr};
inline std::atomic<detail::pbuf_hook> wait_point{detail::pbuf_hook::turn_awaited};
inline std::atomic<bool> in_callback{false}, callback_go{false}, reached{false}, in_turn{false};
inline std::atomic<std::uint32_t> tag{0}, header{0}, lock{0};
inline std::atomic<int> status{-1};  // the dropper's pbuf_status once it returned

inline void hold_in_callback(void*, const std::uint32_t* packet, std::uint32_t) noexcept {
  tag.store(packet[1] >> 2);
  in_callback.store(true);
  while (!callback_go.load())
    std::this_thread::yield();
}
}  // namespace victim_turn_detail

// A full overwrite buffer of four 4-word packets, tagged 1..4.
inline void fill_four_tagged(detail::pbuf_core& c) {
  for (std::uint32_t tag = 1; tag <= 4; ++tag) {
    detail::pbuf_span p;
    ASSERT_EQ(c.try_alloc(4, p), detail::pbuf_status::ok);
    p.words[1] = tag << 2;
    commit_with_length(c, p);
  }
}

// Runs the scenario on a new victim_turn_buffer's core.
inline victim_turn_seen victim_beside_a_biased_turn(detail::pbuf_core& c,
                                                    detail::pbuf_hook wait_point) {
  namespace v = victim_turn_detail;
  using namespace std::chrono_literals;
  abort_watchdog dog(50s, "a victim beside the consumer's biased turn");
  v::core.store(&c);
  v::wait_point.store(wait_point);
  v::in_callback.store(false);
  v::callback_go.store(false);
  v::reached.store(false);
  v::in_turn.store(false);
  v::tag.store(0);
  v::header.store(0);
  v::lock.store(~0u);
  fill_four_tagged(c);
  if (::testing::Test::HasFatalFailure()) return {};
  v::status.store(-1);
  victim_turn_seen seen;
  std::atomic<int>& status = v::status;
  std::thread dropper([&] {
    detail::pbuf_span q;
    const detail::pbuf_status s = c.try_alloc(4, q);  // drops packet 1, the victim
    if (s == detail::pbuf_status::ok) {
      q.words[1] = 5u << 2;
      commit_with_length(c, q);
    }
    status.store(static_cast<int>(s));
  });
  // Until the callback holds the dropper (or the dropper returned without
  // dropping: then the scenario cannot run).
  while (!v::in_callback.load() && status.load() == -1)
    std::this_thread::yield();
  if (!v::in_callback.load()) {
    ADD_FAILURE() << "the dropper returned without dropping (status " << status.load() << ")";
    dropper.join();
    seen.dropper_status = status.load();
    return seen;
  }
  // As the consumer's locked turn sets it at the end of a stretch; nobody
  // holds the lock now (the dropper's callback runs outside it).
  c.lock_bias.store(1);
  observe_hook.store(
      +[](detail::pbuf_hook point) {
        if (point != v::wait_point.load() || v::reached.load()) return;
        v::header.store(std::atomic_ref<std::uint32_t>(v::core.load()->buf[0]).load());
        v::lock.store(v::core.load()->lock.load());
        v::reached.store(true);
      },
      std::memory_order_release);
  at_claim_looked.store(
      +[] {
        v::in_turn.store(v::core.load()->consumer_in.load() != 0);
        v::callback_go.store(true);  // whatever was seen: the dropper must not hang
        // Until the dropper reaches the point, or returns without reaching it
        // (the check of `reached` fails then). A dropper that does neither
        // waits for this turn, which would never end: the bound, under the
        // watchdog's, turns that into the same failure, however slow the
        // machine is to run the dropper.
        const auto deadline = std::chrono::steady_clock::now() + 40s;
        while (!v::reached.load() && v::status.load() == -1 &&
               std::chrono::steady_clock::now() < deadline)
          std::this_thread::yield();
      },
      std::memory_order_release);
  seen.got = c.try_claim();
  v::callback_go.store(true);  // a claim that never reached the hook must not hang the test
  dropper.join();
  observe_hook.store(nullptr, std::memory_order_release);
  at_claim_looked.store(nullptr, std::memory_order_release);
  seen.consumer_in_turn = v::in_turn.load();
  seen.dropper_reached = v::reached.load();
  seen.victim_tag = v::tag.load();
  seen.victim_header = v::header.load();
  seen.lock = v::lock.load();
  seen.dropper_status = status.load();
  return seen;
}

// The buffer of the scenario: overwrite, 16 words, the holding callback.
struct victim_turn_buffer {
  std::uint32_t storage[16];
  detail::pbuf_core core{{.buffer = storage,
                          .size = 16,
                          .flags = detail::pbuf_flag_overwrite,
                          .drop = &victim_turn_detail::hold_in_callback}};
};

// What every run of the scenario must show: the consumer was in its turn,
// the dropper reached the point (`reached`: what it failed to do
// otherwise), the victim was packet 1 and still read claimed there, and the
// dropper's allocation succeeded in the end.
inline void expect_victim_claimed_at_the_point(const victim_turn_seen& seen, const char* reached) {
  EXPECT_TRUE(seen.consumer_in_turn) << "the claim did not reach claim_looked in a biased turn";
  EXPECT_TRUE(seen.dropper_reached) << reached;
  EXPECT_EQ(seen.victim_tag, 1u);
  EXPECT_EQ(seen.victim_header & detail::pbuf_hdr_mask, detail::pbuf_valid | detail::pbuf_busy)
      << "the victim ended (became a skip) beside the consumer's biased turn";
  EXPECT_EQ(seen.dropper_status, static_cast<int>(detail::pbuf_status::ok));
}

// After the scenario: packet 2 (the claim's), then 3, 4 and the dropper's 5,
// in order; nothing after.
inline void expect_the_rest_in_order(detail::pbuf_core& c, const victim_turn_seen& seen) {
  ASSERT_NE(seen.got.words, nullptr);
  EXPECT_EQ(seen.got.words[1] >> 2, 2u);
  c.free(seen.got.words);
  for (std::uint32_t tag : {3u, 4u, 5u}) {
    const detail::pbuf_span p = c.try_claim();
    ASSERT_NE(p.words, nullptr);
    EXPECT_EQ(p.words[1] >> 2, tag);
    c.free(p.words);
  }
  EXPECT_FALSE(c.is_pending());
}

}  // namespace sluice::test
