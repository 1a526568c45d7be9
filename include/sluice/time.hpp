// Time for the core: nanoseconds on the port's monotonic clock.
//
// The core cannot include <chrono> (it is not part of the freestanding
// library), so sluice has two small value types. duration converts
// implicitly from any std::chrono::duration through duck typing, so hosted
// callers write `rx.recv_for(10ms)` as usual; time_point does not, but the
// channel's and sleep's `_until` forms also take a steady-clock
// time_point (through to_time_point, port.hpp).
#pragma once

#include <concepts>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace sluice {

namespace detail {

template <class D>
concept chrono_duration_like = requires(const D& d) {
  typename D::rep;
  typename D::period;
  { D::period::num } -> std::convertible_to<std::intmax_t>;
  { D::period::den } -> std::convertible_to<std::intmax_t>;
  { d.count() } -> std::convertible_to<typename D::rep>;
};

template <class P>
concept chrono_time_point_like = requires(const P& p) {
  typename P::clock;
  typename P::duration;
  { P::clock::now() } -> std::same_as<P>;
  { p.time_since_epoch() } -> chrono_duration_like;
};

constexpr std::intmax_t gcd(std::intmax_t a, std::intmax_t b) noexcept {
  while (b != 0) {
    const std::intmax_t t = a % b;
    a = b;
    b = t;
  }
  return a < 0 ? -a : a;
}

// Converts a count of (Num/Den)-second units to nanoseconds, saturating at
// the int64 limits so that duration::max() style "forever" values stay
// forever instead of wrapping.
template <std::intmax_t Num, std::intmax_t Den, class Rep>
constexpr std::int64_t to_nanoseconds(Rep count) noexcept {
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t min = std::numeric_limits<std::int64_t>::min();
  if constexpr (std::floating_point<Rep>) {
    const long double ns = static_cast<long double>(count) * Num * 1'000'000'000.0L / Den;
    // NaN (no duration at all) counts as none: a wait with it ends at once
    // rather than converting it, which is undefined.
    if (ns != ns) return 0;
    if (ns >= static_cast<long double>(max)) return max;
    if (ns <= static_cast<long double>(min)) return min;
    return static_cast<std::int64_t>(ns);
  } else {
    // ns = count * Num * 1e9 / Den, computed as count * (mul / div) with the
    // ratio reduced first so that exact cases (s, ms, us, ns) never divide.
    constexpr std::intmax_t a = Num * 1'000'000'000;
    constexpr std::intmax_t g = gcd(a, Den);
    constexpr std::intmax_t mul = a / g;
    constexpr std::intmax_t div = Den / g;
    // An unsigned count above intmax_t's range (a "forever" such as
    // duration<uint64_t>::max()) would turn negative: it saturates.
    if constexpr (std::is_unsigned_v<Rep>) {
      if (count > static_cast<std::uintmax_t>(std::numeric_limits<std::intmax_t>::max()))
        return max;
    }
    const auto c = static_cast<std::intmax_t>(count);
    // Only a ratio that multiplies can overflow (and only then is the
    // bound below representable: mul > div).
    if constexpr (mul > div) {
      if (c > 0 && c > max / mul * div) return max;
      if (c < 0 && c < min / mul * div) return min;
    }
    // The remainder's share, (c % div) * mul / div, below mul in size: in
    // 64 bits unless (div - 1) * mul overflows them (a ratio that no clock
    // uses, such as ratio<13, 999999937>); then in 128 bits, or where the
    // compiler has none, in long double (off by up to mul / 2^53 ns where
    // that is a double: 1 ns for mul below 2^53).
    const std::intmax_t r = c % div;
    std::intmax_t part;
    if constexpr (div - 1 <= std::numeric_limits<std::intmax_t>::max() / mul) {
      part = r * mul / div;
    } else {
#if defined(__SIZEOF_INT128__)
      __extension__ typedef __int128 wide;
      part = static_cast<std::intmax_t>(static_cast<wide>(r) * mul / div);
#else
      part = static_cast<std::intmax_t>(static_cast<long double>(r) * mul / div);
#endif
    }
    return static_cast<std::int64_t>(c / div * mul + part);
  }
}

}  // namespace detail

// A signed span of time in nanoseconds.
struct duration {
  std::int64_t ns = 0;

  constexpr duration() noexcept = default;
  constexpr explicit duration(std::int64_t nanoseconds) noexcept : ns(nanoseconds) {}

  template <detail::chrono_duration_like D>
  constexpr duration(const D& d) noexcept  // NOLINT(google-explicit-constructor)
      : ns(detail::to_nanoseconds<D::period::num, D::period::den>(d.count())) {}

  static constexpr duration max() noexcept {
    return duration{std::numeric_limits<std::int64_t>::max()};
  }
  static constexpr duration zero() noexcept { return duration{0}; }

  friend constexpr auto operator<=>(duration, duration) noexcept = default;
};

// A point on the port's monotonic clock (port::now()), in nanoseconds since
// an arbitrary epoch (boot). 64 bits of nanoseconds wrap after 584 years.
struct time_point {
  std::uint64_t ns = 0;

  constexpr time_point() noexcept = default;
  constexpr explicit time_point(std::uint64_t nanoseconds) noexcept : ns(nanoseconds) {}

  // "Never": a deadline that does not expire.
  static constexpr time_point max() noexcept {
    return time_point{std::numeric_limits<std::uint64_t>::max()};
  }

  // Saturating: adding duration::max() ("forever") or any overflow gives max().
  friend constexpr time_point operator+(time_point t, duration d) noexcept {
    if (d == duration::max()) return max();
    if (d.ns <= 0) {
      const auto back = static_cast<std::uint64_t>(-(d.ns + 1)) + 1;
      return time_point{t.ns > back ? t.ns - back : 0};
    }
    const auto forward = static_cast<std::uint64_t>(d.ns);
    return forward > max().ns - t.ns ? max() : time_point{t.ns + forward};
  }

  // Time left until this deadline, never negative.
  friend constexpr duration operator-(time_point later, time_point earlier) noexcept {
    if (later.ns <= earlier.ns) return duration::zero();
    const std::uint64_t d = later.ns - earlier.ns;
    return d > static_cast<std::uint64_t>(duration::max().ns)
               ? duration::max()
               : duration{static_cast<std::int64_t>(d)};
  }

  // Spelled out rather than a defaulted <=>, which a build optimised for
  // size keeps as a call that returns an ordering to test again.
  friend constexpr bool operator==(time_point a, time_point b) noexcept { return a.ns == b.ns; }
  friend constexpr bool operator<(time_point a, time_point b) noexcept { return a.ns < b.ns; }
  friend constexpr bool operator>(time_point a, time_point b) noexcept { return a.ns > b.ns; }
  friend constexpr bool operator<=(time_point a, time_point b) noexcept { return a.ns <= b.ns; }
  friend constexpr bool operator>=(time_point a, time_point b) noexcept { return a.ns >= b.ns; }
};

}  // namespace sluice
