// The board interface of the bare-metal demo (examples/baremetal/demo.cpp):
// the whole of what the demo asks of a board. Each port implements it in its
// own folder (platform/cortex-m/board.cpp, platform/aarch64-virt/...); the
// demo talks to the hardware through nothing else.
//
// Contexts: write, core_count, start_cores, start_tick, stop_tick and exit
// are called from thread or task context (never from on_tick); on_tick runs
// in interrupt context, on one core.
#pragma once

#include <cstddef>
#include <cstdint>

namespace board {

// Writes `length` bytes of `text` to the console (UART). Thread or task
// context; one call's bytes are not interleaved with another core's.
void write(const char* text, std::size_t length) noexcept;

// The cores that run an executor worker (the calling core included).
unsigned core_count() noexcept;

// Runs entry(core) on cores 1..core_count()-1 (returns at once on a single
// core). The demo's entry runs an executor worker until the program ends;
// should an entry return, the board parks that core.
void start_cores(void (*entry)(unsigned core) noexcept) noexcept;

// A periodic timer interrupt at `hz` calling on_tick() in interrupt context;
// stop_tick ends it (no on_tick call begins after stop_tick returns).
void start_tick(std::uint32_t hz, void (*on_tick)() noexcept) noexcept;
void stop_tick() noexcept;

// Ends the program with `status` (0: success): semihosting SYS_EXIT on
// Cortex-M, PSCI SYSTEM_OFF on AArch64.
[[noreturn]] void exit(int status) noexcept;

}  // namespace board
