// convkit/reference.hpp - the oracle: the definition of conv2d, evaluated literally in double.
//
// Written for obviousness, not speed (O(out * kernel) with a border lookup per tap). Every backend
// is tested against it, and it is itself checked against hand-computed cases. It shares only
// output_shape() / layer_output_shape() and border_index() with the rest of the library; the mapping
// from an output element to the input elements it reads is written out again here from the
// definitions in types.hpp (single images) and layer_options.hpp (layers).
#pragma once

#include "version.hpp"

#include <cmath>

#include "layer_options.hpp"
#include "options.hpp"
#include "padding.hpp"
#include "view.hpp"
#include "view4d.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace reference {

/// conv2d(input, kernel, opt) computed in double. Same contract as convkit::conv2d (algo and threads
/// are ignored). With `magnitude`, returns instead sum |input| * |kernel| over the same taps: the
/// scale against which a backend's rounding error is measured.
template <class T>
array2d<double> conv2d(view2d<const T> input, view2d<const T> kernel, const options& opt = {}, bool magnitude = false) {
  if (input.empty()) throw error("input is empty");
  if (kernel.empty()) throw error("kernel is empty");
  const shape2d out_shape = output_shape(input.rows(), input.cols(), kernel.rows(), kernel.cols(), opt);
  array2d<double> out(out_shape.rows, out_shape.cols);
  const index_t H = input.rows(), W = input.cols(), KH = kernel.rows(), KW = kernel.cols();
  const index_t span_r = (KH - 1) * opt.dilation_rows + 1, span_c = (KW - 1) * opt.dilation_cols + 1;
  const auto mode_offset = [&](index_t span) -> index_t {  // where the mode's result starts in the full one
    switch (opt.mode) {
      case output::full: return 0;
      case output::same: return (span - 1) / 2;
      case output::valid: return span - 1;
    }
    return 0;
  };
  // The border holds values of T, like the image: the constant is rounded to T (and may overflow it).
  const double fill = opt.edge == border::constant ? static_cast<double>(detail::to_element<T>(opt.edge_value)) : 0.0;
  const auto pixel = [&](index_t i, index_t j) -> double {  // the input extended by the border rule
    const index_t r = border_index(i, H, opt.edge), c = border_index(j, W, opt.edge);
    if (r < 0 || c < 0) return fill;
    return static_cast<double>(input(r, c));
  };
  for (index_t orow = 0; orow < out_shape.rows; ++orow) {
    for (index_t ocol = 0; ocol < out_shape.cols; ++ocol) {
      const index_t fr = orow * opt.stride_rows + mode_offset(span_r);  // index into the full result
      const index_t fc = ocol * opt.stride_cols + mode_offset(span_c);
      double sum = 0;
      for (index_t u = 0; u < KH; ++u) {
        for (index_t v = 0; v < KW; ++v) {
          // convolution: full(i, j) = sum in(i - u*dr, j - v*dc) k(u, v)
          // correlation: full(i, j) = sum in(i - (span_r-1) + u*dr, j - (span_c-1) + v*dc) k(u, v)
          const index_t i = opt.correlate ? fr - (span_r - 1) + u * opt.dilation_rows : fr - u * opt.dilation_rows;
          const index_t j = opt.correlate ? fc - (span_c - 1) + v * opt.dilation_cols : fc - v * opt.dilation_cols;
          const double x = pixel(i, j), w = static_cast<double>(kernel(u, v));
          sum += magnitude ? std::abs(x) * std::abs(w) : x * w;
        }
      }
      out(orow, ocol) = sum;
    }
  }
  return out;
}

/// The layer conv2d(input, weights, bias, opt) computed in double, from the definition at the top of
/// layer_options.hpp: bias is null or points to K = weights.n() values. Same contract as the layer
/// convkit::conv2d (algo and threads are ignored). With `magnitude`, returns instead
/// |bias| + sum |input| * |weights| over the same taps: the scale of a backend's rounding error.
template <class T>
array4d<double> conv2d(view4d<const T> input, view4d<const T> weights, const T* bias, const layer_options& opt = {},
                       bool magnitude = false) {
  const shape4d s = layer_output_shape(input.shape(), weights.shape(), opt);
  array4d<double> out(s.n, s.c, s.h, s.w);
  const index_t H = input.h(), W = input.w();
  const index_t channels_per_group = input.c() / opt.groups, filters_per_group = weights.n() / opt.groups;
  const auto pixel = [&](index_t n, index_t c, index_t i, index_t j) -> double {  // input padded by the border rule
    const index_t r = border_index(i, H, opt.edge), col = border_index(j, W, opt.edge);
    if (r < 0 || col < 0) return 0.0;
    return static_cast<double>(input(n, c, r, col));
  };
  for (index_t n = 0; n < s.n; ++n)
    for (index_t k = 0; k < s.c; ++k) {
      const index_t group = k / filters_per_group;
      for (index_t oh = 0; oh < s.h; ++oh)
        for (index_t ow = 0; ow < s.w; ++ow) {
          double sum = bias == nullptr ? 0.0 : magnitude ? std::abs(double(bias[k])) : double(bias[k]);
          for (index_t ci = 0; ci < channels_per_group; ++ci)
            for (index_t u = 0; u < weights.h(); ++u)
              for (index_t v = 0; v < weights.w(); ++v) {
                // input row oh * stride + u * dilation of the padded input is row ... - pad of the input
                const index_t i = oh * opt.stride_rows + u * opt.dilation_rows - opt.pad_rows;
                const index_t j = ow * opt.stride_cols + v * opt.dilation_cols - opt.pad_cols;
                const double x = pixel(n, group * channels_per_group + ci, i, j);
                const double w = static_cast<double>(weights(k, ci, u, v));
                sum += magnitude ? std::abs(x) * std::abs(w) : x * w;
              }
          out(n, k, oh, ow) = sum;
        }
    }
  return out;
}

}  // namespace reference
CONVKIT_NAMESPACE_END
