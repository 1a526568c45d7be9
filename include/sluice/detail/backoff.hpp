// The one back-off helper: exponential CPU-relax spinning, bounded, used by
// every retry loop in the core instead of ad-hoc spins.
#pragma once

#include <cstdint>

#include <sluice/detail/cpu_relax.hpp>

namespace sluice::detail {

class backoff {
 public:
  // Spins 2^step relax hints (step capped); for contended CAS retries.
  void spin() noexcept {
    for (std::uint32_t i = 0; i < (1u << step_); ++i)
      cpu_relax();
    if (step_ < spin_limit) ++step_;
  }

  // Like spin() but keeps growing to a larger cap; for waiting on another
  // thread to finish a short, bounded piece of work (a slot write).
  void snooze() noexcept {
    for (std::uint32_t i = 0; i < (1u << step_); ++i)
      cpu_relax();
    if (step_ < snooze_limit) ++step_;
  }

  // For waiting on another thread that is part-way through a short, bounded
  // piece of work (a slot write it has claimed): the first poll_limit calls
  // give one relax hint each, so the wait ends within one hint of the work
  // (usually a cache-line round trip or two); after that it grows like
  // snooze(), for a thread that was descheduled mid-way. (A relax hint can
  // cost 40-140 ns on x86, so snooze()'s doubling overshoots a short wait by
  // microseconds.)
  void wait() noexcept {
    if (polls_ < poll_limit) {
      ++polls_;
      cpu_relax();
      return;
    }
    snooze();
  }

  // True once snoozing long enough that parking is the better choice.
  [[nodiscard]] bool is_completed() const noexcept { return step_ >= snooze_limit; }

  void reset() noexcept {
    step_ = 0;
    polls_ = 0;
  }

 private:
  static constexpr std::uint32_t spin_limit = 6;
  static constexpr std::uint32_t snooze_limit = 10;
  static constexpr std::uint32_t poll_limit = 64;
  std::uint32_t step_ = 0;
  std::uint32_t polls_ = 0;
};

}  // namespace sluice::detail
