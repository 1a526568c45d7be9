// The packet_buffer suite: sluice::packet_buffer against the classic design
// (one spinlock around every operation, bench/spinlock_pbuf.hpp) and, for
// the no-overwrite cases, moodycamel::ConcurrentQueue of fixed-size word
// arrays held to the same capacity.
//
// Cases, for packets of 1, 4, 16 and 64 words, without and with overwrite:
//   cycle_w<W>            one thread: alloc + fill + commit + claim + check + free;
//                         ns per packet, and words/s (W * 1e9 / ns)
//   <P>p1c_w<W>           P producer threads, one consumer; packets/s, and
//                         words/s (W * packets/s). With overwrite the count is
//                         of packets committed; every one is claimed or dropped.
// With overwrite, sluice_threads_only is the same buffer configured with
// buffer_contexts::threads_only (no critical section around its lock).
// In the cycle cases, payload_only does the same fill and check on one
// array, with no buffer at all: the part of every cycle that is payload
// work, which no buffer design can save (shown beside, not a peer); and
// cas_floor is a ring with one compare-and-swap per packet and nothing
// else of a packet buffer: what a multi-producer reservation costs at
// least (shown beside, not a peer); cas_floor_zeroing is the same ring
// zeroing all of a packet's words when it is taken, as a ring of packets
// of any size reserved with an index must (the next lap's headers may
// start on any word).
// Every sample checks its deliveries: counts (claimed + dropped = committed),
// per-producer order and payload words for packets of 3 words or more.
#include <concurrentqueue/concurrentqueue.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sluice/packet_buffer.hpp>

#include "harness.hpp"
#include "registry.hpp"
#include "spinlock_pbuf.hpp"

namespace {

namespace sb = sluice::bench;

constexpr std::uint32_t buffer_words = 4096;

// Payload of packet `seq` from producer `pid`: word 1 = pid, word 2 = seq,
// word i = seq + i after that (word 0 is the buffer's header). The size is
// a constant, and the words from 4 on are written and checked in the same
// 16-byte groups: in the one-thread cycle the check's loads are then
// forwarded from the fill's stores. (Single words stored and loaded back
// as vectors wait until the stores reach the cache: 7 to 15 ns per packet
// of 16 words here, more than the buffers themselves cost.) The payload is
// the harness's cost, the same for every buffer.
typedef std::uint32_t quad __attribute__((vector_size(16)));

inline quad payload_quad(std::uint32_t seq, std::uint32_t i) {
  return quad{seq, seq, seq, seq} + quad{i, i + 1, i + 2, i + 3};
}

template <std::uint32_t N>
inline void fill(std::uint32_t* w, std::uint32_t pid, std::uint32_t seq) {
  static_assert(N < 4 || N % 4 == 0, "the payload is written in groups of 4 words");
  if constexpr (N > 1) w[1] = pid;
  if constexpr (N > 2) w[2] = seq;
  if constexpr (N > 3) w[3] = seq + 3;
  for (std::uint32_t i = 4; i < N; i += 4) {
    const quad v = payload_quad(seq, i);
    __builtin_memcpy(w + i, &v, sizeof v);
  }
}

// Per-consumer check of what arrives.
struct checker {
  std::vector<std::uint32_t> next;
  bool exact;  // no overwrite: every sequence number in turn
  std::uint64_t received = 0;
  std::string error;
  checker(int producers, bool exact_order)
      : next(static_cast<std::size_t>(producers), 0), exact(exact_order) {}
  // Inline in every measuring loop alike; what goes wrong is reported from
  // the cold functions below, so that building the message costs the check
  // nothing (built here, it gave the check a call, six saved registers and
  // a 264-byte frame per packet).
  template <std::uint32_t N>
  [[gnu::always_inline]] void see(const std::uint32_t* w, std::uint32_t n) {
    ++received;
    if (!error.empty()) return;
    if (n != N) return fail_length(n, N);
    if constexpr (N >= 3) {
      const std::uint32_t pid = w[1], seq = w[2];
      if (pid >= next.size()) return fail_producer(pid);
      if (exact ? seq != next[pid] : seq < next[pid]) return fail_order(pid, seq);
      next[pid] = seq + 1;
      // No branch inside: the check is the harness's cost, not the buffer's.
      std::uint32_t damage = N > 3 ? w[3] ^ (seq + 3) : 0;
      quad diff{};
      for (std::uint32_t i = 4; i < N; i += 4) {
        quad v;
        __builtin_memcpy(&v, w + i, sizeof v);
        diff |= v ^ payload_quad(seq, i);
      }
      damage |= diff[0] | diff[1] | diff[2] | diff[3];
      if (damage != 0) fail("payload damaged");
    }
  }
  [[gnu::cold, gnu::noinline]] void fail_length(std::uint32_t n, std::uint32_t sent) {
    fail("a packet of " + std::to_string(n) + " words, sent " + std::to_string(sent));
  }
  [[gnu::cold, gnu::noinline]] void fail_producer(std::uint32_t pid) {
    fail("packet from unknown producer " + std::to_string(pid));
  }
  [[gnu::cold, gnu::noinline]] void fail_order(std::uint32_t pid, std::uint32_t seq) {
    fail("producer " + std::to_string(pid) + ": got seq " + std::to_string(seq) + ", expected " +
         std::to_string(next[pid]));
  }
  [[gnu::cold, gnu::noinline]] void fail(std::string what) { error = std::move(what); }
};

template <sluice::buffer_contexts Contexts>
struct sluice_impl {
  sb::line_aligned_words storage;
  sluice::packet_buffer pb;
  sluice_impl(std::uint32_t words, bool overwrite)
      : storage(words),
        pb({.storage = storage.data(),
            .size_words = words,
            .policy = overwrite ? sluice::overflow_policy::drop_oldest
                                : sluice::overflow_policy::reject_new,
            .contexts = Contexts}) {}
  template <std::uint32_t N>
  [[gnu::always_inline]] bool put(std::uint32_t pid, std::uint32_t seq) {
    auto a = pb.try_alloc(N);
    if (!a) return false;
    fill<N>(a->words(), pid, seq);
    std::move(*a).commit();
    return true;
  }
  template <std::uint32_t N>
  [[gnu::always_inline]] bool take(checker& c) {
    auto p = pb.try_claim();
    if (!p) return false;
    c.see<N>(p.words(), p.size());
    return true;
  }
  std::uint64_t dropped() const { return pb.counters().dropped; }
};

struct spinlock_impl {
  sb::spinlock_pbuf q;
  spinlock_impl(std::uint32_t words, bool overwrite) : q(words, overwrite) {}
  template <std::uint32_t N>
  [[gnu::always_inline]] bool put(std::uint32_t pid, std::uint32_t seq) {
    std::uint32_t* p = q.alloc(N);
    if (p == nullptr) return false;
    fill<N>(p, pid, seq);
    q.commit(p);
    return true;
  }
  template <std::uint32_t N>
  [[gnu::always_inline]] bool take(checker& c) {
    std::uint32_t* p = q.claim();
    if (p == nullptr) return false;
    c.see<N>(p, *p >> 2);
    q.free(p);
    return true;
  }
  std::uint64_t dropped() const { return q.dropped(); }
};

// moodycamel holding W-word arrays, refused beyond the same capacity.
template <std::uint32_t W>
struct moodycamel_impl {
  moodycamel::ConcurrentQueue<std::array<std::uint32_t, W>> q;
  std::size_t capacity;
  moodycamel_impl(std::uint32_t words, bool) : capacity(words / W) {}
  template <std::uint32_t N>
  [[gnu::always_inline]] bool put(std::uint32_t pid, std::uint32_t seq) {
    if (q.size_approx() >= capacity) return false;
    std::array<std::uint32_t, W> a{};
    a[0] = W;
    fill<W>(a.data(), pid, seq);
    return q.enqueue(a);
  }
  template <std::uint32_t N>
  [[gnu::always_inline]] bool take(checker& c) {
    std::array<std::uint32_t, W> a;
    if (!q.try_dequeue(a)) return false;
    c.see<W>(a.data(), W);
    return true;
  }
  std::uint64_t dropped() const { return 0; }
};

// The least a multi-producer ring can pay per cycle, with none of a packet
// buffer's semantics: one compare-and-swap reserves the words (a
// multi-producer reservation is a read-modify-write), a store writes the
// length and a release store commits; the take is an acquire load, two
// stores (marking the header taken, then zeroing it for the next lap) and a
// release store giving the words back. No wrap (the
// packet sizes divide the capacity), no wake-up check, no counters, no
// overwrite. One thread only: a floor to read sluice's cycle against, not
// a peer. ZeroWords: the take zeroes all of the packet's words, not only
// its header (the same release publishing them), the least that a ring of
// packets of any size, reserved with one read-modify-write of an index,
// pays for its free words reading zero: its next lap's headers may start
// on any word, and each is written only after its reservation. (This
// ring's packets tile it, so its header alone would do.)
template <bool ZeroWords>
struct cas_floor_impl {
  // N words zeroed in 16-byte stores, without a loop: GCC 12 makes a
  // memset of a constant 256 bytes `rep stos`, with which the 64-word cycle
  // took 28 ns here rather than 16.
  template <std::uint32_t N>
  [[gnu::always_inline]] static void zero(std::uint32_t* w) {
    if constexpr (N < 4) {
      for (std::uint32_t i = 0; i < N; ++i)
        w[i] = 0;
    } else {
      static_assert(N % 4 == 0, "the payload is zeroed in groups of 4 words");
      zero_quads(w, std::make_integer_sequence<std::uint32_t, N / 4>{});
    }
  }
  template <std::uint32_t... I>
  [[gnu::always_inline]] static void zero_quads(std::uint32_t* w,
                                                std::integer_sequence<std::uint32_t, I...>) {
    const quad z{};
    (__builtin_memcpy(w + 4 * I, &z, sizeof z), ...);
  }
  sb::line_aligned_words words;
  std::uint32_t mask;
  std::atomic<std::uint32_t> wr{0};
  std::atomic<std::uint32_t> rd{0};
  cas_floor_impl(std::uint32_t capacity, bool) : words(capacity), mask(capacity - 1) {}
  std::atomic_ref<std::uint32_t> header(std::uint32_t pos) {
    return std::atomic_ref(words.data()[pos & mask]);
  }
  template <std::uint32_t N>
  [[gnu::always_inline]] bool put(std::uint32_t pid, std::uint32_t seq) {
    static_assert(buffer_words % N == 0, "cas_floor has no wrap: packets must tile the ring");
    // Relaxed: the compare-and-swap validates it.
    std::uint32_t w = wr.load(std::memory_order_relaxed);
    do {
      // Acquire: pairs with take's release of rd (the words are free).
      if (w + N - rd.load(std::memory_order_acquire) > mask + 1) return false;
    } while (!wr.compare_exchange_weak(w, w + N, std::memory_order_relaxed));
    // Relaxed: the reserving producer's own word until the release below.
    header(w).store(N << 2, std::memory_order_relaxed);
    fill<N>(words.data() + (w & mask), pid, seq);
    // Release: pairs with take's acquire load of the header.
    header(w).store((N << 2) | 1, std::memory_order_release);
    return true;
  }
  template <std::uint32_t N>
  [[gnu::always_inline]] bool take(checker& c) {
    // Relaxed: the taking thread's own index (one thread takes).
    const std::uint32_t r = rd.load(std::memory_order_relaxed);
    // Acquire: pairs with put's release store of the header.
    const std::uint32_t v = header(r).load(std::memory_order_acquire);
    if ((v & 1) == 0) return false;
    // Relaxed, both: the taker's word until the release of rd below, which
    // publishes the zero to the producer that reserves these words next.
    header(r).store(v | 2, std::memory_order_relaxed);
    c.see<N>(words.data() + (r & mask), v >> 2);
    if constexpr (ZeroWords) {
      zero<N>(words.data() + (r & mask));  // header and all: no atomic_ref to it lives now
    } else {
      header(r).store(0, std::memory_order_relaxed);
    }
    // Release: pairs with put's acquire load of rd.
    rd.store(r + (v >> 2), std::memory_order_release);
    return true;
  }
  std::uint64_t dropped() const { return 0; }
};

// The cycle's payload work alone: fill and check one array.
struct payload_only_impl {
  sb::line_aligned_words words;
  payload_only_impl(std::uint32_t capacity, bool) : words(capacity) {}
  template <std::uint32_t N>
  [[gnu::always_inline]] bool put(std::uint32_t pid, std::uint32_t seq) {
    words.data()[0] = N << 2;
    fill<N>(words.data(), pid, seq);
    return true;
  }
  template <std::uint32_t N>
  [[gnu::always_inline]] bool take(checker& c) {
    c.see<N>(words.data(), words.data()[0] >> 2);
    return true;
  }
  std::uint64_t dropped() const { return 0; }
};

template <class Impl, std::uint32_t W>
sb::sample run_cycle(const sb::run_params& params, bool overwrite) {
  auto q = std::make_unique<Impl>(buffer_words, overwrite);
  sb::sample s;
  std::thread worker([&] {
    sb::pin_to_slot(*params.cpus, 0);
    checker check(1, true);
    std::uint32_t seq = 0;
    const auto start = sb::clock::now();
    auto now = start;
    const auto deadline = start + params.duration;
    while (now < deadline && seq < params.max_items) {
      for (int k = 0; k < 64; ++k, ++seq) {
        if (!q->template put<W>(0, seq) || !q->template take<W>(check)) {
          s.error = "a cycle failed on an empty buffer";
          return;
        }
      }
      now = sb::clock::now();
    }
    if (!check.error.empty()) s.error = check.error;
    s.value = std::chrono::duration<double, std::nano>(now - start).count() / seq;
  });
  worker.join();
  return s;
}

template <class Impl, std::uint32_t W>
sb::sample run_pc(const sb::run_params& params, int producers, bool overwrite) {
  auto q = std::make_unique<Impl>(buffer_words, overwrite);
  sb::sample s;
  sb::start_gate gate;
  std::atomic<bool> stop{false};
  std::atomic<int> finished{0};
  std::vector<std::uint64_t> sent(static_cast<std::size_t>(producers), 0);
  const std::uint64_t cap = params.max_items / static_cast<std::uint64_t>(producers);
  std::vector<std::thread> threads;
  for (int i = 0; i < producers; ++i) {
    threads.emplace_back([&, i] {
      sb::pin_to_slot(*params.cpus, 1 + i);
      gate.arrive_and_wait();
      std::uint32_t seq = 0;
      sb::spin_wait w;
      // Relaxed: a stop request; the join publishes the counts.
      while (!stop.load(std::memory_order_relaxed) && seq < cap) {
        if (q->template put<W>(static_cast<std::uint32_t>(i), seq)) {
          ++seq;
        } else {
          w.wait();
        }
      }
      sent[static_cast<std::size_t>(i)] = seq;
      finished.fetch_add(1, std::memory_order_release);  // pairs with the consumer's acquire
    });
  }
  checker check(producers, !overwrite);
  sb::clock::time_point end;
  std::thread consumer([&] {
    sb::pin_to_slot(*params.cpus, 0);
    gate.arrive_and_wait();
    sb::spin_wait w;
    for (;;) {
      if (q->template take<W>(check)) continue;
      if (finished.load(std::memory_order_acquire) == producers) {
        while (q->template take<W>(check)) {
        }
        break;
      }
      w.wait();
    }
    end = sb::clock::now();
  });
  const auto start = gate.open(producers + 1);
  std::this_thread::sleep_for(params.duration);
  stop = true;
  for (auto& t : threads)
    t.join();
  consumer.join();
  std::uint64_t total = 0;
  for (auto v : sent)
    total += v;
  if (!check.error.empty()) {
    s.error = check.error;
  } else if (check.received + q->dropped() != total) {
    s.error = "committed " + std::to_string(total) + ", claimed " + std::to_string(check.received) +
              ", dropped " + std::to_string(q->dropped());
  } else if (!overwrite && q->dropped() != 0) {
    s.error = "a packet was dropped without overwrite";
  }
  s.value = static_cast<double>(total) / std::chrono::duration<double>(end - start).count();
  return s;
}

// A cycle case's reference beside sluice (cas_floor, payload_only): no
// buffer a user would pick, shown for what it tells of the cycle's floor.
template <class Impl, std::uint32_t W>
sb::impl_desc cycle_reference(const char* name, bool overwrite) {
  return {.name = name,
          .role = sb::impl_role::variant,
          .baseline = "sluice",
          .mode = "-",
          .run = [=](const sb::run_params& p) { return run_cycle<Impl, W>(p, overwrite); }};
}

template <std::uint32_t W>
void add_cases(const sb::suite_options& opt, std::vector<sb::case_desc>& out, bool overwrite) {
  const std::string suffix = "_w" + std::to_string(W) + (overwrite ? "_overwrite" : "");
  {
    sb::case_desc c{.suite = "packet_buffer",
                    .name = "cycle" + suffix,
                    .producers = 1,
                    .consumers = 1,
                    .metric = "ns_per_packet",
                    .unit = "ns",
                    .direction = sb::better::lower,
                    .impls = {},
                    .derived = {.metric = "words_per_sec", .unit = "words/s", .of = [](double ns) {
                                  return ns > 0 ? W * 1e9 / ns : 0.0;
                                }}};
    c.impls.push_back({.name = "sluice",
                       .role = sb::impl_role::reference,
                       .baseline = "",
                       .mode = "spin",
                       .run = [=](const sb::run_params& p) {
                         return run_cycle<sluice_impl<sluice::buffer_contexts::any>, W>(p,
                                                                                        overwrite);
                       }});
    c.impls.push_back({.name = "spinlock",
                       .role = sb::impl_role::peer,
                       .baseline = "sluice",
                       .mode = "spin",
                       .run = [=](const sb::run_params& p) {
                         return run_cycle<spinlock_impl, W>(p, overwrite);
                       }});
    if (overwrite) {
      c.impls.push_back({.name = "sluice_threads_only",
                         .role = sb::impl_role::variant,
                         .baseline = "sluice",
                         .mode = "spin",
                         .run = [=](const sb::run_params& p) {
                           return run_cycle<sluice_impl<sluice::buffer_contexts::threads_only>, W>(
                               p, overwrite);
                         }});
    }
    if (!overwrite) {
      c.impls.push_back({.name = "moodycamel",
                         .role = sb::impl_role::peer,
                         .baseline = "sluice",
                         .mode = "spin",
                         .run = [=](const sb::run_params& p) {
                           return run_cycle<moodycamel_impl<W>, W>(p, overwrite);
                         }});
    }
    c.impls.push_back(cycle_reference<cas_floor_impl<false>, W>("cas_floor", overwrite));
    c.impls.push_back(cycle_reference<cas_floor_impl<true>, W>("cas_floor_zeroing", overwrite));
    c.impls.push_back(cycle_reference<payload_only_impl, W>("payload_only", overwrite));
    out.push_back(std::move(c));
  }
  for (int n : opt.threads) {
    sb::case_desc c{.suite = "packet_buffer",
                    .name = std::to_string(n) + "p1c" + suffix,
                    .producers = n,
                    .consumers = 1,
                    .metric = "packets_per_sec",
                    .unit = "packets/s",
                    .direction = sb::better::higher,
                    .impls = {},
                    .derived = {.metric = "words_per_sec",
                                .unit = "words/s",
                                .of = [](double packets) { return W * packets; }}};
    c.impls.push_back({.name = "sluice",
                       .role = sb::impl_role::reference,
                       .baseline = "",
                       .mode = "spin",
                       .run = [=](const sb::run_params& p) {
                         return run_pc<sluice_impl<sluice::buffer_contexts::any>, W>(p, n,
                                                                                     overwrite);
                       }});
    c.impls.push_back({.name = "spinlock",
                       .role = sb::impl_role::peer,
                       .baseline = "sluice",
                       .mode = "spin",
                       .run = [=](const sb::run_params& p) {
                         return run_pc<spinlock_impl, W>(p, n, overwrite);
                       }});
    if (overwrite) {
      c.impls.push_back({.name = "sluice_threads_only",
                         .role = sb::impl_role::variant,
                         .baseline = "sluice",
                         .mode = "spin",
                         .run = [=](const sb::run_params& p) {
                           return run_pc<sluice_impl<sluice::buffer_contexts::threads_only>, W>(
                               p, n, overwrite);
                         }});
    }
    if (!overwrite) {
      c.impls.push_back({.name = "moodycamel",
                         .role = sb::impl_role::peer,
                         .baseline = "sluice",
                         .mode = "spin",
                         .run = [=](const sb::run_params& p) {
                           return run_pc<moodycamel_impl<W>, W>(p, n, overwrite);
                         }});
    }
    out.push_back(std::move(c));
  }
}

void build(const sb::suite_options& opt, std::vector<sb::case_desc>& out) {
  for (bool overwrite : {false, true}) {
    add_cases<1>(opt, out, overwrite);
    add_cases<4>(opt, out, overwrite);
    add_cases<16>(opt, out, overwrite);
    add_cases<64>(opt, out, overwrite);
  }
}

const sb::suite_registrar registered{"packet_buffer", &build};

}  // namespace
