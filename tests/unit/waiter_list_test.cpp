#include <sluice/detail/waiter_list.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "executor_test_support.hpp"

namespace sluice::detail {
// Holds a list's lock as another context would while a notifier runs.
struct waiter_list_test_access {
  static void lock(waiter_list& list) noexcept { list.lock(); }
  static void unlock(waiter_list& list) noexcept { list.unlock(); }
};
}  // namespace sluice::detail

namespace {

using holder = sluice::detail::waiter_list_test_access;

struct recorder {
  std::vector<int>* log;
  int id;
  int refs = 1;
  void add_ref() noexcept { ++refs; }
  void release() noexcept { --refs; }
  void wake_by_ref() noexcept { log->push_back(id); }
};

TEST(WaiterList, NotifyWithNobodyWaitingDoesNothing) {
  sluice::detail::waiter_list list;
  list.notify_one();
  list.notify_all();
  EXPECT_FALSE(list.approx_has_waiters());
}

TEST(WaiterList, NotifyOneWakesInArrivalOrder) {
  std::vector<int> log;
  recorder a{&log, 1};
  recorder b{&log, 2};
  recorder c{&log, 3};
  sluice::detail::waiter_list list;
  sluice::detail::waiter wa, wb, wc;
  list.enqueue(wa, sluice::make_waker(a));
  list.enqueue(wb, sluice::make_waker(b));
  list.enqueue(wc, sluice::make_waker(c));
  EXPECT_TRUE(list.approx_has_waiters());
  list.notify_one();
  EXPECT_EQ(log, (std::vector<int>{1}));
  EXPECT_TRUE(wa.is_notified());
  EXPECT_FALSE(wb.is_notified());
  EXPECT_EQ(a.refs, 1);  // the waker's reference was used up by the wake
  list.notify_one();
  list.notify_one();
  EXPECT_EQ(log, (std::vector<int>{1, 2, 3}));
  EXPECT_FALSE(list.approx_has_waiters());
  list.notify_one();  // nobody left
  EXPECT_EQ(log.size(), 3u);
  EXPECT_FALSE(list.cancel(wa));
  EXPECT_FALSE(list.cancel(wb));
  EXPECT_FALSE(list.cancel(wc));
}

TEST(WaiterList, NotifyAllWakesEveryone) {
  std::vector<int> log;
  recorder a{&log, 1};
  recorder b{&log, 2};
  sluice::detail::waiter_list list;
  sluice::detail::waiter wa, wb;
  list.enqueue(wa, sluice::make_waker(a));
  list.enqueue(wb, sluice::make_waker(b));
  list.notify_all();
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
  EXPECT_FALSE(list.cancel(wa));
  EXPECT_FALSE(list.cancel(wb));
}

TEST(WaiterList, CancelRemovesWithoutWaking) {
  std::vector<int> log;
  recorder a{&log, 1};
  recorder b{&log, 2};
  recorder c{&log, 3};
  sluice::detail::waiter_list list;
  sluice::detail::waiter wa, wb, wc;
  list.enqueue(wa, sluice::make_waker(a));
  list.enqueue(wb, sluice::make_waker(b));
  list.enqueue(wc, sluice::make_waker(c));
  EXPECT_TRUE(list.cancel(wb));  // middle
  EXPECT_EQ(b.refs, 1);          // its waker was dropped
  EXPECT_TRUE(list.cancel(wc));  // tail
  list.notify_all();
  EXPECT_EQ(log, (std::vector<int>{1}));
  EXPECT_FALSE(list.cancel(wa));
}

TEST(WaiterList, WaiterCanBeListedAgainAfterNotification) {
  std::vector<int> log;
  recorder a{&log, 1};
  sluice::detail::waiter_list list;
  sluice::detail::waiter w;
  for (int i = 0; i < 3; ++i) {
    list.enqueue(w, sluice::make_waker(a));
    list.notify_one();
    EXPECT_TRUE(w.is_notified());
  }
  EXPECT_EQ(log.size(), 3u);
  EXPECT_FALSE(list.cancel(w));
}

// A wakeable whose references the test keeps alive itself.
struct unreferenced {
  void add_ref() noexcept {}
  void release() noexcept {}
};

// A waker whose wake notifies the same list again: the wake runs after the
// list's lock is released, so the nested notify takes the lock itself and
// wakes the next waiter; it is neither lost nor deadlocked. (A notify that
// finds the lock held is the test after this one.)
struct renotifier : unreferenced {
  sluice::detail::waiter_list* list;
  std::vector<int>* log;
  int id;
  void wake_by_ref() noexcept {
    log->push_back(id);
    list->notify_one();
  }
};

TEST(WaiterList, ANotifyFromInsideAWakeWakesTheNextWaiter) {
  std::vector<int> log;
  sluice::detail::waiter_list list;
  renotifier first{{}, &list, &log, 1};
  recorder second{&log, 2};
  sluice::detail::waiter w1, w2;
  list.enqueue(w1, sluice::make_waker(first));
  list.enqueue(w2, sluice::make_waker(second));
  list.notify_one();  // wakes 1, whose wake notifies while the lock is held
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
  EXPECT_TRUE(w2.is_notified());
  EXPECT_FALSE(list.cancel(w1));
  EXPECT_FALSE(list.cancel(w2));
}

// A notify that finds the lock held (by an enqueue, a cancel or another
// notifier on another core, or the context it interrupted) never waits: it
// leaves its request in the lock word, and the holder carries it out as it
// unlocks. Two notify_one requests wake two waiters; a notify_all wakes
// the rest.
TEST(WaiterList, NotifiesBesideAHolderAreCarriedOutByItsUnlock) {
  // A notify that waited for the lock would deadlock this one thread.
  sluice::test::abort_watchdog dog{std::chrono::seconds(30), "notify beside a lock holder"};
  std::vector<int> log;
  recorder a{&log, 1};
  recorder b{&log, 2};
  recorder c{&log, 3};
  recorder d{&log, 4};
  sluice::detail::waiter_list list;
  sluice::detail::waiter wa, wb, wc, wd;
  list.enqueue(wa, sluice::make_waker(a));
  list.enqueue(wb, sluice::make_waker(b));
  list.enqueue(wc, sluice::make_waker(c));
  list.enqueue(wd, sluice::make_waker(d));
  holder::lock(list);
  list.notify_one();
  list.notify_one();
  EXPECT_TRUE(log.empty()) << "a notify beside the holder woke at once";
  EXPECT_FALSE(wa.is_notified());
  holder::unlock(list);
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
  EXPECT_TRUE(wa.is_notified());
  EXPECT_TRUE(wb.is_notified());
  EXPECT_FALSE(wc.is_notified());
  holder::lock(list);
  list.notify_all();
  EXPECT_EQ(log.size(), 2u);
  holder::unlock(list);
  EXPECT_EQ(log, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_TRUE(wd.is_notified());
  EXPECT_FALSE(list.approx_has_waiters());
  for (auto* w : {&wa, &wb, &wc, &wd})
    EXPECT_FALSE(list.cancel(*w));
}

// More waiters than one batch of wakes (wake_batch): notify_all takes the
// lock again for the rest, and wakes every one, in arrival order.
TEST(WaiterList, NotifyAllWakesMoreWaitersThanABatchInOrder) {
  constexpr int n = 21;
  std::vector<int> log;
  std::vector<recorder> wakeables;
  wakeables.reserve(n);
  std::vector<sluice::detail::waiter> nodes(n);
  sluice::detail::waiter_list list;
  for (int i = 0; i < n; ++i) {
    wakeables.push_back(recorder{&log, i});
    list.enqueue(nodes[static_cast<std::size_t>(i)], sluice::make_waker(wakeables.back()));
  }
  list.notify_all();
  ASSERT_EQ(log.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(log[static_cast<std::size_t>(i)], i);
  EXPECT_FALSE(list.approx_has_waiters());
  for (auto& w : nodes)
    EXPECT_FALSE(list.cancel(w));
  for (const recorder& r : wakeables)
    EXPECT_EQ(r.refs, 1) << "every waker's reference was used up by its wake";
}

// A waker whose wake enqueues a waiter on the list that woke it. Wakes run
// outside the list's lock, so this neither deadlocks nor is woken by the
// notification that is being carried out (it came after it).
struct enqueuer : unreferenced {
  sluice::detail::waiter_list* list;
  sluice::detail::waiter* node;
  recorder* then;
  std::vector<int>* log;
  int id;
  void wake_by_ref() noexcept {
    log->push_back(id);
    list->enqueue(*node, sluice::make_waker(*then));
  }
};

class WaiterListWake : public ::testing::TestWithParam<bool> {};

TEST_P(WaiterListWake, AWakeMayEnqueueOnTheListThatWokeIt) {
  const bool all = GetParam();
  sluice::test::abort_watchdog dog{std::chrono::seconds(30), "a wake that enqueued on its list"};
  std::vector<int> log;
  sluice::detail::waiter_list list;
  sluice::detail::waiter w1, w2, w3;
  recorder second{&log, 2};
  recorder third{&log, 3};
  enqueuer first{{}, &list, &w3, &third, &log, 1};
  list.enqueue(w1, sluice::make_waker(first));
  list.enqueue(w2, sluice::make_waker(second));
  if (all) {
    list.notify_all();
    EXPECT_EQ(log, (std::vector<int>{1, 2}));
  } else {
    list.notify_one();
    EXPECT_EQ(log, (std::vector<int>{1}));
    list.notify_one();
    EXPECT_EQ(log, (std::vector<int>{1, 2}));
  }
  EXPECT_TRUE(list.approx_has_waiters()) << "the waiter enqueued by the wake";
  list.notify_one();
  EXPECT_EQ(log, (std::vector<int>{1, 2, 3}));
  EXPECT_FALSE(list.cancel(w1));
  EXPECT_FALSE(list.cancel(w2));
  EXPECT_FALSE(list.cancel(w3));
}

// A waiter whose condition stays false: each wake lists it again at once,
// on its own node (as a parked thread or a task re-checks and waits again,
// only sooner).
struct relister : unreferenced {
  sluice::detail::waiter_list* list = nullptr;
  sluice::detail::waiter node;
  int wakes = 0;
  void wake_by_ref() noexcept {
    ++wakes;
    list->enqueue(node, sluice::make_waker(*this));
  }
};

// notify_all wakes the waiters listed when it is carried out, once each:
// those that list themselves again behind it wait for the next
// notification. (Carried out to an empty list instead, it would never
// return here: more waiters than a batch keep it busy for ever.)
TEST(WaiterList, NotifyAllWakesTheListedOnceEvenIfTheyListThemselvesAgain) {
  sluice::test::abort_watchdog dog{std::chrono::seconds(30), "notify_all with waiters re-listing"};
  constexpr int n = 20;  // more than a batch of wakes
  sluice::detail::waiter_list list;
  std::vector<relister> waiters(n);
  for (relister& w : waiters) {
    w.list = &list;
    list.enqueue(w.node, sluice::make_waker(w));
  }
  list.notify_all();
  for (const relister& w : waiters)
    EXPECT_EQ(w.wakes, 1);
  EXPECT_TRUE(list.approx_has_waiters()) << "every waiter listed itself again";
  list.notify_all();
  for (const relister& w : waiters)
    EXPECT_EQ(w.wakes, 2);
  for (relister& w : waiters)
    EXPECT_TRUE(list.cancel(w.node)) << "still listed after the second notification";
}

INSTANTIATE_TEST_SUITE_P(Notify, WaiterListWake, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "All" : "One"; });

}  // namespace
