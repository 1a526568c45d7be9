// Start-up for QEMU's virt machine after start.S: the primary core's
// a64_primary_main (UART, GIC distributor, this core's interrupts, static
// constructors, main, exit with its status), the secondary cores'
// a64_secondary_main, the IRQ dispatcher, the report of unexpected
// exceptions, semihosting exit and the PSCI call.
#include <cstddef>
#include <cstdint>

#include <sluice/detail/atomic.hpp>

#include "virt.hpp"

extern "C" {
extern void (*const __init_array_start[])();
extern void (*const __init_array_end[])();
extern std::uint64_t a64_boot_el;  // start.S: the exception level QEMU started us in

[[noreturn]] void a64_primary_main();
[[noreturn]] void a64_secondary_main(unsigned core);
void a64_irq_dispatch();
[[noreturn]] void a64_unexpected_exception(std::uint64_t kind, std::uint64_t esr, std::uint64_t elr,
                                           std::uint64_t far);
}

// The program's main, named by its symbol (C++ does not let a program call
// ::main itself).
int program_main() asm("main");

namespace virt {
// board.cpp: the entry board::start_cores gave for the secondary cores.
[[noreturn]] void run_secondary(unsigned core) noexcept;
}  // namespace virt

namespace {

void gic_enable(std::uint32_t id, std::uint8_t priority) noexcept {
  reinterpret_cast<volatile std::uint8_t*>(virt::gicd_ipriorityr)[id] = priority;
  virt::reg(virt::gicd_isenabler + 4 * (id / 32)) = 1u << (id % 32);
}

}  // namespace

namespace virt {

void core_init() noexcept {
  // SGIs and PPIs (0-31) are banked per core: each core enables its own.
  gic_enable(tick_control_sgi, 0x80);
  gic_enable(virtual_timer_irq, 0x80);
  gic_enable(physical_timer_irq, 0x80);
  reg(gicc_pmr) = 0xff;  // every priority passes
  reg(gicc_bpr) = 0;
  reg(gicc_ctlr) = 1;  // signal group 0 as IRQ
  // Both timers off; no event stream and no EL0 timer access (CNTKCTL_EL1).
  asm volatile("msr cntkctl_el1, xzr\n\tmsr cntv_ctl_el0, xzr\n\tmsr cntp_ctl_el0, xzr\n\tisb");
  unmask_interrupts();
}

std::int64_t psci_call(std::uint64_t function, std::uint64_t a1, std::uint64_t a2,
                       std::uint64_t a3) noexcept {
  register std::uint64_t x0 asm("x0") = function;
  register std::uint64_t x1 asm("x1") = a1;
  register std::uint64_t x2 asm("x2") = a2;
  register std::uint64_t x3 asm("x3") = a3;
  // SMCCC: x0-x17 may be clobbered by the call.
  if (a64_boot_el == 2) {
    asm volatile("smc #0"
                 : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
                 :
                 : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15",
                   "x16", "x17", "memory");
  } else {
    asm volatile("hvc #0"
                 : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
                 :
                 : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15",
                   "x16", "x17", "memory");
  }
  return static_cast<std::int64_t>(x0);
}

namespace {
// The core that began the exit, plus one (0: none). Its own second exit (a
// fault on the way out: semihosting not enabled traps HLT as undefined)
// goes straight to PSCI; any other core that exits meanwhile stops there,
// so that it cannot power the machine off before the first core's status
// is out.
sluice::detail::atomic<std::uint32_t> exiting{0};
}  // namespace

[[noreturn]] void exit(int status) noexcept {
  (void)mask_interrupts();
  const std::uint32_t me = core_index() + 1;
  std::uint32_t first = 0;
  // Relaxed: decides who reports; the status travels in this call.
  if (exiting.compare_exchange_strong(first, me, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
    // SYS_EXIT (0x18) with {ADP_Stopped_ApplicationExit, status}: QEMU
    // exits with `status`.
    const std::uint64_t block[2] = {0x20026, static_cast<std::uint64_t>(status)};
    register std::uint64_t x0 asm("x0") = 0x18;
    register const std::uint64_t* x1 asm("x1") = block;
    asm volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
  }
  if (first != 0 && first != me) {
    // Another core reports the exit: wait for it (2 s of the counter; a
    // report that never comes then ends in PSCI here).
    const std::uint64_t until = counter() + 2 * counter_hz();
    while (counter() < until)
      asm volatile("yield");
  }
  // QEMU exits with 0 here whatever the status: run.sh judges by the output.
  (void)psci_call(psci_system_off, 0, 0, 0);
  for (;;)
    asm volatile("wfi");
}

}  // namespace virt

extern "C" [[noreturn]] void a64_primary_main() {
  virt::reg(virt::uart_cr) = (1u << 0) | (1u << 8);  // UARTEN, TXE
  virt::reg(virt::gicd_ctlr) = 1;                    // forward group 0
  virt::core_init();
  virt::console_write("boot: el=");
  virt::console_write(a64_boot_el == 2 ? "2 (runs at 1), psci=smc" : "1, psci=hvc");
  virt::console_write(" counter_hz=");
  virt::console_dec(virt::counter_hz());
  // The counter starts with the machine: the time from reset to here.
  virt::console_write(" at_us=");
  virt::console_dec(virt::counter() / (virt::counter_hz() / 1'000'000));
  virt::console_write("\n");
  for (auto* constructor = __init_array_start; constructor != __init_array_end; ++constructor)
    (*constructor)();
  virt::exit(program_main());
}

extern "C" [[noreturn]] void a64_secondary_main(unsigned core) {
  virt::core_init();
  virt::run_secondary(core);
}

extern "C" void a64_irq_dispatch() {
  const std::uint32_t iar = virt::reg(virt::gicc_iar);
  const std::uint32_t id = iar & 0x3ff;
  if (id == virt::gic_spurious) return;
  switch (id) {
    case virt::virtual_timer_irq:
      virt::on_virtual_timer();
      break;
    case virt::physical_timer_irq:
      virt::on_physical_timer();
      break;
    case virt::tick_control_sgi:
      virt::on_tick_control();
      break;
    default:
      virt::console_write("fault: unexpected interrupt ");
      virt::console_hex(id);
      virt::console_write("\n");
      virt::exit(3);
  }
  virt::reg(virt::gicc_eoir) = iar;
}

extern "C" [[noreturn]] void a64_unexpected_exception(std::uint64_t kind, std::uint64_t esr,
                                                      std::uint64_t elr, std::uint64_t far) {
  (void)virt::mask_interrupts();
  virt::console_write("fault: exception ");
  virt::console_hex(kind);
  virt::console_write(" on core ");
  virt::console_hex(virt::core_index());
  virt::console_write(" esr=");
  virt::console_hex(esr);
  virt::console_write(" elr=");
  virt::console_hex(elr);
  virt::console_write(" far=");
  virt::console_hex(far);
  virt::console_write("\n");
  virt::exit(3);
}
