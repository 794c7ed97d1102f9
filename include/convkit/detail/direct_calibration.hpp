// The direct backend's calibration: its cost model's constants (direct_cost.hpp) measured on this
// machine. calibrate.hpp includes it, which registers it (a program that never calibrates never
// compiles it).
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "calibration.hpp"
#include "direct_cost.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

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

/// The layer path's scales of one instruction set (dense, grouped and depthwise layers), each the model
/// with scale 1 (and `so_far`'s rates) against a measured layer.
inline void measure_direct_batches(calibration& c, cpu::isa i, direct_costs& so_far) {
  tuning t;
  t.instruction_set = i;
  direct_costs::isa_rates& r = so_far.of(i);
  for (constant* s : {&r.layer_scale, &r.grouped_layer_scale, &r.depthwise_layer_scale}) s->measure(1.0);
  const auto scale = [&](const timed_problem& layer) {
    const conv_problem p = timed_problem(layer).on(algorithm::direct, c.threads()).with(t).make();
    return (direct_dense_cost(p, so_far) - so_far.call_s) / c.seconds(p);
  };
  const double dense = scale(timed_problem::layer(2, 16, 16).planes(56).kernel(3));
  const double depthwise = scale(timed_problem::layer(1, 256, 256).planes(14).kernel(3).grouped(256));
  const double grouped = scale(timed_problem::layer(2, 64, 64).planes(32).kernel(3).grouped(16));
  r.layer_scale.measure(dense);
  r.depthwise_layer_scale.measure(depthwise);
  r.grouped_layer_scale.measure(grouped);
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

inline const bool direct_calibration_registered = register_calibration(algorithm::direct, &direct_calibrate);

}  // namespace detail
CONVKIT_NAMESPACE_END
