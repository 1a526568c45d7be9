/*
 * sluice's source-compatible rendering of Zephyr's <zephyr/sys/mpsc_packet.h>:
 * the header that every packet of an mpsc_pbuf starts with.
 *
 * The buffer owns the two lowest bits of a packet's first word (valid, busy);
 * the other 30 bits are the application's. Bit-fields are allocated from the
 * least significant bit on the targets sluice supports (GCC and Clang on
 * little-endian ABIs), so `valid` is bit 0 and `busy` bit 1.
 */
#ifndef SLUICE_COMPAT_ZEPHYR_SYS_MPSC_PACKET_H_
#define SLUICE_COMPAT_ZEPHYR_SYS_MPSC_PACKET_H_

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bits of the first word that belong to the packet buffer. */
#define MPSC_PBUF_HDR_BITS 2

/* Put first in an application's packet header structure. */
#define MPSC_PBUF_HDR \
  uint32_t valid : 1; \
  uint32_t busy : 1

/* A packet seen through the buffer's header; data is the application's. */
struct mpsc_pbuf_hdr {
  MPSC_PBUF_HDR;
  uint32_t data : 32 - MPSC_PBUF_HDR_BITS;
};

/* Padding inside the buffer (valid 0, busy 1): len words to pass over. */
struct mpsc_pbuf_skip {
  MPSC_PBUF_HDR;
  uint32_t len : 32 - MPSC_PBUF_HDR_BITS;
};

/* Any packet's first word. */
union mpsc_pbuf_generic {
  struct mpsc_pbuf_hdr hdr;
  struct mpsc_pbuf_skip skip;
  uint32_t raw;
};

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_COMPAT_ZEPHYR_SYS_MPSC_PACKET_H_ */
