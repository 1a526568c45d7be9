// The executor: tasks, spawn, join, block_on, sleep_for, and a channel
// between two tasks running on different workers.
#include <chrono>
#include <cstdio>
#include <utility>

#include <sluice/channel.hpp>
#include <sluice/executor.hpp>

using namespace std::chrono_literals;

sluice::task<int> square(int x) {
  co_await sluice::yield();  // let others run
  co_return x* x;
}

sluice::task<int> sum_of_squares(int n) {
  int sum = 0;
  for (int i = 1; i <= n; ++i)
    sum += co_await square(i);  // nested task
  co_return sum;
}

sluice::task<void> produce(sluice::sender<int> tx) {
  for (int i = 1; i <= 5; ++i) {
    co_await sluice::sleep_for(1ms);
    if (!co_await tx.send_async(i)) co_return;  // closed: nobody listens
  }
}  // the last sender goes: the receiver sees `closed` after the values

sluice::task<int> consume(sluice::receiver<int> rx) {
  int total = 0;
  for (;;) {
    sluice::recv_result<int> r = co_await rx.recv_async();
    if (!r) break;  // closed and drained
    total += *r;
  }
  co_return total;
}

int main() {
  sluice::executor ex{{.workers = 2}};

  // block_on: spawn and wait from main.
  const int squares = *sluice::block_on(ex, sum_of_squares(10));

  // spawn / join: two tasks talking over a channel.
  auto [tx, rx] = sluice::channel<int>::bounded(2);
  sluice::spawn_result<int> consumer = ex.spawn(consume(std::move(rx)));
  sluice::spawn_result<void> producer = ex.spawn(produce(std::move(tx)));
  if (!consumer || !producer) return 1;
  producer->detach();
  const int total = *consumer->join();

  // cancel: a long sleeper is cancelled at its suspension point.
  auto sleeper = ex.spawn([]() -> sluice::task<int> {
    co_await sluice::sleep_for(1h);
    co_return 0;
  }());
  if (!sleeper) return 1;
  sleeper->cancel();
  const bool cancelled = !sleeper->join().has_value();

  std::printf("sum of squares %d, channel total %d, sleeper cancelled %s\n", squares, total,
              cancelled ? "yes" : "no");
  return squares == 385 && total == 15 && cancelled ? 0 : 1;
}
