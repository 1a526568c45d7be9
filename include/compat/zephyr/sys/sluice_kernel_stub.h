/*
 * The little of Zephyr's kernel API that <zephyr/sys/mpsc_pbuf.h> needs,
 * for builds without Zephyr: a timeout type and its constructors. A build
 * that has Zephyr's own <zephyr/kernel.h> uses Zephyr's packet buffer, not
 * this one.
 *
 * Here a k_timeout_t counts nanoseconds on sluice's monotonic clock;
 * K_FOREVER is -1, K_NO_WAIT is 0. K_TICKS counts ticks of
 * CONFIG_SYS_CLOCK_TICKS_PER_SEC (10000 where the build does not say).
 */
#ifndef SLUICE_COMPAT_ZEPHYR_SYS_KERNEL_STUB_H_
#define SLUICE_COMPAT_ZEPHYR_SYS_KERNEL_STUB_H_

#include <stdint.h>

#ifndef BIT
#define BIT(n) (1UL << (n))
#endif

typedef int64_t k_ticks_t;

typedef struct {
  k_ticks_t ticks; /* nanoseconds; -1: forever */
} k_timeout_t;

#define K_NO_WAIT ((k_timeout_t){0})
#define K_FOREVER ((k_timeout_t){-1})
#define K_NSEC(t) ((k_timeout_t){(k_ticks_t)(t)})
#define K_USEC(t) ((k_timeout_t){(k_ticks_t)(t)*1000})
#define K_MSEC(ms) ((k_timeout_t){(k_ticks_t)(ms)*1000000})
#define K_SECONDS(s) ((k_timeout_t){(k_ticks_t)(s)*1000000000})
#define K_MINUTES(m) K_SECONDS((k_ticks_t)(m)*60)
#define K_HOURS(h) K_MINUTES((k_ticks_t)(h)*60)

#ifndef CONFIG_SYS_CLOCK_TICKS_PER_SEC
#define CONFIG_SYS_CLOCK_TICKS_PER_SEC 10000
#endif
#define K_TICKS_FOREVER ((k_ticks_t)-1)
#define K_TICKS(t)                                 \
  ((k_timeout_t){(k_ticks_t)(t) == K_TICKS_FOREVER \
                     ? K_TICKS_FOREVER             \
                     : (k_ticks_t)(t) * (1000000000 / CONFIG_SYS_CLOCK_TICKS_PER_SEC)})
#define K_TIMEOUT_EQ(a, b) ((a).ticks == (b).ticks)

#endif /* SLUICE_COMPAT_ZEPHYR_SYS_KERNEL_STUB_H_ */
