// convkit/layer_options.hpp - what a convolution layer computes, and its shape.
//
// A layer is torch.nn.functional.conv2d: a cross-correlation of a batch of multi-channel images
// with a bank of multi-channel filters (see view4d.hpp for NCHW):
//   input    [N, C, H, W]
//   weights  [K, C/groups, R, S]       K filters (output channels) of R x S taps
//   bias     K values, or none
//   out      [N, K, OH, OW],  out(n, k, i, j) = bias[k] + sum over c' < C/groups, u < R, v < S of
//              weights(k, c', u, v) * ext(n, g * C/groups + c', i * stride_rows + u * dilation_rows,
//                                                             j * stride_cols + v * dilation_cols)
//            where g = k / (K/groups) is the filter's group and ext is the input plane extended by
//            pad_rows / pad_cols on both sides under the border rule `edge` (ext(.., 0, 0) is
//            input(.., -pad_rows, -pad_cols)).
//   groups   splits channels and filters into `groups` independent convolutions: filter k sees
//            only the C/groups input channels of its group. groups == C == K is "depthwise".
//   OH = (H + 2*pad_rows - dilation_rows*(R-1) - 1) / stride_rows + 1, likewise OW, as in PyTorch.
//
// Per axis this is the single-image library's strided, dilated valid correlation of an extended
// input (options.hpp, detail::axis_geometry) with pad_before = pad: detail::make_layer_geometry
// builds it through the same detail::make_axis, so layers and single images share one shape rule.
#pragma once

#include <string>

#include "detail/checked.hpp"
#include "options.hpp"
#include "types.hpp"
#include "view4d.hpp"

namespace convkit {

struct layer_options {                  // torch.nn.functional.conv2d semantics: cross-correlation
  int stride_rows = 1, stride_cols = 1;
  int pad_rows = 0, pad_cols = 0;       // added on both sides
  int dilation_rows = 1, dilation_cols = 1;
  int groups = 1;
  border edge = border::zero;           // PyTorch padding_mode: zero, reflect, replicate, circular
                                        // (symmetric works too; constant has no value here: rejected)
  algorithm algo = algorithm::automatic;
  int threads = 0;                      // 0: all hardware threads
};

namespace detail {

/// A validated layer: the batch and channel counts and, per axis, the valid correlation of the
/// padded input (axis_geometry with pad_before = pad).
struct layer_geometry {
  index n;       ///< images in the batch
  index c;       ///< input channels
  index k;       ///< filters = output channels
  index groups;
  axis_geometry rows, cols;

  index c_per_group() const noexcept { return c / groups; }
  index k_per_group() const noexcept { return k / groups; }
  shape4d input() const noexcept { return {n, c, rows.in, cols.in}; }
  shape4d weights() const noexcept { return {k, c / groups, rows.kernel, cols.kernel}; }
  shape4d out() const noexcept { return {n, k, rows.out, cols.out}; }
  bool reads_outside() const noexcept { return rows.reads_outside() || cols.reads_outside(); }
};

/// One axis: input `in` padded by `pad` on both sides, then a valid correlation (make_axis).
inline axis_geometry make_layer_axis(index in, index kernel, int pad, int stride, int dilation, const char* axis,
                                     const char* in_name, const char* k_name) {
  const std::string a(axis);
  if (in <= 0) throw error(std::string("input ") + in_name + " must be > 0, got " + std::to_string(in));
  if (kernel <= 0) throw error(std::string("weights ") + k_name + " must be > 0, got " + std::to_string(kernel));
  if (pad < 0) throw error("pad_" + a + " must be >= 0, got " + std::to_string(pad));
  const std::string padded_what = "input " + std::string(in_name) + " + 2 * pad_" + a;
  const index padded = checked_add(in, checked_mul(2, pad, padded_what.c_str()), padded_what.c_str());
  // The full-mode axis never throws for size, and tells the dilated kernel's span.
  const index span = make_axis(padded, kernel, stride, dilation, output::full, axis).span;
  if (span > padded)
    throw error("empty output: the dilated kernel " + a + " (dilation_" + a + " * (" + k_name + " - 1) + 1 = " +
                std::to_string(span) + ") exceeds the padded input " + a + " (" + in_name + " + 2 * pad_" + a + " = " +
                std::to_string(padded) + ")");
  axis_geometry g = make_axis(padded, kernel, stride, dilation, output::valid, axis);
  g.in = in;  // ext[e] = input[e - pad]: the padding now lies outside the input
  g.pad_before = pad;
  return g;
}

/// Validates a layer's shapes and options (not its data); every layer entry point calls this.
inline layer_geometry make_layer_geometry(shape4d input, shape4d weights, const layer_options& opt) {
  checked_size4(input, "input");
  checked_size4(weights, "weights");
  if (input.n <= 0) throw error("input N must be > 0, got " + std::to_string(input.n));
  if (input.c <= 0) throw error("input C must be > 0, got " + std::to_string(input.c));
  if (weights.n <= 0) throw error("weights K must be > 0, got " + std::to_string(weights.n));
  if (opt.groups < 1) throw error("groups must be >= 1, got " + std::to_string(opt.groups));
  if (opt.threads < 0) throw error("threads must be >= 0, got " + std::to_string(opt.threads));
  if (opt.edge == border::constant)
    throw error("edge: border::constant has no value in layer_options; use border::zero (PyTorch's 'zeros')");
  if (input.c % opt.groups != 0)
    throw error("input C (" + std::to_string(input.c) + ") is not divisible by groups (" + std::to_string(opt.groups) + ")");
  if (weights.n % opt.groups != 0)
    throw error("weights K (" + std::to_string(weights.n) + ") is not divisible by groups (" +
                std::to_string(opt.groups) + ")");
  if (weights.c != input.c / opt.groups)
    throw error("weights have " + std::to_string(weights.c) + " channels, expected input C / groups = " +
                std::to_string(input.c) + " / " + std::to_string(opt.groups) + " = " + std::to_string(input.c / opt.groups));
  layer_geometry g{input.n, input.c, weights.n, opt.groups,
                   make_layer_axis(input.h, weights.h, opt.pad_rows, opt.stride_rows, opt.dilation_rows, "rows", "H", "R"),
                   make_layer_axis(input.w, weights.w, opt.pad_cols, opt.stride_cols, opt.dilation_cols, "cols", "W", "S")};
  checked_size4(g.out(), "output");
  return g;
}

}  // namespace detail

/// Output shape [N, K, OH, OW] of a layer with the given input and weights shapes (PyTorch's formula,
/// see the top of this file). Throws convkit::error naming the argument for: an empty input or
/// weights, groups < 1 or not dividing C and K, weights' channel count other than C / groups,
/// negative padding, stride or dilation < 1, border::constant, an empty output, sizes that overflow.
inline shape4d layer_output_shape(shape4d input, shape4d weights, const layer_options& opt = {}) {
  return detail::make_layer_geometry(input, weights, opt).out();
}

}  // namespace convkit
