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
// This is the problem of detail/problem.hpp with symmetric paddings: layer_request() builds its
// request, and every layer entry point validates it through detail::make_problem, the same
// validation and shape rule as single images.
#pragma once

#include "version.hpp"

#include "detail/problem.hpp"
#include "tuning.hpp"
#include "types.hpp"
#include "view4d.hpp"

CONVKIT_NAMESPACE_BEGIN

struct layer_options {  // torch.nn.functional.conv2d semantics: cross-correlation
  int stride_rows = 1, stride_cols = 1;
  int pad_rows = 0, pad_cols = 0;  // added on both sides
  int dilation_rows = 1, dilation_cols = 1;
  int groups = 1;
  border edge = border::zero;  // PyTorch padding_mode: zero, reflect, replicate, circular
                               // (symmetric works too; constant has no value here: rejected)
  algorithm algo = algorithm::automatic;
  convkit::accuracy accuracy = convkit::accuracy::automatic;  // what an FFT may trade for speed (types.hpp)
  int threads = 0;                                            // 0 (or more than there are): all hardware threads
  tuning tune;  // backend settings (tuning.hpp); unset fields: the defaults
};

namespace detail {
inline constexpr axis_names layer_axes[2] = {{"rows", "input H", "weights R", "H", "R", "2 * pad_rows"},
                                             {"cols", "input W", "weights S", "W", "S", "2 * pad_cols"}};

/// The request of a layer with the given input and weights shapes.
inline problem_request layer_request(shape4d input, shape4d weights, bool bias, const layer_options& opt,
                                     index_t element_bytes) {
  checked_size4(input, "input");
  checked_size4(weights, "weights");
  if (opt.edge == border::constant)
    throw error("edge: border::constant has no value in layer_options; use border::zero (PyTorch's 'zeros')");
  problem_request r;
  request_common(r, opt, element_bytes);
  r.n = input.n;
  r.c = input.c;
  r.k = weights.n;
  r.groups = opt.groups;
  r.weights_c = weights.c;
  r.rows.names = &layer_axes[0];
  r.cols.names = &layer_axes[1];
  r.rows.in = input.h;
  r.cols.in = input.w;
  r.rows.kernel = weights.h;
  r.cols.kernel = weights.w;
  r.rows.pad_before = r.rows.pad_after = opt.pad_rows;
  r.cols.pad_before = r.cols.pad_after = opt.pad_cols;
  r.bias = bias;
  r.packed_input = true;
  return r;
}
}  // namespace detail

/// Output shape [N, K, OH, OW] of a layer with the given input and weights shapes (PyTorch's formula,
/// see the top of this file). Throws convkit::error naming the argument for: an empty input or
/// weights, groups < 1 or not dividing C and K, weights' channel count other than C / groups,
/// negative padding, stride or dilation < 1, border::constant, an empty output, sizes that overflow.
inline shape4d layer_output_shape(shape4d input, shape4d weights, const layer_options& opt = {}) {
  return detail::make_problem(detail::layer_request(input, weights, false, opt, sizeof(float))).output_shape();
}

CONVKIT_NAMESPACE_END
