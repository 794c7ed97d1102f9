// convkit/calibrate.hpp - measuring this machine for algorithm::automatic.
//
//   calibrate(options)   times every backend in this program on problems chosen to expose its cost
//                        model's constants (the direct micro-kernel's rate per instruction set,
//                        kernel size and thread count; FFTW's transform times by length, cache spill
//                        and threading; im2col's GEMM and lowering rates; each batch path's scale;
//                        cuFFT's where a GPU exists) and returns them as a cost_profile for this
//                        machine's fingerprint. Under a minute by default, a few seconds with quick.
//   write_profile(p)     (profile.hpp) saves it where automatic finds it; convkit_calibrate does both.
// im2col is measured the way this process runs OpenBLAS (tuning::single_threaded_blas's default):
// convkit_calibrate asks for a single-threaded OpenBLAS, as programs that run im2col on convkit's
// threads do.
#pragma once

#include "version.hpp"

#include <functional>
#include <string>
#include <thread>

#include "detail/backend.hpp"
#include "detail/calibration.hpp"
#include "profile.hpp"

CONVKIT_NAMESPACE_BEGIN

struct calibration_options {
  bool quick = false;  ///< a few seconds: fewer sizes and shorter timings
  int threads = 0;     ///< the thread count measured besides 1 (0: every hardware thread)
  /// Called with one line per step (e.g. to print progress); may be empty.
  std::function<void(const std::string&)> progress;
};

/// Measures the cost-model constants of every backend in this program on this machine (see the top of
/// this file). Runs the backends; throws what they throw.
inline cost_profile calibrate(const calibration_options& opt = {}) {
  if (opt.threads < 0) throw error("calibration_options::threads must be >= 0, got " + std::to_string(opt.threads));
  cost_profile profile(machine_fingerprint());
  for (const auto& [prefix, version] : program_libraries()) profile.set_library(prefix, version);
  detail::calibration c(profile, opt.quick, detail::resolve_threads(opt.threads), opt.progress);
  for (const detail::backend* b : detail::backend_table())
    if (b != nullptr && b->calibrate != nullptr) b->calibrate(c);
  return profile;
}

CONVKIT_NAMESPACE_END
