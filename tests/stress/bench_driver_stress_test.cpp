// The benchmark's throughput driver, run against a correct queue and against queues that
// lose or duplicate items: a broken queue must fail the sample, never report a speed.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "../../bench/harness.hpp"
#include "../../bench/mutex_queue.hpp"

namespace {

namespace sb = sluice::bench;

enum class fault { none, lose, duplicate };

// A mutex queue whose consumers lose or duplicate every 97th item when told
// to, starting with the first, so that even a sample that moved only a few
// items (a slow sanitized build on a loaded machine) meets a fault.
template <fault Fault>
struct faulty_queue {
  static constexpr sb::order ordering = sb::order::linearizable;
  sb::mutex_queue<sb::item> q{1024};
  std::atomic<unsigned> pops{0};

  struct producer {
    faulty_queue* self;
    sb::op try_send(sb::item v) { return self->q.try_push(v) ? sb::op::done : sb::op::again; }
    sb::op send(sb::item v) {
      self->q.push(v);
      return sb::op::done;
    }
  };
  struct consumer {
    faulty_queue* self;
    bool repeat = false;
    sb::item last = 0;
    sb::op try_recv(sb::item& v) {
      if (repeat) {
        repeat = false;
        v = last;
        return sb::op::done;
      }
      if (!self->q.try_pop(v)) return sb::op::again;
      return deliver(v);
    }
    sb::op recv(sb::item& v) {
      if (repeat) {
        repeat = false;
        v = last;
        return sb::op::done;
      }
      self->q.pop(v);
      return deliver(v);
    }
    sb::op deliver(sb::item& v) {
      // Relaxed: a counter choosing which item to spoil; it orders nothing.
      const bool spoil =
          v != sb::poison && self->pops.fetch_add(1, std::memory_order_relaxed) % 97 == 0;
      if (spoil && Fault == fault::lose) return self->q.try_pop(v) ? sb::op::done : sb::op::again;
      if (spoil && Fault == fault::duplicate) {
        repeat = true;
        last = v;
      }
      return sb::op::done;
    }
  };
  producer make_producer() { return producer{this}; }
  consumer make_consumer() { return consumer{this}; }
};

// Turns a hung sample (a lost poison pill, a lost wake-up) into a failure instead of a hang.
class watchdog {
 public:
  watchdog()
      : thread_([this] {
          std::unique_lock lock(mutex_);
          if (!done_cv_.wait_for(lock, std::chrono::seconds(60), [this] { return done_; })) {
            std::fputs("bench driver test: watchdog fired, a sample never finished\n", stderr);
            std::abort();
          }
        }) {}
  ~watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_one();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

sb::run_params params(const std::vector<int>& cpus) {
  sb::run_params p;
  p.duration = std::chrono::milliseconds(20);
  p.max_items = 20000;
  p.cpus = &cpus;
  return p;
}

template <fault Fault, sb::wait_mode Mode>
sb::sample run(int producers, int consumers) {
  static const std::vector<int> cpus = sb::allowed_cpus();
  const watchdog dog;
  return sb::run_throughput<Mode>(params(cpus), producers, consumers,
                                  [] { return std::make_unique<faulty_queue<Fault>>(); });
}

TEST(BenchDriver, CorrectQueuePasses) {
  for (int n : {1, 2, 4}) {
    const sb::sample spin = run<fault::none, sb::wait_mode::spin>(n, n);
    EXPECT_EQ(spin.error, "") << n;
    EXPECT_GT(spin.value, 0.0);
    const sb::sample block = run<fault::none, sb::wait_mode::block>(n, n);
    EXPECT_EQ(block.error, "") << n;
  }
}

// Spin mode: in block mode a consumer of a queue that lost items can block in
// pop() for an item that never comes, so the sample hangs instead of failing
// (the runner's watchdog reports it, exit 3); that driver defect is open.
TEST(BenchDriver, LosingQueueFails) {
  for (int n : {1, 2}) {
    const sb::sample s = run<fault::lose, sb::wait_mode::spin>(n, n);
    EXPECT_NE(s.error, "") << n;
  }
}

TEST(BenchDriver, DuplicatingQueueFails) {
  for (int n : {1, 2}) {
    const sb::sample s = run<fault::duplicate, sb::wait_mode::spin>(n, n);
    EXPECT_NE(s.error, "") << n;
  }
}

TEST(BenchDriver, PingPongAndUncontendedPassOnACorrectQueue) {
  static const std::vector<int> cpus = sb::allowed_cpus();
  auto make = [] { return std::make_unique<faulty_queue<fault::none>>(); };
  const watchdog dog;
  EXPECT_EQ(sb::run_pingpong<sb::wait_mode::block>(params(cpus), make).error, "");
  EXPECT_EQ(sb::run_uncontended(params(cpus), make).error, "");
}

}  // namespace
