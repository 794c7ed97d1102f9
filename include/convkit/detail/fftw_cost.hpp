// The fft backend's cost model: which transform and tiles it runs a problem with, and how long that
// takes. The built-in constants were fitted on the AVX-512 Xeon this project ran on first (float,
// FFTW 3.3.10, FFTW_ESTIMATE plans); calibrate() measures them on this machine into the profile
// ("fft.*"), and both the choice of backend and the executor's choice of tiles use the profile's.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <unistd.h>

#include "backend.hpp"
#include "calibration.hpp"
#include "checked.hpp"
#include "fft_sizes.hpp"
#include "spectrum_product.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// A single plane, per tile (fill, r2c, product, c2r, copy-out), square lengths 16..2048 on one core
/// of a 2-core AVX-512 Xeon (2 MiB L2 per core): ~0.31 ns per element per log2(N) + 0.4 ns; odd
/// lengths about twice slower; +1.4 ns per element for each doubling of the working set beyond L2.
/// Good to ~15% for tile lengths 2^a, 3 * 2^a and 5 * 2^a from 128 up, so tiles use only those
/// (other mixed lengths took 1.6-2.7x the power-of-two time per element).
inline constexpr fft::fft_cost_model fftw_builtin_model{0.31e-9, 0.4e-9, 4.0, 0.6, 2.0, 1.4e-9, index_t(2) << 20, 128};

/// The L2 cache per core that the operating system reports, else the built-in 2 MiB.
inline index_t l2_cache_bytes() {
#if defined(_SC_LEVEL2_CACHE_SIZE)
  const long bytes = ::sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (bytes > 0) return bytes;
#endif
  return fftw_builtin_model.cache_bytes;
}

/// The single-plane model with `profile`'s measured constants where it has them.
inline fft::fft_cost_model fftw_model(const cost_profile& profile) {
  fft::fft_cost_model m = fftw_builtin_model;
  m.transform_unit = profile_value(profile, "fft.transform_unit", m.transform_unit);
  m.element_unit = profile_value(profile, "fft.element_unit", m.element_unit);
  m.odd_length_factor = profile_value(profile, "fft.odd_length_factor", m.odd_length_factor);
  m.cache_unit = profile_value(profile, "fft.cache_unit", m.cache_unit);
  m.threaded_efficiency = profile_value(profile, "fft.threaded_efficiency", m.threaded_efficiency);
  m.cache_bytes = index_t(profile_value(profile, "fft.cache_bytes", double(l2_cache_bytes())));
  m.tile_unit = profile_value(profile, "fft.tile_unit", m.tile_unit);
  m.tiled_efficiency = profile_value(profile, "fft.tiled_efficiency", m.tiled_efficiency);
  m.formula_scale = profile_value(profile, "fft.image_scale", m.formula_scale);
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

/// The tile plan of a single plane with `profile`'s constants.
inline fft::tile_plan fftw_tile_plan(const conv_problem& p, const cost_profile& profile) {
  const fft_config& c = p.tune.fft;
  return fft::plan_tiles(p.rows, p.cols, p.edge, p.element_bytes, p.threads, {c.tiles, c.tile_rows, c.tile_cols},
                         fftw_model(profile), c.memory_cap);
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
/// `profile`'s constants (fft.batch_scale and fft.product_scale: this model's transforms and channel
/// sums against two layers, one where each dominates).
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
  return (transforms / profile_value(profile, "fft.batch_scale", 1.0) +
          (products + weights) / profile_value(profile, "fft.product_scale", 1.0)) /
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

/// Cost model of the fft backend: fft.call_s per call plus what follows. Never for data holding NaN
/// or Inf (an FFT spreads them over the output), nor for sparse problems (problem.hpp). A single plane: the tile plan's
/// estimate, plus the kernel's transform unless a plan makes it once (conv_problem::amortised). A batch: the layout's
/// estimate plus, unless amortised, the filters' spectra; never for 1x1 kernels (the transforms would only multiply
/// each channel by a number, which im2col's GEMM or direct does without transforming anything), nor for batches whose
/// buffers exceed the workspace bound even in the smallest tiles (the weights' spectra alone are K * C/groups
/// transforms; asked for explicitly, fft still runs them in the smallest tiles).
inline double fftw_cost(const conv_problem& p, const cost_profile& profile) {
  if (!p.finite || p.sparse()) return never;
  const double call = profile_value(profile, "fft.call_s", 1e-5);
  if (p.single_plane()) {
    const fft::tile_plan t = fftw_tile_plan(p, profile);
    const double kernel_spectrum =
        p.amortised ? 0.0 : fft::tile_seconds(t.rows.transform, t.cols.transform, fftw_model(profile), p.element_bytes);
    return call + t.seconds + kernel_spectrum;
  }
  if (p.rows.kernel * p.cols.kernel == 1) return never;
  const fftw_batch_layout l = fftw_batch_plan(p, profile);
  if (l.bytes(p.element_bytes) > fftw_batch_budget(p)) return never;
  const fft::tile_plan& t = l.tiles;
  const double filter_spectra =
      p.amortised ? 0.0
                  : double(p.k) * double(p.c_per_group()) *
                        fftw_plane_seconds(t.rows.transform, t.cols.transform, p.element_bytes, fftw_model(profile)) /
                        (1.0 + fftw_batch_costs.threaded_efficiency * (p.threads - 1)) /
                        profile_value(profile, "fft.batch_scale", 1.0);
  return call + t.seconds + filter_spectra;
}

/// Measures the single-plane model's constants from untiled transforms of one plane (a 1x1 kernel,
/// so each execute is one tile: fill, r2c, product, c2r, copy-out): powers of two that fit in L2
/// give tile_unit, transform_unit and element_unit (least squares of the relative error), larger
/// ones cache_unit, odd lengths odd_length_factor, all threads threaded_efficiency; then whole
/// a whole image as the planner tiles it (image_scale: what its tiles take beyond the formula) and how
/// tiles share threads (tiled_efficiency); then a layer gives batch_scale, the batch model's error here.
inline void fftw_calibrate(calibration& c) {
  c.step("fft: transform times by length, cache spill, threads, a layer");
  const index_t cache = l2_cache_bytes();
  c.set("fft.cache_bytes", double(cache));
  tuning untiled;
  untiled.fft = fft_config{};
  untiled.fft->tiles = fft_tiling::never;
  const auto seconds_of = [&](index_t n) {
    const conv_problem p = calibration::problem(1, 1, 1, n, n, 1, 1, 0, 1, algorithm::fft, 1, untiled, false);
    return c.seconds(p);
  };
  // In-cache powers of two: t = tile_unit + N (transform_unit log2 N + element_unit), N = n^2, fitted
  // by least squares on the relative error (each row divided by its time).
  double a[3][3] = {}, b[3] = {};
  int sizes = 0;
  for (index_t n : {16, 32, 64, 128, 256, 512}) {
    if (2.0 * double(n) * double(n) * 4.0 > double(cache) / 2 || (c.quick() && n != 16 && n != 64 && n != 256))
      continue;
    const double t = seconds_of(n), big_n = double(n) * double(n);
    const double row[3] = {1.0 / t, big_n * std::log2(big_n) / t, big_n / t};
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) a[i][j] += row[i] * row[j];
      b[i] += row[i];
    }
    ++sizes;
  }
  if (sizes < 3) return;  // a cache too small to fit three sizes: keep the built-in constants
  // Cramer's rule on the normal equations; where a term comes out negative (noise on a small size),
  // it is dropped and the others fitted again: first the per-tile constant, then the per-element one.
  const auto det3 = [](const double m[3][3]) {
    return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
           m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  };
  double x[3] = {0, 0, 0};
  const double d = det3(a);
  for (int k = 0; k < 3; ++k) {
    double m[3][3];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) m[i][j] = j == k ? b[i] : a[i][j];
    x[k] = det3(m) / d;
  }
  if (!(x[0] >= 0) || !(x[2] >= 0)) {  // without the tile constant: 2 x 2 in (transform, element)
    const double d2 = a[1][1] * a[2][2] - a[1][2] * a[2][1];
    x[0] = 0;
    x[1] = (b[1] * a[2][2] - a[1][2] * b[2]) / d2;
    x[2] = (a[1][1] * b[2] - b[1] * a[2][1]) / d2;
  }
  if (!(x[2] >= 0)) {  // the transform term alone
    x[2] = 0;
    x[1] = b[1] / a[1][1];
  }
  if (!(x[1] > 0)) return;  // nothing sensible: keep the built-in constants
  const double unit = x[1], element = x[2];
  c.set("fft.tile_unit", x[0]);
  c.set("fft.transform_unit", unit);
  c.set("fft.element_unit", element);
  const auto spill_of = [&](index_t n) { return std::log2(2.0 * double(n) * double(n) * 4.0 / double(cache)); };
  // Beyond the cache: the extra time per element per doubling of the working set.
  double spill_sum = 0;
  int spills = 0;
  for (index_t n : {1024, 2048}) {
    if (c.quick() && n == 2048) continue;
    const double s = spill_of(n);
    if (s <= 0.5) continue;
    const double y = (seconds_of(n) - x[0]) / (double(n) * double(n));
    const double base = unit * std::log2(double(n) * double(n)) + element;
    spill_sum += std::max(0.0, (y - base) / s);
    ++spills;
  }
  const double spill_unit = spills > 0 ? spill_sum / spills : fftw_builtin_model.cache_unit;
  c.set("fft.cache_unit", spill_unit);
  // Odd lengths (3^5, 3 x 5^3), relative to the model of an even length.
  const double tile = x[0];
  double odd = 0;
  const std::vector<index_t> odd_lengths = c.quick() ? std::vector<index_t>{243} : std::vector<index_t>{243, 375};
  for (index_t n : odd_lengths) {
    const double lg = std::log2(double(n) * double(n)), spill = std::max(0.0, spill_of(n)) * spill_unit;
    odd +=
        ((seconds_of(n) - tile) / (double(n) * double(n)) - element - spill) / (unit * lg) / double(odd_lengths.size());
  }
  c.set("fft.odd_length_factor", std::max(1.0, odd));
  // A whole image as the tile planner cuts it ('same', zero border, 2000 x 2000 * 21 x 21, one
  // thread, the kernel's spectrum made once): its time against the formula's, which was fitted on
  // single transforms in cache (fft_cost_model::formula_scale).
  {
    cost_profile unscaled = c.profile();
    unscaled.set_value("fft.image_scale", 1.0);
    const conv_problem image = calibration::problem(1, 1, 1, 2000, 2000, 21, 21, 10, 1, algorithm::fft, 1, {}, false);
    const double model = fftw_tile_plan(image, unscaled).seconds;
    if (model > 0) c.set("fft.image_scale", std::clamp(c.seconds(image) / model, 0.25, 4.0));
  }
  // Overlap-save tiles of one length, 9 x 9 kernel, per_axis x per_axis of them, forced.
  const auto tiled = [&](index_t length, index_t per_axis, int threads) {
    tuning forced;
    forced.fft = fft_config{};
    forced.fft->tile_rows = forced.fft->tile_cols = length - 8;
    const index_t n = per_axis * (length - 8) + 8;
    return calibration::problem(1, 1, 1, n, n, 9, 9, 0, 1, algorithm::fft, threads, forced, false);
  };
  if (c.threads() > 1) {
    // What more threads give: one transform on FFTW's threads, and many tiles over convkit's, each
    // against one thread in alternation (so that the ratio holds while the machine drifts), the
    // median of three passes (which outlasts a neighbour taking the second core for a while).
    const std::vector<conv_problem> one_transform{
        calibration::problem(1, 1, 1, 1024, 1024, 1, 1, 0, 1, algorithm::fft, 1, untiled, false),
        calibration::problem(1, 1, 1, 1024, 1024, 1, 1, 0, 1, algorithm::fft, c.threads(), untiled, false)};
    const std::vector<conv_problem> many_tiles{tiled(256, 4, 1), tiled(256, 4, c.threads())};
    std::vector<double> threaded, tiles;
    const auto efficiency = [&](const std::vector<double>& s) { return (s[0] / s[1] - 1.0) / (c.threads() - 1); };
    for (int pass = 0; pass < 3; ++pass) {
      threaded.push_back(efficiency(c.seconds(one_transform, nullptr, 1.0 / 3)));
      tiles.push_back(efficiency(c.seconds(many_tiles, nullptr, 1.0 / 3)));
    }
    for (auto* v : {&threaded, &tiles}) std::sort(v->begin(), v->end());
    c.set("fft.threaded_efficiency", std::clamp(threaded[1], 0.0, 1.0));
    c.set("fft.tiled_efficiency", std::clamp(tiles[1], 0.0, 1.0));
  }
  // Batches, against the batch model with scales 1: its transforms and its channel sums apart, from a
  // layer whose transforms dominate (16 -> 16 channels, 5 x 5, 56 x 56) and one whose channel sums
  // do (128 -> 128, 3 x 3, 28 x 28, 4 images): two equations for the two scales.
  cost_profile so_far = c.profile();
  so_far.set_value("fft.batch_scale", 1.0);
  so_far.set_value("fft.product_scale", 1.0);
  const auto parts = [&](const conv_problem& p, double& transforms, double& sums) {
    cost_profile only = so_far;
    only.set_value("fft.product_scale", 1e30);  // the channel sums vanish
    const fftw_batch_layout l = fftw_batch_plan(p, so_far);
    transforms = fftw_batch_seconds(p, l, 1, only);
    sums = fftw_batch_seconds(p, l, 1, so_far) - transforms;
  };
  const conv_problem wide = calibration::problem(2, 16, 16, 56, 56, 5, 5, 2, 1, algorithm::fft, 1);
  const conv_problem deep = calibration::problem(4, 128, 128, 28, 28, 3, 3, 1, 1, algorithm::fft, 1);
  double ta, pa, tb, pb;
  parts(wide, ta, pa);
  parts(deep, tb, pb);
  const double ma = c.seconds(wide), mb = c.seconds(deep);
  // ta / s + pa / q = ma, tb / s + pb / q = mb, in the unknowns 1/s and 1/q.
  const double det = ta * pb - pa * tb;
  const double inv_s = (ma * pb - pa * mb) / det, inv_q = (ta * mb - ma * tb) / det;
  if (inv_s > 0 && inv_q > 0) {
    c.set("fft.batch_scale", 1.0 / inv_s);
    c.set("fft.product_scale", 1.0 / inv_q);
  } else {  // one scale for both
    c.set("fft.batch_scale", (ta + pa + tb + pb) / (ma + mb));
    c.set("fft.product_scale", (ta + pa + tb + pb) / (ma + mb));
  }
  // A call's own cost beyond its tiles: a 16 x 16 call against the fitted model of its one tile.
  c.set("fft.call_s", std::max(0.0, seconds_of(16) - fft::tile_seconds(16, 16, fftw_model(c.profile()))));
}

}  // namespace detail
CONVKIT_NAMESPACE_END
