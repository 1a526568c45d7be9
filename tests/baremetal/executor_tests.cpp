// The executor's pieces on bare metal: the task state machine's decisions
// (exhaustively), the frame pool (alone and from four cores), and the
// executor itself with a worker on each of the three other cores: spawn,
// join, yield, sleep_for and cancellation at shutdown.
#include <cstddef>
#include <cstdint>
#include <utility>

#include <sluice/detail/atomic.hpp>
#include <sluice/detail/task_state.hpp>
#include <sluice/executor.hpp>
#include <sluice/frame_pool.hpp>
#include <sluice/port.hpp>
#include <sluice/sleep.hpp>
#include <sluice/task.hpp>

#include "runner.hpp"

namespace {

using sluice::detail::atomic;
namespace bits = sluice::detail::task_bits;
using sluice::detail::task_action;
using sluice::detail::task_decision;
using sluice::detail::task_outcome;

TEST_CASE(task_state_every_snapshot_every_event) {
  std::uint32_t valid = 0;
  for (std::uint32_t s = 0; s <= bits::all; ++s) {
    const task_decision all[] = {sluice::detail::decide_wake(s),
                                 sluice::detail::decide_begin_run(s),
                                 sluice::detail::decide_end_run(s),
                                 sluice::detail::decide_complete(s, task_outcome::finished),
                                 sluice::detail::decide_complete(s, task_outcome::cancelled),
                                 sluice::detail::decide_cancel(s),
                                 sluice::detail::decide_detach(s)};
    const bool ok = sluice::detail::task_state_valid(s);
    valid += ok ? 1 : 0;
    for (const task_decision& d : all) {
      if (!ok) {
        CHECK(d.action == task_action::invalid && d.next == s);
      } else if (d.action != task_action::invalid) {
        CHECK(sluice::detail::task_state_valid(d.next));
      }
      // Complete is terminal: nothing leaves it, nothing is queued or run
      // (the handle may still go).
      constexpr std::uint32_t may_change =
          bits::cancel_requested | bits::cancelled | bits::handle_gone;
      if (ok && (s & bits::complete) != 0)
        CHECK((d.next & ~may_change) == (s & ~may_change) && d.action != task_action::push &&
              d.action != task_action::poll);
    }
    // The worker drops the result of a task whose handle is gone, and a
    // handle that goes after the completion drops it: one or the other.
    if (ok && (s & bits::running) != 0)
      CHECK((sluice::detail::decide_complete(s, task_outcome::finished).action ==
             task_action::finish_unjoined) == ((s & bits::handle_gone) != 0));
    if (ok && (s & bits::handle_gone) == 0)
      CHECK((sluice::detail::decide_detach(s).action == task_action::drop_result) ==
            ((s & bits::complete) != 0));
  }
  CHECK_EQ(valid, 24u);
}

// Every interleaving of wake / cancel (any time), the handle's detach (once),
// begin_run (when queued), end_run and complete (when running), from the
// initial states (with a join handle and without), with the
// run queue modelled: `scheduled` is set exactly when the task is queued,
// and a push never finds it queued already (a task is queued at most once).
TEST_CASE(task_state_all_interleavings_keep_queue_invariant) {
  bool seen[bits::all + 1][2] = {};
  std::uint32_t stack_state[2 * (bits::all + 1)];
  std::uint32_t stack_queued[2 * (bits::all + 1)];
  std::size_t depth = 0;
  std::uint32_t reachable = 0;
  bool finished_reached = false;
  bool cancelled_reached = false;
  auto visit = [&](std::uint32_t s, std::uint32_t queued) {
    if (seen[s][queued]) return;
    seen[s][queued] = true;
    ++reachable;
    stack_state[depth] = s;
    stack_queued[depth++] = queued;
  };
  visit(sluice::detail::task_initial_state, 1);
  visit(sluice::detail::task_initial_state | bits::handle_gone, 1);  // spawned without a handle
  while (depth != 0) {
    --depth;
    const std::uint32_t s = stack_state[depth];
    const std::uint32_t q = stack_queued[depth];
    CHECK(sluice::detail::task_state_valid(s));
    CHECK_EQ((s & bits::scheduled) != 0, q == 1);
    if ((s & bits::complete) != 0) {
      if ((s & bits::cancelled) != 0)
        cancelled_reached = true;
      else
        finished_reached = true;
    }
    auto follow = [&](task_decision d, std::uint32_t queued) {
      if (!CHECK(d.action != task_action::invalid)) return;
      if (d.action == task_action::push) {
        CHECK_EQ(queued, 0u);
        queued = 1;
      }
      visit(d.next, queued);
    };
    follow(sluice::detail::decide_wake(s), q);
    follow(sluice::detail::decide_cancel(s), q);
    if ((s & bits::handle_gone) == 0) follow(sluice::detail::decide_detach(s), q);
    if (q == 1) {
      const task_decision d = sluice::detail::decide_begin_run(s);
      CHECK(d.action == task_action::poll || d.action == task_action::cancel);
      follow(d, 0);
    }
    if ((s & bits::running) != 0) {
      follow(sluice::detail::decide_end_run(s), q);
      follow(sluice::detail::decide_complete(s, task_outcome::finished), q);
      follow(sluice::detail::decide_complete(s, task_outcome::cancelled), q);
    }
  }
  CHECK(finished_reached && cancelled_reached);
  CHECK(reachable >= 8);
}

TEST_CASE(frame_pool_exhaustion_and_reuse) {
  alignas(sluice::frame_pool::block_alignment) static std::byte
      storage[sluice::frame_pool::storage_for(64, 8)];
  sluice::frame_pool pool{storage, sizeof storage, 64};
  CHECK_EQ(pool.capacity(), 8u);
  void* blocks[8];
  for (void*& b : blocks) {
    b = pool.allocate(64);
    CHECK(b != nullptr);
  }
  CHECK(pool.allocate(1) == nullptr);
  CHECK_EQ(pool.approx_in_use(), 8u);
  pool.deallocate(blocks[3]);
  void* again = pool.allocate(16);
  CHECK(again == blocks[3]);
  CHECK(pool.allocate(65) == nullptr);
  for (void* b : blocks)
    pool.deallocate(b);
  CHECK_EQ(pool.approx_in_use(), 0u);
}

// Four cores allocate and free from one small pool: a block is never handed
// to two owners at once (each owner stamps it and checks the stamp).
constexpr std::uint32_t pool_rounds = 20000;
struct pool_state {
  alignas(sluice::frame_pool::block_alignment)
      std::byte storage[sluice::frame_pool::storage_for(64, 6)];
  sluice::frame_pool pool{storage, sizeof storage, 64};
  atomic<std::uint32_t> conflicts{0};
  atomic<std::uint32_t> allocations{0};
};

void pool_core(unsigned core, void* context) noexcept {
  auto& s = *static_cast<pool_state*>(context);
  for (std::uint32_t i = 0; i < pool_rounds; ++i) {
    void* b = s.pool.allocate(64);
    if (b == nullptr) continue;
    auto* stamp = static_cast<volatile std::uint32_t*>(b);
    *stamp = core << 24 | i;
    for (int spin = 0; spin < 8; ++spin)
      if (*stamp != (core << 24 | i)) s.conflicts.fetch_add(1, std::memory_order_relaxed);
    s.allocations.fetch_add(1, std::memory_order_relaxed);
    s.pool.deallocate(b);
  }
}

TEST_CASE(frame_pool_four_cores_no_double_handout) {
  static pool_state s;
  runner::on_all_cores(&pool_core, &s);
  CHECK_EQ(s.conflicts.load(std::memory_order_relaxed), 0u);
  CHECK(s.allocations.load(std::memory_order_relaxed) > 0);
  CHECK_EQ(s.pool.approx_in_use(), 0u);
}

// ---- the executor on four cores ------------------------------------------------------

constexpr std::uint32_t exec_tasks = 24;
constexpr std::uint32_t exec_steps = 40;
constexpr std::uint32_t max_tasks = 2 * exec_tasks + 4;
constexpr std::size_t frame_block = 512;

struct exec_state {
  alignas(sluice::frame_pool::block_alignment)
      std::byte storage[sluice::frame_pool::storage_for(frame_block, 2 * max_tasks + 4)];
  sluice::frame_pool pool{storage, sizeof storage, frame_block};
  sluice::run_queue_slot queue[max_tasks];
  atomic<std::uint32_t> steps{0};
  atomic<std::uint32_t> early_wakes{0};
  atomic<std::uint32_t> ran_on[4]{};  // steps run per core
  sluice::parker* parkers[4] = {};
  sluice::executor* ex = nullptr;
};
exec_state* exec = nullptr;

sluice::task<std::uint32_t> child(sluice::frame_pool&, std::uint32_t id) {
  co_await sluice::yield();
  co_return id * 2;
}

// Yields and sleeps; spawns a child and awaits its join every few steps.
sluice::task<std::uint32_t> worker_task(sluice::frame_pool& pool, std::uint32_t id) {
  std::uint32_t sum = 0;
  for (std::uint32_t step = 0; step < exec_steps; ++step) {
    // Relaxed: counts read after the joins.
    exec->steps.fetch_add(1, std::memory_order_relaxed);
    // The core is known by its parker (one per core).
    for (unsigned c = 0; c < 4; ++c)
      if (exec->parkers[c] == &sluice::port::current_parker())
        exec->ran_on[c].fetch_add(1, std::memory_order_relaxed);
    if (step % 10 == 3) {
      const sluice::time_point deadline = sluice::port::now() + sluice::duration{300'000};
      co_await sluice::sleep_for(sluice::duration{300'000});
      if (sluice::port::now() < deadline) exec->early_wakes.fetch_add(1, std::memory_order_relaxed);
    } else if (step % 10 == 7) {
      sluice::executor& ex = co_await sluice::current_executor();
      auto h = ex.spawn(child(pool, id));
      if (h) {
        auto r = co_await *h;
        if (r) sum += *std::move(r);
      }
    } else {
      co_await sluice::yield();
    }
  }
  co_return id + sum;
}

sluice::task<std::uint32_t> forever(sluice::frame_pool&) {
  co_await sluice::sleep_for(sluice::duration::max());
  co_return 1;
}

void register_parker(unsigned core, void* context) noexcept {
  static_cast<exec_state*>(context)->parkers[core] = &sluice::port::current_parker();
}

void exec_core(unsigned core, void* context) noexcept {
  auto& s = *static_cast<exec_state*>(context);
  if (core != 0) {
    s.ex->run_worker();  // returns at shutdown
    return;
  }
  sluice::join_handle<std::uint32_t> handles[exec_tasks];
  std::uint32_t spawned = 0;
  for (std::uint32_t id = 0; id < exec_tasks; ++id) {
    auto h = s.ex->spawn(worker_task(s.pool, id));
    if (!CHECK(h.has_value())) break;
    handles[spawned++] = std::move(*h);
  }
  auto sleeper = s.ex->spawn(forever(s.pool));
  CHECK(sleeper.has_value());
  std::uint32_t joined = 0;
  for (std::uint32_t i = 0; i < spawned; ++i) {
    sluice::join_result<std::uint32_t> r = handles[i].join();  // blocks core 0
    const std::uint32_t children = exec_steps / 10;            // steps 7, 17, 27, 37
    if (CHECK(r.has_value()) && CHECK_EQ(*std::move(r), i + children * 2 * i)) ++joined;
  }
  CHECK_EQ(joined, exec_tasks);
  s.ex->shutdown();  // cancels the sleeper; the workers return
  if (sleeper) {
    sluice::join_result<std::uint32_t> r = sleeper->join();
    CHECK(!r.has_value() && r.error() == sluice::join_error::cancelled);
  }
}

TEST_CASE(executor_spawn_join_yield_sleep_on_4_cores) {
  static exec_state s;
  exec = &s;
  sluice::executor ex{{.max_tasks = max_tasks,
                       .pool = &s.pool,
                       .threads = sluice::worker_threads::none,
                       .run_queue = s.queue}};
  s.ex = &ex;
  runner::on_all_cores(&register_parker, &s);
  runner::on_all_cores(&exec_core, &s);
  CHECK_EQ(s.steps.load(std::memory_order_relaxed), exec_tasks * exec_steps);
  CHECK_EQ(s.early_wakes.load(std::memory_order_relaxed), 0u);
  CHECK_EQ(ex.approx_live_tasks(), 0u);
  CHECK_EQ(s.pool.approx_in_use(), 0u);
  // Where the steps ran (informative: which core is free is up to timing).
  for (unsigned c = 0; c < 4; ++c) {
    const char* names[] = {
        "  steps on core 0: ", "  steps on core 1: ", "  steps on core 2: ", "  steps on core 3: "};
    runner::print(names[c], s.ran_on[c].load(std::memory_order_relaxed));
  }
}

}  // namespace
