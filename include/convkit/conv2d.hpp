// convkit/conv2d.hpp - the front door: one call, any backend.
//
//   conv2d(input, kernel, options)        -> array2d<T> of output_shape(...)
//   conv2d(input, kernel, out, options)   writes into a caller-supplied view
//
// T is float or double. input and kernel are view2d<const T> (array2d<T> and view2d<T> convert
// implicitly). Throws convkit::error, naming the argument, for: an empty input or kernel, a valid
// output that would be empty, stride or dilation < 1, negative threads, an enum value outside its
// enumerators, an `out` of the wrong shape, `out` overlapping the input or the kernel, sizes whose
// products overflow index_t; and convkit::unavailable when options::algo names a backend this
// program does not have. A one-shot conv2d is a plan used once; to convolve many inputs of one
// shape, keep a plan.
#pragma once

#include "version.hpp"

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

CONVKIT_NAMESPACE_END
