// convkit/plan.hpp - a convolution prepared once and applied to many inputs.
//
// plan<T> validates the shapes and options, chooses the backend, copies the kernel and allocates
// every buffer (FFT plans and kernel spectra too) at construction; execute() then allocates nothing.
// A plan is movable, not copyable, and not safe to execute from two threads at once (it owns one
// workspace): give each thread its own plan.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

#include "backends/direct.hpp"
#include "detail/backend.hpp"
#include "detail/threads.hpp"
#include "dispatch.hpp"
#include "options.hpp"
#include "view.hpp"

namespace convkit {

namespace detail {
/// True if no element is NaN or Inf. Tests the exponent bits rather than comparing values, so that
/// user code built with -ffast-math (which lets compilers assume NaN never occurs) still gets an answer.
template <class T>
bool all_finite(view2d<const T> v) noexcept {
  using bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr bits exponent = sizeof(T) == 4 ? bits(0x7f800000u) : bits(0x7ff0000000000000ull);
  for (index r = 0; r < v.rows(); ++r) {
    const T* p = v.row(r);
    bool special = false;  // an all-ones exponent: NaN or Inf
    for (index c = 0; c < v.cols(); ++c) {
      bits b;
      std::memcpy(&b, p + c, sizeof b);
      special |= (b & exponent) == exponent;
    }
    if (special) return false;
  }
  return true;
}

inline std::string shape_str(shape2d s) { return std::to_string(s.rows) + "x" + std::to_string(s.cols); }

/// Validates a single-image request and resolves its threads; `input` may be null (plans).
template <class T>
problem make_problem(index rows, index cols, view2d<const T> kernel, const options& opt, const view2d<const T>* input) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "convkit computes in float or double");
  if (kernel.empty()) throw error("kernel is empty (" + shape_str(kernel.shape()) + ")");
  problem p{make_geometry(rows, cols, kernel.rows(), kernel.cols(), opt), opt, true};
  p.opt.threads = resolve_threads(opt.threads);
  if (opt.algo == algorithm::automatic) p.finite = all_finite(kernel) && (input == nullptr || all_finite(*input));
  return p;
}

template <class T>
void check_call(view2d<const T> input, view2d<const T> out, shape2d in_shape, shape2d out_shape) {
  if (input.shape() != in_shape)
    throw error("input is " + shape_str(input.shape()) + ", expected " + shape_str(in_shape));
  if (out.shape() != out_shape) throw error("out is " + shape_str(out.shape()) + ", expected " + shape_str(out_shape));
  if (overlaps(input, out)) throw error("out aliases input: convolution cannot run in place");
}
}  // namespace detail

template <class T>
class plan {
 public:
  /// Prepares the convolution of rows x cols inputs with `kernel` (copied; it need not outlive the plan).
  /// Throws convkit::error for bad shapes or options (see output_shape) and convkit::unavailable if
  /// options::algo names a backend this program does not have.
  plan(index rows, index cols, view2d<const T> kernel, const options& opt = {})
      : problem_(detail::make_problem<T>(rows, cols, kernel, opt, nullptr)) {
    problem_.reused = true;
    const detail::backend& b = detail::choose_backend(problem_);
    chosen_ = b.algo;
    exec_ = b.factory<T>()(problem_, kernel);
  }

  plan(plan&&) noexcept = default;
  plan& operator=(plan&&) noexcept = default;
  plan(const plan&) = delete;
  plan& operator=(const plan&) = delete;

  /// out = input (*) kernel. input must be input_shape(), out output_shape(), and they must not overlap.
  void execute(view2d<const T> input, view2d<T> out) {
    detail::check_call<T>(input, out, input_shape(), output_shape());
    exec_->execute(input, out);
  }

  /// Convenience: allocates and returns the output.
  array2d<T> operator()(view2d<const T> input) {
    array2d<T> out(output_shape().rows, output_shape().cols);
    execute(input, out.view());
    return out;
  }

  shape2d input_shape() const noexcept { return {problem_.geo.rows.in, problem_.geo.cols.in}; }
  shape2d output_shape() const noexcept { return problem_.geo.out(); }
  /// The backend that runs this plan; never algorithm::automatic.
  algorithm chosen() const noexcept { return chosen_; }

 private:
  detail::problem problem_;
  algorithm chosen_ = algorithm::direct;
  std::unique_ptr<detail::executor<T>> exec_;
};

}  // namespace convkit
