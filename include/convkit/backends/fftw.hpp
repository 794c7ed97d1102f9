// convkit/backends/fftw.hpp - algorithm::fft: convolution through FFTW3's real transforms.
// Link the CMake target convkit::fftw (FFTW is GPL: see the README's licence note).
//
// How it works:
//   1. The problem is reduced (options.hpp) to a valid correlation of the border-extended input,
//      computed densely and subsampled for strides. detail/fft_sizes.hpp chooses a transform size:
//      one transform of the whole extended input (>= H + KHe - 1 per axis for zero borders, rounded
//      up to 2^a 3^b 5^c 7^d), or overlap-save tiles of one small size when that is cheaper or the
//      whole one would exceed the workspace cap, or (border::circular, output::same) an image-sized
//      transform, which is exactly circular convolution.
//   2. The kernel goes through padded_kernel, is transformed once (r2c) and scaled by 1 / (N_r N_c)
//      when the executor is made, so execution needs no scaling pass.
//   3. Each tile: convkit::extend writes the window of the extended input into an in-place buffer,
//      r2c, element-wise complex product with the kernel spectrum, c2r, copy of the (strided)
//      results. Tiles are spread over options::threads threads, one buffer each; a single
//      transform uses FFTW's own threads instead.
//   4. FFTW plans come from a cache shared by all calls (keyed by size, precision, threads and
//      planning rigour), so a second conv2d of the same shape plans nothing.
//
// Layers (layer_options.hpp; fftw_layer_executor below): per call, each input channel plane (or
// overlap-save tile of it, chosen by the same planner) of each image is transformed once; each
// filter's per-channel spectra are made once per plan; for each output channel the products with
// the input spectra are summed over the channels of its group in the frequency domain, then one
// inverse transform per output plane (tile), bias, stride subsampling and crop. algorithm::automatic
// picks fft for a layer when its cost model (fftw_layer_cost) beats the other backends' while still
// paying for the filter spectra, which a one-shot conv2d makes on every call: in practice large
// kernels (5x5 and up) over many channels, and 3x3 layers at large batch and planes (ResNet-50's
// 64->64 at 56x56 and 128->128 at 28x28, batch 8); never 1x1 kernels, data with NaN or Inf, or
// layers whose buffers outgrow fftw::config::memory_cap per thread even in the smallest tiles.
//
// Non-finite values: a NaN or Inf in the kernel makes every output NaN; one in the input makes NaN
// every output of each tile whose window holds it (all of them when untiled; for layers, in every
// output channel of its group). algorithm::automatic therefore never picks fft when the data hold
// NaN or Inf; ask for it explicitly only for finite data.
//
// Public API (namespace convkit::fftw):
//   struct config { rigour planning; tiling tiles; index tile_rows, tile_cols; index memory_cap; }
//   set_config(config) / get_config()     applies to executors (plans, conv2d calls) made afterwards
//   import_wisdom(path) / export_wisdom(path) / forget_wisdom()
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "../detail/setting.hpp"
#include "../detail/backend.hpp"
#include "../detail/fft_sizes.hpp"
#include "../detail/fftw_traits.hpp"
#include "../detail/spectrum_product.hpp"
#include "../detail/threads.hpp"
#include "../layer_options.hpp"
#include "../padding.hpp"
#include "../view4d.hpp"

namespace convkit::fftw {

/// How hard FFTW looks for a fast algorithm when it plans a transform size it has no wisdom for.
enum class rigour {
  estimate,  ///< heuristics only: planning takes microseconds (default)
  measure,   ///< times candidate algorithms: seconds per new size, often 10-30% faster transforms
  patient    ///< times many more: minutes per new size
};

/// Whether the fft backend cuts images into tiles (see detail/fft_sizes.hpp).
using tiling = convkit::detail::fft::tiling;

struct config {
  rigour planning = rigour::estimate;
  tiling tiles = tiling::automatic;
  /// > 0: force tiles of this many (dense, stride-1) output rows / cols each; for tests and benchmarks.
  index tile_rows = 0, tile_cols = 0;
  /// Workspace per thread that automatic tiling stays under: one tile buffer per thread plus the
  /// shared kernel spectrum, counted as two buffers. Layers: memory_cap * threads bounds all their
  /// buffers together (filter spectra, the sweep's input and output spectra, scratch).
  index memory_cap = index(64) << 20;
};

/// Sets the configuration used by fft executors made from now on (thread-safe).
/// Throws convkit::error for a negative tile size or a memory_cap < 1.
inline void set_config(const config& c) {
  if (c.tile_rows < 0 || c.tile_cols < 0) throw error("fftw::config: tile_rows and tile_cols must be >= 0");
  if (c.memory_cap < 1) throw error("fftw::config: memory_cap must be >= 1 byte");
  convkit::detail::setting<config>::instance().set(c);
}

/// The configuration in effect (thread-safe).
inline config get_config() { return convkit::detail::setting<config>::instance().get(); }

/// Writes FFTW's accumulated wisdom (both precisions) to the file `path`.
/// Throws convkit::error naming the path if it cannot be written.
inline void export_wisdom(const std::string& path) {
  std::string text;
  const auto put = [](char c, void* sink) { static_cast<std::string*>(sink)->push_back(c); };
  {
    std::lock_guard<std::mutex> lock(convkit::detail::fftw_mutex());
    convkit::detail::fftw_traits<double>::export_wisdom(put, &text);
    convkit::detail::fftw_traits<float>::export_wisdom(put, &text);
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) throw error("fftw::export_wisdom: cannot write path '" + path + "'");
}

/// Adds the wisdom in the file `path` (as written by export_wisdom, or by fftw-wisdom / fftwf-wisdom)
/// to FFTW's. Throws convkit::error naming the path if it cannot be read or holds no valid wisdom.
inline void import_wisdom(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream buffer;
  buffer << f.rdbuf();
  if (!f) throw error("fftw::import_wisdom: cannot read path '" + path + "'");
  const std::string text = buffer.str();
  // The file holds one s-expression per precision, each starting "(fftw-<version> fftw[f]_wisdom".
  bool any = false;
  std::lock_guard<std::mutex> lock(convkit::detail::fftw_mutex());
  for (std::size_t at = text.find("(fftw-"); at != std::string::npos;) {
    const std::size_t next = text.find("(fftw-", at + 1);
    const std::string block = text.substr(at, next == std::string::npos ? std::string::npos : next - at);
    const std::string header = block.substr(0, block.find('\n'));
    bool ok = false;
    if (header.find(convkit::detail::fftw_traits<float>::wisdom_tag) != std::string::npos)
      ok = convkit::detail::fftw_traits<float>::import_wisdom(block.c_str()) != 0;
    else if (header.find(convkit::detail::fftw_traits<double>::wisdom_tag) != std::string::npos)
      ok = convkit::detail::fftw_traits<double>::import_wisdom(block.c_str()) != 0;
    if (!ok) throw error("fftw::import_wisdom: path '" + path + "' holds invalid wisdom");
    any = true;
    at = next;
  }
  if (!any) throw error("fftw::import_wisdom: path '" + path + "' holds no FFTW wisdom");
}

/// Forgets all accumulated wisdom (plans already made stay valid).
inline void forget_wisdom() {
  std::lock_guard<std::mutex> lock(convkit::detail::fftw_mutex());
  convkit::detail::fftw_traits<double>::forget_wisdom();
  convkit::detail::fftw_traits<float>::forget_wisdom();
}

}  // namespace convkit::fftw

namespace convkit::detail {

/// FFTW 3.3.10's speed on the reference machine (one core of a 2-core AVX-512 Xeon, 2 MiB L2 per
/// core), float, FFTW_ESTIMATE plans, fitted to the time of whole tiles (fill, r2c, product, c2r,
/// copy-out) for square lengths 16..2048: ~0.31 ns per element per log2(N) + 0.4 ns; odd lengths
/// (343, 625, 729, 1029, ...) about twice slower; +1.4 ns per element for each doubling of the
/// working set beyond L2. The model is good to ~15% for tile lengths 2^a, 3 * 2^a and 5 * 2^a from 128 up,
/// so tiles use only those (24, 40, 48, 80 and 96 took 1.6-2.7x the power-of-two time per element;
/// lengths like 162 or 270 twice the model's estimate). See the README, "Choosing a backend".
inline constexpr fft::fft_cost_model fftw_cost_model{0.31e-9, 0.4e-9, 4.0, 0.6, 2.0, 1.4e-9, index(2) << 20, 128};

inline unsigned fftw_flags(fftw::rigour r) noexcept {
  switch (r) {
    case fftw::rigour::estimate: return FFTW_ESTIMATE;
    case fftw::rigour::measure: return FFTW_MEASURE;
    case fftw::rigour::patient: return FFTW_PATIENT;
  }
  return FFTW_ESTIMATE;
}

inline fft::tile_plan fftw_tile_plan(const problem& p, index element_bytes, const fftw::config& c) {
  return fft::plan_tiles(p.geo, p.opt.edge, element_bytes, p.opt.threads, {c.tiles, c.tile_rows, c.tile_cols},
                         fftw_cost_model, c.memory_cap);
}

template <class T>
class fftw_executor final : public executor<T> {
 public:
  fftw_executor(const problem& p, view2d<const T> kernel) : p_(p) {
    const fftw::config cfg = fftw::get_config();
    tiles_ = fftw_tile_plan(p, sizeof(T), cfg);
    const fft::spectrum_layout layout = tiles_.layout();
    if (layout.rows > index(INT32_MAX) || layout.cols > index(INT32_MAX))
      throw error("fft: transform size " + std::to_string(layout.rows) + "x" + std::to_string(layout.cols) +
                  " exceeds FFTW's int sizes");
    // Threads pay for themselves above ~0.5 ms of work each (waking a pool thread, splitting caches).
    const double single = fft::plan_seconds(tiles_.tiles(), layout.rows, layout.cols, 1, fftw_cost_model, sizeof(T));
    const int useful = static_cast<int>(std::clamp<double>(single / 5e-4, 1.0, p.opt.threads));
    workers_ = static_cast<int>(std::min<index>(useful, tiles_.tiles()));
    plans_ = fftw_cached_plans<T>(layout, tiles_.tiles() == 1 ? useful : 1, fftw_flags(cfg.planning));
    // Each worker's buffer starts on a 64-byte boundary: FFTW planned on aligned scratch and may use
    // aligned SIMD loads, so new-array execution needs the same alignment.
    buffer_stride_ = (layout.real_count() + aligned_elements - 1) / aligned_elements * aligned_elements;
    buffers_ = aligned_zeros<T>(checked_mul(workers_, buffer_stride_, "fft workspace"), "fft workspace");
    spectrum_ = aligned_zeros<T>(layout.real_count(), "fft kernel spectrum");
    // Kernel spectrum: padded kernel -> r2c -> scaled by 1 / (N_r N_c), the c2r's normalisation.
    padded_kernel<T>(kernel, real_view(spectrum_.get()),
                     tiles_.placement(p.opt.correlate, p.geo.rows.dilation, p.geo.cols.dilation));
    plans_->forward(spectrum_.get());
    const T scale = T(1) / (T(layout.rows) * T(layout.cols));
    for (index i = 0; i < layout.real_count(); ++i) spectrum_[i] *= scale;
  }

  void execute(view2d<const T> in, view2d<T> out) override {
    const index tiles = tiles_.tiles();
    parallel_for(workers_, workers_, [&](index w0, index w1) {
      for (index w = w0; w < w1; ++w) {
        T* buffer = buffers_.get() + w * buffer_stride_;
        for (index t = tiles * w / workers_; t < tiles * (w + 1) / workers_; ++t) run_tile(t, in, out, buffer);
      }
    });
  }

 private:
  view2d<T> real_view(T* buffer) const {
    const fft::spectrum_layout& l = tiles_.layout();
    return view2d<T>(buffer, l.rows, l.cols, l.real_row_stride());
  }

  void run_tile(index t, view2d<const T> in, view2d<T> out, T* buffer) const {
    const fft::axis_tiles& ar = tiles_.rows;
    const fft::axis_tiles& ac = tiles_.cols;
    const index tr = t / ac.tiles, tc = t % ac.tiles;
    const view2d<T> real = real_view(buffer);
    extend<T>(in, real, ar.read_top(tr), ac.read_top(tc), p_.opt.edge, static_cast<T>(p_.opt.edge_value));
    plans_->forward(buffer);
    multiply_spectra(buffer, spectrum_.get(), plans_->layout().complex_count());
    plans_->inverse(buffer);
    const fft::tile_outputs orow = ar.outputs(tr), ocol = ac.outputs(tc);
    for (index i = 0; i < orow.count; ++i) {
      const T* src = real.row(orow.local + i * ar.stride) + ocol.local;
      T* dst = out.row(orow.first + i) + ocol.first;
      if (ac.stride == 1) {
        std::copy(src, src + ocol.count, dst);
      } else {
        for (index j = 0; j < ocol.count; ++j) dst[j] = src[j * ac.stride];
      }
    }
  }

  // a[i] *= b[i] for n complex numbers stored as (re, im) pairs.
  static void multiply_spectra(T* __restrict a, const T* __restrict b, index n) noexcept {
    for (index i = 0; i < n; ++i) {
      const T ar = a[2 * i], ai = a[2 * i + 1], br = b[2 * i], bi = b[2 * i + 1];
      a[2 * i] = ar * br - ai * bi;
      a[2 * i + 1] = ar * bi + ai * br;
    }
  }

  static constexpr index aligned_elements = index(64 / sizeof(T));

  problem p_;
  fft::tile_plan tiles_;
  int workers_ = 1;
  index buffer_stride_ = 0;  // elements from one worker's buffer to the next: real_count rounded up to 64 bytes
  std::shared_ptr<const fftw_plan_pair<T>> plans_;
  std::unique_ptr<T[], aligned_free> buffers_, spectrum_;
};

template <class T>
std::unique_ptr<executor<T>> make_fftw(const problem& p, view2d<const T> kernel) {
  return std::make_unique<fftw_executor<T>>(p, kernel);
}

/// Cost model: the tile plan's estimate (fft_sizes.hpp) with this machine's constants, plus the
/// kernel's transform unless a plan makes it once (problem::reused) (float's sizes: a problem does
/// not carry its precision); never for data holding NaN or Inf (an FFT spreads them over the output).
inline double fftw_cost(const problem& p) {
  if (!p.finite) return never;
  const fft::tile_plan t = fftw_tile_plan(p, sizeof(float), fftw::get_config());
  const double kernel_spectrum = p.reused ? 0.0 : fft::tile_seconds(t.rows.transform, t.cols.transform, fftw_cost_model);
  return t.seconds + kernel_spectrum;
}

// --- Layers ---------------------------------------------------------------------------------------

/// How the fft backend runs one layer: the transform (a tile plan over the layer's per-axis
/// geometry, as for single images) and the buffers it needs. Every spectrum buffer holds one
/// in-place r2c layout padded with zeros to a whole number of blocks (spectrum_product.hpp).
struct fftw_layer_layout {
  fft::tile_plan tiles;
  index stride = 0;        ///< reals per spectrum buffer
  index pairs = 0;         ///< (image, tile) pairs: N * tiles
  index sweep = 0;         ///< pairs transformed, multiplied and inverted together (bounded by the workspace)
  index weight_reals = 0;  ///< the filters' spectra: K * C/groups buffers, made once per plan
  index pair_reals = 0;    ///< one pair's buffers: C input spectra and K output spectra
  index scratch_reals = 0; ///< one in-place transform per thread
  index sweeps() const noexcept { return (pairs + sweep - 1) / sweep; }
  /// Bytes of every buffer the executor holds (saturating).
  index bytes(index element_bytes) const noexcept {
    return saturated_index((double(weight_reals) + double(sweep) * double(pair_reals) + double(scratch_reals)) *
                           double(element_bytes));
  }
};

/// Layer cost constants, fitted with a sweep of ~300 layer shapes (N 1..8, C and K 1..256, dense,
/// grouped and depthwise, kernels 2..13, planes 7..200, strides 1 and 2) at every tile size, on
/// one core of the reference machine (README, "Choosing a backend"), float, FFTW_ESTIMATE plans;
/// the model is within 0.6x..1.2x of the measured time for 80% of them.
struct fftw_layer_cost_model {
  double transform_unit;       ///< per element and log2 N of a forward or inverse power-of-two transform
  double element_unit;         ///< per element of a plane for its fill (extend) or copy-out
  double plane_unit;           ///< per plane transformed (calls, set-up)
  double cmac;                 ///< per complex multiply-add of the frequency-domain product
  double weight_byte;          ///< per byte of the filters' spectra read, once per sweep
  double threaded_efficiency;  ///< the second thread's share (planes and products split evenly)
  index sweep_bytes;           ///< a sweep's buffers stay under this where the workspace bound allows:
                               ///< larger sweeps fall out of cache (1.7x slower at 38 MiB)
};
inline constexpr fftw_layer_cost_model fftw_layer_costs{1.12e-10, 7.8e-10, 4.1e-8, 6.1e-11, 1.5e-11, 0.65, index(8) << 20};

/// FFTW_ESTIMATE's time per element and log2 N of a transform length, relative to powers of two
/// (measured on the reference machine, square in-place r2c + c2r, lengths 4..256): odd lengths
/// ~2.3x; even mixed-radix lengths ~2.5x below 128 (30, 36, 40, 60, 90, 96: 3-4x; 12, 20, 80: ~1x)
/// and ~1.5x from 128; lengths with larger prime factors (image-sized circular transforms) 4x.
inline double fftw_length_factor(index n) noexcept {
  if (!fft::is_fast_size(n)) return 4.0;
  if ((n & (n - 1)) == 0) return 1.0;
  if (n % 2 == 1) return 2.3;
  return n < 128 ? 2.5 : 1.5;
}

/// Seconds of one plane's forward or inverse transform of N_r x N_c with its fill or copy-out; the
/// cache term is fftw_cost_model's (planes whose buffers outgrow L2).
inline double fftw_plane_seconds(index rows, index cols, index element_bytes) noexcept {
  const fftw_layer_cost_model& m = fftw_layer_costs;
  const double n = double(rows) * double(cols);
  const double factor = std::max(fftw_length_factor(rows), fftw_length_factor(cols));
  const double spill = fftw_cost_model.cache_unit *
                       std::max(0.0, std::log2(2.0 * n * double(element_bytes) / double(fftw_cost_model.cache_bytes)));
  return m.plane_unit + n * (m.transform_unit * std::log2(std::max(n, 2.0)) * factor + m.element_unit + spill);
}

/// The layout of tile plan `t` for layer `g` on `threads` threads when `budget` bytes may hold the
/// buffers: the sweep is as many pairs as fit in fftw_layer_costs.sweep_bytes, or beside the
/// weights' spectra in the budget if that is less (at least one). Sizes saturate rather than
/// overflow, so that a planner can rate absurd candidates; the executor checks its allocations.
inline fftw_layer_layout fftw_layer_layout_for(const layer_geometry& g, const fft::tile_plan& t, index element_bytes,
                                               int threads, index budget) {
  fftw_layer_layout l;
  l.tiles = t;
  const index real_count = t.layout().real_count();
  const index block = spectrum_block_bytes / element_bytes;
  l.stride = (real_count + block - 1) / block * block;
  l.pairs = saturated_index(double(g.n) * double(t.tiles()));
  l.weight_reals = saturated_index(double(g.k) * double(g.c_per_group()) * double(l.stride));
  l.pair_reals = saturated_index(double(g.c + g.k) * double(l.stride));
  l.scratch_reals = saturated_index(double(threads) * double(l.stride));
  const double room = std::min(double(budget) - double(l.weight_reals + l.scratch_reals) * double(element_bytes),
                               double(fftw_layer_costs.sweep_bytes));
  l.sweep = std::clamp<index>(saturated_index(std::max(room, 0.0) / (double(l.pair_reals) * double(element_bytes))), 1, l.pairs);
  return l;
}

/// Estimated seconds of one execute of layout `l` for layer `g`.
inline double fftw_layer_seconds(const layer_geometry& g, const fftw_layer_layout& l, index element_bytes, int threads) {
  const fftw_layer_cost_model& m = fftw_layer_costs;
  const double transforms =
      double(l.pairs) * double(g.c + g.k) * fftw_plane_seconds(l.tiles.rows.transform, l.tiles.cols.transform, element_bytes);
  const double products = double(l.pairs) * double(g.k) * double(g.c_per_group()) * double(l.stride / 2) * m.cmac *
                          double(element_bytes) / 4.0;
  const double weights = double(l.sweeps()) * double(l.weight_reals) * double(element_bytes) * m.weight_byte;
  return (transforms + products + weights) / (1.0 + m.threaded_efficiency * (threads - 1));
}

/// The workspace bound of a layer: fftw::config::memory_cap per thread, for all buffers together
/// (the weights' spectra included).
inline index fftw_layer_budget(const fftw::config& c, int threads) {
  return saturated_index(double(c.memory_cap) * std::max(threads, 1));
}

/// Chooses the transform for layer problem p in precision `element_bytes` (the tile planner of
/// fft_sizes.hpp with the layer's time and memory), honouring the configuration's forced tiling.
inline fftw_layer_layout fftw_layer_plan(const layer_problem& p, index element_bytes, const fftw::config& c) {
  const layer_geometry& g = p.geo;
  const index budget = fftw_layer_budget(c, p.opt.threads);
  const auto layout = [&](const fft::tile_plan& x) {
    return fftw_layer_layout_for(g, x, element_bytes, p.opt.threads, budget);
  };
  const fft::tile_plan t = fft::plan_tiles_by(
      geometry{g.rows, g.cols}, p.opt.edge, {c.tiles, c.tile_rows, c.tile_cols}, fftw_cost_model, budget,
      [&](const fft::tile_plan& x) {
        return fftw_layer_seconds(g, layout(x), element_bytes, p.opt.threads);
      },
      [&](const fft::tile_plan& x) { return layout(x).bytes(element_bytes); });
  return layout(t);
}

/// A layer (layer_options.hpp) through FFTW, per sweep of (image, tile) pairs:
///   1. each input channel plane (tile) of each image: convkit::extend writes the window of the
///      padded input, r2c; once per call;
///   2. per output channel k, frequency by frequency: the sum over the C/groups input channels of
///      its group of input spectrum times filter spectrum (spectrum_product.hpp); the filters'
///      spectra are made once, at construction: padded_kernel (flipped: the product of spectra is
///      a convolution and a layer correlates), r2c, scaled by 1 / (N_r N_c);
///   3. one c2r per output channel plane (tile), then bias, stride subsampling and crop into out.
/// Phases 1 and 3 split the (pair, channel) planes over the threads, phase 2 the (frequency block,
/// group, range of pairs) items; plans hold every buffer, so execute() allocates nothing.
template <class T>
class fftw_layer_executor final : public layer_executor<T> {
  static constexpr index block = spectrum_block<T>;

 public:
  fftw_layer_executor(const layer_problem& p, view4d<const T> weights, const T* bias)
      : p_(p), product_(spectrum_kernel_for<T>(direct::instruction_set())) {
    const fftw::config cfg = fftw::get_config();
    const layer_geometry& g = p.geo;
    l_ = fftw_layer_plan(p, sizeof(T), cfg);
    const fft::spectrum_layout layout = l_.tiles.layout();
    if (layout.rows > index(INT32_MAX) || layout.cols > index(INT32_MAX))
      throw error("fft: transform size " + std::to_string(layout.rows) + "x" + std::to_string(layout.cols) +
                  " exceeds FFTW's int sizes");
    plans_ = fftw_cached_plans<T>(layout, 1, fftw_flags(cfg.planning));
    const index filters = g.k * g.c_per_group();
    weights_ = aligned_zeros<T>(checked_mul(filters, l_.stride, "fft: filter spectra"), "fft: filter spectra");
    inputs_ = aligned_zeros<T>(checked_mul(checked_mul(l_.sweep, g.c, "fft: input spectra"), l_.stride, "fft: input spectra"),
                               "fft: input spectra");
    outputs_ = aligned_zeros<T>(checked_mul(checked_mul(l_.sweep, g.k, "fft: output spectra"), l_.stride, "fft: output spectra"),
                                "fft: output spectra");

    if (bias != nullptr) {
      bias_ = aligned_zeros<T>(g.k, "fft: bias");
      std::copy(bias, bias + g.k, bias_.get());
    }
    // Threads pay for themselves above ~0.5 ms of work each (waking a pool thread, splitting caches).
    threads_ = static_cast<int>(std::clamp<double>(fftw_layer_seconds(g, l_, sizeof(T), 1) / 5e-4, 1.0, p.opt.threads));
    scratch_ = aligned_zeros<T>(checked_mul(threads_, l_.stride, "fft: scratch"), "fft: scratch");
    // Filter spectra: padded kernel -> r2c -> scaled by 1 / (N_r N_c), the c2r's normalisation ->
    // stored by frequency block (see weights_).
    const kernel_placement where = l_.tiles.placement(true, g.rows.dilation, g.cols.dilation);
    const T scale = T(1) / (T(layout.rows) * T(layout.cols));
    parallel_slices(filters, threads_, [&](index slice, index f0, index f1) {
      T* spectrum = scratch_.get() + slice * l_.stride;
      for (index f = f0; f < f1; ++f) {
        padded_kernel<T>(weights.plane(f / g.c_per_group(), f % g.c_per_group()), real_view(spectrum), where);
        plans_->forward(spectrum);
        for (index b = 0; b < l_.stride / block; ++b)
          for (index i = 0; i < block; ++i) weights_[(b * filters + f) * block + i] = spectrum[b * block + i] * scale;
      }
    });
  }

  void execute(view4d<const T> in, view4d<T> out) override {
    const layer_geometry& g = p_.geo;
    for (index first = 0; first < l_.pairs; first += l_.sweep) {
      const index count = std::min(l_.sweep, l_.pairs - first);
      each_item(count * g.c, [&](index i, T* scratch) { forward(in, first, i / g.c, i % g.c, scratch); });
      // Phase 2 items: (block of frequencies, group, range of pairs), the pairs split only as far as
      // needed to give every thread several items.
      const index parts = l_.stride / block * g.groups;
      const index ranges = std::clamp<index>((4 * threads_ + parts - 1) / parts, 1, count);
      parallel_for(parts * ranges, threads_, [&](index i0, index i1) {
        for (index i = i0; i < i1; ++i) {
          const index range = i % ranges, part = i / ranges;
          const index p0 = count * range / ranges, p1 = count * (range + 1) / ranges;
          multiply(p0, p1 - p0, part / g.groups, part % g.groups);
        }
      });
      each_item(count * g.k, [&](index i, T* scratch) { inverse(out, first, i / g.k, i % g.k, scratch); });
    }
  }

 private:
  view2d<T> real_view(T* buffer) const {
    const fft::spectrum_layout l = l_.tiles.layout();
    return view2d<T>(buffer, l.rows, l.cols, l.real_row_stride());
  }

  /// Calls item(i, scratch) for every i in [0, n), split over threads_ slices with a scratch
  /// buffer (one in-place transform) each.
  template <class Item>
  void each_item(index n, Item&& item) {
    parallel_slices(n, threads_, [&](index slice, index i0, index i1) {
      for (index i = i0; i < i1; ++i) item(i, scratch_.get() + slice * l_.stride);
    });
  }

  // Block b of pair p's spectrum of input channel c (sweep-relative pair), and of output channel k.
  T* input_block(index b, index p, index c) const noexcept {
    return inputs_.get() + ((b * l_.sweep + p) * p_.geo.c + c) * block;
  }
  T* output_block(index b, index p, index k) const noexcept {
    return outputs_.get() + ((b * l_.sweep + p) * p_.geo.k + k) * block;
  }

  // Phase 1: input plane `channel` of sweep pair `p`'s image and tile -> r2c in scratch -> inputs_.
  void forward(view4d<const T> in, index first, index p, index channel, T* scratch) const {
    const fft::axis_tiles& ar = l_.tiles.rows;
    const fft::axis_tiles& ac = l_.tiles.cols;
    const index pair = first + p, image = pair / l_.tiles.tiles(), t = pair % l_.tiles.tiles();
    extend<T>(in.plane(image, channel), real_view(scratch), ar.read_top(t / ac.tiles), ac.read_top(t % ac.tiles), p_.opt.edge);
    plans_->forward(scratch);
    for (index b = 0; b < l_.stride / block; ++b) std::memcpy(input_block(b, p, channel), scratch + b * block, spectrum_block_bytes);
  }

  // Phase 2: frequency block b of the output spectra of group `group` for sweep pairs [first,
  // first + count).
  void multiply(index first, index count, index b, index group) const {
    const layer_geometry& g = p_.geo;
    const index cg = g.c_per_group(), k0 = group * g.k_per_group();
    const spectrum_job<T> job{input_block(b, first, group * cg),
                              block,
                              g.c * block,
                              weights_.get() + (b * g.k + k0) * cg * block,
                              block,
                              cg * block,
                              output_block(b, first, k0),
                              block,
                              g.k * block,
                              cg,
                              g.k_per_group(),
                              count,
                              block};
    product_(job);
  }

  // Phase 3: output spectrum `filter` of sweep pair p -> scratch -> c2r -> bias, strides and crop
  // into out.
  void inverse(view4d<T> out, index first, index p, index filter, T* scratch) const {
    for (index b = 0; b < l_.stride / block; ++b) std::memcpy(scratch + b * block, output_block(b, p, filter), spectrum_block_bytes);
    plans_->inverse(scratch);
    const index pair = first + p;
    const fft::axis_tiles& ar = l_.tiles.rows;
    const fft::axis_tiles& ac = l_.tiles.cols;
    const index image = pair / l_.tiles.tiles(), t = pair % l_.tiles.tiles();
    const fft::tile_outputs orow = ar.outputs(t / ac.tiles), ocol = ac.outputs(t % ac.tiles);
    const view2d<T> real = real_view(scratch), o = out.plane(image, filter);
    const T b = bias_ ? bias_[filter] : T(0);
    for (index i = 0; i < orow.count; ++i) {
      const T* src = real.row(orow.local + i * ar.stride) + ocol.local;
      T* dst = o.row(orow.first + i) + ocol.first;
      for (index j = 0; j < ocol.count; ++j) dst[j] = src[j * ac.stride] + b;
    }
  }

  layer_problem p_;
  spectrum_kernel_fn<T> product_;
  fftw_layer_layout l_;
  std::shared_ptr<const fftw_plan_pair<T>> plans_;
  // The filters' spectra by frequency block: reals [b * block, (b + 1) * block) of filter k's
  // channel c at weights_ + (b * K * C/groups + k * C/groups + c) * block, so that phase 2 reads
  // block b of every filter as one contiguous run. They are read once per sweep, and this order
  // streams them; stored plane by plane, every read landed in another page (3x slower at batch 1).
  std::unique_ptr<T[], aligned_free> weights_;
  // Per sweep, the spectra of every pair's input and output channels, by frequency block in the
  // same way (input_block, output_block), so that phase 2 reads and writes contiguous runs.
  std::unique_ptr<T[], aligned_free> inputs_, outputs_;
  std::unique_ptr<T[], aligned_free> scratch_;  // one in-place transform per thread
  std::unique_ptr<T[], aligned_free> bias_;
  int threads_ = 1;
};

template <class T>
std::unique_ptr<layer_executor<T>> make_fftw_layer(const layer_problem& p, view4d<const T> weights, const T* bias) {
  return std::make_unique<fftw_layer_executor<T>>(p, weights, bias);
}

/// Layer cost model: the layout's estimate (fftw_layer_seconds, float's sizes: a problem does not
/// carry its precision) plus, for a one-shot conv2d, the filters' spectra, which it makes on every
/// call (a layer_plan makes them once: layer_problem::reused). Never for:
///   - data holding NaN or Inf (an FFT spreads them over the output);
///   - 1x1 kernels: the transforms would only multiply each channel by a number, which im2col's
///     GEMM (or direct) does without transforming anything;
///   - layers whose buffers exceed the workspace bound (fftw::config::memory_cap per thread) even
///     in the smallest tiles: the weights' spectra alone are K * C/groups transforms, which for
///     wide layers outgrow any tile. Asked for explicitly, fft still runs them (smallest tiles).
inline double fftw_layer_cost(const layer_problem& p) {
  if (!p.finite) return never;
  const layer_geometry& g = p.geo;
  if (g.rows.kernel * g.cols.kernel == 1) return never;
  const fftw::config c = fftw::get_config();
  const fftw_layer_layout l = fftw_layer_plan(p, sizeof(float), c);
  if (l.bytes(sizeof(float)) > fftw_layer_budget(c, p.opt.threads)) return never;
  const fft::tile_plan& t = l.tiles;
  const double filter_spectra = p.reused ? 0.0 : double(g.k) * double(g.c_per_group()) *
                                fftw_plane_seconds(t.rows.transform, t.cols.transform, sizeof(float)) /
                                (1.0 + fftw_layer_costs.threaded_efficiency * (p.opt.threads - 1));
  return t.seconds + filter_spectra;
}

inline const backend fftw_backend{algorithm::fft,           "convkit::fftw",          &fftw_cost,
                                  &make_fftw<float>,        &make_fftw<double>,       &fftw_layer_cost,
                                  &make_fftw_layer<float>,  &make_fftw_layer<double>};
inline const bool fftw_registered = register_backend(fftw_backend);

}  // namespace convkit::detail
