// The executor suite: the four classic runtime benchmarks on 2 workers, in
// ns per operation (lower is better).
//
//   spawn_many     one task spawns 100,000 tiny tasks and awaits them all (ns per spawn)
//   yield_many     200 tasks each yield 1,000 times (ns per yield)
//   ping_pong      1,000 pairs of tasks exchange 100 round trips over channels
//                  (ns per round trip)
//   chained_spawn  each task spawns the next and lets it go, depth 1,000; the last
//                  one signals the end (ns per spawn). sluice spawns with
//                  spawn_detached, asio co_spawn with asio::detached: no handle
//   chained_join   each task spawns the next and awaits its result, depth 1,000
//                  (ns per spawn; coroutine runtimes only, since a callback or a
//                  TBB task cannot wait for a child without blocking its thread)
//
// Peers: asio thread_pool(2) with co_spawn coroutines (ping_pong over
// asio::experimental::concurrent_channel), asio thread_pool(2) with plain
// post of callbacks (no ping_pong: callbacks cannot wait on a channel), and
// oneTBB task_group in a 2-thread arena for spawn_many and chained_spawn
// (TBB tasks cannot suspend, so yield_many and ping_pong are not run for it).
// Every sample checks its own result.
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#include <asio.hpp>
#include <asio/experimental/concurrent_channel.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <utility>
#include <vector>

#include <sluice/channel.hpp>
#include <sluice/executor.hpp>

#include "registry.hpp"

namespace sb = sluice::bench;

namespace {

constexpr int spawn_many_n = 100'000;
constexpr int yield_tasks = 200;
constexpr int yields_each = 1'000;
constexpr int ping_pairs = 1'000;
constexpr int ping_rounds = 100;
constexpr int chain_depth = 1'000;
// Chains per sample: 200 makes a chained_spawn sample several milliseconds,
// so that what a runtime pays once per sample (sluice and asio start their
// threads for each sample; TBB's stay up between samples) is spread thin.
constexpr int chain_repeats = 200;

using clock_type = std::chrono::steady_clock;

double ns_per(clock_type::time_point start, std::uint64_t ops) {
  const auto ns = std::chrono::duration<double, std::nano>(clock_type::now() - start).count();
  return ns / static_cast<double>(ops);
}

sb::sample checked(double value, bool ok, const char* what) {
  sb::sample s;
  s.value = value;
  if (!ok) s.error = std::string("wrong result: ") + what;
  return s;
}

sluice::executor_config sluice_config() {
  return {.workers = 2, .max_tasks = 1u << 17};
}

// --- sluice ------------------------------------------------------------------

sluice::task<int> tiny() {
  co_return 1;
}

sluice::task<long> sluice_spawn_many_root() {
  sluice::executor& ex = co_await sluice::current_executor();
  std::vector<sluice::join_handle<int>> hs;
  hs.reserve(spawn_many_n);
  for (int i = 0; i < spawn_many_n; ++i) {
    auto h = ex.spawn(tiny());
    if (!h) co_return -1;
    hs.push_back(std::move(h).value());
  }
  long sum = 0;
  for (auto& h : hs)
    sum += *co_await h;
  co_return sum;
}

sb::sample sluice_spawn_many(const sb::run_params&) {
  sluice::executor ex{sluice_config()};
  const auto t0 = clock_type::now();
  const long sum = *sluice::block_on(ex, sluice_spawn_many_root());
  return checked(ns_per(t0, spawn_many_n), sum == spawn_many_n, "spawn_many sum");
}

sluice::task<int> yielder() {
  for (int i = 0; i < yields_each; ++i)
    co_await sluice::yield();
  co_return 1;
}

sb::sample sluice_yield_many(const sb::run_params&) {
  sluice::executor ex{sluice_config()};
  const auto t0 = clock_type::now();
  std::vector<sluice::join_handle<int>> hs;
  for (int i = 0; i < yield_tasks; ++i)
    hs.push_back(std::move(ex.spawn(yielder())).value());
  int done = 0;
  for (auto& h : hs)
    done += *h.join();
  return checked(ns_per(t0, std::uint64_t{yield_tasks} * yields_each), done == yield_tasks,
                 "yield_many count");
}

sluice::task<long> sluice_pinger(sluice::sender<int> out, sluice::receiver<int> in) {
  long sum = 0;
  for (int i = 0; i < ping_rounds; ++i) {
    if (!co_await out.send_async(i)) co_return -1;
    auto r = co_await in.recv_async();
    if (!r) co_return -1;
    sum += *r;
  }
  co_return sum;
}
sluice::task<long> sluice_ponger(sluice::receiver<int> in, sluice::sender<int> out) {
  for (int i = 0; i < ping_rounds; ++i) {
    auto r = co_await in.recv_async();
    if (!r) co_return -1;
    if (!co_await out.send_async(*r + 1)) co_return -1;
  }
  co_return 0;
}

sb::sample sluice_ping_pong(const sb::run_params&) {
  sluice::executor ex{sluice_config()};
  const auto t0 = clock_type::now();
  std::vector<sluice::join_handle<long>> hs;
  for (int p = 0; p < ping_pairs; ++p) {
    auto [tx1, rx1] = sluice::channel<int>::bounded(1);
    auto [tx2, rx2] = sluice::channel<int>::bounded(1);
    hs.push_back(std::move(ex.spawn(sluice_pinger(tx1, rx2))).value());
    hs.push_back(std::move(ex.spawn(sluice_ponger(std::move(rx1), std::move(tx2)))).value());
  }
  long sum = 0;
  for (auto& h : hs)
    sum += *h.join();
  const long expect = long{ping_pairs} * ping_rounds * (ping_rounds + 1) / 2;
  return checked(ns_per(t0, std::uint64_t{ping_pairs} * ping_rounds), sum == expect,
                 "ping_pong sum");
}

sluice::task<void> sluice_chain_detached(int depth, sluice::sender<int>* done) {
  if (depth == 0) {
    (void)done->try_send(chain_depth);
    co_return;
  }
  sluice::executor& ex = co_await sluice::current_executor();
  if (!ex.spawn_detached(sluice_chain_detached(depth - 1, done))) (void)done->try_send(-1);
}

// The chains run one after another inside the executor, as TBB's run inside
// its arena: the root task waits for each chain's end on a channel. The
// channel outlives the executor (declared first, destroyed last): the last
// task of a chain may still be inside its try_send when the root has
// received and moved on.
sluice::task<bool> sluice_chain_root(sluice::sender<int>& tx, sluice::receiver<int>& rx) {
  sluice::executor& ex = co_await sluice::current_executor();
  bool ok = true;
  for (int r = 0; r < chain_repeats; ++r) {
    ok &= static_cast<bool>(ex.spawn_detached(sluice_chain_detached(chain_depth, &tx)));
    auto got = co_await rx.recv_async();
    ok &= got && *got == chain_depth;
  }
  co_return ok;
}

sb::sample sluice_chained_spawn(const sb::run_params&) {
  auto [tx, rx] = sluice::channel<int>::bounded(1);
  sluice::executor ex{sluice_config()};
  const auto t0 = clock_type::now();
  const bool ok = *sluice::block_on(ex, sluice_chain_root(tx, rx));
  return checked(ns_per(t0, std::uint64_t{chain_depth} * chain_repeats), ok, "chain depth");
}

sluice::task<int> sluice_chain_joined(int depth) {
  if (depth == 0) co_return 0;
  sluice::executor& ex = co_await sluice::current_executor();
  auto h = ex.spawn(sluice_chain_joined(depth - 1));
  if (!h) co_return -1000000;
  co_return 1 + *co_await *h;
}

sb::sample sluice_chained_join(const sb::run_params&) {
  sluice::executor ex{sluice_config()};
  const auto t0 = clock_type::now();
  bool ok = true;
  for (int r = 0; r < chain_repeats; ++r)
    ok &= *sluice::block_on(ex, sluice_chain_joined(chain_depth)) == chain_depth;
  return checked(ns_per(t0, std::uint64_t{chain_depth} * chain_repeats), ok, "chain depth");
}

// --- asio co_spawn ---------------------------------------------------------------

asio::awaitable<void> asio_tiny(std::atomic<int>& left, std::promise<void>& done) {
  if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) done.set_value();
  co_return;
}

sb::sample asio_co_spawn_spawn_many(const sb::run_params&) {
  asio::thread_pool pool(2);
  std::atomic<int> left{spawn_many_n};
  std::promise<void> done;
  const auto t0 = clock_type::now();
  asio::co_spawn(
      pool,
      [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (int i = 0; i < spawn_many_n; ++i)
          asio::co_spawn(ex, asio_tiny(left, done), asio::detached);
      },
      asio::detached);
  done.get_future().wait();
  const double v = ns_per(t0, spawn_many_n);
  pool.join();
  return checked(v, left.load() == 0, "spawn_many count");
}

sb::sample asio_co_spawn_yield_many(const sb::run_params&) {
  asio::thread_pool pool(2);
  std::atomic<int> left{yield_tasks};
  std::promise<void> done;
  const auto t0 = clock_type::now();
  for (int t = 0; t < yield_tasks; ++t) {
    asio::co_spawn(
        pool,
        [&]() -> asio::awaitable<void> {
          auto ex = co_await asio::this_coro::executor;
          for (int i = 0; i < yields_each; ++i)
            co_await asio::post(ex, asio::use_awaitable);
          if (left.fetch_sub(1) == 1) done.set_value();
        },
        asio::detached);
  }
  done.get_future().wait();
  const double v = ns_per(t0, std::uint64_t{yield_tasks} * yields_each);
  pool.join();
  return checked(v, left.load() == 0, "yield_many count");
}

using asio_channel = asio::experimental::concurrent_channel<void(asio::error_code, int)>;

sb::sample asio_co_spawn_ping_pong(const sb::run_params&) {
  asio::thread_pool pool(2);
  std::vector<std::unique_ptr<asio_channel>> chans;
  std::atomic<long> sum{0};
  std::atomic<int> left{ping_pairs};
  std::promise<void> done;
  const auto t0 = clock_type::now();
  for (int p = 0; p < ping_pairs; ++p) {
    chans.push_back(std::make_unique<asio_channel>(pool, 1));
    chans.push_back(std::make_unique<asio_channel>(pool, 1));
    asio_channel& a = *chans[chans.size() - 2];
    asio_channel& b = *chans.back();
    asio::co_spawn(
        pool,
        [&]() -> asio::awaitable<void> {
          long s = 0;
          for (int i = 0; i < ping_rounds; ++i) {
            co_await a.async_send(asio::error_code{}, i, asio::use_awaitable);
            s += co_await b.async_receive(asio::use_awaitable);
          }
          sum.fetch_add(s);
          if (left.fetch_sub(1) == 1) done.set_value();
        },
        asio::detached);
    asio::co_spawn(
        pool,
        [&]() -> asio::awaitable<void> {
          for (int i = 0; i < ping_rounds; ++i) {
            const int v = co_await a.async_receive(asio::use_awaitable);
            co_await b.async_send(asio::error_code{}, v + 1, asio::use_awaitable);
          }
        },
        asio::detached);
  }
  done.get_future().wait();
  const double v = ns_per(t0, std::uint64_t{ping_pairs} * ping_rounds);
  pool.join();
  const long expect = long{ping_pairs} * ping_rounds * (ping_rounds + 1) / 2;
  return checked(v, sum.load() == expect, "ping_pong sum");
}

asio::awaitable<void> asio_chain_detached(int depth, asio_channel* done) {
  if (depth == 0) {
    (void)done->try_send(asio::error_code{}, chain_depth);
    co_return;
  }
  auto ex = co_await asio::this_coro::executor;
  asio::co_spawn(ex, asio_chain_detached(depth - 1, done), asio::detached);
}

// As sluice_chain_root: the chains run one after another inside the pool,
// and the channel outlives the pool's threads (destroyed after join).
asio::awaitable<bool> asio_chain_root(asio_channel& done) {
  auto ex = co_await asio::this_coro::executor;
  bool ok = true;
  for (int r = 0; r < chain_repeats; ++r) {
    asio::co_spawn(ex, asio_chain_detached(chain_depth, &done), asio::detached);
    ok &= co_await done.async_receive(asio::use_awaitable) == chain_depth;
  }
  co_return ok;
}

sb::sample asio_co_spawn_chained_spawn(const sb::run_params&) {
  asio::thread_pool pool(2);
  asio_channel done(pool.get_executor(), 1);
  const auto t0 = clock_type::now();
  const bool ok = asio::co_spawn(pool, asio_chain_root(done), asio::use_future).get();
  const double v = ns_per(t0, std::uint64_t{chain_depth} * chain_repeats);
  pool.join();
  return checked(v, ok, "chain depth");
}

asio::awaitable<int> asio_chain_joined(int depth) {
  if (depth == 0) co_return 0;
  auto ex = co_await asio::this_coro::executor;
  const int below = co_await asio::co_spawn(ex, asio_chain_joined(depth - 1), asio::use_awaitable);
  co_return 1 + below;
}

sb::sample asio_co_spawn_chained_join(const sb::run_params&) {
  asio::thread_pool pool(2);
  const auto t0 = clock_type::now();
  bool ok = true;
  for (int r = 0; r < chain_repeats; ++r) {
    std::future<int> f = asio::co_spawn(pool, asio_chain_joined(chain_depth), asio::use_future);
    ok &= f.get() == chain_depth;
  }
  const double v = ns_per(t0, std::uint64_t{chain_depth} * chain_repeats);
  pool.join();
  return checked(v, ok, "chain depth");
}

// --- asio post (callbacks) -----------------------------------------------------------

sb::sample asio_post_spawn_many(const sb::run_params&) {
  asio::thread_pool pool(2);
  std::atomic<int> left{spawn_many_n};
  std::promise<void> done;
  const auto t0 = clock_type::now();
  asio::post(pool, [&] {
    for (int i = 0; i < spawn_many_n; ++i)
      asio::post(pool, [&] {
        if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) done.set_value();
      });
  });
  done.get_future().wait();
  const double v = ns_per(t0, spawn_many_n);
  pool.join();
  return checked(v, left.load() == 0, "spawn_many count");
}

struct post_yielder {
  asio::thread_pool* pool;
  int remaining;
  std::atomic<int>* left;
  std::promise<void>* done;
  void operator()() {
    if (remaining-- > 0) {
      asio::post(*pool, *this);  // "yield": re-post the rest of the work
      return;
    }
    if (left->fetch_sub(1) == 1) done->set_value();
  }
};

sb::sample asio_post_yield_many(const sb::run_params&) {
  asio::thread_pool pool(2);
  std::atomic<int> left{yield_tasks};
  std::promise<void> done;
  const auto t0 = clock_type::now();
  for (int t = 0; t < yield_tasks; ++t)
    asio::post(pool, post_yielder{&pool, yields_each, &left, &done});
  done.get_future().wait();
  const double v = ns_per(t0, std::uint64_t{yield_tasks} * yields_each);
  pool.join();
  return checked(v, left.load() == 0, "yield_many count");
}

struct post_chain {
  asio::thread_pool* pool;
  int depth;
  std::promise<int>* done;
  void operator()() const {
    if (depth == 0) {
      done->set_value(chain_depth);
      return;
    }
    asio::post(*pool, post_chain{pool, depth - 1, done});
  }
};

sb::sample asio_post_chained_spawn(const sb::run_params&) {
  asio::thread_pool pool(2);
  const auto t0 = clock_type::now();
  bool ok = true;
  for (int r = 0; r < chain_repeats; ++r) {
    std::promise<int> done;
    asio::post(pool, post_chain{&pool, chain_depth, &done});
    ok &= done.get_future().get() == chain_depth;
  }
  const double v = ns_per(t0, std::uint64_t{chain_depth} * chain_repeats);
  pool.join();
  return checked(v, ok, "chain depth");
}

// --- oneTBB task_group -----------------------------------------------------------------

sb::sample tbb_spawn_many(const sb::run_params&) {
  tbb::task_arena arena(2);
  std::atomic<int> count{0};
  const auto t0 = clock_type::now();
  arena.execute([&] {
    tbb::task_group g;
    g.run([&] {
      for (int i = 0; i < spawn_many_n; ++i)
        g.run([&] { count.fetch_add(1, std::memory_order_relaxed); });
    });
    g.wait();
  });
  return checked(ns_per(t0, spawn_many_n), count.load() == spawn_many_n, "spawn_many count");
}

void tbb_chain(tbb::task_group& g, int depth, std::atomic<int>& reached) {
  if (depth == 0) return;
  reached.fetch_add(1, std::memory_order_relaxed);
  g.run([&g, depth, &reached] { tbb_chain(g, depth - 1, reached); });
}

sb::sample tbb_chained_spawn(const sb::run_params&) {
  tbb::task_arena arena(2);
  std::atomic<int> reached{0};
  const auto t0 = clock_type::now();
  arena.execute([&] {
    for (int r = 0; r < chain_repeats; ++r) {
      tbb::task_group g;
      g.run([&] { tbb_chain(g, chain_depth, reached); });
      g.wait();
    }
  });
  return checked(ns_per(t0, std::uint64_t{chain_depth} * chain_repeats),
                 reached.load() == chain_depth * chain_repeats, "chain depth");
}

// --- registration ---------------------------------------------------------------------------

sb::case_desc make_case(const char* name) {
  return sb::case_desc{.suite = "executor",
                       .name = name,
                       .producers = 2,
                       .consumers = 2,
                       .metric = "ns_per_op",
                       .unit = "ns",
                       .direction = sb::better::lower,
                       .impls = {},
                       .derived = {}};
}

sb::impl_desc reference(sb::sample (*run)(const sb::run_params&)) {
  return {.name = "sluice",
          .role = sb::impl_role::reference,
          .baseline = "",
          .mode = "block",
          .run = run};
}
sb::impl_desc peer(const char* name, sb::sample (*run)(const sb::run_params&)) {
  return {
      .name = name, .role = sb::impl_role::peer, .baseline = "sluice", .mode = "block", .run = run};
}

void build(const sb::suite_options&, std::vector<sb::case_desc>& out) {
  sb::case_desc spawn = make_case("spawn_many");
  spawn.impls = {reference(&sluice_spawn_many), peer("asio_co_spawn", &asio_co_spawn_spawn_many),
                 peer("asio_post", &asio_post_spawn_many), peer("tbb_task_group", &tbb_spawn_many)};
  out.push_back(std::move(spawn));
  sb::case_desc yield = make_case("yield_many");
  yield.impls = {reference(&sluice_yield_many), peer("asio_co_spawn", &asio_co_spawn_yield_many),
                 peer("asio_post", &asio_post_yield_many)};
  out.push_back(std::move(yield));
  sb::case_desc ping = make_case("ping_pong");
  ping.impls = {reference(&sluice_ping_pong),
                peer("asio_concurrent_channel", &asio_co_spawn_ping_pong)};
  out.push_back(std::move(ping));
  sb::case_desc chain = make_case("chained_spawn");
  chain.impls = {
      reference(&sluice_chained_spawn), peer("asio_co_spawn", &asio_co_spawn_chained_spawn),
      peer("asio_post", &asio_post_chained_spawn), peer("tbb_task_group", &tbb_chained_spawn)};
  out.push_back(std::move(chain));
  sb::case_desc joined = make_case("chained_join");
  joined.impls = {reference(&sluice_chained_join),
                  peer("asio_co_spawn", &asio_co_spawn_chained_join)};
  out.push_back(std::move(joined));
}

const sb::suite_registrar registered{"executor", &build};

}  // namespace
