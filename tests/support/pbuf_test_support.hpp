// Shared by the packet buffer's unit and hook tests.
#pragma once

#include <cstdint>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>

namespace sluice::test {

// Leaves a new buffer (nothing put yet) empty at `position` (1 to its
// size): one packet of that many words through, with its length in the
// header. The words it used are zero again.
inline void make_empty_at(detail::pbuf_core& core, std::uint32_t position) {
  detail::pbuf_span p;
  ASSERT_EQ(core.try_alloc(position, p), detail::pbuf_status::ok);
  p.words[0] = position << 2;
  core.commit(p.words);
  const detail::pbuf_span claimed = core.try_claim();
  ASSERT_EQ(claimed.words, p.words);
  core.free(claimed.words);
  ASSERT_EQ(core.used_words(), 0u);
}

}  // namespace sluice::test
