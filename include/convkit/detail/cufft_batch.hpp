// The cufft backend on a batch (N images of C channels, K filters, groups): passes of as many
// images as fit, each one batched r2c of all channel planes into frequency-major spectra, one
// batched complex GEMM per group for the sums over channels (cublas<C|Z>gemmStridedBatched), and
// one batched c2r. Host views only.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "../padding.hpp"
#include "backend.hpp"
#include "choice.hpp"
#include "cuda/handles.hpp"
#include "cuda/precision.hpp"
#include "cufft_cost.hpp"
#include "cufft_engine.hpp"
#include "cufft_layout.hpp"
#include "cufft_pool.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// The GPU resources of a cuFFT batch executor that depend only on the transform layout, the
/// images per pass and the channel counts (its key): a stream and cuBLAS handle; the filters'
/// spectra with the pinned and device planes and batched r2c that make them; pinned and device
/// planes for a pass, its input and output spectra, its batched r2c and c2r; one work area for the
/// three plans, which run one after the other on the stream. Made once per key; executors hand
/// them back to a cufft_cache, so one-shot layer calls of one shape reuse them.
template <class T>
struct cufft_batch_workspace final : cufft_workspace_base {
  using precision = cufft_traits<T>;

  struct key {
    const cuda_api* api;
    int device;
    index_t rows, cols, chunk, c, k, c_per_group;
    bool operator==(const key& o) const noexcept {
      return api == o.api && device == o.device && rows == o.rows && cols == o.cols && chunk == o.chunk && c == o.c &&
             k == o.k && c_per_group == o.c_per_group;
    }
  };

  /// Throws convkit::error naming the failed call; what was made before it is released.
  cufft_batch_workspace(const cuda_api& a, const key& k) : cufft_workspace_base(a), layout{k.rows, k.cols}, id_(k) {
    const index_t filter_planes = k.k * k.c_per_group, pass_planes = k.chunk * std::max(k.c, k.k);
    stream = make_stream(api);
    blas = make_blas(api);
    check_cublas(api, api.blas_set_stream(blas.get(), stream.get()), "cublasSetStream");
    filter_staging = pinned_alloc(api, reals_bytes(filter_planes));
    filter_real = device(reals_bytes(filter_planes));
    filters = device(spectra_bytes(filter_planes));
    host = pinned_alloc(api, reals_bytes(pass_planes));
    real = device(reals_bytes(pass_planes));
    inputs = device(spectra_bytes(k.chunk * k.c));
    outputs = device(spectra_bytes(k.chunk * k.k));
    // Spectra frequency-major: value f of plane q at f * planes + q.
    const auto plan = [&](cufftType type, bool to_spectra, index_t planes, size_t& work_bytes) {
      return make_layout_plan(api, type, layout, to_spectra, int(planes), int(planes), 1, work_bytes);
    };
    size_t filter_work = 0, forward_work = 0, inverse_work = 0;
    filter_forward = plan(precision::forward_type, true, filter_planes, filter_work);
    forward = plan(precision::forward_type, true, k.chunk * k.c, forward_work);
    inverse = plan(precision::inverse_type, false, k.chunk * k.k, inverse_work);
    work = device(index_t(std::max<size_t>({filter_work, forward_work, inverse_work, 1})));
    bind_plans(api, {filter_forward.get(), forward.get(), inverse.get()}, work.get(), stream.get());
  }
  ~cufft_batch_workspace() override { settle(); }  // work in flight must finish before its buffers are freed

  const key& id() const noexcept { return id_; }

  /// Padded real plane `plane` of a pinned or device buffer of planes.
  view2d<T> plane_view(void* base, index_t plane) const noexcept {
    return {static_cast<T*>(base) + plane * layout.real_count(), layout.rows, layout.cols, layout.real_row_stride()};
  }
  index_t reals_bytes(index_t planes) const {
    return checked_mul(checked_mul(planes, layout.real_count(), "cufft layer planes"), index_t(sizeof(T)),
                       "cufft layer planes");
  }
  index_t spectra_bytes(index_t planes) const {
    return checked_mul(checked_mul(planes, layout.complex_count(), "cufft layer spectra"), 2 * index_t(sizeof(T)),
                       "cufft layer spectra");
  }

  /// `planes` whole real planes in one transfer on the stream (one plane per row: a pitch of one
  /// plane stays under the copy's pitch limit, cufft_batch_chunk makes sure).
  void copy_planes(void* dst, const void* src, index_t planes, cudaMemcpyKind kind) {
    busy = true;
    const size_t plane = size_t(reals_bytes(1));
    check_cuda(api, api.memcpy_2d_async(dst, plane, src, plane, plane, size_t(planes), kind, stream.get()),
               "cudaMemcpy2DAsync");
  }
  void sync() {
    check_cuda(api, api.stream_synchronize(stream.get()), "cudaStreamSynchronize");
    busy = false;
  }
  void settle() noexcept override {
    if (busy) api.stream_synchronize(stream.get());
    busy = false;
  }

  fft::spectrum_layout layout;
  bool busy = false;  // work queued since the last synchronisation
  // Released in reverse order: the plans, the memory their work touches, the cuBLAS handle, the stream.
  gpu_handle<cudaStream_t> stream;
  gpu_handle<cublasHandle_t> blas;
  gpu_handle<void*> filter_staging, filter_real, filters;  // pinned, device, device
  gpu_handle<void*> host, real, inputs, outputs, work;     // pinned, then device
  gpu_handle<cufftHandle> filter_forward, forward, inverse;

 private:
  key id_;
};

/// A batch (N images, C channels, K filters, groups) on cuFFT, in passes of cufft_batch_chunk() images:
///   filters    padded_kernel (flipped: weights are in correlation order), scaled by 1 / (N_r N_c), one batched
///              r2c whose output is frequency-major, W[f][g][c][k];
///   per pass   the images' planes are extended on the host (convkit::extend) into pinned memory
///              and copied up in one transfer; one batched r2c writes them frequency-major,
///              X[f][n][c]; per group, one batched complex GEMM over the frequencies,
///              Y_f = W_f X_f (K/groups x images, summed over the group's C/groups channels);
///              one batched c2r of Y[f][n][k] gives every output plane; one transfer down, then
///              stride, crop and bias on the host.
/// Frequency-major spectra come from cuFFT's strided output (ostride = planes, odist = 1), so the
/// per-frequency matrices are contiguous and no transposition pass is needed. The filters' spectra
/// are made once per executor (a layer_plan reuses them); plans and buffers come from a cufft_cache.
/// Device memory: cufft_batch_memory (cufft_layout.hpp).
template <class T>
class cufft_batch_executor final : public executor<T> {
  using precision = cufft_traits<T>;
  using workspace = cufft_batch_workspace<T>;

 public:
  cufft_batch_executor(const conv_problem& p, const T* weights, const T* bias)
      : p_(p), tiles_(cufft_batch_tiles(p)), fill_(p.fill<T>()) {
    const cuda_api& api = active_cuda_api();
    const std::string reason = cuda_unavailable_reason(api);
    if (!reason.empty()) throw unavailable("algorithm::cufft: " + reason);
    const conv_problem& g = p;
    const fft::spectrum_layout layout = tiles_.layout();
    const index_t cap = cufft_memory_cap(api, p.tune.gpu_fft);
    chunk_ = cufft_batch_chunk(g, layout, sizeof(T), cap);
    const cufft_batch_memory memory = cufft_batch_bytes(g, layout, sizeof(T));
    if (chunk_ == 0)
      throw error("cufft: this layer's " + std::to_string(layout.rows) + "x" + std::to_string(layout.cols) +
                  " transforms need " + std::to_string(memory.bytes(1)) + " bytes of device memory for one image, " +
                  "more than the " + std::to_string(cap) + "-byte memory cap (or planes too large for cuFFT's int " +
                  "sizes or one copy's pitch); algorithm::fft tiles such layers");
    if (bias != nullptr) bias_.assign(bias, bias + g.k);
    ws_.acquire(api, {&api, current_device(api), layout.rows, layout.cols, chunk_, g.c, g.k, g.c_per_group()},
                memory.bytes(chunk_), cufft_cache_of(p.tune.gpu_fft), cufft_reuse::pooled);
    try {
      make_filter_spectra(weights);
    } catch (...) {
      ws_.fail();
      throw;
    }
  }

  cufft_batch_executor(const cufft_batch_executor&) = delete;
  cufft_batch_executor& operator=(const cufft_batch_executor&) = delete;

  void execute(planes<const T> in, planes<T> out) override { run(in, out, nullptr); }

  /// Each plane is checked for NaN and Inf as it is extended into pinned memory.
  bool execute_finite(planes<const T> in, planes<T> out) override {
    bool spoiled = false;
    run(in, out, &spoiled);
    return !spoiled;
  }

 private:
  /// The passes; `spoiled`: see pass().
  void run(planes<const T> in, planes<T> out, bool* spoiled) {
    try {
      for (index_t first = 0; first < p_.n; first += chunk_) {
        pass(in, out, first, std::min(chunk_, p_.n - first), spoiled);
        if (spoiled != nullptr && *spoiled) return;
      }
    } catch (...) {
      ws_.fail();  // still usable by this executor, not handed on
      throw;
    }
  }

  /// Filter k's channel c is plane (g * K/groups * C/groups + c * K/groups + k mod K/groups), g its
  /// group: within each frequency, group g's K/groups x C/groups matrix, column-major (W[f][g][c][k]).
  void make_filter_spectra(const T* weights) {
    workspace& w = *ws_;
    const conv_problem& g = p_;
    const index_t taps = g.rows.kernel * g.cols.kernel;
    const index_t cg = g.c_per_group(), kg = g.k_per_group(), planes = g.k * cg;
    const kernel_placement where = tiles_.placement(true, g.rows.dilation, g.cols.dilation);
    const T scale = T(1) / (T(w.layout.rows) * T(w.layout.cols));
    for (index_t k = 0; k < g.k; ++k)
      for (index_t c = 0; c < cg; ++c)
        scaled_padded_kernel<T>(view2d<const T>(weights + (k * cg + c) * taps, g.rows.kernel, g.cols.kernel),
                                w.plane_view(w.filter_staging.get(), (k / kg) * kg * cg + c * kg + k % kg), where,
                                scale);
    w.copy_planes(w.filter_real.get(), w.filter_staging.get(), planes, cudaMemcpyHostToDevice);
    check_cufft(precision::forward(w.api, w.filter_forward.get(), w.filter_real.get(), w.filters.get()),
                precision::forward_name);
    w.sync();
  }

  /// Images [first, first + count) of the batch (count <= chunk_; the plans always transform
  /// chunk_ images, and what belongs to absent ones is never read back). `spoiled`: if not null,
  /// each extended plane is checked for NaN and Inf; at the first one met, *spoiled is set and the
  /// pass returns before queueing anything (the output is then unspecified).
  void pass(planes<const T> in, planes<T> out, index_t first, index_t count, bool* spoiled) {
    workspace& w = *ws_;
    const conv_problem& g = p_;
    for (index_t i = 0; i < count; ++i)
      for (index_t c = 0; c < g.c; ++c) {
        const view2d<T> plane = w.plane_view(w.host.get(), i * g.c + c);
        extend<T>(in.view(first + i, c, g.rows.in, g.cols.in), plane, tiles_.rows.read_top(0), tiles_.cols.read_top(0),
                  p_.edge, fill_);
        if (spoiled != nullptr && !all_finite<T>(plane)) {
          *spoiled = true;
          return;
        }
      }
    w.copy_planes(w.real.get(), w.host.get(), count * g.c, cudaMemcpyHostToDevice);
    check_cufft(precision::forward(w.api, w.forward.get(), w.real.get(), w.inputs.get()), precision::forward_name);
    // Per group, at every frequency f: Y_f[group's filters, n] = W_f,g X_f[group's channels, n].
    const index_t cg = g.c_per_group(), kg = g.k_per_group(), complex_bytes = 2 * index_t(sizeof(T));
    for (index_t group = 0; group < g.groups; ++group) {
      const char* wg = static_cast<const char*>(w.filters.get()) + group * kg * cg * complex_bytes;
      const char* xg = static_cast<const char*>(w.inputs.get()) + group * cg * complex_bytes;
      char* yg = static_cast<char*>(w.outputs.get()) + group * kg * complex_bytes;
      check_cublas(w.api,
                   gemm_batched<T>(w.api, w.blas.get(), int(kg), int(chunk_), int(cg), wg, int(kg), g.k * cg, xg,
                                   int(g.c), chunk_ * g.c, yg, int(g.k), chunk_ * g.k, int(w.layout.complex_count())),
                   precision::gemm_name);
    }
    check_cufft(precision::inverse(w.api, w.inverse.get(), w.outputs.get(), w.real.get()), precision::inverse_name);
    w.copy_planes(w.host.get(), w.real.get(), count * g.k, cudaMemcpyDeviceToHost);
    w.sync();
    const fft::axis_tiles& ar = tiles_.rows;
    const fft::axis_tiles& ac = tiles_.cols;
    const fft::tile_outputs orow = ar.outputs(0), ocol = ac.outputs(0);
    for (index_t i = 0; i < count; ++i)
      for (index_t k = 0; k < g.k; ++k) {
        const view2d<T> real = w.plane_view(w.host.get(), i * g.k + k),
                        o = out.view(first + i, k, g.rows.out, g.cols.out);
        const T b = bias_.empty() ? T(0) : bias_[std::size_t(k)];
        for (index_t r = 0; r < orow.count; ++r) {
          const T* src = real.row(orow.local + r * ar.stride) + ocol.local;
          T* dst = o.row(orow.first + r) + ocol.first;
          for (index_t j = 0; j < ocol.count; ++j) dst[j] = src[j * ac.stride] + b;
        }
      }
  }

  conv_problem p_;
  fft::tile_plan tiles_;
  T fill_;
  index_t chunk_ = 0;
  std::vector<T> bias_;
  cufft_lease<workspace> ws_;
};

}  // namespace detail
CONVKIT_NAMESPACE_END
