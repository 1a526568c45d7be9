// waker: a type-erased handle that wakes something up.
//
// Two words, {data, vtable}, with a static vtable {clone, wake, wake_by_ref,
// drop}: the RawWaker of Rust's core library, which sluice's executor design
// descends from. A waker owns one reference to whatever `data` points to;
// clone() makes another, wake() consumes this one, drop happens in the
// destructor. An empty waker is valid and does nothing.
//
// Every vtable function must be safe to call from any thread, from a POSIX
// signal handler and from an interrupt handler: no allocation, no lock that
// the interrupted code could hold.
#pragma once

#include <concepts>
#include <new>
#include <utility>

namespace sluice {

struct waker_vtable;

// The two words, without ownership semantics.
struct raw_waker {
  const void* data = nullptr;
  const waker_vtable* vtable = nullptr;
};

struct waker_vtable {
  raw_waker (*clone)(const void* data) noexcept;   // adds a reference
  void (*wake)(const void* data) noexcept;         // wakes and drops the reference
  void (*wake_by_ref)(const void* data) noexcept;  // wakes, keeps the reference
  void (*drop)(const void* data) noexcept;         // drops the reference
};

class waker {
 public:
  constexpr waker() noexcept = default;

  // Adopts the reference that `raw` carries.
  static waker from_raw(raw_waker raw) noexcept { return waker{raw}; }

  waker(waker&& other) noexcept : raw_(std::exchange(other.raw_, raw_waker{})) {}
  waker& operator=(waker&& other) noexcept {
    if (this != &other) {
      reset();
      raw_ = std::exchange(other.raw_, raw_waker{});
    }
    return *this;
  }
  waker(const waker&) = delete;
  waker& operator=(const waker&) = delete;
  ~waker() { reset(); }

  [[nodiscard]] waker clone() const noexcept {
    return raw_.vtable ? waker{raw_.vtable->clone(raw_.data)} : waker{};
  }

  // Wakes and gives up this reference; the waker is empty afterwards.
  void wake() && noexcept {
    if (const raw_waker raw = std::exchange(raw_, raw_waker{}); raw.vtable)
      raw.vtable->wake(raw.data);
  }
  // Convenience for lvalues: same as std::move(w).wake().
  void wake() & noexcept { std::move(*this).wake(); }

  void wake_by_ref() const noexcept {
    if (raw_.vtable) raw_.vtable->wake_by_ref(raw_.data);
  }

  // True when both would wake the same thing.
  [[nodiscard]] bool will_wake(const waker& other) const noexcept {
    return raw_.data == other.raw_.data && raw_.vtable == other.raw_.vtable;
  }

  [[nodiscard]] bool empty() const noexcept { return raw_.vtable == nullptr; }
  explicit operator bool() const noexcept { return !empty(); }

  // Gives up ownership without dropping.
  [[nodiscard]] raw_waker into_raw() && noexcept { return std::exchange(raw_, raw_waker{}); }
  [[nodiscard]] raw_waker as_raw() const noexcept { return raw_; }

  void reset() noexcept {
    if (const raw_waker raw = std::exchange(raw_, raw_waker{}); raw.vtable)
      raw.vtable->drop(raw.data);
  }

 private:
  constexpr explicit waker(raw_waker raw) noexcept : raw_(raw) {}
  raw_waker raw_;
};

static_assert(sizeof(waker) == 2 * sizeof(void*), "a waker is two words");

// A waker borrowed for the duration of a call: it does not own a reference
// and never drops one, so handing it out costs no reference-count traffic.
// Whoever needs to keep it calls get().clone().
class borrowed_waker {
 public:
  explicit borrowed_waker(raw_waker raw) noexcept {
    ::new (static_cast<void*>(&waker_)) waker(waker::from_raw(raw));
  }
  borrowed_waker(const borrowed_waker&) = delete;
  borrowed_waker& operator=(const borrowed_waker&) = delete;
  ~borrowed_waker() {}  // deliberately does not destroy waker_: it owns nothing

  [[nodiscard]] const waker& get() const noexcept { return waker_; }
  operator const waker&() const noexcept { return waker_; }  // NOLINT(google-explicit-constructor)

 private:
  union {
    waker waker_;
  };
};

// An intrusively counted object that can be woken.
//   add_ref()      adds a reference
//   release()      drops one; the object frees itself on the last
//   wake_by_ref()  wakes it
// and optionally wake() to wake and drop one reference in one step.
template <class T>
concept wakeable = requires(T& t) {
  { t.add_ref() }
  noexcept;
  { t.release() }
  noexcept;
  { t.wake_by_ref() }
  noexcept;
};

namespace detail {

template <wakeable T>
struct wakeable_vtable {
  static T* self(const void* data) noexcept { return static_cast<T*>(const_cast<void*>(data)); }

  static raw_waker clone(const void* data) noexcept {
    self(data)->add_ref();
    return raw_waker{data, &table};
  }
  static void wake(const void* data) noexcept {
    if constexpr (requires(T & t) {
                    { t.wake() }
                    noexcept;
                  }) {
      self(data)->wake();
    } else {
      self(data)->wake_by_ref();
      self(data)->release();
    }
  }
  static void wake_by_ref(const void* data) noexcept { self(data)->wake_by_ref(); }
  static void drop(const void* data) noexcept { self(data)->release(); }

  // One vtable per type, in static storage.
  static constexpr waker_vtable table{&clone, &wake, &wake_by_ref, &drop};
};

}  // namespace detail

// Makes a waker that adopts one existing reference to `counted`.
template <wakeable T>
[[nodiscard]] waker adopt_waker(T* counted) noexcept {
  return waker::from_raw(raw_waker{counted, &detail::wakeable_vtable<T>::table});
}

// Makes a waker that takes a new reference to `object`.
template <wakeable T>
[[nodiscard]] waker make_waker(T& object) noexcept {
  object.add_ref();
  return adopt_waker(&object);
}

// The raw form of a waker for `object` without a reference: for borrowed_waker.
template <wakeable T>
[[nodiscard]] raw_waker raw_waker_for(T& object) noexcept {
  return raw_waker{&object, &detail::wakeable_vtable<T>::table};
}

}  // namespace sluice
