// The im2col backend's calibration: its cost model's constants (im2col_cost.hpp) measured on this
// machine with the BLAS it links. calibrate.hpp includes it where the program has a BLAS, which
// registers it.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "calibration.hpp"
#include "im2col_cost.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// Every constant of the im2col model, on one thread, with OpenBLAS's threads as the process runs
/// them (tuning::single_threaded_blas's default): the GEMM rate on a 1x1 layer (no lowering: 64
/// filters x 64 channels x 56 x 56 positions); the lowering cost per column-matrix element from a
/// 3x3 layer (with what a lowered GEMM loses against the 1x1 one, a deep column matrix packed by the
/// BLAS: 128 -> 128 channels, 28 x 28); a tiny call's time; the matrix-vector rate from a single
/// image (512 x 512, 5 x 5); a GEMM call's from a depthwise layer (256 groups of one channel and one
/// filter, 14 x 14); a grouped layer's scale against the model.
inline im2col_costs measure_im2col(calibration& c) {
  c.step("im2col: GEMM rate and lowering cost, 1 thread");
  im2col_costs m;
  cost_profile so_far;
  const auto on_one = [](timed_problem q) { return q.on(algorithm::im2col, 1).make(); };
  const conv_problem gemm = on_one(timed_problem::layer(1, 64, 64).planes(56).kernel(1));
  const double rows = double(gemm.k_per_group());
  m.gemm_macs_per_s.measure(gemm.macs() / c.seconds(gemm) / (rows / (rows + 12)));
  const conv_problem lowering = on_one(timed_problem::layer(1, 128, 128).planes(28).kernel(3));
  const double elements = double(lowering.c * 9) * double(lowering.rows.out * lowering.cols.out);
  const double gemm_part = lowering.macs() / (m.gemm_macs_per_s * rows / (rows + 12));
  m.lower_s.measure(std::max(1e-12, (c.seconds(lowering) - gemm_part) / elements));
  m.call_s.measure(c.seconds(on_one(timed_problem::image(16).kernel(3))));
  const conv_problem image = on_one(timed_problem::image(512).kernel(5));
  const double image_lowered = double(image.rows.out) * double(image.cols.out) * 25;
  m.vector_macs_per_s.measure(image.macs() / std::max(1e-9, c.seconds(image) - m.call_s - image_lowered * m.lower_s));
  so_far.im2col = m;
  so_far.im2col.gemm_call_s.measure(0.0);
  const conv_problem depthwise = on_one(timed_problem::layer(1, 256, 256).planes(14).kernel(3).grouped(256));
  m.gemm_call_s.measure(std::max(0.0, (c.seconds(depthwise) - im2col_cost(depthwise, so_far)) / 256.0));
  so_far.im2col = m;
  so_far.im2col.grouped_scale.measure(1.0);
  const conv_problem grouped = on_one(timed_problem::layer(2, 64, 64).planes(32).kernel(3).grouped(16));
  m.grouped_scale.measure(std::max(1e-3, (c.seconds(grouped) - m.call_s) / (im2col_cost(grouped, so_far) - m.call_s)));
  return m;
}

/// The im2col model has no rule between its constants beyond their ranges.
inline std::vector<const constant*> im2col_broken_rules(const im2col_costs&) { return {}; }

inline void im2col_calibrate(calibration& c, cost_profile& into, const cost_profile& previous) {
  into.im2col = measure_plausibly(
      c, previous.im2col, [&] { return measure_im2col(c); }, &im2col_broken_rules);
}

inline const bool im2col_calibration_registered = register_calibration(algorithm::im2col, &im2col_calibrate);

}  // namespace detail
CONVKIT_NAMESPACE_END
