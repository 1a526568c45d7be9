// retire_list: objects that nothing refers to any more, pushed from any
// context (a signal or interrupt handler included) and taken, all at once,
// by thread context, which destroys them. The executor retires tasks there
// (task_header.hpp), the hosted port threads' parkers: a waker's last
// release, which may run in a handler, must not free memory there.
//
//   push (any context): CAS of the head, release on success [RL1];
//   take_all (thread context): exchange of the head with null, acquire
//   [RL1]: the taker sees what each pusher wrote before its push (the link,
//   and everything its acquire of the object's last reference saw).
// take_all takes the whole list, so no node is read after another thread
// could have freed it: no ABA.
#pragma once

#include <sluice/detail/atomic.hpp>

namespace sluice::detail {

// Next: the member of T that links it while it is retired.
template <class T, T* T::*Next>
class retire_list {
 public:
  constexpr retire_list() noexcept = default;
  retire_list(const retire_list&) = delete;
  retire_list& operator=(const retire_list&) = delete;

  // Any context. Lock-free.
  void push(T& node) noexcept {
    // Relaxed: the CAS below publishes the link with the node.
    T* head = head_.load(std::memory_order_relaxed);
    do {
      node.*Next = head;
      // Release [RL1] pairs with the acquire exchange in take_all.
    } while (!head_.compare_exchange_weak(head, &node, std::memory_order_release,
                                          std::memory_order_relaxed));
  }

  // Whether nothing waits on the list (an observer: may be stale).
  [[nodiscard]] bool approx_empty() const noexcept {
    // Relaxed: an observer.
    return head_.load(std::memory_order_relaxed) == nullptr;
  }

  // Calls dispose(T&) for every node pushed so far (one relaxed load when
  // there is none). Thread context.
  template <class Dispose>
  void take_all(Dispose&& dispose) noexcept {
    // Relaxed: a look; the exchange below acquires what it takes.
    if (head_.load(std::memory_order_relaxed) == nullptr) return;
    // Acquire [RL1]: pairs with the release CAS in push.
    T* node = head_.exchange(nullptr, std::memory_order_acquire);
    while (node != nullptr) {
      T* const next = node->*Next;
      dispose(*node);
      node = next;
    }
  }

 private:
  atomic<T*> head_{nullptr};
};

}  // namespace sluice::detail
