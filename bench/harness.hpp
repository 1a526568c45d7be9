// Shared measuring pieces for the benchmark suites: thread pinning, a start gate, the one
// spin policy every spinning impl uses, and two generic drivers with exact-once accounting
// (throughput with P producers x C consumers, and a two-thread ping-pong) that work with any
// queue adapter of the shape below.
//
// Queue adapter (one per implementation; see bench/suite_channel.cpp for examples):
//
//   struct my_queue {
//     static constexpr order ordering = order::linearizable;  // what FIFO guarantee it keeps
////     struct producer { op try_send(item); op send(item); };  // send only if used in block mode
//     struct consumer { op try_recv(item&); op recv(item&); };
//     producer make_producer();  // one per thread (tokens, handle copies) ...
//     consumer make_consumer();  // ... made on the thread that uses it
//     std::size_t approx_size();  // only when ordering is not order::linearizable
//   };
//
// `op::again` means full/empty (retry), `op::broken` an error that must not happen in a
// benchmark (e.g. a channel reporting closed): the driver stops and reports it.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <sluice/detail/cpu_relax.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "registry.hpp"

namespace sluice::bench {

using item = std::uint64_t;
using clock = std::chrono::steady_clock;

// Items carry their producer and sequence number: (producer + 1) << 40 | (seq + 1). Never 0
// (atomic_queue reserves 0 as its empty marker) and never the poison pill.
inline constexpr int seq_bits = 40;
inline constexpr item seq_mask = (item{1} << seq_bits) - 1;
inline constexpr item poison = ~item{0};

constexpr item make_item(int producer, std::uint64_t seq) noexcept {
  return (static_cast<item>(producer + 1) << seq_bits) | (seq + 1);
}

enum class op { done, again, broken };

// The ordering a queue promises; it decides what the drivers may check.
enum class order {
  linearizable,  // one FIFO order: every item enqueued before the poison pill leaves before it,
                 // and each consumer sees each producer's items in order
  per_producer,  // FIFO per producer only (moodycamel's sub-queues): a poison pill may
                 // overtake other producers' items
  none,          // no FIFO promise under contention (atomic_queue lets a producer a lap
                 // ahead fill a slot before the producer whose turn it is)
};
enum class wait_mode { spin, block };

// The CPUs this process may run on (sched_getaffinity), in ascending order.
inline std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

// Pins the calling thread to cpus[slot % cpus.size()]. Returns false if the kernel refused.
inline bool pin_to_slot(const std::vector<int>& cpus, int slot) {
  if (cpus.empty()) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpus[static_cast<std::size_t>(slot) % cpus.size()], &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

// A zeroed array of words on its own cache lines, as a static buffer
// would be: every buffer in a packet suite gets the same alignment, so
// that none pays split lines that another does not.
class line_aligned_words {
 public:
  explicit line_aligned_words(std::size_t n)
      : words_(new (std::align_val_t{64}) std::uint32_t[n]()) {}
  std::uint32_t* data() const { return words_.get(); }

 private:
  struct release {
    void operator()(std::uint32_t* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<std::uint32_t[], release> words_;
};

// The spin policy for every try-spin impl: a CPU-relax hint per failed attempt, and a
// sched_yield every 128 failures so an oversubscribed run (more threads than cores) still
// lets the thread it waits for run. The same for sluice and every peer.
class spin_wait {
 public:
  void wait() noexcept {
    if (++spins_ < spins_before_yield) {
      sluice::detail::cpu_relax();
    } else {
      spins_ = 0;
      std::this_thread::yield();
    }
  }

 private:
  static constexpr unsigned spins_before_yield = 128;
  unsigned spins_ = 0;
};

// All threads of a sample start together: each arrives and waits; the coordinator opens
// the gate once all have arrived and notes the start time.
class start_gate {
 public:
  void arrive_and_wait() noexcept {
    // Relaxed: the count only tells the coordinator when to open; nothing is published.
    arrived_.fetch_add(1, std::memory_order_relaxed);
    spin_wait w;
    // Acquire, pairs with the release in open() [G1]: the start time is visible after.
    while (!open_.load(std::memory_order_acquire))
      w.wait();
  }
  clock::time_point open(int participants) noexcept {
    // Relaxed: polling a count; threads publish nothing through it.
    while (arrived_.load(std::memory_order_relaxed) < participants)
      std::this_thread::yield();
    start_ = clock::now();
    // Release, pairs with the acquire in arrive_and_wait() [G1]: publishes start_.
    open_.store(true, std::memory_order_release);
    return start_;
  }

 private:
  std::atomic<int> arrived_{0};
  std::atomic<bool> open_{false};
  clock::time_point start_{};
};

template <wait_mode Mode, class Producer>
[[nodiscard]] bool push(Producer& p, item v) {
  if constexpr (Mode == wait_mode::block) {
    return p.send(v) == op::done;
  } else {
    spin_wait w;
    for (;;) {
      const op r = p.try_send(v);
      if (r == op::done) return true;
      if (r == op::broken) return false;
      w.wait();
    }
  }
}

template <wait_mode Mode, class Consumer>
[[nodiscard]] bool pop(Consumer& c, item& v) {
  if constexpr (Mode == wait_mode::block) {
    return c.recv(v) == op::done;
  } else {
    spin_wait w;
    for (;;) {
      const op r = c.try_recv(v);
      if (r == op::done) return true;
      if (r == op::broken) return false;
      w.wait();
    }
  }
}

// Per-consumer record of what it received, per producer; owned by one thread.
struct alignas(64) tally {
  std::vector<std::uint64_t> count, sum, last_seq;
  std::uint64_t foreign = 0;       // items naming no producer of this sample
  std::uint64_t out_of_order = 0;  // a producer's items seen in decreasing order
  clock::time_point finished{};
  std::string error;

  explicit tally(int producers)
      : count(static_cast<std::size_t>(producers)),
        sum(static_cast<std::size_t>(producers)),
        last_seq(static_cast<std::size_t>(producers)) {}

  void add(item v, bool check_order) noexcept {
    const item id = (v >> seq_bits) - 1;
    if (id >= count.size()) {
      ++foreign;
      return;
    }
    const item seq = v & seq_mask;
    if (check_order && seq <= last_seq[id]) ++out_of_order;
    last_seq[id] = seq;
    ++count[id];
    sum[id] += v;
  }
};

inline std::string describe_leftovers(std::uint64_t n) {
  return std::to_string(n) +
         " item(s) were still queued after every consumer got its poison pill (FIFO order "
         "broken: a later item overtook an earlier one)";
}

// Compares what producers sent with what consumers received; returns "" when every item
// was delivered exactly once (count and checksum per producer) and in per-producer order
// where checked, else what went wrong.
inline std::string verify_exact_once(const std::vector<std::uint64_t>& sent,
                                     const std::vector<tally>& received) {
  for (std::size_t p = 0; p < sent.size(); ++p) {
    std::uint64_t count = 0, sum = 0;
    for (const tally& t : received) {
      count += t.count[p];
      sum += t.sum[p];
    }
    // Sum over seq in [0, n) of make_item(p, seq) = n * ((p+1) << 40) + n(n+1)/2, mod 2^64.
    const std::uint64_t n = sent[p];
    const std::uint64_t expected_sum = n * (static_cast<std::uint64_t>(p + 1) << seq_bits) +
                                       (n % 2 == 0 ? n / 2 * (n + 1) : (n + 1) / 2 * n);
    if (count != n) {
      return "producer " + std::to_string(p) + " sent " + std::to_string(n) + " items but " +
             std::to_string(count) + " were received (" +
             (count < n ? std::to_string(n - count) + " lost)"
                        : std::to_string(count - n) + " duplicated)");
    }
    if (sum != expected_sum) {
      return "producer " + std::to_string(p) + ": received " + std::to_string(count) +
             " items but their checksum is wrong (duplicates hiding losses or corrupted values)";
    }
  }
  for (const tally& t : received) {
    if (t.foreign != 0) {
      return std::to_string(t.foreign) + " received item(s) named no producer (corrupted values)";
    }
    if (t.out_of_order != 0) {
      return std::to_string(t.out_of_order) +
             " item(s) arrived before an earlier item of the same producer (per-producer order "
             "broken)";
    }
  }
  return {};
}

// Throughput: `producers` threads send numbered items for about params.duration (or until
// params.max_items), `consumers` threads receive until each gets a poison pill, sent once
// all producers have stopped. Returns items per second over [gate open, last consumer done].
template <wait_mode Mode, class MakeQueue>
sample run_throughput(const run_params& params, int producers, int consumers, MakeQueue make) {
  auto q = make();
  using queue = typename decltype(q)::element_type;
  constexpr order ordering = queue::ordering;
  const std::vector<int>& cpus = *params.cpus;
  const std::uint64_t cap =
      std::max<std::uint64_t>(1, params.max_items / static_cast<std::uint64_t>(producers));

  std::atomic<bool> stop{false};
  std::atomic<int> producers_done{0};
  std::atomic<int> consumers_done{0};
  start_gate gate;
  struct alignas(64) producer_result {
    std::uint64_t sent = 0;
    std::string error;
  };
  std::vector<producer_result> sent(static_cast<std::size_t>(producers));
  std::vector<tally> got(static_cast<std::size_t>(consumers), tally(producers));

  std::vector<std::thread> threads;
  for (int i = 0; i < producers; ++i) {
    threads.emplace_back([&, i] {
      pin_to_slot(cpus, 2 * i);
      auto tx = q->make_producer();
      producer_result& r = sent[static_cast<std::size_t>(i)];
      gate.arrive_and_wait();
      std::uint64_t seq = 0;
      // Relaxed: stop is a hint to finish; the items themselves travel through the queue.
      // Looked at every 256 items, and not before the first 256: a producer that starts
      // after the duration ran out (a loaded machine) still moves some, so that a sample
      // is never of nothing.
      for (; seq < cap && (seq == 0 || (seq & 255) != 0 || !stop.load(std::memory_order_relaxed));
           ++seq) {
        if (!push<Mode>(tx, make_item(i, seq))) {
          r.error = "producer " + std::to_string(i) + ": send failed";
          break;
        }
      }
      r.sent = seq;
      // Release, pairs with the acquire in the coordinator's wait [T1]: r.sent is final.
      producers_done.fetch_add(1, std::memory_order_release);
    });
  }
  for (int j = 0; j < consumers; ++j) {
    threads.emplace_back([&, j] {
      pin_to_slot(cpus, 2 * j + 1);
      auto rx = q->make_consumer();
      tally& t = got[static_cast<std::size_t>(j)];
      gate.arrive_and_wait();
      for (;;) {
        item v = 0;
        if (!pop<Mode>(rx, v)) {
          t.error = "consumer " + std::to_string(j) + ": receive failed";
          break;
        }
        if (v == poison) break;
        t.add(v, ordering != order::none);
      }
      t.finished = clock::now();
      consumers_done.fetch_add(1, std::memory_order_relaxed);  // Relaxed: joined before use.
    });
  }

  const clock::time_point start = gate.open(producers + consumers);
  const clock::time_point deadline = start + params.duration;
  // Acquire, pairs with [T1]: stops early when every producer reached the item cap.
  while (clock::now() < deadline && producers_done.load(std::memory_order_acquire) < producers) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Relaxed: producers poll it; the join below is the synchronisation that matters.
  stop.store(true, std::memory_order_relaxed);
  for (int i = 0; i < producers; ++i)
    threads[static_cast<std::size_t>(i)].join();

  std::string error;
  if constexpr (ordering != order::linearizable) {
    // A poison pill may overtake items of other sub-queues: let the consumers drain first,
    // so that the time measured covers every item.
    // Relaxed: a consumer that stopped before its poison pill failed; no data is read here.
    while (q->approx_size() > 0 && consumers_done.load(std::memory_order_relaxed) == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  {
    auto tx = q->make_producer();
    for (int j = 0; j < consumers && error.empty(); ++j) {
      if (!push<Mode>(tx, poison)) error = "sending the poison pill failed";
    }
  }
  for (std::size_t k = static_cast<std::size_t>(producers); k < threads.size(); ++k) {
    threads[k].join();
  }

  // Whatever the consumers left behind (possible only for queues that are not linearizable).
  tally rest(producers);
  std::uint64_t leftovers = 0;
  {
    auto rx = q->make_consumer();
    item v = 0;
    while (rx.try_recv(v) == op::done) {
      if (v != poison) rest.add(v, false), ++leftovers;
    }
  }

  clock::time_point end = start;
  std::vector<std::uint64_t> sent_counts;
  std::uint64_t total = 0;
  for (auto& r : sent) {
    if (error.empty() && !r.error.empty()) error = r.error;
    sent_counts.push_back(r.sent);
    total += r.sent;
  }
  for (auto& t : got) {
    if (error.empty() && !t.error.empty()) error = t.error;
    end = std::max(end, t.finished);
  }
  if (error.empty() && ordering == order::linearizable && leftovers != 0)
    error = describe_leftovers(leftovers);
  got.push_back(std::move(rest));
  if (error.empty()) error = verify_exact_once(sent_counts, got);

  sample s;
  s.error = std::move(error);
  const double seconds = std::chrono::duration<double>(end - start).count();
  s.value = seconds > 0 ? static_cast<double>(total) / seconds : 0.0;
  return s;
}

// Ping-pong: one token bounced between two threads through two queues; returns the mean
// round-trip time in nanoseconds. Every token must come back unchanged, in order, once.
template <wait_mode Mode, class MakeQueue>
sample run_pingpong(const run_params& params, MakeQueue make) {
  auto there = make();
  auto back = make();
  const std::vector<int>& cpus = *params.cpus;
  std::atomic<bool> stop{false};
  start_gate gate;
  std::string ping_error, echo_error;
  std::uint64_t round_trips = 0;
  clock::time_point start{}, end{};

  std::thread echo([&] {
    pin_to_slot(cpus, 1);
    auto rx = there->make_consumer();
    auto tx = back->make_producer();
    gate.arrive_and_wait();
    for (;;) {
      item v = 0;
      if (!pop<Mode>(rx, v)) {
        echo_error = "echo: receive failed";
        break;
      }
      if (v == poison) break;
      if (!push<Mode>(tx, v)) {
        echo_error = "echo: send failed";
        break;
      }
    }
  });
  std::thread ping([&] {
    pin_to_slot(cpus, 0);
    auto tx = there->make_producer();
    auto rx = back->make_consumer();
    gate.arrive_and_wait();
    start = clock::now();
    std::uint64_t n = 0;
    // Relaxed: stop is a hint to finish; the tokens travel through the queues.
    while (n < params.max_items && !stop.load(std::memory_order_relaxed)) {
      const item token = make_item(0, n);
      item v = 0;
      if (!push<Mode>(tx, token)) {
        ping_error = "ping: send failed";
        break;
      }
      if (!pop<Mode>(rx, v)) {
        ping_error = "ping: receive failed";
        break;
      }
      if (v != token) {
        ping_error =
            "ping: sent token " + std::to_string(token) + ", got back " + std::to_string(v);
        break;
      }
      ++n;
    }
    end = clock::now();
    round_trips = n;
    if (ping_error.empty() && !push<Mode>(tx, poison)) ping_error = "ping: poison send failed";
  });

  const clock::time_point opened = gate.open(2);
  std::this_thread::sleep_until(opened + params.duration);
  stop.store(true, std::memory_order_relaxed);  // Relaxed: a hint; joined below.
  ping.join();
  echo.join();

  sample s;
  s.error = !ping_error.empty() ? ping_error : echo_error;
  if (s.error.empty()) {
    item v = 0;
    auto rx1 = there->make_consumer();
    auto rx2 = back->make_consumer();
    if (rx1.try_recv(v) == op::done || rx2.try_recv(v) == op::done) {
      s.error = "an item was left in a queue after the last round trip";
    } else if (round_trips == 0) {
      s.error = "no round trip completed";
    }
  }
  if (round_trips > 0) {
    s.value = std::chrono::duration<double, std::nano>(end - start).count() /
              static_cast<double>(round_trips);
  }
  return s;
}

// Uncontended cost: one thread sends a burst of `burst` items and receives them back, over
// and over; returns nanoseconds per item (one send plus one receive). No other thread
// touches the queue, so this is the cost of the operations themselves.
template <class MakeQueue>
sample run_uncontended(const run_params& params, MakeQueue make, int burst = 32) {
  auto q = make();
  sample s;
  std::thread worker([&] {
    pin_to_slot(*params.cpus, 0);
    auto tx = q->make_producer();
    auto rx = q->make_consumer();
    std::uint64_t seq = 0, done = 0;
    const clock::time_point start = clock::now();
    clock::time_point now = start;
    const clock::time_point deadline = start + params.duration;
    while (now < deadline && seq < params.max_items) {
      for (int k = 0; k < burst; ++k) {
        if (tx.try_send(make_item(0, seq + static_cast<std::uint64_t>(k))) != op::done) {
          s.error = "try_send failed on a queue with room";
          return;
        }
      }
      for (int k = 0; k < burst; ++k) {
        item v = 0;
        if (rx.try_recv(v) != op::done) {
          s.error = "try_recv found nothing although items were queued";
          return;
        }
        if (v != make_item(0, seq + static_cast<std::uint64_t>(k))) {
          s.error = "received item " + std::to_string(v) + ", expected " +
                    std::to_string(make_item(0, seq + static_cast<std::uint64_t>(k)));
          return;
        }
      }
      seq += static_cast<std::uint64_t>(burst);
      done += static_cast<std::uint64_t>(burst);
      now = clock::now();
    }
    item v = 0;
    if (rx.try_recv(v) == op::done) {
      s.error = "an item was left in the queue";
      return;
    }
    s.value =
        std::chrono::duration<double, std::nano>(now - start).count() / static_cast<double>(done);
  });
  worker.join();
  return s;
}

}  // namespace sluice::bench
