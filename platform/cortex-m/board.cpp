// examples/baremetal/board.hpp for QEMU's mps2-an385: one core, UART0 for
// the console, SysTick (which also drives the clock) for the tick interrupt,
// semihosting for exit.
#include <cstddef>
#include <cstdint>

#include "../../examples/baremetal/board.hpp"
#include "mps2.hpp"

namespace {

// Written by start_tick / stop_tick with interrupts masked; read by tick()
// in the SysTick handler, which they therefore never interleave with.
void (*tick_fn)() noexcept = nullptr;
std::uint32_t tick_divider = 1;  // SysTick ticks per on_tick call
std::uint32_t tick_count = 0;

void tick() noexcept {
  if (++tick_count < tick_divider) return;
  tick_count = 0;
  tick_fn();
}

}  // namespace

namespace board {

void write(const char* text, std::size_t length) noexcept {
  mps2::uart_write(text, length);
}

unsigned core_count() noexcept {
  return 1;
}

void start_cores(void (*)(unsigned) noexcept) noexcept {}

// `hz` is served as a whole number of SysTick periods (1 ms): rates that do
// not divide 1000 are rounded to the nearest period, rates above 1000 Hz
// run at 1000 Hz.
void start_tick(std::uint32_t hz, void (*on_tick)() noexcept) noexcept {
  const std::uint32_t divider = hz == 0 ? 1 : (mps2::systick_hz + hz / 2) / hz;
  const std::uint32_t primask = mps2::mask_interrupts();
  tick_fn = on_tick;
  tick_divider = divider == 0 ? 1 : divider;
  tick_count = 0;
  mps2::tick_hook = &tick;
  mps2::restore_interrupts(primask);
}

void stop_tick() noexcept {
  const std::uint32_t primask = mps2::mask_interrupts();
  mps2::tick_hook = nullptr;
  mps2::restore_interrupts(primask);
}

[[noreturn]] void exit(int status) noexcept {
  mps2::semihost_exit(status);
}

}  // namespace board
