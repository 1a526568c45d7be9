// Wakers, parkers and waiter lists on four cores, and wake-ups from the
// tick interrupt handler (core 0) to a parked core.
#include <cstdint>
#include <utility>

#include <sluice/detail/atomic.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>
#include <sluice/waker.hpp>

#include "board.hpp"
#include "runner.hpp"

namespace {

using sluice::detail::atomic;

// A wakeable that counts what its waker does to it.
struct counter {
  std::uint32_t refs = 0;
  std::uint32_t wakes = 0;
  void add_ref() noexcept { ++refs; }
  void release() noexcept { --refs; }
  void wake_by_ref() noexcept { ++wakes; }
};

TEST_CASE(waker_reference_counting) {
  counter c;
  sluice::waker w = sluice::make_waker(c);
  CHECK_EQ(c.refs, 1u);
  sluice::waker copy = w.clone();
  CHECK_EQ(c.refs, 2u);
  CHECK(copy.will_wake(w));
  copy.wake_by_ref();
  CHECK_EQ(c.wakes, 1u);
  CHECK_EQ(c.refs, 2u);
  std::move(copy).wake();  // consumes its reference
  CHECK_EQ(c.wakes, 2u);
  CHECK_EQ(c.refs, 1u);
  CHECK(copy.empty());
  w.reset();
  CHECK_EQ(c.refs, 0u);
}

TEST_CASE(parker_token_and_timeout) {
  sluice::parker& p = sluice::port::current_parker();
  p.unpark();
  const sluice::time_point start = sluice::port::now();
  // The token: returns at once. Checked against half of a long deadline
  // (emulated cores may be descheduled by the host for a while); without
  // it, the park would last the full 60 s.
  p.park_until(start + sluice::duration{60'000'000'000});
  CHECK(sluice::port::now() < start + sluice::duration{30'000'000'000});
  const sluice::time_point deadline = sluice::port::now() + sluice::duration{3'000'000};
  p.park_until(deadline);  // no token: returns at the deadline
  CHECK(sluice::port::now() >= deadline);
}

// Core 0 unparks each other core's parker, many rounds, one core at a time
// (it waits for that core's round before it unparks the next, so no other
// core's wake-up can stand in for a lost one): each unpark reaches its core
// (a lost one leaves that core parked until its deadline, which counts as
// a timeout).
constexpr std::uint32_t unpark_rounds = 200;

struct unpark_state {
  sluice::parker* parkers[4] = {};
  atomic<std::uint32_t> ready{0};
  atomic<std::uint32_t> round[4]{};  // per core: rounds completed
  atomic<std::uint32_t> go[4]{};     // per core: rounds released by core 0
  atomic<std::uint32_t> timeouts{0};
};

void unpark_core(unsigned core, void* context) noexcept {
  auto& s = *static_cast<unpark_state*>(context);
  if (core != 0) {
    s.parkers[core] = &sluice::port::current_parker();
    // Release: publishes parkers[core] to core 0.
    s.ready.fetch_add(1, std::memory_order_release);
    for (std::uint32_t r = 1; r <= unpark_rounds; ++r) {
      const sluice::time_point deadline = sluice::port::now() + sluice::duration{10'000'000'000};
      // Acquire: pairs with core 0's release store of go[core].
      while (s.go[core].load(std::memory_order_acquire) < r) {
        if (sluice::port::now() >= deadline) break;
        s.parkers[core]->park_until(deadline);
      }
      // Released at the deadline, or never: the unpark was lost (go may be
      // set by now, but it did not wake this core).
      if (sluice::port::now() >= deadline) {
        s.timeouts.fetch_add(1, std::memory_order_relaxed);
        sluice::port::notify_all(s.round[core]);
        return;
      }
      s.round[core].store(r, std::memory_order_release);
      sluice::port::notify_all(s.round[core]);
    }
    return;
  }
  while (s.ready.load(std::memory_order_acquire) != 3) {
  }
  for (std::uint32_t r = 1; r <= unpark_rounds; ++r) {
    for (unsigned c = 1; c < 4; ++c) {
      s.go[c].store(r, std::memory_order_release);
      s.parkers[c]->unpark();
      // Waits with the port's wait (WFE) for the round; a timed-out core
      // has stopped counting rounds, so the wait is bounded too.
      const sluice::time_point deadline = sluice::port::now() + sluice::duration{10'000'000'000};
      for (std::uint32_t seen = s.round[c].load(std::memory_order_acquire); seen < r;
           seen = s.round[c].load(std::memory_order_acquire)) {
        if (sluice::port::wait_until(s.round[c], seen, deadline) ==
            sluice::port::wait_status::timed_out)
          break;
      }
      if (s.timeouts.load(std::memory_order_relaxed) != 0) return;
    }
  }
}

TEST_CASE(parker_unpark_across_cores_never_lost) {
  static unpark_state s;
  runner::on_all_cores(&unpark_core, &s);
  CHECK_EQ(s.timeouts.load(std::memory_order_relaxed), 0u);
  for (unsigned c = 1; c < 4; ++c)
    CHECK_EQ(s.round[c].load(std::memory_order_relaxed), unpark_rounds);
}

TEST_CASE(waiter_list_enqueue_notify_cancel) {
  static constinit sluice::detail::waiter_list list;
  counter c;
  sluice::detail::waiter a;
  sluice::detail::waiter b;
  list.enqueue(a, sluice::make_waker(c));
  list.enqueue(b, sluice::make_waker(c));
  CHECK_EQ(c.refs, 2u);
  list.notify_one();  // FIFO: a
  CHECK(a.is_notified());
  CHECK(!b.is_notified());
  CHECK_EQ(c.wakes, 1u);
  CHECK(!list.cancel(a));  // notified: the notification was spent on it
  CHECK(list.cancel(b));   // still queued: removed, nothing spent
  list.notify_one();       // nobody waits: no effect
  CHECK_EQ(c.wakes, 1u);
  sluice::detail::waiter d;
  sluice::detail::waiter e;
  list.enqueue(d, sluice::make_waker(c));
  list.enqueue(e, sluice::make_waker(c));
  list.notify_all();
  CHECK(d.is_notified() && e.is_notified());
  CHECK_EQ(c.wakes, 3u);
  (void)list.cancel(d);
  (void)list.cancel(e);
  CHECK_EQ(c.refs, 0u);
}

// The tick handler (interrupt context, core 0) notifies a waiter list on
// which the three other cores wait with their parkers, once per round: the
// blocking pattern of waiter_list.hpp, with the condition set by the
// handler before it notifies.
constexpr std::uint32_t irq_rounds = 50;

struct irq_state {
  sluice::detail::waiter_list list;
  atomic<std::uint32_t> ticks{0};
  atomic<std::uint32_t> woken[4]{};
  atomic<std::uint32_t> timeouts{0};
};
irq_state* irq_active = nullptr;

void irq_tick() noexcept {
  // Release: the new tick count is the condition the waiters check.
  irq_active->ticks.fetch_add(1, std::memory_order_release);
  irq_active->list.notify_all();
}

void irq_core(unsigned core, void* context) noexcept {
  auto& s = *static_cast<irq_state*>(context);
  if (core == 0) return;
  sluice::parker& p = sluice::port::current_parker();
  std::uint32_t seen = s.ticks.load(std::memory_order_acquire);
  while (s.woken[core].load(std::memory_order_relaxed) < irq_rounds) {
    const sluice::time_point deadline = sluice::port::now() + sluice::duration{10'000'000'000};
    for (;;) {
      if (s.ticks.load(std::memory_order_acquire) != seen) break;
      sluice::detail::waiter w;
      s.list.enqueue(w, p.make_waker());
      if (s.ticks.load(std::memory_order_acquire) != seen) {
        if (!s.list.cancel(w)) s.list.notify_one();
        break;
      }
      while (!w.is_notified() && sluice::port::now() < deadline)
        p.park_until(deadline);
      // Not notified (the deadline passed), or notified but released only
      // at the deadline (the wake-up was lost): both count.
      const bool late = sluice::port::now() >= deadline;
      if (s.list.cancel(w) || late) {
        s.timeouts.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
    seen = s.ticks.load(std::memory_order_acquire);
    s.woken[core].fetch_add(1, std::memory_order_relaxed);
  }
}

TEST_CASE(interrupt_handler_wakes_parked_cores) {
  static irq_state s;
  irq_active = &s;
  board::start_tick(1000, &irq_tick);
  runner::on_all_cores(&irq_core, &s);
  board::stop_tick();
  CHECK_EQ(s.timeouts.load(std::memory_order_relaxed), 0u);
  for (unsigned c = 1; c < 4; ++c)
    CHECK_EQ(s.woken[c].load(std::memory_order_relaxed), irq_rounds);
  CHECK(s.ticks.load(std::memory_order_relaxed) >= irq_rounds);
  const std::uint32_t after_stop = s.ticks.load(std::memory_order_relaxed);
  const sluice::time_point until = sluice::port::now() + sluice::duration{5'000'000};
  while (sluice::port::now() < until) {
  }
  CHECK_EQ(s.ticks.load(std::memory_order_relaxed), after_stop);  // stop_tick stopped it
}

}  // namespace

namespace {

// The critical section masks this core's interrupts and nests: the tick
// (core 0, where tests run) does not advance inside it, and does after it.
// A timed park inside it still ends at its deadline.
atomic<std::uint32_t> masked_ticks{0};
void count_tick() noexcept {
  masked_ticks.fetch_add(1, std::memory_order_relaxed);  // Relaxed: a count
}

void spin_for(sluice::duration d) noexcept {
  const sluice::time_point until = sluice::port::now() + d;
  while (sluice::port::now() < until) {
  }
}

// Spins until the tick count passes `count`; false if it did not within
// 10 s (the tick is dead). No bound on how soon: only that it happens.
bool tick_passes(std::uint32_t count) noexcept {
  const sluice::time_point until = sluice::port::now() + sluice::duration{10'000'000'000};
  while (masked_ticks.load(std::memory_order_relaxed) <= count)
    if (sluice::port::now() >= until) return false;
  return true;
}

TEST_CASE(critical_section_masks_the_tick_and_nests) {
  board::start_tick(1000, &count_tick);
  CHECK(tick_passes(0));  // the tick runs on this core
  std::uint32_t before = 0;
  std::uint32_t inside = 0;
  {
    sluice::critical_section outer;
    {
      sluice::critical_section inner;
      before = masked_ticks.load(std::memory_order_relaxed);
      spin_for(sluice::duration{5'000'000});
    }
    spin_for(sluice::duration{5'000'000});  // still masked after the inner one ended
    const sluice::time_point deadline = sluice::port::now() + sluice::duration{3'000'000};
    sluice::port::current_parker().park_until(deadline);
    CHECK(sluice::port::now() >= deadline);
    inside = masked_ticks.load(std::memory_order_relaxed);
  }
  CHECK_EQ(inside, before);
  CHECK(tick_passes(inside));
  board::stop_tick();
}

}  // namespace

namespace {

// start_tick / stop_tick from another core: the tick still runs on core 0
// (the board asks it through an SGI), and no tick runs after stop_tick
// returned.
struct remote_tick_state {
  sluice::parker* core0 = nullptr;
  atomic<std::uint32_t> ticks{0};
  atomic<std::uint32_t> elsewhere{0};
  std::uint32_t at_stop = 0;
  std::uint32_t later = 0;
  bool started = false;
};
remote_tick_state* remote = nullptr;

void remote_tick() noexcept {
  // Relaxed: counts, read after the rendezvous.
  if (&sluice::port::current_parker() != remote->core0)
    remote->elsewhere.fetch_add(1, std::memory_order_relaxed);
  remote->ticks.fetch_add(1, std::memory_order_relaxed);
}

void remote_tick_core(unsigned core, void* context) noexcept {
  auto& s = *static_cast<remote_tick_state*>(context);
  if (core != 2) return;
  board::start_tick(2000, &remote_tick);
  const sluice::time_point until = sluice::port::now() + sluice::duration{10'000'000'000};
  while (s.ticks.load(std::memory_order_relaxed) < 5 && sluice::port::now() < until) {
  }
  s.started = s.ticks.load(std::memory_order_relaxed) >= 5;
  board::stop_tick();
  s.at_stop = s.ticks.load(std::memory_order_relaxed);
  spin_for(sluice::duration{5'000'000});
  s.later = s.ticks.load(std::memory_order_relaxed);
}

TEST_CASE(tick_started_and_stopped_from_another_core) {
  static remote_tick_state s;
  s.core0 = &sluice::port::current_parker();
  remote = &s;
  runner::on_all_cores(&remote_tick_core, &s);
  CHECK(s.started);
  CHECK_EQ(s.elsewhere.load(std::memory_order_relaxed), 0u);
  CHECK_EQ(s.later, s.at_stop);
}

}  // namespace
