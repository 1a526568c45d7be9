// Shared by the tests that call the Zephyr C API (<zephyr/sys/mpsc_pbuf.h>)
// from C++: a buffer initialised by mpsc_pbuf_init on storage of its own.
#pragma once

#include <zephyr/sys/mpsc_pbuf.h>

#include <cstdint>

namespace sluice::test {

template <std::uint32_t Words>
struct zephyr_c_buffer {
  std::uint32_t storage[Words] = {};
  mpsc_pbuf_buffer buffer;
  explicit zephyr_c_buffer(mpsc_pbuf_get_wlen get_wlen, std::uint32_t flags = 0,
                           mpsc_pbuf_notify_drop notify_drop = nullptr) {
    const mpsc_pbuf_buffer_config config = {.buf = storage,
                                            .size = Words,
                                            .notify_drop = notify_drop,
                                            .get_wlen = get_wlen,
                                            .flags = flags};
    mpsc_pbuf_init(&buffer, &config);
  }
  zephyr_c_buffer(const zephyr_c_buffer&) = delete;
  zephyr_c_buffer& operator=(const zephyr_c_buffer&) = delete;
};

}  // namespace sluice::test
