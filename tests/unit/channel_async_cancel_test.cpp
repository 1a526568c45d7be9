// "Ready is final" (sluice/poll.hpp) for the channel's awaitables: a task
// cancelled between a poll that took a value and its resume still receives
// that value (the cancellation takes effect at its next suspension); a task
// destroyed while suspended took nothing, so the value stays in the channel;
// and an awaiter destroyed after it said ready, which only a driver breaking
// the rule can do, is reported instead of emptied silently. Every value is
// accounted for in a delivery_ledger.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sluice/channel.hpp>
#include <sluice/detail/config.hpp>
#include <sluice/executor.hpp>
#include <sluice/join_handle.hpp>
#include <sluice/parker.hpp>
#include <sluice/port.hpp>
#include <sluice/task.hpp>

#include "build_checks.hpp"
#include "delivery_ledger.hpp"
#include "executor_test_support.hpp"
#include "manual_scheduler.hpp"
#include "test_driver.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::channel;
using sluice::receiver;
using sluice::sender;
using sluice::test::cancel_self_after_ready;
using sluice::test::delivery_ledger;
using sluice::test::ledger_value;
using trace_t = std::vector<std::string>;

// Receives until closed; after each value it takes, its task is cancelled
// before it resumes.
sluice::task<void> receive_cancelling_self(receiver<ledger_value>& rx, std::vector<int>& got,
                                           std::mutex& got_lock) {
  for (;;) {
    auto r = co_await cancel_self_after_ready{rx.recv_async()};
    if (!r) co_return;
    const int id = r->take();
    std::lock_guard lock(got_lock);
    got.push_back(id);
  }
}

void send_recorded(sender<ledger_value>& tx, delivery_ledger& ledger, int id) {
  if (tx.try_send(ledger_value(ledger, id))) ledger.sent(id);
}

TEST(ChannelAsyncCancel, CancelBetweenReadyPollAndResumeStillDeliversTheValue) {
  delivery_ledger ledger(4);
  sluice::test::manual_scheduler s;
  std::vector<int> got;
  std::mutex got_lock;
  {
    auto [tx, rx] = channel<ledger_value>::bounded(4);
    auto h = s.spawn(receive_cancelling_self(rx, got, got_lock), "rx");
    ASSERT_TRUE(s.run_one());  // suspends: the channel is empty
    EXPECT_FALSE(h.is_finished());
    send_recorded(tx, ledger, 0);  // wakes it
    send_recorded(tx, ledger, 1);
    // The hook pops 0 and cancels the task; the coroutine is resumed anyway,
    // takes 0, then 1 (there already: no suspension), and is cancelled when
    // it next suspends on the empty channel.
    s.run_until_idle();
    ASSERT_TRUE(h.is_finished());
    EXPECT_EQ(h.join().error(), sluice::join_error::cancelled);
    EXPECT_EQ(got, (std::vector<int>{0, 1}));
    EXPECT_EQ(s.trace, (trace_t{"push rx", "run rx", "push rx", "run rx", "complete rx"}));
    send_recorded(tx, ledger, 2);
    send_recorded(tx, ledger, 3);
    auto r = rx.try_recv();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->take(), 2);
    ledger.begin_drop();  // 3 is still inside: the channel destroys it
  }
  EXPECT_EQ(ledger.check(), "");
  EXPECT_EQ(ledger.total_sent(), 4);
  EXPECT_EQ(ledger.total_received(), 3);
  EXPECT_EQ(ledger.total_dropped(), 1);
}

TEST(ChannelAsyncCancel, ReceiversCancelledAfterEachValueOnTwoWorkersLoseNothing) {
  constexpr int values = 200 / sluice::test::sanitizer_scale;
  sluice::test::abort_watchdog dog(60s, "receivers cancelled after each value");
  delivery_ledger ledger(values);
  std::vector<int> got;
  std::mutex got_lock;
  {
    auto [tx, rx] = channel<ledger_value>::bounded(8);
    std::vector<sluice::join_handle<void>> handles;
    {
      sluice::executor ex{{.workers = 2}};
      // One new receiver per value, and each receiver that takes a value
      // dies at its next suspension: so a receiver that has taken nothing
      // is always left for the next value, and every value is received.
      for (int id = 0; id < values; ++id) {
        auto h = ex.spawn(receive_cancelling_self(rx, got, got_lock));
        ASSERT_TRUE(h.has_value());
        handles.push_back(std::move(h).value());
        ASSERT_TRUE(tx.send(ledger_value(ledger, id)));
        ledger.sent(id);
      }
      for (;;) {
        {
          std::lock_guard lock(got_lock);
          if (got.size() == static_cast<std::size_t>(values)) break;
        }
        std::this_thread::sleep_for(1ms);  // the watchdog ends a hang
      }
      ex.shutdown();  // cancels the receivers still waiting
    }
    for (auto& h : handles)
      EXPECT_EQ(h.join().error(), sluice::join_error::cancelled);
    ledger.begin_drop();
  }
  EXPECT_EQ(ledger.check(), "");
  EXPECT_EQ(ledger.total_received(), values);
  EXPECT_EQ(ledger.total_dropped(), 0);
}

sluice::test::task<int> receive_one(receiver<ledger_value>& rx) {
  auto r = co_await rx.recv_async();
  co_return r ? r->take() : -1;
}

TEST(ChannelAsyncCancel, TaskDestroyedAfterItsWakeBeforeItsPollLeavesTheValueInTheChannel) {
  delivery_ledger ledger(1);
  {
    auto [tx, rx] = channel<ledger_value>::bounded(2);
    {
      auto t = receive_one(rx);
      ASSERT_TRUE(t.step());  // suspended on the empty channel
      send_recorded(tx, ledger, 0);
      EXPECT_EQ(t.wake_count(), 1u);
    }  // destroyed woken but never polled: it took nothing
    auto r = rx.try_recv();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->take(), 0);
  }
  EXPECT_EQ(ledger.check(), "");
  EXPECT_EQ(ledger.total_received(), 1);
}

// A driver that breaks the rule: polls, gets ready, and destroys the awaiter
// instead of resuming. The value must not vanish without a word.
class ChannelAsyncCancelDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_ONLY_WITH_DEBUG_CHECKS("the check is an assertion: debug builds only");
  }
};

// Polls once, expects ready, then destroys the awaiter holding 5.
void recv_ready_then_destroy() {
  auto [tx, rx] = channel<int>::bounded(1);
  (void)tx.try_send(5);
  sluice::waker w = sluice::port::current_parker().make_waker();
  auto awaiter = rx.recv_async();
  if (awaiter.poll(w) != sluice::poll_status::ready) std::abort();
}

// Polls once, expects ready (closed), then destroys the awaiter holding 6,
// which await_resume would have handed back.
void send_ready_then_destroy() {
  auto [tx, rx] = channel<int>::bounded(1);
  rx.close();
  sluice::waker w = sluice::port::current_parker().make_waker();
  auto awaiter = tx.send_async(6);
  if (awaiter.poll(w) != sluice::poll_status::ready) std::abort();
}

TEST_F(ChannelAsyncCancelDeathTest, RecvAwaiterDestroyedAfterAReadyPollIsReported) {
  EXPECT_DEATH(recv_ready_then_destroy(), "destroyed holding a received value");
}

TEST_F(ChannelAsyncCancelDeathTest, SendAwaiterDestroyedAfterAReadyPollIsReported) {
  EXPECT_DEATH(send_ready_then_destroy(), "send awaiter was destroyed after it completed");
}

}  // namespace
