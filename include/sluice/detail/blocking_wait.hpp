// wait_until: how a thread blocks on a condition that a waiter_list
// announces (the channel's blocking operations, join, the executor's idle
// workers and its shutdown).
//
// Waiting. A blocked operation spins briefly, then follows waiter_list's
// pattern: enqueue, re-check, park until notified or the deadline; a waiter
// that was notified retries (using the notification), and one that gives up
// after the re-check succeeded passes its notification on.
//
// Spinning. Each spin step retries the operation (on a channel that stays
// full or empty that is a few loads of lines already in our cache: no write,
// no traffic) and then gives one CPU-relax hint, so the wait notices a change
// within one step instead of after an ever longer run of hints. The spin ends
// at whichever comes first:
//   spin_checks_before_park steps   bounds it where the clock is coarse or
//                                   the relax hint is cheap
//   spin_time_before_park           bounds it where the hint is slow (x86
//                                   `pause` takes 40-140 ns on recent cores,
//                                   more under a hypervisor); the clock is
//                                   read once every spin_clock_stride steps
//   the deadline                    a timed wait never spins past it
// Parking costs a system call on each side (futex wait and wake, several
// microseconds), so spinning for about as long pays off whenever the other
// side is running; the bound keeps an idle waiter from burning its core.
#pragma once

#include <sluice/detail/cpu_relax.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>
#include <sluice/time.hpp>

namespace sluice::detail {

// The spin before parking (see Spinning above): at most this many steps of
// one retry and one relax hint each,
inline constexpr unsigned spin_checks_before_park = 2048;
// and at most about this long (after the first stride of steps),
inline constexpr duration spin_time_before_park{20'000};
// with the clock read once per this many steps (a power of two).
inline constexpr unsigned spin_clock_stride = 64;

// Calls `attempt` until it returns true (the operation completed, with
// success or a final error) or `deadline` passes (returns false). Thread
// context only: parks the caller's parker. Once the spin is over, every look
// before and after enqueueing (so also the re-check after the [W1] fence)
// tries `attempt`, then `last_resort` (the executor steals a task there).
template <class Attempt, class LastResort>
[[nodiscard]] bool wait_until(waiter_list& list, time_point deadline, Attempt&& attempt,
                              LastResort&& last_resort) noexcept {
  static_assert((spin_clock_stride & (spin_clock_stride - 1)) == 0);
  time_point spin_end = time_point::max();
  for (unsigned step = 0; step < spin_checks_before_park; ++step) {
    if (attempt()) return true;
    if (step % spin_clock_stride == spin_clock_stride - 1) {
      const time_point now = port::now();
      if (now >= deadline) break;
      if (spin_end == time_point::max()) {
        spin_end = now + spin_time_before_park;
      } else if (now >= spin_end) {
        break;
      }
    }
    cpu_relax();
  }
  const auto expired = [deadline] {
    return deadline != time_point::max() && port::now() >= deadline;
  };
  const auto look = [&]() noexcept { return attempt() || last_resort(); };
  parker& self = port::current_parker();
  waiter node;
  for (;;) {
    if (look()) return true;
    if (expired()) return false;
    list.enqueue(node, self.make_waker());
    // Re-check after the [W1] fence in enqueue.
    if (look()) {
      if (!list.cancel(node)) list.notify_one();  // pass on what we consumed
      return true;
    }
    while (!node.is_notified() && !expired())
      self.park_until(deadline);
    if (list.cancel(node)) {
      // Not notified: the deadline passed. One last look, then time out.
      return look();
    }
    // Notified: loop and use it by retrying.
  }
}

template <class Attempt>
[[nodiscard]] bool wait_until(waiter_list& list, time_point deadline, Attempt&& attempt) noexcept {
  return wait_until(list, deadline, attempt, []() noexcept { return false; });
}

}  // namespace sluice::detail
