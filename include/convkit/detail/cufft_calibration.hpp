// The cufft backend's calibration: its cost model's scale (cufft_cost.hpp) measured where a device is
// usable. calibrate.hpp includes it where the program has cuFFT, which registers it.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "calibration.hpp"
#include "cufft_cost.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// cufft_costs measured where a device is usable: one 2048 x 2048 tile (host views, transfers
/// included) against the model; without one, the built-in constants.
inline cufft_costs measure_cufft(calibration& c) {
  cufft_costs m;
  if (!cuda_unavailable_reason(active_cuda_api()).empty()) {
    c.step("cufft: no usable device, nothing to measure");
    return m;
  }
  c.step("cufft: one 2048 x 2048 tile, transfers included");
  tuning t;
  t.gpu_fft = gpu_fft_config{};
  t.gpu_fft->tiles = fft_tiling::never;
  const conv_problem p = timed_problem::image(2048).on(algorithm::cufft, 1).with(t).make();
  m.scale.measure(c.seconds(p) / fft::tile_seconds(2048, 2048, cufft_cost_model));
  return m;
}

/// The cufft model has no rule between its constants beyond their ranges.
inline std::vector<const constant*> cufft_broken_rules(const cufft_costs&) { return {}; }

inline void cufft_calibrate(calibration& c, cost_profile& into, const cost_profile& previous) {
  into.cufft = measure_plausibly(
      c, previous.cufft, [&] { return measure_cufft(c); }, &cufft_broken_rules);
}

inline const bool cufft_calibration_registered = register_calibration(algorithm::cufft, &cufft_calibrate);

}  // namespace detail
CONVKIT_NAMESPACE_END
