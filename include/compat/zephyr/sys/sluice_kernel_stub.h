/*
 * The little of Zephyr's kernel API that <zephyr/sys/mpsc_pbuf.h> needs,
 * for builds without Zephyr: a timeout type and its constructors. A build
 * that has Zephyr's own <zephyr/kernel.h> uses Zephyr's packet buffer, not
 * this one.
 *
 * Here a k_timeout_t counts nanoseconds on sluice's monotonic clock (its
 * fields are not Zephyr's: make one with the macros below), or,
 * made by K_TICKS, ticks of CONFIG_SYS_CLOCK_TICKS_PER_SEC (10000 where the
 * build does not say; the rate travels in the value, and the wait rounds
 * up to whole nanoseconds). A negative count waits forever: K_FOREVER and
 * K_TICKS(K_TICKS_FOREVER). K_NO_WAIT is 0. Every macro evaluates its
 * argument once; K_TIMEOUT_EQ compares the waits, whatever the unit.
 */
#ifndef SLUICE_COMPAT_ZEPHYR_SYS_KERNEL_STUB_H_
#define SLUICE_COMPAT_ZEPHYR_SYS_KERNEL_STUB_H_

#include <stdint.h>

#ifndef BIT
#define BIT(n) (1UL << (n))
#endif
/* Two of <zephyr/sys/util.h>'s helpers, which Zephyr code that includes
 * only <zephyr/sys/mpsc_pbuf.h> gets through <zephyr/kernel.h> and uses
 * with it (a config's .size = ARRAY_SIZE(storage), a drop callback's
 * unused argument). */
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(array) (sizeof(array) / sizeof((array)[0]))
#endif
#ifndef ARG_UNUSED
#define ARG_UNUSED(x) (void)(x)
#endif

typedef int64_t k_ticks_t;

typedef struct {
  k_ticks_t ticks;    /* nanoseconds, or ticks where tick_rate is set; < 0: forever */
  uint32_t tick_rate; /* 0, or ticks per second (K_TICKS) */
} k_timeout_t;

/* A k_timeout_t value: a compound literal in C, a temporary in C++ (which
 * has no compound literals). */
#ifdef __cplusplus
#define SLUICE_K_TIMEOUT(ticks, rate) (k_timeout_t{(ticks), (rate)})
#else
#define SLUICE_K_TIMEOUT(ticks, rate) ((k_timeout_t){(ticks), (rate)})
#endif

#define K_NO_WAIT SLUICE_K_TIMEOUT(0, 0)
#define K_FOREVER SLUICE_K_TIMEOUT(-1, 0)
#define K_NSEC(t) SLUICE_K_TIMEOUT((k_ticks_t)(t), 0)
#define K_USEC(t) SLUICE_K_TIMEOUT((k_ticks_t)(t)*1000, 0)
#define K_MSEC(ms) SLUICE_K_TIMEOUT((k_ticks_t)(ms)*1000000, 0)
#define K_SECONDS(s) SLUICE_K_TIMEOUT((k_ticks_t)(s)*1000000000, 0)
#define K_MINUTES(m) K_SECONDS((k_ticks_t)(m)*60)
#define K_HOURS(h) K_MINUTES((k_ticks_t)(h)*60)

#ifndef CONFIG_SYS_CLOCK_TICKS_PER_SEC
#define CONFIG_SYS_CLOCK_TICKS_PER_SEC 10000
#endif
#define K_TICKS_FOREVER ((k_ticks_t)-1)
#define K_TICKS(t) SLUICE_K_TIMEOUT((k_ticks_t)(t), (uint32_t)(CONFIG_SYS_CLOCK_TICKS_PER_SEC))
/* Zephyr's internal spellings, which some of its code and tests use. */
#define Z_TIMEOUT_TICKS(t) K_TICKS(t)
#define Z_TIMEOUT_NO_WAIT K_NO_WAIT
#define Z_FOREVER K_FOREVER

/* The wait in nanoseconds: -1 forever; ticks round up; a wait past
 * INT64_MAX nanoseconds (about 292 years) is INT64_MAX. */
static inline int64_t sluice_k_timeout_ns(k_timeout_t timeout) {
  if (timeout.ticks < 0) return -1;
  if (timeout.tick_rate == 0) return timeout.ticks;
  const int64_t rate = (int64_t)timeout.tick_rate;
  const int64_t seconds = timeout.ticks / rate;
  const int64_t rest = timeout.ticks % rate; /* < 2^32: times 10^9 fits */
  if (seconds > (INT64_MAX - 1000000000) / 1000000000) return INT64_MAX;
  return seconds * 1000000000 + (rest * 1000000000 + rate - 1) / rate;
}

static inline int sluice_k_timeout_eq(k_timeout_t a, k_timeout_t b) {
  return sluice_k_timeout_ns(a) == sluice_k_timeout_ns(b);
}
#define K_TIMEOUT_EQ(a, b) sluice_k_timeout_eq((a), (b))

#endif /* SLUICE_COMPAT_ZEPHYR_SYS_KERNEL_STUB_H_ */
