// convkit/plan.hpp - a convolution prepared once and applied to many inputs.
//
// plan<T> validates the shapes and options, chooses the backend, copies the kernel and allocates
// every buffer (FFT plans and kernel spectra too) at construction; execute() then allocates nothing.
// It also executes on images of pixels (image.hpp, as conv2d does): computed in T, band by band; the
// first such execute of a channel count makes that path's executors and buffers, and later ones
// allocate nothing. An
// integer-valued kernel gives exact integer outputs while its sum of |taps| times the largest
// |pixel| stays below 2^24 in a plan<float> (any 8-bit image with sum |taps| < 65794), 2^53 in a
// plan<double>.
// The plan keeps its options, tuning included: later changes to the process defaults do not reach
// it. A plan is movable, not copyable, and not safe to execute from two threads at once (it owns one
// workspace): give each thread its own plan. A moved-from plan throws convkit::error on use.
#pragma once

#include "version.hpp"

#include <array>
#include <memory>
#include <string>
#include <type_traits>

#include "detail/arguments.hpp"
#include "detail/compiled.hpp"
#include "detail/pixel_bands.hpp"
#include "detail/prepared.hpp"
#include "image.hpp"
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
      : plan(detail::image_problem<T>(rows, cols, kernel, opt, true), kernel, opt) {}

  plan(plan&&) noexcept = default;
  plan& operator=(plan&&) noexcept = default;
  plan(const plan&) = delete;
  plan& operator=(const plan&) = delete;

  /// out = input (*) kernel. input must be input_shape(), out output_shape(), and they must not overlap.
  void execute(view2d<const T> input, view2d<T> out) {
    detail::check_call<T>(input, out, input_shape(), output_shape());
    core_.run(detail::planes_of(input), detail::planes_of(out));
  }

  /// out = every channel of input filtered with the kernel (conv2d's image call). input must be
  /// input_shape(), out output_shape() with input's channels, and they must not overlap.
  template <class P, class Q>
  void execute(image_view<const P> input, image_view<Q> out) {
    detail::check_image_types<P, T, Q>();
    detail::check_image_call<P, Q>(input, out, input_shape(), output_shape());
    if constexpr (std::is_same_v<P, T> && std::is_same_v<Q, T>) {
      if (input.channels() == 1)
        return core_.run({input.data(), 0, 0, input.row_stride()}, {out.data(), 0, 0, out.row_stride()});
    }
    const bool exact = detail::computes_exactly<P, Q, T>(weights_, options_);
    std::unique_ptr<detail::pixel_bands<T>>& bands =
        pixels_[std::size_t((exact ? max_channels : 0) + input.channels() - 1)];
    if (!bands) {
      detail::conv_problem p = core_.problem();
      if (exact) detail::make_exact(p);
      bands = std::make_unique<detail::pixel_bands<T>>(p, weights_.data(), input.channels());
    }
    bands->run(input, out);
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
  plan(const detail::conv_problem& p, view2d<const T> kernel, const options& opt)
      : options_(opt), weights_(detail::correlation_order(kernel, opt.correlate)), core_(p, weights_.data(), nullptr) {}

  options options_;
  array2d<T> weights_;  // in correlation order
  detail::prepared<T> core_;
  // Made by the first image execute of each channel count, exactly computed (integer pixels with an
  // integer-valued kernel) or not.
  std::array<std::unique_ptr<detail::pixel_bands<T>>, 2 * max_channels> pixels_;
};

CONVKIT_NAMESPACE_END
