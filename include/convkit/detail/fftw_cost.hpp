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

/// The tile plan of a single plane with `profile`'s constants. Under the contract the transforms stay
/// within its bound where a tile of the kernel's span can; where none can (a kernel dilated far wider
/// than the bound), every tile's outputs are checked and the unproven ones summed directly whatever
/// the tiles, so the fastest tiles are taken: the smallest would transform a span-sized window for
/// a few outputs each, time growing as outputs x span (a 4-tap row dilated by 1020 took 0.55 s for
/// 5,383 outputs in 1,792 tiles of 16 x 3072).
inline fft::tile_plan fftw_tile_plan(const conv_problem& p, const cost_profile& profile) {
  const fft_config& c = p.tune.fft;
  index_t limit = fft_contract_limit(p);
  if (limit > 0 && double(fft::next_fast_size(p.rows.span)) * double(fft::next_fast_size(p.cols.span)) > double(limit))
    limit = 0;
  return fft::plan_tiles(p.rows, p.cols, p.edge, p.element_bytes, p.threads, {c.tiles, c.tile_rows, c.tile_cols, limit},
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

}  // namespace detail
CONVKIT_NAMESPACE_END
