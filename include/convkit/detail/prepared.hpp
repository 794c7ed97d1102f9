// The one plan type underneath both front doors: a validated problem, the backend chosen for it,
// and that backend's executor. plan<T> (single images) and layer_plan<T> (layers) are facades over
// it that check their own argument shapes; one-shot conv2d calls make one and run it once.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "../view.hpp"
#include "backend.hpp"

namespace convkit::detail {

/// True if none of the n values at p is NaN or Inf. Tests the exponent bits rather than comparing
/// values, so that code built with -ffast-math (which lets compilers assume NaN never occurs) still
/// gets an answer.
template <class T>
bool all_finite(const T* p, index_t n) noexcept {
  using bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr bits exponent = sizeof(T) == 4 ? bits(0x7f800000u) : bits(0x7ff0000000000000ull);
  bool special = false;  // an all-ones exponent: NaN or Inf
  for (index_t i = 0; i < n; ++i) {
    bits b;
    std::memcpy(&b, p + i, sizeof b);
    special |= (b & exponent) == exponent;
  }
  return !special;
}

template <class T>
bool all_finite(view2d<const T> v) noexcept {
  for (index_t r = 0; r < v.rows(); ++r)
    if (!all_finite(v.row(r), v.cols())) return false;
  return true;
}

/// The kernel in correlation order as a contiguous array: reversed in both axes for a convolution.
template <class T>
array2d<T> correlation_order(view2d<const T> kernel, bool correlate) {
  const index_t kh = kernel.rows(), kw = kernel.cols();
  array2d<T> k(kh, kw);
  for (index_t u = 0; u < kh; ++u)
    for (index_t v = 0; v < kw; ++v) k(u, v) = correlate ? kernel(u, v) : kernel(kh - 1 - u, kw - 1 - v);
  return k;
}

inline std::string shape_str(shape2d s) { return std::to_string(s.rows) + "x" + std::to_string(s.cols); }

template <class T>
class prepared {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "convkit computes in float or double");

 public:
  prepared() = default;
  /// `weights`: K x C/groups x R x S contiguous values in correlation order; `bias` null or K
  /// values. Both are copied. Throws convkit::unavailable if the problem names a backend this
  /// program lacks (or one without a device).
  prepared(const conv_problem& p, const T* weights, const T* bias) : problem_(p) {
    const backend& b = choose_backend(problem_);
    chosen_ = b.algo;
    executor_ = b.factory<T>()(problem_, weights, bias);
  }

  /// Runs the executor; the caller has checked shapes and aliasing.
  void run(planes<const T> in, planes<T> out) {
    if (!executor_) throw error("plan is empty: it was moved from");
    executor_->execute(in, out);
  }

  const conv_problem& problem() const noexcept { return problem_; }
  algorithm chosen() const noexcept { return chosen_; }

 private:
  conv_problem problem_;
  algorithm chosen_ = algorithm::direct;
  std::unique_ptr<executor<T>> executor_;
};

}  // namespace convkit::detail
