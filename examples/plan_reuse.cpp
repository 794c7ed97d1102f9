// One plan applied to a stream of frames: shapes, backend and buffers are fixed once, and each frame
// is convolved into the same output without any heap allocation (counted below).
#include <convkit/convkit.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

// Count every heap allocation (convkit's arrays use the aligned forms). GCC cannot see that these
// pair malloc/aligned_alloc with free.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
static std::atomic<long> heap_allocations{0};
void* operator new(std::size_t n) {
  ++heap_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  ++heap_allocations;
  const std::size_t align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
// The nothrow forms too (std::stable_sort uses them), so that every block goes back through free().
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  ++heap_allocations;
  return std::malloc(n ? n : 1);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  ++heap_allocations;
  const std::size_t align = static_cast<std::size_t>(a);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

int main() {
  using namespace convkit;
  const convkit::index_t rows = 240, cols = 320;
  array2d<float> edge_kernel(3, 3);  // a Laplacian edge detector
  edge_kernel(0, 1) = edge_kernel(1, 0) = edge_kernel(1, 2) = edge_kernel(2, 1) = 1;
  edge_kernel(1, 1) = -4;
  options opt;
  opt.mode = output::same;
  opt.edge = border::replicate;
  opt.threads = 1;  // per-frame work this small is not worth extra threads

  plan<float> laplacian(rows, cols, edge_kernel, opt);  // all allocation happens here
  array2d<float> frame(rows, cols), edges(rows, cols);
  double checksum = 0;
  const long before = heap_allocations.load();
  for (int t = 0; t < 100; ++t) {
    for (convkit::index_t r = 0; r < rows; ++r)  // a moving bright bar
      for (convkit::index_t c = 0; c < cols; ++c) frame(r, c) = (c >= 2 * t && c < 2 * t + 8) ? 1.0f : 0.0f;
    laplacian.execute(frame, edges);
    checksum += edges(rows / 2, 2 * t - 1 < 0 ? 0 : 2 * t - 1);
  }
  const long per_frame = heap_allocations.load() - before;
  std::printf("100 frames through one %s plan: %ld heap allocations, checksum %.1f\n", to_string(laplacian.chosen()),
              per_frame, checksum);
  return per_frame == 0 && checksum == 99.0 ? 0 : 1;
}
