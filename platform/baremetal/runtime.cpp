// The few C and C++ runtime pieces a freestanding sluice image needs,
// written for sluice (no C library, no libstdc++ runtime): the memory
// functions the compiler may call, the static-destructor hooks (an image
// never exits through them), and the allocation functions the core may name.
// Shared by every bare-metal port and the freestanding link test.
#include <cstddef>
#include <new>

// The loops below must stay loops: GCC would otherwise recognise them as
// memset / memcpy and compile them into calls to themselves.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

// The nothrow tag the allocation functions are called with (normally
// defined by the C++ runtime library, which an image does not link).
namespace std {
const nothrow_t nothrow{};
}  // namespace std

extern "C" {
void* memset(void* dest, int value, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dest);
  while (n-- != 0)
    *d++ = static_cast<unsigned char>(value);
  return dest;
}
void* memcpy(void* dest, const void* src, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dest);
  const auto* s = static_cast<const unsigned char*>(src);
  while (n-- != 0)
    *d++ = *s++;
  return dest;
}
void* memmove(void* dest, const void* src, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dest);
  const auto* s = static_cast<const unsigned char*>(src);
  if (d < s) {
    while (n-- != 0)
      *d++ = *s++;
  } else {
    while (n-- != 0)
      d[n] = s[n];
  }
  return dest;
}
int memcmp(const void* a, const void* b, std::size_t n) {
  const auto* x = static_cast<const unsigned char*>(a);
  const auto* y = static_cast<const unsigned char*>(b);
  for (; n != 0; --n, ++x, ++y)
    if (*x != *y) return *x < *y ? -1 : 1;
  return 0;
}
// Static objects with destructors register them; a program that never
// exits runs none of them.
void* __dso_handle = nullptr;
int __cxa_atexit(void (*)(void*), void*, void*) {
  return 0;
}
int __aeabi_atexit(void*, void (*)(void*), void*) {
  return 0;
}
void __cxa_pure_virtual() {
  for (;;) {
  }
}
}

// There is no heap: the one allocation function the core may name (the
// nothrow form, for hosted defaults such as task frames off the heap)
// reports no memory; task frames and the run queue come from static storage.
void* operator new(std::size_t, const std::nothrow_t&) noexcept {
  return nullptr;
}
void operator delete(void*, const std::nothrow_t&) noexcept {}
void operator delete(void*) noexcept {}
void operator delete(void*, std::size_t) noexcept {}
