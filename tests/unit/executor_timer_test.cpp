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

task<int> sleeper(std::atomic<bool>& woke) {
  co_await sluice::sleep_for(10ms);
  woke.store(true);
  co_return 1;
}

// Spawns `sleeper` (into this worker's slot), yields so that it runs and
// arms its timer here, then holds this worker without suspending until the
// sleeper ran: only the other worker, parked with no deadline when the timer
// was armed, can fire it. A missed timer is a hang, which the test's
// watchdog turns into a failure.
task<int> arm_then_hold_the_worker(std::atomic<bool>& woke) {
  sluice::executor& ex = co_await sluice::current_executor();
  auto s = ex.spawn(sleeper(woke));
  if (!s) co_return -1;
  co_await sluice::yield();
  while (!woke.load())
    std::this_thread::yield();
  co_return *co_await *s;
}

TEST(ExecutorTimers, AnEarlierTimerWakesAWorkerParkedWithoutADeadline) {
  abort_watchdog dog{60s, "timer armed while the other worker is parked"};
  sluice::executor ex{{.workers = 2}};
  std::this_thread::sleep_for(50ms);  // both workers parked, no timer armed
  std::atomic<bool> woke{false};
  EXPECT_EQ(*sluice::block_on(ex, arm_then_hold_the_worker(woke)), 1);
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

task<int> waits_on_two_losers() {
  auto [index, r] = co_await sluice::when_any(loser(), loser());
  co_return static_cast<int>(index);
}

// A when_any that is cancelled while it waits cancels its children itself:
// they do not run on (or hold their slots) until the executor shuts down.
TEST(ExecutorCombinators, CancellingAWhenAnyCancelsItsChildren) {
  abort_watchdog dog{20s, "cancelled when_any: children left running"};
  losers_done = 0;
  sluice::executor ex{{.workers = 2}};
  auto h = ex.spawn(waits_on_two_losers());
  ASSERT_TRUE(h.has_value());
  // Wait until both children are live (parent + 2), then cancel the parent.
  while (ex.approx_live_tasks() < 3)
    std::this_thread::sleep_for(1ms);
  (void)h->cancel();
  EXPECT_EQ(h->join().error(), sluice::join_error::cancelled);
  // The children were cancelled by the parent's end, not by shutdown: wait
  // (bounded by the watchdog) until both are gone while the executor runs.
  while (losers_done.load() != 2)
    std::this_thread::sleep_for(1ms);
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
