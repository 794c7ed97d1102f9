// convkit/plan.hpp - a convolution prepared once and applied to many inputs.
//
// plan<T> validates the shapes and options, chooses the backend, copies the kernel and allocates
// every buffer (FFT plans and kernel spectra too) at construction; execute() then allocates nothing.
// The plan keeps its options, tuning included: later changes to the process defaults do not reach
// it. A plan is movable, not copyable, and not safe to execute from two threads at once (it owns one
// workspace): give each thread its own plan. A moved-from plan throws convkit::error on use.
#pragma once

#include "version.hpp"

#include <string>
#include <type_traits>

#include "detail/arguments.hpp"
#include "detail/prepared.hpp"
#include "options.hpp"
#include "view.hpp"

CONVKIT_NAMESPACE_BEGIN

template <class T>
class plan {
 public:
  /// Prepares the convolution of rows x cols inputs with `kernel` (copied; it need not outlive the plan).
  /// Throws convkit::error for bad shapes or options (see output_shape) and convkit::unavailable if
  /// options::algo names a backend this program does not have.
  plan(index_t rows, index_t cols, view2d<const T> kernel, const options& opt = {})
      : plan(detail::image_problem<T>(rows, cols, kernel, opt, true), kernel, opt.correlate) {}

  plan(plan&&) noexcept = default;
  plan& operator=(plan&&) noexcept = default;
  plan(const plan&) = delete;
  plan& operator=(const plan&) = delete;

  /// out = input (*) kernel. input must be input_shape(), out output_shape(), and they must not overlap.
  void execute(view2d<const T> input, view2d<T> out) {
    detail::check_call<T>(input, out, input_shape(), output_shape());
    core_.run(detail::planes_of(input), detail::planes_of(out));
  }

  /// Convenience: allocates and returns the output.
  array2d<T> operator()(view2d<const T> input) {
    array2d<T> out(output_shape().rows, output_shape().cols);
    execute(input, out.view());
    return out;
  }

  shape2d input_shape() const noexcept { return {core_.problem().rows.in, core_.problem().cols.in}; }
  shape2d output_shape() const noexcept { return core_.problem().out_plane(); }
  /// The backend that runs this plan; never algorithm::automatic.
  algorithm chosen() const noexcept { return core_.chosen(); }

 private:
  plan(const detail::conv_problem& p, view2d<const T> kernel, bool correlate)
      : core_(p, detail::correlation_order(kernel, correlate).data(), nullptr) {}

  detail::prepared<T> core_;
};

CONVKIT_NAMESPACE_END
