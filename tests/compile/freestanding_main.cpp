// A freestanding program on sluice's core, linked with -nostdlib for
// Cortex-M4 and AArch64. It defines the port contract with trivial
// single-core stand-ins (a spinning wait, a counting clock) and the few
// runtime symbols the compiler may call, and exercises the core types.
#include <cstddef>
#include <cstdint>
#include <utility>

#include <sluice/channel.hpp>
#include <sluice/detail/waiter_list.hpp>
#include <sluice/detail/worker_port.hpp>
#include <sluice/executor.hpp>
#include <sluice/frame_pool.hpp>
#include <sluice/packet_buffer.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>
#include <sluice/waker.hpp>

namespace {

std::uint64_t ticks = 0;
sluice::parker core_parker;  // static: never freed, no on_last_release

}  // namespace

namespace sluice::port {

wait_status wait_until(const detail::atomic<std::uint32_t>& word, std::uint32_t expected,
                       time_point deadline) noexcept {
  while (word.load(std::memory_order_acquire) == expected) {
    if (now() >= deadline) return wait_status::timed_out;
  }
  return wait_status::woken;
}
void notify_one(const detail::atomic<std::uint32_t>&) noexcept {}
void notify_all(const detail::atomic<std::uint32_t>&) noexcept {}
time_point now() noexcept {
  return time_point{++ticks};
}
critical_state enter_critical() noexcept {
  return critical_state{0};
}
void leave_critical(critical_state) noexcept {}
bool may_block() noexcept {
  return true;
}
[[noreturn]] void panic(const char*, const char*, int) noexcept {
  for (;;) {
  }
}
parker& current_parker() noexcept {
  return core_parker;
}

// The executor's part: this program drives it on its one core
// (worker_threads::none), so no worker is ever started.
worker_group* start_workers(unsigned, worker_entry, void*) noexcept {
  return nullptr;
}
void join_workers(worker_group*) noexcept {}
unsigned default_worker_count() noexcept {
  return 1;
}
void*& current_worker() noexcept {
  static constinit void* the_worker = nullptr;
  return the_worker;
}

}  // namespace sluice::port

// The runtime symbols the compiler may call come from
// platform/baremetal/runtime.cpp, linked beside this file.

namespace {

sluice::detail::waiter_list waiters;                         // constant-initialised
constinit sluice::static_channel<std::uint32_t, 3> mailbox;  // .bss, no heap

int run() {
  int failures = 0;
  sluice::detail::waiter w;
  waiters.enqueue(w, sluice::port::current_parker().make_waker());
  waiters.notify_one();
  if (!w.is_notified()) ++failures;
  sluice::port::current_parker().park_until(sluice::port::now() + sluice::duration{10});

  if (!mailbox.try_send(1u)) ++failures;
  if (!mailbox.send(2u)) ++failures;
  if (!mailbox.send_for(3u, sluice::duration{1000})) ++failures;
  if (mailbox.try_send(4u).error() != sluice::send_error::full) ++failures;
  for (std::uint32_t expected = 1; expected <= 3; ++expected) {
    auto r = mailbox.recv();
    if (!r || *r != expected) ++failures;
  }
  mailbox.close();
  if (mailbox.recv().error() != sluice::recv_error::closed) ++failures;
  return failures;
}

}  // namespace

namespace {

std::uint32_t packet_words[32];  // static storage, no heap

// The packet buffer engine (src/packet_buffer.cpp, linked in) on static
// storage: alloc, commit, claim, free.
int run_packet_buffer() {
  sluice::packet_buffer pb({.storage = packet_words, .size_words = 32});
  auto p = pb.try_alloc(3);
  if (!p) return 1;
  p->payload()[0] = 7;
  std::move(*p).commit();
  const sluice::claimed_packet c = pb.try_claim();
  return c && c.payload()[0] == 7 ? 0 : 1;
}

}  // namespace

namespace {

alignas(sluice::frame_pool::block_alignment) std::byte
    frame_storage[sluice::frame_pool::storage_for(256, 8)];
constinit sluice::run_queue_slot run_queue[4];
constinit sluice::static_channel<int, 2> pipe;

sluice::task<int> produce(sluice::frame_pool&, int n) {
  for (int i = 1; i <= n; ++i)
    if (!co_await pipe.send_async(i)) co_return -1;
  co_return n;
}

sluice::task<int> consume(sluice::frame_pool&, int n) {
  int sum = 0;
  for (int i = 0; i < n; ++i) {
    auto r = co_await pipe.recv_async();
    if (!r) co_return -1;
    sum += *r;
  }
  co_return sum;
}

// The executor with no heap: headers and frames from a pool, the run queue
// in static storage; two tasks pass values through a static channel.
int run_executor() {
  sluice::frame_pool pool{frame_storage, sizeof frame_storage, 256};
  sluice::executor ex{{.max_tasks = 4,
                       .pool = &pool,
                       .threads = sluice::worker_threads::none,
                       .run_queue = run_queue}};
  auto c = ex.spawn(consume(pool, 5));
  auto p = ex.spawn(produce(pool, 5));
  if (!c || !p) return 1;
  (void)ex.run_until_idle();
  auto sum = c->join();
  auto sent = p->join();
  return sum && std::move(sum).value() == 15 && sent && std::move(sent).value() == 5 ? 0 : 1;
}

}  // namespace

extern "C" [[noreturn]] void _start() {
  volatile int result = run() + run_packet_buffer() + run_executor();
  (void)result;
  for (;;) {
  }
}
