// sluice's port contract (include/sluice/port.hpp, detail/worker_port.hpp)
// for QEMU's virt machine: four Cortex-A53 cores, no operating system.
//
//   wait/notify   WFE / SEV on the word; a timed wait arms this core's
//                 virtual timer at the deadline
//   clock         the generic timer's virtual count (CNTVCT_EL0 / CNTFRQ_EL0)
//   critical      DAIF: IRQ and FIQ masked on the calling core, nesting by
//                 saving and restoring the previous mask
//   panic         the message on the UART, then exit with status 1
//   parker        one static parker per core, indexed by MPIDR_EL1.Aff0
//   workers       none started by the port: the image runs
//                 executor::run_worker() on each core itself
#include <cstddef>
#include <cstdint>

#include <sluice/detail/atomic.hpp>
#include <sluice/detail/worker_port.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>

#include "virt.hpp"

namespace {

constexpr std::uint64_t ns_per_s = 1'000'000'000;

// floor(ticks * 1e9 / hz) without a 128-bit product.
std::uint64_t ns_of(std::uint64_t ticks, std::uint64_t hz) noexcept {
  return ticks / hz * ns_per_s + ticks % hz * ns_per_s / hz;
}

// ceil(ns * hz / 1e9): the first count at which now() >= ns; false if it
// does not fit in 64 bits (a deadline centuries away: no timer is armed).
bool ticks_of(std::uint64_t ns, std::uint64_t hz, std::uint64_t& ticks) noexcept {
  const std::uint64_t whole = ns / ns_per_s;
  if (whole > ~std::uint64_t{0} / hz - 1) return false;
  ticks = whole * hz + (ns % ns_per_s * hz + ns_per_s - 1) / ns_per_s;
  return true;
}

inline void send_event() noexcept {
  // The DSB completes the notifier's store to the word (made before notify
  // is called) before the event reaches the other cores.
  asm volatile("dsb ish\n\tsev" ::: "memory");
}

inline void wait_for_event() noexcept {
  asm volatile("wfe" ::: "memory");
}

constinit sluice::parker core_parkers[virt::max_cores];  // static: never freed

}  // namespace

namespace virt {

// The virtual timer reached a timed wait's deadline: mask it (its interrupt
// is level-triggered and would fire again) and return; the exception return
// sets the event register, so the waiting WFE on this core ends.
void on_virtual_timer() noexcept {
  const std::uint64_t ctl = timer_enable | timer_imask;
  asm volatile("msr cntv_ctl_el0, %0\n\tisb" ::"r"(ctl));
}

}  // namespace virt

namespace sluice::port {

// Why no notify is lost. The waiter loads the word, compares, then WFE. A
// notifier first changes the word, then calls notify, which executes
// DSB + SEV; SEV sets the event register of every core, and the register
// stays set until a WFE consumes it. So either the notifier's store comes
// before our load (we see the new value and return), or its SEV comes after
// our load: then it sets our event register before or during our WFE, and
// the WFE returns at once (or wakes). A notify from an interrupt handler on
// this core is covered the same way, and also by the exception return,
// which sets the event register. Every return is re-checked by the caller,
// so extra events (other words' notifies, interrupts) only cost a loop.
//
// The deadline: the core's virtual timer is armed at it, and its interrupt
// (taken between instructions, or waking the WFE) ends the wait. With IRQs
// masked (a wait inside a critical section) that interrupt cannot wake a
// WFE, so a timed wait then polls the counter instead of sleeping. There is
// deliberately no periodic event stream: it would hide a missing SEV (a lost
// notify would cost a millisecond instead of hanging a test).
wait_status wait_until(const detail::atomic<std::uint32_t>& word, std::uint32_t expected,
                       time_point deadline) noexcept {
  const std::uint64_t hz = virt::counter_hz();
  std::uint64_t deadline_ticks = 0;
  const bool armed = deadline != time_point::max() && ticks_of(deadline.ns, hz, deadline_ticks);
  if (armed) {
    const std::uint64_t ctl = virt::timer_enable;
    asm volatile("msr cntv_cval_el0, %0\n\tmsr cntv_ctl_el0, %1\n\tisb" ::"r"(deadline_ticks),
                 "r"(ctl));
  }
  std::uint64_t daif;
  asm volatile("mrs %0, daif" : "=r"(daif));
  const bool sleep = !armed || (daif & (1u << 7)) == 0;  // PSTATE.I clear
  wait_status status = wait_status::woken;
  for (;;) {
    // Acquire: pairs with the notifier's release store or RMW of `word`
    // (e.g. parker::unpark [P1]), so the caller sees what it published.
    if (word.load(std::memory_order_acquire) != expected) break;
    if (armed && virt::counter() >= deadline_ticks) {
      status = wait_status::timed_out;
      break;
    }
    if (sleep) wait_for_event();
  }
  if (armed) asm volatile("msr cntv_ctl_el0, xzr\n\tisb");
  return status;
}

void notify_one(const detail::atomic<std::uint32_t>&) noexcept {
  send_event();
}

void notify_all(const detail::atomic<std::uint32_t>&) noexcept {
  send_event();
}

time_point now() noexcept {
  return time_point{ns_of(virt::counter(), virt::counter_hz())};
}

critical_state enter_critical() noexcept {
  return critical_state{static_cast<std::uintptr_t>(virt::mask_interrupts())};
}

// PSTATE.I clear: the IRQ handler runs with IRQs masked (start.S, no
// nesting), and so does a critical section.
bool may_block() noexcept {
  std::uint64_t daif;
  asm volatile("mrs %0, daif" : "=r"(daif));
  return (daif & (1u << 7)) == 0;
}

void leave_critical(critical_state state) noexcept {
  virt::restore_interrupts(state.saved);
}

[[noreturn]] void panic(const char* message, const char* file, int line) noexcept {
  (void)virt::mask_interrupts();
  virt::console_write("panic: ");
  virt::console_write(message);
  virt::console_write(" at ");
  virt::console_write(file);
  virt::console_write(":");
  virt::console_dec(static_cast<std::uint64_t>(line));
  virt::console_write("\n");
  virt::exit(1);
}

parker& current_parker() noexcept {
  return core_parkers[virt::core_index()];
}

worker_group* start_workers(unsigned, worker_entry, void*) noexcept {
  return nullptr;
}

void join_workers(worker_group*) noexcept {}

unsigned default_worker_count() noexcept {
  return virt::max_cores;
}

void*& current_worker() noexcept {
  static constinit void* core_workers[virt::max_cores] = {};
  return core_workers[virt::core_index()];
}

}  // namespace sluice::port
