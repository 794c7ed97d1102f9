// Every allocation of the program that includes this header is counted, so that a test can prove
// that a stretch of code allocates nothing (plans promise no allocation per execute). It replaces
// the global operator new and delete: include it from exactly one translation unit per test binary.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace convkit::testing {
/// Calls of operator new (every form) so far.
inline std::atomic<long long> allocations{0};
/// The largest request so far (a test may reset it).
inline std::atomic<std::size_t> largest_allocation{0};

inline void* counted_alloc(std::size_t n, std::size_t align) {
  ++allocations;
  for (std::size_t seen = largest_allocation.load(); n > seen && !largest_allocation.compare_exchange_weak(seen, n);) {
  }
  if (n == 0) n = 1;
  void* p =
      align <= alignof(std::max_align_t) ? std::malloc(n) : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

/// Heap allocations made by three runs of execute() (0 is what every plan promises), after a first
/// run, which may start the process's thread pool.
template <class Execute>
long long allocations_per_three_runs(Execute&& execute) {
  execute();
  const long long before = allocations.load();
  for (int i = 0; i < 3; ++i) execute();
  return allocations.load() - before;
}
}  // namespace convkit::testing

void* operator new(std::size_t n) { return convkit::testing::counted_alloc(n, 0); }
void* operator new[](std::size_t n) { return convkit::testing::counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return convkit::testing::counted_alloc(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return convkit::testing::counted_alloc(n, std::size_t(a)); }
// The nothrow forms too: otherwise their memory (e.g. Catch2's) comes from the sanitizer's operator
// new and goes back through the free() below, which AddressSanitizer reports as a mismatch.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return convkit::testing::counted_alloc(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return convkit::testing::counted_alloc(n, 0);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return convkit::testing::counted_alloc(n, std::size_t(a));
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return convkit::testing::counted_alloc(n, std::size_t(a));
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
