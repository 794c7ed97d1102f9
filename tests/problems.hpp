// The one problem generator and the one checker that every backend's tests share, for both front
// doors: a single image (view2d, options) and a layer (view4d, layer_options).
//
// A conv_case is one convolution as detail/problem.hpp defines it (N, C, K, groups, per-axis
// geometry, border, bias) together with the front door it goes through. conv_grid() covers both
// doors' every dimension (see there), then adds random cases drawn from the run's seed. Inputs are
// fresh random numbers on every run: the seed is printed, and CONVKIT_TEST_SEED=<n> replays a run.
#pragma once

#include <convkit/conv2d.hpp>
#include <convkit/detail/arguments.hpp>
#include <convkit/image.hpp>
#include <convkit/layer.hpp>
#include <convkit/layer_options.hpp>
#include <convkit/reference.hpp>
#include <convkit/view4d.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace convkit::testing {

/// The run's seed: CONVKIT_TEST_SEED if set, else fresh from std::random_device (printed once).
inline std::uint64_t run_seed() {
  static const std::uint64_t seed = [] {
    std::uint64_t s;
    if (const char* env = std::getenv("CONVKIT_TEST_SEED")) {
      s = std::strtoull(env, nullptr, 10);
    } else {
      std::random_device rd;
      s = (std::uint64_t(rd()) << 32) ^ rd();
    }
    std::printf("convkit tests: CONVKIT_TEST_SEED=%llu\n", static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

/// The entry point a case is computed through: conv2d / plan with options, or conv2d / layer_plan
/// with layer_options.
enum class front_door { image, layer };

/// One convolution: input [n, c, rows, cols], weights [k, c / groups, k_rows, k_cols]. A single
/// image (image_case) is n = c = k = groups = 1 with an output mode, a convolution or correlation, a
/// constant border value and views whose rows are `view_pad` elements longer than cols; a layer
/// (layer_case) has paddings on both sides and optionally a bias of k values.
struct conv_case {
  front_door door = front_door::image;
  index_t n = 1, c = 1, k = 1, rows = 1, cols = 1, k_rows = 1, k_cols = 1;
  int groups = 1;
  int stride_rows = 1, stride_cols = 1, dilation_rows = 1, dilation_cols = 1;
  border edge = border::zero;
  output mode = output::full;      ///< image only
  bool correlate = false;          ///< image only: a layer always correlates
  double edge_value = 0.0;         ///< image only: border::constant's value
  index_t view_pad = 0;            ///< image only
  int pad_rows = 0, pad_cols = 0;  ///< layer only
  bool bias = false;               ///< layer only
  algorithm algo = algorithm::automatic;
  convkit::accuracy accuracy = convkit::accuracy::automatic;
  int threads = 0;
  tuning tune;

  shape4d input() const noexcept { return {n, c, rows, cols}; }
  shape4d weights() const noexcept { return {k, c / groups, k_rows, k_cols}; }

  /// The options of the image front door (a case with a layer's fields has none).
  options image_opt() const {
    if (door != front_door::image || n * c * k * groups != 1 || pad_rows != 0 || pad_cols != 0 || bias)
      throw std::logic_error("not a single image: " + describe());
    options o;
    o.mode = mode;
    o.edge = edge;
    o.edge_value = edge_value;
    o.stride_rows = stride_rows;
    o.stride_cols = stride_cols;
    o.dilation_rows = dilation_rows;
    o.dilation_cols = dilation_cols;
    o.correlate = correlate;
    o.algo = algo;
    o.accuracy = accuracy;
    o.threads = threads;
    o.tune = tune;
    return o;
  }
  /// The options of the layer front door (a case with an image's fields has none).
  layer_options layer_opt() const {
    if (door != front_door::layer || mode != output::full || correlate || edge_value != 0 || view_pad != 0)
      throw std::logic_error("not a layer: " + describe());
    layer_options o;
    o.stride_rows = stride_rows;
    o.stride_cols = stride_cols;
    o.pad_rows = pad_rows;
    o.pad_cols = pad_cols;
    o.dilation_rows = dilation_rows;
    o.dilation_cols = dilation_cols;
    o.groups = groups;
    o.edge = edge;
    o.algo = algo;
    o.accuracy = accuracy;
    o.threads = threads;
    o.tune = tune;
    return o;
  }

  std::string describe() const {
    std::ostringstream o;
    if (door == front_door::image)
      o << rows << "x" << cols << " * " << k_rows << "x" << k_cols << " " << to_string(mode)
        << (correlate ? " corr" : " conv") << " view pad " << view_pad;
    else
      o << "input [" << n << "," << c << "," << rows << "," << cols << "] weights [" << k << "," << c / groups << ","
        << k_rows << "," << k_cols << "] groups " << groups << " pad " << pad_rows << "," << pad_cols
        << (bias ? " bias" : " no bias");
    o << " " << to_string(edge);
    if (edge == border::constant) o << " " << edge_value;
    o << " stride " << stride_rows << "," << stride_cols << " dil " << dilation_rows << "," << dilation_cols;
    if (accuracy != convkit::accuracy::automatic) o << " accuracy " << to_string(accuracy);
    return o.str();
  }
};

/// A single image of rows x cols and a k_rows x k_cols kernel: full output, zero border, convolution.
inline conv_case image_case(index_t rows, index_t cols, index_t k_rows, index_t k_cols) {
  conv_case c;
  c.rows = rows;
  c.cols = cols;
  c.k_rows = k_rows;
  c.k_cols = k_cols;
  return c;
}

/// A layer: input [n, c, h, w], weights [k, c, r, s] (one group, unpadded, zero border).
inline conv_case layer_case(index_t n, index_t c, index_t k, index_t h, index_t w, index_t r, index_t s,
                            bool bias = false) {
  conv_case x = image_case(h, w, r, s);
  x.door = front_door::layer;
  x.n = n;
  x.c = c;
  x.k = k;
  x.bias = bias;
  return x;
}

/// The grid: each front door's deterministic coverage, then `random_cases` cases of each drawn from
/// the run's seed; `only` keeps one door's.
///   images  every output mode x border x convolution/correlation, with kernels odd, even, 1x1,
///           non-square and larger than the image, strides and dilations 1..3, and views whose
///           row_stride exceeds cols;
///   layers  N 1..3, C and K 1..8, groups dividing both (dense, grouped, depthwise groups = C = K),
///           R and S 1..7, stride, padding and dilation per axis 1..3 / 0..3 / 1..3, every border a
///           layer takes (all but constant), with and without bias, including the 1x1 stride-1
///           unpadded case.
inline std::vector<conv_case> conv_grid(std::optional<front_door> only = std::nullopt, int random_cases = 64) {
  std::vector<conv_case> cases;
  const auto add = [&](conv_case c) {
    // A 'valid' image and a layer need the dilated kernel inside the (padded) input: grow the
    // planes until it fits.
    if (c.door == front_door::layer || c.mode == output::valid) {
      c.rows = std::max(c.rows, (c.k_rows - 1) * c.dilation_rows + 1 - 2 * index_t(c.pad_rows));
      c.cols = std::max(c.cols, (c.k_cols - 1) * c.dilation_cols + 1 - 2 * index_t(c.pad_cols));
    }
    cases.push_back(c);
  };
  // Strides and dilations 1..3 from the case's number m (all 1 for the plain case).
  const auto steps = [](conv_case& c, index_t m, bool plain) {
    c.stride_rows = plain ? 1 : int(1 + m % 3);
    c.stride_cols = plain ? 1 : int(1 + (m / 3) % 3);
    c.dilation_rows = plain ? 1 : int(1 + (m / 2) % 3);
    c.dilation_cols = plain ? 1 : int(1 + (m / 5) % 3);
  };
  if (only != front_door::layer) {
    static const index_t kernels[][2] = {{1, 1}, {3, 3}, {2, 2}, {5, 4}, {4, 7}, {9, 9},
                                         {1, 6}, {8, 1}, {6, 6}, {7, 3}, {2, 9}};
    static const index_t images[][2] = {{17, 23}, {32, 8}, {5, 40}, {3, 4}, {24, 24}, {1, 13}, {11, 1}, {2, 2}};
    index_t m = 0;
    for (output size : {output::full, output::same, output::valid})
      for (border edge :
           {border::zero, border::constant, border::replicate, border::reflect, border::symmetric, border::circular})
        for (bool correlate : {false, true})
          for (int i = 0; i < 4; ++i, ++m) {
            conv_case c = image_case(images[m % 8][0], images[m % 8][1], kernels[m % 11][0], kernels[m % 11][1]);
            c.view_pad = (m % 3 == 0) ? 5 : 0;
            c.mode = size;
            c.edge = edge;
            c.edge_value = edge == border::constant ? 0.75 : 0.0;
            c.correlate = correlate;
            steps(c, m, i == 0);
            add(c);
          }
    std::mt19937_64 rng(run_seed());
    const auto pick = [&](index_t lo, index_t hi) { return std::uniform_int_distribution<index_t>(lo, hi)(rng); };
    for (int i = 0; i < random_cases; ++i) {
      conv_case c;
      c.rows = pick(1, 48);
      c.cols = pick(1, 48);
      c.k_rows = pick(1, 9);
      c.k_cols = pick(1, 9);
      const index_t padded = pick(0, 1);  // the draws in sequence: operands' order is unspecified
      c.view_pad = padded * pick(1, 7);
      c.mode = static_cast<output>(pick(0, 2));
      c.edge = static_cast<border>(pick(0, 5));
      c.edge_value = std::uniform_real_distribution<double>(-2, 2)(rng);
      c.correlate = pick(0, 1) == 1;
      c.stride_rows = int(pick(1, 3));
      c.stride_cols = int(pick(1, 3));
      c.dilation_rows = int(pick(1, 3));
      c.dilation_cols = int(pick(1, 3));
      add(c);
    }
  }
  if (only != front_door::image) {
    // Dense, grouped (2..4 groups of 1..2 channels and 1..2 filters) or depthwise channels from m.
    const auto channels = [](conv_case& c, int grouping, index_t m) {
      if (grouping == 0) {
        c.groups = 1;
        c.c = 1 + (3 * m) % 8;
        c.k = 1 + (5 * m + 2) % 8;
      } else if (grouping == 1) {
        c.groups = int(2 + m % 3);
        c.c = c.groups * (1 + m % 2);
        c.k = c.groups * (1 + (m / 2) % 2);
      } else {
        c.groups = int(1 + (7 * m + 3) % 8);
        c.c = c.k = c.groups;
      }
    };
    static const index_t images[][2] = {{9, 11}, {16, 5}, {1, 7}, {12, 12}, {6, 1}, {17, 3}, {2, 2}, {8, 14}};
    static const border borders[] = {border::zero, border::reflect, border::replicate, border::circular,
                                     border::symmetric};
    index_t m = 0;
    for (border edge : borders)
      for (int grouping = 0; grouping < 3; ++grouping)
        for (bool bias : {false, true})
          for (int i = 0; i < 4; ++i, ++m) {
            // The first of each four: the common 3x3 "same" layer, or every fourth time the 1x1
            // stride-1 unpadded one.
            const bool plain = i == 0, pointwise = plain && m % 16 == 0;
            conv_case c = layer_case(1 + m % 3, 1, 1, images[m % 8][0], images[m % 8][1], plain ? 3 : 1 + m % 7,
                                     plain ? 3 : 1 + (3 * m + 1) % 7, bias);
            if (pointwise) c.k_rows = c.k_cols = 1;
            channels(c, grouping, m);
            c.edge = edge;
            steps(c, m, plain);
            c.pad_rows = plain ? (pointwise ? 0 : 1) : int(m % 4);
            c.pad_cols = plain ? (pointwise ? 0 : 1) : int((m / 4) % 4);
            add(c);
          }
    std::mt19937_64 rng(run_seed() ^ 0x1a7e5ULL);
    const auto pick = [&](index_t lo, index_t hi) { return std::uniform_int_distribution<index_t>(lo, hi)(rng); };
    for (int i = 0; i < random_cases; ++i) {
      conv_case c = layer_case(1, 1, 1, 1, 1, 1, 1);
      c.n = pick(1, 3);
      const index_t number = pick(0, 1000);  // before the grouping: GCC's order of f(pick(), pick())
      channels(c, int(pick(0, 2)), number);
      c.rows = pick(1, 20);
      c.cols = pick(1, 20);
      c.k_rows = pick(1, 7);
      c.k_cols = pick(1, 7);
      c.bias = pick(0, 1) == 1;
      c.edge = borders[pick(0, 4)];
      c.stride_rows = int(pick(1, 3));
      c.stride_cols = int(pick(1, 3));
      c.pad_rows = int(pick(0, 3));
      c.pad_cols = int(pick(0, 3));
      c.dilation_rows = int(pick(1, 3));
      c.dilation_cols = int(pick(1, 3));
      add(c);
    }
  }
  return cases;
}

/// The validated problem of case c in precision T (its tuning resolved now).
template <class T>
detail::conv_problem problem_of(const conv_case& c) {
  if (c.door == front_door::image)
    return detail::make_problem(detail::image_request(c.rows, c.cols, c.k_rows, c.k_cols, c.image_opt(), sizeof(T)));
  return detail::make_problem(detail::layer_request(c.input(), c.weights(), c.bias, c.layer_opt(), sizeof(T)));
}

/// Uniform random values in [-1, 1), from a generator seeded by the run's seed.
template <class T>
void fill_random(view2d<T> v, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  for (index_t r = 0; r < v.rows(); ++r)
    for (index_t c = 0; c < v.cols(); ++c) v(r, c) = static_cast<T>(d(rng));
}
template <class T>
void fill_random(view4d<T> v, std::mt19937_64& rng) {
  fill_random(view2d<T>(v.data(), 1, v.size()), rng);
}

/// Random pixels over P's whole range (floating pixels: [0, 1), as images hold them).
template <class P>
void fill_pixels(image_view<P> v, std::mt19937_64& rng) {
  for (index_t r = 0; r < v.rows(); ++r)
    for (index_t c = 0; c < v.cols() * v.channels(); ++c) {
      if constexpr (std::is_integral_v<P>)
        v.row(r)[c] =
            P(std::uniform_int_distribution<int>(std::numeric_limits<P>::lowest(), std::numeric_limits<P>::max())(rng));
      else
        v.row(r)[c] = P(std::uniform_real_distribution<double>(0, 1)(rng));
    }
}

/// The default filling of kernels in check_case: uniform random values.
struct random_fill {
  template <class View>
  void operator()(View v, std::mt19937_64& rng) const {
    fill_random(v, rng);
  }
};

/// conv2d<T> through either front door: the compute of most checks.
template <class T>
struct call_conv2d {
  template <class... Args>
  void operator()(Args&&... args) const {
    conv2d<T>(std::forward<Args>(args)...);
  }
};

/// One callable from several, e.g. a compute for each front door.
template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

/// How much rounding error a backend may make, in units of T's epsilon, for output element
/// (n, k, i, j), as multiples of two scales:
///   local   |bias_k| + the sum over the element's taps of |input| * |kernel|: a direct sum of
///           products;
///   global  ||w_k||_2 * sqrt(sum over filter k's group of channels ch of ||extended input plane
///           (n, ch)||_2^2) + |bias_k|, which bounds every element of output plane (n, k) by
///           Cauchy-Schwarz (for a single image ||extended input||_2 * ||kernel||_2): a transform,
///           whose error spreads evenly.
/// A direct method has local = taps + 1 (rounding of each product and each addition), global = 0;
/// an FFT has local = 0 and global = c * log2(transform size) for a small stated c (fft_error.hpp).
struct error_model {
  double local = 0, global = 0;
};

/// Roundoff bound of a direct evaluation: a sum of C/groups * k_rows * k_cols products accumulates
/// at most that many roundings (plus one for the product, or the bias), relative to the magnitude sum.
inline error_model direct_error(const conv_case& c) { return {double(c.c / c.groups * c.k_rows * c.k_cols + 1), 0.0}; }

/// The accuracy contract (types.hpp, accuracy::componentwise): contract_multiple times gamma_m with
/// m = the taps and the bias's rounding, gamma_m = m u / (1 - m u), u = eps / 2.
template <class T>
error_model contract_error(const conv_case& c) {
  const double m = direct_error(c).local, u = std::numeric_limits<T>::epsilon() / 2;
  return {detail::contract_multiple * m / 2 / (1 - m * u), 0.0};
}

/// Runs the caller's `compute` on fresh random data for case c through the case's front door,
///   image  compute(view2d<const T> input, view2d<const T> kernel, view2d<T> out, const options&)
///   layer  compute(view4d<const T> input, view4d<const T> weights, const T* bias, view4d<T> out,
///                  const layer_options&)       (bias null where the case has none)
/// (a callable with one of these serves its door's cases; call_conv2d<T> serves both), and compares every
/// output element with reference::conv2d within what error model `m` allows. The output is
/// poisoned with NaN first (unwritten elements fail) and surrounded by sentinels, before, after and
/// between its rows in padded views (writes outside it fail). `fill_kernel(view2d<T>, rng)` makes each
/// filter plane, `fill_input(view2d<T>, rng)` each input plane.
template <class T, class Compute, class Fill = random_fill, class FillInput = random_fill>
void check_case(const conv_case& c, std::mt19937_64& rng, Compute&& compute, const error_model& m,
                Fill&& fill_kernel = {}, FillInput&& fill_input = {}) {
  INFO(c.describe());
  const detail::conv_problem g = problem_of<T>(c);
  const shape4d s = g.output_shape();
  // Planes whose rows are view_pad elements longer than the views' (packed for a layer's view4d).
  const index_t in_stride = c.cols + c.view_pad, out_stride = s.w + c.view_pad, guard = 16;
  const index_t size = s.n * s.c * s.h * out_stride;
  array2d<T> input(c.n * c.c * c.rows, in_stride), bias(1, c.k), storage(1, size + 2 * guard);
  array4d<T> weights(c.k, c.c / c.groups, c.k_rows, c.k_cols);
  const detail::planes<T> in{input.data(), c.c * c.rows * in_stride, c.rows * in_stride, in_stride};
  const detail::planes<T> out{storage.data() + guard, s.c * s.h * out_stride, s.h * out_stride, out_stride};
  for (index_t i = 0; i < c.n * c.c; ++i) fill_input(in.view(i / c.c, i % c.c, c.rows, c.cols), rng);
  for (index_t i = 0; i < weights.n() * weights.c(); ++i)
    fill_kernel(weights.view().plane(i / weights.c(), i % weights.c()), rng);
  fill_random(bias.view(), rng);
  const T* b = c.bias ? bias.data() : nullptr;
  const T sentinel = T(12345);
  const auto outside = [&](index_t i) { return i < guard || i >= guard + size || (i - guard) % out_stride >= s.w; };
  for (index_t i = 0; i < storage.size(); ++i)
    storage.data()[i] = outside(i) ? sentinel : std::numeric_limits<T>::quiet_NaN();

  // Compute through the case's door; the reference and the magnitudes |bias| + sum |x||k|, [N, K, OH, OW].
  std::vector<double> want, mag;
  const auto elements = [](const auto& a) { return std::vector<double>(a.data(), a.data() + a.size()); };
  if (c.door == front_door::image) {
    const options o = c.image_opt();
    const view2d<const T> image = in.view(0, 0, c.rows, c.cols), kernel = weights.view().plane(0, 0);
    if constexpr (std::is_invocable_v<Compute&, view2d<const T>, view2d<const T>, view2d<T>, const options&>)
      compute(image, kernel, out.view(0, 0, s.h, s.w), o);
    else
      FAIL("compute takes no single image (view2d): this case needs it");
    want = elements(reference::conv2d<T>(image, kernel, o));
    mag = elements(reference::conv2d<T>(image, kernel, o, true));
  } else {
    const layer_options o = c.layer_opt();  // view_pad 0: a view4d is packed
    const view4d<const T> x(input.data(), c.n, c.c, c.rows, c.cols);
    if constexpr (std::is_invocable_v<Compute&, view4d<const T>, view4d<const T>, const T*, view4d<T>,
                                      const layer_options&>)
      compute(x, view4d<const T>(weights), b, view4d<T>(out.data, s.n, s.c, s.h, s.w), o);
    else
      FAIL("compute takes no layer (view4d): this case needs it");
    want = elements(reference::conv2d<T>(x, weights, b, o));
    mag = elements(reference::conv2d<T>(x, weights, b, o, true));
  }

  // ||extended input plane||_2^2 per image and channel, for the global scale: only a transform's
  // model needs it (and a direct method's problem may have an extended input far too large to make:
  // strides, dilations or paddings far beyond the image).
  array2d<double> plane2(c.n, c.c);
  if (m.global > 0) {
    array2d<T> ext(g.rows.extent, g.cols.extent);
    for (index_t i = 0; i < c.n * c.c; ++i) {
      extend<T>(in.view(i / c.c, i % c.c, c.rows, c.cols), ext.view(), g.rows.pad_before, g.cols.pad_before, g.edge,
                g.fill<T>());
      for (index_t j = 0; j < ext.size(); ++j) plane2.data()[i] += double(ext.data()[j]) * double(ext.data()[j]);
    }
  }
  const double eps = std::numeric_limits<T>::epsilon();
  const index_t taps = weights.c() * c.k_rows * c.k_cols;
  index_t bad = 0;
  for (index_t n = 0; n < s.n; ++n)
    for (index_t k = 0; k < s.c; ++k) {
      double w2 = 0, x2 = 0;
      for (index_t i = 0; i < taps; ++i) w2 += std::pow(double(weights.data()[k * taps + i]), 2);
      for (index_t ch = 0; ch < g.c_per_group(); ++ch) x2 += plane2(n, (k / g.k_per_group()) * g.c_per_group() + ch);
      const double scale = std::sqrt(w2) * std::sqrt(x2) + (b != nullptr ? std::abs(double(b[k])) : 0.0);
      for (index_t i = 0; i < s.h; ++i)
        for (index_t j = 0; j < s.w; ++j) {
          const std::size_t e = std::size_t(((n * s.c + k) * s.h + i) * s.w + j);
          const double got = static_cast<double>(out.view(n, k, s.h, s.w)(i, j));
          const double err = std::abs(got - want[e]);
          const double allowed = eps * (m.local * mag[e] + m.global * scale) + 1e-300;
          if (!(err <= allowed) && bad++ < 3) {
            INFO("element (" << n << ", " << k << ", " << i << ", " << j << "): got " << got << ", want " << want[e]
                             << ", |x||k| " << mag[e]);
            CHECK(err <= allowed);
          }
        }
    }
  for (index_t i = 0; i < storage.size(); ++i)
    if (outside(i) && storage.data()[i] != sentinel && bad++ < 3)
      FAIL_CHECK("wrote outside the output, " << i - guard << " elements from its first");
  CHECK(bad == 0);
}

/// Runs check(i, rng) for i < count from `threads` threads at once (i on thread i % threads, each
/// thread with its own generator from `seed`); check returns "" or what went wrong. Failures are
/// reported after every thread has joined (Catch2's assertions are not thread-safe), and every i
/// must have been checked.
template <class Check>
void check_concurrently(std::size_t count, int threads, std::uint64_t seed, Check&& check) {
  std::vector<std::vector<std::string>> failures(static_cast<std::size_t>(threads));
  std::atomic<std::size_t> checked{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(seed + 101 * std::uint64_t(t));
      for (std::size_t i = std::size_t(t); i < count; i += std::size_t(threads)) {
        std::string failure = check(i, rng);
        if (!failure.empty()) failures[std::size_t(t)].push_back(std::move(failure));
        ++checked;
      }
    });
  for (auto& th : pool) th.join();
  CHECK(checked == count);
  for (const auto& f : failures)
    for (const auto& msg : f) FAIL_CHECK(msg);
}

}  // namespace convkit::testing
