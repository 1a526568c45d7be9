// Build-wide constants and switches of the core.
#pragma once

#include <cstddef>

namespace sluice::detail {

// Separates data written by different cores. 64 bytes covers x86-64,
// Cortex-A53 and Cortex-A72; two lines are used where the adjacent-line
// prefetcher of x86 would otherwise pair them.
inline constexpr std::size_t cache_line = 64;

// The executor's per-worker next-task slots (executor.hpp). A port whose
// executor has one worker (a single core) may build with
// SLUICE_EXECUTOR_SLOTS=0: a slot saves it no traffic between cores, and
// every wake then goes through the run queue, in less code.
#if !defined(SLUICE_EXECUTOR_SLOTS) || SLUICE_EXECUTOR_SLOTS
inline constexpr bool executor_slots = true;
#else
inline constexpr bool executor_slots = false;
#endif

#if defined(NDEBUG) && !defined(SLUICE_DEBUG_CHECKS)
inline constexpr bool debug_checks = false;
#else
inline constexpr bool debug_checks = true;
#endif

}  // namespace sluice::detail
