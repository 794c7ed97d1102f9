// The contract between the front doors (conv2d, plan, layer_plan) and the backends: one problem
// (problem.hpp), one executor interface, one cost function and one factory per backend.
//
// A backend is a row in a small run-time table: its algorithm, the CMake target that provides it, a
// cost estimate, and factories that build an executor for one validated problem. Backend headers
// add their row when they are included (an inline variable initialised at start-up), so which
// backends exist is a property of the program, not of a macro seen by one translation unit: the
// API is the same everywhere, and nothing above backends/ names FFTW, BLAS or CUDA. A backend may
// run special paths inside (a single plane, a 1x1 kernel); the contract it implements is this one.
#pragma once

#include "../version.hpp"

#include <array>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>

#include "../profile.hpp"
#include "problem.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// One prepared convolution: owns its copy of the weights and bias and its workspace; allocates
/// nothing in execute().
template <class T>
class executor {
 public:
  virtual ~executor() = default;
  /// `in` holds the problem's N x C input planes (rows.in x cols.in each), `out` its N x K output
  /// planes (rows.out x cols.out); the caller has checked shapes and aliasing.
  virtual void execute(planes<const T> in, planes<T> out) = 0;
  /// As execute(), but returns false, leaving `out` unspecified, if the input holds a NaN or Inf
  /// that spoiled more than the outputs that read it (or a transform overflowed). Backends that keep
  /// such values local (direct, im2col) never return false; FFT backends check within work they do
  /// anyway (FFTW: each transform's zero-frequency bin; cuFFT: each window as it is staged), so that
  /// the check costs no pass of its own.
  virtual bool execute_finite(planes<const T> in, planes<T> out) {
    execute(in, out);
    return true;
  }
};

/// Builds an executor. `weights` are K x C/groups x R x S contiguous values in correlation order;
/// `bias` is null or K values. Both are copied.
template <class T>
using executor_factory = std::unique_ptr<executor<T>> (*)(const conv_problem&, const T* weights, const T* bias);

struct backend {
  algorithm algo;
  /// Estimated seconds per call with the profile's constants (measured, else built in); never if it
  /// should not serve the problem.
  double (*cost)(const conv_problem&, const cost_profile&);
  executor_factory<float> make_float;
  executor_factory<double> make_double;
  /// Its library and version, "<prefix of its constants' names>=<version>", e.g. "fft=fftw-3.3.10"
  /// (constants measured with another version are not used); null: none.
  std::string (*library)() = nullptr;

  template <class T>
  executor_factory<T> factory() const noexcept {
    if constexpr (std::is_same_v<T, float>)
      return make_float;
    else
      return make_double;
  }
};

/// The cost of a backend that cannot or should not serve a problem.
inline constexpr double never = std::numeric_limits<double>::infinity();

/// The backends in this program, indexed by algorithm (automatic's slot stays empty).
using backend_array = std::array<const backend*, std::size(enum_table<algorithm>::entries)>;
#if !defined(CONVKIT_COMPILED)
inline backend_array& backend_table() noexcept {
  static backend_array table{};
  return table;
}
#else
backend_array& backend_table() noexcept;  // the compiled library's (detail/compiled.hpp), with its backends
#endif

/// Called (once per backend) from the initialiser of an inline variable in each backend header.
inline bool register_backend(const backend& b) {
  backend_table()[static_cast<std::size_t>(b.algo)] = &b;
  return true;
}

inline const char* target_of(algorithm a) noexcept {
  switch (a) {
    case algorithm::im2col: return "convkit::blas";
    case algorithm::fft: return "convkit::fftw";
    case algorithm::cufft: return "convkit::cufft";
    default: return "convkit::convkit";
  }
}

/// The backend of a named algorithm; convkit::unavailable (naming its CMake target) if this program
/// does not have it.
inline const backend& find_backend(algorithm a) {
  check_enum(a, "algo");
  if (a == algorithm::automatic) throw error("algo: algorithm::automatic is no backend");
  const backend* b = backend_table()[static_cast<std::size_t>(a)];
  if (b == nullptr)
    throw unavailable(std::string("algorithm::") + to_string(a) + " is not in this build: link the CMake target " +
                      target_of(a) + " and include <convkit/convkit.hpp>");
  return *b;
}

/// The cheapest backend for problem p by the cost models with `profile`'s constants.
inline const backend& cheapest_backend(const conv_problem& p, const cost_profile& profile) {
  const backend* best = nullptr;
  double best_cost = never;
  for (const backend* b : backend_table()) {
    if (b == nullptr) continue;
    const double c = b->cost(p, profile);
    if (best == nullptr || c < best_cost) {
      best = b;
      best_cost = c;
    }
  }
  if (best == nullptr)
    throw unavailable("no convolution backend is registered in this program: include <convkit/convkit.hpp>");
  return *best;
}

/// Decides the profile problem p is estimated and planned with, once, where it is not yet: its
/// tuning's, else the active one (tuning::profile). Plans do this when they are made; backends then
/// read only the problem (costs_of).
inline void resolve_profile(conv_problem& p) {
  if (p.tune.profile) return;
  p.tune.profile = active_profile();
  p.tune.profile_is_active = true;
}

/// The constants problem p is planned with: its resolved profile, or the built-in constants for a
/// problem made without one (a calibration's).
inline const cost_profile& costs_of(const conv_problem& p) {
  static const cost_profile builtin;
  return p.tune.profile ? *p.tune.profile : builtin;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
