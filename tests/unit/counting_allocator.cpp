// Replaces the global allocation functions of the unit test binary with
// counting ones (counting_allocator.hpp).
#include "counting_allocator.hpp"

#include <cstddef>
#include <cstdlib>
#include <new>

namespace sluice::test {
thread_local constinit long allocations = 0;
thread_local constinit long frees = 0;
thread_local constinit volatile std::sig_atomic_t in_signal_handler = 0;
std::atomic<long> frees_in_handler{0};
std::atomic<long> frees_by_all_threads{0};
}  // namespace sluice::test

namespace {

void* counted_alloc(std::size_t size, std::size_t align) {
  ++sluice::test::allocations;
  if (size == 0) size = 1;
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(size)
                : std::aligned_alloc(align, (size + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void counted_free(void* p) noexcept {
  if (p == nullptr) return;
  ++sluice::test::frees;
  // Relaxed: counters, read by a test after it joined the threads that
  // free (the join orders them), or after its handler returned.
  sluice::test::frees_by_all_threads.fetch_add(1, std::memory_order_relaxed);
  if (sluice::test::in_signal_handler != 0)
    sluice::test::frees_in_handler.fetch_add(1, std::memory_order_relaxed);
  std::free(p);
}

}  // namespace

void* operator new(std::size_t size) {
  return counted_alloc(size, 0);
}
void* operator new[](std::size_t size) {
  return counted_alloc(size, 0);
}
void* operator new(std::size_t size, std::align_val_t align) {
  return counted_alloc(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return counted_alloc(size, static_cast<std::size_t>(align));
}
// The nothrow forms too: the default ones call the replaced forms above,
// but a sanitizer runtime supplies its own, which would bypass the count.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size, 0);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  counted_free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  counted_free(p);
}
void operator delete(void* p) noexcept {
  counted_free(p);
}
void operator delete[](void* p) noexcept {
  counted_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  counted_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  counted_free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  counted_free(p);
}
