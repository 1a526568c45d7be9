/* Code in the style of a Zephyr application using mpsc_pbuf, unchanged:
 * user packet header on MPSC_PBUF_HDR, get_wlen and notify_drop callbacks,
 * alloc/commit, claim/free, word puts, utilization. Exits non-zero on the
 * first failed check. */
#include <zephyr/sys/mpsc_packet.h>
#include <zephyr/sys/mpsc_pbuf.h>

#include <stdio.h>
#include <string.h>

struct test_header {
  MPSC_PBUF_HDR;
  uint32_t len : 32 - MPSC_PBUF_HDR_BITS;
};

union test_item {
  struct test_header hdr;
  union mpsc_pbuf_generic item;
  uint32_t raw;
};

struct test_packet {
  struct test_header hdr;
  uint32_t data[7];
};

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      return 1;                                                                \
    }                                                                          \
  } while (0)

static uint32_t get_wlen(const union mpsc_pbuf_generic* packet) {
  const union test_item* t = (const union test_item*)packet;
  return t->hdr.len;
}

static uint32_t dropped_count;
static uint32_t dropped_first_data;
static uint32_t dropped_last_data;

static void notify_drop(const struct mpsc_pbuf_buffer* buffer,
                        const union mpsc_pbuf_generic* packet) {
  const struct test_packet* p = (const struct test_packet*)packet;
  (void)buffer;
  if (dropped_count == 0) dropped_first_data = p->data[0];
  dropped_last_data = p->data[0];
  dropped_count++;
}

static uint32_t storage[32];

static int no_overwrite(void) {
  static struct mpsc_pbuf_buffer buffer;
  const struct mpsc_pbuf_buffer_config config = {
      .buf = storage,
      .size = 32,
      .notify_drop = notify_drop,
      .get_wlen = get_wlen,
      .flags = MPSC_PBUF_SIZE_POW2 | MPSC_PBUF_MAX_UTILIZATION,
  };
  mpsc_pbuf_init(&buffer, &config);
  CHECK(buffer.size == 32);
  CHECK(!mpsc_pbuf_is_pending(&buffer));

  struct test_packet* a = (struct test_packet*)mpsc_pbuf_alloc(&buffer, 4, K_NO_WAIT);
  struct test_packet* b = (struct test_packet*)mpsc_pbuf_alloc(&buffer, 3, K_MSEC(10));
  CHECK(a != NULL && b != NULL);
  a->hdr.len = 4;
  a->data[0] = 0xa;
  b->hdr.len = 3;
  b->data[0] = 0xb;
  mpsc_pbuf_commit(&buffer, (union mpsc_pbuf_generic*)b);
  CHECK(mpsc_pbuf_claim(&buffer) == NULL); /* a holds b back */
  mpsc_pbuf_commit(&buffer, (union mpsc_pbuf_generic*)a);
  CHECK(mpsc_pbuf_is_pending(&buffer));

  const union mpsc_pbuf_generic* c = mpsc_pbuf_claim(&buffer);
  CHECK(c != NULL && ((const struct test_packet*)c)->data[0] == 0xa);
  CHECK(c->hdr.valid == 1 && c->hdr.busy == 1);
  mpsc_pbuf_free(&buffer, c);
  c = mpsc_pbuf_claim(&buffer);
  CHECK(c != NULL && ((const struct test_packet*)c)->data[0] == 0xb);
  mpsc_pbuf_free(&buffer, c);
  CHECK(mpsc_pbuf_claim(&buffer) == NULL);

  /* Word puts: the word already carries the valid bit. */
  union test_item word = {.hdr = {.valid = 1, .busy = 0, .len = 1}};
  mpsc_pbuf_put_word(&buffer, word.item);
  union test_item ext = {.hdr = {.valid = 1, .busy = 0, .len = 1 + sizeof(void*) / 4}};
  static int target;
  mpsc_pbuf_put_word_ext(&buffer, ext.item, &target);
  uint32_t data[3];
  union test_item first = {.hdr = {.valid = 1, .busy = 0, .len = 3}};
  data[0] = first.raw;
  data[1] = 111;
  data[2] = 222;
  mpsc_pbuf_put_data(&buffer, data, 3);

  c = mpsc_pbuf_claim(&buffer);
  CHECK(c != NULL && get_wlen(c) == 1);
  mpsc_pbuf_free(&buffer, c);
  c = mpsc_pbuf_claim(&buffer);
  CHECK(c != NULL && get_wlen(c) == 1 + sizeof(void*) / 4);
  const void* ptr;
  memcpy(&ptr, (const uint32_t*)c + 1, sizeof ptr);
  CHECK(ptr == &target);
  mpsc_pbuf_free(&buffer, c);
  c = mpsc_pbuf_claim(&buffer);
  CHECK(c != NULL && get_wlen(c) == 3 && ((const uint32_t*)c)[1] == 111 &&
        ((const uint32_t*)c)[2] == 222);
  mpsc_pbuf_free(&buffer, c);

  /* Whole capacity, then no room, then too large. */
  union mpsc_pbuf_generic* full = mpsc_pbuf_alloc(&buffer, 32, K_NO_WAIT);
  CHECK(full != NULL);
  ((union test_item*)full)->hdr.len = 32;
  CHECK(mpsc_pbuf_alloc(&buffer, 1, K_NO_WAIT) == NULL);
  CHECK(mpsc_pbuf_alloc(&buffer, 1, K_MSEC(5)) == NULL);
  mpsc_pbuf_commit(&buffer, full);
  CHECK(mpsc_pbuf_alloc(&buffer, 33, K_NO_WAIT) == NULL);
  CHECK(mpsc_pbuf_alloc(&buffer, 0, K_NO_WAIT) == NULL);

  uint32_t size, now, max;
  mpsc_pbuf_get_utilization(&buffer, &size, &now);
  CHECK(size == 32 * sizeof(uint32_t));
  CHECK(now == 32 * sizeof(uint32_t));
  CHECK(mpsc_pbuf_get_max_utilization(&buffer, &max) == 0);
  CHECK(max == 32 * sizeof(uint32_t));
  c = mpsc_pbuf_claim(&buffer);
  CHECK(c != NULL);
  mpsc_pbuf_free(&buffer, c);
  mpsc_pbuf_get_utilization(&buffer, &size, &now);
  CHECK(now == 0);
  CHECK(dropped_count == 0);
  return 0;
}

/* Puts `count` packets of 2 words with K_NO_WAIT (in overwrite mode, each
 * drops what it must); data first_data, first_data + 1, ... */
static int put_pairs(struct mpsc_pbuf_buffer* buffer, uint32_t count, uint32_t first_data) {
  for (uint32_t i = 0; i < count; i++) {
    struct test_packet* p = (struct test_packet*)mpsc_pbuf_alloc(buffer, 2, K_NO_WAIT);
    CHECK(p != NULL);
    p->hdr.len = 2;
    p->data[0] = first_data + i;
    mpsc_pbuf_commit(buffer, (union mpsc_pbuf_generic*)p);
  }
  return 0;
}

/* Claims every packet; their data must run first_data up to end_data. */
static int claim_run(struct mpsc_pbuf_buffer* buffer, uint32_t first_data, uint32_t end_data) {
  uint32_t expect = first_data;
  const union mpsc_pbuf_generic* c;
  while ((c = mpsc_pbuf_claim(buffer)) != NULL) {
    CHECK(((const struct test_packet*)c)->data[0] == expect);
    expect++;
    mpsc_pbuf_free(buffer, c);
  }
  CHECK(expect == end_data);
  return 0;
}

static int overwrite(void) {
  static struct mpsc_pbuf_buffer buffer;
  static uint32_t small[10];
  const struct mpsc_pbuf_buffer_config config = {
      .buf = small,
      .size = 10,
      .notify_drop = notify_drop,
      .get_wlen = get_wlen,
      .flags = MPSC_PBUF_MODE_OVERWRITE,
  };
  mpsc_pbuf_init(&buffer, &config);
  uint32_t max;
  CHECK(mpsc_pbuf_get_max_utilization(&buffer, &max) == -ENOTSUP);
  CHECK(put_pairs(&buffer, 7, 100) == 0);
  CHECK(dropped_count == 2);
  CHECK(dropped_first_data == 100);
  CHECK(dropped_last_data == 101);
  CHECK(claim_run(&buffer, 102, 107) == 0);

  /* Full again: with a timeout nothing is dropped (it waits, and times
   * out); with K_NO_WAIT the oldest goes. */
  CHECK(put_pairs(&buffer, 5, 200) == 0);
  CHECK(dropped_count == 2);
  CHECK(mpsc_pbuf_alloc(&buffer, 2, K_MSEC(5)) == NULL);
  CHECK(dropped_count == 2);
  struct test_packet* last = (struct test_packet*)mpsc_pbuf_alloc(&buffer, 2, K_NO_WAIT);
  CHECK(last != NULL);
  CHECK(dropped_count == 3 && dropped_last_data == 200);
  last->hdr.len = 2;
  last->data[0] = 205;
  mpsc_pbuf_commit(&buffer, (union mpsc_pbuf_generic*)last);
  CHECK(claim_run(&buffer, 201, 206) == 0);
  CHECK(K_TIMEOUT_EQ(K_FOREVER, K_FOREVER) && !K_TIMEOUT_EQ(K_NO_WAIT, K_USEC(1)));
  CHECK(K_SECONDS(1).ticks == K_MSEC(1000).ticks);
  CHECK(K_MINUTES(1).ticks == K_SECONDS(60).ticks && K_HOURS(1).ticks == K_MINUTES(60).ticks);
  CHECK(K_TIMEOUT_EQ(K_TICKS(CONFIG_SYS_CLOCK_TICKS_PER_SEC), K_SECONDS(1)));
  CHECK(K_TIMEOUT_EQ(K_TICKS(K_TICKS_FOREVER), K_FOREVER));
  CHECK(K_TIMEOUT_EQ(K_TICKS(0), K_NO_WAIT) && K_TIMEOUT_EQ(K_USEC(1000), K_MSEC(1)));
  /* Zephyr's internal spellings, as some of its code writes them. */
  CHECK(K_TIMEOUT_EQ(Z_TIMEOUT_TICKS(20), K_TICKS(20)) &&
        !K_TIMEOUT_EQ(Z_TIMEOUT_TICKS(20), K_NSEC(20)));
  CHECK(K_TIMEOUT_EQ(Z_TIMEOUT_NO_WAIT, K_NO_WAIT) && K_TIMEOUT_EQ(Z_FOREVER, K_FOREVER));
  /* Each macro evaluates its argument once. */
  k_ticks_t evaluated = 0;
  const k_timeout_t once = K_TICKS(++evaluated);
  CHECK(evaluated == 1 && K_TIMEOUT_EQ(once, K_USEC(100)));
  CHECK(K_TIMEOUT_EQ(K_MSEC(++evaluated), K_MSEC(2)) && evaluated == 2);
  /* A tick rate that does not divide a second: rounded up, not cut. */
  const k_timeout_t third = {1, 3};
  CHECK(sluice_k_timeout_ns(third) == 333333334);
  const k_timeout_t odd = {32769, 32768};
  CHECK(sluice_k_timeout_ns(odd) == 1000030518);
  const k_timeout_t far = {INT64_MAX, 1};
  CHECK(sluice_k_timeout_ns(far) == INT64_MAX);
  /* A wait in ticks ends: with a packet held (a timed allocation drops
   * nothing), a full-size one is refused after it. */
  struct test_packet* held = (struct test_packet*)mpsc_pbuf_alloc(&buffer, 2, K_NO_WAIT);
  CHECK(held != NULL);
  CHECK(mpsc_pbuf_alloc(&buffer, buffer.size, K_TICKS(1)) == NULL);
  held->hdr.len = 2;
  held->data[0] = 206;
  mpsc_pbuf_commit(&buffer, (union mpsc_pbuf_generic*)held);
  CHECK(claim_run(&buffer, 206, 207) == 0);

  /* As Zephyr's init: the flag of a power-of-two size is set for the
   * caller, and only then. */
  CHECK(buffer.flags == MPSC_PBUF_MODE_OVERWRITE);
  static struct mpsc_pbuf_buffer pow2;
  static uint32_t eight[8];
  const struct mpsc_pbuf_buffer_config pow2_config = {
      .buf = eight, .size = 8, .notify_drop = notify_drop, .get_wlen = get_wlen, .flags = 0};
  mpsc_pbuf_init(&pow2, &pow2_config);
  CHECK(pow2.flags == MPSC_PBUF_SIZE_POW2);
  return 0;
}

/* Allocates and commits one packet of `wlen` words with K_NO_WAIT. */
static int put_one(struct mpsc_pbuf_buffer* buffer, uint32_t wlen, uint32_t data) {
  struct test_packet* p = (struct test_packet*)mpsc_pbuf_alloc(buffer, wlen, K_NO_WAIT);
  CHECK(p != NULL);
  p->hdr.len = wlen;
  p->data[0] = data;
  mpsc_pbuf_commit(buffer, (union mpsc_pbuf_generic*)p);
  return 0;
}

/* The wrap of an emptied buffer, in both modes: after 6 of 8 words came and
 * went, a 4-word packet does not fit in the 2 words left before the end. The
 * buffer holds nothing else, so a second 4-word packet fits beside it at
 * once, with K_NO_WAIT and nothing dropped, before the consumer claims
 * again (as Zephyr's, whose producer passes the padding at the front). */
static int wrap_of_an_empty_buffer(uint32_t flags) {
  static struct mpsc_pbuf_buffer buffer;
  static uint32_t eight[8];
  const struct mpsc_pbuf_buffer_config config = {
      .buf = eight, .size = 8, .notify_drop = notify_drop, .get_wlen = get_wlen, .flags = flags};
  mpsc_pbuf_init(&buffer, &config);
  const uint32_t dropped_before = dropped_count;
  CHECK(put_one(&buffer, 6, 1) == 0);
  CHECK(claim_run(&buffer, 1, 2) == 0);
  CHECK(put_one(&buffer, 4, 2) == 0);
  CHECK(put_one(&buffer, 4, 3) == 0);
  CHECK(dropped_count == dropped_before);
  CHECK(claim_run(&buffer, 2, 4) == 0);
  return 0;
}

/* Without a get_wlen the length lives in the header's upper bits (the
 * allocation writes it), and the buffer's flags stay Zephyr's: no bit of
 * sluice's own shows in them. */
static int without_get_wlen(void) {
  static struct mpsc_pbuf_buffer buffer;
  static uint32_t eight[8];
  const struct mpsc_pbuf_buffer_config config = {.buf = eight, .size = 8, .flags = 0};
  mpsc_pbuf_init(&buffer, &config);
  CHECK(buffer.flags == MPSC_PBUF_SIZE_POW2);
  uint32_t* p = (uint32_t*)mpsc_pbuf_alloc(&buffer, 3, K_NO_WAIT);
  CHECK(p != NULL);
  CHECK(p[0] >> MPSC_PBUF_HDR_BITS == 3);
  p[1] = 301;
  p[2] = 302;
  mpsc_pbuf_commit(&buffer, (union mpsc_pbuf_generic*)p);
  const uint32_t* c = (const uint32_t*)mpsc_pbuf_claim(&buffer);
  CHECK(c != NULL);
  CHECK(c[0] >> MPSC_PBUF_HDR_BITS == 3 && c[1] == 301 && c[2] == 302);
  mpsc_pbuf_free(&buffer, (const union mpsc_pbuf_generic*)c);
  CHECK(!mpsc_pbuf_is_pending(&buffer));
  CHECK(buffer.flags == MPSC_PBUF_SIZE_POW2);
  return 0;
}

int main(void) {
  if (no_overwrite() != 0) return 1;
  if (overwrite() != 0) return 1;
  if (wrap_of_an_empty_buffer(0) != 0) return 1;
  if (wrap_of_an_empty_buffer(MPSC_PBUF_MODE_OVERWRITE) != 0) return 1;
  if (without_get_wlen() != 0) return 1;
  puts("mpsc_pbuf C API: ok");
  return 0;
}
