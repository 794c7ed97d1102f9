// convkit/layer.hpp - the front door for convolution layers (torch.nn.functional.conv2d).
//
//   conv2d(input, weights, bias, layer_options)        -> array4d<T> of layer_output_shape(...)
//   conv2d(input, weights, bias, out, layer_options)   writes into a caller-supplied view
//   layer_plan<T>                                      the same, prepared once for many batches
//
// What a layer computes (shapes, groups, padding, PyTorch's output formula) is defined at the top of
// layer_options.hpp; the layout of 4-D arrays (NCHW) in view4d.hpp. T is float or double; input and
// weights are view4d<const T> (array4d<T> and view4d<T> convert implicitly). `bias` is null or points
// to K = weights.n() values: a pointer carries no length, so the spelled form cannot check it; the
// overloads that also take `bias_length` do, and throw if it is not K. Padding modes are border::zero, reflect,
// replicate and circular (PyTorch's padding_mode 'zeros', 'reflect', 'replicate', 'circular') and symmetric; every
// backend reads the input through convkit::extend, one channel plane at a time. Unlike PyTorch, reflect and circular
// also accept padding as large as or larger than the input (they continue periodically).
//
// Throws convkit::error, naming the argument, for everything layer_output_shape() rejects and for an
// `out` of the wrong shape or one that overlaps the input, the weights or the bias; and
// convkit::unavailable when layer_options::algo names a backend that is not in this program or does
// not compute layers.
#pragma once

#include "version.hpp"

#include <string>
#include <type_traits>

#include "detail/arguments.hpp"
#include "detail/compiled.hpp"
#include "detail/prepared.hpp"
#include "layer_options.hpp"
#include "view4d.hpp"

CONVKIT_NAMESPACE_BEGIN

/// out = the layer (see layer_options.hpp) of input [N, C, H, W] with weights [K, C/groups, R, S]
/// and bias (null or K values); out must be [N, K, OH, OW] and overlap none of the others.
template <class T>
void conv2d(view4d<const T> input, view4d<const T> weights, const T* bias, view4d<T> out,
            const layer_options& opt = {}) {
  const detail::conv_problem p = detail::layer_problem<T>(input.shape(), weights, bias, opt, false);
  detail::check_layer_call<T>(input, out, input.shape(), p.output_shape());
  detail::check_layer_parameters<T>(weights, bias, out);
  const detail::planes<const T> from = detail::planes_of(input);
  const detail::planes<T> to = detail::planes_of(out);
  detail::prepared<T>(p, weights.data(), bias, &from, &to).run(from, to);
}

/// The layer's output, allocated: [N, K, OH, OW].
template <class T>
array4d<T> conv2d(view4d<const T> input, view4d<const T> weights, const T* bias, const layer_options& opt = {}) {
  // Validate before allocating, so that a bad call throws the argument's error, not bad_alloc.
  const shape4d s = detail::layer_problem<T>(input.shape(), weights, bias, opt, false).output_shape();
  array4d<T> out(s.n, s.c, s.h, s.w);
  conv2d<T>(input, weights, bias, out.view(), opt);
  return out;
}

/// The two calls above with the bias's length given too (a pointer carries none): throws
/// convkit::error "bias has n values, expected K" unless bias_length == weights.n() (or bias is null
/// and bias_length is 0).
template <class T>
void conv2d(view4d<const T> input, view4d<const T> weights, const T* bias, index_t bias_length, view4d<T> out,
            const layer_options& opt = {}) {
  detail::check_bias_length(bias != nullptr, bias_length, weights.n());
  conv2d<T>(input, weights, bias, out, opt);
}
template <class T>
array4d<T> conv2d(view4d<const T> input, view4d<const T> weights, const T* bias, index_t bias_length,
                  const layer_options& opt = {}) {
  detail::check_bias_length(bias != nullptr, bias_length, weights.n());
  return conv2d<T>(input, weights, bias, opt);
}

// The same calls for any mix of view4d<T>, view4d<const T> and array4d<T> arguments, which template
// argument deduction would otherwise not convert.
template <class In, class W,
          class = std::enable_if_t<detail::is_4d_v<In> && detail::is_4d_v<W> &&
                                   std::is_same_v<detail::value_type_4d<In>, detail::value_type_4d<W>>>>
array4d<detail::value_type_4d<In>> conv2d(const In& input, const W& weights, const detail::value_type_4d<In>* bias,
                                          const layer_options& opt = {}) {
  using T = detail::value_type_4d<In>;
  return conv2d<T>(view4d<const T>(input), view4d<const T>(weights), bias, opt);
}

template <class In, class W, class Out,
          class = std::enable_if_t<detail::is_4d_v<In> && detail::is_4d_v<W> && detail::is_4d_v<Out> &&
                                   std::is_same_v<detail::value_type_4d<In>, detail::value_type_4d<W>> &&
                                   std::is_same_v<detail::value_type_4d<In>, detail::value_type_4d<Out>>>>
void conv2d(const In& input, const W& weights, const detail::value_type_4d<In>* bias, Out&& out,
            const layer_options& opt = {}) {
  using T = detail::value_type_4d<In>;
  conv2d<T>(view4d<const T>(input), view4d<const T>(weights), bias, view4d<T>(out), opt);
}

template <class In, class W,
          class = std::enable_if_t<detail::is_4d_v<In> && detail::is_4d_v<W> &&
                                   std::is_same_v<detail::value_type_4d<In>, detail::value_type_4d<W>>>>
array4d<detail::value_type_4d<In>> conv2d(const In& input, const W& weights, const detail::value_type_4d<In>* bias,
                                          index_t bias_length, const layer_options& opt = {}) {
  using T = detail::value_type_4d<In>;
  return conv2d<T>(view4d<const T>(input), view4d<const T>(weights), bias, bias_length, opt);
}

template <class In, class W, class Out,
          class = std::enable_if_t<detail::is_4d_v<In> && detail::is_4d_v<W> && detail::is_4d_v<Out> &&
                                   std::is_same_v<detail::value_type_4d<In>, detail::value_type_4d<W>> &&
                                   std::is_same_v<detail::value_type_4d<In>, detail::value_type_4d<Out>>>>
void conv2d(const In& input, const W& weights, const detail::value_type_4d<In>* bias, index_t bias_length, Out&& out,
            const layer_options& opt = {}) {
  using T = detail::value_type_4d<In>;
  conv2d<T>(view4d<const T>(input), view4d<const T>(weights), bias, bias_length, view4d<T>(out), opt);
}

/// Layers whose input and weights differ in element type (float and double): one clear error.
template <class In, class W, class... Rest,
          std::enable_if_t<detail::is_4d_v<In> && detail::is_4d_v<W> &&
                               !std::is_same_v<detail::value_type_4d<In>, detail::value_type_4d<W>>,
                           int> = 0>
array4d<detail::value_type_4d<In>> conv2d(const In&, const W&, Rest&&...) {
  static_assert(!detail::is_4d_v<In>,
                "convkit::conv2d on layers: input, weights, bias and out must all be float or "
                "all double (see In and W in this instantiation)");
  return {};
}

/// A layer prepared once and applied to many batches of one shape: validates, chooses the backend,
/// copies the weights and bias and allocates every buffer at construction; execute() allocates
/// nothing. Movable, not copyable, and not safe to execute from two threads at once (it owns one
/// workspace): give each thread its own layer_plan. A moved-from layer_plan throws convkit::error
/// on use.
template <class T>
class layer_plan {
 public:
  /// Prepares the layer for inputs of `input` shape [N, C, H, W]. weights and bias are copied.
  /// Throws like conv2d (see the top of this file).
  layer_plan(shape4d input, view4d<const T> weights, const T* bias, const layer_options& opt = {})
      : core_(detail::layer_problem<T>(input, weights, bias, opt, true), weights.data(), bias) {}

  layer_plan(layer_plan&&) noexcept = default;
  layer_plan& operator=(layer_plan&&) noexcept = default;
  layer_plan(const layer_plan&) = delete;
  layer_plan& operator=(const layer_plan&) = delete;

  /// out = the layer applied to input. input must be input_shape(), out output_shape(), not overlapping.
  void execute(view4d<const T> input, view4d<T> out) {
    detail::check_layer_call<T>(input, out, input_shape(), output_shape());
    core_.run(detail::planes_of(input), detail::planes_of(out));
  }

  /// Convenience: allocates and returns the output.
  array4d<T> operator()(view4d<const T> input) {
    const shape4d s = output_shape();
    array4d<T> out(s.n, s.c, s.h, s.w);
    execute(input, out.view());
    return out;
  }

  shape4d input_shape() const noexcept { return core_.problem().input_shape(); }
  shape4d output_shape() const noexcept { return core_.problem().output_shape(); }
  /// The backend that runs this plan; never algorithm::automatic.
  algorithm chosen() const noexcept { return core_.chosen(); }

 private:
  detail::prepared<T> core_;
};

CONVKIT_NAMESPACE_END
