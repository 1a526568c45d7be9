// Shared by the hook tests: the one definition of sluice_pbuf_test_hook
// lives in packet_buffer_move_test.cpp; other tests set an action here.
#pragma once

#include <atomic>

// Run once at the next claim_looked (then cleared), before the move
// tests' own handling of that point.
extern std::atomic<void (*)()> at_claim_looked;
