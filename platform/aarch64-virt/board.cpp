// examples/baremetal/board.hpp for QEMU's virt machine: four cores started
// through PSCI CPU_ON, the PL011 UART under a spin lock (one call's bytes
// are not interleaved with another core's), core 0's physical timer for the
// tick, semihosting (else PSCI SYSTEM_OFF) for exit.
#include <cstddef>
#include <cstdint>

#include <sluice/detail/atomic.hpp>
#include <sluice/detail/backoff.hpp>

#include "../../examples/baremetal/board.hpp"
#include "virt.hpp"

extern "C" void secondary_entry();  // start.S

namespace {

// ---- the console -----------------------------------------------------------------
// A spin lock taken with interrupts masked on the holder's core, so a handler
// that writes cannot deadlock against the code it interrupted... except
// panic, which writes after a bounded wait whoever holds the lock.
sluice::detail::atomic<std::uint32_t> console_lock{0};

// attempts: how many looks at the lock before giving up (0: no limit).
// Each look is an exchange or a load: a holder that never lets go (a fault
// on its own core while it writes) ends the wait too.
bool lock_console(std::uint32_t attempts) noexcept {
  std::uint32_t looks = 0;
  for (;;) {
    // Acquire [C1]: pairs with the release in unlock_console; the previous
    // holder's UART writes are done.
    if (console_lock.exchange(1, std::memory_order_acquire) == 0) return true;
    // Relaxed: wait for it to look free before trying again.
    sluice::detail::backoff spin;
    do {
      if (attempts != 0 && ++looks >= attempts) return false;
      spin.spin();
    } while (console_lock.load(std::memory_order_relaxed) != 0);
  }
}

void unlock_console() noexcept {
  // Release [C1].
  console_lock.store(0, std::memory_order_release);
}

// ---- the secondary cores ------------------------------------------------------------
// Written before CPU_ON, read by the started core. Release/acquire [B1]:
// the entry and everything the primary wrote before start_cores are visible
// to the secondary when it reads `secondary_fn` (PSCI's start is not
// assumed to order memory).
sluice::detail::atomic<void (*)(unsigned) noexcept> secondary_fn{nullptr};
sluice::detail::atomic<std::uint32_t> cores_up{1};

// ---- the tick (core 0's physical timer) -------------------------------------------
// start_tick / stop_tick publish a request; core 0 applies it in its own
// interrupt context (directly when the caller is core 0, else through an
// SGI), so the timer registers are only touched on core 0 and no on_tick
// call runs while a request is applied.
sluice::detail::atomic<void (*)() noexcept> tick_fn{nullptr};
sluice::detail::atomic<std::uint64_t> tick_period{0};  // counts; 0: stopped
sluice::detail::atomic<std::uint32_t> tick_requests{0};
sluice::detail::atomic<std::uint32_t> tick_applied{0};
// Core 0 only: the request as applied. The timer handler reads these, not
// the request fields above, which another core may be rewriting for a
// request not applied yet.
std::uint64_t tick_next = 0;
std::uint64_t applied_period = 0;
void (*applied_fn)() noexcept = nullptr;

void apply_tick_request() noexcept {
  // Acquire [B2]: pairs with the release increment in request_tick; the
  // new period and function are visible.
  const std::uint32_t request = tick_requests.load(std::memory_order_acquire);
  // Relaxed: published by [B2].
  const std::uint64_t period = tick_period.load(std::memory_order_relaxed);
  // Relaxed: published by [B2].
  applied_fn = tick_fn.load(std::memory_order_relaxed);
  applied_period = period;
  if (period == 0) {
    asm volatile("msr cntp_ctl_el0, xzr\n\tisb");
  } else {
    tick_next = virt::counter() + period;
    const std::uint64_t ctl = virt::timer_enable;
    asm volatile("msr cntp_cval_el0, %0\n\tmsr cntp_ctl_el0, %1\n\tisb" ::"r"(tick_next), "r"(ctl));
  }
  // Release [B3]: pairs with the acquire in request_tick's wait; the timer is
  // set as asked before the requester returns.
  tick_applied.store(request, std::memory_order_release);
}

void request_tick(std::uint64_t period, void (*on_tick)() noexcept) noexcept {
  // Relaxed: both are published by the release increment [B2].
  tick_fn.store(on_tick, std::memory_order_relaxed);
  tick_period.store(period, std::memory_order_relaxed);
  // Release [B2].
  const std::uint32_t request = tick_requests.fetch_add(1, std::memory_order_release) + 1;
  if (virt::core_index() == 0) {
    const std::uint64_t daif = virt::mask_interrupts();
    apply_tick_request();
    virt::restore_interrupts(daif);
    return;
  }
  // SGI to CPU interface 0 (target list bit 0, filter 0: the list).
  asm volatile("dsb ish" ::: "memory");
  virt::reg(virt::gicd_sgir) = (1u << 16) | virt::tick_control_sgi;
  // Acquire [B3]. The difference tolerates wrap-around.
  sluice::detail::backoff spin;
  while (static_cast<std::int32_t>(tick_applied.load(std::memory_order_acquire) - request) < 0)
    spin.spin();
}

}  // namespace

namespace virt {

void console_write(const char* text, std::size_t length) noexcept {
  const std::uint64_t daif = mask_interrupts();
  // A panic or fault handler must print even if its own core holds the lock.
  const bool locked = lock_console((daif & (1u << 7)) != 0 ? 1u << 20 : 0);
  uart_put(text, length);
  if (locked) unlock_console();
  restore_interrupts(daif);
}

void console_write(const char* text) noexcept {
  std::size_t n = 0;
  while (text[n] != '\0')
    ++n;
  console_write(text, n);
}

void console_hex(std::uint64_t value) noexcept {
  char text[18] = {'0', 'x'};
  for (int i = 0; i < 16; ++i) {
    const auto nibble = static_cast<unsigned>((value >> (60 - 4 * i)) & 0xf);
    text[2 + i] = static_cast<char>(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
  }
  console_write(text, sizeof text);
}

void console_dec(std::uint64_t value) noexcept {
  char digits[20];
  console_write(digits, format_dec(digits, value));
}

std::size_t format_dec(char* out, std::uint64_t value) noexcept {
  char digits[20];
  std::size_t n = sizeof digits;
  do {
    digits[--n] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (std::size_t i = n; i < sizeof digits; ++i)
    out[i - n] = digits[i];
  return sizeof digits - n;
}

[[noreturn]] void run_secondary(unsigned core) noexcept {
  // Relaxed: counts only; start_cores waits for it.
  cores_up.fetch_add(1, std::memory_order_relaxed);
  // Acquire [B1].
  secondary_fn.load(std::memory_order_acquire)(core);
  for (;;)
    asm volatile("wfe");
}

void on_physical_timer() noexcept {
  // Next deadline from the previous one: no drift; if we fell behind, the
  // timer fires again at once and catches up.
  // The applied period and function: written on this core only, with this
  // interrupt masked (apply_tick_request), so no atomics.
  if (applied_period == 0) return;  // stopped; a late interrupt
  tick_next += applied_period;
  asm volatile("msr cntp_cval_el0, %0\n\tisb" ::"r"(tick_next));
  if (applied_fn != nullptr) applied_fn();
}

void on_tick_control() noexcept {
  apply_tick_request();
}

}  // namespace virt

namespace board {

void write(const char* text, std::size_t length) noexcept {
  virt::console_write(text, length);
}

unsigned core_count() noexcept {
  return virt::max_cores;
}

void start_cores(void (*entry)(unsigned core) noexcept) noexcept {
  // Release [B1].
  secondary_fn.store(entry, std::memory_order_release);
  asm volatile("dsb ish" ::: "memory");
  for (unsigned core = 1; core < virt::max_cores; ++core) {
    const std::int64_t r = virt::psci_call(
        virt::psci_cpu_on, core, reinterpret_cast<std::uintptr_t>(&secondary_entry), core);
    if (r != 0) {
      virt::console_write("fault: PSCI CPU_ON failed for core ");
      virt::console_hex(core);
      virt::console_write(" with ");
      virt::console_hex(static_cast<std::uint64_t>(r));
      virt::console_write("\n");
      virt::exit(3);
    }
  }
  // Relaxed: a count; nothing is read through it.
  sluice::detail::backoff spin;
  while (cores_up.load(std::memory_order_relaxed) != virt::max_cores)
    spin.spin();
  // One write: the secondary cores already run and print (a line made of
  // several writes could have one of theirs in the middle).
  char line[64];
  std::size_t n = 0;
  const auto text = [&](const char* t) {
    while (*t != '\0')
      line[n++] = *t++;
  };
  text("boot: cores=");
  n += virt::format_dec(line + n, virt::max_cores);
  text(" up at_us=");
  n += virt::format_dec(line + n, virt::counter() / (virt::counter_hz() / 1'000'000));
  text("\n");
  virt::console_write(line, n);
}

void start_tick(std::uint32_t hz, void (*on_tick)() noexcept) noexcept {
  const std::uint64_t counts = virt::counter_hz() / (hz == 0 ? 1 : hz);
  request_tick(counts == 0 ? 1 : counts, on_tick);
}

void stop_tick() noexcept {
  request_tick(0, nullptr);
}

[[noreturn]] void exit(int status) noexcept {
  virt::exit(status);
}

}  // namespace board
