// Helpers for the channel tests: one interface over the three flavours (so a
// battery is written once and run for each), an element type that records
// every construction and destruction, and a watchdog that turns a hang into a
// test failure.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include <sluice/channel.hpp>

#include "park_watch.hpp"

namespace sluice::test {

// --- flavours ---------------------------------------------------------------
// Each flavour makes a channel whose sending and receiving ends are reached
// through tx() and rx(); for static_channel both are the channel itself.

template <class T>
struct heap_channel {
  sender<T> tx_;
  receiver<T> rx_;
  sender<T>& tx() { return tx_; }
  receiver<T>& rx() { return rx_; }
};

struct bounded_flavour {
  static constexpr bool is_bounded = true;
  static constexpr bool has_handles = true;
  static constexpr std::size_t capacity = 4;
  template <class T>
  static heap_channel<T> make() {
    auto [tx, rx] = channel<T>::bounded(capacity);
    return {std::move(tx), std::move(rx)};
  }
};

struct unbounded_flavour {
  static constexpr bool is_bounded = false;
  static constexpr bool has_handles = true;
  static constexpr std::size_t capacity = static_cast<std::size_t>(-1);
  template <class T>
  static heap_channel<T> make() {
    auto [tx, rx] = channel<T>::unbounded();
    return {std::move(tx), std::move(rx)};
  }
};

template <class T, std::size_t N>
struct static_holder {
  std::unique_ptr<static_channel<T, N>> ch = std::make_unique<static_channel<T, N>>();
  static_channel<T, N>& tx() { return *ch; }
  static_channel<T, N>& rx() { return *ch; }
};

struct static_flavour {
  static constexpr bool is_bounded = true;
  static constexpr bool has_handles = false;
  static constexpr std::size_t capacity = 4;
  template <class T>
  static static_holder<T, capacity> make() {
    return {};
  }
};

// Every flavour, for typed test suites, with readable names:
//   TYPED_TEST_SUITE(Suite, sluice::test::all_flavours, sluice::test::flavour_names);
using all_flavours = ::testing::Types<bounded_flavour, unbounded_flavour, static_flavour>;

struct flavour_names {
  template <class T>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<T, bounded_flavour>) return "bounded";
    if constexpr (std::is_same_v<T, unbounded_flavour>) return "unbounded";
    return "static";
  }
};

// --- counted element ----------------------------------------------------------
// Records constructions and destructions in a tally; a destroyed object is
// poisoned so a second destruction is caught.
struct tally {
  std::atomic<long> constructed{0};
  std::atomic<long> destroyed{0};
  std::atomic<long> double_destroyed{0};
  [[nodiscard]] long live() const { return constructed.load() - destroyed.load(); }
};

class counted {
 public:
  counted(tally& t, int value) : t_(&t), value_(value) { t_->constructed.fetch_add(1); }
  counted(counted&& other) noexcept : t_(other.t_), value_(other.value_) {
    check_alive(other);
    t_->constructed.fetch_add(1);
  }
  counted& operator=(counted&& other) noexcept {
    check_alive(other);
    value_ = other.value_;
    return *this;
  }
  counted(const counted&) = delete;
  counted& operator=(const counted&) = delete;
  ~counted() {
    if (magic_ != alive) {
      t_->double_destroyed.fetch_add(1);
      return;
    }
    magic_ = dead;
    t_->destroyed.fetch_add(1);
  }
  [[nodiscard]] int value() const { return value_; }

 private:
  static constexpr std::uint32_t alive = 0xA11CEu;
  static constexpr std::uint32_t dead = 0xDEADu;
  static void check_alive(const counted& c) {
    if (c.magic_ != alive) c.t_->double_destroyed.fetch_add(1);
  }
  tally* t_;
  int value_;
  std::uint32_t magic_ = alive;
};

// A move-only type without a default constructor.
class no_default {
 public:
  explicit no_default(int v) : v_(std::make_unique<int>(v)) {}
  [[nodiscard]] int value() const { return *v_; }

 private:
  std::unique_ptr<int> v_;
};

// --- watchdog -----------------------------------------------------------------
// If not disarmed within `limit`, records a test failure and calls `rescue`
// (which should unblock the test, e.g. by closing the channel); if the test
// is still not done 10 s later, aborts the process so it fails, not hangs.
class watchdog {
 public:
  explicit watchdog(std::chrono::milliseconds limit, std::function<void()> rescue = {})
      : thread_([this, limit, rescue = std::move(rescue)] {
          std::unique_lock lock(mutex_);
          if (cv_.wait_for(lock, limit, [this] { return disarmed_; })) return;
          ADD_FAILURE() << "watchdog: not done after " << limit.count()
                        << " ms (lost wake-up or deadlock)";
          if (rescue) {
            lock.unlock();
            rescue();
            lock.lock();
          }
          if (cv_.wait_for(lock, std::chrono::seconds(10), [this] { return disarmed_; })) return;
          std::fprintf(stderr, "watchdog: still hung after rescue; aborting\n");
          std::abort();
        }) {}
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  ~watchdog() {
    {
      std::lock_guard lock(mutex_);
      disarmed_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;
};

#if defined(SLUICE_SANITIZED)
inline constexpr long stress_scale = 10;  // sanitizers: ten times fewer
#else
inline constexpr long stress_scale = 1;
#endif

}  // namespace sluice::test
