// The direct backend's cost model (its constants: direct_costs in cost_models.hpp) and how a
// calibration measures them.
//
// A single plane: seconds = call_s + multiply-adds / rate, where rate is what the micro-kernel
// sustains for the problem's instruction set, kernel size and threads: the measured rates
// interpolated in log(taps) between the measured kernels and linearly in the threads; without them
// the instruction set's lanes x 2 FMA units x the clock (/proc/cpuinfo, else 2.5 GHz) x 0.75, times
// taps / (taps + 30) (small kernels are bound by loads, stores and the border copy: fitted on the
// AVX-512 Xeon this project ran on first, within 10% for 3x3..31x31), times 0.9 per extra thread.
// A batch runs one filter-channel pair at a time: its rate also scales with taps / (taps + 16), the
// fraction of vector lanes a row fills, and 0.6 when strided rows cannot share input rows (fitted
// to bench_layers there), times the measured batch_scale (depthwise_scale for layers of one channel
// per filter, which sum nothing in their output planes; grouped_scale for layers of a few channels
// per group, whose short channel sums the dense layer's scale overestimated by 1.1-1.6x).
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
#include "calibration.hpp"
#include "direct_separable.hpp"
#include "problem.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// An extra thread pays for itself from ~4e6 multiply-adds (~70 us of micro-kernel time) each.
inline int direct_threads(double macs, int threads) { return useful_threads(macs, threads, 4e6); }

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
inline double float_lanes(cpu::isa i) noexcept { return i == cpu::isa::avx512 ? 16 : i == cpu::isa::avx2 ? 8 : 1; }

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
  const double lanes = float_lanes(i);
  const double row = double(p.cols.out), filled = row / (std::ceil(row / lanes) * lanes);
  const double shared_rows = p.rows.dilation % p.rows.stride == 0 ? 1.0 : 0.6;
  // Dense and grouped batches sum channels in each output plane; depthwise ones (one channel per
  // filter) do not. Each kind is measured apart.
  const direct_costs::isa_rates& r = m.of(i);
  const double kind_scale = p.c_per_group() == 1                         ? r.depthwise_scale
                            : p.groups > 1 && r.grouped_scale.measured() ? r.grouped_scale
                                                                         : r.batch_scale;
  const double batch = (taps / (taps + 16)) / (taps / (taps + 30)) * filled * shared_rows * kind_scale;
  const double elems = double(p.n) * double(p.c) * double(p.rows.extent) * double(p.cols.extent);
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

// --- Calibration -----------------------------------------------------------------------------------

/// The instruction sets a calibration measures: the best this CPU runs, and AVX2 beside AVX-512
/// (unless quick).
inline std::vector<cpu::isa> direct_measured_sets(const calibration& c) {
  std::vector<cpu::isa> sets{cpu::best_instruction_set()};
  if (sets[0] == cpu::isa::avx512 && !c.quick()) sets.push_back(cpu::isa::avx2);
  return sets;
}

/// The single-plane rates of one instruction set: k x k kernels on images sized to ~2e8
/// multiply-adds (quick: fewer kernels, ~2e7), 'same' with a zero border, on 1 thread and on all.
/// Images leave the caches, as real ones do (the rate drops by ~20% there). One thread and all are
/// timed in alternation, so that their ratio holds while the machine drifts, in three passes over
/// the kernels, whose median per kernel outlasts a neighbour taking the second core for a few
/// seconds.
inline void measure_direct_rates(calibration& c, cpu::isa i, direct_costs::isa_rates& into) {
  static constexpr int quick_sizes[] = {3, 7, 15, 31};
  constexpr int passes = 3;
  tuning t;
  t.instruction_set = i;
  std::vector<std::size_t> kernels;  // indices into kernel_sizes
  for (std::size_t k = 0; k < direct_costs::kernel_count; ++k)
    if (!c.quick() || std::count(std::begin(quick_sizes), std::end(quick_sizes), direct_costs::kernel_sizes[k]) > 0)
      kernels.push_back(k);
  const std::vector<int> thread_counts = c.threads() > 1 ? std::vector<int>{1, c.threads()} : std::vector<int>{1};
  std::vector<std::vector<conv_problem>> problems;  // [kernel][thread count]
  for (std::size_t k : kernels) {
    const int size = direct_costs::kernel_sizes[k];
    const double target = c.quick() ? 2e7 : 2e8;
    const index_t n = std::clamp<index_t>(index_t(std::sqrt(target / (double(size) * size))), 128, 3000);
    problems.emplace_back();
    for (int threads : thread_counts)
      problems.back().push_back(timed_problem::image(n).kernel(size).on(algorithm::direct, threads).with(t).make());
  }
  std::vector<std::vector<std::vector<double>>> seconds(
      problems.size(), std::vector<std::vector<double>>(thread_counts.size()));  // [kernel][thread count][pass]
  for (int pass = 0; pass < passes; ++pass)
    for (std::size_t m = 0; m < problems.size(); ++m) {
      const std::vector<double> s = c.seconds(problems[m], nullptr, 1.0 / passes);
      for (std::size_t j = 0; j < s.size(); ++j) seconds[m][j].push_back(s[j]);
    }
  for (std::size_t m = 0; m < problems.size(); ++m) {
    const std::size_t k = kernels[m];
    into.one_thread[k].measure(problems[m][0].macs() / calibration::median(seconds[m][0]));
    if (thread_counts.size() > 1)
      into.all_threads[k].measure(problems[m][1].macs() / calibration::median(seconds[m][1]));
  }
}

/// The batch paths' scales of one instruction set (dense, depthwise, grouped layers), each the model
/// with scale 1 (and `so_far`'s rates) against a measured layer.
inline void measure_direct_batches(calibration& c, cpu::isa i, direct_costs& so_far) {
  tuning t;
  t.instruction_set = i;
  direct_costs::isa_rates& r = so_far.of(i);
  for (constant* s : {&r.batch_scale, &r.depthwise_scale, &r.grouped_scale}) s->measure(1.0);
  const auto scale = [&](const timed_problem& layer) {
    const conv_problem p = timed_problem(layer).on(algorithm::direct, c.threads()).with(t).make();
    return (direct_dense_cost(p, so_far) - so_far.call_s) / c.seconds(p);
  };
  const double dense = scale(timed_problem::layer(2, 16, 16).planes(56).kernel(3));
  const double depthwise = scale(timed_problem::layer(1, 256, 256).planes(14).kernel(3).grouped(256));
  const double grouped = scale(timed_problem::layer(2, 64, 64).planes(32).kernel(3).grouped(16));
  r.batch_scale.measure(dense);
  r.depthwise_scale.measure(depthwise);
  r.grouped_scale.measure(grouped);
}

/// The separable path's 1-D passes: a 15 x 15 Gaussian (rank 1) on a 1000 x 1000 image, 1 and all
/// threads, alternated.
inline void measure_direct_separable(calibration& c, cpu::isa i, direct_costs::isa_rates& into) {
  std::vector<float> gauss(15 * 15);
  for (int u = 0; u < 15; ++u)
    for (int v = 0; v < 15; ++v)
      gauss[std::size_t(u * 15 + v)] = float(std::exp(-((u - 7) * (u - 7) + (v - 7) * (v - 7)) / 18.0));
  tuning t;
  t.instruction_set = i;
  std::vector<conv_problem> problems;
  for (int threads : {1, c.threads()}) {
    if (threads == 1 && !problems.empty()) break;  // one thread in all
    problems.push_back(timed_problem::image(1000).kernel(15).on(algorithm::direct, threads).with(t).make());
    problems.back().kernel_rank = 1;
  }
  const std::vector<double> s = c.seconds(problems, gauss.data());
  into.separable_one_thread.measure(direct_separable_macs(problems[0]) / s[0]);
  if (s.size() > 1) into.separable_all_threads.measure(direct_separable_macs(problems[1]) / s[1]);
}

/// Every constant of the direct model, measured on this machine.
inline direct_costs measure_direct(calibration& c) {
  direct_costs m;
  m.threads.measure(c.threads());
  for (cpu::isa i : direct_measured_sets(c)) {
    c.step(std::string("direct (") + cpu::to_string(i) + "): kernels 1..31, 1 and " + std::to_string(c.threads()) +
           " threads; layers; separable passes");
    measure_direct_rates(c, i, m.of(i));
    measure_direct_batches(c, i, m);
    measure_direct_separable(c, i, m.of(i));
  }
  m.call_s.measure(c.seconds(timed_problem::image(16).kernel(3).on(algorithm::direct, 1).make()));
  return m;
}

/// The direct model's rules between constants: all threads at least 0.75 and at most 1.25 x threads
/// times one thread's rate (a busy machine measured two threads 20x slower than one), and one
/// thread's rate within 1/16..16 times the built-in rate of its instruction set and kernel.
inline std::vector<const constant*> direct_broken_rules(const direct_costs& m) {
  std::vector<const constant*> broken;
  const double n = m.threads;
  const auto scales_with_threads = [&](const constant& one, const constant& all) {
    if (one.measured() && all.measured() && !(all >= 0.75 * one && all <= 1.25 * n * one)) broken.push_back(&all);
  };
  for (const auto& entry : enum_table<cpu::isa>::entries) {
    const direct_costs::isa_rates& r = m.of(entry.value);
    for (std::size_t k = 0; k < direct_costs::kernel_count; ++k) {
      const double taps = double(direct_costs::kernel_sizes[k]) * direct_costs::kernel_sizes[k];
      const double builtin = direct_default_rate(entry.value, taps);
      if (r.one_thread[k].measured() && !(r.one_thread[k] >= builtin / 16 && r.one_thread[k] <= builtin * 16))
        broken.push_back(&r.one_thread[k]);
      scales_with_threads(r.one_thread[k], r.all_threads[k]);
    }
    scales_with_threads(r.separable_one_thread, r.separable_all_threads);
  }
  return broken;
}

inline void direct_calibrate(calibration& c, cost_profile& into, const cost_profile& previous) {
  into.direct = measure_plausibly(
      c, previous.direct, [&] { return measure_direct(c); }, &direct_broken_rules);
}

}  // namespace detail
CONVKIT_NAMESPACE_END
