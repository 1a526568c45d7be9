// The pieces of the Cortex-A53 and of QEMU's virt machine that this port
// touches: the core index, the interrupt mask (DAIF), the generic timer, the
// GICv2, the PL011 UART, PSCI and semihosting. Shared by startup.cpp,
// port.cpp and board.cpp; nothing outside platform/aarch64-virt includes it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace virt {

inline constexpr unsigned max_cores = 4;  // the stacks in link.ld, the parkers in port.cpp

// ---- the core ---------------------------------------------------------------------
// QEMU's virt numbers cores 0..7 in MPIDR_EL1.Aff0 (clusters of eight).
inline unsigned core_index() noexcept {
  std::uint64_t mpidr;
  asm volatile("mrs %0, mpidr_el1" : "=r"(mpidr));
  return static_cast<unsigned>(mpidr & 0xff);
}

// DAIF: masks IRQ and FIQ, returns the previous mask (D, A, I, F bits).
inline std::uint64_t mask_interrupts() noexcept {
  std::uint64_t daif;
  asm volatile("mrs %0, daif\n\tmsr daifset, #3" : "=r"(daif)::"memory");
  return daif;
}
inline void restore_interrupts(std::uint64_t daif) noexcept {
  asm volatile("msr daif, %0" ::"r"(daif) : "memory");
}
inline void unmask_interrupts() noexcept {
  asm volatile("msr daifclr, #3" ::: "memory");
}

// ---- memory-mapped registers ------------------------------------------------------
inline volatile std::uint32_t& reg(std::uintptr_t address) noexcept {
  return *reinterpret_cast<volatile std::uint32_t*>(address);
}

// ---- generic timer --------------------------------------------------------------
inline std::uint64_t counter() noexcept {
  std::uint64_t ticks;
  // The ISB keeps the read from being taken early (ARM ARM D11.2.2).
  asm volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(ticks)::"memory");
  return ticks;
}
inline std::uint64_t counter_hz() noexcept {
  std::uint64_t hz;
  asm volatile("mrs %0, cntfrq_el0" : "=r"(hz));
  return hz;
}
// CNTx_CTL_EL0 bits.
inline constexpr std::uint64_t timer_enable = 1u << 0;
inline constexpr std::uint64_t timer_imask = 1u << 1;

// The interrupt IDs (PPIs) of QEMU's virt: the virtual timer serves the
// port's timed waits on every core, the physical timer the board's tick on
// core 0.
inline constexpr std::uint32_t virtual_timer_irq = 27;
inline constexpr std::uint32_t physical_timer_irq = 30;
// The SGI by which another core asks core 0 to start or stop the tick.
inline constexpr std::uint32_t tick_control_sgi = 0;

// ---- GICv2 (virt's default gic-version=2) -----------------------------------------
inline constexpr std::uintptr_t gicd = 0x0800'0000;
inline constexpr std::uintptr_t gicd_ctlr = gicd + 0x000;
inline constexpr std::uintptr_t gicd_isenabler = gicd + 0x100;   // + 4 * (id / 32)
inline constexpr std::uintptr_t gicd_ipriorityr = gicd + 0x400;  // + id (bytes)
inline constexpr std::uintptr_t gicd_sgir = gicd + 0xf00;
inline constexpr std::uintptr_t gicc = 0x0801'0000;
inline constexpr std::uintptr_t gicc_ctlr = gicc + 0x00;
inline constexpr std::uintptr_t gicc_pmr = gicc + 0x04;
inline constexpr std::uintptr_t gicc_bpr = gicc + 0x08;
inline constexpr std::uintptr_t gicc_iar = gicc + 0x0c;
inline constexpr std::uintptr_t gicc_eoir = gicc + 0x10;
inline constexpr std::uint32_t gic_spurious = 1023;

// ---- PL011 UART ------------------------------------------------------------------
inline constexpr std::uintptr_t uart = 0x0900'0000;
inline constexpr std::uintptr_t uart_dr = uart + 0x00;
inline constexpr std::uintptr_t uart_fr = uart + 0x18;
inline constexpr std::uintptr_t uart_cr = uart + 0x30;
inline constexpr std::uint32_t uart_fr_txff = 1u << 5;

// Writes bytes with no lock (board.cpp's write takes the console lock).
inline void uart_put(const char* text, std::size_t length) noexcept {
  for (std::size_t i = 0; i < length; ++i) {
    while ((reg(uart_fr) & uart_fr_txff) != 0) {
    }
    reg(uart_dr) = static_cast<unsigned char>(text[i]);
  }
}

// ---- start-up, exit, the console (startup.cpp, board.cpp) ---------------------------
// Per-core set-up after the MMU: the GIC CPU interface, this core's timer
// interrupts, both timers off; then unmasks IRQs.
void core_init() noexcept;
// One line (or part) to the UART under the console lock; any context.
void console_write(const char* text, std::size_t length) noexcept;
void console_write(const char* text) noexcept;
void console_hex(std::uint64_t value) noexcept;
void console_dec(std::uint64_t value) noexcept;
// Writes `value` in decimal to `out` (room for 20 characters); returns the
// length.
std::size_t format_dec(char* out, std::uint64_t value) noexcept;
// Semihosting SYS_EXIT with `status` (QEMU run with -semihosting); if that
// returns, PSCI SYSTEM_OFF.
[[noreturn]] void exit(int status) noexcept;

// ---- PSCI (QEMU emulates it: HVC from EL1, SMC if it started us at EL2) ----------
inline constexpr std::uint64_t psci_cpu_on = 0xc400'0003;      // SMC64
inline constexpr std::uint64_t psci_system_off = 0x8400'0008;  // SMC32
std::int64_t psci_call(std::uint64_t function, std::uint64_t a1, std::uint64_t a2,
                       std::uint64_t a3) noexcept;

// ---- interrupt handlers (port.cpp, board.cpp), called by a64_irq_dispatch ---------
void on_virtual_timer() noexcept;   // port.cpp: a timed wait's deadline
void on_physical_timer() noexcept;  // board.cpp: the tick (core 0)
void on_tick_control() noexcept;    // board.cpp: start/stop the tick (core 0)

}  // namespace virt
