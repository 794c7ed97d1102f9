// The fft backend's calibration: its cost model's constants (fftw_cost.hpp) measured on this machine
// with FFTW. calibrate.hpp includes it where the program has FFTW, which registers it.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "calibration.hpp"
#include "fftw_cost.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

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

inline const bool fftw_calibration_registered = register_calibration(algorithm::fft, &fftw_calibrate);

}  // namespace detail
CONVKIT_NAMESPACE_END
