// The front doors' argument handling, written once: a single image's or a layer's arguments turned
// into a validated problem (detail::make_problem does the validation), and the checks of the views a
// call or plan is given (shapes, aliasing, the bias's length).
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "../image.hpp"
#include "../layer_options.hpp"
#include "../options.hpp"
#include "../view.hpp"
#include "../view4d.hpp"
#include "fft_accuracy.hpp"
#include "prepared.hpp"
#include "problem.hpp"
#include "separable.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// The rank of every one of `filters` kernels of p (contiguous, rows.kernel x cols.kernel each) as
/// separable.hpp finds it, the largest; 0 if one is dense, or the problem does not qualify.
template <class T>
int kernel_rank_of(const conv_problem& p, const T* weights, index_t filters, index_t stride) {
  const index_t r = p.rows.kernel, s = p.cols.kernel;
  if (p.tune.separable == separable_use::never || useful_rank(r, s) == 0 || p.sparse()) return 0;
  if (p.algo != algorithm::automatic && p.algo != algorithm::direct) return 0;  // only direct runs it
  const double tolerance = p.tune.separable_tolerance > 0 ? p.tune.separable_tolerance : rounding_tolerance<T>();
  // The accuracy contract bounds each output by |x| * |k| there: passes whose terms reproduce every
  // tap, zeros included, to a few roundings of its own (not of the kernel's norm), and whose terms'
  // magnitudes sum to at most twice the tap's, are bounded so; other factorisations run dense.
  // (A tolerance above the rounding level is an approximation the caller asked for: not held to it.)
  const bool componentwise = p.componentwise && !(p.tune.separable_tolerance > 0);
  int rank = 0;
  for (index_t f = 0; f < filters; ++f) {
    const auto factors = kernel_factors_of(weights + f * stride, r, s, tolerance, useful_rank(r, s));
    if (factors->rank == 0) return 0;
    if (componentwise && !factors_componentwise(*factors, weights + f * stride, 8.0 * rounding_unit<T>())) return 0;
    rank = std::max(rank, factors->rank);
  }
  return rank;
}

/// Validates a single-image request. (Its data are scanned for NaN and Inf later, and only if the
/// choice of backend depends on it: choice.hpp.)
template <class T>
conv_problem image_problem(index_t rows, index_t cols, view2d<const T> kernel, const options& opt, bool amortised) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "convkit computes in float or double");
  if (kernel.empty()) throw error("kernel is empty (" + shape_str(kernel.shape()) + ")");
  conv_problem p = make_problem(image_request(rows, cols, kernel.rows(), kernel.cols(), opt, sizeof(T)));
  p.amortised = amortised;
  const array2d<T> taps = correlation_order(kernel, true);
  p.kernel_rank = kernel_rank_of(p, taps.data(), 1, 0);
  p.kernel_spread = kernel_l1_over_l2(taps.data(), taps.size());
  bool positive = false, negative = false;
  for (index_t i = 0; i < taps.size(); ++i) {
    positive = positive || taps.data()[i] > 0;
    negative = negative || taps.data()[i] < 0;
  }
  p.one_signed_weights = !(positive && negative);
  return p;
}

template <class T>
void check_call(view2d<const T> input, view2d<const T> out, shape2d in_shape, shape2d out_shape) {
  if (input.shape() != in_shape)
    throw error("input is " + shape_str(input.shape()) + ", expected " + shape_str(in_shape));
  if (out.shape() != out_shape) throw error("out is " + shape_str(out.shape()) + ", expected " + shape_str(out_shape));
  if (overlaps(input, out)) throw error("out aliases input: convolution cannot run in place");
}

/// Validates a layer request (its data are scanned later, where needed, like an image's).
template <class T>
conv_problem layer_problem(shape4d input_shape, view4d<const T> weights, const T* bias, const layer_options& opt,
                           bool amortised) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "convkit computes in float or double");
  conv_problem p = make_problem(layer_request(input_shape, weights.shape(), bias != nullptr, opt, sizeof(T)));
  p.amortised = amortised;
  if (p.c_per_group() == 1)  // depthwise: each filter is one plane, which may be separable
    p.kernel_rank = kernel_rank_of(p, weights.data(), p.k, p.rows.kernel * p.cols.kernel);
  return p;
}

template <class T>
void check_layer_call(view4d<const T> input, view4d<const T> out, shape4d in_shape, shape4d out_shape) {
  if (input.shape() != in_shape)
    throw error("input is " + to_string(input.shape()) + ", expected " + to_string(in_shape));
  if (out.shape() != out_shape)
    throw error("out is " + to_string(out.shape()) + ", expected [N, K, OH, OW] = " + to_string(out_shape));
  if (overlaps(input.data(), input.size(), out.data(), out.size()))
    throw error("out aliases input: convolution cannot run in place");
}

inline void check_bias_length(bool has_bias, index_t bias_length, index_t filters) {
  const index_t want = has_bias ? filters : 0;
  if (bias_length != want)
    throw error("bias has " + std::to_string(bias_length) + " values, expected " + std::to_string(want) +
                (has_bias ? " (K = weights.n())" : " (bias is null)"));
}

template <class T>
void check_layer_parameters(view4d<const T> weights, const T* bias, view4d<const T> out) {
  if (overlaps(weights.data(), weights.size(), out.data(), out.size())) throw error("out aliases weights");
  if (bias != nullptr && overlaps(bias, weights.n(), out.data(), out.size())) throw error("out aliases bias");
}
// --- Images of pixels (image.hpp) ---------------------------------------------------------------------

/// The type an image call computes in: double where its input or output is double, else float (a
/// double kernel is rounded to float then: its error stays within float's rounding of the sums).
template <class P, class Q>
using pixel_compute_t = std::conditional_t<std::is_same_v<P, double> || std::is_same_v<Q, double>, double, float>;

template <class P, class K, class Q>
constexpr void check_image_types() {
  static_assert(is_pixel_v<P> && is_pixel_v<Q>,
                "convkit::conv2d: pixels are std::uint8_t, std::uint16_t, std::int16_t, float or double");
  static_assert(std::is_same_v<K, float> || std::is_same_v<K, double>, "convkit::conv2d: kernels are float or double");
}

/// Whether every tap of `kernel` is an integer.
template <class K>
bool integer_valued(view2d<const K> kernel) noexcept {
  for (index_t r = 0; r < kernel.rows(); ++r)
    for (index_t c = 0; c < kernel.cols(); ++c)
      if (!(std::floor(kernel(r, c)) == kernel(r, c))) return false;
  return true;
}

/// Integer pixels in and out with an integer-valued kernel (and an integer border value) are
/// computed exactly: by direct sums (no transform, no low-rank factors), every partial sum an
/// integer that T holds exactly while the sum of |taps| times the largest |pixel| stays below
/// 2^(T's mantissa digits).
template <class P, class Q, class K>
bool computes_exactly(view2d<const K> kernel, const options& opt) noexcept {
  if constexpr (!std::is_integral_v<P> || !std::is_integral_v<Q>) {
    return false;
  } else {
    return integer_valued(kernel) && (opt.edge != border::constant || std::floor(opt.edge_value) == opt.edge_value);
  }
}
template <class T, class P, class K>
bool exact_in(view2d<const K> kernel) noexcept {
  double taps = 0;
  for (index_t r = 0; r < kernel.rows(); ++r)
    for (index_t c = 0; c < kernel.cols(); ++c) taps += std::abs(double(kernel(r, c)));
  const double largest = std::max(-double(std::numeric_limits<P>::lowest()), double(std::numeric_limits<P>::max()));
  return taps * largest < std::ldexp(1.0, std::numeric_limits<T>::digits);
}

/// The problem of an exact computation (computes_exactly): direct sums of the kernel as given.
inline void make_exact(conv_problem& p) noexcept {
  if (p.algo == algorithm::automatic) p.algo = algorithm::direct;
  p.tune.separable = separable_use::never;
  p.kernel_rank = 0;
}

template <class P, class Q>
void check_image_call(image_view<const P> input, image_view<const Q> out, shape2d in_shape, shape2d out_shape) {
  if (input.shape() != in_shape)
    throw error("input is " + shape_str(input.shape()) + ", expected " + shape_str(in_shape));
  if (out.shape() != out_shape) throw error("out is " + shape_str(out.shape()) + ", expected " + shape_str(out_shape));
  if (out.channels() != input.channels())
    throw error("out has " + std::to_string(out.channels()) + " channels, input " + std::to_string(input.channels()));
  if (overlaps(input, out)) throw error("out aliases input: convolution cannot run in place");
}

/// `kernel` in T, as given.
template <class T, class K>
array2d<T> kernel_in(view2d<const K> kernel) {
  array2d<T> k(kernel.rows(), kernel.cols());
  for (index_t r = 0; r < k.rows(); ++r)
    for (index_t c = 0; c < k.cols(); ++c) k(r, c) = T(kernel(r, c));
  return k;
}
}  // namespace detail
CONVKIT_NAMESPACE_END
