// RAII for the CUDA, cuFFT and cuBLAS objects the cufft backend makes, each released through the
// table of entry points it was made with (cuda_api.hpp), and the helpers that make them.
#pragma once

#include "../../version.hpp"

#include <initializer_list>
#include <utility>

#include "../../types.hpp"
#include "../cuda_api.hpp"
#include "../fft_sizes.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// A CUDA, cuFFT or cuBLAS object, released through the table it was made with.
template <class H>
class gpu_handle {
 public:
  using release_fn = void (*)(const cuda_api&, H);
  gpu_handle() = default;
  gpu_handle(const cuda_api& api, H h, release_fn release) : api_(&api), h_(h), release_(release) {}
  gpu_handle(gpu_handle&& o) noexcept : api_(std::exchange(o.api_, nullptr)), h_(o.h_), release_(o.release_) {}
  gpu_handle& operator=(gpu_handle&& o) noexcept {
    if (this != &o) {
      reset();
      api_ = std::exchange(o.api_, nullptr);
      h_ = o.h_;
      release_ = o.release_;
    }
    return *this;
  }
  gpu_handle(const gpu_handle&) = delete;
  gpu_handle& operator=(const gpu_handle&) = delete;
  ~gpu_handle() { reset(); }

  H get() const noexcept { return h_; }

 private:
  void reset() noexcept {
    if (api_ != nullptr) release_(*api_, h_);  // statuses of releases are not actionable
    api_ = nullptr;
  }
  const cuda_api* api_ = nullptr;
  H h_{};
  release_fn release_ = nullptr;
};

inline gpu_handle<void*> device_alloc(const cuda_api& api, index_t bytes) {
  void* p = nullptr;
  check_cuda(api, api.device_malloc(&p, static_cast<size_t>(bytes)), "cudaMalloc");
  return {api, p, [](const cuda_api& a, void* q) { a.device_free(q); }};
}

inline gpu_handle<void*> pinned_alloc(const cuda_api& api, index_t bytes) {
  void* p = nullptr;
  check_cuda(api, api.host_malloc(&p, static_cast<size_t>(bytes)), "cudaMallocHost");
  return {api, p, [](const cuda_api& a, void* q) { a.host_free(q); }};
}

inline gpu_handle<cudaEvent_t> make_event(const cuda_api& api) {
  cudaEvent_t ev = nullptr;
  check_cuda(api, api.event_create(&ev), "cudaEventCreate");
  return {api, ev, [](const cuda_api& a, cudaEvent_t h) { a.event_destroy(h); }};
}

/// A cuFFT plan of `batch` 2-D transforms of `layout` between real planes (padded rows, one after
/// another: stride 1, distance layout.real_count()) and half spectra at `complex_stride` and
/// `complex_dist` (1 and complex_count() for plane after plane; batch and 1 for frequency-major),
/// r2c if `to_spectrum`, else c2r; its work area (work_bytes) is the caller's to supply.
inline gpu_handle<cufftHandle> make_layout_plan(const cuda_api& api, cufftType type, fft::spectrum_layout layout,
                                                bool to_spectrum, int batch, int complex_stride, int complex_dist,
                                                size_t& work_bytes) {
  int n[2] = {int(layout.rows), int(layout.cols)};
  int real_embed[2] = {int(layout.rows), int(layout.real_row_stride())};
  int complex_embed[2] = {int(layout.rows), int(layout.complex_cols())};
  const int real_dist = int(layout.real_count());
  cufftHandle h = 0;
  check_cufft(api.fft_create(&h), "cufftCreate");
  gpu_handle<cufftHandle> plan(api, h, [](const cuda_api& a, cufftHandle q) { a.fft_destroy(q); });
  check_cufft(api.fft_set_auto_allocation(h, 0), "cufftSetAutoAllocation");
  const cufftResult made = to_spectrum ? api.fft_make_plan_many(h, 2, n, real_embed, 1, real_dist, complex_embed,
                                                                complex_stride, complex_dist, type, batch, &work_bytes)
                                       : api.fft_make_plan_many(h, 2, n, complex_embed, complex_stride, complex_dist,
                                                                real_embed, 1, real_dist, type, batch, &work_bytes);
  check_cufft(made, "cufftMakePlanMany");
  return plan;
}

/// Gives the plans one work area and one stream: they run one after the other on it.
inline void bind_plans(const cuda_api& api, std::initializer_list<cufftHandle> plans, void* work, cudaStream_t stream) {
  for (cufftHandle h : plans) {
    check_cufft(api.fft_set_work_area(h, work), "cufftSetWorkArea");
    check_cufft(api.fft_set_stream(h, stream), "cufftSetStream");
  }
}

inline gpu_handle<cudaStream_t> make_stream(const cuda_api& api) {
  cudaStream_t stream = nullptr;
  check_cuda(api, api.stream_create_with_flags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return {api, stream, [](const cuda_api& a, cudaStream_t h) { a.stream_destroy(h); }};
}

inline gpu_handle<cublasHandle_t> make_blas(const cuda_api& api) {
  cublasHandle_t blas = nullptr;
  check_cublas(api, api.blas_create(&blas), "cublasCreate");
  return {api, blas, [](const cuda_api& a, cublasHandle_t h) { a.blas_destroy(h); }};
}

/// The calling thread's current device: workspaces belong to the device they were made on.
inline int current_device(const cuda_api& api) {
  int device = 0;
  check_cuda(api, api.get_device(&device), "cudaGetDevice");
  return device;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
