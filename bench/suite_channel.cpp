// The channel suite: sluice's bounded, unbounded and static channels against the MPMC queues
// a user would pick instead, in the same run.
//
// Cases
//   bounded_<n>p<n>c    throughput, 64-bit items, capacity 1024, n producers x n consumers
//   unbounded_<n>p<n>c  throughput, 64-bit items, unbounded queues
//   uncontended         one thread sends a burst of 32 items and receives them: the cost of
//                       the operations without contention, ns per item
//   pingpong            round-trip latency: one token bounced between two threads through two
//                       queues (capacity 1024 where bounded)
// Each case measures sluice twice: try-spin (try_send / try_recv in the shared spin loop) and
// blocking (send / recv). Spinning peers are compared with sluice's try-spin reference,
// blocking peers (moodycamel wait_dequeue, tbb push/pop, mutex + condition variable) with
// sluice's blocking reference.
#include <atomic_queue/atomic_queue.h>
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>
#include <oneapi/tbb/concurrent_queue.h>

#include <sluice/channel.hpp>

#include <boost/lockfree/queue.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "mutex_queue.hpp"
#include "registry.hpp"

namespace sluice::bench {
namespace {

constexpr std::size_t capacity = 1024;

// ---- sluice ----

op from(const sluice::send_result<item>& r) {
  if (r) return op::done;
  return r.error() == sluice::send_error::full ? op::again : op::broken;
}

op from(sluice::recv_result<item>&& r, item& out) {
  if (r) {
    out = *r;
    return op::done;
  }
  return r.error() == sluice::recv_error::empty ? op::again : op::broken;
}

// Each thread works through its own copy of the sender / receiver, as users do.
struct sluice_channel {
  static constexpr order ordering = order::linearizable;
  sluice::sender<item> tx;
  sluice::receiver<item> rx;

  explicit sluice_channel(std::pair<sluice::sender<item>, sluice::receiver<item>> ends)
      : tx(std::move(ends.first)), rx(std::move(ends.second)) {}

  struct producer {
    sluice::sender<item> tx;
    op try_send(item v) { return from(tx.try_send(v)); }
    op send(item v) { return tx.send(v) ? op::done : op::broken; }
  };
  struct consumer {
    sluice::receiver<item> rx;
    op try_recv(item& v) { return from(rx.try_recv(), v); }
    op recv(item& v) { return from(rx.recv(), v); }
  };
  producer make_producer() { return producer{tx}; }
  consumer make_consumer() { return consumer{rx}; }
};

auto make_sluice_bounded() {
  return std::make_unique<sluice_channel>(sluice::channel<item>::bounded(capacity));
}
auto make_sluice_unbounded() {
  return std::make_unique<sluice_channel>(sluice::channel<item>::unbounded());
}

struct sluice_static {
  static constexpr order ordering = order::linearizable;
  sluice::static_channel<item, capacity> ch;

  struct producer {
    sluice::static_channel<item, capacity>* ch;
    op try_send(item v) { return from(ch->try_send(v)); }
    op send(item v) { return ch->send(v) ? op::done : op::broken; }
  };
  struct consumer {
    sluice::static_channel<item, capacity>* ch;
    op try_recv(item& v) { return from(ch->try_recv(), v); }
    op recv(item& v) { return from(ch->recv(), v); }
  };
  producer make_producer() { return producer{&ch}; }
  consumer make_consumer() { return consumer{&ch}; }
};

auto make_sluice_static() {
  return std::make_unique<sluice_static>();
}

// ---- moodycamel ConcurrentQueue (unbounded; implicit per-thread sub-queues) ----
struct moodycamel_plain {
  // Sub-queues are FIFO per producer but not ordered among themselves.
  static constexpr order ordering = order::per_producer;
  moodycamel::ConcurrentQueue<item> q;

  struct producer {
    moodycamel::ConcurrentQueue<item>* q;
    op try_send(item v) { return q->enqueue(v) ? op::done : op::broken; }
  };
  struct consumer {
    moodycamel::ConcurrentQueue<item>* q;
    op try_recv(item& v) { return q->try_dequeue(v) ? op::done : op::again; }
  };
  producer make_producer() { return producer{&q}; }
  consumer make_consumer() { return consumer{&q}; }
  std::size_t approx_size() const { return q.size_approx(); }
};

// ---- moodycamel ConcurrentQueue with explicit producer and consumer tokens ----
struct moodycamel_tokens {
  static constexpr order ordering = order::per_producer;
  moodycamel::ConcurrentQueue<item> q;

  struct producer {
    moodycamel::ConcurrentQueue<item>* q;
    moodycamel::ProducerToken token;
    explicit producer(moodycamel::ConcurrentQueue<item>* queue) : q(queue), token(*queue) {}
    op try_send(item v) { return q->enqueue(token, v) ? op::done : op::broken; }
  };
  struct consumer {
    moodycamel::ConcurrentQueue<item>* q;
    moodycamel::ConsumerToken token;
    explicit consumer(moodycamel::ConcurrentQueue<item>* queue) : q(queue), token(*queue) {}
    op try_recv(item& v) { return q->try_dequeue(token, v) ? op::done : op::again; }
  };
  producer make_producer() { return producer(&q); }
  consumer make_consumer() { return consumer(&q); }
  std::size_t approx_size() const { return q.size_approx(); }
};

// ---- moodycamel BlockingConcurrentQueue ----
struct moodycamel_blocking {
  static constexpr order ordering = order::per_producer;
  moodycamel::BlockingConcurrentQueue<item> q;

  struct producer {
    moodycamel::BlockingConcurrentQueue<item>* q;
    op try_send(item v) { return q->enqueue(v) ? op::done : op::broken; }
    op send(item v) { return q->enqueue(v) ? op::done : op::broken; }
  };
  struct consumer {
    moodycamel::BlockingConcurrentQueue<item>* q;
    op try_recv(item& v) { return q->try_dequeue(v) ? op::done : op::again; }
    op recv(item& v) {
      q->wait_dequeue(v);
      return op::done;
    }
  };
  producer make_producer() { return producer{&q}; }
  consumer make_consumer() { return consumer{&q}; }
  std::size_t approx_size() const { return q.size_approx(); }
};

// ---- boost::lockfree::queue, fixed capacity 1024 ----
struct boost_lockfree {
  static constexpr order ordering = order::linearizable;
  using queue = boost::lockfree::queue<item, boost::lockfree::capacity<capacity>>;
  queue q;

  struct producer {
    queue* q;
    op try_send(item v) { return q->bounded_push(v) ? op::done : op::again; }
  };
  struct consumer {
    queue* q;
    op try_recv(item& v) { return q->pop(v) ? op::done : op::again; }
  };
  producer make_producer() { return producer{&q}; }
  consumer make_consumer() { return consumer{&q}; }
};

// ---- atomic_queue::AtomicQueue: its fastest MPMC variant for atomic 64-bit elements
// (elements stored in the slots themselves, 0 as the empty marker), capacity 1024 ----
struct atomic_queue_mpmc {
  // A producer a lap ahead can fill a slot before the producer whose turn it is, so even
  // one producer's items may reach one consumer out of order.
  static constexpr order ordering = order::none;
  using queue = atomic_queue::AtomicQueue<item, capacity>;
  queue q;

  struct producer {
    queue* q;
    op try_send(item v) { return q->try_push(std::move(v)) ? op::done : op::again; }
  };
  struct consumer {
    queue* q;
    op try_recv(item& v) { return q->try_pop(v) ? op::done : op::again; }
  };
  producer make_producer() { return producer{&q}; }
  consumer make_consumer() { return consumer{&q}; }
  std::size_t approx_size() const { return q.was_size(); }
};

// ---- tbb::concurrent_bounded_queue, capacity 1024 ----
struct tbb_bounded {
  static constexpr order ordering = order::linearizable;
  tbb::concurrent_bounded_queue<item> q;
  tbb_bounded() { q.set_capacity(capacity); }

  struct producer {
    tbb::concurrent_bounded_queue<item>* q;
    op try_send(item v) { return q->try_push(v) ? op::done : op::again; }
    op send(item v) {
      q->push(v);
      return op::done;
    }
  };
  struct consumer {
    tbb::concurrent_bounded_queue<item>* q;
    op try_recv(item& v) { return q->try_pop(v) ? op::done : op::again; }
    op recv(item& v) {
      q->pop(v);
      return op::done;
    }
  };
  producer make_producer() { return producer{&q}; }
  consumer make_consumer() { return consumer{&q}; }
};

// ---- std::mutex + std::deque + std::condition_variable ----
struct mutex_deque {
  static constexpr order ordering = order::linearizable;
  mutex_queue<item> q;
  explicit mutex_deque(std::size_t cap) : q(cap) {}

  struct producer {
    mutex_queue<item>* q;
    op try_send(item v) { return q->try_push(v) ? op::done : op::again; }
    op send(item v) {
      q->push(v);
      return op::done;
    }
  };
  struct consumer {
    mutex_queue<item>* q;
    op try_recv(item& v) { return q->try_pop(v) ? op::done : op::again; }
    op recv(item& v) {
      q->pop(v);
      return op::done;
    }
  };
  producer make_producer() { return producer{&q}; }
  consumer make_consumer() { return consumer{&q}; }
};

template <class Q>
auto make() {
  return [] { return std::make_unique<Q>(); };
}
auto make_mutex(std::size_t cap) {
  return [cap] { return std::make_unique<mutex_deque>(cap); };
}

// ---- cases ----

constexpr const char* spin = "spin";
constexpr const char* block = "block";

template <wait_mode Mode, class Make>
impl_desc throughput(std::string name, impl_role r, std::string baseline, int n, Make m) {
  return impl_desc{
      .name = std::move(name),
      .role = r,
      .baseline = std::move(baseline),
      .mode = Mode == wait_mode::spin ? spin : block,
      .run = [n, m](const run_params& p) { return run_throughput<Mode>(p, n, n, m); },
  };
}

template <wait_mode Mode, class Make>
impl_desc pingpong(std::string name, impl_role r, std::string baseline, Make m) {
  return impl_desc{
      .name = std::move(name),
      .role = r,
      .baseline = std::move(baseline),
      .mode = Mode == wait_mode::spin ? spin : block,
      .run = [m](const run_params& p) { return run_pingpong<Mode>(p, m); },
  };
}

case_desc throughput_case(const std::string& flavour, int n) {
  const std::string shape = std::to_string(n) + "p" + std::to_string(n) + "c";
  return case_desc{.suite = "channel",
                   .name = flavour + "_" + shape,
                   .producers = n,
                   .consumers = n,
                   .metric = "ops_per_sec",
                   .unit = "ops/s",
                   .direction = better::higher,
                   .impls = {},
                   .derived = {}};
}

constexpr auto S = wait_mode::spin;
constexpr auto B = wait_mode::block;

void build(const suite_options& opt, std::vector<case_desc>& out) {
  const std::size_t unlimited = std::numeric_limits<std::size_t>::max();
  const std::string sb = "sluice_bounded", sbb = "sluice_bounded_blocking";
  const std::string su = "sluice_unbounded", sub = "sluice_unbounded_blocking";

  for (int n : opt.threads) {
    case_desc c = throughput_case("bounded", n);
    c.impls.push_back(throughput<S>(sb, impl_role::reference, "", n, make_sluice_bounded));
    c.impls.push_back(
        throughput<S>("sluice_static", impl_role::variant, sb, n, make_sluice_static));
    c.impls.push_back(
        throughput<S>("boost_lockfree", impl_role::peer, sb, n, make<boost_lockfree>()));
    c.impls.push_back(
        throughput<S>("atomic_queue", impl_role::peer, sb, n, make<atomic_queue_mpmc>()));
    c.impls.push_back(throughput<S>("tbb_bounded", impl_role::peer, sb, n, make<tbb_bounded>()));
    c.impls.push_back(throughput<B>(sbb, impl_role::reference, "", n, make_sluice_bounded));
    c.impls.push_back(
        throughput<B>("tbb_bounded_blocking", impl_role::peer, sbb, n, make<tbb_bounded>()));
    c.impls.push_back(
        throughput<B>("mutex_deque_bounded", impl_role::peer, sbb, n, make_mutex(capacity)));
    out.push_back(std::move(c));
  }

  for (int n : opt.threads) {
    case_desc c = throughput_case("unbounded", n);
    c.impls.push_back(throughput<S>(su, impl_role::reference, "", n, make_sluice_unbounded));
    c.impls.push_back(
        throughput<S>("moodycamel", impl_role::peer, su, n, make<moodycamel_plain>()));
    c.impls.push_back(
        throughput<S>("moodycamel_tokens", impl_role::peer, su, n, make<moodycamel_tokens>()));
    c.impls.push_back(throughput<B>(sub, impl_role::reference, "", n, make_sluice_unbounded));
    c.impls.push_back(
        throughput<B>("moodycamel_blocking", impl_role::peer, sub, n, make<moodycamel_blocking>()));
    c.impls.push_back(
        throughput<B>("mutex_deque_unbounded", impl_role::peer, sub, n, make_mutex(unlimited)));
    out.push_back(std::move(c));
  }

  case_desc u{.suite = "channel",
              .name = "uncontended",
              .producers = 1,
              .consumers = 1,
              .metric = "ns_per_item",
              .unit = "ns",
              .direction = better::lower,
              .impls = {},
              .derived = {}};
  auto alone = [](std::string name, impl_role r, std::string baseline, auto m) {
    return impl_desc{.name = std::move(name),
                     .role = r,
                     .baseline = std::move(baseline),
                     .mode = "try",
                     .run = [m](const run_params& p) { return run_uncontended(p, m); }};
  };
  u.impls.push_back(alone(sb, impl_role::reference, "", make_sluice_bounded));
  u.impls.push_back(alone("sluice_static", impl_role::variant, sb, make_sluice_static));
  u.impls.push_back(alone(su, impl_role::variant, sb, make_sluice_unbounded));
  u.impls.push_back(alone("boost_lockfree", impl_role::peer, sb, make<boost_lockfree>()));
  u.impls.push_back(alone("atomic_queue", impl_role::peer, sb, make<atomic_queue_mpmc>()));
  u.impls.push_back(alone("tbb_bounded", impl_role::peer, sb, make<tbb_bounded>()));
  u.impls.push_back(alone("moodycamel", impl_role::peer, sb, make<moodycamel_plain>()));
  u.impls.push_back(alone("moodycamel_tokens", impl_role::peer, sb, make<moodycamel_tokens>()));
  u.impls.push_back(alone("mutex_deque_bounded", impl_role::peer, sb, make_mutex(capacity)));
  out.push_back(std::move(u));

  case_desc c{.suite = "channel",
              .name = "pingpong",
              .producers = 1,
              .consumers = 1,
              .metric = "rtt_ns",
              .unit = "ns",
              .direction = better::lower,
              .impls = {},
              .derived = {}};
  c.impls.push_back(pingpong<S>(sb, impl_role::reference, "", make_sluice_bounded));
  c.impls.push_back(pingpong<S>(su, impl_role::variant, sb, make_sluice_unbounded));
  c.impls.push_back(pingpong<S>("sluice_static", impl_role::variant, sb, make_sluice_static));
  c.impls.push_back(pingpong<S>("moodycamel", impl_role::peer, sb, make<moodycamel_plain>()));
  c.impls.push_back(
      pingpong<S>("moodycamel_tokens", impl_role::peer, sb, make<moodycamel_tokens>()));
  c.impls.push_back(pingpong<S>("boost_lockfree", impl_role::peer, sb, make<boost_lockfree>()));
  c.impls.push_back(pingpong<S>("atomic_queue", impl_role::peer, sb, make<atomic_queue_mpmc>()));
  c.impls.push_back(pingpong<S>("tbb_bounded", impl_role::peer, sb, make<tbb_bounded>()));
  c.impls.push_back(pingpong<B>(sbb, impl_role::reference, "", make_sluice_bounded));
  c.impls.push_back(pingpong<B>(sub, impl_role::variant, sbb, make_sluice_unbounded));
  c.impls.push_back(
      pingpong<B>("moodycamel_blocking", impl_role::peer, sbb, make<moodycamel_blocking>()));
  c.impls.push_back(pingpong<B>("tbb_bounded_blocking", impl_role::peer, sbb, make<tbb_bounded>()));
  c.impls.push_back(pingpong<B>("mutex_deque_bounded", impl_role::peer, sbb, make_mutex(capacity)));
  out.push_back(std::move(c));
}

const suite_registrar registered{"channel", &build};

}  // namespace
}  // namespace sluice::bench
