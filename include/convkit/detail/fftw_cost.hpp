// The fft backend's cost model: which transform and tiles it runs a problem with, and how long that
// takes. Its constants are fft_costs (cost_models.hpp: built in, fitted on the AVX-512 Xeon this
// project ran on first, float, FFTW 3.3.10, FFTW_ESTIMATE plans); measure_fft() measures them on
// this machine, and both the choice of backend and the executor's choice of tiles use the profile's.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include <unistd.h>

#include "backend.hpp"
#include "calibration.hpp"
#include "checked.hpp"
#include "fft_accuracy.hpp"
#include "fft_sizes.hpp"
#include "spectrum_product.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// The L2 cache per core that the operating system reports, else 2 MiB (the machine the built-in
/// constants were fitted on).
inline index_t l2_cache_bytes() {
#if defined(_SC_LEVEL2_CACHE_SIZE)
  const long bytes = ::sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (bytes > 0) return bytes;
#endif
  return index_t(2) << 20;
}

/// The single-plane model with `profile`'s constants: tiles of lengths 2^a, 3 * 2^a and 5 * 2^a from
/// 128 up (other mixed lengths took 1.6-2.7x the power-of-two time per element), slow sizes 4x.
inline fft::fft_cost_model fftw_model(const cost_profile& profile) {
  const fft_costs& c = profile.fft;
  fft::fft_cost_model m;
  m.transform_unit = c.transform_unit;
  m.element_unit = c.element_unit;
  m.slow_size_factor = 4.0;
  m.threaded_efficiency = c.threaded_efficiency;
  m.odd_length_factor = c.odd_length_factor;
  m.cache_unit = c.cache_unit;
  m.cache_bytes = c.cache_bytes > 0 ? index_t(c.cache_bytes) : l2_cache_bytes();
  m.min_mixed_tile = 128;
  m.tile_unit = c.tile_unit;
  m.tiled_efficiency = c.tiled_efficiency;
  m.formula_scale = c.image_scale;
  return m;
}

/// Batches (layers), fitted with a sweep of ~300 layer shapes (N 1..8, C and K 1..256, dense,
/// grouped and depthwise, kernels 2..13, planes 7..200, strides 1 and 2) at every tile size, on one
/// core; the model is within 0.6x..1.2x of the measured time for 80% of them.
struct fftw_batch_cost_model {
  double transform_unit;       ///< per element and log2 N of a forward or inverse power-of-two transform
  double element_unit;         ///< per element of a plane for its fill (extend) or copy-out
  double plane_unit;           ///< per plane transformed (calls, set-up)
  double cmac;                 ///< per complex multiply-add of the frequency-domain product
  double weight_byte;          ///< per byte of the filters' spectra read, once per sweep
  double threaded_efficiency;  ///< the second thread's share (planes and products split evenly)
  index_t sweep_bytes;         ///< a sweep's buffers stay under this where the workspace bound allows:
                               ///< larger sweeps fall out of cache (1.7x slower at 38 MiB)
};
inline constexpr fftw_batch_cost_model fftw_batch_costs{1.12e-10, 7.8e-10, 4.1e-8,          6.1e-11,
                                                        1.5e-11,  0.65,    index_t(8) << 20};

/// An fft executor spreads its work over threads only when each gets ~0.5 ms of it (waking a pool
/// thread and splitting caches cost the rest).
inline int fftw_useful_threads(double seconds_on_one, int threads) {
  return useful_threads(seconds_on_one, threads, 5e-4);
}

/// The transform bound of the accuracy contract for a single plane (0: none), or -1 where no
/// transform keeps it.
inline index_t fft_contract_limit(const conv_problem& p) {
  if (!p.componentwise) return 0;
  // A problem made without its kernel (tests, calibration): taps of equal magnitude.
  const index_t taps = p.rows.kernel * p.cols.kernel;
  const index_t limit = contract_transform_limit(taps, p.kernel_spread > 0 ? p.kernel_spread : std::sqrt(double(taps)));
  return limit > 0 ? limit : 1;
}

/// The tile plan of a single plane with `profile`'s constants.
inline fft::tile_plan fftw_tile_plan(const conv_problem& p, const cost_profile& profile) {
  const fft_config& c = p.tune.fft;
  return fft::plan_tiles(p.rows, p.cols, p.edge, p.element_bytes, p.threads,
                         {c.tiles, c.tile_rows, c.tile_cols, fft_contract_limit(p)}, fftw_model(profile), c.memory_cap);
}

/// FFTW_ESTIMATE's time per element and log2 N of a transform length, relative to powers of two
/// (square in-place r2c + c2r, lengths 4..256): odd lengths ~2.3x; even mixed-radix lengths ~2.5x
/// below 128 and ~1.5x from 128; lengths with larger prime factors (image-sized circular
/// transforms) 4x.
inline double fftw_length_factor(index_t n) noexcept {
  if (!fft::is_fast_size(n)) return 4.0;
  if ((n & (n - 1)) == 0) return 1.0;
  if (n % 2 == 1) return 2.3;
  return n < 128 ? 2.5 : 1.5;
}

/// Seconds of one plane's forward or inverse transform of N_r x N_c with its fill or copy-out; the
/// cache term is the single-plane model's (planes whose buffers outgrow L2).
inline double fftw_plane_seconds(index_t rows, index_t cols, index_t element_bytes, const fft::fft_cost_model& single) {
  const fftw_batch_cost_model& m = fftw_batch_costs;
  const double n = double(rows) * double(cols);
  const double factor = std::max(fftw_length_factor(rows), fftw_length_factor(cols));
  const double spill =
      single.cache_unit * std::max(0.0, std::log2(2.0 * n * double(element_bytes) / double(single.cache_bytes)));
  return m.plane_unit + n * (m.transform_unit * std::log2(std::max(n, 2.0)) * factor + m.element_unit + spill);
}

/// How the fft backend runs a batch: the transform (a tile plan over the per-axis geometry, as for
/// single planes) and the buffers it needs. Every spectrum buffer holds one in-place r2c layout
/// padded with zeros to a whole number of blocks (spectrum_product.hpp).
struct fftw_batch_layout {
  fft::tile_plan tiles;
  index_t spectrum_reals = 0;  ///< reals per spectrum buffer
  index_t pairs = 0;           ///< (image, tile) pairs: N * tiles
  index_t sweep = 0;           ///< pairs transformed, multiplied and inverted together (bounded by the workspace)
  index_t weight_reals = 0;    ///< the filters' spectra: K * C/groups buffers, made once per plan
  index_t pair_reals = 0;      ///< one pair's buffers: C input spectra and K output spectra
  index_t scratch_reals = 0;   ///< one in-place transform per thread
  index_t sweeps() const noexcept { return (pairs + sweep - 1) / sweep; }
  /// Bytes of every buffer the executor holds (saturating).
  index_t bytes(index_t element_bytes) const noexcept {
    return saturated_index((double(weight_reals) + double(sweep) * double(pair_reals) + double(scratch_reals)) *
                           double(element_bytes));
  }
};

/// The layout of tile plan `t` for problem `p` when `budget` bytes may hold the buffers: the sweep
/// is as many pairs as fit in fftw_batch_costs.sweep_bytes, or beside the weights' spectra in the
/// budget if that is less (at least one). Sizes saturate rather than overflow, so that a planner can
/// rate absurd candidates; the executor checks its allocations.
inline fftw_batch_layout fftw_batch_layout_for(const conv_problem& p, const fft::tile_plan& t, index_t budget) {
  const index_t block = spectrum_block_bytes / p.element_bytes;
  fftw_batch_layout l;
  l.tiles = t;
  const index_t real_count = t.layout().real_count();
  l.spectrum_reals = (real_count + block - 1) / block * block;
  l.pairs = saturated_index(double(p.n) * double(t.tiles()));
  l.weight_reals = saturated_index(double(p.k) * double(p.c_per_group()) * double(l.spectrum_reals));
  l.pair_reals = saturated_index(double(p.c + p.k) * double(l.spectrum_reals));
  l.scratch_reals = saturated_index(double(p.threads) * double(l.spectrum_reals));
  const double e = double(p.element_bytes);
  const double room =
      std::min(double(budget) - double(l.weight_reals + l.scratch_reals) * e, double(fftw_batch_costs.sweep_bytes));
  l.sweep = std::clamp<index_t>(saturated_index(std::max(room, 0.0) / (double(l.pair_reals) * e)), 1, l.pairs);
  return l;
}

/// Estimated seconds of one execute of layout `l` for problem `p` on `threads` threads, with
/// `profile`'s constants (batch_scale and product_scale: this model's transforms and channel sums
/// against two layers, one where each dominates).
inline double fftw_batch_seconds(const conv_problem& p, const fftw_batch_layout& l, int threads,
                                 const cost_profile& profile) {
  const fftw_batch_cost_model& m = fftw_batch_costs;
  const double transforms =
      double(l.pairs) * double(p.c + p.k) *
      fftw_plane_seconds(l.tiles.rows.transform, l.tiles.cols.transform, p.element_bytes, fftw_model(profile));
  const double products = double(l.pairs) * double(p.k) * double(p.c_per_group()) * double(l.spectrum_reals / 2) *
                          m.cmac * double(p.element_bytes) / 4.0;
  const double weights = double(l.sweeps()) * double(l.weight_reals) * double(p.element_bytes) * m.weight_byte;
  // Measured here: the transforms' share and the channel sums' (products, filter spectra read) apart.
  return (transforms / profile.fft.batch_scale + (products + weights) / profile.fft.product_scale) /
         (1.0 + m.threaded_efficiency * (threads - 1));
}

/// The workspace bound of a batch: fft_config::memory_cap per thread, for all buffers together (the
/// weights' spectra included).
inline index_t fftw_batch_budget(const conv_problem& p) {
  return saturated_index(double(p.tune.fft.memory_cap) * std::max(p.threads, 1));
}

/// Chooses the transform of a batch (the tile planner of fft_sizes.hpp with the batch's time and
/// memory), honouring the tuning's forced tiling.
inline fftw_batch_layout fftw_batch_plan(const conv_problem& p, const cost_profile& profile) {
  const fft_config& c = p.tune.fft;
  const index_t budget = fftw_batch_budget(p);
  const auto layout = [&](const fft::tile_plan& x) { return fftw_batch_layout_for(p, x, budget); };
  const fft::tile_plan t = fft::plan_tiles_by(
      p.rows, p.cols, p.edge, {c.tiles, c.tile_rows, c.tile_cols}, fftw_model(profile), budget,
      [&](const fft::tile_plan& x) { return fftw_batch_seconds(p, layout(x), p.threads, profile); },
      [&](const fft::tile_plan& x) { return layout(x).bytes(p.element_bytes); });
  return layout(t);
}

/// Cost model of the fft backend: call_s per call plus what follows. Never for data holding NaN
/// or Inf (an FFT spreads them over the output), nor for sparse problems (problem.hpp). A single plane: the tile plan's
/// estimate, plus the kernel's transform unless a plan makes it once (conv_problem::amortised). A batch: the layout's
/// estimate plus, unless amortised, the filters' spectra; never for 1x1 kernels (the transforms would only multiply
/// each channel by a number, which im2col's GEMM or direct does without transforming anything), nor for batches whose
/// buffers exceed the workspace bound even in the smallest tiles (the weights' spectra alone are K * C/groups
/// transforms; asked for explicitly, fft still runs them in the smallest tiles).
inline double fftw_cost(const conv_problem& p, const cost_profile& profile) {
  if (!p.finite || p.sparse()) return never;
  const double call = profile.fft.call_s;
  if (p.single_plane()) {
    const fft::tile_plan t = fftw_tile_plan(p, profile);
    const double kernel_spectrum =
        p.amortised ? 0.0 : fft::tile_seconds(t.rows.transform, t.cols.transform, fftw_model(profile), p.element_bytes);
    if (!p.componentwise) return call + t.seconds + kernel_spectrum;
    // The contract: tiles larger than its bound would be summed directly; each tile's outputs are
    // checked (a pass), and where the weights have both signs a second transform bounds |x| * |k|.
    if (t.rows.transform * t.cols.transform > fft_contract_limit(p)) return never;
    return call + t.seconds * (p.one_signed_weights ? contract_one_signed_factor : contract_two_signed_factor) +
           kernel_spectrum * (p.one_signed_weights ? 1.0 : 2.0);
  }
  // Layers: the contract is proven per output on single planes only.
  if (p.componentwise) return never;
  if (p.rows.kernel * p.cols.kernel == 1) return never;
  const fftw_batch_layout l = fftw_batch_plan(p, profile);
  if (l.bytes(p.element_bytes) > fftw_batch_budget(p)) return never;
  const fft::tile_plan& t = l.tiles;
  const double filter_spectra =
      p.amortised ? 0.0
                  : double(p.k) * double(p.c_per_group()) *
                        fftw_plane_seconds(t.rows.transform, t.cols.transform, p.element_bytes, fftw_model(profile)) /
                        (1.0 + fftw_batch_costs.threaded_efficiency * (p.threads - 1)) / profile.fft.batch_scale;
  return call + t.seconds + filter_spectra;
}

// --- Calibration -----------------------------------------------------------------------------------

/// The least-squares solution of rows * x = 1 over the unknowns marked in `use` (the others 0), from
/// the normal equations by Gaussian elimination; NaN where they are singular.
inline std::array<double, 3> fit_ones(const std::vector<std::array<double, 3>>& rows, std::array<bool, 3> use) {
  std::vector<int> idx;
  for (int i = 0; i < 3; ++i)
    if (use[std::size_t(i)]) idx.push_back(i);
  const std::size_t n = idx.size();
  std::vector<std::vector<double>> a(n, std::vector<double>(n + 1, 0.0));  // [A^T A | A^T 1]
  for (const auto& row : rows)
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) a[i][j] += row[std::size_t(idx[i])] * row[std::size_t(idx[j])];
      a[i][n] += row[std::size_t(idx[i])];
    }
  for (std::size_t col = 0; col < n; ++col) {
    std::size_t pivot = col;
    for (std::size_t r = col + 1; r < n; ++r)
      if (std::abs(a[r][col]) > std::abs(a[pivot][col])) pivot = r;
    std::swap(a[col], a[pivot]);
    for (std::size_t r = 0; r < n; ++r)
      if (r != col) {
        const double f = a[r][col] / a[col][col];
        for (std::size_t j = col; j <= n; ++j) a[r][j] -= f * a[col][j];
      }
  }
  std::array<double, 3> x{0, 0, 0};
  for (std::size_t i = 0; i < n; ++i) x[std::size_t(idx[i])] = a[i][n] / a[i][i];
  return x;
}

/// Seconds of one untiled n x n plane with a 1x1 kernel (each execute is one tile: fill, r2c,
/// product, c2r, copy-out) on one thread.
inline double seconds_of_one_tile(calibration& c, index_t n) {
  tuning untiled;
  untiled.fft = fft_config{};
  untiled.fft->tiles = fft_tiling::never;
  return c.seconds(timed_problem::image(n).on(algorithm::fft, 1).with(untiled).make());
}

/// In-cache powers of two: t = tile_unit + N (transform_unit log2 N + element_unit), N = n^2, fitted
/// by least squares on the relative error (each row divided by its time); where a term comes out
/// negative (noise on a small size) it is dropped and the others fitted again, first the per-tile
/// constant, then the per-element one. False (nothing set) where the cache holds fewer than three
/// sizes or the fit makes no sense.
inline bool measure_fft_in_cache(calibration& c, fft_costs& m, index_t cache) {
  std::vector<std::array<double, 3>> rows;
  for (index_t n : {16, 32, 64, 128, 256, 512}) {
    if (2.0 * double(n) * double(n) * 4.0 > double(cache) / 2 || (c.quick() && n != 16 && n != 64 && n != 256))
      continue;
    const double t = seconds_of_one_tile(c, n), big_n = double(n) * double(n);
    rows.push_back({1.0 / t, big_n * std::log2(big_n) / t, big_n / t});
  }
  if (rows.size() < 3) return false;
  std::array<double, 3> x = fit_ones(rows, {true, true, true});
  if (!(x[0] >= 0) || !(x[2] >= 0)) x = fit_ones(rows, {false, true, true});
  if (!(x[2] >= 0)) x = fit_ones(rows, {false, true, false});
  if (!(x[1] > 0)) return false;
  m.tile_unit.measure(x[0]);
  m.transform_unit.measure(x[1]);
  m.element_unit.measure(x[2]);
  return true;
}

/// log2 of an n x n float plane's two buffers over the cache: the doublings of the working set.
inline double spill_of(index_t n, index_t cache) {
  return std::log2(2.0 * double(n) * double(n) * 4.0 / double(cache));
}

/// Beyond the cache: the extra time per element per doubling of the working set (1024, 2048).
inline void measure_fft_spill(calibration& c, fft_costs& m, index_t cache) {
  double spill_sum = 0;
  int spills = 0;
  for (index_t n : {1024, 2048}) {
    if (c.quick() && n == 2048) continue;
    const double s = spill_of(n, cache);
    if (s <= 0.5) continue;
    const double y = (seconds_of_one_tile(c, n) - m.tile_unit) / (double(n) * double(n));
    const double base = m.transform_unit * std::log2(double(n) * double(n)) + m.element_unit;
    spill_sum += std::max(0.0, (y - base) / s);
    ++spills;
  }
  if (spills > 0) m.cache_unit.measure(spill_sum / spills);
}

/// Odd lengths (3^5, 3 x 5^3), relative to the model of an even length.
inline void measure_fft_odd_lengths(calibration& c, fft_costs& m, index_t cache) {
  const std::vector<index_t> lengths = c.quick() ? std::vector<index_t>{243} : std::vector<index_t>{243, 375};
  double odd = 0;
  for (index_t n : lengths) {
    const double lg = std::log2(double(n) * double(n)), spill = std::max(0.0, spill_of(n, cache)) * m.cache_unit;
    const double per_element = (seconds_of_one_tile(c, n) - m.tile_unit) / (double(n) * double(n));
    odd += (per_element - m.element_unit - spill) / (m.transform_unit * lg) / double(lengths.size());
  }
  m.odd_length_factor.measure(std::max(1.0, odd));
}

/// A whole image as the tile planner cuts it ('same', zero border, 2000 x 2000 * 21 x 21, one
/// thread, the kernel's spectrum made once): its time against the formula's, which was fitted on
/// single transforms in cache (fft_cost_model::formula_scale).
inline void measure_fft_image_scale(calibration& c, fft_costs& m) {
  cost_profile unscaled;
  unscaled.fft = m;
  unscaled.fft.image_scale.measure(1.0);
  const conv_problem image = timed_problem::image(2000).kernel(21).on(algorithm::fft, 1).make();
  const double model = fftw_tile_plan(image, unscaled).seconds;
  if (model > 0) m.image_scale.measure(std::clamp(c.seconds(image) / model, 0.25, 4.0));
}

/// What more threads give: one transform on FFTW's threads (1024 x 1024), and many tiles over
/// convkit's (4 x 4 forced tiles of 256, 9 x 9 kernel), each against one thread in alternation (so
/// that the ratio holds while the machine drifts), the median of three passes (which outlasts a
/// neighbour taking the second core for a while).
inline void measure_fft_threads(calibration& c, fft_costs& m) {
  if (c.threads() < 2) return;
  tuning untiled, tiled;
  untiled.fft = fft_config{};
  untiled.fft->tiles = fft_tiling::never;
  tiled.fft = fft_config{};
  tiled.fft->tile_rows = tiled.fft->tile_cols = 256 - 8;
  const auto pair = [&](const timed_problem& q, const tuning& t) {
    return std::vector<conv_problem>{timed_problem(q).on(algorithm::fft, 1).with(t).make(),
                                     timed_problem(q).on(algorithm::fft, c.threads()).with(t).make()};
  };
  const std::vector<conv_problem> one_transform = pair(timed_problem::image(1024), untiled);
  const std::vector<conv_problem> many_tiles = pair(timed_problem::image(4 * 248 + 8).kernel(9).padding(0), tiled);
  std::vector<double> threaded, tiles;
  const auto efficiency = [&](const std::vector<double>& s) { return (s[0] / s[1] - 1.0) / (c.threads() - 1); };
  for (int pass = 0; pass < 3; ++pass) {
    threaded.push_back(efficiency(c.seconds(one_transform, nullptr, 1.0 / 3)));
    tiles.push_back(efficiency(c.seconds(many_tiles, nullptr, 1.0 / 3)));
  }
  m.threaded_efficiency.measure(std::clamp(calibration::median(threaded), 0.0, 1.0));
  m.tiled_efficiency.measure(std::clamp(calibration::median(tiles), 0.0, 1.0));
}

/// Batches, against the batch model with scales 1: its transforms and its channel sums apart, from a
/// layer whose transforms dominate (16 -> 16 channels, 5 x 5, 56 x 56) and one whose channel sums
/// do (128 -> 128, 3 x 3, 28 x 28, 4 images): two equations for the two scales.
inline void measure_fft_batches(calibration& c, fft_costs& m) {
  cost_profile so_far;
  so_far.fft = m;
  so_far.fft.batch_scale.measure(1.0);
  so_far.fft.product_scale.measure(1.0);
  cost_profile transforms_only = so_far;
  transforms_only.fft.product_scale.measure(1e30);  // the channel sums vanish
  const auto parts = [&](const conv_problem& p, double& transforms, double& sums) {
    const fftw_batch_layout l = fftw_batch_plan(p, so_far);
    transforms = fftw_batch_seconds(p, l, 1, transforms_only);
    sums = fftw_batch_seconds(p, l, 1, so_far) - transforms;
  };
  const conv_problem wide = timed_problem::layer(2, 16, 16).planes(56).kernel(5).on(algorithm::fft, 1).make();
  const conv_problem deep = timed_problem::layer(4, 128, 128).planes(28).kernel(3).on(algorithm::fft, 1).make();
  double ta, pa, tb, pb;
  parts(wide, ta, pa);
  parts(deep, tb, pb);
  const double ma = c.seconds(wide), mb = c.seconds(deep);
  // ta / s + pa / q = ma, tb / s + pb / q = mb, in the unknowns 1/s and 1/q.
  const double det = ta * pb - pa * tb;
  const double inv_s = (ma * pb - pa * mb) / det, inv_q = (ta * mb - ma * tb) / det;
  const bool apart = inv_s > 0 && inv_q > 0;  // else one scale for both
  const double both = (ta + pa + tb + pb) / (ma + mb);
  m.batch_scale.measure(apart ? 1.0 / inv_s : both);
  m.product_scale.measure(apart ? 1.0 / inv_q : both);
}

/// Every constant of the fft model, measured on this machine (see each step above); where the
/// in-cache fit fails, the built-in constants.
inline fft_costs measure_fft(calibration& c) {
  c.step("fft: transform times by length, cache spill, threads, a layer");
  fft_costs m;
  const index_t cache = l2_cache_bytes();
  m.cache_bytes.measure(double(cache));
  if (!measure_fft_in_cache(c, m, cache)) return m;
  measure_fft_spill(c, m, cache);
  measure_fft_odd_lengths(c, m, cache);
  measure_fft_image_scale(c, m);
  measure_fft_threads(c, m);
  measure_fft_batches(c, m);
  // A call's own cost beyond its tiles: a 16 x 16 call against the fitted model of its one tile.
  cost_profile fitted;
  fitted.fft = m;
  m.call_s.measure(std::max(0.0, seconds_of_one_tile(c, 16) - fft::tile_seconds(16, 16, fftw_model(fitted))));
  return m;
}

/// The fft model has no rule between its constants beyond their ranges.
inline std::vector<const constant*> fft_broken_rules(const fft_costs&) { return {}; }

inline void fftw_calibrate(calibration& c, cost_profile& into, const cost_profile& previous) {
  into.fft = measure_plausibly(
      c, previous.fft, [&] { return measure_fft(c); }, &fft_broken_rules);
}

}  // namespace detail
CONVKIT_NAMESPACE_END
