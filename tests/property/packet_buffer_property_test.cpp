// Seeded random operation sequences on sluice::packet_buffer against the
// sequential reference model (packet_buffer_model.hpp), both policies,
// sizes from 1 to 40 words and requests that straddle the wrap and the
// capacity. A failure prints the seed; SLUICE_PBUF_SEED=<n> replays one.
#include <cstdint>
#include <cstdlib>
#include <random>

#include <gtest/gtest.h>

#include "packet_buffer_model.hpp"

namespace {

#if defined(SLUICE_SANITIZED)
constexpr std::uint32_t seeds = 300;
#else
constexpr std::uint32_t seeds = 2000;
#endif
constexpr std::uint32_t ops_per_seed = 400;

void run_seed(std::uint64_t seed, bool overwrite) {
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
