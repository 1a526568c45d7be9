// The unit test binary's replaced global allocation functions
// (tests/unit/counting_allocator.cpp): they count, per thread, and note
// every free made while a test's signal handler runs.
#pragma once

#include <atomic>
#include <csignal>

namespace sluice::test {

// Allocations and frees made by the calling thread so far.
extern thread_local constinit long allocations;
extern thread_local constinit long frees;

// Set by a test's signal handler while it runs, on the thread it
// interrupted; every operator delete on that thread meanwhile counts in
// frees_in_handler (frees on other threads do not).
extern thread_local constinit volatile std::sig_atomic_t in_signal_handler;
extern std::atomic<long> frees_in_handler;
// Every operator delete of the binary, on any thread (relaxed; read it
// after joining the threads that free).
extern std::atomic<long> frees_by_all_threads;

}  // namespace sluice::test
