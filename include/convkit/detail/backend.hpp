// The contract between the front door (conv2d, plan) and the backends.
//
// A backend is a row in a small run-time table: its algorithm, the CMake target that provides it, a
// cost estimate, and factories that build an executor for one validated problem. Backend headers
// add their row when they are included (an inline variable initialised at start-up), so which
// backends exist is a property of the program, not of a macro seen by one translation unit: the
// API is the same everywhere, and nothing above backends/ names FFTW, BLAS or CUDA.
//
// Layers (layer_options.hpp) have their own problem, executor and factories in the same row. A
// backend that does not compute layers leaves layer_cost and the layer factories null; dispatch
// then never picks it for a layer, and naming it explicitly throws convkit::unavailable.
#pragma once

#include <array>
#include <limits>
#include <memory>

#include "../layer_options.hpp"
#include "../options.hpp"
#include "../view.hpp"
#include "../view4d.hpp"

namespace convkit::detail {

/// A validated single-image request.
struct problem {
  geometry geo;
  options opt;       ///< threads resolved to >= 1; algo is what the caller asked for
  bool finite = true;  ///< no NaN or Inf in the kernel (and in the input, when it is known)
  /// A plan: the executor runs many times, so what a backend does once when it is made (kernel
  /// spectra, GPU set-up) is left out of the cost per call.
  bool reused = false;
  index k_rows() const noexcept { return geo.rows.kernel; }
  index k_cols() const noexcept { return geo.cols.kernel; }
  /// Multiply-adds of a direct evaluation: one per kernel tap per output element.
  double macs() const noexcept {
    return double(geo.rows.out) * double(geo.cols.out) * double(geo.rows.kernel) * double(geo.cols.kernel);
  }
};

/// One prepared convolution: owns its kernel copy and workspace; allocates nothing in execute().
template <class T>
class executor {
 public:
  virtual ~executor() = default;
  /// `in` is geo.rows.in x geo.cols.in and `out` geo.out(); the caller has checked shapes and aliasing.
  virtual void execute(view2d<const T> in, view2d<T> out) = 0;
};

template <class T>
using executor_factory = std::unique_ptr<executor<T>> (*)(const problem&, view2d<const T> kernel);

/// A validated layer request.
struct layer_problem {
  layer_geometry geo;
  layer_options opt;     ///< threads resolved to >= 1; algo is what the caller asked for
  bool finite = true;    ///< no NaN or Inf in the weights (and in the input, when it is known)
  bool reused = false;   ///< a layer_plan: as problem::reused
  /// Multiply-adds of a direct evaluation: N * K * OH * OW outputs of C/groups * R * S taps each.
  double macs() const noexcept {
    return double(geo.n) * double(geo.k) * double(geo.rows.out) * double(geo.cols.out) * double(geo.c_per_group()) *
           double(geo.rows.kernel) * double(geo.cols.kernel);
  }
};

/// One prepared layer: owns its copy of the weights and bias and its workspace; allocates nothing
/// in execute().
template <class T>
class layer_executor {
 public:
  virtual ~layer_executor() = default;
  /// `in` is geo.input() and `out` geo.out(); the caller has checked shapes and aliasing.
  virtual void execute(view4d<const T> in, view4d<T> out) = 0;
};

/// `bias` is null or points to geo.k values.
template <class T>
using layer_executor_factory = std::unique_ptr<layer_executor<T>> (*)(const layer_problem&, view4d<const T> weights,
                                                                      const T* bias);

struct backend {
  algorithm algo;
  const char* target;                      ///< the CMake target that provides it
  double (*cost)(const problem&);          ///< estimated seconds; +inf if it should not serve the problem
  executor_factory<float> make_float;
  executor_factory<double> make_double;
  // Layers: all three null for a backend that does not compute them.
  double (*layer_cost)(const layer_problem&) = nullptr;  ///< like cost
  layer_executor_factory<float> make_layer_float = nullptr;
  layer_executor_factory<double> make_layer_double = nullptr;

  template <class T>
  executor_factory<T> factory() const noexcept {
    if constexpr (std::is_same_v<T, float>) return make_float; else return make_double;
  }
  template <class T>
  layer_executor_factory<T> layer_factory() const noexcept {
    if constexpr (std::is_same_v<T, float>) return make_layer_float; else return make_layer_double;
  }
  bool computes_layers() const noexcept { return layer_cost && make_layer_float && make_layer_double; }
};

inline constexpr double never = std::numeric_limits<double>::infinity();

/// The table of backends in this program, indexed by algorithm.
inline std::array<const backend*, 5>& backend_table() noexcept {
  static std::array<const backend*, 5> table{};
  return table;
}

/// Called (once per backend) from the initialiser of an inline variable in each backend header.
inline bool register_backend(const backend& b) noexcept {
  backend_table()[static_cast<std::size_t>(b.algo)] = &b;
  return true;
}

}  // namespace convkit::detail
