// Results of fallible operations, without exceptions.
//
// "Not now" (full, empty), "never" (closed) and "timed out" are distinct.
// An operation that takes ownership of a value gives it back on failure.
#pragma once

#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include <sluice/detail/assert.hpp>

namespace sluice {

enum class send_error : std::uint8_t {
  full,     // no room now (try_ forms only)
  closed,   // no receiver will ever take it
  timeout,  // no room before the deadline
};

enum class recv_error : std::uint8_t {
  empty,    // nothing now (try_ forms only)
  closed,   // drained and closed: nothing will ever come
  timeout,  // nothing before the deadline
};

constexpr const char* to_string(send_error e) noexcept {
  switch (e) {
    case send_error::full:
      return "full";
    case send_error::closed:
      return "closed";
    case send_error::timeout:
      return "timeout";
  }
  return "?";
}

constexpr const char* to_string(recv_error e) noexcept {
  switch (e) {
    case recv_error::empty:
      return "empty";
    case recv_error::closed:
      return "closed";
    case recv_error::timeout:
      return "timeout";
  }
  return "?";
}

// A timed await's own error (with_timeout, sleep.hpp).
enum class timeout_error : std::uint8_t { timed_out };

constexpr const char* to_string(timeout_error) noexcept {
  return "timed out";
}

// The outcome of a send: success, or the error with the value handed back.
template <class T>
class [[nodiscard]] send_result {
 public:
  static send_result ok() noexcept { return send_result{}; }
  static send_result failed(send_error e,
                            T&& value) noexcept(std::is_nothrow_move_constructible_v<T>) {
    return send_result{e, std::move(value)};
  }

  send_result(send_result&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : error_(other.error_), failed_(other.failed_) {
    if (failed_) ::new (static_cast<void*>(&value_)) T(std::move(other.value_));
  }
  send_result& operator=(send_result&&) = delete;
  ~send_result() {
    if (failed_) value_.~T();
  }

  [[nodiscard]] bool has_value() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return !failed_; }

  // Requires: the send failed.
  [[nodiscard]] send_error error() const noexcept {
    SLUICE_ASSERT(failed_, "send_result::error() called on a successful send");
    return error_;
  }
  // The value that was not sent. Requires: the send failed.
  [[nodiscard]] T value_back() && noexcept(std::is_nothrow_move_constructible_v<T>) {
    SLUICE_ASSERT(failed_, "send_result::value_back() called on a successful send");
    return std::move(value_);
  }
  [[nodiscard]] T& peek_value() noexcept {
    SLUICE_ASSERT(failed_, "send_result::peek_value() called on a successful send");
    return value_;
  }

 private:
  send_result() noexcept : failed_(false) {}
  send_result(send_error e, T&& value) : error_(e), failed_(true) {
    ::new (static_cast<void*>(&value_)) T(std::move(value));
  }

  union {
    T value_;
  };
  send_error error_{};
  bool failed_;
};

// A value or an error.
template <class T, class E>
class [[nodiscard]] result {
 public:
  result(T&& value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT
      : has_(true) {
    ::new (static_cast<void*>(&value_)) T(std::move(value));
  }
  result(E error) noexcept : error_(error), has_(false) {}  // NOLINT

  result(result&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : error_(other.error_), has_(other.has_) {
    if (has_) ::new (static_cast<void*>(&value_)) T(std::move(other.value_));
  }
  result& operator=(result&&) = delete;
  ~result() {
    if (has_) value_.~T();
  }

  [[nodiscard]] bool has_value() const noexcept { return has_; }
  explicit operator bool() const noexcept { return has_; }

  // Requires: has_value().
  [[nodiscard]] T& value() & noexcept {
    SLUICE_ASSERT(has_, "result::value() called on an error");
    return value_;
  }
  [[nodiscard]] const T& value() const& noexcept {
    SLUICE_ASSERT(has_, "result::value() called on an error");
    return value_;
  }
  [[nodiscard]] T value() && noexcept(std::is_nothrow_move_constructible_v<T>) {
    SLUICE_ASSERT(has_, "result::value() called on an error");
    return std::move(value_);
  }
  T& operator*() & noexcept { return value(); }
  const T& operator*() const& noexcept { return value(); }
  T operator*() && noexcept(std::is_nothrow_move_constructible_v<T>) {
    return std::move(*this).value();
  }
  T* operator->() noexcept { return &value(); }
  const T* operator->() const noexcept { return &value(); }

  // Requires: !has_value().
  [[nodiscard]] E error() const noexcept {
    SLUICE_ASSERT(!has_, "result::error() called on a value");
    return error_;
  }

 private:
  union {
    T value_;
  };
  E error_{};
  bool has_;
};

template <class T>
using recv_result = result<T, recv_error>;

}  // namespace sluice
