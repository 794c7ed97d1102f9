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
// Non-finite values: a NaN or Inf in the kernel makes every output NaN; one in the input makes NaN
// every output of each tile whose window holds it (all of them when untiled). algorithm::automatic
// therefore never picks fft when the data hold NaN or Inf; ask for it explicitly only for finite data.
//
// Public API (namespace convkit::fftw):
//   struct config { rigour planning; tiling tiles; index tile_rows, tile_cols; index memory_cap; }
//   set_config(config) / get_config()     applies to executors (plans, conv2d calls) made afterwards
//   import_wisdom(path) / export_wisdom(path) / forget_wisdom()
#pragma once

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "../detail/backend.hpp"
#include "../detail/fft_sizes.hpp"
#include "../detail/fftw_traits.hpp"
#include "../detail/threads.hpp"
#include "../padding.hpp"

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
  /// shared kernel spectrum, counted as two buffers.
  index memory_cap = index(64) << 20;
};

namespace detail {
inline std::mutex& config_mutex() noexcept {
  static std::mutex m;
  return m;
}
inline config& current_config() noexcept {
  static config c;
  return c;
}
}  // namespace detail

/// Sets the configuration used by fft executors made from now on (thread-safe).
/// Throws convkit::error for a negative tile size or a memory_cap < 1.
inline void set_config(const config& c) {
  if (c.tile_rows < 0 || c.tile_cols < 0) throw error("fftw::config: tile_rows and tile_cols must be >= 0");
  if (c.memory_cap < 1) throw error("fftw::config: memory_cap must be >= 1 byte");
  std::lock_guard<std::mutex> lock(detail::config_mutex());
  detail::current_config() = c;
}

/// The configuration in effect (thread-safe).
inline config get_config() {
  std::lock_guard<std::mutex> lock(detail::config_mutex());
  return detail::current_config();
}

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
    buffers_ = aligned_zeros<T>(checked_mul(workers_, layout.real_count(), "fft workspace"), "fft workspace");
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
        T* buffer = buffers_.get() + w * plans_->layout().real_count();
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

  problem p_;
  fft::tile_plan tiles_;
  int workers_ = 1;
  std::shared_ptr<const fftw_plan_pair<T>> plans_;
  std::unique_ptr<T[], aligned_free> buffers_, spectrum_;
};

template <class T>
std::unique_ptr<executor<T>> make_fftw(const problem& p, view2d<const T> kernel) {
  return std::make_unique<fftw_executor<T>>(p, kernel);
}

/// Cost model: the tile plan's estimate (fft_sizes.hpp) with this machine's constants, plus the
/// kernel's transform (float's sizes: a problem does not carry its precision); never for data
/// holding NaN or Inf (an FFT spreads them over the output).
inline double fftw_cost(const problem& p) {
  if (!p.finite) return never;
  const fft::tile_plan t = fftw_tile_plan(p, sizeof(float), fftw::get_config());
  return t.seconds + fft::tile_seconds(t.rows.transform, t.cols.transform, fftw_cost_model);
}

inline const backend fftw_backend{algorithm::fft, "convkit::fftw", &fftw_cost, &make_fftw<float>, &make_fftw<double>};
inline const bool fftw_registered = register_backend(fftw_backend);

}  // namespace convkit::detail
