// The baseline every user can write: a std::deque guarded by one mutex, with two condition
// variables for "not empty" and "not full". Bounded when given a capacity.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <limits>
#include <mutex>
#include <utility>

namespace sluice::bench {

template <class T>
class mutex_queue {
 public:
  explicit mutex_queue(std::size_t capacity = std::numeric_limits<std::size_t>::max())
      : capacity_(capacity) {}

  bool try_push(T v) {
    {
      std::lock_guard lock(mutex_);
      if (items_.size() >= capacity_) return false;
      items_.push_back(std::move(v));
    }
    not_empty_.notify_one();
    return true;
  }

  void push(T v) {
    {
      std::unique_lock lock(mutex_);
      not_full_.wait(lock, [&] { return items_.size() < capacity_; });
      items_.push_back(std::move(v));
    }
    not_empty_.notify_one();
  }

  bool try_pop(T& out) {
    {
      std::lock_guard lock(mutex_);
      if (items_.empty()) return false;
      out = std::move(items_.front());
      items_.pop_front();
    }
    not_full_.notify_one();
    return true;
  }

  void pop(T& out) {
    {
      std::unique_lock lock(mutex_);
      not_empty_.wait(lock, [&] { return !items_.empty(); });
      out = std::move(items_.front());
      items_.pop_front();
    }
    not_full_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<T> items_;
  std::size_t capacity_;
};

}  // namespace sluice::bench
