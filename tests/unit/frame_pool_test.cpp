// frame_pool given storage or sizes it cannot use: debug builds name the
// mistake; release builds hand out only blocks that lie inside the storage
// (none, where there is no room for one) and ignore a pointer that is not
// one of their blocks.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>

#include <gtest/gtest.h>

#include <sluice/frame_pool.hpp>

#include "build_checks.hpp"

namespace {

using sluice::frame_pool;

constexpr std::size_t most = ~std::size_t{0};

TEST(FramePool, StorageForSaysWhatABlockCountNeedsAndSaturates) {
  constexpr std::size_t a = frame_pool::block_alignment;
  constexpr auto rounded = [](std::size_t n) { return (n + a - 1) / a * a; };
  EXPECT_EQ(frame_pool::storage_for(64, 1), rounded(4) + rounded(64));  // one index word
  EXPECT_EQ(frame_pool::storage_for(100, 4), rounded(16) + 4 * rounded(100));
  EXPECT_EQ(frame_pool::storage_for(most, 2), most) << "a block size that wraps when rounded up";
  EXPECT_EQ(frame_pool::storage_for(most / 2, 3), most) << "a product that wraps";
  EXPECT_EQ(frame_pool::storage_for(16, most), most) << "an index that wraps";
}

TEST(FramePool, HandsOutEveryBlockOnceAndTakesThemBack) {
  alignas(frame_pool::block_alignment) static std::byte storage[frame_pool::storage_for(48, 5)];
  frame_pool pool{storage, sizeof storage, 48};
  ASSERT_EQ(pool.capacity(), 5u);
  std::set<void*> seen;
  for (int i = 0; i < 5; ++i) {
    void* b = pool.allocate(48);
    ASSERT_NE(b, nullptr);
    EXPECT_TRUE(seen.insert(b).second) << "a block handed out twice";
    EXPECT_GE(static_cast<std::byte*>(b), storage);
    EXPECT_LE(static_cast<std::byte*>(b) + 48, storage + sizeof storage);
  }
  EXPECT_EQ(pool.allocate(1), nullptr) << "exhausted";
  EXPECT_EQ(pool.allocate(49), nullptr) << "larger than a block";
  for (void* b : seen)
    pool.deallocate(b);
  EXPECT_EQ(pool.approx_in_use(), 0u);
}

void pool_on_misaligned_storage() {
  alignas(frame_pool::block_alignment) static std::byte storage[256];
  frame_pool pool{storage + 1, sizeof storage - 1, 32};
}
void pool_without_room_for_a_block() {
  alignas(frame_pool::block_alignment) static std::byte storage[16];
  frame_pool pool{storage, sizeof storage, 32};
}
void pool_of_zero_byte_blocks() {
  alignas(frame_pool::block_alignment) static std::byte storage[256];
  frame_pool pool{storage, sizeof storage, 0};
}
void pool_deallocating_twice() {
  alignas(frame_pool::block_alignment) static std::byte storage[frame_pool::storage_for(32, 2)];
  frame_pool pool{storage, sizeof storage, 32};
  void* a = pool.allocate(32);
  pool.deallocate(a);
  pool.deallocate(a);
}
void pool_deallocating_a_stranger() {
  alignas(frame_pool::block_alignment) static std::byte storage[frame_pool::storage_for(32, 2)];
  frame_pool pool{storage, sizeof storage, 32};
  alignas(frame_pool::block_alignment) std::byte stranger[32];
  pool.deallocate(stranger);
}

TEST(FramePoolDeathTest, ImpossibleStorageAndStrangersAreNamed) {
  SLUICE_ONLY_WITH_DEBUG_CHECKS("the checks are assertions: debug builds only (release, below)");
  EXPECT_DEATH(pool_on_misaligned_storage(), "not aligned to alignof\\(max_align_t\\)");
  EXPECT_DEATH(pool_without_room_for_a_block(), "storage too small for one block");
  EXPECT_DEATH(pool_of_zero_byte_blocks(), "block size is 0, or more than half of size_t");
  EXPECT_DEATH(pool_deallocating_a_stranger(), "deallocate of a pointer that is not one of its");
  EXPECT_DEATH(pool_deallocating_twice(), "deallocate of a block that is free already");
}

// Each of these crashed or corrupted memory in a release build before:
// a pool with no room for a block handed out its storage as a block (or
// a null one), blocks of 0 bytes were handed out twice and divided by zero
// when returned, misaligned storage gave misaligned blocks, and a stranger
// returned to the pool was written through.
TEST(FramePool, ImpossibleStorageHandsOutNothingInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at each (the death test above)");
  // Heap storage of exactly `bytes`, so that AddressSanitizer sees any
  // access outside it.
  struct unusable {
    const char* what;
    std::size_t bytes;
    std::size_t block_size;
    bool null_storage;
  };
  const unusable configs[] = {{"no storage", 4096, 64, true},
                              {"room for the index only", 16, 64, false},
                              {"0-byte blocks", 4096, 0, false},
                              {"blocks that wrap when rounded up", 4096, most, false},
                              {"blocks larger than the storage", 4096, 1u << 20, false}};
  for (const unusable& bad : configs) {
    SCOPED_TRACE(bad.what);
    const std::unique_ptr<std::byte[]> storage(new std::byte[bad.bytes]);
    std::memset(storage.get(), 0x5a, bad.bytes);
    frame_pool pool{bad.null_storage ? nullptr : storage.get(), bad.bytes, bad.block_size};
    EXPECT_EQ(pool.capacity(), 0u);
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{64}})
      EXPECT_EQ(pool.allocate(n), nullptr) << n << " bytes";
    pool.deallocate(storage.get());  // not one of its blocks: ignored
    EXPECT_EQ(pool.approx_in_use(), 0u);
    for (std::size_t i = 0; i < bad.bytes; ++i)
      ASSERT_EQ(storage[i], std::byte{0x5a}) << "the storage was written at byte " << i;
  }
}

TEST(FramePool, MisalignedStorageGivesAlignedBlocksInsideItInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  const std::size_t bytes = frame_pool::storage_for(32, 3) + frame_pool::block_alignment;
  const std::unique_ptr<std::byte[]> storage(new std::byte[bytes]);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(storage.get()) % frame_pool::block_alignment, 0u);
  for (std::size_t skew = 1; skew < frame_pool::block_alignment; ++skew) {
    SCOPED_TRACE(skew);
    std::byte* const start = storage.get() + skew;
    const std::size_t have = bytes - skew;
    frame_pool pool{start, have, 32};
    // The pool starts block_alignment - skew bytes in, which leaves
    // exactly storage_for(32, 3).
    EXPECT_EQ(pool.capacity(), 3u);
    for (std::size_t i = 0; i < pool.capacity(); ++i) {
      auto* b = static_cast<std::byte*>(pool.allocate(32));
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % frame_pool::block_alignment, 0u);
      EXPECT_GE(b, start);
      EXPECT_LE(b + 32, start + have);
      std::memset(b, 0, 32);  // AddressSanitizer: inside the storage
    }
    EXPECT_EQ(pool.allocate(32), nullptr);
  }
}

TEST(FramePool, AStrangerIsIgnoredInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  alignas(frame_pool::block_alignment) static std::byte storage[frame_pool::storage_for(32, 2)];
  frame_pool pool{storage, sizeof storage, 32};
  void* a = pool.allocate(32);
  ASSERT_NE(a, nullptr);
  alignas(frame_pool::block_alignment) std::byte stranger[32];
  pool.deallocate(stranger);                         // outside the pool
  pool.deallocate(static_cast<std::byte*>(a) + 16);  // inside a block, off its start
  pool.deallocate(storage);                          // the index, not a block
  EXPECT_EQ(pool.approx_in_use(), 1u);
  void* b = pool.allocate(32);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(pool.allocate(32), nullptr) << "a stranger was taken in as a block";
  pool.deallocate(a);
  pool.deallocate(b);
  EXPECT_EQ(pool.approx_in_use(), 0u);
}

// A second deallocate of a block (not handed out again in between) is
// ignored by a release build. (It pushed the block twice: the next two
// allocations returned the same block.)
TEST(FramePool, ADoubleFreeIsIgnoredInReleaseBuilds) {
  SLUICE_ONLY_WITHOUT_DEBUG_CHECKS("debug builds stop at it (the death test above)");
  alignas(frame_pool::block_alignment) static std::byte storage[frame_pool::storage_for(32, 3)];
  frame_pool pool{storage, sizeof storage, 32};
  void* a = pool.allocate(32);
  void* b = pool.allocate(32);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  pool.deallocate(a);
  pool.deallocate(a);  // ignored
  pool.deallocate(b);
  pool.deallocate(a);  // ignored: free, with b on top of it
  EXPECT_EQ(pool.approx_in_use(), 0u);
  std::set<void*> seen;
  for (int i = 0; i < 3; ++i) {
    void* c = pool.allocate(32);
    ASSERT_NE(c, nullptr);
    EXPECT_TRUE(seen.insert(c).second) << "a block handed out twice";
  }
  EXPECT_EQ(pool.allocate(32), nullptr) << "more blocks than the pool holds";
  for (void* c : seen)
    pool.deallocate(c);
  EXPECT_EQ(pool.approx_in_use(), 0u);
}

}  // namespace
