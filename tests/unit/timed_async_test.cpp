// The timed awaits: a channel's send_async_for / recv_async_for (and
// _until), a packet buffer's alloc_async_for / claim_async_for (and
// _until), on a real executor's timers. A send that times out hands its
// value back; nothing times out before its deadline; a wait that timed out
// leaves its waiter list (a later wake-up reaches the next waiter); the
// operation wins where it completes before the deadline.
#include <sluice/channel.hpp>
#include <sluice/executor.hpp>
#include <sluice/packet_buffer.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <utility>

#include "executor_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::task;
using sluice::test::abort_watchdog;
using sluice::test::noting;
using sluice::test::suspended_before_finished;

// A value that counts the live copies of itself, so that a test sees it
// destroyed once (and neither lost nor doubled).
struct counted {
  static inline std::atomic<int> live{0};
  int id = 0;
  // seq_cst, all: a count the test thread reads after the joins (which
  // order it); nothing else is read through it.
  explicit counted(int i) noexcept : id(i) { live.fetch_add(1); }
  counted(counted&& other) noexcept : id(std::exchange(other.id, -1)) { live.fetch_add(1); }
  counted& operator=(counted&&) = delete;
  ~counted() { live.fetch_sub(1); }
};

struct send_outcome {
  bool ok = false;
  sluice::send_error error{};
  std::unique_ptr<int> back;
  bool waited_to_the_deadline = false;
};

// The tasks below take a flag that they set once suspended in their timed
// await (noting), where the test acts only on a waiting task; else null.
task<send_outcome> send_for(sluice::sender<std::unique_ptr<int>> tx, std::unique_ptr<int> v,
                            sluice::duration d, std::atomic<bool>* suspended = nullptr) {
  const sluice::time_point deadline = sluice::deadline_after(d);
  std::atomic<bool> unwatched{false};
  auto r = co_await noting(tx.send_async_for(std::move(v), d), suspended ? *suspended : unwatched);
  send_outcome out;
  out.waited_to_the_deadline = sluice::port::now() >= deadline;
  out.ok = r.has_value();
  if (!r) {
    out.error = r.error();
    out.back = std::move(r).value_back();
  }
  co_return out;
}

// A channel of one slot that holds the value 1: a send waits for room.
std::pair<sluice::sender<std::unique_ptr<int>>, sluice::receiver<std::unique_ptr<int>>>
full_channel() {
  auto ends = sluice::channel<std::unique_ptr<int>>::bounded(1);
  EXPECT_TRUE(ends.first.try_send(std::make_unique<int>(1)));
  return ends;
}

TEST(TimedAsync, ASendThatTimesOutHandsTheValueBack) {
  abort_watchdog dog{60s, "send_async_for on a full channel"};
  sluice::executor ex{{.workers = 1}};
  auto [tx, rx] = full_channel();
  auto value = std::make_unique<int>(42);
  int* const address = value.get();
  auto out = *sluice::block_on(ex, send_for(tx, std::move(value), 20ms));
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.error, sluice::send_error::timeout);
  ASSERT_NE(out.back, nullptr);
  EXPECT_EQ(out.back.get(), address);  // the very value, not a copy
  EXPECT_EQ(*out.back, 42);
  EXPECT_TRUE(out.waited_to_the_deadline);
  // Nothing of it reached the channel: the one value there is the first.
  auto first = rx.try_recv();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(**first, 1);
  EXPECT_EQ(rx.try_recv().error(), sluice::recv_error::empty);
}

TEST(TimedAsync, ASendThatFindsRoomBeforeItsDeadlineSends) {
  abort_watchdog dog{60s, "send_async_for finding room"};
  sluice::executor ex{{.workers = 1}};
  auto [tx, rx] = full_channel();
  std::atomic<bool> waiting{false};
  auto h = ex.spawn(send_for(tx, std::make_unique<int>(7), 1h, &waiting));
  ASSERT_TRUE(h.has_value());
  ASSERT_TRUE(suspended_before_finished(waiting, *h)) << "the send did not wait";
  auto first = rx.recv();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(**first, 1);
  auto out = *h->join();
  EXPECT_TRUE(out.ok);
  EXPECT_EQ(out.back, nullptr);
  auto second = rx.try_recv();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(**second, 7);
}

TEST(TimedAsync, ASendWaitingWhenTheChannelClosesHandsTheValueBackAsClosed) {
  abort_watchdog dog{60s, "send_async_for on a closing channel"};
  sluice::executor ex{{.workers = 1}};
  auto [tx, rx] = full_channel();
  std::atomic<bool> waiting{false};
  auto h = ex.spawn(send_for(tx, std::make_unique<int>(8), 1h, &waiting));
  ASSERT_TRUE(h.has_value());
  ASSERT_TRUE(suspended_before_finished(waiting, *h)) << "the send did not wait";
  rx = {};  // the last receiver: the channel closes
  auto out = *h->join();
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.error, sluice::send_error::closed);
  ASSERT_NE(out.back, nullptr);
  EXPECT_EQ(*out.back, 8);
  EXPECT_FALSE(out.waited_to_the_deadline);
}

task<int> send_counted_for(sluice::sender<counted> tx, sluice::duration d,
                           std::atomic<bool>& suspended) {
  auto r = co_await noting(tx.send_async_for(counted{5}, d), suspended);
  co_return r.has_value() ? 1 : 0;
}

TEST(TimedAsync, ACancelledTimedSendDestroysItsValueOnce) {
  abort_watchdog dog{60s, "cancelled send_async_for"};
  const int before = counted::live.load();
  {
    sluice::executor ex{{.workers = 1}};
    auto [tx, rx] = sluice::channel<counted>::bounded(1);
    ASSERT_TRUE(tx.try_send(counted{1}));
    std::atomic<bool> waiting{false};
    auto h = ex.spawn(send_counted_for(tx, 1h, waiting));
    ASSERT_TRUE(h.has_value());
    ASSERT_TRUE(suspended_before_finished(waiting, *h)) << "the send did not wait";
    h->cancel();
    EXPECT_EQ(h->join().error(), sluice::join_error::cancelled);
    EXPECT_EQ(counted::live.load(), before + 1);  // only the one in the channel
  }
  EXPECT_EQ(counted::live.load(), before);
}

task<int> recv_for(sluice::receiver<int> rx, sluice::duration d,
                   std::atomic<bool>* suspended = nullptr) {
  const sluice::time_point deadline = sluice::deadline_after(d);
  std::atomic<bool> unwatched{false};
  auto r = co_await noting(rx.recv_async_for(d), suspended ? *suspended : unwatched);
  if (r.has_value()) co_return *r;
  if (r.error() == sluice::recv_error::timeout) co_return sluice::port::now() >= deadline ? -1 : -3;
  co_return -2;  // closed
}

task<int> recv_until(sluice::receiver<int> rx, std::chrono::steady_clock::time_point deadline) {
  auto r = co_await rx.recv_async_until(deadline);
  if (r.has_value()) co_return *r;
  co_return r.error() == sluice::recv_error::timeout ? -1 : -2;
}

TEST(TimedAsync, ARecvTimesOutAtItsDeadlineAndTakesNothing) {
  abort_watchdog dog{60s, "recv_async_for on an empty channel"};
  sluice::executor ex{{.workers = 1}};
  auto [tx, rx] = sluice::channel<int>::bounded(2);
  EXPECT_EQ(*sluice::block_on(ex, recv_for(rx, 20ms)), -1);
  EXPECT_EQ(*sluice::block_on(ex, recv_until(rx, std::chrono::steady_clock::now() + 20ms)), -1);
  ASSERT_TRUE(tx.try_send(3));
  EXPECT_EQ(*sluice::block_on(ex, recv_for(rx, 1h)), 3);
  ASSERT_TRUE(tx.try_send(4));
  EXPECT_EQ(*sluice::block_on(ex, recv_until(rx, std::chrono::steady_clock::now() + 1h)), 4);
  tx.close();
  EXPECT_EQ(*sluice::block_on(ex, recv_for(rx, 1h)), -2);
}

task<int> recv_forever(sluice::receiver<int> rx, std::atomic<bool>& suspended) {
  auto r = co_await noting(rx.recv_async(), suspended);
  co_return r.has_value() ? *r : -2;
}

// A receiver whose wait timed out (on the timer: it is seen waiting first)
// is off the list once its task is done: a receiver that starts after it
// is the one the next value wakes. Had the timed-out one stayed listed, it
// would be ahead, the wake would go to its freed node, and the patient one
// would wait for ever (the watchdog ends the test; a debug build stops
// earlier, at the listed waiter's destruction).
TEST(TimedAsync, AWaitThatTimedOutLeavesTheWakeToTheNextWaiter) {
  abort_watchdog dog{60s, "a wake-up lost to a timed-out receiver"};
  sluice::executor ex{{.workers = 2}};
  auto [tx, rx] = sluice::channel<int>::bounded(2);
  // Long enough for its first poll to come before it, on a loaded machine.
  std::atomic<bool> timed_waits{false};
  auto timed = ex.spawn(recv_for(rx, 500ms, &timed_waits));
  ASSERT_TRUE(timed.has_value());
  ASSERT_TRUE(suspended_before_finished(timed_waits, *timed)) << "the timed receive did not wait";
  EXPECT_EQ(*timed->join(), -1);
  std::atomic<bool> patient_waits{false};
  auto patient = ex.spawn(recv_forever(rx, patient_waits));
  ASSERT_TRUE(patient.has_value());
  ASSERT_TRUE(suspended_before_finished(patient_waits, *patient)) << "the receive did not wait";
  ASSERT_TRUE(tx.try_send(9));
  EXPECT_EQ(*patient->join(), 9);
}

// with_timeout around a recv awaiter moved in by name: the awaiter lives on
// after the timeout, and must have left the list then. The task holds it
// while another receiver, started after the timeout, waits; the one value
// sent must wake that receiver (had the named awaiter stayed listed, ahead
// of it, the wake would go there, and the other would wait for ever: the
// watchdog ends the test).
task<int> named_recv_times_out(sluice::receiver<int> rx, sluice::receiver<int> release,
                               std::atomic<bool>& waits, std::atomic<bool>& timed_out) {
  auto named = rx.recv_async();
  auto r = co_await noting(sluice::with_timeout(20ms, std::move(named)), waits);
  if (r) co_return -2;
  timed_out.store(true);  // seq_cst: a handshake with the test thread
  // `named` lives on until the test lets the task end.
  auto done = co_await release.recv_async();
  co_return done.has_value() ? -1 : -3;
}

TEST(TimedAsync, ANamedAwaiterThatTimedOutLeavesTheListWhileItLivesOn) {
  abort_watchdog dog{60s, "a wake-up lost to a timed-out awaiter that lives on"};
  sluice::executor ex{{.workers = 2}};
  auto [tx, rx] = sluice::channel<int>::bounded(2);
  auto [release_tx, release_rx] = sluice::channel<int>::bounded(1);
  std::atomic<bool> timed_waits{false};
  std::atomic<bool> timed_out{false};
  auto timed = ex.spawn(named_recv_times_out(rx, release_rx, timed_waits, timed_out));
  ASSERT_TRUE(timed.has_value());
  ASSERT_TRUE(suspended_before_finished(timed_waits, *timed)) << "the timed receive did not wait";
  // The other receiver starts after the timeout: the timed one's last poll
  // (at its timeout) would list it again, behind a receiver already there.
  while (!timed_out.load()) {  // seq_cst: the handshake with the task's store
    ASSERT_FALSE(timed->is_finished()) << "the timed receive did not time out";
    std::this_thread::yield();
  }
  std::atomic<bool> patient_waits{false};
  auto patient = ex.spawn(recv_forever(rx, patient_waits));
  ASSERT_TRUE(patient.has_value());
  ASSERT_TRUE(suspended_before_finished(patient_waits, *patient)) << "the receive did not wait";
  ASSERT_TRUE(tx.try_send(9));
  EXPECT_EQ(*patient->join(), 9);
  ASSERT_TRUE(release_tx.try_send(0));
  EXPECT_EQ(*timed->join(), -1);
}

// ---- the packet buffer

struct pb_fixture {
  alignas(64) std::array<std::uint32_t, 64> storage{};
  sluice::packet_buffer pb{{.storage = storage.data(), .size_words = 64}};
};

task<int> alloc_for(sluice::packet_buffer& pb, std::uint32_t words, sluice::duration d,
                    std::atomic<bool>* suspended = nullptr) {
  const sluice::time_point deadline = sluice::deadline_after(d);
  std::atomic<bool> unwatched{false};
  auto a = co_await noting(pb.alloc_async_for(words, d), suspended ? *suspended : unwatched);
  if (!a) {
    if (a.error() == sluice::alloc_error::timeout)
      co_return sluice::port::now() >= deadline ? -1 : -3;
    co_return a.error() == sluice::alloc_error::too_large ? -2 : -4;
  }
  a->payload()[0] = 77;
  co_return std::move(*a).commit() ? 1 : -5;
}

TEST(TimedAsync, AnAllocationTimesOutAtItsDeadlineAndTakesNothing) {
  abort_watchdog dog{60s, "alloc_async_for on a full buffer"};
  sluice::executor ex{{.workers = 1}};
  pb_fixture f;
  {
    auto a = f.pb.try_alloc(64);  // the whole buffer, committed: full
    ASSERT_TRUE(a.has_value());
    ASSERT_TRUE(std::move(*a).commit());
  }
  EXPECT_EQ(*sluice::block_on(ex, alloc_for(f.pb, 8, 20ms)), -1);
  EXPECT_EQ(*sluice::block_on(ex, alloc_for(f.pb, 65, 1h)), -2);  // never fits: at once
  // The buffer holds what it held: the one full-size packet, then nothing.
  {
    auto c = f.pb.try_claim();
    ASSERT_TRUE(c);
    EXPECT_EQ(c.size(), 64u);
  }
  EXPECT_FALSE(f.pb.try_claim());
  EXPECT_EQ(f.pb.counters().committed, 1u);
}

TEST(TimedAsync, AnAllocationThatGetsRoomBeforeItsDeadlineAllocates) {
  abort_watchdog dog{60s, "alloc_async_for woken by a free"};
  sluice::executor ex{{.workers = 1}};
  pb_fixture f;
  {
    auto a = f.pb.try_alloc(64);
    ASSERT_TRUE(a.has_value());
    ASSERT_TRUE(std::move(*a).commit());
  }
  auto c = f.pb.try_claim();
  ASSERT_TRUE(c);
  std::atomic<bool> waiting{false};
  auto h = ex.spawn(alloc_for(f.pb, 8, 1h, &waiting));
  ASSERT_TRUE(h.has_value());
  ASSERT_TRUE(suspended_before_finished(waiting, *h)) << "the allocation did not wait";
  c.reset();  // the free makes room and wakes the allocation
  EXPECT_EQ(*h->join(), 1);
  auto p = f.pb.try_claim();
  ASSERT_TRUE(p);
  EXPECT_EQ(p.size(), 8u);
  EXPECT_EQ(p.words()[1], 77u);
}

task<int> claim_for(sluice::packet_buffer& pb, sluice::duration d,
                    std::atomic<bool>* suspended = nullptr) {
  const sluice::time_point deadline = sluice::deadline_after(d);
  std::atomic<bool> unwatched{false};
  auto c = co_await noting(pb.claim_async_for(d), suspended ? *suspended : unwatched);
  if (!c) co_return sluice::port::now() >= deadline ? -1 : -3;
  co_return static_cast<int>(c.words()[1]);
}

TEST(TimedAsync, AClaimTimesOutAtItsDeadlineOrTakesAPacketCommittedBefore) {
  abort_watchdog dog{60s, "claim_async_for"};
  sluice::executor ex{{.workers = 1}};
  pb_fixture f;
  EXPECT_EQ(*sluice::block_on(ex, claim_for(f.pb, 20ms)), -1);
  std::atomic<bool> waiting{false};
  auto h = ex.spawn(claim_for(f.pb, 1h, &waiting));
  ASSERT_TRUE(h.has_value());
  ASSERT_TRUE(suspended_before_finished(waiting, *h)) << "the claim did not wait";
  {
    auto a = f.pb.try_alloc(4);
    ASSERT_TRUE(a.has_value());
    a->payload()[0] = 55;
    ASSERT_TRUE(std::move(*a).commit());
  }
  EXPECT_EQ(*h->join(), 55);
  EXPECT_FALSE(f.pb.try_claim());
}

}  // namespace
