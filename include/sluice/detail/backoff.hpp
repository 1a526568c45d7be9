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

  // True once snoozing long enough that parking is the better choice.
  [[nodiscard]] bool is_completed() const noexcept { return step_ >= snooze_limit; }

  void reset() noexcept { step_ = 0; }

 private:
  static constexpr std::uint32_t spin_limit = 6;
  static constexpr std::uint32_t snooze_limit = 10;
  std::uint32_t step_ = 0;
};

}  // namespace sluice::detail
