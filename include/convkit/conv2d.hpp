// convkit/conv2d.hpp - the front door: one call, any backend.
//
//   conv2d(input, kernel, options)        -> array2d<T> of output_shape(...)
//   conv2d(input, kernel, out, options)   writes into a caller-supplied view
//
// T is float or double. input and kernel are view2d<const T> (array2d<T> and view2d<T> convert
// implicitly).
//
// Images of pixels (image.hpp: 8- and 16-bit, float, double; 1 to 4 interleaved channels) take the
// same calls with image_view / image arguments (or a view2d / array2d of pixels), and a kernel of
// float or double values: every channel is filtered with the kernel (OpenCV's filter2D). The output
// has the input's pixel type, or the type of the `out` given (OpenCV's ddepth, SciPy's output=):
// integer pixels are rounded half to even, then saturated to their range. They are computed in
// float (double where the input or output is double), converted as each band of rows is read and
// written, so no whole plane of the compute type is made. Exactness: every integer output equals the
// float64 definition rounded and saturated, except where that exact value lies within the chosen
// backend's error bound of a rounding boundary (a tie); with an integer-valued kernel (Sobel, box
// sums, Laplacian; and an integer border value) integer outputs are exact everywhere (direct sums, in double where
// float's 24 bits would not hold every partial sum). Throws convkit::error, naming the argument, for: an empty input or
// kernel, a valid output that would be empty, stride or dilation < 1, negative threads, an enum value outside its
// enumerators, an `out` of the wrong shape, `out` overlapping the input or the kernel, sizes whose products overflow
// index_t; and convkit::unavailable when options::algo names a backend this program does not have. A one-shot conv2d is
// a plan used once; to convolve many inputs of one shape, keep a plan.
#pragma once

#include "version.hpp"

#include "detail/pixel_bands.hpp"
#include "image.hpp"
#include "plan.hpp"

CONVKIT_NAMESPACE_BEGIN

template <class T>
void conv2d(view2d<const T> input, view2d<const T> kernel, view2d<T> out, const options& opt = {}) {
  const detail::conv_problem p = detail::image_problem<T>(input.rows(), input.cols(), kernel, opt, false);
  detail::check_call<T>(input, out, input.shape(), p.out_plane());
  if (detail::overlaps<T>(kernel, out)) throw error("out aliases kernel: convolution cannot run in place");
  const array2d<T> k = detail::correlation_order(kernel, opt.correlate);
  const detail::planes<const T> from = detail::planes_of(input);
  const detail::planes<T> to = detail::planes_of(out);
  detail::prepared<T>(p, k.data(), nullptr, &from, &to).run(from, to);
}

template <class T>
array2d<T> conv2d(view2d<const T> input, view2d<const T> kernel, const options& opt = {}) {
  // Validate before allocating, so that a bad call throws the argument's error, not bad_alloc.
  const shape2d s = detail::image_problem<T>(input.rows(), input.cols(), kernel, opt, false).out_plane();
  array2d<T> out(s.rows, s.cols);
  conv2d<T>(input, kernel, out.view(), opt);
  return out;
}

// The same calls for any mix of view2d<T>, view2d<const T> and array2d<T> arguments, which template
// argument deduction would otherwise not convert.
template <class In, class K,
          class = std::enable_if_t<detail::is_2d_v<In> && detail::is_2d_v<K> &&
                                   std::is_same_v<detail::value_type_2d<In>, detail::value_type_2d<K>>>>
array2d<detail::value_type_2d<In>> conv2d(const In& input, const K& kernel, const options& opt = {}) {
  using T = detail::value_type_2d<In>;
  return conv2d<T>(view2d<const T>(input), view2d<const T>(kernel), opt);
}

template <class In, class K, class Out,
          class = std::enable_if_t<detail::is_2d_v<In> && detail::is_2d_v<K> && detail::is_2d_v<Out> &&
                                   std::is_same_v<detail::value_type_2d<In>, detail::value_type_2d<K>> &&
                                   std::is_same_v<detail::value_type_2d<In>, detail::value_type_2d<Out>>>>
void conv2d(const In& input, const K& kernel, Out&& out, const options& opt = {}) {
  using T = detail::value_type_2d<In>;
  conv2d<T>(view2d<const T>(input), view2d<const T>(kernel), view2d<T>(out), opt);
}

namespace detail {
/// An image call computed in T (see the top of this file); `exact`: computes_exactly.
template <class T, class P, class K, class Q>
void conv2d_pixels(image_view<const P> input, view2d<const K> kernel, image_view<Q> out, const options& opt,
                   bool exact) {
  if (kernel.empty()) throw error("kernel is empty (" + shape_str(kernel.shape()) + ")");
  const array2d<T> k = kernel_in<T>(kernel);
  conv_problem p = image_problem<T>(input.rows(), input.cols(), k, opt, false);
  check_image_call<P, Q>(input, out, input.shape(), p.out_plane());
  if (overlaps(image_view<const K>(kernel), image_view<const Q>(out)))
    throw error("out aliases kernel: convolution cannot run in place");
  if (exact) make_exact(p);
  const array2d<T> weights = correlation_order<T>(k, opt.correlate);
  if constexpr (std::is_same_v<P, T> && std::is_same_v<Q, T>) {
    if (input.channels() == 1) {  // a plane of T already: no conversion
      const planes<const T> from{input.data(), 0, 0, input.row_stride()};
      const planes<T> to{out.data(), 0, 0, out.row_stride()};
      prepared<T>(p, weights.data(), nullptr, &from, &to).run(from, to);
      return;
    }
  }
  pixel_bands<T>(p, weights.data(), input.channels()).run(input, out);
}

/// image<X> and image_view<X>: the things conv2d accepts as an image; value type X.
template <class A>
struct is_image : std::false_type {};
template <class X>
struct is_image<image<X>> : std::true_type {
  using value_type = X;
};
template <class X>
struct is_image<image_view<X>> : std::true_type {
  using value_type = std::remove_const_t<X>;
};
template <class A>
inline constexpr bool is_image_v = is_image<std::remove_cv_t<std::remove_reference_t<A>>>::value;
template <class A>
using value_type_image = typename is_image<std::remove_cv_t<std::remove_reference_t<A>>>::value_type;
}  // namespace detail

/// out = every channel of `input` filtered with `kernel` (see the top of this file). out must have
/// the input's channels and output_shape(...) pixels, and overlap neither input nor kernel.
template <class P, class K, class Q>
void conv2d(image_view<const P> input, view2d<const K> kernel, image_view<Q> out, const options& opt = {}) {
  detail::check_image_types<P, K, Q>();
  using T = detail::pixel_compute_t<P, Q>;
  const bool exact = detail::computes_exactly<P, Q>(kernel, opt);
  if constexpr (std::is_same_v<T, float>)
    if (exact && !detail::exact_in<float, P>(kernel))
      return detail::conv2d_pixels<double>(input, kernel, out, opt, exact);
  detail::conv2d_pixels<T>(input, kernel, out, opt, exact);
}

/// The filtered image, allocated, with the input's pixel type and channels.
template <class P, class K>
image<P> conv2d(image_view<const P> input, view2d<const K> kernel, const options& opt = {}) {
  detail::check_image_types<P, K, P>();
  if (kernel.empty()) throw error("kernel is empty (" + detail::shape_str(kernel.shape()) + ")");
  const shape2d s = output_shape(input.rows(), input.cols(), kernel.rows(), kernel.cols(), opt);
  image<P> out(s.rows, s.cols, input.channels());
  conv2d<P, K, P>(input, kernel, out.view(), opt);
  return out;
}

// The image calls for image<X> and image_view<X> arguments, and for 2-D arguments of pixels that are
// not all of one floating type (a view2d<std::uint8_t>, a float image with a double kernel): one
// channel.
// (Distinct kinds of enable_if parameter keep these templates apart from the 2-D ones above.)
template <class In, class K, std::enable_if_t<detail::is_image_v<In> && detail::is_2d_v<K>, int> = 0>
image<detail::value_type_image<In>> conv2d(const In& input, const K& kernel, const options& opt = {}) {
  using P = detail::value_type_image<In>;
  using KT = detail::value_type_2d<K>;
  return conv2d<P, KT>(image_view<const P>(input), view2d<const KT>(kernel), opt);
}

template <class In, class K, class Out,
          std::enable_if_t<detail::is_image_v<In> && detail::is_2d_v<K> && detail::is_image_v<Out>, int> = 0>
void conv2d(const In& input, const K& kernel, Out&& out, const options& opt = {}) {
  using P = detail::value_type_image<In>;
  using KT = detail::value_type_2d<K>;
  using Q = detail::value_type_image<Out>;
  conv2d<P, KT, Q>(image_view<const P>(input), view2d<const KT>(kernel), image_view<Q>(out), opt);
}

template <class In, class K,
          std::enable_if_t<detail::is_2d_v<In> && detail::is_2d_v<K> &&
                               !std::is_same_v<detail::value_type_2d<In>, detail::value_type_2d<K>>,
                           int> = 0>
array2d<detail::value_type_2d<In>> conv2d(const In& input, const K& kernel, const options& opt = {}) {
  using P = detail::value_type_2d<In>;
  using KT = detail::value_type_2d<K>;
  detail::check_image_types<P, KT, P>();
  if (view2d<const KT>(kernel).empty()) throw error("kernel is empty");
  const view2d<const KT> k(kernel);
  const shape2d s = output_shape(view2d<const P>(input).rows(), view2d<const P>(input).cols(), k.rows(), k.cols(), opt);
  array2d<P> out(s.rows, s.cols);
  conv2d<P, KT, P>(image_view<const P>(view2d<const P>(input)), k, image_view<P>(out.view()), opt);
  return out;
}

template <class In, class K, class Out,
          std::enable_if_t<detail::is_2d_v<In> && detail::is_2d_v<K> && detail::is_2d_v<Out> &&
                               !(std::is_same_v<detail::value_type_2d<In>, detail::value_type_2d<K>> &&
                                 std::is_same_v<detail::value_type_2d<In>, detail::value_type_2d<Out>>),
                           long> = 0>
void conv2d(const In& input, const K& kernel, Out&& out, const options& opt = {}) {
  using P = detail::value_type_2d<In>;
  using KT = detail::value_type_2d<K>;
  using Q = detail::value_type_2d<Out>;
  conv2d<P, KT, Q>(image_view<const P>(view2d<const P>(input)), view2d<const KT>(kernel), image_view<Q>(view2d<Q>(out)),
                   opt);
}

CONVKIT_NAMESPACE_END
