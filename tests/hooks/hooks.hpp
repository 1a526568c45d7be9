// Shared by the hook tests (and the no-token tests): the hooks other tests
// set, and the part of sluice_pbuf_test_hook that runs them. Each binary
// defines sluice_pbuf_test_hook once (the hook binary in
// packet_buffer_move_test.cpp, the no-token binary in
// tests/no_tokens/packet_buffer_no_token_test.cpp) and starts it with
// run_shared_hooks().
#pragma once

#include <atomic>
#include <functional>
#include <utility>

#include <sluice/detail/pbuf_core.hpp>

// Both hooks are set (and cleared) with release and read (or taken) with
// acquire: a test may set one while the thread that reaches it already
// runs, and the hook may read what the test wrote before setting it.

// Run once at the next claim_looked (then cleared), before the binary's own
// handling of that point.
inline std::atomic<void (*)()> at_claim_looked{nullptr};

// Called first at every hook point, from whichever thread reaches it, while
// set (the move stress test counts the move's steps with it).
inline std::atomic<void (*)(sluice::detail::pbuf_hook)> observe_hook{nullptr};

// Runs observe_hook, and at claim_looked the one-shot action. True: that
// action ran (the caller's own handling of the point is skipped).
inline bool run_shared_hooks(sluice::detail::pbuf_hook point) noexcept {
  if (auto* observe = observe_hook.load(std::memory_order_acquire)) observe(point);
  if (point != sluice::detail::pbuf_hook::claim_looked) return false;
  auto* action = at_claim_looked.exchange(nullptr, std::memory_order_acquire);
  if (action == nullptr) return false;
  action();
  return true;
}

// A one-shot action at one hook point, for a test that holds a thread
// there: set for the object's life, run by the first thread that reaches
// the point (then cleared), with `also` (if given) called at every point
// before it. It takes observe_hook while it lives.
class hook_action {
 public:
  hook_action(sluice::detail::pbuf_hook point, std::function<void()> action,
              void (*also)(sluice::detail::pbuf_hook) = nullptr)
      : action_(std::move(action)) {
    // Relaxed, these three: published by the release store of observe_hook.
    point_.store(point, std::memory_order_relaxed);
    also_.store(also, std::memory_order_relaxed);
    pending_.store(&action_, std::memory_order_relaxed);
    // Release: pairs with the acquire load in run_shared_hooks.
    observe_hook.store(&run, std::memory_order_release);
  }
  ~hook_action() {
    observe_hook.store(nullptr, std::memory_order_release);
    pending_.store(nullptr, std::memory_order_relaxed);
  }
  hook_action(const hook_action&) = delete;
  hook_action& operator=(const hook_action&) = delete;
  // Whether the action was taken (it ran, or runs now on another thread).
  [[nodiscard]] bool ran() const { return pending_.load(std::memory_order_acquire) == nullptr; }

 private:
  static void run(sluice::detail::pbuf_hook point) {
    // Relaxed: set before observe_hook, which the caller acquired.
    if (auto* also = also_.load(std::memory_order_relaxed)) also(point);
    if (point != point_.load(std::memory_order_relaxed)) return;
    // Acq_rel: one thread takes it; the action sees what the test wrote
    // before it was set, and ran() sees the exchange.
    if (std::function<void()>* action = pending_.exchange(nullptr, std::memory_order_acq_rel))
      (*action)();
  }
  static inline std::atomic<sluice::detail::pbuf_hook> point_{};
  static inline std::atomic<void (*)(sluice::detail::pbuf_hook)> also_{nullptr};
  static inline std::atomic<std::function<void()>*> pending_{nullptr};
  std::function<void()> action_;
};
