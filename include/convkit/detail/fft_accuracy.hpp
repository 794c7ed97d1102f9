// The accuracy contract (types.hpp, accuracy::componentwise) for FFT backends: the rounding bounds
// that decide, output by output, whether an FFT result is as accurate as the contract asks.
// Names no FFT library; docs/accuracy.md has the derivation and its assumptions.
//
//   direct      |fl(y_j) - y_j| <= gamma_m * (|x| * |k|)_j, m = R * S taps, gamma_m = m u / (1 - m u)
//               (any summation order, with or without FMA);
//   contract    |fl(y_j) - y_j| <= contract_multiple * gamma_m * (|x| * |k|)_j;
//   FFT tile    every output of an overlap-save tile of N = N_r * N_c reals obeys
//               |fl(y_j) - y_j| <= (3 gamma_F + 4 u) * ||x_window||_2 * ||k||_2 = E
//               ((2 gamma_F + 5 u) with a kernel spectrum computed in double),
//               gamma_F = 7 u log2 N, the transform's componentwise bound per element
//               (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., Thm 24.2, with
//               twiddle factors accurate to u); the three terms are the forward transform's, the
//               kernel spectrum's and the inverse transform's errors, 4u the product and scaling.
//   proof       (|x| * |k|)_j >= |y_j| >= |fl(y_j)| - E, so an output with
//               |fl(y_j)| >= E (1 + 1 / ((contract_multiple - 1) gamma_m)) (and second-order terms:
//               fft_accuracy_bounds::margin) keeps the contract; where that
//               fails, an FFT of |x| with |k| (whose error is bounded by the same E) may still prove
//               (|x| * |k|)_j large enough, and what neither proves is summed directly.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "checked.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// The contract's multiple of direct summation's bound.
inline constexpr double contract_multiple = 16.0;

/// An FFT's time under the contract relative to the same tiles without it: one-signed kernels (the
/// checks, and the outputs of dark regions summed directly: 1.2-1.35x measured on a star field and a
/// photograph with a disk), kernels of both signs (a second transform per tile: 2.0-2.1x on
/// random data). Measured on the 2-vCPU Xeon of cost_models.hpp, float, 2 threads.
inline constexpr double contract_one_signed_factor = 1.25;
inline constexpr double contract_two_signed_factor = 2.05;

/// E / (u ||x||_2 ||k||_2) for a transform of 2^log2n reals: 3 gamma_F + 4u, or 2 gamma_F + 5u with a
/// precise kernel spectrum, gamma_F = 7 u log2 N.
inline double error_coefficient(double log2n, bool precise_kernel) noexcept {
  return precise_kernel ? 14.0 * log2n + 5.0 : 21.0 * log2n + 4.0;
}

/// What an FFT tile must gather to apply the contract: the bounds for one kernel and transform size.
struct fft_accuracy_bounds {
  double error_per_norm = 0;  ///< E / ||x_window||_2
  double floor = 0;           ///< absolute error from underflow (gradual underflow adds at most this)
  double margin = 0;          ///< an output is proven where |fl(y_j)| >= E * margin

  /// `unit`: T's unit roundoff; `taps` = R * S; `kernel_norm2` = ||k||_2; `transform` = N_r * N_c;
  /// `tiny`: T's smallest subnormal; `precise_kernel`: the kernel spectrum was computed in double
  /// and rounded to T once (float plans), so that its error is u per element instead of gamma_F.
  static fft_accuracy_bounds make(double unit, index_t taps, double kernel_norm2, index_t transform, double tiny,
                                  bool precise_kernel) {
    fft_accuracy_bounds b;
    const double log2n = std::log2(double(std::max<index_t>(transform, 2)));
    // 1.01 covers the second-order terms (products of two rounding errors) of the first-order bound,
    // and a double-precision kernel spectrum's own error beside float's u.
    b.error_per_norm = 1.01 * error_coefficient(log2n, precise_kernel) * unit * kernel_norm2;
    b.floor = 8.0 * double(transform) * log2n * tiny * std::max(kernel_norm2, 1.0);
    const double m = double(taps);
    const double gamma_m = m * unit / (1.0 - std::min(m * unit, 0.5));
    // One of the contract's 16 covers the rounding of values added to the transform's results
    // (bright values set apart, fftw_image.hpp): an output's total error is then at most
    // E (1 + gamma_m) + gamma_m (|x| * |k|)_j.
    b.margin = (1.0 + gamma_m) * (1.0 + (1.0 + gamma_m) / ((contract_multiple - 1.0) * gamma_m));
    return b;
  }

  /// E for a window of squared norm `sum_squares` (computed in double) and largest magnitude
  /// `largest` over `elements` values; infinite where the norm is not known to be finite.
  double error(double sum_squares, double largest, index_t elements) const noexcept {
    double norm = std::sqrt(sum_squares);
    // Squares below double's normal range lose their bits: bound the norm by the largest value.
    if (sum_squares < 1e-280) norm = std::sqrt(double(elements)) * largest;
    if (!(norm <= std::numeric_limits<double>::max())) return std::numeric_limits<double>::infinity();
    return error_per_norm * norm + floor;
  }
};

/// The largest transform (N_r * N_c reals) on which an FFT keeps the contract for data of constant
/// magnitude, with a margin of 8 for the spread of natural and random data: E <= contract_multiple *
/// gamma_m * (|x| * |k|)_j / 8, where ||x||_2 = sqrt(N) |x| and (|x| * |k|)_j = |x| ||k||_1. (Margins
/// of 2, 4, 8 and 16 timed on random data, a photograph and a star field, 1000^2 to 2000^2,
/// kernels 31 to 51: 8 was fastest or within 10% of it on each. The margin is a double plan's; a
/// float plan's precise kernel spectrum makes it ~12 on the same tiles, which measured faster on a
/// star field and a photograph than tiles grown to margin 8.)
/// `l1_over_l2` = ||k||_1 / ||k||_2, between 1 (a single tap) and sqrt(m) (all taps equal). Larger
/// transforms would send even a flat image to direct summation; 0 where no transform can keep it.
inline index_t contract_transform_limit(index_t taps, double l1_over_l2) {
  const double bound = contract_multiple / 8.0 * double(taps) * l1_over_l2;
  const auto fits = [&](double n) { return error_coefficient(std::log2(n), false) * std::sqrt(n) <= bound; };
  if (!fits(4)) return 0;
  double n = 4;
  while (n < 1e15 && fits(2 * n)) n *= 2;
  return index_t(n);
}

/// ||k||_1 / ||k||_2 of n values, rounded down to a power of 2^(1/4) (it keys remembered choices)
/// and at least 1; sqrt(n) for an all-zero kernel (whose outputs every transform gets exactly).
template <class T>
double kernel_l1_over_l2(const T* k, index_t n) {
  double l1 = 0, l2 = 0;
  for (index_t i = 0; i < n; ++i) {
    const double v = std::abs(double(k[i]));
    l1 += v;
    l2 += v * v;
  }
  if (!(l1 <= std::numeric_limits<double>::max())) return 1.0;
  if (!(l2 > 0)) return std::exp2(std::floor(4.0 * std::log2(std::sqrt(double(n)))) / 4.0);
  const double r = l1 / std::sqrt(l2);
  return std::max(1.0, std::exp2(std::floor(4.0 * std::log2(r)) / 4.0));
}

}  // namespace detail
CONVKIT_NAMESPACE_END
