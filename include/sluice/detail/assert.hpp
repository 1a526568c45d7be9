// The one assertion macro. Broken preconditions reach the port's panic hook
// with a message that names the mistake; in release builds the check
// disappears unless SLUICE_DEBUG_CHECKS is defined.
#pragma once

#include <sluice/detail/config.hpp>
#include <sluice/port.hpp>

#define SLUICE_ASSERT(condition, message)                              \
  do {                                                                 \
    if constexpr (::sluice::detail::debug_checks) {                    \
      if (!(condition)) [[unlikely]]                                   \
        ::sluice::port::panic("sluice: " message, __FILE__, __LINE__); \
    }                                                                  \
  } while (false)
