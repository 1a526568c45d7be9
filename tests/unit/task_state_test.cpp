// Exhaustive tests of the task state machine's decisions (every 7-bit
// snapshot, every event) and a breadth-first exploration of every state
// reachable from the initial ones (with and without a join handle) under
// every interleaving of events, with a model of the run queue and of the
// result alongside.
#include <sluice/detail/task_state.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <deque>
#include <set>
#include <tuple>

namespace {

using namespace sluice::detail;
namespace bits = sluice::detail::task_bits;
using sluice::detail::task_action;

constexpr std::uint32_t state_count = bits::all + 1;

TEST(TaskState, ValidityMatchesTheInvariants) {
  int valid = 0;
  for (std::uint32_t s = 0; s < state_count; ++s) {
    const bool expect =
        !((s & bits::scheduled) && (s & bits::running)) &&
        !((s & bits::notified) && !(s & bits::running)) &&
        !((s & bits::complete) && (s & (bits::scheduled | bits::running | bits::notified))) &&
        !((s & bits::cancelled) && !(s & bits::complete));
    EXPECT_EQ(task_state_valid(s), expect) << s;
    valid += expect;
  }
  EXPECT_FALSE(task_state_valid(1u << 7));
  EXPECT_TRUE(task_state_valid(task_initial_state));
  // idle/scheduled/running/running+notified x cancel_requested (8), plus
  // complete x cancel_requested x cancelled (4), each with and without
  // handle_gone.
  EXPECT_EQ(valid, 24);
}

TEST(TaskState, EveryDecisionFromAValidStateLeadsToAValidState) {
  for (std::uint32_t s = 0; s < state_count; ++s) {
    const std::array<task_decision, 7> all = {
        decide_wake(s),    decide_begin_run(s),
        decide_end_run(s), decide_complete(s, task_outcome::finished),
        decide_cancel(s),  decide_complete(s, task_outcome::cancelled),
        decide_detach(s)};
    for (const task_decision& d : all) {
      if (!task_state_valid(s)) {
        EXPECT_EQ(d.action, task_action::invalid) << s;
        EXPECT_EQ(d.next, s);
      } else if (d.action != task_action::invalid) {
        EXPECT_TRUE(task_state_valid(d.next)) << s << " -> " << d.next;
      }
    }
  }
}

TEST(TaskState, WakeDecisions) {
  for (std::uint32_t s = 0; s < state_count; ++s) {
    if (!task_state_valid(s)) continue;
    const task_decision d = decide_wake(s);
    if (s & bits::complete) {
      // A wake after completion does nothing.
      EXPECT_EQ(d, (task_decision{s, task_action::none})) << s;
    } else if (s & bits::scheduled) {
      // Already queued: queued once.
      EXPECT_EQ(d, (task_decision{s, task_action::none})) << s;
    } else if (s & bits::running) {
      // Running: remembered, re-queued by end_run.
      EXPECT_EQ(d, (task_decision{s | bits::notified, task_action::none})) << s;
    } else {
      EXPECT_EQ(d, (task_decision{s | bits::scheduled, task_action::push})) << s;
    }
    // A second wake right after the first never pushes.
    EXPECT_NE(decide_wake(d.next).action, task_action::push) << s;
  }
}

TEST(TaskState, BeginRunNeedsScheduledAndHonoursCancel) {
  for (std::uint32_t s = 0; s < state_count; ++s) {
    const task_decision d = decide_begin_run(s);
    if (!task_state_valid(s) || !(s & bits::scheduled)) {
      EXPECT_EQ(d.action, task_action::invalid) << s;
      continue;
    }
    EXPECT_EQ(d.next, (s & ~bits::scheduled) | bits::running) << s;
    EXPECT_EQ(d.action, (s & bits::cancel_requested) ? task_action::cancel : task_action::poll);
  }
}

TEST(TaskState, EndRunRequeuesOnceWhenNotified) {
  for (std::uint32_t s = 0; s < state_count; ++s) {
    const task_decision d = decide_end_run(s);
    if (!task_state_valid(s) || !(s & bits::running)) {
      EXPECT_EQ(d.action, task_action::invalid) << s;
      continue;
    }
    if (s & bits::cancel_requested) {
      EXPECT_EQ(d, (task_decision{s, task_action::cancel}));
    } else if (s & bits::notified) {
      EXPECT_EQ(d, (task_decision{(s & bits::handle_gone) | bits::scheduled, task_action::push}));
    } else {
      EXPECT_EQ(d, (task_decision{s & bits::handle_gone, task_action::none}));
    }
  }
}

TEST(TaskState, CompleteIsTerminal) {
  for (std::uint32_t s = 0; s < state_count; ++s) {
    for (task_outcome o : {task_outcome::finished, task_outcome::cancelled}) {
      const task_decision d = decide_complete(s, o);
      if (!task_state_valid(s) || !(s & bits::running)) {
        EXPECT_EQ(d.action, task_action::invalid) << s;
        continue;
      }
      // Nobody can take the result once the handle is gone: the worker
      // drops it.
      EXPECT_EQ(d.action,
                (s & bits::handle_gone) ? task_action::finish_unjoined : task_action::finish);
      EXPECT_EQ(d.next & bits::handle_gone, s & bits::handle_gone);
      EXPECT_TRUE(d.next & bits::complete);
      EXPECT_EQ((d.next & bits::cancelled) != 0, o == task_outcome::cancelled);
      // Nothing leaves complete: no run, no push, no second completion.
      EXPECT_EQ(decide_wake(d.next).action, task_action::none);
      EXPECT_EQ(decide_cancel(d.next).action, task_action::none);
      EXPECT_EQ(decide_begin_run(d.next).action, task_action::invalid);
      EXPECT_EQ(decide_end_run(d.next).action, task_action::invalid);
      EXPECT_EQ(decide_complete(d.next, o).action, task_action::invalid);
    }
  }
}

TEST(TaskState, DetachDropsTheResultOfACompleteTaskOnly) {
  for (std::uint32_t s = 0; s < state_count; ++s) {
    const task_decision d = decide_detach(s);
    if (!task_state_valid(s) || (s & bits::handle_gone)) {
      EXPECT_EQ(d, (task_decision{s, task_action::invalid})) << s;  // once only
      continue;
    }
    // A cancelled task has no result; dropping its empty slots does nothing.
    EXPECT_EQ(d,
              (task_decision{s | bits::handle_gone,
                             (s & bits::complete) ? task_action::drop_result : task_action::none}))
        << s;
  }
}

TEST(TaskState, CancelDecisions) {
  for (std::uint32_t s = 0; s < state_count; ++s) {
    if (!task_state_valid(s)) continue;
    const task_decision d = decide_cancel(s);
    if (s & (bits::complete | bits::cancel_requested)) {
      EXPECT_EQ(d, (task_decision{s, task_action::none}));
    } else if (s & (bits::scheduled | bits::running)) {
      EXPECT_EQ(d, (task_decision{s | bits::cancel_requested, task_action::none}));
    } else {
      EXPECT_EQ(d,
                (task_decision{s | bits::scheduled | bits::cancel_requested, task_action::push}));
    }
  }
}

// Model: the task's state word, how many times it sits on the run queue,
// whether its coroutine is suspended, finished, or destroyed. Events are
// applied in every order; the guarantees of the issue are checked on every
// reachable configuration.
struct config {
  std::uint32_t state;
  int queued;       // entries on the run queue
  bool in_run;      // a worker is between begin_run and end_run/complete
  bool wants_wake;  // a wake happened that the task has not yet run after
  int frames_destroyed;
  bool handle;          // the join handle still holds the task
  bool joined;          // the handle took the result and went (no detach)
  bool result;          // a finished task's result waits in the cell
  int results_dropped;  // by complete (finish_unjoined) or detach (drop_result)
  friend auto operator<=>(const config&, const config&) = default;
};

TEST(TaskState, ExhaustiveInterleavingsKeepTheGuarantees) {
  std::set<config> seen;
  std::deque<config> todo;
  const config with_handle{task_initial_state, 1, false, false, 0, true, false, false, 0};
  const config without{
      task_initial_state | bits::handle_gone, 1, false, false, 0, false, false, false, 0};
  for (const config& start : {with_handle, without}) {
    todo.push_back(start);
    seen.insert(start);
  }
  auto visit = [&](const config& c) {
    if (seen.insert(c).second) todo.push_back(c);
  };
  while (!todo.empty()) {
    const config c = todo.front();
    todo.pop_front();
    ASSERT_TRUE(task_state_valid(c.state)) << c.state;
    // Queued at most once, and exactly when `scheduled` says so.
    ASSERT_LE(c.queued, 1);
    ASSERT_EQ(c.queued == 1, (c.state & bits::scheduled) != 0);
    ASSERT_LE(c.frames_destroyed, 1);
    // The word knows whether the handle is there; a result outlives the
    // handle nowhere (a waker's last release destroys none), and is
    // dropped at most once.
    if (c.joined) {
      ASSERT_TRUE(!c.handle && (c.state & bits::complete) && !(c.state & bits::handle_gone));
    } else {
      ASSERT_EQ(c.handle, (c.state & bits::handle_gone) == 0);
    }
    ASSERT_TRUE(c.handle || !c.result);
    ASSERT_LE(c.results_dropped, 1);
    // No wake lost: a pending wake means the task will run again.
    if (c.wants_wake && !(c.state & bits::complete)) {
      ASSERT_TRUE(c.queued == 1 || (c.state & bits::notified)) << c.state;
    }
    // A wake (from anywhere, any time).
    {
      config n = c;
      const task_decision d = decide_wake(c.state);
      ASSERT_NE(d.action, task_action::invalid);
      n.state = d.next;
      if (d.action == task_action::push) ++n.queued;
      if (!(c.state & bits::complete)) n.wants_wake = true;
      visit(n);
    }
    // The handle goes without a join.
    if (c.handle) {
      config n = c;
      const task_decision d = decide_detach(c.state);
      ASSERT_TRUE(d.action == task_action::none || d.action == task_action::drop_result);
      // Complete: a result waits (finished) or the slots are empty (cancelled).
      ASSERT_EQ(d.action == task_action::drop_result, (c.state & bits::complete) != 0);
      ASSERT_TRUE(!c.result || d.action == task_action::drop_result);
      n.state = d.next;
      n.handle = false;
      if (c.result) {
        n.result = false;
        ++n.results_dropped;
      }
      visit(n);
    }
    // A cancel.
    {
      config n = c;
      const task_decision d = decide_cancel(c.state);
      ASSERT_NE(d.action, task_action::invalid);
      n.state = d.next;
      if (d.action == task_action::push) ++n.queued;
      visit(n);
    }
    // A worker pops it and begins a run.
    if (c.queued == 1 && !c.in_run) {
      config n = c;
      --n.queued;
      const task_decision d = decide_begin_run(c.state);
      ASSERT_NE(d.action, task_action::invalid);
      n.state = d.next;
      n.in_run = true;
      n.wants_wake = false;  // the run sees everything woken before it
      if (d.action == task_action::cancel) {
        ASSERT_EQ(n.frames_destroyed, 0);
        ++n.frames_destroyed;
        const task_decision f = decide_complete(n.state, task_outcome::cancelled);
        ASSERT_EQ(f.action, c.handle ? task_action::finish : task_action::finish_unjoined);
        n.state = f.next;
        n.in_run = false;
      }
      visit(n);
    }
    if (c.in_run) {
      // The coroutine suspends.
      {
        config n = c;
        const task_decision d = decide_end_run(c.state);
        ASSERT_NE(d.action, task_action::invalid);
        n.state = d.next;
        n.in_run = false;
        if (d.action == task_action::push) ++n.queued;
        if (d.action == task_action::cancel) {
          ASSERT_EQ(n.frames_destroyed, 0);
          ++n.frames_destroyed;
          n.state = decide_complete(n.state, task_outcome::cancelled).next;
        }
        visit(n);
      }
      // Or it finishes.
      {
        config n = c;
        const task_decision d = decide_complete(c.state, task_outcome::finished);
        ASSERT_EQ(d.action, c.handle ? task_action::finish : task_action::finish_unjoined);
        ASSERT_EQ(n.frames_destroyed, 0);
        ++n.frames_destroyed;
        n.state = d.next;
        n.in_run = false;
        if (c.handle) {
          n.result = true;  // for the join, or for the handle's detach
        } else {
          ++n.results_dropped;  // by the worker, at once
        }
        visit(n);
        // A join takes the result, and the handle goes without a detach.
        if (c.handle) {
          config j = n;
          j.result = false;
          j.handle = false;
          j.joined = true;
          visit(j);
        }
      }
    }
    // A finished task is never resumed: from complete, nothing runs.
    if (c.state & bits::complete) {
      ASSERT_EQ(c.queued, 0);
      ASSERT_FALSE(c.in_run);
      ASSERT_EQ(c.frames_destroyed, 1);
    }
  }
  // Every valid state is reached except two, with handle_gone or without:
  // complete|cancelled without a cancel request (only a request leads to
  // cancelled) and idle with a request (a requested task is queued, or
  // cancelled when it suspends).
  std::set<std::uint32_t> states;
  int finished_results_dropped = 0;
  for (const config& c : seen) {
    states.insert(c.state);
    if (c.results_dropped == 1) ++finished_results_dropped;
  }
  EXPECT_EQ(states.size(), 20u);
  for (std::uint32_t gone : {0u, bits::handle_gone}) {
    EXPECT_EQ(states.count(gone | bits::complete | bits::cancelled), 0u);
    EXPECT_EQ(states.count(gone | bits::cancel_requested), 0u);
  }
  EXPECT_GT(finished_results_dropped, 0);
}

TEST(TaskState, AtomicWordFollowsTheDecisions) {
  task_state st;
  EXPECT_EQ(st.approx_load(), task_initial_state);
  EXPECT_EQ(st.wake(), task_action::none);  // already scheduled
  EXPECT_EQ(st.begin_run(), task_action::poll);
  EXPECT_EQ(st.wake(), task_action::none);  // running -> notified
  EXPECT_EQ(st.wake(), task_action::none);
  EXPECT_EQ(st.end_run(), task_action::push);  // re-queued once
  EXPECT_EQ(st.approx_load(), bits::scheduled);
  EXPECT_EQ(st.begin_run(), task_action::poll);
  EXPECT_EQ(st.end_run(), task_action::none);  // idle
  EXPECT_EQ(st.wake(), task_action::push);
  EXPECT_EQ(st.wake(), task_action::none);
  EXPECT_EQ(st.begin_run(), task_action::poll);
  EXPECT_FALSE(st.is_complete());
  EXPECT_EQ(st.complete(task_outcome::finished), task_action::finish);
  EXPECT_TRUE(st.is_complete());
  EXPECT_FALSE(st.was_cancelled());
  EXPECT_EQ(st.wake(), task_action::none);
  bool was_complete = false;
  EXPECT_EQ(st.cancel(was_complete), task_action::none);
  EXPECT_TRUE(was_complete);
}

// E12 on the word: the detach() that comes second to complete() is told to
// drop the result, and a complete() that comes second hears finish_unjoined.
TEST(TaskState, AtomicDetachAndCompleteDecideWhoDropsTheResult) {
  {
    task_state st;  // the handle goes first
    EXPECT_EQ(st.begin_run(), task_action::poll);
    EXPECT_EQ(st.detach(), task_action::none);
    EXPECT_EQ(st.complete(task_outcome::finished), task_action::finish_unjoined);
    EXPECT_EQ(st.approx_load(), bits::complete | bits::handle_gone);
  }
  {
    task_state st;  // the task completes first
    EXPECT_EQ(st.begin_run(), task_action::poll);
    EXPECT_EQ(st.complete(task_outcome::finished), task_action::finish);
    EXPECT_EQ(st.detach(), task_action::drop_result);
    EXPECT_EQ(st.approx_load(), bits::complete | bits::handle_gone);
  }
  {
    task_state st;  // no handle at all
    st.start_without_handle();
    EXPECT_EQ(st.approx_load(), task_initial_state | bits::handle_gone);
    EXPECT_EQ(st.begin_run_unshared(), task_action::poll);
    EXPECT_EQ(st.complete_unshared(task_outcome::finished), task_action::finish_unjoined);
  }
  {
    task_state st;  // cancelled: the slots are empty, dropping them is harmless
    bool was_complete = true;
    EXPECT_EQ(st.begin_run(), task_action::poll);
    EXPECT_EQ(st.cancel(was_complete), task_action::none);
    EXPECT_EQ(st.end_run(), task_action::cancel);
    EXPECT_EQ(st.complete(task_outcome::cancelled), task_action::finish);
    EXPECT_EQ(st.detach(), task_action::drop_result);
  }
}

TEST(TaskState, CancelWhileIdleQueuesItForCancellation) {
  task_state st;
  EXPECT_EQ(st.begin_run(), task_action::poll);
  EXPECT_EQ(st.end_run(), task_action::none);
  bool was_complete = true;
  EXPECT_EQ(st.cancel(was_complete), task_action::push);
  EXPECT_FALSE(was_complete);
  EXPECT_EQ(st.cancel(was_complete), task_action::none);
  EXPECT_FALSE(was_complete);
  EXPECT_EQ(st.wake(), task_action::none);
  EXPECT_EQ(st.begin_run(), task_action::cancel);
  EXPECT_EQ(st.complete(task_outcome::cancelled), task_action::finish);
  EXPECT_TRUE(st.is_complete());
  EXPECT_TRUE(st.was_cancelled());
}

}  // namespace
