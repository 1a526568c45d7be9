// Shared by the hook tests: the one definition of sluice_pbuf_test_hook
// (and of these hooks) in the hook binary lives in
// packet_buffer_move_test.cpp, in the no-token binary in
// tests/no_tokens/packet_buffer_no_token_test.cpp; other tests set an
// action here.
#pragma once

#include <atomic>

#include <sluice/detail/pbuf_core.hpp>

// Run once at the next claim_looked (then cleared), before the move
// tests' own handling of that point.
extern std::atomic<void (*)()> at_claim_looked;

// Called first at every hook point, from whichever thread reaches it, while
// set (the move stress test counts the move's steps with it).
extern std::atomic<void (*)(sluice::detail::pbuf_hook)> observe_hook;
