// waiter_list::notify_one_after_seq_cst_rmw, the notification the channel
// uses on its hot paths: same effect as notify_one, cheaper entry.
#include <gtest/gtest.h>

#include <sluice/detail/waiter_list.hpp>

namespace {

struct recorder {
  int wakes = 0;
  int refs = 1;
  void add_ref() noexcept { ++refs; }
  void release() noexcept { --refs; }
  void wake_by_ref() noexcept { ++wakes; }
};

TEST(WaiterListAfterRmw, WakesOneWaiterInOrder) {
  recorder a, b;
  sluice::detail::waiter_list list;
  sluice::detail::waiter wa, wb;
  list.notify_one_after_seq_cst_rmw();  // nobody waits: nothing happens
  list.enqueue(wa, sluice::make_waker(a));
  list.enqueue(wb, sluice::make_waker(b));
  list.notify_one_after_seq_cst_rmw();
  EXPECT_EQ(a.wakes, 1);
  EXPECT_EQ(b.wakes, 0);
  EXPECT_TRUE(wa.is_notified());
  EXPECT_TRUE(list.cancel(wb));
  EXPECT_FALSE(list.cancel(wa));
  EXPECT_EQ(a.refs, 1);
  EXPECT_EQ(b.refs, 1);
}

}  // namespace
