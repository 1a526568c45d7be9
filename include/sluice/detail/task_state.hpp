// task_state: the state word of a spawned task, and the pure decisions that
// move it. Acting on a decision (pushing the task on the run queue, polling
// it, destroying its frame) is the scheduler's job (detail/task_header.hpp,
// executor.hpp); this file only says what the next state is and what must
// be done, so the decision can be tested exhaustively on snapshots.
//
// Design: one 32-bit word of flags changed only by compare-and-swap, with a
// separate 32-bit reference count (task_header), in the manner of tokio's
// runtime/task/state.rs but with atomics no wider than 32 bits. The key
// property is that a task is on the run queue at most once and only while
// `scheduled` is set, so the run queue never holds more entries than there
// are live tasks.
//
// State word:
//
//   bit  name              set by                         cleared by
//   0    scheduled         wake/cancel from idle (E1,E9);  begin_run (E3, E4)
//                          end_run when notified (E6);
//                          spawn (initial value)
//   1    running           begin_run (E3, E4)             end_run (E5, E6),
//                                                         complete (E8)
//   2    notified          wake while running (E2)        end_run (E6), complete (E8)
//   3    complete          complete (E8)                  never
//   4    cancel_requested  cancel (E9, E10)               never
//   5    cancelled         complete as cancelled (E8)     never
//   6    handle_gone       spawn without a join handle    never
//                          (initial value); detach of a
//                          handle that took no result
//                          (E12)
//
// Invariants: scheduled and running are never both set; notified only with
// running; complete excludes scheduled, running and notified; cancelled only
// with complete. handle_gone goes with any state.
//
// Initial value: `scheduled`, because spawn pushes the task on the run queue
// as it publishes it (the first run is the lazy start of the coroutine);
// `scheduled | handle_gone` for a task spawned without a join handle.
//
// Edges (event: from -> to, action, memory order of the successful CAS, or
// of E12's fetch_or):
//   E1  wake:      idle -> scheduled                push     acq_rel [T1][T6]
//   E2  wake:      running -> running|notified      none     acq_rel [T1][T6]
//   E0  wake:      scheduled, notified, complete    none     acq_rel [T1][T6] (same value)
//   E3  begin_run: scheduled -> running             poll     acquire [T1][T2]
//   E4  begin_run: scheduled|cancel_req -> running  cancel   acquire [T1][T2]
//   E5  end_run:   running -> idle                  none     release [T2]
//   E6  end_run:   running|notified -> scheduled    push     release [T2]
//   E7  end_run:   running|cancel_req (unchanged)   cancel   release (same value)
//   E8  complete:  running -> complete[|cancelled]  finish   seq_cst [T3][T4]
//                  (with handle_gone: finish_unjoined)
//   (E3, E4, E8 unshared: the same edges, a relaxed load and store [T5])
//   E9  cancel:    idle -> scheduled|cancel_req     push     acq_rel [T1][T6]
//   E10 cancel:    scheduled or running -> +cancel_req  none acq_rel [T1][T6]
//   E11 cancel:    complete or cancel_req already   none     acq_rel [T6] (same value)
//   E12 detach:    s -> s|handle_gone               none     acq_rel [T7]
//                  (s complete:                     drop_result)
//
// [T1] A waker's writes (the value it made available) happen before the
//      task's next run: the wake CAS releases, begin_run acquires. Where the
//      push is made by end_run (E6) instead, begin_run reads a value written
//      by an RMW later in the word's modification order than the wake, so it
//      still reads from the wake's release sequence.
// [T2] A run's writes to the coroutine frame happen before the next run on
//      any worker: end_run releases, the next begin_run acquires (through
//      the same release-sequence rule when a wake's RMW sits in between).
// [T3] The result written into the task before complete is visible to
//      whoever loads `complete` with acquire (join).
// [T4] complete is a seq_cst RMW, so the joiners' notify after it needs a
//      seq_cst load instead of a fence (waiter_list.hpp, [W1']): every
//      joiner re-checks this word after it enqueues.
// [T5] Unshared: E3, E4 and E8 are made with a load and a store instead of
//      a CAS (begin_run_unshared, complete_unshared) when no other thread
//      can reach the word: the caller's reference is the task's only one
//      (no join handle, no waker clone; read with acquire, which orders
//      whatever the dropped references' holders did to this word, such as
//      a cancel, before the load: [H1] in task_header.hpp) and the task
//      is in no list of the scheduler's (it has never suspended). The
//      decision is the same pure function. No joiner can exist then, so
//      nothing is notified.
// [T6] A wake or cancel that pushes the task also acquires: the worker
//      that takes it off the run queue reads has_suspended() (task_header)
//      before its begin_run, so the writes of the run before (which set
//      it, then released in end_run) must reach that worker through the
//      waker: end_run releases, the wake's CAS acquires, the push releases
//      and the pop acquires. A push by end_run itself (E6) or by spawn
//      needs nothing more.
// [T7] The result is dropped once, in thread or task context, by whichever
//      of complete (E8) and detach (E12) comes second on the word: a
//      finished task whose handle is gone (finish_unjoined) has its worker
//      drop it right after completing; a handle that goes without taking
//      the result of a complete task (drop_result) drops it itself; its
//      acquire reads the result that complete released. So a task's last
//      reference, which a waker dropped in a handler may hold, destroys no
//      result there: a join took it, or it is gone already. (A cancelled
//      task has no result: dropping its empty slots does nothing.)
//
// Cancellation is decided only by begin_run (E4: the task is not polled at
// all) and end_run (E7: after the coroutine suspended). A cancel during a run
// (E10) therefore never comes between a poll hook that said ready and the
// resume of its coroutine, which poll.hpp requires ("ready is final").
//
// No wake is lost: wake and end_run are both CAS on this one word, so they
// are totally ordered; either the wake sees running (E2, and end_run then
// sees notified: E6) or it sees idle after E5 and pushes (E1).
#pragma once

#include <cstdint>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/atomic.hpp>

namespace sluice::detail {

namespace task_bits {
inline constexpr std::uint32_t scheduled = 1u << 0;
inline constexpr std::uint32_t running = 1u << 1;
inline constexpr std::uint32_t notified = 1u << 2;
inline constexpr std::uint32_t complete = 1u << 3;
inline constexpr std::uint32_t cancel_requested = 1u << 4;
inline constexpr std::uint32_t cancelled = 1u << 5;
inline constexpr std::uint32_t handle_gone = 1u << 6;
inline constexpr std::uint32_t all = (1u << 7) - 1;
}  // namespace task_bits

// The initial state of a spawned task (see the header comment).
inline constexpr std::uint32_t task_initial_state = task_bits::scheduled;

// What the caller of a transition must do next.
enum class task_action : std::uint8_t {
  none,             // nothing
  push,             // put the task on the run queue (it now counts as scheduled)
  poll,             // poll / resume the task's coroutine
  cancel,           // destroy the coroutine frame, then complete as cancelled
  finish,           // the task is complete: publish the result, wake joiners
  finish_unjoined,  // the same, and nobody can take the result: drop it ([T7])
  drop_result,      // the handle went without the result of a complete task: drop it
  invalid           // the transition is not allowed from this state (a bug)
};

struct task_decision {
  std::uint32_t next;  // the state to store (may equal the snapshot: stored unchanged)
  task_action action;

  friend constexpr bool operator==(task_decision, task_decision) noexcept = default;
};

// True for the states the invariants above allow.
[[nodiscard]] constexpr bool task_state_valid(std::uint32_t s) noexcept {
  using namespace task_bits;
  if ((s & ~all) != 0) return false;
  if ((s & scheduled) && (s & running)) return false;
  if ((s & notified) && !(s & running)) return false;
  if ((s & complete) && (s & (scheduled | running | notified))) return false;
  if ((s & cancelled) && !(s & complete)) return false;
  return true;
}

// E0, E1, E2.
[[nodiscard]] constexpr task_decision decide_wake(std::uint32_t s) noexcept {
  using namespace task_bits;
  if (!task_state_valid(s)) return {s, task_action::invalid};
  if (s & (complete | scheduled | notified)) return {s, task_action::none};
  if (s & running) return {s | notified, task_action::none};
  return {s | scheduled, task_action::push};
}

// E3, E4. Requires: scheduled (the worker took the task off the run queue).
[[nodiscard]] constexpr task_decision decide_begin_run(std::uint32_t s) noexcept {
  using namespace task_bits;
  if (!task_state_valid(s) || !(s & scheduled)) return {s, task_action::invalid};
  const std::uint32_t next = (s & ~scheduled) | running;
  return {next, (s & cancel_requested) ? task_action::cancel : task_action::poll};
}

// E5, E6, E7: the coroutine suspended without completing. Requires: running.
[[nodiscard]] constexpr task_decision decide_end_run(std::uint32_t s) noexcept {
  using namespace task_bits;
  if (!task_state_valid(s) || !(s & running)) return {s, task_action::invalid};
  if (s & cancel_requested) return {s, task_action::cancel};
  if (s & notified) return {(s & ~(running | notified)) | scheduled, task_action::push};
  return {s & ~running, task_action::none};
}

enum class task_outcome : std::uint8_t { finished, cancelled };

// E8. Requires: running.
[[nodiscard]] constexpr task_decision decide_complete(std::uint32_t s,
                                                      task_outcome outcome) noexcept {
  using namespace task_bits;
  if (!task_state_valid(s) || !(s & running)) return {s, task_action::invalid};
  std::uint32_t next = (s & ~(running | notified)) | complete;
  if (outcome == task_outcome::cancelled) next |= cancelled;
  // finish, or finish_unjoined with handle_gone: the bit added to finish
  // (less code on a small core than a choice).
  static_assert(static_cast<int>(task_action::finish_unjoined) ==
                    static_cast<int>(task_action::finish) + 1 &&
                handle_gone == 1u << 6);
  return {next, static_cast<task_action>(static_cast<std::uint32_t>(task_action::finish) +
                                         ((s & handle_gone) >> 6))};
}

// The join handle goes without having taken a result (E12); once only.
[[nodiscard]] constexpr task_decision decide_detach(std::uint32_t s) noexcept {
  using namespace task_bits;
  if (!task_state_valid(s) || (s & handle_gone)) return {s, task_action::invalid};
  return {s | handle_gone, (s & complete) ? task_action::drop_result : task_action::none};
}

// E9, E10, E11.
[[nodiscard]] constexpr task_decision decide_cancel(std::uint32_t s) noexcept {
  using namespace task_bits;
  if (!task_state_valid(s)) return {s, task_action::invalid};
  if (s & (complete | cancel_requested)) return {s, task_action::none};
  if (s & (scheduled | running)) return {s | cancel_requested, task_action::none};
  return {s | scheduled | cancel_requested, task_action::push};
}

// The atomic word. Every transition goes through one CAS loop (apply) that
// re-decides on each fresh snapshot, except the unshared forms of E3, E4
// and E8 ([T5]), which decide once and store.
class task_state {
 public:
  constexpr task_state() noexcept = default;
  task_state(const task_state&) = delete;
  task_state& operator=(const task_state&) = delete;

  [[nodiscard]] task_action wake() noexcept {
    // Release [T1]: publishes the waker's writes to the task's next run.
    // Acquire [T6]: takes the last run's writes on to the next one.
    return apply([](std::uint32_t s) { return decide_wake(s); }, std::memory_order_acq_rel);
  }
  [[nodiscard]] task_action begin_run() noexcept {
    // Acquire [T1][T2]: pairs with the release of wake/cancel/end_run.
    return apply([](std::uint32_t s) { return decide_begin_run(s); }, std::memory_order_acquire);
  }
  [[nodiscard]] task_action end_run() noexcept {
    // Release [T2]: publishes this run's frame writes to the next run.
    return apply([](std::uint32_t s) { return decide_end_run(s); }, std::memory_order_release);
  }
  [[nodiscard]] task_action complete(task_outcome outcome) noexcept {
    // Release [T3]: publishes the result to join (acquire in is_complete).
    // seq_cst [T4] (see the table). On x86 the CAS costs the same.
    return apply([outcome](std::uint32_t s) { return decide_complete(s, outcome); },
                 std::memory_order_seq_cst);
  }
  // `was_complete` tells a cancel that came too late (E11 from complete).
  [[nodiscard]] task_action cancel(bool& was_complete) noexcept {
    // Release [T1]: as a wake, the canceller's writes happen before the
    // run that begins after the request (acquire in begin_run). Acquire
    // [T6], as a wake.
    return apply(
        [&was_complete](std::uint32_t s) {
          was_complete = (s & task_bits::complete) != 0;
          return decide_cancel(s);
        },
        std::memory_order_acq_rel);
  }

  [[nodiscard]] task_action detach() noexcept {
    // E12 sets one bit whatever the state: a fetch_or, then the decision
    // on the value it replaced. acq_rel [T7]: acquires the result a
    // finished task's complete released; releases the handle's last uses
    // of the task to its worker.
    const std::uint32_t s = word_.fetch_or(task_bits::handle_gone, std::memory_order_acq_rel);
    // decide_detach(s).action for a valid s, in less code (no validity
    // check in a release build); a debug build checks that they agree.
    const task_action a = (s & task_bits::complete) ? task_action::drop_result : task_action::none;
    SLUICE_ASSERT(decide_detach(s).action == a,
                  "a task's join handle went twice, or its state word is corrupt");
    return a;
  }
  // For a task spawned without a join handle. Relaxed: before spawn
  // publishes the task (its push releases the word with the rest).
  void start_without_handle() noexcept {
    word_.store(task_initial_state | task_bits::handle_gone, std::memory_order_relaxed);
  }

  // Acquire [T3]: pairs with the release in complete(); the result is
  // readable once this returns true.
  [[nodiscard]] bool is_complete() const noexcept {
    return (word_.load(std::memory_order_acquire) & task_bits::complete) != 0;
  }
  // Requires: is_complete() returned true.
  [[nodiscard]] bool was_cancelled() const noexcept {
    // Relaxed: `cancelled` is set in the same store as `complete`, which
    // the caller already acquired.
    return (word_.load(std::memory_order_relaxed) & task_bits::cancelled) != 0;
  }
  // E3, E4 and E8 for a word no other thread can reach ([T5]). Relaxed:
  // the only reader later is the same thread, or one that a release of
  // this task's state word (end_run) or of a reference orders after us.
  [[nodiscard]] task_action begin_run_unshared() noexcept {
    return apply_unshared(decide_begin_run(word_.load(std::memory_order_relaxed)));
  }
  [[nodiscard]] task_action complete_unshared(task_outcome outcome) noexcept {
    return apply_unshared(decide_complete(word_.load(std::memory_order_relaxed), outcome));
  }

  // A snapshot for tests and assertions; may be stale.
  [[nodiscard]] std::uint32_t approx_load() const noexcept {
    // Relaxed: an observer.
    return word_.load(std::memory_order_relaxed);
  }

 private:
  template <class Decide>
  task_action apply(Decide decide, std::memory_order success) noexcept {
    // Relaxed: the CAS below re-reads with the transition's order.
    std::uint32_t s = word_.load(std::memory_order_relaxed);
    for (;;) {
      const task_decision d = decide(s);
      // Even when the state does not change (d.next == s) the CAS stores it
      // again: a successful CAS is a read-modify-write, so it reads the
      // latest value in the word's modification order. A plain load could
      // return a stale `scheduled` or `notified` while the task has since
      // gone idle, which would lose the wake (the store-buffering pattern
      // between the waker's write of its condition and begin_run's read).
      // Relaxed on failure: we retry with the fresh value.
      if (word_.compare_exchange_weak(s, d.next, success, std::memory_order_relaxed))
        return d.action;
    }
  }

  task_action apply_unshared(task_decision d) noexcept {
    // Relaxed: see begin_run_unshared ([T5]).
    word_.store(d.next, std::memory_order_relaxed);
    return d.action;
  }

  atomic<std::uint32_t> word_{task_initial_state};
};

}  // namespace sluice::detail
