#include <sluice/port.hpp>
#include <sluice/time.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <limits>

using namespace std::chrono_literals;

namespace {

TEST(Time, ChronoDurationsConvertExactly) {
  EXPECT_EQ(sluice::duration{1s}.ns, 1'000'000'000);
  EXPECT_EQ(sluice::duration{3ms}.ns, 3'000'000);
  EXPECT_EQ(sluice::duration{7us}.ns, 7'000);
  EXPECT_EQ(sluice::duration{9ns}.ns, 9);
  EXPECT_EQ(sluice::duration{2min}.ns, 120'000'000'000);
  EXPECT_EQ(sluice::duration{-5ms}.ns, -5'000'000);
  EXPECT_EQ(sluice::duration{std::chrono::duration<double>(0.5)}.ns, 500'000'000);
}

TEST(Time, HugeDurationsSaturate) {
  EXPECT_EQ(sluice::duration{std::chrono::hours::max()}, sluice::duration::max());
  EXPECT_EQ(sluice::duration{std::chrono::nanoseconds::max()}, sluice::duration::max());
  EXPECT_EQ(sluice::duration{std::chrono::seconds::min()}.ns,
            std::numeric_limits<std::int64_t>::min());
}

// Periods finer than a nanosecond divide (the saturation bound of a ratio
// that multiplies would overflow there), and unsigned counts beyond
// intmax_t's range saturate instead of turning negative.
TEST(Time, FinePeriodsAndUnsignedCountsConvert) {
  using picoseconds = std::chrono::duration<std::int64_t, std::pico>;
  EXPECT_EQ(sluice::duration{picoseconds(5'000'000)}.ns, 5'000);
  EXPECT_EQ(sluice::duration{picoseconds(-5'000'000)}.ns, -5'000);
  EXPECT_EQ(sluice::duration{picoseconds::max()}.ns, picoseconds::max().count() / 1000);
  using unsigned_ms = std::chrono::duration<std::uint64_t, std::milli>;
  EXPECT_EQ(sluice::duration{unsigned_ms::max()}, sluice::duration::max());
  EXPECT_EQ(sluice::duration{unsigned_ms(3)}.ns, 3'000'000);
}

// A period whose remainder term, (count % den) * num * 1e9, overflows 64
// bits: 999999936 units of 13/999999937 s are 12999999986.x ns.
TEST(Time, PeriodsWithALargeNumeratorAndDenominatorConvert) {
  using odd = std::chrono::duration<std::int64_t, std::ratio<13, 999999937>>;
  EXPECT_EQ(sluice::duration{odd(999'999'936)}.ns, 12'999'999'986);
  EXPECT_EQ(sluice::duration{odd(-999'999'936)}.ns, -12'999'999'986);
  EXPECT_EQ(sluice::duration{odd(999'999'937 * 2 + 1)}.ns, 26'000'000'013);
  // And in constant evaluation (a constexpr chrono duration converts there).
  static_assert(sluice::duration{odd(999'999'936)}.ns == 12'999'999'986);
  static_assert(sluice::duration{odd(-999'999'936)}.ns == -12'999'999'986);
}

TEST(Time, DeadlineArithmeticSaturates) {
  const sluice::time_point t{1000};
  EXPECT_EQ((t + sluice::duration::max()), sluice::time_point::max());
  EXPECT_EQ((t + sluice::duration{-2000}).ns, 0u);
  EXPECT_EQ((t + sluice::duration{-1000}).ns, 0u);
  EXPECT_EQ((t + sluice::duration{-1}).ns, 999u);
  EXPECT_EQ((t + sluice::duration{5}).ns, 1005u);
  EXPECT_EQ((sluice::time_point{10} - sluice::time_point{20}), sluice::duration::zero());
  EXPECT_EQ((sluice::time_point{20} - sluice::time_point{10}).ns, 10);
}

TEST(Time, SteadyClockTimePointsConvert) {
  // An hour ahead: however long this thread is descheduled between the
  // two clock reads, the difference stays far above the lower bound.
  const auto target = std::chrono::steady_clock::now() + 1h;
  const sluice::time_point t = sluice::to_time_point(target);
  const auto left = t - sluice::port::now();
  EXPECT_LE(left.ns, sluice::duration{1h}.ns);
  EXPECT_GT(left.ns, sluice::duration{59min}.ns);
}

// min() is a common "already expired": it gives now, not a difference
// that overflows (wrapped, a deadline some 292 years ahead). Time points
// already past give now as well; max() gives a deadline that far ahead.
TEST(Time, ChronoTimePointsAtTheLimitsConvert) {
  const sluice::time_point before = sluice::port::now();
  const sluice::time_point steady_min =
      sluice::to_time_point(std::chrono::steady_clock::time_point::min());
  const sluice::time_point system_min =
      sluice::to_time_point(std::chrono::system_clock::time_point::min());
  const sluice::time_point past = sluice::to_time_point(std::chrono::steady_clock::now() - 1h);
  const sluice::time_point after = sluice::port::now();
  for (const sluice::time_point t : {steady_min, system_min, past}) {
    EXPECT_GE(t.ns, before.ns);
    EXPECT_LE(t.ns, after.ns);
  }
  const sluice::time_point far =
      sluice::to_time_point(std::chrono::steady_clock::time_point::max());
  EXPECT_GT((far - sluice::port::now()).ns,
            sluice::duration{std::chrono::hours(24 * 365 * 100)}.ns);
}

// A NaN duration converts to none (the conversion of NaN to an integer is
// undefined).
TEST(Time, ANaNDurationIsNone) {
  EXPECT_EQ(
      sluice::duration{std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN())}.ns,
      0);
}

TEST(Time, MonotonicClockMatchesSteadyClock) {
  const auto a = std::chrono::steady_clock::now().time_since_epoch();
  const auto b = sluice::port::now();
  const auto c = std::chrono::steady_clock::now().time_since_epoch();
  EXPECT_LE(sluice::duration{a}.ns, static_cast<std::int64_t>(b.ns));
  EXPECT_GE(sluice::duration{c}.ns, static_cast<std::int64_t>(b.ns));
}

}  // namespace
