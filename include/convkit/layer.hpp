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
// overloads that also take `bias_length` do, and throw if it is not K. Padding modes are border::zero, reflect, replicate and circular
// (PyTorch's padding_mode 'zeros', 'reflect', 'replicate', 'circular') and symmetric; every backend
// reads the input through convkit::extend, one channel plane at a time. Unlike PyTorch, reflect and
// circular also accept padding as large as or larger than the input (they continue periodically).
//
// Throws convkit::error, naming the argument, for everything layer_output_shape() rejects and for an
// `out` of the wrong shape or one that overlaps the input, the weights or the bias; and
// convkit::unavailable when layer_options::algo names a backend that is not in this program or does
// not compute layers.
#pragma once

#include <memory>
#include <string>
#include <type_traits>

#include "backends/direct.hpp"
#include "detail/backend.hpp"
#include "detail/threads.hpp"
#include "dispatch.hpp"
#include "layer_options.hpp"
#include "plan.hpp"
#include "view4d.hpp"

namespace convkit {

namespace detail {
/// Validates a layer request and resolves its threads; `input` may be null (plans).
template <class T>
layer_problem make_layer_problem(shape4d input_shape, view4d<const T> weights, const layer_options& opt,
                                 const view4d<const T>* input) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "convkit computes in float or double");
  layer_problem p{make_layer_geometry(input_shape, weights.shape(), opt), opt, true};
  p.opt.threads = resolve_threads(opt.threads);
  if (opt.algo == algorithm::automatic) {
    const auto finite = [](view4d<const T> v) { return v.empty() || all_finite(view2d<const T>(v.data(), 1, v.size())); };
    p.finite = finite(weights) && (input == nullptr || finite(*input));
  }
  return p;
}

template <class T>
void check_layer_call(view4d<const T> input, view4d<const T> out, shape4d in_shape, shape4d out_shape) {
  if (input.shape() != in_shape) throw error("input is " + to_string(input.shape()) + ", expected " + to_string(in_shape));
  if (out.shape() != out_shape) throw error("out is " + to_string(out.shape()) + ", expected [N, K, OH, OW] = " + to_string(out_shape));
  if (overlaps(input.data(), input.size(), out.data(), out.size()))
    throw error("out aliases input: convolution cannot run in place");
}

inline void check_bias_length(bool has_bias, index bias_length, index filters) {
  const index want = has_bias ? filters : 0;
  if (bias_length != want)
    throw error("bias has " + std::to_string(bias_length) + " values, expected " + std::to_string(want) +
                (has_bias ? " (K = weights.n())" : " (bias is null)"));
}

template <class T>
void check_layer_parameters(view4d<const T> weights, const T* bias, view4d<const T> out) {
  if (overlaps(weights.data(), weights.size(), out.data(), out.size())) throw error("out aliases weights");
  if (bias != nullptr && overlaps(bias, weights.n(), out.data(), out.size())) throw error("out aliases bias");
}
}  // namespace detail

/// out = the layer (see layer_options.hpp) of input [N, C, H, W] with weights [K, C/groups, R, S]
/// and bias (null or K values); out must be [N, K, OH, OW] and overlap none of the others.
template <class T>
void conv2d(view4d<const T> input, view4d<const T> weights, const T* bias, view4d<T> out, const layer_options& opt = {}) {
  const detail::layer_problem p = detail::make_layer_problem<T>(input.shape(), weights, opt, &input);
  detail::check_layer_call<T>(input, out, input.shape(), p.geo.out());
  detail::check_layer_parameters<T>(weights, bias, out);
  detail::choose_layer_backend(p).layer_factory<T>()(p, weights, bias)->execute(input, out);
}

/// The layer's output, allocated: [N, K, OH, OW].
template <class T>
array4d<T> conv2d(view4d<const T> input, view4d<const T> weights, const T* bias, const layer_options& opt = {}) {
  // Validate before allocating, so that a bad call throws the argument's error, not bad_alloc.
  const shape4d s = detail::make_layer_geometry(input.shape(), weights.shape(), opt).out();
  array4d<T> out(s.n, s.c, s.h, s.w);
  conv2d<T>(input, weights, bias, out.view(), opt);
  return out;
}

/// The two calls above with the bias's length given too (a pointer carries none): throws
/// convkit::error "bias has n values, expected K" unless bias_length == weights.n() (or bias is null
/// and bias_length is 0).
template <class T>
void conv2d(view4d<const T> input, view4d<const T> weights, const T* bias, index bias_length, view4d<T> out,
            const layer_options& opt = {}) {
  detail::check_bias_length(bias != nullptr, bias_length, weights.n());
  conv2d<T>(input, weights, bias, out, opt);
}
template <class T>
array4d<T> conv2d(view4d<const T> input, view4d<const T> weights, const T* bias, index bias_length,
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

/// A layer prepared once and applied to many batches of one shape: validates, chooses the backend,
/// copies the weights and bias and allocates every buffer at construction; execute() allocates
/// nothing. Movable, not copyable, and not safe to execute from two threads at once (it owns one
/// workspace): give each thread its own layer_plan.
template <class T>
class layer_plan {
 public:
  /// Prepares the layer for inputs of `input` shape [N, C, H, W]. weights and bias are copied.
  /// Throws like conv2d (see the top of this file).
  layer_plan(shape4d input, view4d<const T> weights, const T* bias, const layer_options& opt = {})
      : problem_(detail::make_layer_problem<T>(input, weights, opt, nullptr)) {
    problem_.reused = true;
    const detail::backend& b = detail::choose_layer_backend(problem_);
    chosen_ = b.algo;
    exec_ = b.layer_factory<T>()(problem_, weights, bias);
  }

  layer_plan(layer_plan&&) noexcept = default;
  layer_plan& operator=(layer_plan&&) noexcept = default;
  layer_plan(const layer_plan&) = delete;
  layer_plan& operator=(const layer_plan&) = delete;

  /// out = the layer applied to input. input must be input_shape(), out output_shape(), not overlapping.
  void execute(view4d<const T> input, view4d<T> out) {
    detail::check_layer_call<T>(input, out, input_shape(), output_shape());
    exec_->execute(input, out);
  }

  /// Convenience: allocates and returns the output.
  array4d<T> operator()(view4d<const T> input) {
    const shape4d s = output_shape();
    array4d<T> out(s.n, s.c, s.h, s.w);
    execute(input, out.view());
    return out;
  }

  shape4d input_shape() const noexcept { return problem_.geo.input(); }
  shape4d output_shape() const noexcept { return problem_.geo.out(); }
  /// The backend that runs this plan; never algorithm::automatic.
  algorithm chosen() const noexcept { return chosen_; }

 private:
  detail::layer_problem problem_;
  algorithm chosen_ = algorithm::direct;
  std::unique_ptr<detail::layer_executor<T>> exec_;
};

}  // namespace convkit
