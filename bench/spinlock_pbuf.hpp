// The baseline for the packet buffer suite: the classic design, one
// spinlock around every operation (alloc, commit, claim, free), on the same
// word layout (header bits valid/busy, skip packets at the wrap, allocation
// order kept, optional overwrite of the oldest committed packets).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include <sluice/detail/cpu_relax.hpp>

#include "harness.hpp"

namespace sluice::bench {

class spinlock_pbuf {
 public:
  spinlock_pbuf(std::uint32_t words, bool overwrite)
      : buf_(words), size_(words), overwrite_(overwrite) {}

  // Returns the packet's first word, or null when there is no room.
  std::uint32_t* alloc(std::uint32_t n) {
    guard g(lock_);
    for (;;) {
      const std::uint64_t used = wr_ - rd_;
      const std::uint32_t tail = size_ - slot(wr_);
      const std::uint32_t pad = n > tail ? tail : 0;
      if (pad + n <= size_ - used) {
        if (pad != 0) at(wr_) = (pad << 2) | busy;
        std::uint32_t* p = &at(wr_ + pad);
        *p = n << 2;  // reserved, length in bits 2..31
        wr_ += pad + n;
        return p;
      }
      if (!overwrite_ || !drop_oldest()) return nullptr;
    }
  }
  void commit(std::uint32_t* p) {
    guard g(lock_);
    *p |= valid;
  }
  std::uint32_t* claim() {
    guard g(lock_);
    while (claim_ != wr_) {
      std::uint32_t& h = at(claim_);
      if ((h & (valid | busy)) == busy) {  // skip
        claim_ += h >> 2;
        sweep();
        continue;
      }
      if ((h & valid) == 0) return nullptr;
      h |= busy;
      claim_ += h >> 2;
      return &h;
    }
    return nullptr;
  }
  void free(std::uint32_t* p) {
    guard g(lock_);
    *p = (*p & ~(valid | busy)) | busy;  // becomes a skip of the same length
    sweep();
  }
  std::uint64_t dropped() const { return dropped_; }

 private:
  static constexpr std::uint32_t valid = 1, busy = 2;
  struct guard {
    explicit guard(std::atomic_flag& f) : flag(f) {
      unsigned spins = 0;
      while (flag.test_and_set(std::memory_order_acquire)) {
        if (++spins % 128 == 0) {
          std::this_thread::yield();
        } else {
          sluice::detail::cpu_relax();
        }
      }
    }
    ~guard() { flag.clear(std::memory_order_release); }
    std::atomic_flag& flag;
  };
  // A mask where the size is a power of two, as in sluice's engine, so
  // that the baseline pays no division that sluice does not.
  std::uint32_t slot(std::uint64_t pos) const {
    return pow2_ ? static_cast<std::uint32_t>(pos & (size_ - 1))
                 : static_cast<std::uint32_t>(pos % size_);
  }
  std::uint32_t& at(std::uint64_t pos) { return buf_.data()[slot(pos)]; }
  void sweep() {
    while (rd_ != claim_ && (at(rd_) & (valid | busy)) == busy)
      rd_ += at(rd_) >> 2;
  }
  bool drop_oldest() {
    if (rd_ == wr_ || rd_ != claim_) return false;  // empty, or the oldest is claimed
    const std::uint32_t h = at(rd_);
    if ((h & (valid | busy)) == busy || (h & (valid | busy)) == valid) {
      if ((h & valid) != 0) ++dropped_;
      rd_ += h >> 2;
      claim_ = rd_;
      return true;
    }
    return false;  // the oldest is not committed
  }

  line_aligned_words buf_;
  std::uint32_t size_;
  bool overwrite_;
  bool pow2_ = (size_ & (size_ - 1)) == 0;
  std::uint64_t wr_ = 0, rd_ = 0, claim_ = 0, dropped_ = 0;
  std::atomic_flag lock_ = ATOMIC_FLAG_INIT;
};

}  // namespace sluice::bench
