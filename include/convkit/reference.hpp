// convkit/reference.hpp - the oracle: the definition of conv2d, evaluated literally in double.
//
// Written for obviousness, not speed (O(out * kernel) with a border lookup per tap). Every backend
// is tested against it, and it is itself checked against hand-computed cases. It shares only
// output_shape() and border_index() with the rest of the library; the mapping from an output
// element to the input elements it reads is written out again here from the definitions in types.hpp.
#pragma once

#include <cmath>

#include "options.hpp"
#include "padding.hpp"
#include "view.hpp"

namespace convkit::reference {

/// conv2d(input, kernel, opt) computed in double. Same contract as convkit::conv2d (algo and threads
/// are ignored). With `magnitude`, returns instead sum |input| * |kernel| over the same taps: the
/// scale against which a backend's rounding error is measured.
template <class T>
array2d<double> conv2d(view2d<const T> input, view2d<const T> kernel, const options& opt = {}, bool magnitude = false) {
  if (input.empty()) throw error("input is empty");
  if (kernel.empty()) throw error("kernel is empty");
  const shape2d out_shape = output_shape(input.rows(), input.cols(), kernel.rows(), kernel.cols(), opt);
  array2d<double> out(out_shape.rows, out_shape.cols);
  const index H = input.rows(), W = input.cols(), KH = kernel.rows(), KW = kernel.cols();
  const index span_r = (KH - 1) * opt.dilation_rows + 1, span_c = (KW - 1) * opt.dilation_cols + 1;
  const auto mode_offset = [&](index span) -> index {  // where the mode's result starts in the full one
    switch (opt.size) {
      case output::full: return 0;
      case output::same: return (span - 1) / 2;
      case output::valid: return span - 1;
    }
    return 0;
  };
  const double fill = opt.edge == border::constant ? opt.edge_value : 0.0;
  const auto pixel = [&](index i, index j) -> double {  // the input extended by the border rule
    const index r = border_index(i, H, opt.edge), c = border_index(j, W, opt.edge);
    if (r < 0 || c < 0) return fill;
    return static_cast<double>(input(r, c));
  };
  for (index orow = 0; orow < out_shape.rows; ++orow) {
    for (index ocol = 0; ocol < out_shape.cols; ++ocol) {
      const index fr = orow * opt.stride_rows + mode_offset(span_r);  // index into the full result
      const index fc = ocol * opt.stride_cols + mode_offset(span_c);
      double sum = 0;
      for (index u = 0; u < KH; ++u) {
        for (index v = 0; v < KW; ++v) {
          // convolution: full(i, j) = sum in(i - u*dr, j - v*dc) k(u, v)
          // correlation: full(i, j) = sum in(i - (span_r-1) + u*dr, j - (span_c-1) + v*dc) k(u, v)
          const index i = opt.correlate ? fr - (span_r - 1) + u * opt.dilation_rows : fr - u * opt.dilation_rows;
          const index j = opt.correlate ? fc - (span_c - 1) + v * opt.dilation_cols : fc - v * opt.dilation_cols;
          const double x = pixel(i, j), w = static_cast<double>(kernel(u, v));
          sum += magnitude ? std::abs(x) * std::abs(w) : x * w;
        }
      }
      out(orow, ocol) = sum;
    }
  }
  return out;
}

}  // namespace convkit::reference
