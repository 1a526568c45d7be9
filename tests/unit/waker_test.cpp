#include <sluice/waker.hpp>

#include <gtest/gtest.h>

#include <utility>

namespace {

// A wakeable that counts references and wakes.
struct counted {
  int refs = 1;
  int wakes = 0;
  int frees = 0;
  void add_ref() noexcept { ++refs; }
  void release() noexcept {
    if (--refs == 0) ++frees;
  }
  void wake_by_ref() noexcept { ++wakes; }
};

// Also has a consuming wake, which the vtable must prefer.
struct consuming : counted {
  int consuming_wakes = 0;
  void wake() noexcept {
    ++consuming_wakes;
    ++wakes;
    release();
  }
};

TEST(Waker, IsTwoWords) {
  static_assert(sizeof(sluice::waker) == 2 * sizeof(void*));
}

TEST(Waker, EmptyWakerDoesNothing) {
  sluice::waker w;
  EXPECT_TRUE(w.empty());
  EXPECT_FALSE(w);
  w.wake_by_ref();
  sluice::waker c = w.clone();
  EXPECT_TRUE(c.empty());
  std::move(w).wake();
  EXPECT_TRUE(w.will_wake(c));
}

TEST(Waker, MakeTakesReferenceAndDestructorDropsIt) {
  counted c;
  {
    sluice::waker w = sluice::make_waker(c);
    EXPECT_EQ(c.refs, 2);
    EXPECT_FALSE(w.empty());
  }
  EXPECT_EQ(c.refs, 1);
  EXPECT_EQ(c.wakes, 0);
}

TEST(Waker, AdoptDoesNotAddReference) {
  counted c;
  {
    sluice::waker w = sluice::adopt_waker(&c);
    EXPECT_EQ(c.refs, 1);
  }
  EXPECT_EQ(c.refs, 0);
  EXPECT_EQ(c.frees, 1);
}

TEST(Waker, CloneAddsReference) {
  counted c;
  sluice::waker a = sluice::make_waker(c);
  sluice::waker b = a.clone();
  EXPECT_EQ(c.refs, 3);
  EXPECT_TRUE(a.will_wake(b));
  b.reset();
  EXPECT_EQ(c.refs, 2);
}

TEST(Waker, WakeByRefKeepsReference) {
  counted c;
  sluice::waker w = sluice::make_waker(c);
  w.wake_by_ref();
  w.wake_by_ref();
  EXPECT_EQ(c.wakes, 2);
  EXPECT_EQ(c.refs, 2);
}

TEST(Waker, WakeConsumes) {
  counted c;
  sluice::waker w = sluice::make_waker(c);
  std::move(w).wake();
  EXPECT_EQ(c.wakes, 1);
  EXPECT_EQ(c.refs, 1);
  EXPECT_TRUE(w.empty());
  w.wake();  // empty now: nothing happens
  EXPECT_EQ(c.wakes, 1);
}

TEST(Waker, WakePrefersConsumingWakeOfTheType) {
  consuming c;
  sluice::waker w = sluice::make_waker(c);
  std::move(w).wake();
  EXPECT_EQ(c.consuming_wakes, 1);
  EXPECT_EQ(c.refs, 1);
}

TEST(Waker, MoveTransfersOwnership) {
  counted c;
  sluice::waker a = sluice::make_waker(c);
  sluice::waker b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c.refs, 2);
  sluice::waker d = sluice::make_waker(c);
  d = std::move(b);  // drops d's old reference
  EXPECT_EQ(c.refs, 2);
}

TEST(Waker, WillWakeDistinguishesObjectsAndTypes) {
  counted a;
  counted b;
  consuming k;
  sluice::waker wa = sluice::make_waker(a);
  sluice::waker wb = sluice::make_waker(b);
  sluice::waker wk = sluice::make_waker(k);
  EXPECT_FALSE(wa.will_wake(wb));
  EXPECT_FALSE(wa.will_wake(wk));
  EXPECT_TRUE(wa.will_wake(wa));
  EXPECT_TRUE(wk.will_wake(wk.clone()));
  // The same object at the same address, seen as another type: another
  // vtable, so another wake.
  counted& base = k;
  sluice::waker wbase = sluice::make_waker(base);
  ASSERT_EQ(wbase.as_raw().data, wk.as_raw().data);
  EXPECT_FALSE(wbase.will_wake(wk));
  EXPECT_FALSE(wk.will_wake(wbase));
}

TEST(Waker, OneVtablePerType) {
  counted a;
  counted b;
  sluice::waker wa = sluice::make_waker(a);
  sluice::waker wb = sluice::make_waker(b);
  EXPECT_EQ(wa.as_raw().vtable, wb.as_raw().vtable);
}

TEST(Waker, BorrowedWakerNeverTouchesTheCount) {
  counted c;
  {
    sluice::borrowed_waker borrowed(sluice::raw_waker_for(c));
    const sluice::waker& w = borrowed;
    w.wake_by_ref();
    sluice::waker kept = w.clone();
    EXPECT_EQ(c.refs, 2);
  }
  EXPECT_EQ(c.refs, 1);
  EXPECT_EQ(c.wakes, 1);
}

TEST(Waker, IntoRawGivesUpOwnership) {
  counted c;
  sluice::waker w = sluice::make_waker(c);
  const sluice::raw_waker raw = std::move(w).into_raw();
  EXPECT_EQ(c.refs, 2);
  sluice::waker back = sluice::waker::from_raw(raw);
  back.reset();
  EXPECT_EQ(c.refs, 1);
}

}  // namespace
