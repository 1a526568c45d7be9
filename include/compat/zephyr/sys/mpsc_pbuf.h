/*
 * sluice's source-compatible rendering of Zephyr's <zephyr/sys/mpsc_pbuf.h>:
 * a multi-producer, single-consumer buffer of variable-length packets.
 * Same types, field names, flags, functions, units and return values; the
 * engine underneath is sluice's (lock-free producers without overwrite).
 *
 * Units: lengths (wlen, size, get_wlen) are 32-bit words; the utilization
 * functions report bytes.
 *
 * Index fields: tmp_wr_idx, tmp_rd_idx and rd_idx are positions that run
 * over a period of several laps (slot = index % size), which tells a full
 * buffer from an empty one without the MPSC_PBUF_FULL flag. wr_idx is the
 * end of the committed data found in allocation order (advanced as packets
 * are claimed: producers commit with one store to the packet's header and
 * touch no shared index). While a producer moves an empty buffer to slot 0,
 * tmp_wr_idx has bit 31 set. Read them only for diagnostics.
 *
 * Header word: the buffer reads and writes its two bits atomically. Code
 * that sets its own bits of the first word through bit-fields between alloc
 * and commit (as Zephyr code does) writes that word with plain stores; a
 * claim running at the same moment reads it atomically, sees the packet as
 * not committed and leaves it, but ThreadSanitizer reports the pair. The
 * C++ API (allocated_packet::set_user_bits) writes it atomically instead.
 * The two bits themselves (valid, busy) are the buffer's: leave them zero
 * until commit. The valid bit alone publishes a packet here (commit moves
 * no shared index), so a header copied whole with valid set lets a claim
 * take the packet before commit; debug builds stop at such a commit.
 *
 * Contexts: alloc with a timeout other than K_NO_WAIT may block and must be
 * called from a thread. Everything else may be called from any context,
 * including interrupt and signal handlers. mpsc_pbuf_claim and
 * mpsc_pbuf_free take a lock of the buffer's (as Zephyr's take its
 * spinlock), so one context may free while another claims; where the
 * consumer masks interrupts (bare metal) they mask around it. Hosted they
 * do not: a signal handler that calls either while its own thread is inside
 * one stops the program, naming the mistake, as it could only wait for ever.
 * Nor does an allocation that drops (overwrite mode): a signal handler
 * whose own thread is inside one, making room, may find it holding the
 * buffer's lock: then mpsc_pbuf_claim returns NULL, and mpsc_pbuf_free is
 * finished by that allocation once it has made room.
 */
#ifndef SLUICE_COMPAT_ZEPHYR_SYS_MPSC_PBUF_H_
#define SLUICE_COMPAT_ZEPHYR_SYS_MPSC_PBUF_H_

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <zephyr/sys/mpsc_packet.h>
#include <zephyr/sys/sluice_kernel_stub.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The buffer size is a power of two (index arithmetic uses masks). */
#define MPSC_PBUF_SIZE_POW2 BIT(0)

/* When a packet does not fit, drop the oldest ones (reported through
 * notify_drop) instead of failing. */
#define MPSC_PBUF_MODE_OVERWRITE BIT(1)

/* Track the maximum utilization (mpsc_pbuf_get_max_utilization). */
#define MPSC_PBUF_MAX_UTILIZATION BIT(2)

/* Internal: the buffer is full. Never needs to be set by the application;
 * sluice tells full from empty by its indices and ignores it on input. */
#define MPSC_PBUF_FULL BIT(3)

struct mpsc_pbuf_buffer;

/* Returns the length of a packet in 32-bit words. */
typedef uint32_t (*mpsc_pbuf_get_wlen)(const union mpsc_pbuf_generic* packet);

/* Called once for every packet dropped in overwrite mode, with the packet's
 * contents intact, outside any lock, in the context of the producer that
 * needed the room. */
typedef void (*mpsc_pbuf_notify_drop)(const struct mpsc_pbuf_buffer* buffer,
                                      const union mpsc_pbuf_generic* packet);

/* sluice's state beyond Zephyr's fields (waiter lists; at most one cache
 * line, as the field after it starts the next). */
struct mpsc_pbuf_sluice_sync {
  uintptr_t opaque[8];
};

#if defined(__cplusplus)
#define MPSC_PBUF_SLUICE_LINE alignas(64)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define MPSC_PBUF_SLUICE_LINE _Alignas(64)
#else /* C99 with GNU extensions */
#define MPSC_PBUF_SLUICE_LINE __attribute__((aligned(64)))
#endif

/* Zephyr's fields by name (code uses them by name, never by position),
 * grouped by who writes them, one cache line per group; sluice_* fields
 * are sluice's own. The struct is aligned to 64 bytes: a static or
 * automatic one is; one from the heap needs aligned_alloc(64, ...) (or
 * C++'s new), as malloc guarantees less. */
struct mpsc_pbuf_buffer {
  /* Read-only after mpsc_pbuf_init. */
  uint32_t flags;
  uint32_t size; /* words */
  uint32_t sluice_period;
  mpsc_pbuf_notify_drop notify_drop;
  mpsc_pbuf_get_wlen get_wlen;
  uint32_t* buf;
  void* sluice_callbacks[3];
  /* Written by producers. */
  MPSC_PBUF_SLUICE_LINE uint32_t tmp_wr_idx; /* end of allocated space */
  uint32_t sluice_rd_seen;
  uint32_t max_usage; /* words */
  uint32_t sluice_dropped;
  /* Written by the consumer. */
  MPSC_PBUF_SLUICE_LINE uint32_t tmp_rd_idx; /* next packet to claim */
  uint32_t wr_idx;                           /* end of the committed data found so far */
  uint32_t sluice_claimed;
  uint32_t sluice_flushed;
  uint32_t sluice_wr_seen;
  uint32_t sluice_consumer_in;
  uint32_t sluice_lock_bias;
  uint32_t sluice_rebias_after;
  uint32_t sluice_rebias_stretch;
  uint32_t sluice_dropped_in_stretch;
  uint32_t sluice_consumer_lock; /* claim and free, one at a time */
  /* Waiting producers and consumer. */
  MPSC_PBUF_SLUICE_LINE struct mpsc_pbuf_sluice_sync sem;
  /* Written by the consumer, read by producers short of room. */
  MPSC_PBUF_SLUICE_LINE uint32_t rd_idx; /* oldest word not yet freed */
  uint32_t sluice_observers;
  /* The overwrite mode's lock word, on a line of its own. */
  MPSC_PBUF_SLUICE_LINE uint32_t lock;
  uint32_t sluice_deferred_any;
  uint32_t sluice_deferred_frees[14]; /* with the lock, fills its line */
};

struct mpsc_pbuf_buffer_config {
  uint32_t* buf;
  uint32_t size; /* words */
  mpsc_pbuf_notify_drop notify_drop;
  mpsc_pbuf_get_wlen get_wlen;
  uint32_t flags;
};

void mpsc_pbuf_init(struct mpsc_pbuf_buffer* buffer, const struct mpsc_pbuf_buffer_config* config);

/* Allocates wlen words; null when it cannot (too large, or no room before
 * the timeout). With K_NO_WAIT, MPSC_PBUF_MODE_OVERWRITE drops the oldest
 * packets to make room; with any other timeout nothing is dropped in either
 * mode: it waits for the consumer to free. As Zephyr's, it waits only in
 * thread context with interrupts unmasked: in an interrupt handler or a
 * critical section the timeout counts as K_NO_WAIT (hosted, a signal
 * handler cannot be told from its thread: pass K_NO_WAIT there). */
union mpsc_pbuf_generic* mpsc_pbuf_alloc(struct mpsc_pbuf_buffer* buffer, size_t wlen,
                                         k_timeout_t timeout);

void mpsc_pbuf_commit(struct mpsc_pbuf_buffer* buffer, union mpsc_pbuf_generic* packet);

/* One-word packet; `word` carries the header (valid set) and data.
 * The puts never wait. Their words must give the length they put, through
 * get_wlen (bits 2..31 of the first word where get_wlen is null): a put
 * whose words give another is refused (nothing stored; a debug build of
 * sluice stops and names it). get_wlen is then called by the producer, in
 * whatever context it puts from. */
void mpsc_pbuf_put_word(struct mpsc_pbuf_buffer* buffer, const union mpsc_pbuf_generic word);

/* A word and a pointer (1 + sizeof(void *) / 4 words). */
void mpsc_pbuf_put_word_ext(struct mpsc_pbuf_buffer* buffer, const union mpsc_pbuf_generic word,
                            const void* data);

/* Copies wlen words; data[0] carries the header. */
void mpsc_pbuf_put_data(struct mpsc_pbuf_buffer* buffer, const uint32_t* data, size_t wlen);

/* The oldest committed packet, or null. */
const union mpsc_pbuf_generic* mpsc_pbuf_claim(struct mpsc_pbuf_buffer* buffer);

void mpsc_pbuf_free(struct mpsc_pbuf_buffer* buffer, const union mpsc_pbuf_generic* packet);

/* True if a claim now would find something to take: a committed packet
 * (one allocated and not committed holds back those after it: false
 * there, where Zephyr's counts the committed words behind it). Any context
 * may call it, the consumer's or another, while the consumer runs.
 * With MPSC_PBUF_MODE_OVERWRITE it looks past padding and held packets, in
 * a dropper's turn (true where it cannot look: a handler that interrupted
 * a turn on its own thread). Without, it looks at the claim position only:
 * padding there counts (a claim passes it and its room comes back), and a
 * free that runs meanwhile waits for the look before it zeroes words
 * (hosted the look is two signal-mask calls and a membarrier, and a thread
 * preempted inside it holds the consumer's frees up: from other threads,
 * ask now and then, not in a tight loop). */
bool mpsc_pbuf_is_pending(struct mpsc_pbuf_buffer* buffer);

/* Buffer size and current usage, in bytes. */
void mpsc_pbuf_get_utilization(struct mpsc_pbuf_buffer* buffer, uint32_t* size, uint32_t* now);

/* Maximum usage in bytes; 0 on success, -ENOTSUP without
 * MPSC_PBUF_MAX_UTILIZATION. */
int mpsc_pbuf_get_max_utilization(struct mpsc_pbuf_buffer* buffer, uint32_t* max);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_COMPAT_ZEPHYR_SYS_MPSC_PBUF_H_ */
