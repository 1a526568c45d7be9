// Timers (ordering of many sleeps, a sleep cancelled before it fires,
// timeouts that win and lose), when_all / when_any, and channels between
// tasks on different workers.
#include <sluice/channel.hpp>
#include <sluice/executor.hpp>
#include <sluice/hosted/when.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "executor_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::task;
using sluice::test::abort_watchdog;

task<void> sleep_then_record(sluice::time_point wake_at, int id, std::mutex& m,
                             std::vector<int>& order) {
  co_await sluice::sleep_until(wake_at);
  std::lock_guard<std::mutex> lock(m);
  order.push_back(id);
}

TEST(ExecutorTimers, ManySleepsCompleteInDeadlineOrder) {
  abort_watchdog dog{60s, "sleep ordering"};
  // One worker: expiries are fired in deadline order onto a FIFO run queue,
  // so completions follow deadlines exactly (ties: arming order).
  sluice::executor ex{{.workers = 1}};
  const int n = 200;
  const sluice::time_point base = sluice::deadline_after(30ms);
  std::vector<int> ids(n);
  for (int i = 0; i < n; ++i)
    ids[static_cast<std::size_t>(i)] = i;
  std::shuffle(ids.begin(), ids.end(), std::mt19937{5});
  std::mutex m;
  std::vector<int> order;
  std::vector<sluice::join_handle<void>> hs;
  for (int id : ids) {
    // Deadlines 50 us apart, spawned in random order.
    auto h = ex.spawn(sleep_then_record(base + sluice::duration{id * 50'000}, id, m, order));
    ASSERT_TRUE(h.has_value());
    hs.push_back(std::move(h).value());
  }
  for (auto& h : hs)
    EXPECT_TRUE(h.join().has_value());
  ASSERT_EQ(order.size(), static_cast<std::size_t>(n));
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
}

task<int> long_sleep() {
  co_await sluice::sleep_for(1h);
  co_return 1;
}

TEST(ExecutorTimers, SleepCancelledBeforeItFires) {
  abort_watchdog dog{60s, "sleep cancel"};
  sluice::executor ex{{.workers = 2}};
  auto h = ex.spawn(long_sleep());
  ASSERT_TRUE(h.has_value());
  std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(h->cancel());
  auto r = h->join();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), sluice::join_error::cancelled);
  // The timer was disarmed when the frame was destroyed: an armed node
  // would assert in its destructor, and so would the executor's timer
  // queue (destroyed at the end of this scope) if a node were left in it.
}

// A worker (X) arms a timer while the other (Y) has been parked for a while
// with no deadline (no timer armed then); X is then held busy, so only Y
// can fire the timer, and only if the arm wakes it to wait for the new
// deadline instead (executor::earliest_timer_moved). X is held inside the
// trace's record of its next park (after the sleeper suspended, before it
// reads the earliest deadline), until the sleeper completed or a bound
// passed. Y's state comes from the same trace: parked = parks - unparks.
namespace timer_wake {
// seq_cst, all: handshakes between the test, the sleeper and the trace,
// none on the executor's path.
std::atomic<int> parked{0};                 // workers inside a park (between the events)
std::atomic<std::int64_t> last_park_ns{0};  // steady clock of the last park event
std::atomic<bool> armed{false}, woke{false};
std::atomic<bool> held{false}, released_by_woke{false}, hold_ended{false};
thread_local bool on_x = false;  // the worker that runs the sleeper first

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class holding_trace final : public sluice::executor_trace {
 public:
  void record(sluice::trace_event e, const void*) noexcept override {
    if (e == sluice::trace_event::unpark) parked.fetch_sub(1);
    if (e != sluice::trace_event::park) return;
    last_park_ns.store(now_ns());
    parked.fetch_add(1);
    if (!on_x || !armed.load() || held.exchange(true)) return;
    // X, after the sleeper armed and suspended: held until it completed,
    // or for 20 s (then X parks until the deadline and fires it itself).
    const auto bound = std::chrono::steady_clock::now() + 20s;
    while (!woke.load() && std::chrono::steady_clock::now() < bound)
      std::this_thread::yield();
    released_by_woke.store(woke.load());
    hold_ended.store(true);  // the test reads released_by_woke after this
  }
};

// Waits until the other worker has been parked for 20 ms (it has nothing
// to do: its spin is long over, and it waits with no deadline), then arms.
task<int> sleeper() {
  on_x = true;
  const auto bound = std::chrono::steady_clock::now() + 20s;
  while ((parked.load() != 1 || now_ns() - last_park_ns.load() < 20'000'000) &&
         std::chrono::steady_clock::now() < bound)
    std::this_thread::yield();
  if (parked.load() != 1) co_return -1;  // the other worker never parked
  armed.store(true);
  co_await sluice::sleep_for(10ms);
  woke.store(true);
  co_return 1;
}
}  // namespace timer_wake

TEST(ExecutorTimers, AnEarlierTimerWakesAWorkerParkedWithoutADeadline) {
  namespace t = timer_wake;
  abort_watchdog dog{60s, "timer armed while the other worker is parked"};
  t::parked.store(0);
  t::armed.store(false);
  t::woke.store(false);
  t::held.store(false);
  t::released_by_woke.store(false);
  t::hold_ended.store(false);
  t::holding_trace trace;
  sluice::executor ex{{.workers = 2, .trace = &trace}};
  auto h = ex.spawn(t::sleeper());
  ASSERT_TRUE(h.has_value());
  auto r = h->join();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::move(r).value(), 1) << "the other worker never parked";
  // The arming worker parks after the sleeper suspended, and is held
  // there; the sleeper may complete on the other worker before that worker
  // even reaches its park (it was preempted), or leaves it: wait for the
  // hold to end (the watchdog bounds the wait).
  while (!t::hold_ended.load())
    std::this_thread::yield();
  EXPECT_TRUE(t::held.load()) << "the worker that armed was not held";
  EXPECT_TRUE(t::released_by_woke.load())
      << "the timer fired only once the arming worker was let go: the parked "
         "worker was not woken for the earlier deadline";
}

task<int> joins_with_timeout(sluice::join_handle<int>& other, sluice::duration d) {
  auto r = co_await sluice::with_timeout(d, other);
  if (!r) co_return -1;
  co_return r->has_value() ? std::move(*r).value() : -2;
}

TEST(ExecutorTimers, TimeoutOnAJoin) {
  abort_watchdog dog{60s, "join timeout"};
  sluice::executor ex{{.workers = 2}};
  auto slow = ex.spawn(long_sleep());
  ASSERT_TRUE(slow.has_value());
  EXPECT_EQ(*sluice::block_on(ex, joins_with_timeout(*slow, 10ms)), -1);  // the timeout wins
  auto fast = ex.spawn([]() -> task<int> { co_return 9; }());
  ASSERT_TRUE(fast.has_value());
  EXPECT_EQ(*sluice::block_on(ex, joins_with_timeout(*fast, 1h)), 9);  // the join wins
  slow->cancel();
}

task<int> after(sluice::duration d, int v) {
  co_await sluice::sleep_for(d);
  co_return v;
}

task<int> all_of_three() {
  auto [a, b, c] = co_await sluice::when_all(after(3ms, 1), after(1ms, 2), after(0ms, 3));
  co_return *std::move(a) * 100 + *std::move(b) * 10 + *std::move(c);
}

TEST(ExecutorCombinators, WhenAllGivesEveryResultInOrder) {
  abort_watchdog dog{60s, "when_all"};
  sluice::executor ex{{.workers = 2}};
  EXPECT_EQ(*sluice::block_on(ex, all_of_three()), 123);
}

// Counts the destruction of a loser's frame, whether it ever ran or not: a
// parameter lives in the frame from the call on, while a local of the body
// would exist only once the task had started (a child cancelled before its
// first run would never count, and the tests below would wait forever).
std::atomic<int> losers_done{0};
struct loser_mark {
  loser_mark() = default;
  loser_mark(loser_mark&& other) noexcept : live(std::exchange(other.live, false)) {}
  loser_mark& operator=(loser_mark&&) = delete;
  ~loser_mark() {
    if (live) losers_done.fetch_add(1);
  }
  bool live = true;
};
task<int> loser(loser_mark = {}) {
  co_await sluice::sleep_for(1h);
  co_return -1;
}

task<int> first_of() {
  auto [index, r] = co_await sluice::when_any(loser(), after(1ms, 7), loser());
  co_return static_cast<int>(index) * 100 + *std::move(r);
}

TEST(ExecutorCombinators, WhenAnyGivesTheFirstAndCancelsTheRest) {
  abort_watchdog dog{60s, "when_any"};
  losers_done = 0;
  {
    sluice::executor ex{{.workers = 2}};
    EXPECT_EQ(*sluice::block_on(ex, first_of()), 107);
  }  // shutdown waits for the cancelled losers
  EXPECT_EQ(losers_done.load(), 2);
}

task<int> first_of_with_one_unspawnable() {
  // With max_tasks = 3 (this task and two children), the third child
  // cannot be spawned: it must be passed over, not reported as first.
  auto [index, r] = co_await sluice::when_any(after(1ms, 7), loser(), loser());
  co_return r ? static_cast<int>(index) * 100 + *std::move(r) : -1;
}

TEST(ExecutorCombinators, WhenAnyPassesOverAChildThatCouldNotBeSpawned) {
  abort_watchdog dog{60s, "when_any with a child refused"};
  losers_done = 0;
  {
    sluice::executor ex{{.workers = 2, .max_tasks = 3}};
    EXPECT_EQ(*sluice::block_on(ex, first_of_with_one_unspawnable()), 7);
  }
  // Both losers' frames are gone once: the one spawned was cancelled, the
  // one refused was destroyed by spawn.
  EXPECT_EQ(losers_done.load(), 2);
}

task<int> first_value(sluice::receiver<int> rx) {
  auto r = co_await rx.recv_async();
  co_return r ? *r : -100;
}

task<int> all_of_three_with_one_unspawnable(sluice::receiver<int> rx) {
  // With max_tasks = 3 (this task and two children that wait for a value),
  // the third child cannot be spawned: its result says why, the others are
  // delivered (1 and 2, in either order).
  auto [a, b, c] = co_await sluice::when_all(first_value(rx), first_value(rx), after(0ms, 3));
  if (!a || !b || c) co_return -1;
  co_return c.error() == sluice::join_error::too_many_tasks ? *std::move(a) + *std::move(b) : -2;
}

// The two children hold their slots until the test sends them a value, sent
// only once both are live: the third spawn is refused by count, not by
// timing.
TEST(ExecutorCombinators, WhenAllReportsWhyAChildWasNotSpawned) {
  abort_watchdog dog{60s, "when_all with a child refused"};
  sluice::executor ex{{.workers = 2, .max_tasks = 3}};
  auto [tx, rx] = sluice::channel<int>::bounded(2);
  auto h = ex.spawn(all_of_three_with_one_unspawnable(rx));
  ASSERT_TRUE(h.has_value());
  while (ex.approx_live_tasks() < 3)
    std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(tx.send(1));
  ASSERT_TRUE(tx.send(2));
  EXPECT_EQ(*h->join(), 3);
}

task<int> first_of_none_spawnable() {
  // With max_tasks = 1 (this task), no child can be spawned.
  auto [index, r] = co_await sluice::when_any(after(0ms, 1), after(0ms, 2));
  if (r) co_return -1;
  co_return static_cast<int>(index) * 100 + static_cast<int>(r.error());
}

TEST(ExecutorCombinators, WhenAnyOfNoSpawnableChildReportsWhy) {
  abort_watchdog dog{60s, "when_any with every child refused"};
  sluice::executor ex{{.workers = 2, .max_tasks = 1}};
  EXPECT_EQ(*sluice::block_on(ex, first_of_none_spawnable()),
            static_cast<int>(sluice::join_error::too_many_tasks));
}

task<int> waits_on_two_losers() {
  auto [index, r] = co_await sluice::when_any(loser(), loser());
  co_return static_cast<int>(index);
}

task<int> waits_on_all_of_two_losers() {
  auto [a, b] = co_await sluice::when_all(loser(), loser());
  co_return a || b ? 1 : 0;
}

// Spawns `parent` (a combinator over two losers), waits until both
// children are live (parent + 2), cancels the parent, and then waits
// (bounded by the watchdog) until both children are gone while the
// executor runs: cancelled by the parent's end, not by shutdown.
void cancelling_the_parent_cancels_both_children(task<int> parent) {
  losers_done = 0;
  sluice::executor ex{{.workers = 2}};
  auto h = ex.spawn(std::move(parent));
  ASSERT_TRUE(h.has_value());
  while (ex.approx_live_tasks() < 3)
    std::this_thread::sleep_for(1ms);
  (void)h->cancel();
  EXPECT_EQ(h->join().error(), sluice::join_error::cancelled);
  while (losers_done.load() != 2)
    std::this_thread::sleep_for(1ms);
}

// A when_any that is cancelled while it waits cancels its children itself:
// they do not run on (or hold their slots) until the executor shuts down.
TEST(ExecutorCombinators, CancellingAWhenAnyCancelsItsChildren) {
  abort_watchdog dog{20s, "cancelled when_any: children left running"};
  cancelling_the_parent_cancels_both_children(waits_on_two_losers());
}

// The same for a when_all: the child it is joining when cancelled (the
// first) is cancelled too, not left to run detached, and so is the other.
TEST(ExecutorCombinators, CancellingAWhenAllCancelsItsChildren) {
  abort_watchdog dog{20s, "cancelled when_all: children left running"};
  cancelling_the_parent_cancels_both_children(waits_on_all_of_two_losers());
}

task<long> producer(sluice::sender<int> tx, int n) {
  for (int i = 1; i <= n; ++i) {
    auto r = co_await tx.send_async(i);
    if (!r) co_return -1;
  }
  tx.close();
  co_return 0;
}
task<long> consumer(sluice::receiver<int> rx) {
  long sum = 0;
  for (;;) {
    auto r = co_await rx.recv_async();
    if (!r) break;
    sum += *r;
  }
  co_return sum;
}

TEST(ExecutorChannels, SendAndRecvAsyncBetweenTasksOnDifferentWorkers) {
  abort_watchdog dog{60s, "channel between tasks"};
  sluice::executor ex{{.workers = 2}};
  auto [tx, rx] = sluice::channel<int>::bounded(2);
  auto c = ex.spawn(consumer(std::move(rx)));
  auto p = ex.spawn(producer(std::move(tx), 10'000));
  ASSERT_TRUE(c.has_value() && p.has_value());
  EXPECT_EQ(*p->join(), 0);
  EXPECT_EQ(*c->join(), 10'000L * 10'001 / 2);
}

}  // namespace

namespace {

// Thread-safe recording of the executor's trace (workers record too).
class locked_trace final : public sluice::executor_trace {
 public:
  void record(sluice::trace_event e, const void*) noexcept override {
    std::lock_guard<std::mutex> lock(m_);
    events_.push_back(sluice::to_string(e));
  }
  std::vector<std::string> events() {
    std::lock_guard<std::mutex> lock(m_);
    return events_;
  }
  int count(const std::string& e) {
    const auto ev = events();
    return static_cast<int>(std::count(ev.begin(), ev.end(), e));
  }

 private:
  std::mutex m_;
  std::vector<std::string> events_;
};

void wait_for_parks(locked_trace& tr, int parks) {
  while (tr.count("park") - tr.count("unpark") < parks)
    std::this_thread::sleep_for(1ms);
}

task<int> one() {
  co_return 1;
}

TEST(ExecutorParking, IdleWorkerSleepsAndOneTaskWakesOnlyOneWorker) {
  abort_watchdog dog{60s, "parking"};
  locked_trace tr;
  sluice::executor ex{{.workers = 2, .trace = &tr}};
  wait_for_parks(tr, 2);  // both workers found nothing and sleep
  const std::size_t before = tr.events().size();
  auto h = ex.spawn(one());
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(*h->join(), 1);
  wait_for_parks(tr, 2);  // back to sleep
  const auto ev = tr.events();
  const std::vector<std::string> after(ev.begin() + static_cast<std::ptrdiff_t>(before), ev.end());
  // Exactly: the spawn, its push, one worker woken, the run, the
  // completion, that worker parked again. The other worker never woke.
  EXPECT_EQ(after,
            (std::vector<std::string>{"spawn", "schedule", "unpark", "run", "complete", "park"}));
}

}  // namespace
