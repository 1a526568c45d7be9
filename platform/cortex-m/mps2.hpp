// The pieces of the Cortex-M3 core and of the MPS2 AN385 board (as QEMU's
// mps2-an385 models it) that this port touches: SysTick, the System Control
// Block, the CMSDK APB UART0, PRIMASK and semihosting. Shared by startup.cpp,
// port.cpp and board.cpp; nothing outside platform/cortex-m includes it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mps2 {

// ---- clock --------------------------------------------------------------------
// The AN385 image clocks the processor (and SysTick's processor-clock source)
// at 25 MHz: one SysTick count is 40 ns.
inline constexpr std::uint32_t cpu_hz = 25'000'000;
inline constexpr std::uint32_t ns_per_cycle = 1'000'000'000 / cpu_hz;
// SysTick interrupts at this rate: it is the clock's tick, the timer
// granularity of wait_until, and the base of board::start_tick.
inline constexpr std::uint32_t systick_hz = 1000;
inline constexpr std::uint32_t systick_reload = cpu_hz / systick_hz - 1;

// Starts SysTick as the clock (port.cpp); called once by the reset handler.
void clock_start() noexcept;

// Called by the SysTick handler (port.cpp) after each tick is counted, in
// interrupt context; null: none. board.cpp sets it for board::start_tick.
extern void (*volatile tick_hook)() noexcept;

// ---- memory-mapped registers ------------------------------------------------------
inline volatile std::uint32_t& reg(std::uintptr_t address) noexcept {
  return *reinterpret_cast<volatile std::uint32_t*>(address);
}

// SysTick (ARMv7-M ARM B3.3).
inline constexpr std::uintptr_t syst_csr = 0xE000'E010;  // control and status
inline constexpr std::uintptr_t syst_rvr = 0xE000'E014;  // reload value
inline constexpr std::uintptr_t syst_cvr = 0xE000'E018;  // current value (counts down)
inline constexpr std::uint32_t syst_csr_enable = 1u << 0;
inline constexpr std::uint32_t syst_csr_tickint = 1u << 1;
inline constexpr std::uint32_t syst_csr_clksource_cpu = 1u << 2;

// System Control Block.
inline constexpr std::uintptr_t scb_icsr = 0xE000'ED04;        // interrupt control and state
inline constexpr std::uint32_t scb_icsr_pendstset = 1u << 26;  // SysTick pending

// CMSDK APB UART0 (QEMU connects it to the first serial port).
inline constexpr std::uintptr_t uart0 = 0x4000'4000;
inline constexpr std::uintptr_t uart_data = uart0 + 0x00;
inline constexpr std::uintptr_t uart_state = uart0 + 0x04;
inline constexpr std::uintptr_t uart_ctrl = uart0 + 0x08;
inline constexpr std::uintptr_t uart_bauddiv = uart0 + 0x10;
inline constexpr std::uint32_t uart_state_tx_full = 1u << 0;
inline constexpr std::uint32_t uart_ctrl_tx_enable = 1u << 0;

inline void uart_init() noexcept {
  reg(uart_bauddiv) = cpu_hz / 115'200;
  reg(uart_ctrl) = uart_ctrl_tx_enable;
}

inline void uart_write(const char* text, std::size_t length) noexcept {
  for (std::size_t i = 0; i < length; ++i) {
    while ((reg(uart_state) & uart_state_tx_full) != 0) {
    }
    reg(uart_data) = static_cast<unsigned char>(text[i]);
  }
}

inline void uart_write(const char* text) noexcept {
  std::size_t n = 0;
  while (text[n] != '\0')
    ++n;
  uart_write(text, n);
}

// ---- PRIMASK ----------------------------------------------------------------------
// The "memory" clobbers keep the compiler from moving memory accesses across
// a mask change, so what a critical section protects stays inside it.
inline std::uint32_t mask_interrupts() noexcept {
  std::uint32_t primask;
  asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask) : : "memory");
  return primask;
}

inline void restore_interrupts(std::uint32_t primask) noexcept {
  asm volatile("msr primask, %0" : : "r"(primask) : "memory");
}

// ---- semihosting ------------------------------------------------------------------
// ARM semihosting: operation in r0, argument in r1, `bkpt 0xab` on M-profile.
// QEMU serves it with `-semihosting-config enable=on,target=native`.
inline std::uint32_t semihost(std::uint32_t operation, const void* argument) noexcept {
  register std::uint32_t r0 asm("r0") = operation;
  register const void* r1 asm("r1") = argument;
  asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

// SYS_EXIT_EXTENDED with ADP_Stopped_ApplicationExit: QEMU exits with
// `status` as its own exit status.
[[noreturn]] inline void semihost_exit(int status) noexcept {
  constexpr std::uint32_t sys_exit_extended = 0x20;
  constexpr std::uint32_t adp_stopped_application_exit = 0x20026;
  const std::uint32_t block[2] = {adp_stopped_application_exit, static_cast<std::uint32_t>(status)};
  (void)semihost(sys_exit_extended, block);
  // Without semihosting this stops here; on hardware with no debugger
  // attached, bkpt faults instead (HardFault, which stops the core too).
  for (;;) {
    asm volatile("wfi");
  }
}

}  // namespace mps2
