// convkit/options.hpp - what a single-image convolution computes, and the one shape calculation.
//
// See types.hpp for the vocabulary. Every entry point validates its options through
// detail::make_geometry, and every backend reads the geometry it returns: how large the output is,
// and which rectangle of the border-extended input it reads. Nothing else computes shapes.
#pragma once

#include <string>

#include "detail/checked.hpp"
#include "types.hpp"

namespace convkit {

struct options {
  output size = output::full;
  border edge = border::zero;  ///< how the input is extended beyond its edges (unused by output::valid)
  double edge_value = 0.0;     ///< for border::constant
  int stride_rows = 1, stride_cols = 1;
  int dilation_rows = 1, dilation_cols = 1;
  bool correlate = false;  ///< false: true convolution (kernel flipped); true: cross-correlation
  algorithm algo = algorithm::automatic;
  int threads = 0;  ///< 0: all hardware threads
};

namespace detail {

/// One axis of a convolution, reduced to a strided, dilated *valid correlation* of an extended input:
///   out[o] = sum_j ext[o * stride + j * dilation] * k'[j],  o in [0, out),
/// where ext[e] = input[e - pad_before] extended by the border rule, e in [0, extent), and k' is the
/// kernel as given (correlation) or reversed (convolution). pad_before may exceed the input and
/// extent - pad_before may be smaller than the input (valid mode and strides read only a prefix).
struct axis_geometry {
  index in;          ///< input length
  index kernel;      ///< kernel length (taps)
  index span;        ///< dilated kernel extent, (kernel - 1) * dilation + 1
  int stride, dilation;
  index out;         ///< output length
  index pad_before;  ///< ext[0] is input[-pad_before]
  index extent;      ///< how much of the extended input is read, (out - 1) * stride + span

  index pad_after() const noexcept { return extent - pad_before - in; }  // may be negative
  bool reads_outside() const noexcept { return pad_before > 0 || pad_after() > 0; }
};

inline axis_geometry make_axis(index in, index kernel, int stride, int dilation, output mode, const char* axis) {
  const std::string a(axis);
  if (in <= 0) throw error("input " + a + " must be > 0, got " + std::to_string(in));
  if (kernel <= 0) throw error("kernel " + a + " must be > 0, got " + std::to_string(kernel));
  if (stride < 1) throw error("stride_" + a + " must be >= 1, got " + std::to_string(stride));
  if (dilation < 1) throw error("dilation_" + a + " must be >= 1, got " + std::to_string(dilation));
  axis_geometry g{};
  g.in = in;
  g.kernel = kernel;
  g.stride = stride;
  g.dilation = dilation;
  const std::string what = "kernel " + a + " with dilation_" + a;
  g.span = checked_add(checked_mul(kernel - 1, dilation, what.c_str()), 1, what.c_str());
  const index full = checked_add(in, g.span - 1, ("input " + a + " + dilated kernel " + a).c_str());
  index len = 0, offset = 0;  // the mode's result is full[offset, offset + len)
  switch (mode) {
    case output::full: len = full; offset = 0; break;
    case output::same: len = in; offset = (g.span - 1) / 2; break;
    case output::valid:
      len = in - g.span + 1;
      offset = g.span - 1;
      if (len <= 0)
        throw error("output::valid is empty: the dilated kernel " + a + " (" + std::to_string(g.span) +
                    ") is larger than the input " + a + " (" + std::to_string(in) + ")");
      break;
  }
  g.out = (len - 1) / stride + 1;
  g.pad_before = g.span - 1 - offset;
  g.extent = (g.out - 1) * static_cast<index>(stride) + g.span;  // <= full, cannot overflow
  return g;
}

/// A validated single-image problem: both axes, plus the options it was made from.
struct geometry {
  axis_geometry rows, cols;
  shape2d out() const noexcept { return {rows.out, cols.out}; }
  bool reads_outside() const noexcept { return rows.reads_outside() || cols.reads_outside(); }
};

inline geometry make_geometry(index rows, index cols, index k_rows, index k_cols, const options& opt) {
  if (opt.threads < 0) throw error("threads must be >= 0, got " + std::to_string(opt.threads));
  geometry g{make_axis(rows, k_rows, opt.stride_rows, opt.dilation_rows, opt.size, "rows"),
             make_axis(cols, k_cols, opt.stride_cols, opt.dilation_cols, opt.size, "cols")};
  checked_mul(g.rows.out, g.cols.out, "output rows * cols");
  checked_mul(g.rows.extent, g.cols.extent, "extended input rows * cols");
  checked_mul(k_rows, k_cols, "kernel rows * cols");
  return g;
}

}  // namespace detail

/// Output shape of conv2d for an input of rows x cols and a kernel of k_rows x k_cols.
/// Throws convkit::error naming the argument for non-positive sizes, stride or dilation < 1, an empty
/// valid output, or sizes whose products overflow convkit::index.
inline shape2d output_shape(index rows, index cols, index k_rows, index k_cols, const options& opt) {
  return detail::make_geometry(rows, cols, k_rows, k_cols, opt).out();
}

}  // namespace convkit
