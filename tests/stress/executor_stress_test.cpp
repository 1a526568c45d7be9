// Executor stress: real workers, wakes from several threads and from a
// signal handler, ping-pong over channels, cancellation racing completion,
// shutdown with work in every state. Every task is accounted for exactly
// once (finished or cancelled); a watchdog turns a lost wake-up into a
// failure.
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <sluice/channel.hpp>
#include <sluice/executor.hpp>
#include <sluice/poll.hpp>

#include "executor_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::task;
using sluice::test::abort_watchdog;
using sluice::test::sanitizer_scale;

// Counts live instances: put one in each frame; zero at the end means every
// frame was destroyed, and never twice (the count would go negative).
std::atomic<long> live_probes{0};
struct probe {
  probe() { live_probes.fetch_add(1, std::memory_order_relaxed); }
  probe(const probe&) = delete;
  ~probe() {
    const long before = live_probes.fetch_sub(1, std::memory_order_relaxed);
    if (before <= 0) std::abort();  // destroyed twice
  }
};

// --- wakes from threads and a signal handler ---------------------------------

// One slot per task: tokens given, and the task's waker once registered.
struct slot {
  std::atomic<std::uint32_t> tokens{0};
  std::atomic<bool> registered{false};
  sluice::waker waker;  // written once before `registered`
};

// Awaits one token of a slot.
class token_awaiter : public sluice::pollable_awaiter<token_awaiter> {
 public:
  explicit token_awaiter(slot& s) noexcept : slot_(&s) {}
  bool try_complete() noexcept {
    // seq_cst: pairs with give(): the store-buffering pattern between
    // "registered then check tokens" here and "add token then check
    // registered" there must not lose the wake.
    std::uint32_t n = slot_->tokens.load(std::memory_order_seq_cst);
    while (n > 0) {
      if (slot_->tokens.compare_exchange_weak(n, n - 1, std::memory_order_seq_cst)) return true;
    }
    return false;
  }
  sluice::poll_status poll(const sluice::waker& w) noexcept {
    if (!slot_->registered.load(std::memory_order_relaxed)) {
      slot_->waker = w.clone();
      slot_->registered.store(true, std::memory_order_seq_cst);
    }
    return try_complete() ? sluice::poll_status::ready : sluice::poll_status::pending;
  }
  void await_resume() noexcept {}

 private:
  slot* slot_;
};

// Async-signal-safe: atomics and a task wake.
void give(slot& s) noexcept {
  s.tokens.fetch_add(1, std::memory_order_seq_cst);
  if (s.registered.load(std::memory_order_seq_cst)) s.waker.wake_by_ref();
}

task<void> token_eater(slot& s, int needed, std::atomic<int>& finished) {
  probe p;
  for (int i = 0; i < needed; ++i)
    co_await token_awaiter{s};
  finished.fetch_add(1, std::memory_order_relaxed);
}

std::vector<slot>* signal_slots = nullptr;
std::vector<int>* signal_jobs = nullptr;
std::atomic<std::size_t> signal_next{0};
std::atomic<std::size_t> signal_done{0};

void on_sigusr1(int) {
  const std::size_t i = signal_next.fetch_add(1, std::memory_order_relaxed);
  if (i < signal_jobs->size()) {
    give((*signal_slots)[static_cast<std::size_t>((*signal_jobs)[i])]);
    signal_done.fetch_add(1, std::memory_order_release);
  }
}

// Records the thread of the worker it runs on, then holds that worker until
// `holding` reaches `workers`, so that each of `workers` tasks reports a
// different worker.
task<void> report_worker(std::atomic<pthread_t>& out, std::atomic<int>& holding, int workers) {
  out.store(pthread_self());
  holding.fetch_add(1);
  while (holding.load() < workers)
    sched_yield();
  co_return;
}

// The threads of the two workers of `ex`, for pthread_kill.
void find_two_worker_threads(sluice::executor& ex, std::atomic<pthread_t> (&out)[2]) {
  std::atomic<int> holding{0};
  auto w0 = ex.spawn(report_worker(out[0], holding, 2));
  auto w1 = ex.spawn(report_worker(out[1], holding, 2));
  ASSERT_TRUE(w0.has_value() && w1.has_value());
  ASSERT_TRUE(w0->join().has_value());
  ASSERT_TRUE(w1->join().has_value());
}

TEST(ExecutorStress, RandomWakesFromThreadsAndASignalHandler) {
  const int tasks = 2000 / sanitizer_scale;
  const int tokens_each = 5;
  const int waker_threads = 3;
  abort_watchdog dog{120s, "random wakes"};
  std::vector<slot> slots(static_cast<std::size_t>(tasks));
  std::atomic<int> finished{0};
  std::vector<sluice::join_handle<void>> handles;
  {
    sluice::executor ex{{.workers = 2}};
    // The signal handler runs on a waker thread and on both workers (where
    // a wake goes to the interrupted worker's next-task slot).
    std::atomic<pthread_t> worker_threads[2]{};
    find_two_worker_threads(ex, worker_threads);
    if (HasFatalFailure()) return;
    for (int i = 0; i < tasks; ++i) {
      auto h = ex.spawn(token_eater(slots[static_cast<std::size_t>(i)], tokens_each, finished));
      ASSERT_TRUE(h.has_value());
      handles.push_back(std::move(h).value());
    }
    // Every token of every task, shuffled and split: one share per waker
    // thread and one for the signal handler.
    std::vector<int> jobs;
    for (int i = 0; i < tasks; ++i)
      for (int k = 0; k < tokens_each; ++k)
        jobs.push_back(i);
    std::mt19937 rng{12345};
    std::shuffle(jobs.begin(), jobs.end(), rng);
    const std::size_t share = jobs.size() / (waker_threads + 1);
    std::vector<int> sig_jobs(jobs.end() - static_cast<std::ptrdiff_t>(share), jobs.end());
    jobs.resize(jobs.size() - share);
    signal_slots = &slots;
    signal_jobs = &sig_jobs;
    signal_next = 0;
    signal_done = 0;
    struct sigaction sa {};
    sa.sa_handler = &on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ASSERT_EQ(sigaction(SIGUSR1, &sa, nullptr), 0);

    std::atomic<bool> stop_signals{false};
    std::vector<std::thread> threads;
    std::atomic<pthread_t> target{};
    std::atomic<bool> target_ready{false};
    for (int t = 0; t < waker_threads; ++t) {
      threads.emplace_back([&, t] {
        if (t == 0) {
          target.store(pthread_self());
          target_ready.store(true);
        }
        for (std::size_t j = static_cast<std::size_t>(t); j < jobs.size(); j += waker_threads)
          give(slots[static_cast<std::size_t>(jobs[j])]);
        if (t == 0) {
          // Stay alive (and interruptible) until every signal job ran.
          while (signal_done.load(std::memory_order_acquire) < sig_jobs.size())
            sched_yield();
        }
      });
    }
    // The signaller interrupts waker thread 0 in the middle of its wakes,
    // and the workers in the middle of their runs.
    threads.emplace_back([&] {
      while (!target_ready.load())
        sched_yield();
      const pthread_t targets[3] = {target.load(), worker_threads[0].load(),
                                    worker_threads[1].load()};
      for (unsigned k = 0;
           signal_done.load(std::memory_order_acquire) < sig_jobs.size() && !stop_signals.load();
           ++k) {
        pthread_kill(targets[k % 3], SIGUSR1);
        std::this_thread::sleep_for(20us);
      }
    });
    for (auto& h : handles) {
      auto r = h.join();
      EXPECT_TRUE(r.has_value());
    }
    stop_signals = true;
    for (auto& th : threads)
      th.join();
    EXPECT_EQ(finished.load(), tasks);
    EXPECT_EQ(signal_done.load(), sig_jobs.size());
  }
  signal(SIGUSR1, SIG_DFL);
  for (slot& s : slots)
    s.waker.reset();
  EXPECT_EQ(live_probes.load(), 0);
}

// --- last references dropped in a signal handler ------------------------------

// One per task: the task leaves a clone of its waker here and completes, so
// the waker holds its last reference (the handle is detached). Whoever wins
// the slot (filled -> taken) gives the waker up.
struct handoff {
  static constexpr int empty = 0, filled = 1, taken = 2;
  std::atomic<int> state{empty};
  sluice::waker waker;  // written before `filled`, read after `taken`
};

// Never suspends: stores a clone of the task's waker and is ready.
class leave_waker : public sluice::pollable_awaiter<leave_waker> {
 public:
  explicit leave_waker(handoff& h) noexcept : h_(&h) {}
  bool try_complete() noexcept { return false; }
  sluice::poll_status poll(const sluice::waker& w) noexcept {
    h_->waker = w.clone();
    // Release: pairs with the acquire CAS of whoever takes the slot.
    h_->state.store(handoff::filled, std::memory_order_release);
    return sluice::poll_status::ready;
  }
  void await_resume() noexcept {}

 private:
  handoff* h_;
};

std::atomic<long> live_results{0};
struct counted_result {
  counted_result() noexcept { live_results.fetch_add(1, std::memory_order_relaxed); }
  counted_result(counted_result&&) noexcept {
    live_results.fetch_add(1, std::memory_order_relaxed);
  }
  counted_result(const counted_result&) = delete;
  ~counted_result() {
    if (live_results.fetch_sub(1, std::memory_order_relaxed) <= 0) std::abort();  // twice
  }
};

task<counted_result> leaves_its_waker(handoff& h) {
  probe p;
  co_await leave_waker{h};
  co_return counted_result{};
}

// Takes slot i if it is filled and nobody took it; gives its waker up
// (alternately a wake and a drop). Async-signal-safe: atomics, and a waker's
// last release, which only retires the task.
bool take_and_give_up(std::vector<handoff>& slots, std::size_t i) noexcept {
  int expected = handoff::filled;
  // Acquire: pairs with the release store in leave_waker::poll.
  if (!slots[i].state.compare_exchange_strong(expected, handoff::taken, std::memory_order_acquire))
    return false;
  if (i % 2 == 0) {
    std::move(slots[i].waker).wake();
  } else {
    sluice::waker dropped = std::move(slots[i].waker);
  }
  return true;
}

// Every third slot is the handler's; the dropper thread takes the others.
constexpr std::size_t handler_share = 3;
std::vector<handoff>* handler_slots = nullptr;
std::atomic<std::size_t> handler_cursor{0};  // in units of handler_share
std::atomic<long> given_up_in_handler{0};

void on_sigusr2(int) {
  // A few of the handler's slots per signal, in order; the cursor is
  // shared by the handlers on every thread, and the slot's CAS decides.
  for (int k = 0; k < 4; ++k) {
    std::size_t c = handler_cursor.load(std::memory_order_relaxed);
    const std::size_t i = c * handler_share;
    if (i >= handler_slots->size()) return;
    // Relaxed: a look; take_and_give_up's CAS decides.
    if ((*handler_slots)[i].state.load(std::memory_order_relaxed) == handoff::empty) return;
    if (take_and_give_up(*handler_slots, i))
      given_up_in_handler.fetch_add(1, std::memory_order_relaxed);
    handler_cursor.compare_exchange_strong(c, c + 1, std::memory_order_relaxed);
  }
}

// Tasks complete on two workers (which destroy retired tasks at each
// completion) while a signal handler, on the workers and on a dropper
// thread, gives up a third of the tasks' last references and the dropper
// thread the rest. Every result is destroyed exactly once, none is left.
TEST(ExecutorStress, LastReferencesDroppedInASignalHandlerWhileWorkersComplete) {
  constexpr int tasks = 20000 / sanitizer_scale;
  abort_watchdog dog{120s, "last references in a handler"};
  std::vector<handoff> slots(static_cast<std::size_t>(tasks));
  live_results = 0;
  given_up_in_handler = 0;
  handler_cursor = 0;
  handler_slots = &slots;
  struct sigaction sa {};
  sa.sa_handler = &on_sigusr2;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ASSERT_EQ(sigaction(SIGUSR2, &sa, nullptr), 0);
  long given_up_by_thread = 0;
  {
    // Room for every task at once: while the signals and the other threads
    // keep the workers off the CPU, the spawning thread can get far ahead
    // of them, and a refusal (too_many_tasks) would leave a slot unfilled.
    static_assert(tasks <= (1 << 15));
    sluice::executor ex{{.workers = 2, .max_tasks = 1u << 15}};
    std::atomic<pthread_t> worker_threads[2]{};
    find_two_worker_threads(ex, worker_threads);
    if (HasFatalFailure()) return;
    std::atomic<bool> dropper_ready{false};
    std::atomic<pthread_t> dropper_thread{};
    std::atomic<bool> done{false};
    // Walks every slot until each is taken, by it or by a handler.
    std::thread dropper([&] {
      dropper_thread.store(pthread_self());
      dropper_ready.store(true);
      for (std::size_t i = 0; i < slots.size(); ++i) {
        if (i % handler_share == 0) continue;
        while (!take_and_give_up(slots, i))
          sched_yield();  // not filled yet
        ++given_up_by_thread;
      }
      // Then the handler's share, which the signals keep taking.
      for (std::size_t i = 0; i < slots.size(); i += handler_share) {
        // Acquire: pairs with the handler's CAS.
        while (slots[i].state.load(std::memory_order_acquire) != handoff::taken)
          sched_yield();
      }
      done.store(true);
    });
    std::thread signaller([&] {
      while (!dropper_ready.load())
        sched_yield();
      const pthread_t targets[3] = {dropper_thread.load(), worker_threads[0].load(),
                                    worker_threads[1].load()};
      for (unsigned k = 0; !done.load(); ++k) {
        pthread_kill(targets[k % 3], SIGUSR2);
        std::this_thread::sleep_for(20us);
      }
    });
    for (std::size_t i = 0; i < slots.size(); ++i) {
      auto h = ex.spawn(leaves_its_waker(slots[i]));
      if (!h) {
        // The dropper would wait for this slot forever, and the threads
        // cannot be left running: stop here with the reason.
        std::fprintf(stderr, "last references: spawn %zu of %d refused (%s)\n", i, tasks,
                     to_string(h.error()));
        std::abort();
      }
      h->detach();
    }
    dropper.join();
    signaller.join();
    EXPECT_EQ(given_up_in_handler.load(), (tasks + 2) / 3);
    EXPECT_EQ(given_up_by_thread + given_up_in_handler.load(), tasks)
        << "each last reference given up exactly once";
  }
  signal(SIGUSR2, SIG_DFL);
  EXPECT_EQ(live_results.load(), 0) << "a retired task was not destroyed";
  EXPECT_EQ(live_probes.load(), 0);
  std::printf("last references: %ld given up in a handler, %ld by a thread\n",
              given_up_in_handler.load(), given_up_by_thread);
}

// --- ping-pong chains over channels across workers -----------------------------

task<long> pinger(sluice::sender<int> out, sluice::receiver<int> in, int rounds) {
  probe p;
  long sum = 0;
  for (int i = 0; i < rounds; ++i) {
    auto s = co_await out.send_async(i);
    if (!s) co_return -1;
    auto r = co_await in.recv_async();
    if (!r) co_return -1;
    sum += *r;
  }
  co_return sum;
}

task<long> ponger(sluice::receiver<int> in, sluice::sender<int> out, int rounds) {
  probe p;
  for (int i = 0; i < rounds; ++i) {
    auto r = co_await in.recv_async();
    if (!r) co_return -1;
    auto s = co_await out.send_async(*r + 1);
    if (!s) co_return -1;
  }
  co_return 0;
}

TEST(ExecutorStress, PingPongChainsOverChannels) {
  const int pairs = 200 / sanitizer_scale;
  const int rounds = 200 / sanitizer_scale;
  abort_watchdog dog{120s, "ping-pong"};
  sluice::executor ex{{.workers = 3}};
  std::vector<sluice::join_handle<long>> pings;
  std::vector<sluice::join_handle<long>> pongs;
  for (int p = 0; p < pairs; ++p) {
    auto [tx1, rx1] = sluice::channel<int>::bounded(1);
    auto [tx2, rx2] = sluice::channel<int>::bounded(1);
    auto a = ex.spawn(pinger(tx1, rx2, rounds));
    auto b = ex.spawn(ponger(rx1, tx2, rounds));
    ASSERT_TRUE(a.has_value() && b.has_value());
    pings.push_back(std::move(a).value());
    pongs.push_back(std::move(b).value());
  }
  const long expect = static_cast<long>(rounds) * (rounds + 1) / 2;  // sum of i+1
  for (auto& h : pings)
    EXPECT_EQ(*h.join(), expect);
  for (auto& h : pongs)
    EXPECT_EQ(*h.join(), 0);
  ex.shutdown();
  EXPECT_EQ(live_probes.load(), 0);
}

// --- cancellation racing completion -------------------------------------------

task<int> yields_then_returns(int yields, int value) {
  probe p;
  for (int i = 0; i < yields; ++i)
    co_await sluice::yield();
  co_return value;
}

task<int> sleeps_then_returns(int value) {
  probe p;
  co_await sluice::sleep_for(30s);
  co_return value;
}

// Cancels race with completion on most tasks (a coin decides which are
// cancelled, while the workers run them); every 8th task sleeps for 30 s
// instead and is always cancelled, so that some cancels must take effect.
TEST(ExecutorStress, CancellationRacingCompletion) {
  const int tasks = 4000 / sanitizer_scale;
  abort_watchdog dog{120s, "cancel vs complete"};
  sluice::executor ex{{.workers = 2}};
  std::vector<sluice::join_handle<int>> handles;
  std::mt19937 rng{777};
  auto sleeps = [](int i) { return i % 8 == 7; };
  for (int i = 0; i < tasks; ++i) {
    auto h = ex.spawn(sleeps(i) ? sleeps_then_returns(i)
                                : yields_then_returns(static_cast<int>(rng() % 8), i));
    ASSERT_TRUE(h.has_value());
    handles.push_back(std::move(h).value());
  }
  std::vector<int> cancel_said_yes(static_cast<std::size_t>(tasks), 0);
  std::thread canceller([&] {
    std::mt19937 r{99};
    for (int i = 0; i < tasks; ++i) {
      if (r() % 2 == 0 || sleeps(i))
        cancel_said_yes[static_cast<std::size_t>(i)] =
            handles[static_cast<std::size_t>(i)].cancel();
      if (r() % 16 == 0) std::this_thread::yield();
    }
  });
  canceller.join();
  int finished = 0;
  int cancelled = 0;
  for (int i = 0; i < tasks; ++i) {
    auto r = handles[static_cast<std::size_t>(i)].join();
    if (r.has_value()) {
      EXPECT_EQ(std::move(r).value(), i);
      EXPECT_FALSE(sleeps(i)) << i << ": a sleeping task was not cancelled";
      ++finished;
    } else {
      EXPECT_EQ(r.error(), sluice::join_error::cancelled);
      // Only a cancel that was accepted can end in cancelled.
      EXPECT_TRUE(cancel_said_yes[static_cast<std::size_t>(i)]) << i;
      ++cancelled;
    }
  }
  EXPECT_GE(cancelled, tasks / 8) << "the sleepers' cancels did not take effect";
  EXPECT_GT(finished, 0);
  ex.shutdown();
  EXPECT_EQ(live_probes.load(), 0);
}

// --- shutdown with tasks queued, running, sleeping and waiting -------------------

task<int> sleeper() {
  probe p;
  co_await sluice::sleep_for(30s);
  co_return 1;
}
task<int> channel_waiter(sluice::receiver<int> rx) {
  probe p;
  auto r = co_await rx.recv_async();
  co_return r ? 2 : -2;
}
task<int> spinner(std::atomic<bool>& go_on) {
  probe p;
  while (go_on.load(std::memory_order_relaxed))
    co_await sluice::yield();
  co_return 3;
}

TEST(ExecutorStress, ShutdownWithTasksInEveryState) {
  const int each = 300 / sanitizer_scale;
  abort_watchdog dog{120s, "shutdown"};
  std::atomic<bool> go_on{true};
  auto [tx, rx] = sluice::channel<int>::bounded(4);
  std::vector<sluice::join_handle<int>> handles;
  {
    sluice::executor ex{{.workers = 2}};
    for (int i = 0; i < each; ++i) {
      for (auto t : {0, 1, 2, 3}) {
        auto h = t == 0   ? ex.spawn(sleeper())
                 : t == 1 ? ex.spawn(channel_waiter(rx))
                 : t == 2 ? ex.spawn(spinner(go_on))
                          : ex.spawn(yields_then_returns(1000, 4));
        ASSERT_TRUE(h.has_value());
        handles.push_back(std::move(h).value());
      }
    }
    std::this_thread::sleep_for(5ms);  // let some run, sleep and wait
    ex.shutdown();
    // Every task is complete now: shutdown returned.
    for (auto& h : handles)
      EXPECT_TRUE(h.is_finished());
    auto late = ex.spawn(sleeper());
    EXPECT_FALSE(late.has_value());
  }
  int cancelled = 0;
  for (auto& h : handles) {
    auto r = h.join();
    if (!r.has_value()) ++cancelled;
  }
  // Sleepers, waiters and spinners cannot have finished.
  EXPECT_GE(cancelled, 3 * each);
  EXPECT_EQ(live_probes.load(), 0);
}

// --- shutdown racing detached spawn trees ------------------------------------

using sluice::test::frame_probe;

// Each level spawns three children detached on its worker (credits, no
// lock; each child's first run and completion unshared) and yields on odd
// levels; the leaves wait on a channel nobody sends to, so that shutdown
// finds tasks queued, in their first run, about to suspend for the first
// time, and waiting.
task<int> spawn_tree(int depth, sluice::receiver<int> rx, frame_probe = {}) {
  sluice::executor& ex = co_await sluice::current_executor();
  if (depth == 0) {
    auto r = co_await rx.recv_async();
    co_return r ? 1 : 0;
  }
  for (int i = 0; i < 3; ++i)
    (void)ex.spawn_detached(spawn_tree(depth - 1, rx));  // refused once shut down
  if (depth % 2 == 1) co_await sluice::yield();
  co_return 0;
}

TEST(ExecutorStress, ShutdownRacingDetachedSpawnTrees) {
  const int rounds = 60 / sanitizer_scale;
  abort_watchdog dog{120s, "shutdown racing detached spawn trees"};
  std::minstd_rand rng(20261204);
  for (int round = 0; round < rounds; ++round) {
    auto [tx, rx] = sluice::channel<int>::bounded(1);
    {
      sluice::executor ex{{.workers = 2}};
      ASSERT_TRUE(ex.spawn_detached(spawn_tree(6, rx)));
      // Anywhere from before the first run to after every leaf waits.
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
      ex.shutdown();
      EXPECT_EQ(ex.approx_live_tasks(), 0u);
    }
    ASSERT_EQ(frame_probe::live(), 0) << "round " << round;
  }
}

}  // namespace

namespace {

// Counts the workers' parks, so a test knows its own threads are inside
// run_worker (they park there before anything is queued).
class park_counter final : public sluice::executor_trace {
 public:
  void record(sluice::trace_event e, const void*) noexcept override {
    // Relaxed: a counter the test polls; it orders nothing.
    if (e == sluice::trace_event::park) parks.fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic<int> parks{0};
};

task<int> yields_then_ends(int n) {
  for (int i = 0; i < n; ++i)
    co_await sluice::yield();
  co_return n;
}

}  // namespace

// Workers the caller drives (worker_threads::none, run_worker on its own
// threads, as cores do on bare metal) while the executor is destroyed with
// tasks still running: the destructor must return only after every worker
// has left run_worker, or a worker completing the last task touches freed
// memory (ASan reports it). Each round's workers must also all return.
TEST(ExecutorStress, DestroyedWhileCallerDrivenWorkersFinishTheLastTasks) {
  abort_watchdog dog{120s, "destroy with caller-driven workers"};
#if defined(SLUICE_SANITIZED)
  const int rounds = 40;
#else
  const int rounds = 200;
#endif
  for (int round = 0; round < rounds; ++round) {
    park_counter trace;
    auto ex = std::make_unique<sluice::executor>(sluice::executor_config{
        .max_tasks = 64, .threads = sluice::worker_threads::none, .trace = &trace});
    std::vector<std::thread> workers;
    sluice::executor* raw = ex.get();
    for (int w = 0; w < 2; ++w)
      workers.emplace_back([raw] { raw->run_worker(); });
    // Relaxed: see park_counter.
    while (trace.parks.load(std::memory_order_relaxed) < 2)
      std::this_thread::yield();
    for (int t = 0; t < 16; ++t)
      ASSERT_TRUE(ex->spawn(yields_then_ends(t % 4)).has_value());
    ex.reset();  // shutdown: cancels what is left, waits for tasks and workers
    // Each worker returns from run_worker (a hang is the watchdog's). Not
    // checked here: that both have returned by the time reset() does. A
    // driver's last act on the executor is its count's decrement, which
    // shutdown waits for; the return that follows is the caller's and may
    // come later. ASan checks the part that matters: nothing of the
    // executor is touched after it is freed.
    for (std::thread& t : workers)
      t.join();
  }
}
