// Seeded random operation sequences on sluice::packet_buffer against the
// sequential reference model (packet_buffer_model.hpp), both policies,
// sizes from 1 to 40 words and requests that straddle the wrap and the
// capacity. A failure prints the seed, and so does a crash or an abort
// (a debug check in the engine, the model's own) inside a seed;
// SLUICE_PBUF_SEED=<n> replays one.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <random>

#include <gtest/gtest.h>

#include "packet_buffer_model.hpp"

#if defined(SLUICE_SANITIZED)
// A sanitizer's report ends the process through abort() rather than its
// own exit, so that the handler below names the seed after the report.
// (Options from the environment still apply on top.)
extern "C" const char* __asan_default_options() {
  return "abort_on_error=1";
}
extern "C" const char* __ubsan_default_options() {
  return "abort_on_error=1";
}
extern "C" const char* __tsan_default_options() {
  return "abort_on_error=1";
}
#endif

namespace {

#if defined(SLUICE_SANITIZED)
constexpr std::uint32_t seeds = 300;
#else
constexpr std::uint32_t seeds = 2000;
#endif
constexpr std::uint32_t ops_per_seed = 400;

// The seed being run, for a signal that ends the process inside it: the
// line is formatted before the seed starts, so that the handler only
// writes it (write is async-signal-safe).
char crash_line[128];
volatile std::sig_atomic_t crash_line_length = 0;
constexpr int crash_signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
struct sigaction previous_actions[std::size(crash_signals)];

extern "C" void print_seed_and_go_on(int sig) {
  if (crash_line_length != 0)
    (void)!write(STDERR_FILENO, crash_line, static_cast<std::size_t>(crash_line_length));
  // The action that was there before (the default, or a sanitizer's
  // report), then the signal again: a fault repeats when this returns, an
  // abort is raised again.
  for (std::size_t i = 0; i < std::size(crash_signals); ++i)
    if (crash_signals[i] == sig) sigaction(sig, &previous_actions[i], nullptr);
  if (sig == SIGABRT) raise(sig);
}

// Installs the handler for the life of one test.
class seed_on_crash {
 public:
  seed_on_crash() {
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_handler = print_seed_and_go_on;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    for (std::size_t i = 0; i < std::size(crash_signals); ++i)
      sigaction(crash_signals[i], &action, &previous_actions[i]);
  }
  ~seed_on_crash() {
    crash_line_length = 0;
    for (std::size_t i = 0; i < std::size(crash_signals); ++i)
      sigaction(crash_signals[i], &previous_actions[i], nullptr);
  }
  seed_on_crash(const seed_on_crash&) = delete;
  seed_on_crash& operator=(const seed_on_crash&) = delete;

  static void running(std::uint64_t seed, bool overwrite) {
    const int n = std::snprintf(crash_line, sizeof crash_line,
                                "\nthe process ended inside seed %llu (%s)\n  replay: "
                                "SLUICE_PBUF_SEED=%llu\n",
                                static_cast<unsigned long long>(seed),
                                overwrite ? "overwrite" : "no overwrite",
                                static_cast<unsigned long long>(seed));
    // The line before its length, for the handler on this thread.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    crash_line_length = n > 0 ? n : 0;
  }
};

void run_seed(std::uint64_t seed, bool overwrite) {
  seed_on_crash::running(seed, overwrite);
  std::mt19937_64 rng(seed);
  const auto size = static_cast<std::uint32_t>(1 + rng() % 40);
  sluice::test::pbuf_checker checker(size, overwrite);
  for (std::uint32_t i = 0; i < ops_per_seed; ++i) {
    const auto op = static_cast<std::uint8_t>(rng());
    const auto arg = static_cast<std::uint32_t>(rng());
    if (!checker.step(op, arg) || !checker.check_observers()) {
      FAIL() << "seed " << seed << (overwrite ? " (overwrite)" : " (no overwrite)") << ", size "
             << size << ", step " << i << ": " << checker.error()
             << "\n  replay: SLUICE_PBUF_SEED=" << seed;
    }
  }
}

void run_all(bool overwrite) {
  const seed_on_crash note;
  if (const char* s = std::getenv("SLUICE_PBUF_SEED")) {
    run_seed(std::strtoull(s, nullptr, 10), overwrite);
    return;
  }
  for (std::uint64_t seed = 1; seed <= seeds && !::testing::Test::HasFailure(); ++seed)
    run_seed(seed, overwrite);
}

TEST(PacketBufferModel, NoOverwriteMatchesTheModel) {
  run_all(false);
}
TEST(PacketBufferModel, OverwriteMatchesTheModel) {
  run_all(true);
}

}  // namespace
