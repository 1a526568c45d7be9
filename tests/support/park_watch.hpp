#pragma once

#include <atomic>
#include <thread>

#include <sluice/parker.hpp>
#include <sluice/port.hpp>

namespace sluice::test {

// A thread that is about to block tells its parker (every blocking operation
// waits on its caller's); the test thread waits until it is parked before
// it does what should wake it, so that the wake reaches a waiting thread
// rather than being found by the thread's first look. Observed, not timed.
class park_watch {
 public:
  park_watch() = default;
  park_watch(const park_watch&) = delete;
  park_watch& operator=(const park_watch&) = delete;
  ~park_watch() {
    // The threads are joined by now (their joins order this load).
    if (sluice::parker* p = parker_.load()) p->release();
  }
  // In the thread that will block, before it blocks. Keeps the parker
  // alive (a reference) for parked(), should the thread end first.
  void arrive() {
    sluice::parker& p = sluice::port::current_parker();
    p.add_ref();
    parker_.store(&p);  // seq_cst: the handshake with parked()
  }
  // In that thread, once its blocking call returned.
  void leave() { left_.store(true); }  // seq_cst: the handshake with parked()
  // In the test thread: until the other is parked (true), or has left
  // without (false: it never waited).
  bool parked() const {
    for (;;) {
      const sluice::parker* p = parker_.load();  // seq_cst, all: a handshake only
      if (p != nullptr && p->parked_now()) return true;
      if (left_.load()) return false;
      std::this_thread::yield();
    }
  }

 private:
  std::atomic<sluice::parker*> parker_{nullptr};
  std::atomic<bool> left_{false};
};

}  // namespace sluice::test
