// convkit/options.hpp - what a single-image convolution computes, and its shape.
//
// See types.hpp for the vocabulary. A single image is the problem of detail/problem.hpp with
// N = C = K = groups = 1: image_request() turns the options into that problem's request (the output
// mode becomes the paddings), and every entry point validates it through detail::make_problem.
#pragma once

#include "version.hpp"

#include "detail/problem.hpp"
#include "tuning.hpp"
#include "types.hpp"

CONVKIT_NAMESPACE_BEGIN

struct options {
  output mode = output::full;  ///< full, same or valid (SciPy's modes; see types.hpp)
  border edge = border::zero;  ///< how the input is extended beyond its edges (unused by output::valid)
  double edge_value = 0.0;     ///< for border::constant
  int stride_rows = 1, stride_cols = 1;
  int dilation_rows = 1, dilation_cols = 1;
  bool correlate = false;  ///< false: true convolution (kernel flipped); true: cross-correlation
  algorithm algo = algorithm::automatic;
  convkit::accuracy accuracy = convkit::accuracy::automatic;  ///< what an FFT may trade for speed (types.hpp)
  int threads = 0;                                            ///< 0 (or more than there are): all hardware threads
  tuning tune;  ///< backend settings for this call or plan (tuning.hpp); unset fields: the defaults
};

namespace detail {
inline constexpr axis_names image_axes[2] = {{"rows", "input rows", "kernel rows", "rows", "kernel rows", "padding"},
                                             {"cols", "input cols", "kernel cols", "cols", "kernel cols", "padding"}};

/// The request of a single-image convolution of rows x cols with a k_rows x k_cols kernel.
inline problem_request image_request(index_t rows, index_t cols, index_t k_rows, index_t k_cols, const options& opt,
                                     index_t element_bytes) {
  problem_request r;
  request_common(r, opt, element_bytes);
  r.rows.names = &image_axes[0];
  r.cols.names = &image_axes[1];
  r.rows.in = rows;
  r.cols.in = cols;
  r.rows.kernel = k_rows;
  r.cols.kernel = k_cols;
  r.rows.mode = r.cols.mode = opt.mode;
  r.edge_value = opt.edge_value;
  return r;
}
}  // namespace detail

/// Output shape of conv2d for an input of rows x cols and a kernel of k_rows x k_cols.
/// Throws convkit::error naming the argument for non-positive sizes, stride or dilation < 1, an empty
/// valid output, an enum value outside its enumerators, or sizes whose products overflow index_t.
inline shape2d output_shape(index_t rows, index_t cols, index_t k_rows, index_t k_cols, const options& opt) {
  return detail::make_problem(detail::image_request(rows, cols, k_rows, k_cols, opt, sizeof(float))).out_plane();
}

CONVKIT_NAMESPACE_END
