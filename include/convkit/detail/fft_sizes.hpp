// FFT sizes and tiles, shared by every FFT backend (FFTW, cuFFT). Names no FFT library.
//
// CONTRACT (stable: the FFTW and cuFFT backends both code against it)
//
// Every problem is, per axis, a strided, dilated valid correlation of the border-extended input
// (geometry.hpp, axis_geometry). An FFT backend computes the *dense* (stride-1) result on each axis,
//   dense[n] = sum_j ext[n + j * dilation] * k'[j],   n in [0, dense),  dense = (out - 1) * stride + 1,
// and keeps every stride-th element (out[o] = dense[o * stride]).
//
// Overlap-save. The dense result is cut into tiles of `block` results per axis. Tile t computes
// dense[t * block + m], m in [0, block), as a circular convolution of size `transform` (N) of
//   buffer[r] = ext[t * block + r] = input[r - read_top(t)],   r in [0, N)
// (exactly what convkit::extend(input, buffer, read_top(t), ...) writes: it accepts windows that
// start inside the image, so no backend ever materialises the whole extended image) with the
// kernel placed by padded_kernel(kernel, ..., placement(correlate)). Because N >= block + span - 1,
// results m < block never read a wrapped-around element; what the buffer holds beyond the first
// block + span - 1 elements does not reach them, except through rounding: so what lies beyond the
// extended input (r >= extent - t * block; extend() would fill it by the border rule, e.g. with a
// constant border value of 1e300) is zeroed (clear_beyond_extent). One tile of size next_fast_size(extent) is the
// untiled transform; its size is >= H + KHe - 1 whenever the borders are zero (full or same output).
//
// Circular shortcut. For border::circular the extended input is periodic with the image's period;
// when the dense result is no longer than the image (output::same or valid) and the dilated kernel
// fits in the image, one image-sized transform (N = H, W, read_top = 0, origin = span - 1 -
// pad_before) computes the whole result: plan.circular is true. It is taken when it is cheaper.
//
// Spectrum layout (r2c / c2r, the same for FFTW and cuFFT): a transform of N_r x N_c reals has a
// half spectrum of N_r x (N_c / 2 + 1) complex values, row-major. An in-place buffer holds the reals
// with rows padded to real_row_stride() = 2 * (N_c / 2 + 1) elements. The kernel spectrum is the
// r2c transform of padded_kernel(...) (N_r x N_c, same placement) multiplied by 1 / (N_r * N_c), the
// normalisation of the unnormalised c2r, so the product needs no separate scaling pass.
//
// Cost model. plan_tiles() chooses the transform size that minimises the estimated time, with
// fft_cost_model constants that each backend measures on its hardware, subject to a workspace cap
// in bytes per thread (one real buffer per thread plus the shared kernel spectrum). Forced settings
// (fft_tiling::never / always, a forced block size) exist for tests and benchmarks. plan_tiles_by() is
// the same search with the caller's own time and memory estimates (the FFTW backend's layers).
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "../padding.hpp"
#include "../tuning.hpp"
#include "checked.hpp"
#include "geometry.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {
namespace fft {

/// True if n >= 1 has no prime factor other than 2, 3, 5, 7.
inline bool is_fast_size(index_t n) noexcept {
  if (n < 1) return false;
  for (index_t p : {2, 3, 5, 7})
    while (n % p == 0) n /= p;
  return n == 1;
}

/// The smallest 2^a 3^b 5^c 7^d >= n (n >= 1). Throws convkit::error if it overflows convkit::index.
inline index_t next_fast_size(index_t n) {
  if (n <= 1) return 1;
  const index_t limit = std::numeric_limits<index_t>::max() / 2;
  if (n > limit / 8) throw error("FFT size " + std::to_string(n) + " overflows convkit::index_t");
  index_t best = index_t(1) << (64 - __builtin_clzll(static_cast<unsigned long long>(n - 1)));  // 2^a >= n
  for (index_t p7 = 1; p7 < best; p7 *= 7)
    for (index_t p5 = p7; p5 < best; p5 *= 5)
      for (index_t p3 = p5; p3 < best; p3 *= 3) {
        index_t m = p3;
        while (m < n) m *= 2;
        best = std::min(best, m);
      }
  return best;
}

/// Every 2^a 3^b 5^c 7^d in [lo, hi], ascending.
inline std::vector<index_t> fast_sizes(index_t lo, index_t hi) {
  std::vector<index_t> sizes;
  for (index_t p7 = 1; p7 <= hi; p7 *= 7)
    for (index_t p5 = p7; p5 <= hi; p5 *= 5)
      for (index_t p3 = p5; p3 <= hi; p3 *= 3)
        for (index_t m = p3; m <= hi; m *= 2)
          if (m >= lo) sizes.push_back(m);
  std::sort(sizes.begin(), sizes.end());
  return sizes;
}

/// The r2c/c2r layout of an N_r x N_c real transform (see the contract above).
struct spectrum_layout {
  index_t rows = 0, cols = 0;  ///< the real transform size
  index_t complex_cols() const noexcept { return cols / 2 + 1; }
  index_t real_row_stride() const noexcept { return 2 * complex_cols(); }  ///< in-place buffers
  index_t complex_count() const noexcept { return rows * complex_cols(); }
  index_t real_count() const noexcept { return rows * real_row_stride(); }  ///< reals in an in-place buffer
};

/// The outputs a tile produces along one axis: out[first + i] = tile result at local + i * stride,
/// i in [0, count).
struct tile_outputs {
  index_t first, count, local;
};

/// One axis of a tile plan.
struct axis_tiles {
  index_t transform = 0;  ///< N, the transform length
  index_t block = 0;      ///< dense results per tile (the last tile may have fewer)
  index_t tiles = 0;      ///< ceil(dense / block)
  index_t dense = 0;      ///< (out - 1) * stride + 1
  index_t stride = 1;
  index_t origin = 0;  ///< kernel_placement origin: the dilated kernel position that lands on 0
  index_t top0 = 0;    ///< read_top(0)

  /// The `top` (or `left`) argument of convkit::extend that fills tile t's buffer.
  index_t read_top(index_t t) const noexcept { return top0 - t * block; }
  /// Dense results in tile t.
  index_t results(index_t t) const noexcept { return std::min(block, dense - t * block); }
  tile_outputs outputs(index_t t) const noexcept {
    const index_t d0 = t * block, d1 = d0 + results(t);
    const index_t first = (d0 + stride - 1) / stride, end = (d1 + stride - 1) / stride;
    return {first, end - first, first * stride - d0};
  }
};

/// Zeroes what tile (tr, tc)'s buffer holds beyond the extended input (see the contract above).
template <class T>
void clear_beyond_extent(view2d<T> buffer, const axis_tiles& rows, const axis_tiles& cols, bool circular, index_t tr,
                         index_t tc, index_t rows_extent, index_t cols_extent) {
  if (circular) return;  // the buffer is the image itself
  const index_t keep_rows = std::clamp<index_t>(rows_extent - tr * rows.block, 0, buffer.rows());
  const index_t keep_cols = std::clamp<index_t>(cols_extent - tc * cols.block, 0, buffer.cols());
  for (index_t r = 0; r < buffer.rows(); ++r) {
    T* row = buffer.row(r);
    std::fill(row + (r < keep_rows ? keep_cols : 0), row + buffer.cols(), T(0));
  }
}

/// What the caller asks for: a mode (tuning.hpp), and optionally a forced block (dense results per
/// tile) per axis.
struct tiling_request {
  fft_tiling mode = fft_tiling::automatic;
  index_t block_rows = 0, block_cols = 0;  ///< > 0: force this many dense results per tile (implies tiles)
  /// > 0: fft_tiling::automatic takes no transform of more reals (the accuracy contract's bound,
  /// fft_accuracy.hpp) unless none is that small.
  index_t max_transform = 0;
};

/// Seconds for one tile of N_r x N_c reals (N = N_r * N_c): forward + inverse transform, fill,
/// product, copy-out:
///   tile_unit + N * (transform_unit * log2 N * radix + element_unit + cache_unit * max(0, log2(ws / cache_bytes)))
/// where radix is 1 for even 2^a 3^b 5^c 7^d lengths, odd_length_factor for odd ones (> 1) and
/// slow_size_factor for any other length (the larger of the two axes' factors), and
/// ws = 2 N element_bytes is the tile's working set (buffer + kernel spectrum); the cache term is
/// off when cache_bytes is 0. One tile on several threads is sped up by
/// 1 + threaded_efficiency * (threads - 1); several tiles are spread over the threads,
/// ceil(tiles / threads) per thread. Tile lengths: with min_mixed_tile = 0 every 2^a 3^b 5^c 7^d;
/// otherwise powers of two, and 3 * 2^a and 5 * 2^a from min_mixed_tile up (the lengths whose time
/// the model predicts well for FFTW; the untiled transform may still have any fast length).
/// The fields after threaded_efficiency default to "off", leaving the plain N log N model.
struct fft_cost_model {
  double transform_unit = 1e-10;
  double element_unit = 2e-9;
  double slow_size_factor = 4.0;
  double threaded_efficiency = 0.6;
  double odd_length_factor = 1.0;
  double cache_unit = 0.0;
  index_t cache_bytes = 0;
  index_t min_mixed_tile = 0;
  double tile_unit = 0.0;  ///< seconds per tile whatever its size (calls, set-up)
  /// Tiles spread over several threads run this fraction faster per extra thread (1: perfectly).
  double tiled_efficiency = 1.0;
  /// Every time the formula gives is multiplied by this (1: off): what a whole image's tiles take
  /// beyond the formula fitted on single transforms in cache (reading and writing a large image,
  /// measured: fft.image_scale). Common to all lengths, so the planner's choice between tilings stays
  /// the formula's (per-length times, measured on 2 x 2 tiles of a small image and used in place of
  /// the formula, chose tilings up to 2.8x slower where tried).
  double formula_scale = 1.0;
};

/// The radix factor of one transform length (see fft_cost_model).
inline double radix_factor(index_t n, const fft_cost_model& m) noexcept {
  if (!is_fast_size(n)) return m.slow_size_factor;
  return (n % 2 == 0 || n == 1) ? 1.0 : m.odd_length_factor;
}

/// Estimated seconds of one tile (see fft_cost_model).
inline double tile_seconds(index_t n_rows, index_t n_cols, const fft_cost_model& m,
                           index_t element_bytes = 4) noexcept {
  const double n = double(n_rows) * double(n_cols);
  const double radix = std::max(radix_factor(n_rows, m), radix_factor(n_cols, m));
  const double spill =
      m.cache_bytes > 0 ? std::max(0.0, std::log2(2.0 * n * double(element_bytes) / double(m.cache_bytes))) : 0.0;
  return m.formula_scale * (m.tile_unit + n * (m.transform_unit * std::log2(std::max(n, 2.0)) * radix + m.element_unit +
                                               m.cache_unit * spill));
}

/// Estimated seconds of `tiles` tiles of n_rows x n_cols on `threads` threads.
inline double plan_seconds(index_t tiles, index_t n_rows, index_t n_cols, int threads, const fft_cost_model& m,
                           index_t element_bytes = 4) noexcept {
  const double one = tile_seconds(n_rows, n_cols, m, element_bytes);
  if (tiles == 1) return one / (1.0 + m.threaded_efficiency * (threads - 1));
  const index_t per_thread = (tiles + threads - 1) / threads;
  return std::max(double(per_thread), double(tiles) / (1.0 + m.tiled_efficiency * (threads - 1))) * one;
}

/// The chosen transform: sizes, tiles and the estimate that chose them.
struct tile_plan {
  axis_tiles rows, cols;
  bool circular = false;  ///< the circular shortcut: image-sized transform, no padding
  double seconds = 0;     ///< estimated time with the cost model used

  index_t tiles() const noexcept { return rows.tiles * cols.tiles; }
  spectrum_layout layout() const noexcept { return {rows.transform, cols.transform}; }
  /// padded_kernel placement for the kernel spectrum: convolution places the kernel as given,
  /// correlation flipped (the product of spectra is a convolution).
  kernel_placement placement(bool correlate, int dilation_rows, int dilation_cols) const noexcept {
    return {correlate, dilation_rows, dilation_cols, rows.origin, cols.origin};
  }
  /// Bytes of one tile buffer (in-place r2c layout) of T; the kernel spectrum has the same size.
  index_t buffer_bytes(index_t element_bytes) const noexcept { return layout().real_count() * element_bytes; }
  /// Workspace of `workers` concurrent tile buffers plus the shared kernel spectrum.
  index_t workspace_bytes(index_t element_bytes, int workers) const noexcept {
    return (index_t(workers) + 1) * buffer_bytes(element_bytes);
  }
};

namespace plan_detail {
inline axis_tiles overlap_save_axis(const axis_geometry& g, index_t transform, index_t block) {
  axis_tiles a;
  a.dense = (g.out - 1) * g.stride + 1;
  a.transform = transform;
  a.block = std::min(block, a.dense);
  a.tiles = (a.dense + a.block - 1) / a.block;
  a.stride = g.stride;
  a.origin = g.span - 1;
  a.top0 = g.pad_before;
  return a;
}
inline axis_tiles circular_axis(const axis_geometry& g) {
  axis_tiles a;
  a.dense = (g.out - 1) * g.stride + 1;
  a.transform = g.in;
  a.block = a.dense;
  a.tiles = 1;
  a.stride = g.stride;
  a.origin = g.span - 1 - g.pad_before;
  a.top0 = 0;
  return a;
}
}  // namespace plan_detail

/// The overlap-save tile lengths a planner tries along one axis, in [lo, hi] (see fft_cost_model's
/// min_mixed_tile): every 2^a 3^b 5^c 7^d, or, with min_mixed_tile > 0, the powers of two and the
/// 3 * 2^a and 5 * 2^a from min_mixed_tile up.
inline std::vector<index_t> tile_lengths(index_t lo, index_t hi, const fft_cost_model& model) {
  std::vector<index_t> sizes = fast_sizes(lo, hi);
  sizes.erase(std::remove_if(sizes.begin(), sizes.end(),
                             [&](index_t n) {
                               if (model.min_mixed_tile == 0 || (n & (n - 1)) == 0) return false;
                               const index_t odd = n / (n & -n);
                               return n < model.min_mixed_tile || (odd != 3 && odd != 5);
                             }),
              sizes.end());
  return sizes;
}

/// The planner behind plan_tiles, for callers whose time and memory are not one tile buffer's
/// (e.g. convolution layers, which transform many planes per tile): `seconds(const tile_plan&)`
/// estimates a candidate and `bytes(const tile_plan&)` its workspace, which fft_tiling::automatic keeps
/// under `memory_cap`. If no candidate fits, the fastest of those within twice the smallest
/// workspace is used: the smallest alone is a tile of the kernel's span with a few outputs each, whose
/// time grows as outputs x span (a kernel dilated 3,061 columns wide under a 217 KB cap: 1,285 tiles
/// of 32 x 3072 for a few outputs each, where 5 tiles of 32 x 6144 need twice the memory).
/// Candidates: the forced blocks of `req` if any; else the untiled transform, the circular shortcut
/// where it applies, and (unless fft_tiling::never) overlap-save tiles of tile_lengths() on both axes.
template <class Seconds, class Bytes>
tile_plan plan_tiles_by(const axis_geometry& gr, const axis_geometry& gc, border edge, const tiling_request& req,
                        const fft_cost_model& model, index_t memory_cap, Seconds&& seconds, Bytes&& bytes) {
  using plan_detail::circular_axis;
  using plan_detail::overlap_save_axis;
  const auto make = [&](axis_tiles r, axis_tiles c, bool circ) {
    tile_plan p{r, c, circ, 0.0};
    p.seconds = seconds(p);
    return p;
  };

  if (req.block_rows > 0 || req.block_cols > 0) {  // forced blocks (an axis left at 0 is untiled)
    // A block is at least the kernel's span: smaller ones would transform span-sized tiles for a
    // few results each, time growing as outputs x span instead of as the extent. A block whose
    // transform is no shorter than the whole axis's is the whole axis: several tiles of that length
    // would repeat the untiled transform (a span of 2,073 over 2,089 results: 2 tiles of 4,160).
    const auto axis = [](const axis_geometry& g, index_t block) {
      const index_t dense = (g.out - 1) * g.stride + 1;
      const index_t b = block > 0 ? std::min(std::max(block, g.span), dense) : dense;
      const index_t n = next_fast_size(checked_add(b, g.span - 1, "FFT tile")), whole = next_fast_size(g.extent);
      return n >= whole ? overlap_save_axis(g, whole, dense) : overlap_save_axis(g, n, b);
    };
    return make(axis(gr, req.block_rows), axis(gc, req.block_cols), false);
  }

  const index_t untiled_r = next_fast_size(gr.extent), untiled_c = next_fast_size(gc.extent);
  tile_plan best =
      make(overlap_save_axis(gr, untiled_r, untiled_r), overlap_save_axis(gc, untiled_c, untiled_c), false);
  // A periodic extended input whose dense result fits in one period (output::same, or valid) needs
  // no padding at all: the image-sized circular convolution is the answer.
  const auto periodic_fits = [](const axis_geometry& g) {
    return g.span <= g.in && (g.out - 1) * g.stride + 1 <= g.in;
  };
  if (req.mode != fft_tiling::always && edge == border::circular && periodic_fits(gr) && periodic_fits(gc)) {
    const tile_plan circ = make(circular_axis(gr), circular_axis(gc), true);
    if (circ.seconds < best.seconds) best = circ;
  }
  if (req.mode == fft_tiling::never) return best;

  const std::vector<index_t> sizes_r = tile_lengths(gr.span, untiled_r, model),
                             sizes_c = tile_lengths(gc.span, untiled_c, model);
  bool have = false;
  tile_plan best_fit{};
  std::vector<std::pair<tile_plan, index_t>> over_cap;  // candidates beyond the cap, with their bytes
  const auto too_large = [&](const tile_plan& p) {
    return req.max_transform > 0 && p.rows.transform * p.cols.transform > req.max_transform;
  };
  if (req.mode == fft_tiling::automatic && bytes(best) <= memory_cap && !too_large(best)) {
    best_fit = best;
    have = true;
  }
  for (index_t nr : sizes_r)
    for (index_t nc : sizes_c) {
      const tile_plan p =
          make(overlap_save_axis(gr, nr, nr - gr.span + 1), overlap_save_axis(gc, nc, nc - gc.span + 1), false);
      if (req.mode == fft_tiling::always && p.tiles() < 2) continue;
      const index_t p_bytes = bytes(p);
      if (!have) over_cap.emplace_back(p, p_bytes);
      if (req.mode == fft_tiling::automatic && (p_bytes > memory_cap || too_large(p))) continue;
      if (!have || p.seconds < best_fit.seconds) {
        best_fit = p;
        have = true;
      }
    }
  if (have) return best_fit;
  if (over_cap.empty()) return best;
  index_t least = over_cap.front().second;
  for (const auto& c : over_cap) least = std::min(least, c.second);
  const tile_plan* pick = nullptr;
  for (const auto& c : over_cap)
    if (double(c.second) <= 2.0 * double(least) && (pick == nullptr || c.first.seconds < pick->seconds))
      pick = &c.first;
  return *pick;
}

/// Chooses the transform for a plane of axes `rows` and `cols` with border `edge`, `element_bytes` per real (4 or 8),
/// `threads` >= 1 workers, under `memory_cap` bytes per thread of workspace (fft_tiling::automatic only;
/// if no tile fits, the fastest within twice the smallest workspace: plan_tiles_by). Deterministic:
/// the same arguments give the same plan.
/// The workspace per thread is one tile buffer plus the shared kernel spectrum: two buffers.
inline tile_plan plan_tiles(const axis_geometry& rows, const axis_geometry& cols, border edge, index_t element_bytes,
                            int threads, const tiling_request& req, const fft_cost_model& model, index_t memory_cap) {
  threads = std::max(threads, 1);
  return plan_tiles_by(
      rows, cols, edge, req, model, memory_cap,
      [&](const tile_plan& p) {
        return plan_seconds(p.tiles(), p.rows.transform, p.cols.transform, threads, model, element_bytes);
      },
      [&](const tile_plan& p) { return p.buffer_bytes(element_bytes) * 2; });
}

}  // namespace fft
}  // namespace detail
CONVKIT_NAMESPACE_END
