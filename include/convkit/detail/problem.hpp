// The one problem model under both front doors, in the manner of CUTLASS's Conv2dProblemSize:
// every convolution convkit computes is a (possibly grouped, batched) layer
//   input    [N, C, H, W]          out  [N, K, OH, OW]
//   weights  [K, C/groups, R, S]   in correlation order (a convolution is reversed once, at the
//                                  front door, so no backend ever flips a kernel)
//   out(n, k, i, j) = bias[k] + sum over c' < C/groups, u < R, v < S of
//       weights(k, c', u, v) * ext(n, g * C/groups + c', i * stride_rows + u * dilation_rows,
//                                                      j * stride_cols + v * dilation_cols)
// with g = k / (K/groups) and ext the input plane padded on its four sides (asymmetric paddings
// allowed) under the border rule (geometry.hpp has the per-axis arithmetic). A single image is
// N = C = K = groups = 1 with its output mode turned into the four paddings.
//
// make_problem() is the one validation: every entry point builds a problem_request and calls it.
#pragma once

#include "../version.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "../tuning.hpp"
#include "../types.hpp"
#include "../view.hpp"
#include "../view4d.hpp"
#include "checked.hpp"
#include "geometry.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// A batch of planes in memory: plane (n, c) starts at data + n * image_stride + c * plane_stride,
/// and its rows are row_stride elements apart. An NCHW array and a single view2d image are both one.
template <class T>
struct planes {
  T* data = nullptr;
  index_t image_stride = 0, plane_stride = 0, row_stride = 0;

  T* plane(index_t n, index_t c) const noexcept { return data + n * image_stride + c * plane_stride; }
  view2d<T> view(index_t n, index_t c, index_t rows, index_t cols) const {
    return view2d<T>(plane(n, c), rows, cols, row_stride);
  }
  operator planes<const T>() const noexcept { return {data, image_stride, plane_stride, row_stride}; }  // NOLINT
};

/// One image as a batch of one plane.
template <class T>
planes<T> planes_of(view2d<T> v) noexcept {
  return {v.data(), 0, 0, v.row_stride()};
}

/// An NCHW array as a batch of planes.
template <class T>
planes<T> planes_of(view4d<T> v) noexcept {
  return {v.data(), v.c() * v.h() * v.w(), v.h() * v.w(), v.w()};
}

/// Throws convkit::error for a backend that would extend or transform the whole extended input of a
/// sparse problem (one whose outputs read little of it): only the direct backend computes those.
inline void refuse_sparse(bool sparse, const char* algo) {
  if (sparse)
    throw error(std::string("algorithm::") + algo +
                ": the outputs read few of the positions the extended input spans (a stride, dilation or padding "
                "far beyond the image); use algorithm::direct or automatic, which compute such problems from what "
                "they read");
}

/// Refuses accuracy::componentwise for an FFT backend that does not prove it (`what`: where).
inline void refuse_componentwise(bool componentwise, const char* algo, const char* what) {
  if (componentwise)
    throw error(std::string("accuracy::componentwise: algorithm::") + algo + " does not prove it " + what +
                "; use algorithm::automatic, which keeps it, or accuracy::normwise");
}

/// A validated convolution (see the top of this file), and how to run it.
struct conv_problem {
  index_t n = 1, c = 1, k = 1, groups = 1;
  axis_geometry rows{}, cols{};
  border edge = border::zero;
  double edge_value = 0.0;                ///< for border::constant
  bool bias = false;                      ///< a bias of K values is added
  bool packed_input = false;              ///< input rows are contiguous (NCHW arrays): planes can serve as matrices
  index_t element_bytes = 4;              ///< 4 (float) or 8 (double)
  algorithm algo = algorithm::automatic;  ///< what the caller asked for
  /// Resolved accuracy: every output within the componentwise contract (types.hpp, accuracy);
  /// FFT backends check it per output and compute what they cannot prove directly.
  bool componentwise = true;
  /// The weights are all >= 0 or all <= 0 (blurs, PSFs): then, on data of one sign too, an FFT
  /// output's own magnitude proves its accuracy and no second transform is needed.
  bool one_signed_weights = true;
  /// ||k||_1 / ||k||_2 of the kernel (fft_accuracy.hpp), which bounds the FFT tiles that can keep the
  /// contract; 0: not analysed (layers).
  double kernel_spread = 0;
  int threads = 1;  ///< resolved: >= 1
  settings tune;    ///< resolved: what the backends read, never a global
  /// No NaN or Inf known in the weights, the input (where it is known) or the constant border.
  bool finite = true;
  /// Made for a plan that runs many times: what a backend does once when it is made (kernel
  /// spectra, GPU set-up) is left out of its cost per call.
  bool amortised = false;
  /// Every filter is a sum of this many separable terms (separable.hpp); 0: not analysed, or dense.
  int kernel_rank = 0;

  index_t c_per_group() const noexcept { return c / groups; }
  index_t k_per_group() const noexcept { return k / groups; }
  /// One input plane and one filter: a single image, however it arrived.
  bool single_plane() const noexcept { return n == 1 && c == 1 && k == 1; }
  bool reads_outside() const noexcept { return rows.reads_outside() || cols.reads_outside(); }
  /// An axis whose extended input is mostly unread (axis_geometry::sparse), or a plane that is,
  /// though each axis is within its slack: the outputs read at most out * taps positions of the
  /// extended plane (a 13 x 13 image dilated by 1000 on one axis, strided by 2^30 on the other, made
  /// a transform of 3000 x 6300 for 793 outputs). Only the direct backend computes such problems,
  /// from what they read. The plane's slack is a 1024 x 1024 transform: an image of 4 channels
  /// strided and dilated by 1020 made 4 transforms of 1036 x 2049 for 12 outputs.
  bool sparse() const noexcept {
    return rows.sparse() || cols.sparse() ||
           double(rows.extent) * double(cols.extent) >
               16.0 * double(rows.out) * double(cols.out) * double(rows.kernel) * double(cols.kernel) + double(1 << 20);
  }
  shape2d out_plane() const noexcept { return {rows.out, cols.out}; }
  shape4d input_shape() const noexcept { return {n, c, rows.in, cols.in}; }
  shape4d weights_shape() const noexcept { return {k, c / groups, rows.kernel, cols.kernel}; }
  shape4d output_shape() const noexcept { return {n, k, rows.out, cols.out}; }
  /// The fill value of the border, in T.
  template <class T>
  T fill() const noexcept {
    return edge == border::constant ? to_element<T>(edge_value) : T(0);
  }
  /// Multiply-adds of a direct evaluation: N * K * OH * OW outputs of C/groups * R * S taps each.
  double macs() const noexcept {
    return double(n) * double(k) * double(rows.out) * double(cols.out) * double(c_per_group()) * double(rows.kernel) *
           double(cols.kernel);
  }
};

/// What an entry point asks for, before validation.
struct problem_request {
  index_t n = 1, c = 1, k = 1;
  int groups = 1;
  index_t weights_c = 1;  ///< channels per filter as given (must be C / groups)
  axis_request rows{}, cols{};
  border edge = border::zero;
  double edge_value = 0.0;
  bool bias = false;
  bool packed_input = false;
  index_t element_bytes = 4;
  algorithm algo = algorithm::automatic;
  convkit::accuracy accuracy = convkit::accuracy::automatic;
  int threads = 0;
  const tuning* tune = nullptr;
};

/// The fields both front doors' options (options, layer_options) set alike: strides, dilations,
/// border, algorithm, threads and tuning.
template <class Options>
void request_common(problem_request& r, const Options& opt, index_t element_bytes) {
  r.rows.stride = opt.stride_rows;
  r.cols.stride = opt.stride_cols;
  r.rows.dilation = opt.dilation_rows;
  r.cols.dilation = opt.dilation_cols;
  r.edge = opt.edge;
  r.element_bytes = element_bytes;
  r.algo = opt.algo;
  r.accuracy = opt.accuracy;
  r.threads = opt.threads;
  r.tune = &opt.tune;
}

/// Validates a request and resolves its threads and tuning. Throws convkit::error naming the
/// argument (convkit::unavailable for an instruction set the CPU lacks).
inline conv_problem make_problem(const problem_request& r) {
  if (r.threads < 0) throw error("threads must be >= 0, got " + std::to_string(r.threads));
  check_enum(r.edge, "edge");
  check_enum(r.algo, "algo");
  check_enum(r.accuracy, "accuracy");
  if (r.n <= 0) throw error("input N must be > 0, got " + std::to_string(r.n));
  if (r.c <= 0) throw error("input C must be > 0, got " + std::to_string(r.c));
  if (r.k <= 0) throw error("weights K must be > 0, got " + std::to_string(r.k));
  if (r.groups < 1) throw error("groups must be >= 1, got " + std::to_string(r.groups));
  if (r.c % r.groups != 0)
    throw error("input C (" + std::to_string(r.c) + ") is not divisible by groups (" + std::to_string(r.groups) + ")");
  if (r.k % r.groups != 0)
    throw error("weights K (" + std::to_string(r.k) + ") is not divisible by groups (" + std::to_string(r.groups) +
                ")");
  if (r.weights_c != r.c / r.groups)
    throw error("weights have " + std::to_string(r.weights_c) + " channels, expected input C / groups = " +
                std::to_string(r.c) + " / " + std::to_string(r.groups) + " = " + std::to_string(r.c / r.groups));
  conv_problem p;
  p.n = r.n;
  p.c = r.c;
  p.k = r.k;
  p.groups = r.groups;
  p.rows = make_axis(r.rows);
  p.cols = make_axis(r.cols);
  checked_mul(p.rows.kernel, p.cols.kernel, "kernel rows * cols");
  // Every array the problem names must fit in memory that index_t can address, in bytes.
  checked_mul(checked_size4(p.input_shape(), "input"), r.element_bytes, "input: its bytes");
  checked_mul(checked_size4(p.weights_shape(), "weights"), r.element_bytes, "weights: their bytes");
  checked_mul(checked_size4(p.output_shape(), "output"), r.element_bytes, "output rows * cols: its bytes");
  p.edge = r.edge;
  p.edge_value = r.edge == border::constant ? r.edge_value : 0.0;
  p.bias = r.bias;
  p.packed_input = r.packed_input;
  p.element_bytes = r.element_bytes;
  p.algo = r.algo;
  p.componentwise =
      r.accuracy == accuracy::componentwise || (r.accuracy == accuracy::automatic && r.algo == algorithm::automatic);
  p.threads = resolve_threads(r.threads);
  p.tune = resolve(r.tune != nullptr ? *r.tune : tuning{});
  // A constant border that is not finite in T (NaN, Inf, or beyond T's range) spreads through an FFT
  // like a NaN in the data.
  if (p.edge == border::constant) {
    const double largest =
        r.element_bytes == 4 ? double(std::numeric_limits<float>::max()) : std::numeric_limits<double>::max();
    if (!(std::abs(p.edge_value) <= largest)) p.finite = false;
  }
  return p;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
