/* Threads sharing one mpsc_pbuf the way a Zephyr application's do, in C:
 * three producer threads and a consumer thread, on a power-of-two and on
 * another size.
 * - Without overwrite the producers allocate with K_FOREVER, K_MSEC(1)
 *   (retrying when it times out) and K_NO_WAIT (retrying when it fails):
 *   every packet is claimed once, in its producer's order, words intact,
 *   and nothing is reported dropped.
 * - With overwrite they allocate with K_NO_WAIT: every packet is claimed
 *   or reported to notify_drop exactly once, words intact, and the claimed
 *   ones come in their producer's order.
 * Each runs twice: the consumer thread frees what it claims, or hands each
 * packet to a second thread that frees it while the consumer goes on
 * claiming (Zephyr code may free in another context than it claims: its
 * claim and free take the buffer's lock, and sluice's C API takes one too).
 * A watchdog fails the run when nothing moves for 20 s (a producer waiting
 * with K_FOREVER that nobody woke). Exits non-zero on the first failed
 * check, naming it. */
/* Threads and nanosleep: POSIX, which strict C11 leaves out. */
#define _POSIX_C_SOURCE 200809L

#include <zephyr/sys/mpsc_packet.h>
#include <zephyr/sys/mpsc_pbuf.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PRODUCERS 3u
#if defined(SLUICE_SANITIZED)
#define PER_PRODUCER 20000u
#else
#define PER_PRODUCER 60000u
#endif
#define SEEN_WORDS ((PER_PRODUCER + 31u) / 32u)
#define MAX_WLEN 7u

struct item_header {
  MPSC_PBUF_HDR;
  uint32_t producer : 2;
  uint32_t len : 32 - MPSC_PBUF_HDR_BITS - 2;
};

/* Word 0 the header, word 1 the sequence number, then a pattern of both. */
struct item {
  struct item_header hdr;
  uint32_t seq;
  uint32_t data[MAX_WLEN - 2];
};

union item_view {
  struct item_header hdr;
  union mpsc_pbuf_generic generic;
  uint32_t raw;
};

static void fail(const char* what, uint32_t producer, uint32_t seq) {
  fprintf(stderr, "mpsc_pbuf_threads: %s (producer %u, seq %u)\n", what, (unsigned)producer,
          (unsigned)seq);
  fflush(stderr);
  _Exit(1);
}

static uint32_t wlen_of(uint32_t producer, uint32_t seq) {
  return 2u + (seq * 5u + producer) % (MAX_WLEN - 1u);
}

static uint32_t pattern(uint32_t producer, uint32_t seq, uint32_t i) {
  return (seq * 2654435761u) ^ (producer << 28) ^ i;
}

static uint32_t get_wlen(const union mpsc_pbuf_generic* packet) {
  return ((const union item_view*)packet)->hdr.len;
}

/* The packet's words as its producer wrote them, or the failure named. */
static void check_words(const struct item* p, const char* where) {
  const uint32_t producer = p->hdr.producer;
  if (producer >= PRODUCERS) fail(where, producer, p->seq);
  if (p->seq >= PER_PRODUCER) fail("a sequence number never sent", producer, p->seq);
  if (p->hdr.len != wlen_of(producer, p->seq))
    fail("a packet of the wrong length", producer, p->seq);
  for (uint32_t i = 0; i + 2u < p->hdr.len; i++) {
    if (p->data[i] != pattern(producer, p->seq, i))
      fail("a packet's words damaged", producer, p->seq);
  }
}

static struct mpsc_pbuf_buffer buffer;
static uint32_t storage[64];
static int overwrite_mode;

/* Each packet's fate: one bit per sequence number, set when it is claimed
 * or reported dropped, never twice. Set by the consumer and by producers
 * (notify_drop runs in the dropping producer's thread). */
static atomic_uint seen[PRODUCERS][SEEN_WORDS];
static atomic_uint dropped;
static atomic_uint progress; /* packets claimed or dropped: the watchdog's */
static atomic_uint producers_done;
static atomic_int finished;

/* Claimed packets on their way from the consumer to the freeing thread:
 * one writer (the consumer) and one reader (the freer). */
#define HANDOFF 4u
static int hand_off;
static const union mpsc_pbuf_generic* handoff_ring[HANDOFF];
static atomic_uint handoff_head; /* next to free: the freer's */
static atomic_uint handoff_tail; /* next to fill: the consumer's */
static atomic_int consumer_done;

static void mark(uint32_t producer, uint32_t seq, const char* twice) {
  const unsigned bit = 1u << (seq % 32u);
  /* Relaxed: the bit is the only thing read back, after the joins. */
  if ((atomic_fetch_or_explicit(&seen[producer][seq / 32u], bit, memory_order_relaxed) & bit) != 0)
    fail(twice, producer, seq);
  /* Relaxed: a count the watchdog polls; nothing is published with it. */
  atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
}

static void notify_drop(const struct mpsc_pbuf_buffer* b, const union mpsc_pbuf_generic* packet) {
  const struct item* p = (const struct item*)packet;
  if (b != &buffer) fail("notify_drop called with another buffer", 0, 0);
  if (!overwrite_mode) fail("a packet dropped without overwrite", p->hdr.producer, p->seq);
  check_words(p, "a dropped packet from an unknown producer");
  /* Held for the callback (the README's C API notes): valid and busy. */
  if (!p->hdr.valid || !p->hdr.busy)
    fail("a dropped packet's header not valid and busy", p->hdr.producer, p->seq);
  mark(p->hdr.producer, p->seq, "a packet dropped twice, or dropped and claimed");
  /* Relaxed: read after the joins, which order it. */
  atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
}

static struct item* allocate(uint32_t producer, uint32_t seq, uint32_t wlen) {
  for (;;) {
    union mpsc_pbuf_generic* p;
    switch (overwrite_mode ? 2u : seq % 3u) {
      case 0:
        p = mpsc_pbuf_alloc(&buffer, wlen, K_FOREVER);
        if (p == NULL) fail("an allocation with K_FOREVER returned NULL", producer, seq);
        return (struct item*)p;
      case 1:
        p = mpsc_pbuf_alloc(&buffer, wlen, K_MSEC(1));
        break;
      default:
        p = mpsc_pbuf_alloc(&buffer, wlen, K_NO_WAIT);
        break;
    }
    if (p != NULL) return (struct item*)p;
    sched_yield();
  }
}

static void* produce(void* arg) {
  const uint32_t producer = (uint32_t)(uintptr_t)arg;
  for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
    const uint32_t wlen = wlen_of(producer, seq);
    struct item* p = allocate(producer, seq, wlen);
    /* The header's bits in one atomic store, not field by field: a claim
     * may read the header of a packet not yet committed (to find it so),
     * and a plain store beside that read is a data race in C11, which
     * ThreadSanitizer reports (see the README's C API notes). Valid and
     * busy stay zero: commit sets valid. */
    const union item_view header = {.hdr = {.producer = producer & 3u, .len = wlen}};
    __atomic_store_n((uint32_t*)&p->hdr, header.raw, __ATOMIC_RELAXED);
    p->seq = seq;
    for (uint32_t i = 0; i + 2u < wlen; i++)
      p->data[i] = pattern(producer, seq, i);
    mpsc_pbuf_commit(&buffer, (union mpsc_pbuf_generic*)p);
  }
  /* Release: pairs with the consumer's acquire; every commit before it. */
  atomic_fetch_add_explicit(&producers_done, 1, memory_order_release);
  return NULL;
}

static void* consume(void* arg) {
  uint32_t next[PRODUCERS] = {0};
  (void)arg;
  for (;;) {
    /* Acquire: pairs with the producers' release; their commits are seen. */
    const int done = atomic_load_explicit(&producers_done, memory_order_acquire) == PRODUCERS;
    const struct item* p = (const struct item*)mpsc_pbuf_claim(&buffer);
    if (p == NULL) {
      if (done) {
        if (mpsc_pbuf_is_pending(&buffer)) fail("pending after the last claim", 0, 0);
        /* Release: pairs with free_handed()'s acquire; our last hand-off. */
        atomic_store_explicit(&consumer_done, 1, memory_order_release);
        return NULL;
      }
      sched_yield();
      continue;
    }
    check_words(p, "a claimed packet from an unknown producer");
    if (!p->hdr.valid || !p->hdr.busy)
      fail("a claimed packet's header not valid and busy", p->hdr.producer, p->seq);
    const uint32_t producer = p->hdr.producer, seq = p->seq;
    /* Without overwrite each producer's packets come one by one; with it,
     * later ones (the ones between were dropped). */
    if (overwrite_mode ? seq < next[producer] : seq != next[producer])
      fail("a packet out of its producer's order", producer, seq);
    next[producer] = seq + 1u;
    mark(producer, seq, "a packet claimed twice, or claimed and dropped");
    if (!hand_off) {
      mpsc_pbuf_free(&buffer, (const union mpsc_pbuf_generic*)p);
      continue;
    }
    /* Relaxed: our own index. */
    const unsigned tail = atomic_load_explicit(&handoff_tail, memory_order_relaxed);
    /* Acquire: pairs with the freer's release of head; its slot is free. */
    while (tail - atomic_load_explicit(&handoff_head, memory_order_acquire) == HANDOFF)
      sched_yield();
    handoff_ring[tail % HANDOFF] = (const union mpsc_pbuf_generic*)p;
    /* Release: pairs with the freer's acquire of tail; publishes the slot. */
    atomic_store_explicit(&handoff_tail, tail + 1u, memory_order_release);
  }
}

/* Frees the packets the consumer hands over, while it claims more. */
static void* free_handed(void* arg) {
  (void)arg;
  for (;;) {
    /* Acquire: pairs with consume()'s release below; its last tail is seen. */
    const int done = atomic_load_explicit(&consumer_done, memory_order_acquire);
    /* Relaxed: our own index. */
    const unsigned head = atomic_load_explicit(&handoff_head, memory_order_relaxed);
    /* Acquire: pairs with the consumer's release of tail; the slot is filled. */
    if (head == atomic_load_explicit(&handoff_tail, memory_order_acquire)) {
      if (done) return NULL;
      sched_yield();
      continue;
    }
    mpsc_pbuf_free(&buffer, handoff_ring[head % HANDOFF]);
    /* Release: pairs with the consumer's acquire of head; the slot is free. */
    atomic_store_explicit(&handoff_head, head + 1u, memory_order_release);
  }
}

static void* watch(void* arg) {
  unsigned last = 0, still = 0;
  (void)arg;
  /* Relaxed: the run's end, stored after the joins; nothing rides on it. */
  while (!atomic_load_explicit(&finished, memory_order_relaxed)) {
    const struct timespec tick = {0, 100 * 1000 * 1000};
    nanosleep(&tick, NULL);
    /* Relaxed: pairs with mark()'s relaxed count; a sample is enough. */
    const unsigned now = atomic_load_explicit(&progress, memory_order_relaxed);
    still = now == last ? still + 1u : 0u;
    last = now;
    if (still == 200u) {
      fprintf(stderr,
              "mpsc_pbuf_threads: nothing claimed or dropped for 20 s, after %u packets "
              "(a waiting producer not woken?)\n",
              now);
      fflush(stderr);
      _Exit(1);
    }
  }
  return NULL;
}

static int run(uint32_t size, uint32_t flags, int handed) {
  const struct mpsc_pbuf_buffer_config config = {
      .buf = storage,
      .size = size,
      .notify_drop = notify_drop,
      .get_wlen = get_wlen,
      .flags = flags | MPSC_PBUF_MAX_UTILIZATION,
  };
  overwrite_mode = (flags & MPSC_PBUF_MODE_OVERWRITE) != 0;
  hand_off = handed;
  /* Before the threads start: pthread_create orders these for them. */
  for (uint32_t p = 0; p < PRODUCERS; p++) {
    for (uint32_t w = 0; w < SEEN_WORDS; w++)
      atomic_init(&seen[p][w], 0);
  }
  atomic_init(&dropped, 0);
  atomic_init(&progress, 0);
  atomic_init(&producers_done, 0);
  atomic_init(&finished, 0);
  atomic_init(&handoff_head, 0);
  atomic_init(&handoff_tail, 0);
  atomic_init(&consumer_done, 0);
  mpsc_pbuf_init(&buffer, &config);

  pthread_t producers[PRODUCERS], consumer, freer, watchdog;
  if (pthread_create(&watchdog, NULL, watch, NULL) != 0 ||
      pthread_create(&consumer, NULL, consume, NULL) != 0 ||
      (hand_off && pthread_create(&freer, NULL, free_handed, NULL) != 0))
    fail("pthread_create failed", 0, 0);
  for (uint32_t p = 0; p < PRODUCERS; p++) {
    if (pthread_create(&producers[p], NULL, produce, (void*)(uintptr_t)p) != 0)
      fail("pthread_create failed", p, 0);
  }
  for (uint32_t p = 0; p < PRODUCERS; p++)
    pthread_join(producers[p], NULL);
  pthread_join(consumer, NULL);
  if (hand_off) pthread_join(freer, NULL);
  /* Relaxed: see watch(); its join follows. */
  atomic_store_explicit(&finished, 1, memory_order_relaxed);
  pthread_join(watchdog, NULL);

  /* Every sequence number of every producer claimed or dropped. Relaxed
   * loads here and below: after the joins, which order every store. */
  for (uint32_t p = 0; p < PRODUCERS; p++) {
    for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
      if ((atomic_load_explicit(&seen[p][seq / 32u], memory_order_relaxed) & (1u << (seq % 32u))) ==
          0)
        fail("a committed packet neither claimed nor dropped", p, seq);
    }
  }
  /* Utilization in bytes, as Zephyr's. */
  uint32_t total, now, max;
  mpsc_pbuf_get_utilization(&buffer, &total, &now);
  if (total != size * 4u || now != 0) fail("bytes in use after the run", total, now);
  if (mpsc_pbuf_get_max_utilization(&buffer, &max) != 0 || max == 0 || max > size * 4u)
    fail("a maximum utilization out of range", max, size);
  printf("size %u%s%s: %u packets, %u dropped, at most %u bytes in use\n", (unsigned)size,
         overwrite_mode ? ", overwrite" : "", hand_off ? ", freed on another thread" : "",
         (unsigned)(PRODUCERS * PER_PRODUCER), atomic_load_explicit(&dropped, memory_order_relaxed),
         (unsigned)max);
  return 0;
}

int main(void) {
  static const uint32_t sizes[2] = {64, 61};
  static const uint32_t policies[2] = {0, MPSC_PBUF_MODE_OVERWRITE};
  for (int handed = 0; handed < 2; handed++) {
    for (uint32_t p = 0; p < 2; p++) {
      for (uint32_t s = 0; s < 2; s++) {
        const uint32_t pow2 = (sizes[s] & (sizes[s] - 1u)) == 0 ? MPSC_PBUF_SIZE_POW2 : 0;
        if (run(sizes[s], pow2 | policies[p], handed) != 0) return 1;
      }
    }
  }
  return 0;
}
