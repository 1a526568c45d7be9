// Start-up for the Cortex-M3 of QEMU's mps2-an385: the vector table, the
// reset handler (copy .data, clear .bss, start UART0 and the SysTick clock,
// run the static constructors, call main, exit with its status) and the
// fault handlers, which report on UART0 and exit with status 3.
#include <array>
#include <cstddef>
#include <cstdint>

#include "mps2.hpp"

// Symbols of the linker script (mps2_an385.ld).
extern "C" {
extern std::uint32_t __data_load[];
extern std::uint32_t __data_start[];
extern std::uint32_t __data_end[];
extern std::uint32_t __bss_start[];
extern std::uint32_t __bss_end[];
extern std::uint32_t __stack_top[];
extern void (*const __init_array_start[])();
extern void (*const __init_array_end[])();

void systick_handler();  // port.cpp
[[noreturn]] void reset_handler();
void hard_fault_handler();
[[noreturn]] void unexpected_handler();
}

// The program's main, named by its symbol (C++ does not let a program call
// ::main itself).
int program_main() asm("main");

namespace {

union vector {
  void (*handler)();
  std::uint32_t* stack;
};

// 16 system exceptions and the AN385's 32 external interrupts.
constexpr std::size_t vector_count = 16 + 32;

constexpr std::array<vector, vector_count> make_vector_table() {
  std::array<vector, vector_count> table{};
  table[0].stack = __stack_top;  // initial main stack pointer
  table[1].handler = reset_handler;
  for (std::size_t i = 2; i < vector_count; ++i)
    table[i].handler = unexpected_handler;
  table[3].handler = hard_fault_handler;
  for (std::size_t i : {7, 8, 9, 10, 13})
    table[i].handler = nullptr;  // reserved
  table[15].handler = systick_handler;
  return table;
}

void write_hex(std::uint32_t value) noexcept {
  char text[10] = {'0', 'x'};
  for (int i = 0; i < 8; ++i) {
    const std::uint32_t nibble = (value >> (28 - 4 * i)) & 0xf;
    text[2 + i] = static_cast<char>(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
  }
  mps2::uart_write(text, sizeof text);
}

}  // namespace

// Placed at address 0 by the linker script, where the core reads the
// initial stack pointer and the reset vector.
[[gnu::section(".vectors"), gnu::used]] constinit const std::array<vector, vector_count>
    vector_table = make_vector_table();

extern "C" [[noreturn]] void reset_handler() {
  // Plain loops over words: no library call is needed before .data and
  // .bss are ready.
  for (std::uint32_t *from = __data_load, *to = __data_start; to != __data_end;)
    *to++ = *from++;
  for (std::uint32_t* p = __bss_start; p != __bss_end;)
    *p++ = 0;
  mps2::uart_init();
  mps2::clock_start();
  for (auto* constructor = __init_array_start; constructor != __init_array_end; ++constructor)
    (*constructor)();
  mps2::semihost_exit(program_main());
}

// The faulting code's registers were stacked on the main stack (the only
// stack this image uses): report the faulting pc and the fault status.
extern "C" [[noreturn]] void report_fault(const std::uint32_t* frame) {
  (void)mps2::mask_interrupts();
  mps2::uart_write("fault: hard fault at pc=");
  write_hex(frame[6]);
  mps2::uart_write(" cfsr=");
  write_hex(mps2::reg(0xE000'ED28));
  mps2::uart_write(" hfsr=");
  write_hex(mps2::reg(0xE000'ED2C));
  mps2::uart_write("\n");
  mps2::semihost_exit(3);
}

extern "C" [[gnu::naked]] void hard_fault_handler() {
  asm volatile("mrs r0, msp\n\tb report_fault");
}

extern "C" [[noreturn]] void unexpected_handler() {
  std::uint32_t ipsr;
  asm volatile("mrs %0, ipsr" : "=r"(ipsr));
  mps2::uart_write("fault: unexpected exception ");
  write_hex(ipsr);
  mps2::uart_write("\n");
  mps2::semihost_exit(3);
}
