#include <sluice/detail/waiter_list.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace {

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

// A waker whose wake notifies the same list again: the nested notify finds
// the lock held and is deferred to the unlock, not lost and not deadlocked.
struct renotifier {
  sluice::detail::waiter_list* list;
  std::vector<int>* log;
  int id;
  void add_ref() noexcept {}
  void release() noexcept {}
  void wake_by_ref() noexcept {
    log->push_back(id);
    list->notify_one();
  }
};

TEST(WaiterList, NotifyWhileLockedIsDeferredNotLost) {
  std::vector<int> log;
  sluice::detail::waiter_list list;
  renotifier first{&list, &log, 1};
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

}  // namespace
