// Pieces shared by every channel flavour: the outcome of one attempt, raw
// storage for a value that may not exist yet, and the spacing that keeps
// data written by different cores on different cache lines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include <sluice/detail/config.hpp>

namespace sluice::detail {

// What one attempt on a flavour's engine did. `would_block` is "full" for a
// send and "empty" for a receive.
enum class op_status : std::uint8_t { ok, would_block, closed };

// Head and tail are written by different sides; two lines apart so that the
// adjacent-line prefetcher of x86 does not pair them (see config.hpp).
inline constexpr std::size_t contention_spacing = 2 * cache_line;

// Storage for a T that is constructed and destroyed by hand. Value-initialised
// bytes, so that an engine holding it can be constant-initialised and placed
// in .bss.
template <class T>
class raw_storage {
 public:
  constexpr raw_storage() noexcept = default;

  template <class... Args>
  void construct(Args&&... args) noexcept {
    ::new (static_cast<void*>(bytes_)) T(std::forward<Args>(args)...);
  }
  void destroy() noexcept { get().~T(); }
  [[nodiscard]] T& get() noexcept { return *std::launder(reinterpret_cast<T*>(bytes_)); }
  [[nodiscard]] void* address() noexcept { return bytes_; }

 private:
  alignas(T) unsigned char bytes_[sizeof(T)]{};
};

// Elements move through a channel without exceptions (the core is built with
// -fno-exceptions): moving one in or out must not throw.
template <class T>
concept channel_element = std::is_nothrow_move_constructible_v<T> &&
                          std::is_nothrow_destructible_v<T> && !std::is_reference_v<T> &&
                          !std::is_const_v<T>;

}  // namespace sluice::detail
