// The README's channel section, compiled and run.
#include <sluice/channel.hpp>

#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <thread>

// Any task type whose promise follows <sluice/poll.hpp> can co_await the
// channel; the tests' small driver stands in for the executor here.
#include "../tests/support/test_driver.hpp"

using namespace std::chrono_literals;

// A static channel: constant-initialised, in .bss, no heap.
constinit sluice::static_channel<int, 16> events;

sluice::test::task<int> consume(sluice::receiver<std::string>& rx) {
  int n = 0;
  for (;;) {
    auto r = co_await rx.recv_async();  // suspends the task, not the thread
    if (!r) co_return n;                // closed and drained
    ++n;
  }
}

int main() {
  // Bounded: exactly 64 slots. Unbounded: grows in recycled blocks.
  auto [tx, rx] = sluice::channel<std::unique_ptr<int>>::bounded(64);
  auto [log_tx, log_rx] = sluice::channel<std::string>::unbounded();

  // try_: never waits. A failed send hands the value back.
  std::deque<std::unique_ptr<int>> backlog;
  if (auto r = tx.try_send(std::make_unique<int>(1)); !r) {
    if (r.error() == sluice::send_error::full) backlog.push_back(std::move(r).value_back());
  }

  // Blocking and timed forms.
  std::thread producer([tx = tx]() mutable {  // handles are copyable
    for (int i = 2; i <= 100; ++i) {
      if (!tx.send(std::make_unique<int>(i))) return;  // fails only when closed
    }
  });       // the copy is dropped when the thread ends
  tx = {};  // last sender gone => closed for receivers, once drained

  long sum = 0;
  for (std::unique_ptr<int>& v : rx)
    sum += *v;  // blocking, until closed and drained
  producer.join();

  if (auto r = rx.recv_for(10ms); !r) {
    std::printf("then: %s\n", sluice::to_string(r.error()));  // "closed"
  }

  // Static channel: the same operations, plus close().
  (void)events.try_send(7);
  const int first = *events.recv();

  // Awaitable forms.
  auto task = consume(log_rx);
  (void)log_tx.try_send("hello");
  (void)log_tx.send_until("world", std::chrono::steady_clock::now() + 1s);
  log_tx.close();
  const int lines = sluice::test::block_on(std::move(task));

  std::printf("sum %ld, first event %d, %d log lines\n", sum, first, lines);
  return sum == 5050 && first == 7 && lines == 2 ? 0 : 1;
}
