// convkit/backends/cufft.hpp - algorithm::cufft: FFT convolution on an NVIDIA GPU through cuFFT,
// with the spectrum product and the channel sums done by cuBLAS. CMake target convkit::cufft
// (CUDA::cudart, CUDA::cufft, CUDA::cublas). Plain C++: nothing here needs nvcc.
//
// Single planes run as overlap-save tiles streamed through pinned buffers on two streams
// (detail/cufft_engine.hpp); batches as passes of images with batched transforms and one batched
// complex GEMM per group (detail/cufft_batch.hpp). Every CUDA, cuFFT and cuBLAS status is checked
// (convkit::error names the call and status); no device means convkit::unavailable, and automatic
// then never picks cufft. Nor does it keep cufft for data holding NaN or Inf (an FFT spreads them):
// weights and a constant border are known when the plan is made, and the executors check the input
// as they extend each window into pinned memory (executor::execute_finite), so that automatic's
// fallback computes a call that meets one. Device inputs (cufft::plan::execute_device) are not checked.
#pragma once

#include "../version.hpp"

#include <memory>
#include <string>

#include "../detail/arguments.hpp"
#include "../detail/backend.hpp"
#include "../detail/cuda/handles.hpp"
#include "../detail/cufft_batch.hpp"
#include "../detail/cufft_cost.hpp"
#include "../detail/cufft_engine.hpp"
#include "../detail/cufft_pool.hpp"
#include "../options.hpp"
#include "../tuning.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace cufft {

/// The cufft backend's settings (tuning.hpp): tiling, device-memory cap, workspace cache.
using config = gpu_fft_config;
using tiling = fft_tiling;

/// Sets the process default of tuning::gpu_fft for plans and calls made from now on (thread-safe).
/// Throws convkit::error for a negative tile size or memory_cap.
inline void set_config(const config& c) {
  convkit::detail::check(c, "cufft::config");
  tuning t;
  t.gpu_fft = c;
  set_default_tuning(t);
}

/// The process default of tuning::gpu_fft (thread-safe).
inline config get_config() { return convkit::detail::default_settings::get().gpu_fft; }

/// Where one execute() spent its time: host_to_device_ms (copies of the extended input; 0 for
/// device inputs), compute_ms (r2c, product, c2r; device inputs: plus on-device copies),
/// device_to_host_ms (results to pinned memory; 0 for device outputs), host_ms (CPU time extending
/// and gathering), total_ms (wall clock), tiles. The three GPU times are sums over tiles of CUDA
/// event intervals; with two tiles in flight they overlap, so their sum can exceed total_ms.
using timing = convkit::detail::cufft_timing;

/// Why this program cannot run algorithm::cufft here ("" if it can): no driver, a driver older than
/// the CUDA runtime it was built with, or no device.
inline std::string unavailable_reason() {
  return convkit::detail::cuda_unavailable_reason(convkit::detail::active_cuda_api());
}

/// True if a CUDA device is usable.
inline bool available() { return unavailable_reason().empty(); }

// workspace_cache (declared in tuning.hpp): the GPU resources (cuFFT plans, streams, device and
// pinned buffers, per transform shape) that one-shot conv2d calls, convkit::plan and layer_plan hand
// back when they end, so that the next call of the same shape makes nothing: at most four sets per
// kind (single-plane and batch, float and double), per device. Its device memory counts as free
// when a new call sizes its tiles, and it is released when a new set needs the room. Calls use the
// cache in their tuning (gpu_fft_config::cache), else default_cache(). Members: release(),
// device_bytes(api), count<W>().

/// The process-wide cache: lives until the process ends (never destroyed: releasing GPU objects
/// during static destruction can run after the CUDA runtime has shut down).
inline workspace_cache& default_cache() { return convkit::detail::default_cufft_cache(); }

/// Releases what the process-wide cache holds (thread-safe); executors in use keep theirs until
/// they finish.
inline void release_cached() { default_cache().release(); }

/// A rows x cols matrix in device memory (rows contiguous), for plan::execute_device: filled from
/// and read back to host views through its own pinned staging buffer. Movable, not copyable.
template <class T>
class device_array {
 public:
  /// Throws convkit::unavailable without a device, convkit::error for negative sizes or a failed call.
  device_array(index_t rows, index_t cols) : api_(&convkit::detail::active_cuda_api()), rows_(rows), cols_(cols) {
    if (rows < 0 || cols < 0) throw error("device_array: rows and cols must be >= 0");
    const std::string reason = convkit::detail::cuda_unavailable_reason(*api_);
    if (!reason.empty()) throw unavailable("cufft::device_array: " + reason);
    const index_t bytes = convkit::detail::checked_mul(convkit::detail::checked_mul(rows, cols, "device_array"),
                                                       index_t(sizeof(T)), "device_array");
    data_ = convkit::detail::device_alloc(*api_, bytes);
    staging_ = convkit::detail::pinned_alloc(*api_, bytes);
    stream_ = convkit::detail::make_stream(*api_);
  }

  /// The device memory, as a view for execute_device (never dereference it on the host).
  view2d<T> view() noexcept { return {static_cast<T*>(data_.get()), rows_, cols_, cols_}; }
  view2d<const T> view() const noexcept { return {static_cast<const T*>(data_.get()), rows_, cols_, cols_}; }
  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }

  /// Copies `host` (rows x cols) to the device; returns when the copy is done.
  void upload(view2d<const T> host) {
    check_shape(host.shape());
    T* staging = static_cast<T*>(staging_.get());
    for (index_t r = 0; r < rows_; ++r) std::copy(host.row(r), host.row(r) + cols_, staging + r * cols_);
    copy(data_.get(), staging_.get(), cudaMemcpyHostToDevice);
  }

  /// Copies the device contents to `host` (rows x cols); returns when they are there.
  void download(view2d<T> host) {
    check_shape(host.shape());
    copy(staging_.get(), data_.get(), cudaMemcpyDeviceToHost);
    const T* staging = static_cast<const T*>(staging_.get());
    for (index_t r = 0; r < rows_; ++r) std::copy(staging + r * cols_, staging + (r + 1) * cols_, host.row(r));
  }

 private:
  void check_shape(shape2d s) const {
    if (s != shape2d{rows_, cols_})
      throw error("device_array: host view is " + std::to_string(s.rows) + "x" + std::to_string(s.cols) +
                  ", expected " + std::to_string(rows_) + "x" + std::to_string(cols_));
  }
  void copy(void* dst, const void* src, cudaMemcpyKind kind) {
    if (rows_ == 0 || cols_ == 0) return;
    const size_t row_bytes = size_t(cols_) * sizeof(T);
    convkit::detail::check_cuda(
        *api_, api_->memcpy_2d_async(dst, row_bytes, src, row_bytes, row_bytes, size_t(rows_), kind, stream_.get()),
        "cudaMemcpy2DAsync");
    convkit::detail::check_cuda(*api_, api_->stream_synchronize(stream_.get()), "cudaStreamSynchronize");
  }

  const convkit::detail::cuda_api* api_;
  index_t rows_, cols_;
  convkit::detail::gpu_handle<void*> data_, staging_;
  convkit::detail::gpu_handle<cudaStream_t> stream_;
};

/// A convolution prepared on the GPU once and applied to many inputs: cuFFT plans, device and
/// pinned buffers and the kernel spectrum are made by the constructor, execute() allocates nothing,
/// and the destructor releases them all (they go to no workspace_cache; but the memory cap counts
/// what the configuration's cache holds as free, and that cache is released if the plan needs its room).
/// Movable, not copyable; one thread at a time (it owns its streams and buffers).
template <class T>
class plan {
  using engine = convkit::detail::cufft_engine<T>;

 public:
  /// Prepares the convolution of rows x cols inputs with `kernel` (copied to the device) under
  /// `opt` (options::algo and threads are ignored; options::tune.gpu_fft, if set, is the
  /// configuration, else get_config()). The FFT's normwise bound: accuracy::componentwise is
  /// refused. Throws convkit::error for bad shapes or options (see output_shape), a memory cap too
  /// small for the smallest tile, or a failed CUDA call; convkit::unavailable if there is no usable
  /// device.
  plan(index_t rows, index_t cols, view2d<const T> kernel, const options& opt = {})
      : problem_((convkit::detail::refuse_componentwise(opt.accuracy == accuracy::componentwise, "cufft",
                                                        "(its checks run on the CPU's fft backend only)"),
                  convkit::detail::image_problem<T>(rows, cols, kernel, opt, true))),
        engine_(std::make_unique<engine>(problem_, convkit::detail::correlation_order(kernel, opt.correlate).data(),
                                         nullptr, convkit::detail::cufft_reuse::owned)) {}

  /// out = input (*) kernel, both in host memory: the input goes to the device through pinned
  /// buffers, the results come back the same way. Fills *measured if it is not null.
  void execute(view2d<const T> input, view2d<T> out, timing* measured = nullptr) {
    convkit::detail::check_call<T>(input, out, input_shape(), output_shape());
    if (!engine_) throw error("plan is empty: it was moved from");
    engine_->run_host(input, out, measured);
  }

  /// out = input (*) kernel, both in device memory (views of device pointers, row_stride in
  /// elements; never dereference them on the host): no transfer between host and device.
  void execute_device(view2d<const T> device_input, view2d<T> device_out, timing* measured = nullptr) {
    convkit::detail::check_call<T>(device_input, device_out, input_shape(), output_shape());
    if (!engine_) throw error("plan is empty: it was moved from");
    engine_->run_device(device_input, device_out, measured);
  }

  shape2d input_shape() const noexcept { return {problem_.rows.in, problem_.cols.in}; }
  shape2d output_shape() const noexcept { return problem_.out_plane(); }
  /// Overlap-save tiles per execute (1: the whole image in one transform).
  index_t tiles() const noexcept { return engine_ ? engine_->tiles().tiles() : 0; }
  /// The transform size of each tile.
  shape2d transform_shape() const noexcept {
    if (!engine_) return {0, 0};
    return {engine_->tiles().rows.transform, engine_->tiles().cols.transform};
  }

 private:
  convkit::detail::conv_problem problem_;
  std::unique_ptr<engine> engine_;
};

}  // namespace cufft
CONVKIT_NAMESPACE_END

#if CONVKIT_BACKEND_IMPLEMENTATION  // the backend: not in a program built against the compiled library
CONVKIT_NAMESPACE_BEGIN
namespace detail {

template <class T>
class cufft_image_executor final : public executor<T> {
 public:
  cufft_image_executor(const conv_problem& p, const T* kernel, const T* bias)
      : p_(p), engine_(p, kernel, bias, cufft_reuse::pooled) {}
  void execute(planes<const T> in, planes<T> out) override {
    engine_.run_host(in.view(0, 0, p_.rows.in, p_.cols.in), out.view(0, 0, p_.rows.out, p_.cols.out), nullptr);
  }
  /// Each window is checked for NaN and Inf as it is extended into pinned memory.
  bool execute_finite(planes<const T> in, planes<T> out) override {
    bool spoiled = false;
    engine_.run_host(in.view(0, 0, p_.rows.in, p_.cols.in), out.view(0, 0, p_.rows.out, p_.cols.out), nullptr,
                     &spoiled);
    return !spoiled;
  }

 private:
  conv_problem p_;
  cufft_engine<T> engine_;
};

template <class T>
std::unique_ptr<executor<T>> make_cufft(const conv_problem& p, const T* weights, const T* bias) {
  refuse_sparse(p.sparse(), "cufft");
  refuse_componentwise(p.componentwise, "cufft", "(its checks run on the CPU's fft backend only)");
  if (p.single_plane()) return std::make_unique<cufft_image_executor<T>>(p, weights, bias);
  return std::make_unique<cufft_batch_executor<T>>(p, weights, bias);
}

inline const backend cufft_backend{algorithm::cufft, &cufft_cost, &make_cufft<float>, &make_cufft<double>,
                                   &cufft_library};
inline const bool cufft_registered = register_backend(cufft_backend);

}  // namespace detail
CONVKIT_NAMESPACE_END
#endif  // CONVKIT_BACKEND_IMPLEMENTATION
