// The CPU-relax hint, chosen by architecture in this one selector.
#pragma once

namespace sluice::detail {

#if defined(__x86_64__) || defined(__i386__)
inline void cpu_relax() noexcept {
  __builtin_ia32_pause();
}
#elif defined(__aarch64__) || (defined(__ARM_ARCH) && __ARM_ARCH >= 7 && !defined(__ARM_ARCH_7M__))
inline void cpu_relax() noexcept {
  asm volatile("yield" ::: "memory");
}
#else
// Cortex-M3/M4 and anything unknown: a compiler barrier is all we need.
inline void cpu_relax() noexcept {
  asm volatile("" ::: "memory");
}
#endif

}  // namespace sluice::detail
