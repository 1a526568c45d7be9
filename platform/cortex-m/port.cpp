// The sluice port for a single-core Cortex-M3 (QEMU mps2-an385): the whole
// of include/sluice/port.hpp and include/sluice/detail/worker_port.hpp.
//
//   clock            SysTick at 1 kHz counts ticks; now() = ticks * 1 ms +
//                    the cycles elapsed in the current tick (SysTick's
//                    current value), so it has 40 ns resolution
//   wait / notify    WFI with PRIMASK set (below); notify has nothing to do
//   critical section PRIMASK saved, set, restored (nests)
//   panic            message on UART0, then semihosting exit with status 2
//   workers          none started by the port: the one core runs
//                    executor::run_worker() itself
#include <cstdint>

#include <sluice/detail/worker_port.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>

#include "mps2.hpp"

namespace mps2 {
void (*volatile tick_hook)() noexcept = nullptr;
}  // namespace mps2

namespace {

// SysTick periods since clock_start. Written only by the SysTick handler;
// read only with interrupts masked (a 64-bit value is two loads, which the
// handler must not split).
std::uint64_t ticks = 0;

// The latest time now() returned, in ns; read and written only with
// interrupts masked (one core: that makes each now() exclusive).
std::uint64_t last_now_ns = 0;

// The one core's parker: static, never freed (no on_last_release).
constinit sluice::parker core_parker;

// The current time with interrupts already masked.
sluice::time_point now_masked() noexcept {
  std::uint64_t t = ticks;
  std::uint32_t value = mps2::reg(mps2::syst_cvr);
  // A wrap whose handler has not run yet (it is pending while we hold the
  // mask): the count is one tick further, and `value` may have been read on
  // either side of the wrap, so read it again, after it.
  if ((mps2::reg(mps2::scb_icsr) & mps2::scb_icsr_pendstset) != 0) {
    value = mps2::reg(mps2::syst_cvr);
    ++t;
  }
  constexpr std::uint64_t tick_ns = 1'000'000'000 / mps2::systick_hz;
  // SysTick counts down from the reload value: reload - value cycles of
  // this tick have elapsed (less than one tick).
  std::uint64_t ns = t * tick_ns + std::uint64_t{mps2::systick_reload - value} * mps2::ns_per_cycle;
  // One case reads a tick short: an interrupt of higher priority than
  // SysTick that preempts SysTick's handler after its entry (which clears
  // the pending bit) and before its ++ticks. Never go back: at worst the
  // clock stands still until the handler's increment lands.
  if (ns < last_now_ns) ns = last_now_ns;
  last_now_ns = ns;
  return sluice::time_point{ns};
}

void write_decimal(int value) noexcept {
  char digits[12];
  int n = 0;
  auto v = static_cast<unsigned>(value < 0 ? -value : value);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  if (value < 0) digits[n++] = '-';
  while (n != 0)
    mps2::uart_write(&digits[--n], 1);
}

}  // namespace

void mps2::clock_start() noexcept {
  reg(syst_rvr) = systick_reload;
  reg(syst_cvr) = 0;  // any write clears it; the count starts from the reload value
  reg(syst_csr) = syst_csr_enable | syst_csr_tickint | syst_csr_clksource_cpu;
}

extern "C" void systick_handler() {
  ++ticks;
  if (void (*hook)() noexcept = mps2::tick_hook) hook();
}

namespace sluice::port {

// No lost wake-up: the word is checked with interrupts masked (PRIMASK), and
// WFI is entered with them still masked. An interrupt that arrives after the
// check cannot run before the WFI; it stays pending, and a pending interrupt
// ends WFI even while PRIMASK masks it. Unmasking then runs its handler, and
// the loop checks the word again. Every notifier on this single core is
// either such a handler or the code that would be waiting, so a change of the
// word is never slept through; the SysTick interrupt ends each WFI within a
// tick, which bounds how late the deadline is seen.
wait_status wait_until(const detail::atomic<std::uint32_t>& word, std::uint32_t expected,
                       time_point deadline) noexcept {
  for (;;) {
    // A handler (IPSR not 0) is woken only by interrupts of a higher
    // priority, and with PRIMASK set nothing runs: named rather than hung.
    std::uint32_t ipsr;
    asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    const std::uint32_t primask = mps2::mask_interrupts();
    if (primask != 0 || ipsr != 0)
      panic(
          "sluice: wait_until called in an interrupt handler or with interrupts masked "
          "(inside a critical section): nothing could wake it",
          __FILE__, __LINE__);
    // Acquire: pairs with the notifier's release store to the word (the
    // parker's unpark, [P1] in parker.hpp).
    if (word.load(std::memory_order_acquire) != expected) {
      mps2::restore_interrupts(primask);
      return wait_status::woken;
    }
    if (now_masked() >= deadline) {
      mps2::restore_interrupts(primask);
      return wait_status::timed_out;
    }
    asm volatile("dsb\n\twfi" : : : "memory");
    mps2::restore_interrupts(primask);  // a pending handler runs here
  }
}

// Nothing to do on one core: a notifier that is an interrupt handler has
// already ended the waiter's WFI by being taken, and any other notifier is
// the code running on the core, so no one is waiting.
void notify_one(const detail::atomic<std::uint32_t>&) noexcept {}
void notify_all(const detail::atomic<std::uint32_t>&) noexcept {}

time_point now() noexcept {
  const std::uint32_t primask = mps2::mask_interrupts();
  const time_point t = now_masked();
  mps2::restore_interrupts(primask);
  return t;
}

critical_state enter_critical() noexcept {
  return critical_state{mps2::mask_interrupts()};
}

// Thread mode (IPSR 0: no exception active) with PRIMASK clear.
bool may_block() noexcept {
  std::uint32_t ipsr;
  std::uint32_t primask;
  asm volatile("mrs %0, ipsr" : "=r"(ipsr));
  asm volatile("mrs %0, primask" : "=r"(primask));
  return ipsr == 0 && primask == 0;
}

void leave_critical(critical_state state) noexcept {
  mps2::restore_interrupts(static_cast<std::uint32_t>(state.saved));
}

[[noreturn]] void panic(const char* message, const char* file, int line) noexcept {
  (void)mps2::mask_interrupts();
  mps2::uart_write("panic: ");
  mps2::uart_write(message);
  mps2::uart_write(" at ");
  mps2::uart_write(file);
  mps2::uart_write(":");
  write_decimal(line);
  mps2::uart_write("\n");
  mps2::semihost_exit(2);
}

parker& current_parker() noexcept {
  return core_parker;
}

// The image runs its one worker on the one core itself (executors built
// with worker_threads::none); the port starts none.
worker_group* start_workers(unsigned, worker_entry, void*) noexcept {
  return nullptr;
}
void join_workers(worker_group*) noexcept {}
unsigned default_worker_count() noexcept {
  return 1;
}
void*& current_worker() noexcept {
  static constinit void* the_worker = nullptr;
  return the_worker;
}

}  // namespace sluice::port
