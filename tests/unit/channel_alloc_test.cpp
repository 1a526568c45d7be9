// Steady state does not allocate: the global allocation functions of this
// test binary are replaced by counting ones (per thread, so other threads
// and the test framework do not disturb the count).
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>

#include <sluice/channel.hpp>

namespace {
thread_local long allocations = 0;

void* counted_alloc(std::size_t size, std::size_t align) {
  ++allocations;
  if (size == 0) size = 1;
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(size)
                : std::aligned_alloc(align, (size + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t size) {
  return counted_alloc(size, 0);
}
void* operator new[](std::size_t size) {
  return counted_alloc(size, 0);
}
void* operator new(std::size_t size, std::align_val_t align) {
  return counted_alloc(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return counted_alloc(size, static_cast<std::size_t>(align));
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace {

template <class Tx, class Rx>
long allocations_in_steady_state(Tx& tx, Rx& rx, int backlog) {
  // Warm up: go round several times so every block the pattern needs exists.
  auto cycle = [&](int n) {
    for (int i = 0; i < n; ++i) {
      for (int k = 0; k < backlog; ++k)
        EXPECT_TRUE(tx.try_send(k));
      for (int k = 0; k < backlog; ++k)
        EXPECT_TRUE(rx.try_recv());
    }
  };
  cycle(500);
  const long before = allocations;
  cycle(2000);
  return allocations - before;
}

TEST(ChannelAllocation, UnboundedSteadyStateDoesNotAllocate) {
  auto [tx, rx] = sluice::channel<int>::unbounded();
  for (int backlog : {1, 10, 63, 64, 100, 200}) {
    EXPECT_EQ(allocations_in_steady_state(tx, rx, backlog), 0) << "backlog " << backlog;
  }
}

TEST(ChannelAllocation, BoundedAndStaticNeverAllocateAfterCreation) {
  auto [tx, rx] = sluice::channel<int>::bounded(100);
  EXPECT_EQ(allocations_in_steady_state(tx, rx, 100), 0);
  const long before = allocations;
  sluice::static_channel<int, 8> ch;
  EXPECT_EQ(allocations_in_steady_state(ch, ch, 8), 0);
  EXPECT_EQ(allocations - before, 0);
}

TEST(ChannelAllocation, CounterSeesAllocations) {
  const long before = allocations;
  auto [tx, rx] = sluice::channel<int>::unbounded();
  EXPECT_GT(allocations - before, 0) << "the counting allocator must be in use";
}

}  // namespace
