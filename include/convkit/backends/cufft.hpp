// convkit/backends/cufft.hpp - algorithm::cufft: FFT convolution on an NVIDIA GPU through cuFFT.
// Link the CMake target convkit::cufft (CUDA::cudart, CUDA::cufft, CUDA::cublas). Plain C++: a
// .cpp built by g++ or clang uses it; nothing here needs nvcc.
//
// Glossary (beyond types.hpp):
//   device memory   GPU memory; host code must never dereference a pointer into it.
//   pinned memory   page-locked host memory, the only host memory a copy can overlap work from.
//   stream          a queue of GPU work; work on two streams may run at the same time.
//   tile, slot      the extended input is cut into overlap-save tiles (detail/fft_sizes.hpp); a slot
//                   is what one tile in flight owns: a stream, a device buffer, two cuFFT plans,
//                   pinned staging. One slot serves an untiled plan, two serve tiles, so that one
//                   tile's copies overlap the other's transforms.
//
// How a plan computes (the same function as every backend; detail/fft_sizes.hpp has the maths):
//   made once   transform size and tiles from the cost model under a device-memory cap (settable,
//               else 80% of what cudaMemGetInfo reports free, counting cached workspaces as
//               free); cuFFT plans, buffers, streams, events (a cufft_workspace); the kernel
//               spectrum (padded_kernel, scaled by 1 / (N_r N_c), one r2c).
//   per tile    host input: convkit::extend writes the tile's window into pinned memory, one copy to
//               the device; device input: block copies on the device assemble the same window
//               (detail/cufft_layout.hpp). Then r2c in place, spectrum product (cublas<C|Z>dgmm),
//               c2r in place, and the (strided) results go back: one copy to pinned memory and a
//               host gather, or device-to-device copies into the caller's output.
//
// Public API (namespace convkit::cufft):
//   available(), unavailable_reason()          is there a device (and a driver that can use it)?
//   struct config; set_config(), get_config()  tiling and the memory cap for plans made afterwards
//   struct timing                              host-to-device, compute, device-to-host times (CUDA events)
//   plan<T>                                    execute() on host views, execute_device() on device memory
//   device_array<T>                            a matrix in device memory, filled and read from host views
//   release_cached()                           frees what conv2d calls keep for reuse (below)
// conv2d and convkit::plan with options::algo = algorithm::cufft use the host path with get_config().
// Their cuFFT plans, streams and buffers depend only on the transform size: when a call ends they
// are kept (cufft_pool: at most four sets per precision) and the next call of that size reuses
// them, as the fft backend reuses FFTW plans, so a one-shot call pays only the kernel's spectrum
// and the copies.
//
// Layers (conv2d on view4d, layer_plan; host views): passes of as many images as fit, each one
// batched r2c of all channel planes into frequency-major spectra, one batched complex GEMM per
// group for the sums over channels (cublas<C|Z>gemmStridedBatched), one batched c2r; see
// cufft_layer_executor. Their workspaces are cached like single images'.
//
// Errors: every CUDA, cuFFT and cuBLAS status is checked; a failure throws convkit::error naming the
// call and the status ("cufft: cudaMalloc failed: cudaErrorMemoryAllocation (out of memory)"), after
// which the plan holds nothing it has not released or will not release. No device, or a driver too
// old for this CUDA runtime: convkit::unavailable with the runtime's reason; algorithm::automatic
// then never picks cufft.
//
// Non-finite values: as for algorithm::fft, one NaN or Inf spreads over the tiles that read it, so
// algorithm::automatic never picks cufft for data that hold one.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../detail/setting.hpp"
#include "../detail/backend.hpp"
#include "../detail/cuda_api.hpp"
#include "../detail/cufft_layout.hpp"
#include "../detail/fft_sizes.hpp"
#include "../padding.hpp"
#include "../plan.hpp"

namespace convkit::cufft {

/// Whether cuFFT plans cut images into tiles (see detail/fft_sizes.hpp).
using tiling = convkit::detail::fft::tiling;

struct config {
  tiling tiles = tiling::automatic;
  /// > 0: force tiles of this many (dense, stride-1) output rows / cols each; for tests and benchmarks.
  index tile_rows = 0, tile_cols = 0;
  /// Device memory a plan may take, in bytes; 0: 80% of what cudaMemGetInfo reports free when the
  /// plan is made. Automatic tiling picks the cheapest tiles whose buffers fit under it.
  index memory_cap = 0;
};

/// Where one execute() spent its time. The three GPU times are sums over tiles of CUDA event
/// intervals; with two tiles in flight they overlap, so their sum can exceed total_ms.
struct timing {
  double host_to_device_ms = 0;  ///< copies of the extended input to the device (0 for device inputs)
  double compute_ms = 0;  ///< r2c, spectrum product, c2r (device inputs: plus on-device window and result copies)
  double device_to_host_ms = 0;  ///< copies of the results to pinned memory (0 for device outputs)
  double host_ms = 0;            ///< CPU time extending tiles into and gathering results from pinned memory
  double total_ms = 0;           ///< wall-clock time of the whole execute()
  index tiles = 0;
};

/// Sets the configuration of cuFFT executors (conv2d calls, convkit::plan) made from now on
/// (thread-safe). Throws convkit::error for a negative tile size or memory_cap.
inline void set_config(const config& c) {
  if (c.tile_rows < 0 || c.tile_cols < 0) throw error("cufft::config: tile_rows and tile_cols must be >= 0");
  if (c.memory_cap < 0) throw error("cufft::config: memory_cap must be >= 0");
  convkit::detail::setting<config>::instance().set(c);
}

/// The configuration in effect (thread-safe).
inline config get_config() { return convkit::detail::setting<config>::instance().get(); }

/// Why this program cannot run algorithm::cufft here ("" if it can): no driver, a driver older than
/// the CUDA runtime it was built with, or no device.
inline std::string unavailable_reason() { return convkit::detail::cuda_unavailable_reason(convkit::detail::active_cuda_api()); }

/// True if a CUDA device is usable.
inline bool available() { return unavailable_reason().empty(); }

}  // namespace convkit::cufft

namespace convkit::detail {

/// GPU constants for the shared FFT cost model (fft_sizes.hpp), per real element of a tile: an
/// H100-class transform rate, and the host-side pass plus PCIe transfer that every host element
/// costs. Estimates from published figures, not measured here (no GPU was available).
inline constexpr fft::fft_cost_model cufft_cost_model{5e-13, 2e-9, 4.0, 0.0};

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

inline gpu_handle<void*> device_alloc(const cuda_api& api, index bytes) {
  void* p = nullptr;
  check_cuda(api, api.device_malloc(&p, static_cast<size_t>(bytes)), "cudaMalloc");
  return {api, p, [](const cuda_api& a, void* q) { a.device_free(q); }};
}

inline gpu_handle<void*> pinned_alloc(const cuda_api& api, index bytes) {
  void* p = nullptr;
  check_cuda(api, api.host_malloc(&p, static_cast<size_t>(bytes)), "cudaMallocHost");
  return {api, p, [](const cuda_api& a, void* q) { a.host_free(q); }};
}

/// cuFFT and cuBLAS name the two precisions differently; everything else is written once.
template <class T>
struct cufft_precision;

template <>
struct cufft_precision<float> {
  using complex = cuComplex;
  static constexpr cufftType forward_type = CUFFT_R2C, inverse_type = CUFFT_C2R;
  static constexpr const char* forward_name = "cufftExecR2C";
  static constexpr const char* inverse_name = "cufftExecC2R";
  static constexpr const char* product_name = "cublasCdgmm";
  static constexpr const char* gemm_name = "cublasCgemmStridedBatched";
  static cufftResult forward(const cuda_api& a, cufftHandle p, void* in, void* out) {
    return a.fft_exec_r2c(p, static_cast<cufftReal*>(in), static_cast<cufftComplex*>(out));
  }
  static cufftResult inverse(const cuda_api& a, cufftHandle p, void* in, void* out) {
    return a.fft_exec_c2r(p, static_cast<cufftComplex*>(in), static_cast<cufftReal*>(out));
  }
  static constexpr auto dgmm = &cuda_api::blas_cdgmm;
  static constexpr auto gemm = &cuda_api::blas_cgemm_strided_batched;
};

template <>
struct cufft_precision<double> {
  using complex = cuDoubleComplex;
  static constexpr cufftType forward_type = CUFFT_D2Z, inverse_type = CUFFT_Z2D;
  static constexpr const char* forward_name = "cufftExecD2Z";
  static constexpr const char* inverse_name = "cufftExecZ2D";
  static constexpr const char* product_name = "cublasZdgmm";
  static constexpr const char* gemm_name = "cublasZgemmStridedBatched";
  static cufftResult forward(const cuda_api& a, cufftHandle p, void* in, void* out) {
    return a.fft_exec_d2z(p, static_cast<cufftDoubleReal*>(in), static_cast<cufftDoubleComplex*>(out));
  }
  static cufftResult inverse(const cuda_api& a, cufftHandle p, void* in, void* out) {
    return a.fft_exec_z2d(p, static_cast<cufftDoubleComplex*>(in), static_cast<cufftDoubleReal*>(out));
  }
  static constexpr auto dgmm = &cuda_api::blas_zdgmm;
  static constexpr auto gemm = &cuda_api::blas_zgemm_strided_batched;
};

/// The calls that differ between precisions only in their types, written once.
template <class T>
struct cufft_calls : cufft_precision<T> {
  using precision = cufft_precision<T>;
  using complex = typename precision::complex;
  /// buf[i] *= spectrum[i], i < n complex values: C = diag(x) A with A a column of n.
  static cublasStatus_t product(const cuda_api& a, cublasHandle_t h, int n, void* buf, const void* spectrum) {
    auto* c = static_cast<complex*>(buf);
    return (a.*precision::dgmm)(h, CUBLAS_SIDE_LEFT, n, 1, c, n, static_cast<const complex*>(spectrum), 1, c, n);
  }
  /// For b < batch: C_b = A_b B_b (column-major, no transposes; A_b m x k at a + b * sa, ...).
  static cublasStatus_t gemm_batched(const cuda_api& api, cublasHandle_t h, int m, int n, int k, const void* a, int lda,
                                     long long sa, const void* b, int ldb, long long sb, void* c, int ldc, long long sc,
                                     int batch) {
    const complex one{1, 0}, zero{0, 0};
    return (api.*precision::gemm)(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, static_cast<const complex*>(a), lda, sa,
                                  static_cast<const complex*>(b), ldb, sb, &zero, static_cast<complex*>(c), ldc, sc, batch);
  }
};

/// The tile plan for problem p under `cap` bytes of device memory (see cufft_device_bytes: the
/// shared planner counts two buffers per worker, a cuFFT plan with two slots takes five).
inline fft::tile_plan cufft_tile_plan(const problem& p, index element_bytes, const cufft::config& c, index cap) {
  return fft::plan_tiles(p.geo, p.opt.edge, element_bytes, 1, {c.tiles, c.tile_rows, c.tile_cols}, cufft_cost_model,
                         cap / 5 * 2);
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
  const cufftResult made =
      to_spectrum ? api.fft_make_plan_many(h, 2, n, real_embed, 1, real_dist, complex_embed, complex_stride, complex_dist,
                                           type, batch, &work_bytes)
                  : api.fft_make_plan_many(h, 2, n, complex_embed, complex_stride, complex_dist, real_embed, 1, real_dist,
                                           type, batch, &work_bytes);
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

/// `kernel` placed by `where` into `padded` (padded_kernel), times `scale`: the unnormalised c2r's
/// 1 / (N_r N_c) folded into a kernel before its r2c (which is linear).
template <class T>
void scaled_padded_kernel(view2d<const T> kernel, view2d<T> padded, const kernel_placement& where, T scale) {
  padded_kernel<T>(kernel, padded, where);
  for (index r = 0; r < padded.rows(); ++r)
    for (index c = 0; c < padded.cols(); ++c) padded(r, c) *= scale;
}

/// Device memory held by cached workspaces (cufft_pool) made through `api`, which a new executor may
/// count as free; and their release. Defined after every workspace type.
inline index cufft_pooled_bytes(const cuda_api& api) noexcept;
inline void cufft_release_pools() noexcept;

/// The device memory a new cuFFT executor plans for: cufft::config::memory_cap if set, else 80% of
/// what cudaMemGetInfo reports free plus what cached workspaces hold (a matching one is reused; the
/// others are released first if a new one needs their room, cufft_make_room), so that a second
/// call of one shape plans exactly as the first did.
inline index cufft_memory_cap(const cuda_api& api, const cufft::config& cfg) {
  if (cfg.memory_cap > 0) return cfg.memory_cap;
  size_t free_bytes = 0, total_bytes = 0;
  check_cuda(api, api.mem_get_info(&free_bytes, &total_bytes), "cudaMemGetInfo");
  return static_cast<index>((free_bytes + size_t(cufft_pooled_bytes(api))) / 5 * 4);
}

/// Before a new workspace of about `need` device bytes is made: if the free memory does not hold it,
/// the cached workspaces are released.
inline void cufft_make_room(const cuda_api& api, index need) {
  if (cufft_pooled_bytes(api) == 0) return;
  size_t free_bytes = 0, total_bytes = 0;
  check_cuda(api, api.mem_get_info(&free_bytes, &total_bytes), "cudaMemGetInfo");
  if (index(free_bytes) < need) cufft_release_pools();
}

/// The GPU resources of a cuFFT plan that depend only on its transform layout, precision, number of
/// slots and device (not on the kernel, borders or strides): per slot a stream, events, a work
/// area, a device tile buffer, pinned staging and the two cuFFT plans; the cuBLAS handle, the
/// device kernel spectrum and fill vector. Made once per shape; one-shot conv2d calls and
/// convkit::plan hand them back to cufft_pool for the next call of the same transform.
template <class T>
struct cufft_workspace {
  enum mark { before_input, after_input, after_compute, after_output };

  /// Members are released in reverse order: the plans, the memory their work touches, the stream.
  struct slot {
    gpu_handle<cudaStream_t> stream;
    std::array<gpu_handle<cudaEvent_t>, 4> events;  // indexed by mark
    gpu_handle<void*> work, buffer;          // device
    gpu_handle<void*> staging, results;      // pinned host
    gpu_handle<cufftHandle> forward, inverse;
    index tile = -1;                         // the tile whose results it holds, -1 for none
    bool busy = false;                       // work queued since the last synchronisation
  };

  /// What makes two workspaces interchangeable (cufft_pool's key).
  struct key {
    const cuda_api* api;
    int device;
    index rows, cols, slots;
    bool operator==(const key& o) const noexcept {
      return api == o.api && device == o.device && rows == o.rows && cols == o.cols && slots == o.slots;
    }
  };

  /// Throws convkit::error naming the failed call; what was made before it is released.
  cufft_workspace(const cuda_api& a, const key& k) : api(a), layout{k.rows, k.cols}, id_(k) {
    slots.resize(static_cast<std::size_t>(k.slots));
    for (slot& s : slots) make_slot(s);
    blas = make_blas(api);
    spectrum = device(buffer_bytes());
    fill_vector = device(fill_length() * index(sizeof(T)));
  }
  cufft_workspace(const cufft_workspace&) = delete;
  cufft_workspace& operator=(const cufft_workspace&) = delete;
  ~cufft_workspace() { settle(); }  // work in flight must finish before its buffers are freed

  /// Lets work in flight finish (statuses ignored: after a failure the first one is being
  /// reported) and forgets the tiles it belonged to.
  void settle() noexcept {
    for (slot& s : slots) {
      if (s.busy) api.stream_synchronize(s.stream.get());
      s.busy = false;
      s.tile = -1;
    }
  }

  const key& id() const noexcept { return id_; }
  index device_bytes() const noexcept { return device_bytes_; }
  index buffer_bytes() const noexcept { return layout.real_count() * index(sizeof(T)); }
  /// The fill vector of device-side windows (detail/cufft_layout.hpp): one value per window row or column.
  index fill_length() const noexcept { return std::max(layout.rows, layout.cols); }

  const cuda_api& api;
  fft::spectrum_layout layout;
  std::vector<slot> slots;
  gpu_handle<cublasHandle_t> blas;          // bound to the slots' streams: released before them
  gpu_handle<void*> spectrum, fill_vector;  // device

 private:
  gpu_handle<void*> device(index bytes) {
    gpu_handle<void*> h = device_alloc(api, bytes);
    device_bytes_ += bytes;
    return h;
  }

  void make_slot(slot& s) {
    using precision = cufft_precision<T>;
    s.stream = make_stream(api);
    for (auto& e : s.events) {
      cudaEvent_t ev = nullptr;
      check_cuda(api, api.event_create(&ev), "cudaEventCreate");
      e = gpu_handle<cudaEvent_t>(api, ev, [](const cuda_api& a, cudaEvent_t h) { a.event_destroy(h); });
    }
    // In-place r2c / c2r over the padded rows of fft_sizes.hpp's layout, work areas supplied by us.
    const int spectrum_dist = int(layout.complex_count());
    size_t forward_work = 0, inverse_work = 0;
    s.forward = make_layout_plan(api, precision::forward_type, layout, true, 1, 1, spectrum_dist, forward_work);
    s.inverse = make_layout_plan(api, precision::inverse_type, layout, false, 1, 1, spectrum_dist, inverse_work);
    s.work = device(index(std::max<size_t>({forward_work, inverse_work, 1})));
    bind_plans(api, {s.forward.get(), s.inverse.get()}, s.work.get(), s.stream.get());
    s.buffer = device(buffer_bytes());
    // Staging rows have the device buffer's padded layout; only their first N_c reals travel.
    s.staging = pinned_alloc(api, buffer_bytes());
    // A tile's (row-strided) results span at most N_r x N_c elements.
    s.results = pinned_alloc(api, layout.rows * layout.cols * index(sizeof(T)));
  }

  key id_;
  index device_bytes_ = 0;
};

/// The workspaces (cufft_workspace, cufft_layer_workspace) that executors gave back, for the next
/// executor of the same key (a one-shot conv2d call builds one executor per call): at most
/// `capacity` per workspace type, the oldest released first. An executor takes one for itself (its
/// streams and buffers are not shared), so concurrent calls of one shape each get their own.
/// Thread-safe. The cache is never destroyed: releasing GPU objects during static destruction can
/// run after the CUDA runtime has shut down (the process's end frees them); cufft::release_cached()
/// releases them earlier.
template <class Workspace>
class cufft_pool {
 public:
  using owned = std::unique_ptr<Workspace>;
  using key = typename Workspace::key;
  static constexpr std::size_t capacity = 4;

  /// A cached workspace with this key, or null.
  static owned take(const key& k) {
    std::lock_guard<std::mutex> lock(mutex());
    std::vector<owned>& c = cache();
    for (auto it = c.begin(); it != c.end(); ++it)
      if ((*it)->id() == k) {
        owned w = std::move(*it);
        c.erase(it);
        return w;
      }
    return nullptr;
  }

  /// Keeps `w` (with no work in flight) for a later take(); never allocates (destructors call it).
  static void give(owned w) noexcept {
    owned evicted;  // released outside the lock
    std::lock_guard<std::mutex> lock(mutex());
    std::vector<owned>& c = cache();
    if (c.size() == capacity) {
      evicted = std::move(c.front());
      c.erase(c.begin());
    }
    c.push_back(std::move(w));  // within the reserved capacity
  }

  /// Releases every cached workspace (keeping the reserved capacity).
  static void clear() noexcept {
    std::lock_guard<std::mutex> lock(mutex());
    cache().clear();
  }

  static std::size_t size() {
    std::lock_guard<std::mutex> lock(mutex());
    return cache().size();
  }

  /// Device bytes held by the cached workspaces made through `api`.
  static index bytes(const cuda_api& api) noexcept {
    std::lock_guard<std::mutex> lock(mutex());
    index sum = 0;
    for (const owned& w : cache())
      if (w->id().api == &api) sum += w->device_bytes();
    return sum;
  }

 private:
  static std::mutex& mutex() noexcept {
    static std::mutex* m = new std::mutex;  // never destroyed: see the class comment
    return *m;
  }
  static std::vector<owned>& cache() noexcept {
    static std::vector<owned>* c = [] {
      auto* v = new std::vector<owned>;
      v->reserve(capacity);
      return v;
    }();
    return *c;
  }
};

/// The workspace an executor works with: taken from cufft_pool or made (after cufft_make_room), and
/// handed back to the pool when the executor ends, unless it is `owned` (cufft::plan: a caller who
/// holds a plan manages its memory) or failed (after a failure it serves its executor still, but is
/// not handed on).
template <class Workspace>
class cufft_lease {
 public:
  cufft_lease() = default;
  cufft_lease(const cufft_lease&) = delete;
  cufft_lease& operator=(const cufft_lease&) = delete;
  ~cufft_lease() {
    if (ws_ && pooled_ && !failed_) {
      ws_->settle();
      cufft_pool<Workspace>::give(std::move(ws_));
    }
  }

  /// `need`: about the device bytes a new workspace takes.
  void acquire(const cuda_api& api, const typename Workspace::key& k, index need, bool pooled) {
    pooled_ = pooled;
    if (pooled) ws_ = cufft_pool<Workspace>::take(k);
    if (ws_) return;
    cufft_make_room(api, need);
    ws_ = std::make_unique<Workspace>(api, k);
  }

  /// After a failure: lets work in flight finish; the workspace is not handed on.
  void fail() noexcept {
    if (ws_) ws_->settle();
    failed_ = true;
  }

  Workspace* operator->() const noexcept { return ws_.get(); }
  Workspace& operator*() const noexcept { return *ws_; }

 private:
  std::unique_ptr<Workspace> ws_;
  bool pooled_ = false, failed_ = false;
};

/// Everything one cuFFT plan owns (a cufft_workspace, its tile plan, the kernel spectrum), and the
/// two ways of running it.
template <class T>
class cufft_engine {
  using precision = cufft_calls<T>;
  using workspace = cufft_workspace<T>;
  using slot = typename workspace::slot;
  using mark = typename workspace::mark;
  static constexpr mark before_input = workspace::before_input, after_input = workspace::after_input,
                        after_compute = workspace::after_compute, after_output = workspace::after_output;

 public:
  /// Whether the workspace comes from and goes back to cufft_pool, or is made and
  /// released with the engine (cufft::plan: a caller who holds a plan manages its memory).
  enum class reuse { pooled, owned };

  cufft_engine(const problem& p, view2d<const T> kernel, const cufft::config& cfg, reuse r)
      : p_(p), api_(active_cuda_api()) {
    const std::string reason = cuda_unavailable_reason(api_);
    if (!reason.empty()) throw unavailable("algorithm::cufft: " + reason);
    const index cap = cufft_memory_cap(api_, cfg);
    tiles_ = cufft_tile_plan(p, sizeof(T), cfg, cap);
    layout_ = tiles_.layout();
    if (layout_.real_count() > INT_MAX)
      throw error("cufft: transform size " + std::to_string(layout_.rows) + "x" + std::to_string(layout_.cols) +
                  " exceeds cuFFT's int sizes; set cufft::config::memory_cap or tile sizes to tile the image");
    const index slots = std::min<index>(2, tiles_.tiles());
    const index need = cufft_device_bytes(tiles_, sizeof(T), slots);
    if (need > cap)
      throw error("cufft: tiles of " + std::to_string(layout_.rows) + "x" + std::to_string(layout_.cols) + " need " +
                  std::to_string(need) + " bytes of device memory, more than the " + std::to_string(cap) +
                  "-byte memory cap (the smallest tiles the kernel allows, unless tiling was forced)");
    fill_ = p.opt.edge == border::constant ? T(p.opt.edge_value) : T(0);
    ws_.acquire(api_, {&api_, current_device(api_), layout_.rows, layout_.cols, slots}, need, r == reuse::pooled);
    try {
      upload_constants(kernel);
    } catch (...) {
      ws_.fail();
      throw;
    }
  }

  cufft_engine(const cufft_engine&) = delete;
  cufft_engine& operator=(const cufft_engine&) = delete;

  const fft::tile_plan& tiles() const noexcept { return tiles_; }

  /// out = in (*) kernel, with in and out in host memory.
  void run_host(view2d<const T> in, view2d<T> out, cufft::timing* t) {
    run(t, true, [&](index tile, slot& s, bool timed) { stage_host(tile, s, in, timed); },
        [&](const slot& s) { gather(s, out); });
  }

  /// out = in (*) kernel, with in and out in device memory: no host transfer at all.
  void run_device(view2d<const T> in, view2d<T> out, cufft::timing* t) {
    run(t, false, [&](index tile, slot& s, bool timed) { stage_device(tile, s, in, out, timed); }, [](const slot&) {});
  }

 private:
  /// At construction, through slot 0: the fill vector (zero and constant borders, for device
  /// inputs), then the kernel spectrum. Synchronised, since slot 1 reads them from another stream.
  void upload_constants(view2d<const T> kernel) {
    slot& s = ws_->slots.front();
    T* staging = static_cast<T*>(s.staging.get());
    const index sz = sizeof(T);
    if (p_.opt.edge == border::zero || p_.opt.edge == border::constant) {
      const index n = ws_->fill_length();
      std::fill_n(staging, n, fill_);
      copy(ws_->fill_vector.get(), n * sz, staging, n * sz, n * sz, 1, cudaMemcpyHostToDevice, s);
      sync(s);
    }
    const view2d<T> padded(staging, layout_.rows, layout_.cols, layout_.real_row_stride());
    scaled_padded_kernel<T>(kernel, padded, tiles_.placement(p_.opt.correlate, p_.geo.rows.dilation, p_.geo.cols.dilation),
                            T(1) / (T(layout_.rows) * T(layout_.cols)));
    const index pitch = layout_.real_row_stride() * sz;
    copy(ws_->spectrum.get(), pitch, staging, pitch, layout_.cols * sz, layout_.rows, cudaMemcpyHostToDevice, s);
    s.busy = true;
    check_cufft(precision::forward(api_, s.forward.get(), ws_->spectrum.get(), ws_->spectrum.get()), precision::forward_name);
    sync(s);
  }

  void copy(void* dst, index dst_pitch, const void* src, index src_pitch, index width, index rows, cudaMemcpyKind kind,
            slot& s) {
    s.busy = true;
    check_cuda(api_,
               api_.memcpy_2d_async(dst, size_t(dst_pitch), src, size_t(src_pitch), size_t(width), size_t(rows), kind,
                                    s.stream.get()),
               "cudaMemcpy2DAsync");
  }

  void sync(slot& s) {
    check_cuda(api_, api_.stream_synchronize(s.stream.get()), "cudaStreamSynchronize");
    s.busy = false;
  }

  void record(slot& s, mark m) {
    s.busy = true;
    check_cuda(api_, api_.event_record(s.events[m].get(), s.stream.get()), "cudaEventRecord");
  }

  double elapsed_ms(const slot& s, mark from, mark to) {
    float ms = 0;
    check_cuda(api_, api_.event_elapsed_time(&ms, s.events[from].get(), s.events[to].get()), "cudaEventElapsedTime");
    return ms;
  }

  /// The transform of one tile, in place in the slot's buffer.
  void transform(slot& s) {
    s.busy = true;
    check_cufft(precision::forward(api_, s.forward.get(), s.buffer.get(), s.buffer.get()), precision::forward_name);
    check_cublas(api_, api_.blas_set_stream(ws_->blas.get(), s.stream.get()), "cublasSetStream");
    check_cublas(api_, precision::product(api_, ws_->blas.get(), int(layout_.complex_count()), s.buffer.get(), ws_->spectrum.get()),
                 precision::product_name);
    check_cufft(precision::inverse(api_, s.inverse.get(), s.buffer.get(), s.buffer.get()), precision::inverse_name);
  }

  fft::tile_outputs row_outputs(index tile) const noexcept { return tiles_.rows.outputs(tile / tiles_.cols.tiles); }
  fft::tile_outputs col_outputs(index tile) const noexcept { return tiles_.cols.outputs(tile % tiles_.cols.tiles); }

  /// Host input: extend into pinned memory, copy up, transform, copy the row-strided results down.
  void stage_host(index tile, slot& s, view2d<const T> in, bool timed) {
    const index sz = sizeof(T), pitch = layout_.real_row_stride() * sz;
    const auto started = std::chrono::steady_clock::now();
    const view2d<T> window(static_cast<T*>(s.staging.get()), layout_.rows, layout_.cols, layout_.real_row_stride());
    extend<T>(in, window, tiles_.rows.read_top(tile / tiles_.cols.tiles), tiles_.cols.read_top(tile % tiles_.cols.tiles),
              p_.opt.edge, fill_);
    host_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    if (timed) record(s, before_input);
    copy(s.buffer.get(), pitch, s.staging.get(), pitch, layout_.cols * sz, layout_.rows, cudaMemcpyHostToDevice, s);
    if (timed) record(s, after_input);
    transform(s);
    if (timed) record(s, after_compute);
    const fft::tile_outputs rows = row_outputs(tile), cols = col_outputs(tile);
    const index width = (cols.count - 1) * tiles_.cols.stride + 1;
    const T* first = static_cast<const T*>(s.buffer.get()) + rows.local * layout_.real_row_stride() + cols.local;
    copy(s.results.get(), width * sz, first, tiles_.rows.stride * pitch, width * sz, rows.count, cudaMemcpyDeviceToHost, s);
    if (timed) record(s, after_output);
  }

  /// After the slot's stream is synchronised: its results, from pinned memory to `out`.
  void gather(const slot& s, view2d<T> out) {
    const auto started = std::chrono::steady_clock::now();
    const fft::tile_outputs rows = row_outputs(s.tile), cols = col_outputs(s.tile);
    const index stride = tiles_.cols.stride, width = (cols.count - 1) * stride + 1;
    const T* results = static_cast<const T*>(s.results.get());
    for (index i = 0; i < rows.count; ++i) {
      const T* src = results + i * width;
      T* dst = out.row(rows.first + i) + cols.first;
      for (index j = 0; j < cols.count; ++j) dst[j] = src[j * stride];
    }
    host_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  }

  /// Device input: assemble the window on the device, transform, copy the results into `out`.
  void stage_device(index tile, slot& s, view2d<const T> in, view2d<T> out, bool timed) {
    const index sz = sizeof(T), ld = layout_.real_row_stride();
    T* buffer = static_cast<T*>(s.buffer.get());
    const T* fill = static_cast<const T*>(ws_->fill_vector.get());
    if (timed) record(s, before_input);
    for_each_window_copy(in.rows(), in.cols(), tiles_.rows.read_top(tile / tiles_.cols.tiles),
                         tiles_.cols.read_top(tile % tiles_.cols.tiles), layout_.rows, layout_.cols, p_.opt.edge,
                         [&](const block_copy& b) {
                           T* dst = buffer + b.dst_row * ld + b.dst_col;
                           switch (b.source) {
                             case block_copy::from::input:
                               copy(dst, ld * sz, in.data() + b.src_row * in.row_stride() + b.src_col, in.row_stride() * sz,
                                    b.cols * sz, b.rows, cudaMemcpyDeviceToDevice, s);
                               break;
                             case block_copy::from::window:
                               copy(dst, ld * sz, buffer + b.src_row * ld + b.src_col, ld * sz, b.cols * sz, b.rows,
                                    cudaMemcpyDeviceToDevice, s);
                               break;
                             case block_copy::from::fill:  // a row of the fill vector, or its elements as a column
                               copy(dst, ld * sz, fill, (b.rows == 1 ? b.cols : 1) * sz, b.cols * sz, b.rows,
                                    cudaMemcpyDeviceToDevice, s);
                               break;
                           }
                         });
    if (timed) record(s, after_input);
    transform(s);
    if (timed) record(s, after_compute);
    for_each_output_copy(row_outputs(tile), col_outputs(tile), tiles_.rows.stride, tiles_.cols.stride, ld,
                         out.row_stride(), [&](const pitched_copy& c) {
                           copy(out.data() + c.dst_offset, c.dst_pitch * sz, buffer + c.src_offset, c.src_pitch * sz,
                                c.width * sz, c.height, cudaMemcpyDeviceToDevice, s);
                         });
    if (timed) record(s, after_output);
  }

  /// Tiles round-robin over the slots: before a slot takes a new tile, the tile it holds is finished
  /// (its stream synchronised, its results gathered), so one slot's copies overlap the other's work.
  /// `host`: the input and output stages are transfers (else on-device copies, counted as compute).
  template <class Stage, class Finish>
  void run(cufft::timing* t, bool host, Stage&& stage, Finish&& finish_results) {
    const auto started = std::chrono::steady_clock::now();
    const bool timed = t != nullptr;
    host_ms_ = 0;
    cufft::timing sums;
    const auto finish = [&](slot& s) {
      sync(s);
      finish_results(s);
      if (timed) {
        const double in = elapsed_ms(s, before_input, after_input), compute = elapsed_ms(s, after_input, after_compute),
                     out = elapsed_ms(s, after_compute, after_output);
        sums.host_to_device_ms += host ? in : 0;
        sums.compute_ms += host ? compute : in + compute + out;
        sums.device_to_host_ms += host ? out : 0;
      }
      s.tile = -1;
    };
    try {
      const index tiles = tiles_.tiles(), n = index(ws_->slots.size());
      index next = 0;  // the slot that takes the next tile
      for (index tile = 0; tile < tiles; ++tile) {
        // With a stride larger than a tile, some tiles hold no output: nothing to compute.
        if (row_outputs(tile).count == 0 || col_outputs(tile).count == 0) continue;
        slot& s = ws_->slots[std::size_t(next)];
        next = (next + 1) % n;
        if (s.tile >= 0) finish(s);
        stage(tile, s, timed);
        s.tile = tile;
      }
      for (index k = 0; k < n; ++k) {  // oldest first
        slot& s = ws_->slots[std::size_t((next + k) % n)];
        if (s.tile >= 0) finish(s);
      }
    } catch (...) {
      ws_.fail();
      throw;
    }
    if (timed) {
      sums.host_ms = host_ms_;
      sums.total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
      sums.tiles = tiles_.tiles();
      *t = sums;
    }
  }


  problem p_;
  const cuda_api& api_;
  fft::tile_plan tiles_;
  fft::spectrum_layout layout_;
  T fill_ = T(0);
  double host_ms_ = 0;
  cufft_lease<workspace> ws_;
};

}  // namespace convkit::detail

namespace convkit::cufft {

/// A rows x cols matrix in device memory (rows contiguous), for plan::execute_device: filled from
/// and read back to host views through its own pinned staging buffer. Movable, not copyable.
template <class T>
class device_array {
 public:
  /// Throws convkit::unavailable without a device, convkit::error for negative sizes or a failed call.
  device_array(index rows, index cols) : api_(&convkit::detail::active_cuda_api()), rows_(rows), cols_(cols) {
    if (rows < 0 || cols < 0) throw error("device_array: rows and cols must be >= 0");
    const std::string reason = convkit::detail::cuda_unavailable_reason(*api_);
    if (!reason.empty()) throw unavailable("cufft::device_array: " + reason);
    const index bytes = convkit::detail::checked_mul(convkit::detail::checked_mul(rows, cols, "device_array"),
                                                     index(sizeof(T)), "device_array");
    data_ = convkit::detail::device_alloc(*api_, bytes);
    staging_ = convkit::detail::pinned_alloc(*api_, bytes);
    cudaStream_t s = nullptr;
    convkit::detail::check_cuda(*api_, api_->stream_create_with_flags(&s, cudaStreamNonBlocking),
                                "cudaStreamCreateWithFlags");
    stream_ = convkit::detail::gpu_handle<cudaStream_t>(
        *api_, s, [](const convkit::detail::cuda_api& a, cudaStream_t h) { a.stream_destroy(h); });
  }

  /// The device memory, as a view for execute_device (never dereference it on the host).
  view2d<T> view() noexcept { return {static_cast<T*>(data_.get()), rows_, cols_, cols_}; }
  view2d<const T> view() const noexcept { return {static_cast<const T*>(data_.get()), rows_, cols_, cols_}; }
  index rows() const noexcept { return rows_; }
  index cols() const noexcept { return cols_; }

  /// Copies `host` (rows x cols) to the device; returns when the copy is done.
  void upload(view2d<const T> host) {
    check_shape(host.shape());
    T* staging = static_cast<T*>(staging_.get());
    for (index r = 0; r < rows_; ++r) std::copy(host.row(r), host.row(r) + cols_, staging + r * cols_);
    copy(data_.get(), staging_.get(), cudaMemcpyHostToDevice);
  }

  /// Copies the device contents to `host` (rows x cols); returns when they are there.
  void download(view2d<T> host) {
    check_shape(host.shape());
    copy(staging_.get(), data_.get(), cudaMemcpyDeviceToHost);
    const T* staging = static_cast<const T*>(staging_.get());
    for (index r = 0; r < rows_; ++r) std::copy(staging + r * cols_, staging + (r + 1) * cols_, host.row(r));
  }

 private:
  void check_shape(shape2d s) const {
    if (s != shape2d{rows_, cols_})
      throw error("device_array: host view is " + std::to_string(s.rows) + "x" + std::to_string(s.cols) + ", expected " +
                  std::to_string(rows_) + "x" + std::to_string(cols_));
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
  index rows_, cols_;
  convkit::detail::gpu_handle<void*> data_, staging_;
  convkit::detail::gpu_handle<cudaStream_t> stream_;
};

/// A convolution prepared on the GPU once and applied to many inputs: cuFFT plans, device and
/// pinned buffers and the kernel spectrum are made by the constructor, execute() allocates nothing,
/// and the destructor releases them all (they do not go to release_cached()'s cache).
/// Movable, not copyable; one thread at a time (it owns its streams and buffers).
template <class T>
class plan {
  using engine = convkit::detail::cufft_engine<T>;

 public:
  /// Prepares the convolution of rows x cols inputs with `kernel` (copied to the device) under
  /// `opt` (options::algo and threads are ignored) and `cfg`. Throws convkit::error for bad shapes
  /// or options (see output_shape), a memory cap too small for the smallest tile, or a failed CUDA
  /// call; convkit::unavailable if there is no usable device.
  plan(index rows, index cols, view2d<const T> kernel, const options& opt = {}, const config& cfg = get_config())
      : problem_(convkit::detail::make_problem<T>(rows, cols, kernel, opt, nullptr)),
        engine_(std::make_unique<engine>(problem_, kernel, cfg, engine::reuse::owned)) {}

  /// out = input (*) kernel, both in host memory: the input goes to the device through pinned
  /// buffers, the results come back the same way. Fills *measured if it is not null.
  void execute(view2d<const T> input, view2d<T> out, timing* measured = nullptr) {
    convkit::detail::check_call<T>(input, out, input_shape(), output_shape());
    engine_->run_host(input, out, measured);
  }

  /// out = input (*) kernel, both in device memory (views of device pointers, row_stride in
  /// elements; never dereference them on the host): no transfer between host and device.
  void execute_device(view2d<const T> device_input, view2d<T> device_out, timing* measured = nullptr) {
    convkit::detail::check_call<T>(device_input, device_out, input_shape(), output_shape());
    engine_->run_device(device_input, device_out, measured);
  }

  shape2d input_shape() const noexcept { return {problem_.geo.rows.in, problem_.geo.cols.in}; }
  shape2d output_shape() const noexcept { return problem_.geo.out(); }
  /// Overlap-save tiles per execute (1: the whole image in one transform).
  index tiles() const noexcept { return engine_->tiles().tiles(); }
  /// The transform size of each tile.
  shape2d transform_shape() const noexcept {
    return {engine_->tiles().rows.transform, engine_->tiles().cols.transform};
  }

 private:
  convkit::detail::problem problem_;
  std::unique_ptr<engine> engine_;
};

}  // namespace convkit::cufft

namespace convkit::detail {

template <class T>
class cufft_executor final : public executor<T> {
 public:
  cufft_executor(const problem& p, view2d<const T> kernel)
      : engine_(p, kernel, cufft::get_config(), cufft_engine<T>::reuse::pooled) {}
  void execute(view2d<const T> in, view2d<T> out) override { engine_.run_host(in, out, nullptr); }

 private:
  cufft_engine<T> engine_;
};

template <class T>
std::unique_ptr<executor<T>> make_cufft(const problem& p, view2d<const T> kernel) {
  return std::make_unique<cufft_executor<T>>(p, kernel);
}

/// The transform of a layer on cuFFT: untiled (or the circular shortcut), the whole padded plane.
inline fft::tile_plan cufft_layer_tiles(const layer_problem& p, index element_bytes) {
  return fft::plan_tiles(geometry{p.geo.rows, p.geo.cols}, p.opt.edge, element_bytes, 1, {fft::tiling::never, 0, 0},
                         cufft_cost_model, 0);
}

/// The GPU resources of a cuFFT layer executor that depend only on the transform layout, the
/// images per pass and the channel counts (its key): a stream and cuBLAS handle; the filters'
/// spectra with the pinned and device planes and batched r2c that make them; pinned and device
/// planes for a pass, its input and output spectra, its batched r2c and c2r; one work area for the
/// three plans, which run one after the other on the stream. Made once per key; executors hand
/// them back to cufft_pool, so one-shot layer calls of one shape reuse them.
template <class T>
struct cufft_layer_workspace {
  using precision = cufft_precision<T>;

  struct key {
    const cuda_api* api;
    int device;
    index rows, cols, chunk, c, k, c_per_group;
    bool operator==(const key& o) const noexcept {
      return api == o.api && device == o.device && rows == o.rows && cols == o.cols && chunk == o.chunk && c == o.c &&
             k == o.k && c_per_group == o.c_per_group;
    }
  };

  /// Throws convkit::error naming the failed call; what was made before it is released.
  cufft_layer_workspace(const cuda_api& a, const key& k) : api(a), layout{k.rows, k.cols}, id_(k) {
    const index filter_planes = k.k * k.c_per_group, pass_planes = k.chunk * std::max(k.c, k.k);
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
    const auto plan = [&](cufftType type, bool to_spectra, index planes, size_t& work_bytes) {
      return make_layout_plan(api, type, layout, to_spectra, int(planes), int(planes), 1, work_bytes);
    };
    size_t filter_work = 0, forward_work = 0, inverse_work = 0;
    filter_forward = plan(precision::forward_type, true, filter_planes, filter_work);
    forward = plan(precision::forward_type, true, k.chunk * k.c, forward_work);
    inverse = plan(precision::inverse_type, false, k.chunk * k.k, inverse_work);
    work = device(index(std::max<size_t>({filter_work, forward_work, inverse_work, 1})));
    bind_plans(api, {filter_forward.get(), forward.get(), inverse.get()}, work.get(), stream.get());
  }
  cufft_layer_workspace(const cufft_layer_workspace&) = delete;
  cufft_layer_workspace& operator=(const cufft_layer_workspace&) = delete;
  ~cufft_layer_workspace() { settle(); }  // work in flight must finish before its buffers are freed

  const key& id() const noexcept { return id_; }
  index device_bytes() const noexcept { return device_bytes_; }

  /// Padded real plane `plane` of a pinned or device buffer of planes.
  view2d<T> plane_view(void* base, index plane) const noexcept {
    return {static_cast<T*>(base) + plane * layout.real_count(), layout.rows, layout.cols, layout.real_row_stride()};
  }
  index reals_bytes(index planes) const {
    return checked_mul(checked_mul(planes, layout.real_count(), "cufft layer planes"), index(sizeof(T)), "cufft layer planes");
  }
  index spectra_bytes(index planes) const {
    return checked_mul(checked_mul(planes, layout.complex_count(), "cufft layer spectra"), 2 * index(sizeof(T)),
                       "cufft layer spectra");
  }

  /// `planes` whole real planes in one transfer on the stream (one plane per row: a pitch of one
  /// plane stays under the copy's pitch limit, cufft_layer_chunk makes sure).
  void copy_planes(void* dst, const void* src, index planes, cudaMemcpyKind kind) {
    busy = true;
    const size_t plane = size_t(reals_bytes(1));
    check_cuda(api, api.memcpy_2d_async(dst, plane, src, plane, plane, size_t(planes), kind, stream.get()),
               "cudaMemcpy2DAsync");
  }
  void sync() {
    check_cuda(api, api.stream_synchronize(stream.get()), "cudaStreamSynchronize");
    busy = false;
  }
  /// Lets work in flight finish (statuses ignored: after a failure the first one is being reported).
  void settle() noexcept {
    if (busy) api.stream_synchronize(stream.get());
    busy = false;
  }

  const cuda_api& api;
  fft::spectrum_layout layout;
  bool busy = false;  // work queued since the last synchronisation
  // Released in reverse order: the plans, the memory their work touches, the cuBLAS handle, the stream.
  gpu_handle<cudaStream_t> stream;
  gpu_handle<cublasHandle_t> blas;
  gpu_handle<void*> filter_staging, filter_real, filters;  // pinned, device, device
  gpu_handle<void*> host, real, inputs, outputs, work;     // pinned, then device
  gpu_handle<cufftHandle> filter_forward, forward, inverse;

 private:
  gpu_handle<void*> device(index bytes) {
    gpu_handle<void*> h = device_alloc(api, bytes);
    device_bytes_ += bytes;
    return h;
  }

  key id_;
  index device_bytes_ = 0;
};

/// A layer (layer_options.hpp) on cuFFT, in passes of cufft_layer_chunk() images:
///   filters    padded_kernel (flipped: a layer correlates), scaled by 1 / (N_r N_c), one batched
///              r2c whose output is frequency-major, W[f][g][c][k];
///   per pass   the images' planes are extended on the host (convkit::extend) into pinned memory
///              and copied up in one transfer; one batched r2c writes them frequency-major,
///              X[f][n][c]; per group, one batched complex GEMM over the frequencies,
///              Y_f = W_f X_f (K/groups x images, summed over the group's C/groups channels);
///              one batched c2r of Y[f][n][k] gives every output plane; one transfer down, then
///              stride, crop and bias on the host.
/// Frequency-major spectra come from cuFFT's strided output (ostride = planes, odist = 1), so the
/// per-frequency matrices are contiguous and no transposition pass is needed. The filters' spectra
/// are made once per executor (a layer_plan reuses them); plans and buffers come from cufft_pool.
/// Device memory: cufft_layer_memory (detail/cufft_layout.hpp).
template <class T>
class cufft_layer_executor final : public layer_executor<T> {
  using precision = cufft_calls<T>;
  using workspace = cufft_layer_workspace<T>;

 public:
  cufft_layer_executor(const layer_problem& p, view4d<const T> weights, const T* bias)
      : p_(p), tiles_(cufft_layer_tiles(p, sizeof(T))) {
    const cuda_api& api = active_cuda_api();
    const std::string reason = cuda_unavailable_reason(api);
    if (!reason.empty()) throw unavailable("algorithm::cufft: " + reason);
    const layer_geometry& g = p.geo;
    const fft::spectrum_layout layout = tiles_.layout();
    const index cap = cufft_memory_cap(api, cufft::get_config());
    chunk_ = cufft_layer_chunk(g, layout, sizeof(T), cap);
    const cufft_layer_memory memory = cufft_layer_bytes(g, layout, sizeof(T));
    if (chunk_ == 0)
      throw error("cufft: this layer's " + std::to_string(layout.rows) + "x" + std::to_string(layout.cols) +
                  " transforms need " + std::to_string(memory.bytes(1)) + " bytes of device memory for one image, " +
                  "more than the " + std::to_string(cap) + "-byte memory cap (or planes too large for cuFFT's int " +
                  "sizes or one copy's pitch); algorithm::fft tiles such layers");
    if (bias != nullptr) bias_.assign(bias, bias + g.k);
    ws_.acquire(api, {&api, current_device(api), layout.rows, layout.cols, chunk_, g.c, g.k, g.c_per_group()},
                memory.bytes(chunk_), true);
    try {
      make_filter_spectra(weights);
    } catch (...) {
      ws_.fail();
      throw;
    }
  }

  cufft_layer_executor(const cufft_layer_executor&) = delete;
  cufft_layer_executor& operator=(const cufft_layer_executor&) = delete;

  void execute(view4d<const T> in, view4d<T> out) override {
    try {
      for (index first = 0; first < p_.geo.n; first += chunk_) pass(in, out, first, std::min(chunk_, p_.geo.n - first));
    } catch (...) {
      ws_.fail();  // still usable by this executor, not handed on
      throw;
    }
  }

 private:
  /// Filter k's channel c is plane (g * K/groups * C/groups + c * K/groups + k mod K/groups), g its
  /// group: within each frequency, group g's K/groups x C/groups matrix, column-major (W[f][g][c][k]).
  void make_filter_spectra(view4d<const T> weights) {
    workspace& w = *ws_;
    const layer_geometry& g = p_.geo;
    const index cg = g.c_per_group(), kg = g.k_per_group(), planes = g.k * cg;
    const kernel_placement where = tiles_.placement(true, g.rows.dilation, g.cols.dilation);
    const T scale = T(1) / (T(w.layout.rows) * T(w.layout.cols));
    for (index k = 0; k < g.k; ++k)
      for (index c = 0; c < cg; ++c)
        scaled_padded_kernel<T>(weights.plane(k, c), w.plane_view(w.filter_staging.get(), (k / kg) * kg * cg + c * kg + k % kg),
                                where, scale);
    w.copy_planes(w.filter_real.get(), w.filter_staging.get(), planes, cudaMemcpyHostToDevice);
    check_cufft(precision::forward(w.api, w.filter_forward.get(), w.filter_real.get(), w.filters.get()),
                precision::forward_name);
    w.sync();
  }

  /// Images [first, first + count) of the batch (count <= chunk_; the plans always transform
  /// chunk_ images, and what belongs to absent ones is never read back).
  void pass(view4d<const T> in, view4d<T> out, index first, index count) {
    workspace& w = *ws_;
    const layer_geometry& g = p_.geo;
    for (index i = 0; i < count; ++i)
      for (index c = 0; c < g.c; ++c)
        extend<T>(in.plane(first + i, c), w.plane_view(w.host.get(), i * g.c + c), tiles_.rows.read_top(0),
                  tiles_.cols.read_top(0), p_.opt.edge);
    w.copy_planes(w.real.get(), w.host.get(), count * g.c, cudaMemcpyHostToDevice);
    check_cufft(precision::forward(w.api, w.forward.get(), w.real.get(), w.inputs.get()), precision::forward_name);
    // Per group, at every frequency f: Y_f[group's filters, n] = W_f,g X_f[group's channels, n].
    const index cg = g.c_per_group(), kg = g.k_per_group(), complex_bytes = 2 * index(sizeof(T));
    for (index group = 0; group < g.groups; ++group) {
      const char* wg = static_cast<const char*>(w.filters.get()) + group * kg * cg * complex_bytes;
      const char* xg = static_cast<const char*>(w.inputs.get()) + group * cg * complex_bytes;
      char* yg = static_cast<char*>(w.outputs.get()) + group * kg * complex_bytes;
      check_cublas(w.api,
                   precision::gemm_batched(w.api, w.blas.get(), int(kg), int(chunk_), int(cg), wg, int(kg), g.k * cg, xg,
                                           int(g.c), chunk_ * g.c, yg, int(g.k), chunk_ * g.k, int(w.layout.complex_count())),
                   precision::gemm_name);
    }
    check_cufft(precision::inverse(w.api, w.inverse.get(), w.outputs.get(), w.real.get()), precision::inverse_name);
    w.copy_planes(w.host.get(), w.real.get(), count * g.k, cudaMemcpyDeviceToHost);
    w.sync();
    const fft::axis_tiles& ar = tiles_.rows;
    const fft::axis_tiles& ac = tiles_.cols;
    const fft::tile_outputs orow = ar.outputs(0), ocol = ac.outputs(0);
    for (index i = 0; i < count; ++i)
      for (index k = 0; k < g.k; ++k) {
        const view2d<T> real = w.plane_view(w.host.get(), i * g.k + k), o = out.plane(first + i, k);
        const T b = bias_.empty() ? T(0) : bias_[std::size_t(k)];
        for (index r = 0; r < orow.count; ++r) {
          const T* src = real.row(orow.local + r * ar.stride) + ocol.local;
          T* dst = o.row(orow.first + r) + ocol.first;
          for (index j = 0; j < ocol.count; ++j) dst[j] = src[j * ac.stride] + b;
        }
      }
  }

  layer_problem p_;
  fft::tile_plan tiles_;
  index chunk_ = 0;
  std::vector<T> bias_;
  cufft_lease<workspace> ws_;
};

template <class T>
std::unique_ptr<layer_executor<T>> make_cufft_layer(const layer_problem& p, view4d<const T> weights, const T* bias) {
  return std::make_unique<cufft_layer_executor<T>>(p, weights, bias);
}

inline index cufft_pooled_bytes(const cuda_api& api) noexcept {
  return cufft_pool<cufft_workspace<float>>::bytes(api) + cufft_pool<cufft_workspace<double>>::bytes(api) +
         cufft_pool<cufft_layer_workspace<float>>::bytes(api) + cufft_pool<cufft_layer_workspace<double>>::bytes(api);
}

inline void cufft_release_pools() noexcept {
  cufft_pool<cufft_workspace<float>>::clear();
  cufft_pool<cufft_workspace<double>>::clear();
  cufft_pool<cufft_layer_workspace<float>>::clear();
  cufft_pool<cufft_layer_workspace<double>>::clear();
}

/// Cost model: never without a device, for data holding NaN or Inf, or when even the smallest tiles
/// (in double precision: a problem does not carry its precision) exceed the memory cap
/// (cufft_memory_cap); otherwise the tile plan's estimate with the GPU constants, plus (unless a
/// plan pays it once, problem::reused) ~50 ms of set-up that the first call of a transform size
/// pays (context, cuFFT plans, pinned buffers), so that only calls large enough to amortise it go
/// to the GPU.
inline double cufft_cost(const problem& p) {
  if (!p.finite || !cufft::available()) return never;
  const cufft::config c = cufft::get_config();
  index cap = 0;
  try {
    cap = cufft_memory_cap(active_cuda_api(), c);
  } catch (const error&) {  // cudaMemGetInfo failed: a device in that state is not one to choose
    return never;
  }
  const fft::tile_plan t = cufft_tile_plan(p, sizeof(double), c, cap);
  if (cufft_device_bytes(t, sizeof(double), std::min<index>(2, t.tiles())) > cap) return never;
  return (p.reused ? 0.0 : 0.05) + cufft_tile_plan(p, sizeof(float), c, cap).seconds;
}

/// Seconds per complex multiply-add of a layer's channel sums on the GPU (8 flops at ~20 TFLOP/s
/// in cuBLAS's batched GEMM): an estimate from published figures, not measured here.
inline constexpr double cufft_layer_cmac_seconds = 4e-13;

/// Layer cost model: never without a device, for data holding NaN or Inf, for 1x1 kernels (a
/// transform would only scale each channel; im2col's GEMM does that directly) or when one image does
/// not fit under the memory cap (cufft_memory_cap; in double precision, as a problem does not carry
/// its precision); otherwise the N (C + K) plane transforms per call under cufft_cost_model (which
/// counts each host element's pass and transfer) and the channel sums, plus, unless a layer_plan
/// pays them once (layer_problem::reused), ~50 ms of set-up and the K C/groups filter transforms.
inline double cufft_layer_cost(const layer_problem& p) {
  if (!p.finite || !cufft::available()) return never;
  const layer_geometry& g = p.geo;
  if (g.rows.kernel * g.cols.kernel == 1) return never;
  index cap = 0;
  try {
    cap = cufft_memory_cap(active_cuda_api(), cufft::get_config());
  } catch (const error&) {  // as in cufft_cost
    return never;
  }
  const fft::tile_plan t = cufft_layer_tiles(p, sizeof(float));
  if (cufft_layer_chunk(g, t.layout(), sizeof(double), cap) == 0) return never;
  const double filter_planes = p.reused ? 0.0 : double(g.k) * double(g.c_per_group());
  const double planes = double(g.n) * double(g.c + g.k) + filter_planes;
  const double cmacs = double(g.n) * double(g.k) * double(g.c_per_group()) * double(t.layout().complex_count());
  return (p.reused ? 0.0 : 0.05) + planes * fft::tile_seconds(t.rows.transform, t.cols.transform, cufft_cost_model) +
         cmacs * cufft_layer_cmac_seconds;
}

inline const backend cufft_backend{algorithm::cufft,          "convkit::cufft",           &cufft_cost,
                                   &make_cufft<float>,        &make_cufft<double>,        &cufft_layer_cost,
                                   &make_cufft_layer<float>,  &make_cufft_layer<double>};
inline const bool cufft_registered = register_backend(cufft_backend);

}  // namespace convkit::detail

namespace convkit::cufft {

/// Releases the GPU resources (cuFFT plans, streams, device and pinned buffers) that conv2d calls,
/// convkit::plan and layer_plan objects with algorithm::cufft kept for later calls of the same
/// shape (at most four sets per precision for single images, and four for layers). Thread-safe;
/// executors in use keep theirs until they finish.
inline void release_cached() { convkit::detail::cufft_release_pools(); }

}  // namespace convkit::cufft
