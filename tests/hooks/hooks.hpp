// Shared by the hook tests (and the no-token tests): the hooks other tests
// set, and the part of sluice_pbuf_test_hook that runs them. Each binary
// defines sluice_pbuf_test_hook once (the hook binary in
// packet_buffer_move_test.cpp, the no-token binary in
// tests/no_tokens/packet_buffer_no_token_test.cpp) and starts it with
// run_shared_hooks().
#pragma once

#include <atomic>

#include <sluice/detail/pbuf_core.hpp>

// Both hooks are set (and cleared) with release and read (or taken) with
// acquire: a test may set one while the thread that reaches it already
// runs, and the hook may read what the test wrote before setting it.

// Run once at the next claim_looked (then cleared), before the binary's own
// handling of that point.
inline std::atomic<void (*)()> at_claim_looked{nullptr};

// Called first at every hook point, from whichever thread reaches it, while
// set (the move stress test counts the move's steps with it).
inline std::atomic<void (*)(sluice::detail::pbuf_hook)> observe_hook{nullptr};

// Runs observe_hook, and at claim_looked the one-shot action. True: that
// action ran (the caller's own handling of the point is skipped).
inline bool run_shared_hooks(sluice::detail::pbuf_hook point) noexcept {
  if (auto* observe = observe_hook.load(std::memory_order_acquire)) observe(point);
  if (point != sluice::detail::pbuf_hook::claim_looked) return false;
  auto* action = at_claim_looked.exchange(nullptr, std::memory_order_acquire);
  if (action == nullptr) return false;
  action();
  return true;
}
