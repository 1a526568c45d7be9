// Tests that depend on whether SLUICE_ASSERT is compiled in.
//
//   SLUICE_ONLY_WITH_DEBUG_CHECKS("why");     // a death test of an assertion
//   SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("why");  // what a release build does instead
//
// Each skips the rest of the test, with `why`, in the other kind of build.
// The first also picks the threadsafe death-test style: the test binaries
// run threads, which a forked death test must not inherit half-way.
#pragma once

#include <gtest/gtest.h>

#include <sluice/detail/config.hpp>

#define SLUICE_ONLY_WITH_DEBUG_CHECKS(why)                  \
  do {                                                      \
    if constexpr (!::sluice::detail::debug_checks) {        \
      GTEST_SKIP() << why;                                  \
    }                                                       \
    ::testing::FLAGS_gtest_death_test_style = "threadsafe"; \
  } while (false)

#define SLUICE_ONLY_WITHOUT_DEBUG_CHECKS(why)       \
  do {                                              \
    if constexpr (::sluice::detail::debug_checks) { \
      GTEST_SKIP() << why;                          \
    }                                               \
  } while (false)
