// The packet buffer's timed forms where the caller may not block
// (port::may_block() false: an interrupt handler, or here, hosted, a
// critical section): they make one try instead of waiting, as Zephyr's
// mpsc_pbuf_alloc pends only in thread context with interrupts unmasked.
// Each case is told apart by its answer, not by how long it took.
#include <zephyr/sys/mpsc_pbuf.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/port.hpp>

#include "pbuf_test_support.hpp"
#include "zephyr_c_buffer.hpp"

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_span;
using sluice::detail::pbuf_status;

// The deadline of the waits below: finite, since inside a critical section
// the thread's signals are blocked (even SIGTERM), and a form that waited
// by mistake must end by itself.
sluice::time_point later() {
  return sluice::deadline_after(sluice::duration{10'000'000'000});
}

TEST(PacketBufferContext, MayBlockIsFalseInsideACriticalSectionAndNests) {
  EXPECT_TRUE(sluice::port::may_block());
  {
    const sluice::critical_section outer;
    EXPECT_FALSE(sluice::port::may_block());
    {
      const sluice::critical_section inner;
      EXPECT_FALSE(sluice::port::may_block());
    }
    EXPECT_FALSE(sluice::port::may_block()) << "leaving the inner section unmasked the outer";
  }
  EXPECT_TRUE(sluice::port::may_block());
}

// A helper that makes a timed form's wait pay off: once the form lists
// itself on `list` (it waits), `act` runs (a free, a commit); it stops
// when the form has returned. So a form that waits returns with what `act`
// gave it, and one that makes one try returns without: told apart by the
// answer, with no deadline in play.
class rescuer {
 public:
  template <class Act>
  rescuer(const sluice::detail::waiter_list& list, Act act)
      : thread_([this, &list, act]() mutable {
          if (sluice::test::listed_before(list, done_)) act();
        }) {}
  ~rescuer() {
    // Relaxed: listed_before's stop flag; the join orders the rest.
    done_.store(true, std::memory_order_relaxed);
    thread_.join();
  }
  rescuer(const rescuer&) = delete;
  rescuer& operator=(const rescuer&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

class TimedFormsInACriticalSection : public ::testing::TestWithParam<bool> {};  // overwrite?

TEST_P(TimedFormsInACriticalSection, AllocMakesOneTryAndDropsNothing) {
  sluice::test::eight_word_core engine(GetParam());
  pbuf_core& core = engine.core;
  const pbuf_span held = sluice::test::full_holding_the_first(core);
  ASSERT_NE(held.words, nullptr);
  pbuf_span p;
  pbuf_status status;
  {
    const rescuer frees(core.space_waiters, [&] { core.free(held.words); });
    const sluice::critical_section masked;
    status = core.alloc_until(4, later(), p);
  }
  // (A form that waited got the freed room: given back, and the test ends.)
  if (status == pbuf_status::ok) core.abandon(p.words, p.size);
  ASSERT_EQ(status, pbuf_status::no_room)
      << "it waited inside a critical section (until the helper's free)";
  EXPECT_EQ(core.dropped.load(), 0u);
  // Room there: the one try takes it.
  core.free(held.words);
  {
    const sluice::critical_section masked;
    ASSERT_EQ(core.alloc_until(4, later(), p), pbuf_status::ok);
  }
  core.abandon(p.words, p.size);
}

TEST_P(TimedFormsInACriticalSection, ClaimMakesOneTry) {
  sluice::test::eight_word_core engine(GetParam());
  pbuf_core& core = engine.core;
  pbuf_span got;
  {
    const rescuer commits(core.data_waiters, [&] { (void)sluice::test::put_with_length(core, 4); });
    const sluice::critical_section masked;
    got = core.claim_until(later());
  }
  if (got.words != nullptr) core.free(got.words);
  ASSERT_EQ(got.words, nullptr)
      << "it waited inside a critical section (until the helper's commit)";
  // A committed packet there: the one try takes it.
  (void)sluice::test::put_with_length(core, 4);
  const sluice::critical_section masked;
  got = core.claim_until(later());
  EXPECT_NE(got.words, nullptr);
  if (got.words != nullptr) core.free(got.words);
}

INSTANTIATE_TEST_SUITE_P(Policies, TimedFormsInACriticalSection, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Overwrite" : "NoOverwrite"; });

int drops_seen = 0;
void count_drop(const struct mpsc_pbuf_buffer*, const union mpsc_pbuf_generic*) {
  ++drops_seen;
}

// C, with overwrite: in a thread with interrupts unmasked a timeout makes
// it wait and drop nothing; inside a critical section the timeout counts
// as K_NO_WAIT, so the oldest packet is dropped and the allocation
// succeeds at once, as Zephyr's does in an interrupt handler.
TEST(ZephyrAllocContext, ATimeoutInsideACriticalSectionCountsAsNoWait) {
  sluice::test::zephyr_c_buffer<8> c(nullptr, MPSC_PBUF_MODE_OVERWRITE, count_drop);
  mpsc_pbuf_buffer& buffer = c.buffer;
  drops_seen = 0;
  // K_NO_WAIT and K_MSEC are C compound literals; the same values here.
  const k_timeout_t no_wait{0, 0};
  const k_timeout_t ms_20{20'000'000, 0};
  const k_timeout_t ms_200{200'000'000, 0};
  for (int i = 0; i < 2; ++i) {
    union mpsc_pbuf_generic* p = mpsc_pbuf_alloc(&buffer, 4, no_wait);
    ASSERT_NE(p, nullptr);
    mpsc_pbuf_commit(&buffer, p);
  }
  EXPECT_EQ(mpsc_pbuf_alloc(&buffer, 4, ms_20), nullptr) << "a timed wait dropped";
  EXPECT_EQ(drops_seen, 0);
  union mpsc_pbuf_generic* p = nullptr;
  {
    const sluice::critical_section masked;
    p = mpsc_pbuf_alloc(&buffer, 4, ms_200);
  }
  ASSERT_NE(p, nullptr) << "inside a critical section the timeout was not taken as K_NO_WAIT";
  EXPECT_EQ(drops_seen, 1);
  mpsc_pbuf_commit(&buffer, p);
}

}  // namespace
