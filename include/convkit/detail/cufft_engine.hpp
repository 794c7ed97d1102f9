// The cufft backend on a single plane (one image, one filter): the engine behind cufft::plan,
// one-shot conv2d calls and convkit::plan with algorithm::cufft.
//   made once   transform size and tiles from the cost model under a device-memory cap; cuFFT
//               plans, buffers, streams and events (a cufft_workspace, from a cufft_cache when the
//               executor is pooled); the kernel spectrum (padded_kernel, scaled by 1 / (N_r N_c),
//               one r2c).
//   per tile    host input: convkit::extend writes the tile's window into pinned memory, one copy to
//               the device; device input: block copies on the device assemble the same window
//               (cufft_layout.hpp). Then r2c in place, spectrum product (cublas<C|Z>dgmm), c2r in
//               place, and the (strided) results go back: one copy to pinned memory and a host
//               gather, or device-to-device copies into the caller's output.
// Tiles round-robin over one slot (untiled) or two (a slot: stream, buffers, plans), so that one
// tile's copies overlap the other's transforms.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <string>
#include <vector>

#include "../padding.hpp"
#include "choice.hpp"
#include "cuda/handles.hpp"
#include "cuda/precision.hpp"
#include "cufft_cost.hpp"
#include "cufft_layout.hpp"
#include "cufft_pool.hpp"
#include "problem.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// Where one execute() spent its time (cufft::timing documents it).
struct cufft_timing {
  double host_to_device_ms = 0, compute_ms = 0, device_to_host_ms = 0, host_ms = 0, total_ms = 0;
  index_t tiles = 0;
};

/// `kernel` placed by `where` into `padded` (padded_kernel), times `scale`: the unnormalised c2r's
/// 1 / (N_r N_c) folded into a kernel before its r2c (which is linear).
template <class T>
void scaled_padded_kernel(view2d<const T> kernel, view2d<T> padded, const kernel_placement& where, T scale) {
  padded_kernel<T>(kernel, padded, where);
  for (index_t r = 0; r < padded.rows(); ++r)
    for (index_t c = 0; c < padded.cols(); ++c) padded(r, c) *= scale;
}

/// The GPU resources of a cuFFT plan that depend only on its transform layout, precision, number of
/// slots and device (not on the kernel, borders or strides): per slot a stream, events, a work
/// area, a device tile buffer, pinned staging and the two cuFFT plans; the cuBLAS handle, the
/// device kernel spectrum and fill vector. Made once per shape; one-shot conv2d calls and
/// convkit::plan hand them back to a cufft_cache for the next call of the same transform.
template <class T>
struct cufft_workspace final : cufft_workspace_base {
  enum mark { before_input, after_input, after_compute, after_output };

  /// Members are released in reverse order: the plans, the memory their work touches, the stream.
  struct slot {
    gpu_handle<cudaStream_t> stream;
    std::array<gpu_handle<cudaEvent_t>, 4> events;  // indexed by mark
    gpu_handle<void*> work, buffer;                 // device
    gpu_handle<void*> staging, results;             // pinned host
    gpu_handle<cufftHandle> forward, inverse;
    index_t tile = -1;  // the tile whose results it holds, -1 for none
    bool busy = false;  // work queued since the last synchronisation
  };

  /// What makes two workspaces interchangeable (cufft_pool's key).
  struct key {
    const cuda_api* api;
    int device;
    index_t rows, cols, slots;
    bool operator==(const key& o) const noexcept {
      return api == o.api && device == o.device && rows == o.rows && cols == o.cols && slots == o.slots;
    }
  };

  /// Throws convkit::error naming the failed call; what was made before it is released.
  cufft_workspace(const cuda_api& a, const key& k) : cufft_workspace_base(a), layout{k.rows, k.cols}, id_(k) {
    slots.resize(static_cast<std::size_t>(k.slots));
    for (slot& s : slots) make_slot(s);
    blas = make_blas(api);
    spectrum = device(buffer_bytes());
    fill_vector = device(fill_length() * index_t(sizeof(T)));
  }
  ~cufft_workspace() override { settle(); }  // work in flight must finish before its buffers are freed

  /// Lets work in flight finish and forgets the tiles it belonged to.
  void settle() noexcept override {
    for (slot& s : slots) {
      if (s.busy) api.stream_synchronize(s.stream.get());
      s.busy = false;
      s.tile = -1;
    }
  }

  const key& id() const noexcept { return id_; }
  index_t buffer_bytes() const noexcept { return layout.real_count() * index_t(sizeof(T)); }
  /// The fill vector of device-side windows (detail/cufft_layout.hpp): one value per window row or column.
  index_t fill_length() const noexcept { return std::max(layout.rows, layout.cols); }

  fft::spectrum_layout layout;
  std::vector<slot> slots;
  gpu_handle<cublasHandle_t> blas;          // bound to the slots' streams: released before them
  gpu_handle<void*> spectrum, fill_vector;  // device

 private:
  void make_slot(slot& s) {
    using precision = cufft_traits<T>;
    s.stream = make_stream(api);
    for (auto& e : s.events) e = make_event(api);
    // In-place r2c / c2r over the padded rows of fft_sizes.hpp's layout, work areas supplied by us.
    const int spectrum_dist = int(layout.complex_count());
    size_t forward_work = 0, inverse_work = 0;
    s.forward = make_layout_plan(api, precision::forward_type, layout, true, 1, 1, spectrum_dist, forward_work);
    s.inverse = make_layout_plan(api, precision::inverse_type, layout, false, 1, 1, spectrum_dist, inverse_work);
    s.work = device(index_t(std::max<size_t>({forward_work, inverse_work, 1})));
    bind_plans(api, {s.forward.get(), s.inverse.get()}, s.work.get(), s.stream.get());
    s.buffer = device(buffer_bytes());
    // Staging rows have the device buffer's padded layout; only their first N_c reals travel.
    s.staging = pinned_alloc(api, buffer_bytes());
    // A tile's (row-strided) results span at most N_r x N_c elements.
    s.results = pinned_alloc(api, layout.rows * layout.cols * index_t(sizeof(T)));
  }

  key id_;
};

/// Everything one cuFFT plan owns (a cufft_workspace, its tile plan, the kernel spectrum), and the
/// two ways of running it.
template <class T>
class cufft_engine {
  using precision = cufft_traits<T>;
  using workspace = cufft_workspace<T>;
  using slot = typename workspace::slot;
  using mark = typename workspace::mark;
  static constexpr mark before_input = workspace::before_input, after_input = workspace::after_input,
                        after_compute = workspace::after_compute, after_output = workspace::after_output;

 public:
  /// `kernel`: rows.kernel x cols.kernel values in correlation order; `bias` null or one value.
  /// `reuse`: whether the workspace comes from and goes back to the problem's cache
  /// (cufft_cache_of(p.tune.gpu_fft)), or is made and released with the engine (cufft::plan: a
  /// caller who holds a plan manages its memory). Either way the memory cap counts that cache's
  /// memory as free, and a new workspace makes its room there.
  cufft_engine(const conv_problem& p, const T* kernel, const T* bias, cufft_reuse reuse)
      : p_(p), api_(active_cuda_api()), fill_(p.fill<T>()), bias_(bias != nullptr ? *bias : T(0)) {
    const gpu_fft_config& cfg = p.tune.gpu_fft;
    refuse_sparse(p.sparse(), "cufft");
    const std::string reason = cuda_unavailable_reason(api_);
    if (!reason.empty()) throw unavailable("algorithm::cufft: " + reason);
    const index_t cap = cufft_memory_cap(api_, cfg);
    tiles_ = cufft_tile_plan(p, cap);
    layout_ = tiles_.layout();
    if (layout_.real_count() > INT_MAX)
      throw error("cufft: transform size " + std::to_string(layout_.rows) + "x" + std::to_string(layout_.cols) +
                  " exceeds cuFFT's int sizes; set gpu_fft_config::memory_cap or tile sizes to tile the image");
    const index_t slots = std::min<index_t>(2, tiles_.tiles());
    const index_t need = cufft_device_bytes(tiles_, sizeof(T), slots);
    if (need > cap)
      throw error("cufft: tiles of " + std::to_string(layout_.rows) + "x" + std::to_string(layout_.cols) + " need " +
                  std::to_string(need) + " bytes of device memory, more than the " + std::to_string(cap) +
                  "-byte memory cap (the smallest tiles the kernel allows, unless tiling was forced)");
    ws_.acquire(api_, {&api_, current_device(api_), layout_.rows, layout_.cols, slots}, need, cufft_cache_of(cfg),
                reuse);
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

  /// out = in (*) kernel, with in and out in host memory. `spoiled`: if not null, each tile's window
  /// is checked for NaN and Inf as it is extended into pinned memory (executor::execute_finite); at
  /// the first one met, *spoiled is set, no further tile starts, and `out` is left unspecified.
  void run_host(view2d<const T> in, view2d<T> out, cufft_timing* t, bool* spoiled = nullptr) {
    run(
        t, true, [&](index_t tile, slot& s, bool timed) { return stage_host(tile, s, in, timed, spoiled); },
        [&](const slot& s) { gather(s, out); });
  }

  /// out = in (*) kernel, with in and out in device memory: no host transfer at all.
  void run_device(view2d<const T> in, view2d<T> out, cufft_timing* t) {
    run(
        t, false,
        [&](index_t tile, slot& s, bool timed) {
          stage_device(tile, s, in, out, timed);
          return true;
        },
        [](const slot&) {});
  }

 private:
  /// At construction, through slot 0: the fill vector (zero and constant borders, for device
  /// inputs), then the kernel spectrum. Synchronised, since slot 1 reads them from another stream.
  void upload_constants(const T* kernel) {
    slot& s = ws_->slots.front();
    T* staging = static_cast<T*>(s.staging.get());
    const index_t sz = sizeof(T);
    if (p_.edge == border::zero || p_.edge == border::constant) {
      const index_t n = ws_->fill_length();
      std::fill_n(staging, n, fill_);
      copy(ws_->fill_vector.get(), n * sz, staging, n * sz, n * sz, 1, cudaMemcpyHostToDevice, s);
      sync(s);
    }
    const view2d<T> padded(staging, layout_.rows, layout_.cols, layout_.real_row_stride());
    scaled_padded_kernel<T>(view2d<const T>(kernel, p_.rows.kernel, p_.cols.kernel), padded,
                            tiles_.placement(true, p_.rows.dilation, p_.cols.dilation),
                            T(1) / (T(layout_.rows) * T(layout_.cols)));
    const index_t pitch = layout_.real_row_stride() * sz;
    copy(ws_->spectrum.get(), pitch, staging, pitch, layout_.cols * sz, layout_.rows, cudaMemcpyHostToDevice, s);
    s.busy = true;
    check_cufft(precision::forward(api_, s.forward.get(), ws_->spectrum.get(), ws_->spectrum.get()),
                precision::forward_name);
    sync(s);
  }

  void copy(void* dst, index_t dst_pitch, const void* src, index_t src_pitch, index_t width, index_t rows,
            cudaMemcpyKind kind, slot& s) {
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
    check_cublas(
        api_,
        spectrum_product<T>(api_, ws_->blas.get(), int(layout_.complex_count()), s.buffer.get(), ws_->spectrum.get()),
        precision::product_name);
    check_cufft(precision::inverse(api_, s.inverse.get(), s.buffer.get(), s.buffer.get()), precision::inverse_name);
  }

  fft::tile_outputs row_outputs(index_t tile) const noexcept { return tiles_.rows.outputs(tile / tiles_.cols.tiles); }
  fft::tile_outputs col_outputs(index_t tile) const noexcept { return tiles_.cols.outputs(tile % tiles_.cols.tiles); }

  /// Host input: extend into pinned memory, copy up, transform, copy the row-strided results down.
  /// False, with nothing queued and *spoiled set, if `spoiled` is given and the window holds a NaN
  /// or Inf.
  bool stage_host(index_t tile, slot& s, view2d<const T> in, bool timed, bool* spoiled) {
    const index_t sz = sizeof(T), pitch = layout_.real_row_stride() * sz;
    const auto started = std::chrono::steady_clock::now();
    const view2d<T> window(static_cast<T*>(s.staging.get()), layout_.rows, layout_.cols, layout_.real_row_stride());
    extend<T>(in, window, tiles_.rows.read_top(tile / tiles_.cols.tiles),
              tiles_.cols.read_top(tile % tiles_.cols.tiles), p_.edge, fill_);
    fft::clear_beyond_extent(window, tiles_.rows, tiles_.cols, tiles_.circular, tile / tiles_.cols.tiles,
                             tile % tiles_.cols.tiles, p_.rows.extent, p_.cols.extent);
    const bool finite = spoiled == nullptr || all_finite<T>(window);
    host_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    if (!finite) {
      *spoiled = true;
      return false;
    }
    if (timed) record(s, before_input);
    copy(s.buffer.get(), pitch, s.staging.get(), pitch, layout_.cols * sz, layout_.rows, cudaMemcpyHostToDevice, s);
    if (timed) record(s, after_input);
    transform(s);
    if (timed) record(s, after_compute);
    const fft::tile_outputs rows = row_outputs(tile), cols = col_outputs(tile);
    const index_t width = (cols.count - 1) * tiles_.cols.stride + 1;
    const T* first = static_cast<const T*>(s.buffer.get()) + rows.local * layout_.real_row_stride() + cols.local;
    copy(s.results.get(), width * sz, first, tiles_.rows.stride * pitch, width * sz, rows.count, cudaMemcpyDeviceToHost,
         s);
    if (timed) record(s, after_output);
    return true;
  }

  /// After the slot's stream is synchronised: its results, from pinned memory to `out`.
  void gather(const slot& s, view2d<T> out) {
    const auto started = std::chrono::steady_clock::now();
    const fft::tile_outputs rows = row_outputs(s.tile), cols = col_outputs(s.tile);
    const index_t stride = tiles_.cols.stride, width = (cols.count - 1) * stride + 1;
    const T* results = static_cast<const T*>(s.results.get());
    for (index_t i = 0; i < rows.count; ++i) {
      const T* src = results + i * width;
      T* dst = out.row(rows.first + i) + cols.first;
      for (index_t j = 0; j < cols.count; ++j) dst[j] = src[j * stride] + bias_;
    }
    host_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  }

  /// Device input: assemble the window on the device, transform, copy the results into `out`.
  void stage_device(index_t tile, slot& s, view2d<const T> in, view2d<T> out, bool timed) {
    const index_t sz = sizeof(T), ld = layout_.real_row_stride();
    T* buffer = static_cast<T*>(s.buffer.get());
    const T* fill = static_cast<const T*>(ws_->fill_vector.get());
    if (timed) record(s, before_input);
    for_each_window_copy(in.rows(), in.cols(), tiles_.rows.read_top(tile / tiles_.cols.tiles),
                         tiles_.cols.read_top(tile % tiles_.cols.tiles), layout_.rows, layout_.cols, p_.edge,
                         [&](const block_copy& b) {
                           T* dst = buffer + b.dst_row * ld + b.dst_col;
                           switch (b.source) {
                             case block_copy::from::input:
                               copy(dst, ld * sz, in.data() + b.src_row * in.row_stride() + b.src_col,
                                    in.row_stride() * sz, b.cols * sz, b.rows, cudaMemcpyDeviceToDevice, s);
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
  /// A stage that returns false queued nothing and ends the run (the tiles in flight are finished).
  template <class Stage, class Finish>
  void run(cufft_timing* t, bool host, Stage&& stage, Finish&& finish_results) {
    const auto started = std::chrono::steady_clock::now();
    const bool timed = t != nullptr;
    host_ms_ = 0;
    cufft_timing sums;
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
      const index_t tiles = tiles_.tiles(), n = index_t(ws_->slots.size());
      index_t next = 0;  // the slot that takes the next tile
      for (index_t tile = 0; tile < tiles; ++tile) {
        // With a stride larger than a tile, some tiles hold no output: nothing to compute.
        if (row_outputs(tile).count == 0 || col_outputs(tile).count == 0) continue;
        slot& s = ws_->slots[std::size_t(next)];
        next = (next + 1) % n;
        if (s.tile >= 0) finish(s);
        if (!stage(tile, s, timed)) break;
        s.tile = tile;
      }
      for (index_t k = 0; k < n; ++k) {  // oldest first
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

  conv_problem p_;
  const cuda_api& api_;
  fft::tile_plan tiles_;
  fft::spectrum_layout layout_;
  T fill_ = T(0);
  T bias_ = T(0);  // added on the host path only (single planes of a batch)
  double host_ms_ = 0;
  cufft_lease<workspace> ws_;
};

}  // namespace detail
CONVKIT_NAMESPACE_END
