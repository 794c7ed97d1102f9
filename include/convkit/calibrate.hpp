// convkit/calibrate.hpp - measuring this machine for algorithm::automatic.
//
//   calibrate(options)   times every backend in this program on problems chosen to expose its cost
//                        model's constants (cost_models.hpp: the direct micro-kernel's rate per
//                        instruction set, kernel size and thread count; FFTW's transform times by
//                        length, cache spill and threading; im2col's GEMM and lowering rates; each
//                        batch path's scale; cuFFT's where a GPU exists) and returns them as a
//                        cost_profile for this machine's fingerprint. Under a minute by default, a
//                        few seconds with quick.
//   plausibility         a constant measured outside its plausible range (or breaking a rule between
//                        constants, such as two threads slower than one) is measured again; if it
//                        fails again, the calibration keeps the previous profile's value (else the
//                        built-in one) and reports it: a machine too busy to measure leaves no garbage.
//   write_profile(p)     (profile_file.hpp) saves it where automatic finds it; convkit_calibrate does both.
// Each backend's measurements are in its own header (detail/<backend>_calibration.hpp), included
// here for the backends of this build's targets: only a file that includes calibrate.hpp compiles them.
// im2col is measured the way this process runs OpenBLAS (tuning::single_threaded_blas's default):
// convkit_calibrate asks for a single-threaded OpenBLAS, as programs that run im2col on convkit's
// threads do.
#pragma once

#include "version.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "detail/backend.hpp"
#include "detail/calibration.hpp"
#include "detail/direct_calibration.hpp"
#if defined(CONVKIT_HAS_FFTW)
#include "detail/fftw_calibration.hpp"
#endif
#if defined(CONVKIT_HAS_BLAS)
#include "detail/im2col_calibration.hpp"
#endif
#if defined(CONVKIT_HAS_CUFFT)
#include "detail/cufft_calibration.hpp"
#endif
#include "profile.hpp"
#include "profile_file.hpp"

CONVKIT_NAMESPACE_BEGIN

struct calibration_options {
  bool quick = false;  ///< a few seconds: fewer sizes and shorter timings
  int threads = 0;     ///< the thread count measured besides 1 (0: every hardware thread)
  /// Called with one line per step (e.g. to print progress); may be empty.
  std::function<void(const std::string&)> progress;
  /// What to keep where a measurement is implausible twice; null: the built-in constants.
  std::shared_ptr<const cost_profile> previous;
};

/// What a calibration measured, and what it did not believe.
struct calibration_result {
  cost_profile profile;
  /// Constants measured implausible twice, and the values kept instead (the machine was probably too
  /// busy to measure them).
  std::vector<rejected_constant> rejected;
};

/// Measures the cost-model constants of every backend in this program on this machine (see the top
/// of this file). Runs the backends; throws what they throw.
inline calibration_result calibrate(const calibration_options& opt = {}) {
  if (opt.threads < 0) throw error("calibration_options::threads must be >= 0, got " + std::to_string(opt.threads));
  calibration_result result{cost_profile(machine_fingerprint()), {}};
  for (const auto& [prefix, version] : program_libraries()) result.profile.set_library(prefix, version);
  const cost_profile builtin;
  const cost_profile& previous = opt.previous ? *opt.previous : builtin;
  detail::calibration c(opt.quick, detail::resolve_threads(opt.threads), opt.progress);
  for (const detail::backend* b : detail::backend_table())
    if (b != nullptr)
      if (const detail::calibrate_function f = detail::calibration_table()[static_cast<std::size_t>(b->algo)])
        f(c, result.profile, previous);
  result.rejected = c.rejected();
  return result;
}

CONVKIT_NAMESPACE_END
