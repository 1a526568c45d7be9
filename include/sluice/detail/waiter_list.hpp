// waiter_list: the queue of threads and tasks waiting for a condition (room
// in a channel, a value, a packet), and the notifications that wake them.
//
// Waiters are intrusive nodes that live where the waiter lives: the stack of
// a blocked thread or the awaiter inside a suspended coroutine frame. Each
// node holds a waker; a thread's waker unparks its parker, a task's waker
// re-schedules it, so one list serves both.
//
// Who may call what:
//   enqueue / cancel       thread or task context only (they may spin
//                          briefly for the list lock)
//   notify_one / _all      any context, including signal and interrupt
//                          handlers: they never wait for the lock. If it is
//                          held, the notification is left in the lock word
//                          and the holder carries it out as it unlocks.
//
// Wakes run outside the lock: waking may be a system call (a parked
// thread), and enqueuers and cancellers would spin on the lock through it;
// a waker may even enqueue on, or notify, the list that wakes it. Whoever
// carries out notifications takes up to wake_batch wakers off the list,
// unlocks, wakes them, and for the rest takes the lock again if it is free
// or else leaves the rest in the lock word for the holder. A notify_all
// becomes, when it is carried out, a count of the waiters then listed, so
// that waiters who list themselves again after their wake (their condition
// still false) are not woken again and again by the same notification
// while it lasts. Waiters that cancel meanwhile leave their share of the
// count to later ones, so a notify_all may also wake a waiter listed after
// it: a spurious wake, which every waiter handles (it re-checks its
// condition).
//
// Lock word:
//
//   bits    name         set by                       cleared by
//   0       locked       lock() in enqueue/cancel/    unlock()
//                        notify_*
//   1       has_waiters  unlock() when the list is    unlock() when it is
//                        not empty                    empty
//   2       pending_all  notify_all while locked      unlock() (carries it out)
//   3..31   pending_one  notify_one while locked      unlock() (carries it out)
//           (a count)    (a count too large: all)
//
// Initial: 0 (unlocked, empty, nothing pending), so a list can be
// constant-initialised in static storage.
//
// No lost wake-up [W1]: a waiter enqueues (setting has_waiters), then issues
// a seq_cst fence and re-checks its condition; a notifier makes the condition
// true, then issues a seq_cst fence and loads the lock word. The two fences
// are ordered one way or the other, so either the waiter's re-check sees the
// condition or the notifier sees has_waiters (or locked) and wakes it.
//
// Node state:
//
//   value  name      set by                      cleared by
//   0      idle      constructor, cancel         enqueue
//   1      listed    enqueue                     notify (-> notified), cancel
//   2      notified  notify, after moving the    enqueue (re-listing)
//                    waker out of the node
//
// A notifier moves the waker out of the node before it stores `notified`, so
// once the waiter sees `notified` it may destroy its node at once; the
// notifier wakes through its own reference.
#pragma once

#include <cstdint>
#include <utility>

#include <sluice/detail/assert.hpp>
#include <sluice/detail/atomic.hpp>
#include <sluice/detail/backoff.hpp>
#include <sluice/detail/config.hpp>
#include <sluice/poll.hpp>
#include <sluice/waker.hpp>

namespace sluice::detail {

class waiter_list;

class waiter {
 public:
  waiter() noexcept = default;
  waiter(const waiter&) = delete;
  waiter& operator=(const waiter&) = delete;
  ~waiter() {
    // Relaxed: the owner's own last store (cancel), or a notifier's that
    // is_notified() or cancel() already acquired [W2].
    SLUICE_ASSERT(state_.load(std::memory_order_relaxed) != listed,
                  "waiter destroyed while still in a waiter_list (missing cancel)");
  }

  // True once a notifier has taken this waiter off its list. Acquire [W2]
  // pairs with the release store in waiter_list::take_front, so the waiter
  // sees what the notifier wrote before notifying.
  [[nodiscard]] bool is_notified() const noexcept {
    return state_.load(std::memory_order_acquire) == notified;
  }

 private:
  friend class waiter_list;
  static constexpr std::uint32_t idle = 0;
  static constexpr std::uint32_t listed = 1;
  static constexpr std::uint32_t notified = 2;

  waiter* next_ = nullptr;
  waiter* prev_ = nullptr;
  waker waker_;
  atomic<std::uint32_t> state_{idle};
};

class waiter_list {
 public:
  constexpr waiter_list() noexcept = default;
  waiter_list(const waiter_list&) = delete;
  waiter_list& operator=(const waiter_list&) = delete;
  ~waiter_list() {
    SLUICE_ASSERT(head_ == nullptr, "waiter_list destroyed while waiters are listed");
  }

  // Appends `w`, which will be woken through `wk`, then issues the [W1]
  // fence: the caller re-checks its condition right after this returns.
  // Requires: `w` is not listed; thread or task context.
  void enqueue(waiter& w, waker wk) noexcept {
    // Relaxed: an unlisted node is its owner's; no notifier stores to it.
    SLUICE_ASSERT(w.state_.load(std::memory_order_relaxed) != waiter::listed,
                  "waiter enqueued twice");
    lock();
    w.waker_ = std::move(wk);
    w.next_ = nullptr;
    w.prev_ = tail_;
    if (tail_ != nullptr) {
      tail_->next_ = &w;
    } else {
      head_ = &w;
    }
    tail_ = &w;
    // Relaxed: the node is only read by whoever holds the lock, and the
    // unlock below releases it.
    w.state_.store(waiter::listed, std::memory_order_relaxed);
    unlock();
    // [W1] seq_cst fence: orders the has_waiters store in unlock() before
    // the caller's re-check of its condition; pairs with the fence in
    // notify_one / notify_all.
    fence(std::memory_order_seq_cst);
  }

  // Takes `w` off the list if it is still there. Returns true if it was
  // (no notification was spent on it); false if a notifier already took it,
  // in which case the caller consumed a notification: it must either use
  // what it was woken for or pass it on with notify_one().
  // Requires: thread or task context.
  [[nodiscard]] bool cancel(waiter& w) noexcept {
    // Acquire [W2]: a notification seen here is complete.
    if (w.state_.load(std::memory_order_acquire) != waiter::listed) {
      // Relaxed: the notifier's [W2] store was its last touch of the node.
      w.state_.store(waiter::idle, std::memory_order_relaxed);
      return false;
    }
    lock();
    // Relaxed: notifiers store `notified` only while holding the lock, so
    // the acquire in lock() [W4] already ordered any such store before this.
    const bool was_listed = w.state_.load(std::memory_order_relaxed) == waiter::listed;
    if (was_listed) unlink(w);
    waker dropped = std::move(w.waker_);
    // Relaxed: the node is ours again; the lock orders it against notifiers.
    w.state_.store(waiter::idle, std::memory_order_relaxed);
    unlock();
    return was_listed;
  }

  // Wakes the longest-waiting waiter, if any. Any context; never waits.
  void notify_one() noexcept { notify<entry::fence>(pending_one); }

  // Wakes every listed waiter. Any context; never waits.
  void notify_all() noexcept { notify<entry::fence>(pending_all); }

  // notify_one for a notifier whose condition change was a seq_cst
  // read-modify-write sequenced before this call, on an object that every
  // waiter's re-check reads when it finds the condition false. Then a seq_cst
  // load of the lock word stands in for the [W1] fence ([W1']): if the
  // waiter's re-check missed the RMW, its fence precedes the RMW in the
  // single total order S; the RMW precedes this load in S; so this load
  // follows the waiter's fence in S and cannot miss the has_waiters bit set
  // before it (C++20 [atomics.order]). On x86 the load is a plain move where
  // the fence is an mfence; it keeps the check nearly free on hot paths.
  void notify_one_after_seq_cst_rmw() noexcept { notify<entry::seq_cst_load>(pending_one); }
  // notify_all on the same terms.
  void notify_all_after_seq_cst_rmw() noexcept { notify<entry::seq_cst_load>(pending_all); }

  // May be stale by the time it returns. Always inline: the check on every
  // commit and free, which a large caller would otherwise call.
  [[nodiscard, gnu::always_inline]] bool approx_has_waiters() const noexcept {
    // Relaxed: an observer, ordered by nothing.
    return (word_.load(std::memory_order_relaxed) & (locked | has_waiters)) != 0;
  }

 private:
  // Tests hold the lock through it, to notify beside a holder (defined
  // only in tests/unit/waiter_list_test.cpp).
  friend struct waiter_list_test_access;

  static constexpr std::uint32_t locked = 1u << 0;
  static constexpr std::uint32_t has_waiters = 1u << 1;
  static constexpr std::uint32_t pending_all = 1u << 2;
  static constexpr std::uint32_t pending_one = 1u << 3;
  static constexpr std::uint32_t pending_mask = ~(locked | has_waiters);
  static constexpr std::uint32_t pending_one_max = pending_mask & ~pending_all;

  enum class entry : std::uint8_t { fence, seq_cst_load };

  // Wakers carried out per turn of the lock (see "Wakes run outside the
  // lock" above), on the stack of whoever carries them out. One where a
  // wake costs no system call (freestanding: the lock turns are cheap, and
  // code size counts).
  static constexpr std::uint32_t wake_batch = __STDC_HOSTED__ ? 8 : 1;

  // Notifications not yet carried out are kept as the lock word keeps
  // them: pending_all, or a count of pending_one. Two sets of them merged;
  // a count too large for the field becomes all.
  static constexpr std::uint32_t merge(std::uint32_t a, std::uint32_t b) noexcept {
    if (((a | b) & pending_all) != 0 || b > pending_one_max - a) return pending_all;
    return a + b;
  }

  template <entry Entry>
  void notify(std::uint32_t request) noexcept {
    std::uint32_t s;
    if constexpr (Entry == entry::fence) {
      // [W1] seq_cst fence: the caller made the condition true before this;
      // pairs with the fence at the end of enqueue().
      fence(std::memory_order_seq_cst);
      // Relaxed: the fence above orders this load; the CAS in lock_or_leave
      // re-reads.
      s = word_.load(std::memory_order_relaxed);
    } else {
      // [W1'] seq_cst load: see notify_one_after_seq_cst_rmw(); pairs with
      // the fence at the end of enqueue().
      s = word_.load(std::memory_order_seq_cst);
    }
    if (lock_or_leave(s, request)) unlock(request);
  }

  // Takes the lock if it is free (true); if it is held, leaves `r` in the
  // lock word for the holder, who carries it out as it unlocks (false);
  // with nobody waiting or enqueueing, does nothing (false). `s` is the
  // word as last read. Never waits: any context.
  bool lock_or_leave(std::uint32_t s, std::uint32_t r) noexcept {
    for (;;) {
      if ((s & (locked | has_waiters)) == 0) return false;  // nobody waits or enqueues
      if ((s & locked) != 0) {
        const std::uint32_t next = (s & ~pending_mask) | merge(s & pending_mask, r);
        // Release [W3] pairs with the acquire in unlock_carrying_out(): the
        // holder sees our request (and our condition change, already
        // fenced in notify). Relaxed on failure: we re-decide on `s`.
        if (word_.compare_exchange_weak(s, next, std::memory_order_release,
                                        std::memory_order_relaxed))
          return false;
        continue;
      }
      // Acquire [W4] pairs with the release in unlock(): we see the
      // list as the last holder left it.
      if (word_.compare_exchange_weak(s, s | locked, std::memory_order_acquire,
                                      std::memory_order_relaxed))
        return true;
    }
  }

  void lock() noexcept {
    backoff spin;
    // Relaxed: the CAS below orders.
    std::uint32_t s = word_.load(std::memory_order_relaxed);
    for (;;) {
      if ((s & locked) == 0) {
        // Acquire [W4] pairs with the release in unlock().
        if (word_.compare_exchange_weak(s, s | locked, std::memory_order_acquire,
                                        std::memory_order_relaxed))
          return;
      } else {
        spin.spin();
        // Relaxed: only watches for the lock to look free; the CAS orders.
        s = word_.load(std::memory_order_relaxed);
      }
    }
  }

  // Requires: locked. Releases the lock, carrying out `r` and every
  // request that notifiers left in the lock word meanwhile.
  void unlock(std::uint32_t r = 0) noexcept {
    // Relaxed: the CAS orders.
    std::uint32_t s = word_.load(std::memory_order_relaxed);
    // Nothing to carry out, the common case: one CAS (not where the build
    // optimises for size; unlock_carrying_out does the same, in a loop).
    if (speed_over_size && r == 0 && (s & pending_mask) == 0) {
      // Release [W4] pairs with the acquire in lock()/lock_or_leave(): the
      // next holder sees the list as we leave it. A request left meanwhile
      // fails the CAS, and unlock_carrying_out takes it.
      if (word_.compare_exchange_strong(s, head_ != nullptr ? has_waiters : 0u,
                                        std::memory_order_release, std::memory_order_relaxed))
        return;
    }
    unlock_carrying_out(r, s);
  }

  // unlock() with requests to carry out: the wakes run after the lock is
  // released, wake_batch at a time ("Wakes run outside the lock"). A waker
  // has left its node before the node reads `notified`, so the node's
  // owner may go on (or free it) before the wake. `s`: the word as last
  // read.
  void unlock_carrying_out(std::uint32_t r, std::uint32_t s) noexcept {
    for (;;) {
      // Raw wakers, each owning its reference until its wake: no
      // destruction per slot.
      raw_waker batch[wake_batch];
      std::uint32_t n = 0;
      for (;;) {
        if ((s & pending_mask) != 0) {
          // Acquire [W3]: take the requests left by notifiers.
          if (!word_.compare_exchange_weak(s, s & ~pending_mask, std::memory_order_acquire,
                                           std::memory_order_relaxed))
            continue;
          r = merge(r, s & pending_mask);
          s &= ~pending_mask;
        }
        if ((r & pending_all) != 0) r = listed_count();
        while (n < wake_batch && head_ != nullptr && r != 0) {
          batch[n++] = take_front().into_raw();
          if (r != pending_all) r -= pending_one;
        }
        if (head_ == nullptr) r = 0;  // nobody left to wake
        const std::uint32_t next = head_ != nullptr ? has_waiters : 0u;
        // Release [W4], as in unlock(). A request left meanwhile fails the
        // CAS, and the loop takes it.
        if (word_.compare_exchange_weak(s, next, std::memory_order_release,
                                        std::memory_order_relaxed))
          break;
      }
      for (std::uint32_t i = 0; i < n; ++i)
        waker::from_raw(batch[i]).wake();
      if (r == 0) return;
      // More than a batch: the lock again, or the rest to its holder.
      // Relaxed: lock_or_leave's CAS orders.
      s = word_.load(std::memory_order_relaxed);
      if (!lock_or_leave(s, r)) return;
      // Relaxed: the CAS in the loop orders.
      s = word_.load(std::memory_order_relaxed);
    }
  }

  void unlink(waiter& w) noexcept {
    if (w.prev_ != nullptr) {
      w.prev_->next_ = w.next_;
    } else {
      head_ = w.next_;
    }
    if (w.next_ != nullptr) {
      w.next_->prev_ = w.prev_;
    } else {
      tail_ = w.prev_;
    }
    w.next_ = w.prev_ = nullptr;
  }

  // Requires: locked. A notify_all's request as a count of the waiters now
  // listed (pending_all itself for more than the count field holds).
  std::uint32_t listed_count() const noexcept {
    std::uint32_t n = 0;
    for (const waiter* w = head_; w != nullptr; w = w->next_) {
      if (n == pending_one_max / pending_one) return pending_all;
      ++n;
    }
    return n * pending_one;
  }

  // Requires: locked. Unlists the front waiter, marks it notified and
  // returns its waker (empty if the list was empty), for the caller to wake.
  waker take_front() noexcept {
    waiter* w = head_;
    if (w == nullptr) return waker{};
    unlink(*w);
    waker wk = std::move(w->waker_);
    // Release [W2] pairs with the acquire in waiter::is_notified() and
    // cancel(): the waker has left the node, so the waiter may free it.
    w->state_.store(waiter::notified, std::memory_order_release);
    return wk;
  }

  atomic<std::uint32_t> word_{0};
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
};

// A task's place in a waiter_list while it awaits a condition there: the
// blocking pattern above, driven by polls instead of a parker (see
// <sluice/poll.hpp>). Lives in the awaiter, so in the coroutine frame.
//
// Every notification this list sends stands for one unit of the condition
// (a value, a free slot), so one that a withdrawing waiter consumed but will
// not use is passed on with notify_one().
class polled_waiter {
 public:
  explicit polled_waiter(waiter_list& list) noexcept : list_(&list) {}
  polled_waiter(const polled_waiter&) = delete;
  polled_waiter& operator=(const polled_waiter&) = delete;
  // A suspended coroutine destroyed: leave the list, passing on what we got.
  ~polled_waiter() { withdraw(); }

  // One poll: `attempt` (true: the operation completed, with success or a
  // final error); if it did not, list `task` (cloned) and attempt again
  // after enqueue's [W1] fence. pending only when both attempts failed, with
  // the waker listed.
  template <class Attempt>
  [[nodiscard]] poll_status poll(const waker& task, Attempt&& attempt) noexcept {
    return poll(task, attempt, []() noexcept {});
  }
  // The same, with `after_listing` run between the listing and the second
  // attempt: the waiting side of a protocol whose notifiers check for
  // waiters with less than [W1]'s fence (the packet buffer's [PB4] pays the
  // heavy side of an asymmetric fence there).
  template <class Attempt, class AfterListing>
  [[nodiscard]] poll_status poll(const waker& task, Attempt&& attempt,
                                 AfterListing&& after_listing) noexcept {
    if (listed_) {
      listed_ = false;
      // Notified or not, the attempt below retries now, which uses any
      // notification we consumed.
      (void)list_->cancel(node_);
    }
    if (attempt()) return poll_status::ready;
    list_->enqueue(node_, task.clone());
    listed_ = true;
    after_listing();
    if (attempt()) {
      withdraw();
      return poll_status::ready;
    }
    return poll_status::pending;
  }

  // Leaves the list now (not listed: nothing), passing on a notification
  // that it took and did not use: for an awaiter abandoned while it lives
  // on (its timeout won), as its destruction would.
  void withdraw() noexcept {
    if (!listed_) return;
    listed_ = false;
    if (!list_->cancel(node_)) list_->notify_one();  // consumed, not used: pass it on
  }

 private:
  waiter_list* list_;
  waiter node_;
  bool listed_ = false;
};

}  // namespace sluice::detail
