// A waker's last release may run in a signal handler. Hosted, it must not
// free heap memory there (a heap task's header; a thread's parker). It
// retires it, and thread context destroys it later (task_header.hpp,
// platform/hosted/port.cpp). Nor may it run user code there: a task's
// result (or exception) that nobody will take goes in thread or task
// context, when the handle goes or when the task completes without one
// ([T7] in task_state.hpp), for heap and frame_pool tasks alike.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <sluice/detail/frame_cache.hpp>
#include <sluice/executor.hpp>
#include <sluice/frame_pool.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>

#include "counting_allocator.hpp"
#include "manual_scheduler.hpp"

namespace {

using sluice::task;
using sluice::test::manual_event;

std::atomic<int> results_alive{0};
std::atomic<int> results_made{0};
std::atomic<int> results_destroyed_in_handler{0};

// A counted object's destruction: one fewer alive, and one more in a
// handler if a signal handler runs it.
void note_destroyed(std::atomic<int>& alive, std::atomic<int>& in_handler) {
  if (sluice::test::in_signal_handler != 0) in_handler.fetch_add(1);
  alive.fetch_sub(1);
}

struct counted_result {
  counted_result() noexcept {
    results_alive.fetch_add(1);
    results_made.fetch_add(1);
  }
  counted_result(const counted_result&) noexcept { results_alive.fetch_add(1); }
  counted_result(counted_result&&) noexcept { results_alive.fetch_add(1); }
  counted_result& operator=(const counted_result&) = default;
  counted_result& operator=(counted_result&&) = default;
  ~counted_result() { note_destroyed(results_alive, results_destroyed_in_handler); }
};

task<counted_result> result_after(manual_event& e) {
  co_await e;
  co_return counted_result{};
}

task<void> nothing() {
  co_return;
}

// What the handler does with the waker it is given.
enum class last_use { wake, drop };
sluice::waker* handler_waker = nullptr;
last_use handler_use = last_use::wake;

void on_signal(int) {
  sluice::test::in_signal_handler = 1;
  if (handler_use == last_use::wake) {
    std::move(*handler_waker).wake();
  } else {
    sluice::waker dropped = std::move(*handler_waker);
  }
  sluice::test::in_signal_handler = 0;
}

// Gives `w` up inside a signal handler on this thread (raise() returns
// after the handler has run).
void give_up_in_handler(sluice::waker& w, last_use use) {
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = &on_signal;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR2, &sa, &old), 0);
  handler_waker = &w;
  handler_use = use;
  // A heap block freed in the handler may go to the thread's frame cache
  // (frame_cache.hpp) instead of operator delete: that must not happen
  // either (the cache is not safe in a handler).
  const std::uint32_t cached_before = sluice::detail::frame_cache_blocks();
  ASSERT_EQ(raise(SIGUSR2), 0);
  ASSERT_EQ(sigaction(SIGUSR2, &old, nullptr), 0);
  EXPECT_EQ(sluice::detail::frame_cache_blocks(), cached_before)
      << "a heap block went to the frame cache in the handler";
  EXPECT_TRUE(w.empty()) << "the handler gave the waker up";
}

// Runs a task to completion that leaves its result in the cell, and returns
// a waker that is then the task's last reference.
// Runs a task spawned on `ex` to its co_await on `e`, keeps a clone of the
// waker it left there, sets `e` and runs the task to its end: the clone is
// then a reference to the completed task that the caller gives up.
sluice::waker complete_keeping_a_waker(sluice::executor& ex, manual_event& e) {
  EXPECT_EQ(ex.run_until_idle(), 1u);
  sluice::waker kept = e.stored_waker().clone();
  e.set();
  EXPECT_EQ(ex.run_until_idle(), 1u);
  return kept;
}

sluice::waker last_reference_to_a_completed_task(sluice::executor& ex, manual_event& e) {
  auto h = ex.spawn(result_after(e));
  EXPECT_TRUE(h.has_value());
  sluice::waker kept = complete_keeping_a_waker(ex, e);
  EXPECT_EQ(results_alive.load(), 1) << "the result waits in the task for a join";
  h->detach();
  EXPECT_EQ(results_alive.load(), 0) << "the handle went without a join and left the result";
  return kept;
}

void reset_counts() {
  results_alive = 0;
  results_made = 0;
  results_destroyed_in_handler = 0;
  sluice::test::frees_in_handler = 0;
}

bool nothing_retired() {
  return sluice::detail::retired_tasks.approx_empty();
}

// Blocks this thread has given back: to operator delete, or to its frame
// cache. A retired task destroyed adds one.
long blocks_given_back() {
  return sluice::test::frees + static_cast<long>(sluice::detail::frame_cache_blocks());
}

// A frame_pool for task headers and an executor on it, driven by the test.
struct pool_and_executor {
  alignas(sluice::frame_pool::block_alignment) std::byte storage[8192];
  sluice::frame_pool pool{storage, sizeof storage, 512};
  sluice::executor ex{{.pool = &pool, .threads = sluice::worker_threads::none}};
};

class TaskRetire : public ::testing::TestWithParam<last_use> {};

TEST_P(TaskRetire, AWakersLastReleaseInAHandlerFreesNothingThereAndTheNextCompletionDoes) {
  reset_counts();
  sluice::executor ex{{.threads = sluice::worker_threads::none}};
  manual_event e;
  sluice::waker kept = last_reference_to_a_completed_task(ex, e);
  ASSERT_TRUE(nothing_retired());
  give_up_in_handler(kept, GetParam());
  EXPECT_EQ(sluice::test::frees_in_handler.load(), 0) << "operator delete ran in the handler";
  EXPECT_EQ(results_destroyed_in_handler.load(), 0) << "the result was destroyed in the handler";
  EXPECT_FALSE(nothing_retired()) << "retired, not yet destroyed";
  ASSERT_TRUE(ex.spawn_detached(nothing()));
  const long given_back = blocks_given_back();
  EXPECT_EQ(ex.run_until_idle(), 1u);
  EXPECT_TRUE(nothing_retired()) << "a worker's next completion destroys retired tasks";
  EXPECT_EQ(blocks_given_back(), given_back + 2)
      << "the completed task's block and the retired task's (only the first: not destroyed)";
}

TEST_P(TaskRetire, TheExecutorsDestructorDestroysWhatIsRetired) {
  reset_counts();
  // What an executor's destruction gives back by itself, with nothing
  // retired.
  long given_back = 0;
  {
    sluice::executor ex{{.threads = sluice::worker_threads::none}};
    given_back = blocks_given_back();
  }
  const long by_itself = blocks_given_back() - given_back;
  {
    sluice::executor ex{{.threads = sluice::worker_threads::none}};
    manual_event e;
    sluice::waker kept = last_reference_to_a_completed_task(ex, e);
    give_up_in_handler(kept, GetParam());
    EXPECT_FALSE(nothing_retired());
    given_back = blocks_given_back();
  }
  EXPECT_TRUE(nothing_retired());
  EXPECT_EQ(blocks_given_back(), given_back + by_itself + 1)
      << "the retired task's memory was not freed";
  EXPECT_EQ(sluice::test::frees_in_handler.load(), 0);
}

TEST_P(TaskRetire, AfterTheLastExecutorTheProgramDestroysWhatIsRetired) {
  reset_counts();
  sluice::waker kept;
  {
    sluice::executor ex{{.threads = sluice::worker_threads::none}};
    manual_event e;
    kept = last_reference_to_a_completed_task(ex, e);
  }
  give_up_in_handler(kept, GetParam());
  EXPECT_EQ(sluice::test::frees_in_handler.load(), 0);
  EXPECT_FALSE(nothing_retired());
  // The task's block goes to operator delete or to this thread's frame
  // cache: nothing else is freed here.
  const long given_back = blocks_given_back();
  sluice::destroy_retired_tasks();
  EXPECT_TRUE(nothing_retired());
  EXPECT_EQ(blocks_given_back(), given_back + 1) << "the retired task's memory was not freed";
}

// A task whose header came from a frame_pool is destroyed at once, even in
// a handler: the pool's free is lock-free, and a retired task would keep
// its block (and could outlive the pool). Its frame, from the heap, went
// at completion.
TEST_P(TaskRetire, ATaskFromAFramePoolIsDestroyedAtOnceAndItsBlockReturns) {
  reset_counts();
  pool_and_executor on;
  sluice::executor& ex = on.ex;
  manual_event e;
  sluice::waker kept = last_reference_to_a_completed_task(ex, e);
  EXPECT_EQ(on.pool.approx_in_use(), 1u) << "the task's header";
  give_up_in_handler(kept, GetParam());
  EXPECT_EQ(sluice::test::frees_in_handler.load(), 0) << "operator delete ran in the handler";
  EXPECT_EQ(on.pool.approx_in_use(), 0u) << "the block went back to the pool in the handler";
  EXPECT_EQ(results_alive.load(), 0);
}

// How the task's result is left: the handle detached before the task
// completes, no handle at all, or the handle joined.
enum class result_left { detached_early, spawned_detached, joined };

// A frame_pool task whose last reference is a waker a handler gives up,
// for each way of leaving the result: the result never meets the handler.
class PoolTaskResult : public ::testing::TestWithParam<result_left> {};

TEST_P(PoolTaskResult, NeverGoesInTheHandlerThatDropsTheLastWaker) {
  reset_counts();
  pool_and_executor on;
  sluice::executor& ex = on.ex;
  manual_event e;
  std::optional<sluice::join_handle<counted_result>> h;
  if (GetParam() == result_left::spawned_detached) {
    ASSERT_TRUE(ex.spawn_detached(result_after(e)));
  } else {
    auto spawned = ex.spawn(result_after(e));
    ASSERT_TRUE(spawned.has_value());
    h.emplace(std::move(*spawned));
  }
  EXPECT_EQ(ex.run_until_idle(), 1u);
  sluice::waker kept = e.stored_waker().clone();
  if (GetParam() == result_left::detached_early) h->detach();
  e.set();
  EXPECT_EQ(ex.run_until_idle(), 1u);
  EXPECT_EQ(results_made.load(), 1);
  if (GetParam() == result_left::joined) {
    EXPECT_EQ(results_alive.load(), 1) << "the result waits for the join";
    {
      sluice::join_result<counted_result> r = h->join();
      EXPECT_TRUE(r.has_value());
    }
  } else {
    EXPECT_EQ(results_alive.load(), 0)
        << "completed with nobody to take the result, and the worker kept it";
  }
  EXPECT_EQ(results_alive.load(), 0);
  EXPECT_EQ(on.pool.approx_in_use(), 1u) << "the waker holds the task's header";
  give_up_in_handler(kept, last_use::drop);
  EXPECT_EQ(on.pool.approx_in_use(), 0u);
  EXPECT_EQ(results_destroyed_in_handler.load(), 0) << "the result was destroyed in the handler";
}

// A result whose move throws when the join takes it stays in its slot: the
// join empties the slots before it lets the task go, so that the waker a
// handler drops last finds nothing to destroy.
bool moves_throw = false;
struct throwing_move {
  throwing_move() noexcept { results_alive.fetch_add(1); }
  throwing_move(throwing_move&&) {
    if (moves_throw) throw 7;
    results_alive.fetch_add(1);
  }
  throwing_move& operator=(throwing_move&&) = delete;
  ~throwing_move() { note_destroyed(results_alive, results_destroyed_in_handler); }
};

task<throwing_move> throwing_move_after(manual_event& e) {
  co_await e;
  co_return throwing_move{};
}

TEST(PoolTaskResult, AJoinWhoseMoveThrowsLeavesNothingInTheTask) {
  reset_counts();
  moves_throw = false;
  pool_and_executor on;
  sluice::executor& ex = on.ex;
  manual_event e;
  auto h = ex.spawn(throwing_move_after(e));
  ASSERT_TRUE(h.has_value());
  sluice::waker kept = complete_keeping_a_waker(ex, e);
  EXPECT_EQ(results_alive.load(), 1);
  moves_throw = true;
  EXPECT_THROW((void)h->join(), int);
  moves_throw = false;
  EXPECT_EQ(results_alive.load(), 0) << "the result stayed in the task after the join threw";
  give_up_in_handler(kept, last_use::drop);
  EXPECT_EQ(results_destroyed_in_handler.load(), 0) << "the result was destroyed in the handler";
  EXPECT_EQ(on.pool.approx_in_use(), 0u);
}

// A task without a handle that finishes in its first run ends on the path
// that needs no read-modify-write ([T5] in task_state.hpp): its worker
// destroys the result there, once.
task<counted_result> at_once() {
  co_return counted_result{};
}

TEST(PoolTaskResult, OfADetachedTaskThatNeverSuspendedGoesWithItsCompletion) {
  reset_counts();
  pool_and_executor on;
  sluice::executor& ex = on.ex;
  ASSERT_TRUE(ex.spawn_detached(at_once()));
  EXPECT_EQ(ex.run_until_idle(), 1u);
  EXPECT_EQ(results_made.load(), 1);
  EXPECT_EQ(results_alive.load(), 0);
  EXPECT_EQ(on.pool.approx_in_use(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Left, PoolTaskResult,
                         ::testing::Values(result_left::detached_early,
                                           result_left::spawned_detached, result_left::joined),
                         [](const auto& info) {
                           switch (info.param) {
                             case result_left::detached_early:
                               return std::string("DetachedEarly");
                             case result_left::spawned_detached:
                               return std::string("SpawnedDetached");
                             default:
                               return std::string("Joined");
                           }
                         });

// The same for an exception: a task that threw, whose handle goes without
// a join, releases the exception in thread context, not in the handler
// that gives up the task's last reference.
std::atomic<int> errors_alive{0};
std::atomic<int> errors_destroyed_in_handler{0};

struct counted_error {
  counted_error() noexcept { errors_alive.fetch_add(1); }
  counted_error(const counted_error&) noexcept { errors_alive.fetch_add(1); }
  counted_error& operator=(const counted_error&) = default;
  ~counted_error() { note_destroyed(errors_alive, errors_destroyed_in_handler); }
};

task<int> throw_after(manual_event& e) {
  co_await e;
  throw counted_error{};
}

TEST(PoolTaskException, GoesWithTheHandleNotInTheHandlerThatDropsTheLastWaker) {
  reset_counts();
  errors_alive = 0;
  errors_destroyed_in_handler = 0;
  pool_and_executor on;
  sluice::executor& ex = on.ex;
  manual_event e;
  auto h = ex.spawn(throw_after(e));
  ASSERT_TRUE(h.has_value());
  sluice::waker kept = complete_keeping_a_waker(ex, e);
  EXPECT_EQ(errors_alive.load(), 1) << "the exception waits in the task for a join";
  h->detach();
  EXPECT_EQ(errors_alive.load(), 0) << "the handle went without a join and left the exception";
  give_up_in_handler(kept, last_use::drop);
  EXPECT_EQ(on.pool.approx_in_use(), 0u);
  EXPECT_EQ(errors_destroyed_in_handler.load(), 0) << "the exception was released in the handler";
}

INSTANTIATE_TEST_SUITE_P(LastUse, TaskRetire, ::testing::Values(last_use::wake, last_use::drop),
                         [](const auto& info) {
                           return info.param == last_use::wake ? std::string("Wake")
                                                               : std::string("Drop");
                         });

// A waker outlives its thread, so it holds the parker's last reference.
TEST(ParkerRetire, AParkerReleasedLastInAHandlerIsDeletedByTheNextThreadThatParks) {
  sluice::test::frees_in_handler = 0;
  sluice::waker kept;
  std::thread([&kept] { kept = sluice::port::current_parker().make_waker(); }).join();
  give_up_in_handler(kept, last_use::drop);
  EXPECT_EQ(sluice::test::frees_in_handler.load(), 0) << "the parker was deleted in the handler";
  long freed = 0;
  std::thread([&freed] {
    const long before = sluice::test::frees;
    (void)sluice::port::current_parker();
    freed = sluice::test::frees - before;
  }).join();
  EXPECT_GE(freed, 1) << "a thread's first current_parker() deletes the retired parkers";
}

// A thread_local object made before the thread's first current_parker()
// is destroyed after the thread's exit released that parker; a wait in its
// destructor gets a new parker rather than the one released (and perhaps
// freed) already. AddressSanitizer reports a use of the old one.
long late_allocations = -1;
struct waits_at_thread_exit {
  bool touched = false;
  ~waits_at_thread_exit() {
    const long before = sluice::test::allocations;
    sluice::parker& p = sluice::port::current_parker();
    late_allocations = sluice::test::allocations - before;
    // Used as a wait uses it (the token makes the park return at once).
    p.make_waker().wake();
    p.park_until(sluice::port::now() + sluice::duration{5'000'000'000});
  }
};

TEST(ParkerRetire, AWaitInADestructorAfterTheThreadsExitReleasedItsParkerGetsANewOne) {
  late_allocations = -1;
  std::thread([] {
    thread_local waits_at_thread_exit late;
    late.touched = true;  // made first: destroyed after the parker's release
    (void)sluice::port::current_parker();
  }).join();
  EXPECT_GE(late_allocations, 1) << "the released parker was handed out again";
}

}  // namespace
