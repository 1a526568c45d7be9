// The Zephyr C API's claim and free take the buffer's consumer lock, as
// Zephyr's take its spinlock: a free on another thread, made while a claim
// runs (at claim_looked, inside it), waits for the claim and then frees.
// Hosted the lock is taken unmasked, so a signal handler that calls claim
// or free inside its own thread's claim could only wait for ever: it stops
// the program, naming the mistake.
#include <zephyr/sys/mpsc_pbuf.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include "hooks.hpp"
#include "zephyr_c_buffer.hpp"

namespace {

struct c_buffer : sluice::test::zephyr_c_buffer<16> {
  c_buffer() : zephyr_c_buffer(nullptr) {}
  void put(std::uint32_t tag) {
    union mpsc_pbuf_generic* p = mpsc_pbuf_alloc(&buffer, 2, K_NO_WAIT);
    if (p == nullptr) std::abort();
    reinterpret_cast<std::uint32_t*>(p)[1] = tag;
    mpsc_pbuf_commit(&buffer, p);
  }
};

// What the hook action works on (an action takes no arguments).
c_buffer* inner = nullptr;
const union mpsc_pbuf_generic* held = nullptr;
std::thread* freer = nullptr;
std::atomic<bool> freed{false};
std::atomic<bool> freed_inside_the_claim{false};

TEST(ZephyrConsumerLock, AFreeOnAnotherThreadDuringAClaimWaitsForIt) {
  c_buffer b;
  b.put(1);
  b.put(2);
  held = mpsc_pbuf_claim(&b.buffer);
  ASSERT_NE(held, nullptr);
  inner = &b;
  // Relaxed: before the freeing thread starts (its creation orders them).
  freed.store(false, std::memory_order_relaxed);
  freed_inside_the_claim.store(false, std::memory_order_relaxed);
  std::thread t;
  freer = &t;
  // Release: pairs with the acquire exchange in run_shared_hooks (hooks.hpp).
  at_claim_looked.store(
      +[] {
        *freer = std::thread([] {
          mpsc_pbuf_free(&inner->buffer, held);
          // Release: pairs with the test's acquire loads.
          freed.store(true, std::memory_order_release);
        });
        // Long enough for the free to reach the lock most times; the check
        // below holds however the threads are scheduled.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        // Acquire: pairs with the freer's release.
        freed_inside_the_claim.store(freed.load(std::memory_order_acquire),
                                     std::memory_order_relaxed);
      },
      std::memory_order_release);
  const union mpsc_pbuf_generic* second = mpsc_pbuf_claim(&b.buffer);
  t.join();
  // Relaxed: written on this thread (in the hook).
  EXPECT_FALSE(freed_inside_the_claim.load(std::memory_order_relaxed))
      << "the free ran while the claim was inside";
  // Acquire: pairs with the freer's release (the join orders it too).
  EXPECT_TRUE(freed.load(std::memory_order_acquire));
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(reinterpret_cast<const std::uint32_t*>(second)[1], 2u);
  mpsc_pbuf_free(&b.buffer, second);
  EXPECT_EQ(mpsc_pbuf_claim(&b.buffer), nullptr);
  std::uint32_t size_bytes = 0, now = 1;
  mpsc_pbuf_get_utilization(&b.buffer, &size_bytes, &now);
  EXPECT_EQ(now, 0u) << "both packets freed: no word in use";
}

extern "C" void claim_in_handler(int) {
  (void)mpsc_pbuf_claim(&inner->buffer);
}

void claim_with_a_handler_claiming_inside() {
  c_buffer b;
  b.put(1);
  inner = &b;
  struct sigaction action = {};
  action.sa_handler = claim_in_handler;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGUSR1, &action, nullptr) != 0) std::abort();
  // Release: pairs with the acquire exchange in run_shared_hooks (hooks.hpp).
  at_claim_looked.store(
      +[] { std::raise(SIGUSR1); }, std::memory_order_release);
  (void)mpsc_pbuf_claim(&b.buffer);
}

TEST(ZephyrConsumerLockDeathTest, AHandlerThatClaimsInsideItsThreadsClaimIsNamed) {
  EXPECT_DEATH(claim_with_a_handler_claiming_inside(),
               "in a signal handler that interrupted its own thread's claim or free");
}

}  // namespace
