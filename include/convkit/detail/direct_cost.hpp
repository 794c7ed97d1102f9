// The direct backend's cost model (its constants: direct_costs in cost_models.hpp) and how a
// calibration measures them.
//
// A single plane: seconds = call_s + multiply-adds / rate, where rate is what the micro-kernel
// sustains for the problem's instruction set, kernel size and threads: the measured rates
// interpolated in log(taps) between the measured kernels and linearly in the threads; without them
// the instruction set's lanes x 2 FMA units x the clock (/proc/cpuinfo, else 2.5 GHz) x 0.75, times
// taps / (taps + 30) (small kernels are bound by loads, stores and the border copy: fitted on the
// AVX-512 Xeon this project ran on first, within 10% for 3x3..31x31), times 0.9 per extra thread.
// A batch on the layer path (direct_layer.hpp, direct_layer_applies): the instruction set's nominal peak (lanes x 2 FMA
// units x the clock, halved for double) x its tile's efficiency (layer_tile_of) x 1.25 (the AVX-512
// Xeon's turbo clock, 1.45x the nominal one /proc/cpuinfo gives, less the preparation of the input
// and the stores, ~14%: fitted to ResNet's 3x3 layers in bench_layers there) x the fraction of its
// FMAs that compute kept outputs (filter blocks, positions dropped between rows and past the last
// vector) x 0.9 per extra thread, times the measured layer_scale (grouped_layer_scale for grouped
// layers, depthwise_layer_scale for depthwise ones, whose one-filter tile loads an input vector per
// FMA); plus a nanosecond per extended input element (the preparation). Depthwise layers that the
// depthwise kernel computes (direct_depthwise_applies: no prepared input) cost
// direct_depthwise_element_s per input and output element instead, 0.9 of a thread per extra thread,
// over the same depthwise_layer_scale (measured on a 14 x 14 3x3 layer, which that kernel computes,
// so the depthwise layers the tile computes are estimated with a scale that is not theirs). Other batches (dilations
// far wider than the output) run one filter-channel pair at a time: the plane's rate also scales
// with taps / (taps + 16), the fraction of vector lanes a row fills, and 0.6 when strided rows
// cannot share input rows (fitted to bench_layers there).
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "../cost_models.hpp"
#include "../cpu.hpp"
#include "../profile.hpp"
#include "direct_layer.hpp"
#include "direct_separable.hpp"
#include "problem.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// An extra thread pays for itself from ~4e6 multiply-adds (~70 us of micro-kernel time) each.
inline int direct_threads(double macs, int threads) { return useful_threads(macs, threads, 4e6); }

/// Seconds per input and output element of the depthwise kernel on one thread (direct_depthwise_applies):
/// bench_layers' MobileNet rows, batch 8, on the Zen 4 took 0.26-0.65 ns per element moved (14 x 14
/// to 112 x 112 planes, strides 1 and 2, 7 x 7 the most), with their multiply-adds.
inline constexpr double direct_depthwise_element_s = 0.4e-9;

/// Multiply-adds per second of the gather path (scalar, with index lookups; sparse problems only).
inline constexpr double direct_gather_rate = 1e9;

/// The clock in Hz from /proc/cpuinfo ("cpu MHz"), else 2.5 GHz.
inline double cpu_hz() {
  static const double hz = [] {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("cpu MHz", 0) == 0) {
        const double mhz = std::atof(line.substr(line.find(':') + 1).c_str());
        if (mhz > 100) return mhz * 1e6;
      }
    return 2.5e9;
  }();
  return hz;
}

/// Vector lanes of a float register.
inline double float_lanes(cpu::isa i) noexcept { return double(vector_lanes<float>(i)); }

/// The built-in rate of one thread (no measurement).
inline double direct_default_rate(cpu::isa i, double taps) {
  return float_lanes(i) * 2.0 * cpu_hz() * 0.75 * taps / (taps + 30.0);
}

/// A rate measured on one thread and on `calibrated` threads (0 where not), at `threads`: linear in
/// between, 0.9 of a thread per extra thread without the second.
inline double thread_rate(double one, double many, int threads, int calibrated) {
  if (threads == 1 || calibrated <= 1 || many == 0) return one * (1.0 + 0.9 * (threads - 1));
  return one + (many - one) * double(threads - 1) / double(calibrated - 1);
}

/// Multiply-adds per second of a single plane with `taps` taps on `threads` threads.
inline double direct_rate(const direct_costs& m, cpu::isa i, double taps, int threads) {
  const direct_costs::isa_rates& r = m.of(i);
  const auto measured = [&](const auto& rates) -> double {  // interpolated in log(taps); 0 if not measured
    double lo_taps = 0, lo = 0, hi_taps = 0, hi = 0;
    for (std::size_t k = 0; k < direct_costs::kernel_count; ++k) {
      if (!rates[k].measured()) continue;
      const double kt = double(direct_costs::kernel_sizes[k]) * direct_costs::kernel_sizes[k];
      if (kt <= taps) lo_taps = kt, lo = rates[k];
      if (kt >= taps && hi == 0) hi_taps = kt, hi = rates[k];
    }
    if (lo == 0) return hi;
    if (hi == 0 || hi_taps == lo_taps) return lo;
    return lo + (hi - lo) * std::log(taps / lo_taps) / std::log(hi_taps / lo_taps);
  };
  const double one = measured(r.one_thread);
  if (one == 0) return direct_default_rate(i, taps) * (1.0 + 0.9 * (threads - 1));
  return thread_rate(one, measured(r.all_threads), threads, int(m.threads));
}

/// Multiply-adds per second of the separable path's 1-D passes on `threads` threads (built in: a
/// quarter of the instruction set's peak).
inline double direct_separable_rate(const direct_costs& m, cpu::isa i, int threads) {
  const direct_costs::isa_rates& r = m.of(i);
  if (!r.separable_one_thread.measured()) return float_lanes(i) * 2.0 * cpu_hz() * 0.25 * (1.0 + 0.9 * (threads - 1));
  return thread_rate(r.separable_one_thread, r.separable_all_threads, threads, int(m.threads));
}

/// Seconds of the separable path.
inline double direct_separable_cost(const conv_problem& p, const direct_costs& m) {
  return m.call_s +
         direct_separable_macs(p) / direct_separable_rate(m, p.tune.instruction_set, direct_separable_threads(p));
}

/// Seconds of the dense paths (the micro-kernel, or the gather path of sparse problems).
inline double direct_dense_cost(const conv_problem& p, const direct_costs& m) {
  if (p.sparse()) return p.macs() / (direct_gather_rate * useful_threads(p.macs(), p.threads, 1e6));
  const cpu::isa i = p.tune.instruction_set;
  const double taps = double(p.rows.kernel) * double(p.cols.kernel);
  const double rate = direct_rate(m, i, taps, direct_threads(p.macs(), p.threads));
  if (p.single_plane()) return m.call_s + p.macs() / rate;
  const double elems = double(p.n) * double(p.c) * double(p.rows.extent) * double(p.cols.extent);
  const direct_costs::isa_rates& r = m.of(i);
  if (direct_layer_applies(p) && direct_depthwise_applies(p)) {
    // The depthwise kernel reads the image in place: its time goes with the elements it moves.
    const double moved =
        double(p.n) * double(p.c) * (double(p.rows.in) * double(p.cols.in) + double(p.rows.out) * double(p.cols.out));
    const int threads = direct_threads(p.macs(), p.threads);
    return m.call_s +
           moved * direct_depthwise_element_s / ((1.0 + 0.9 * (threads - 1)) * double(r.depthwise_layer_scale));
  }
  if (direct_layer_applies(p)) {
    const layer_tile_shape tile = layer_tile_of(i, p.k_per_group());
    const double lanes = double(p.element_bytes == 8 ? vector_lanes<double>(i) : vector_lanes<float>(i));
    const double kg = double(p.k_per_group()), blocks = std::ceil(kg / tile.channels);
    const double computed = double(p.rows.out) * double(layer_phase_extent(p.cols));
    const double kept =
        kg / (blocks * tile.channels) * double(p.rows.out) * double(p.cols.out) / (std::ceil(computed / lanes) * lanes);
    const double scale = p.k_per_group() == 1 && p.c_per_group() == 1       ? double(r.depthwise_layer_scale)
                         : p.groups > 1 && r.grouped_layer_scale.measured() ? double(r.grouped_layer_scale)
                                                                            : double(r.layer_scale);
    const int threads = direct_threads(p.macs(), p.threads);
    const double layer_rate =
        lanes * 2.0 * cpu_hz() * 1.25 * tile.efficiency * kept * (1.0 + 0.9 * (threads - 1)) * scale;
    return m.call_s + p.macs() / layer_rate + elems * 1e-9;
  }
  const double lanes = float_lanes(i);
  const double row = double(p.cols.out), filled = row / (std::ceil(row / lanes) * lanes);
  const double shared_rows = p.rows.dilation % p.rows.stride == 0 ? 1.0 : 0.6;
  const double batch = (taps / (taps + 16)) / (taps / (taps + 30)) * filled * shared_rows;
  return m.call_s + p.macs() / (rate * batch) + elems * 1e-9;
}

/// The separable path runs problem p (a low-rank kernel on a single plane or a depthwise batch) where
/// it is cheaper than the dense one (or where the tuning asks for it).
inline bool runs_separably(const conv_problem& p, const direct_costs& m) {
  if (p.kernel_rank == 0 || p.sparse() || !(p.single_plane() || p.c_per_group() == 1)) return false;
  return p.tune.separable == separable_use::always || direct_separable_cost(p, m) < direct_dense_cost(p, m);
}

/// The direct backend's cost: the cheaper of its dense and separable paths (the one it runs).
inline double direct_cost(const conv_problem& p, const cost_profile& profile) {
  const direct_costs& m = profile.direct;
  return runs_separably(p, m) ? direct_separable_cost(p, m) : direct_dense_cost(p, m);
}

/// The tuning of band problems: the global problem's, its profile resolved once, with the direct
/// backend's low-rank path fixed by the global problem's choice, so that every band computes its
/// outputs as the whole image would.
inline settings band_tuning(conv_problem global) {
  resolve_profile(global);
  settings t = global.tune;
  if (global.kernel_rank > 0)
    t.separable = runs_separably(global, costs_of(global).direct) ? separable_use::always : separable_use::never;
  return t;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
