// The one problem generator and the one checker that every backend's tests share.
//
// problem_grid() covers every output mode x border x convolution/correlation, with kernel shapes that
// are odd, even, 1x1, non-square and larger than the image, strides and dilations 1..3, and views
// whose row_stride exceeds cols; then adds random cases drawn from the run's seed. Inputs are fresh
// random numbers on every run: the seed is printed, and CONVKIT_TEST_SEED=<n> replays a run.
//
// layer_grid() and check_layer_case() do the same for convolution layers (layer_options.hpp).
#pragma once

#include <convkit/conv2d.hpp>
#include <convkit/detail/arguments.hpp>
#include <convkit/layer_options.hpp>
#include <convkit/reference.hpp>
#include <convkit/view4d.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
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

struct problem_case {
  index_t rows, cols, k_rows, k_cols;
  index_t pad;  ///< extra elements at the end of every row of the input and output views
  options opt;

  std::string describe() const {
    std::ostringstream o;
    o << rows << "x" << cols << " * " << k_rows << "x" << k_cols << " " << to_string(opt.mode) << " "
      << to_string(opt.edge) << (opt.correlate ? " corr" : " conv") << " stride " << opt.stride_rows << ","
      << opt.stride_cols << " dil " << opt.dilation_rows << "," << opt.dilation_cols << " pad " << pad;
    return o.str();
  }
};

/// The shared grid (deterministic coverage) followed by `random_cases` cases drawn from the seed.
inline std::vector<problem_case> problem_grid(int random_cases = 64) {
  static const index_t kernels[][2] = {{1, 1}, {3, 3}, {2, 2}, {5, 4}, {4, 7}, {9, 9},
                                       {1, 6}, {8, 1}, {6, 6}, {7, 3}, {2, 9}};
  static const index_t images[][2] = {{17, 23}, {32, 8}, {5, 40}, {3, 4}, {24, 24}, {1, 13}, {11, 1}, {2, 2}};
  std::vector<problem_case> cases;
  const auto add = [&](problem_case c) {
    // valid mode needs the dilated kernel inside the image: grow the image until it fits.
    if (c.opt.mode == output::valid) {
      c.rows = std::max(c.rows, (c.k_rows - 1) * c.opt.dilation_rows + 1);
      c.cols = std::max(c.cols, (c.k_cols - 1) * c.opt.dilation_cols + 1);
    }
    cases.push_back(c);
  };
  int n = 0;
  for (output size : {output::full, output::same, output::valid})
    for (border edge :
         {border::zero, border::constant, border::replicate, border::reflect, border::symmetric, border::circular})
      for (bool correlate : {false, true})
        for (int i = 0; i < 4; ++i, ++n) {
          problem_case c{};
          c.rows = images[n % 8][0];
          c.cols = images[n % 8][1];
          c.k_rows = kernels[n % 11][0];
          c.k_cols = kernels[n % 11][1];
          c.pad = (n % 3 == 0) ? 5 : 0;
          c.opt.mode = size;
          c.opt.edge = edge;
          c.opt.edge_value = edge == border::constant ? 0.75 : 0.0;
          c.opt.correlate = correlate;
          c.opt.stride_rows = 1 + n % 3;
          c.opt.stride_cols = 1 + (n / 3) % 3;
          c.opt.dilation_rows = 1 + (n / 2) % 3;
          c.opt.dilation_cols = 1 + (n / 5) % 3;
          if (i == 0) c.opt.stride_rows = c.opt.stride_cols = c.opt.dilation_rows = c.opt.dilation_cols = 1;
          add(c);
        }
  std::mt19937_64 rng(run_seed());
  const auto pick = [&](index_t lo, index_t hi) { return std::uniform_int_distribution<index_t>(lo, hi)(rng); };
  for (int i = 0; i < random_cases; ++i) {
    problem_case c{};
    c.rows = pick(1, 48);
    c.cols = pick(1, 48);
    c.k_rows = pick(1, 9);
    c.k_cols = pick(1, 9);
    c.pad = pick(0, 1) * pick(1, 7);
    c.opt.mode = static_cast<output>(pick(0, 2));
    c.opt.edge = static_cast<border>(pick(0, 5));
    c.opt.edge_value = std::uniform_real_distribution<double>(-2, 2)(rng);
    c.opt.correlate = pick(0, 1) == 1;
    c.opt.stride_rows = int(pick(1, 3));
    c.opt.stride_cols = int(pick(1, 3));
    c.opt.dilation_rows = int(pick(1, 3));
    c.opt.dilation_cols = int(pick(1, 3));
    add(c);
  }
  return cases;
}

/// The validated problem of case c in precision T (its options' tuning resolved now).
template <class T>
detail::conv_problem problem_of(const problem_case& c) {
  return detail::make_problem(detail::image_request(c.rows, c.cols, c.k_rows, c.k_cols, c.opt, sizeof(T)));
}

/// Uniform random values in [-1, 1), from a generator seeded by the run's seed.
template <class T>
void fill_random(view2d<T> v, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  for (index_t r = 0; r < v.rows(); ++r)
    for (index_t c = 0; c < v.cols(); ++c) v(r, c) = static_cast<T>(d(rng));
}

/// An array with `pad` extra columns and a view of its first `cols` columns: a view whose
/// row_stride exceeds cols.
template <class T>
struct padded {
  array2d<T> storage;
  view2d<T> view;
  padded(index_t rows, index_t cols, index_t pad)
      : storage(rows, cols + pad), view(storage.data(), rows, cols, cols + pad) {}
};

/// How much rounding error a backend may make, in units of T's epsilon, for one output element:
///   local  * (sum over its taps of |input| * |kernel|)      - a direct sum of products, and
///   global * ||extended input||_2 * ||kernel||_2            - a transform, whose error spreads evenly.
/// A direct method has local = taps + 1 (rounding of each product and each addition), global = 0; an
/// FFT has local = 0 and global = c * log2(transform size) for a small stated c.
struct error_model {
  double local = 0, global = 0;
};

/// Uniform random values in [-1, 1), for layers.
template <class T>
void fill_random(view4d<T> v, std::mt19937_64& rng) {
  fill_random(view2d<T>(v.data(), 1, v.size()), rng);
}

/// The default filling of kernels and weights in the checkers below: uniform random values.
struct random_fill {
  template <class View>
  void operator()(View v, std::mt19937_64& rng) const {
    fill_random(v, rng);
  }
};

/// Runs `compute(input, kernel, out, opt)` on fresh random data for case c and compares with the
/// reference: every element within the error_model `model(c)` allows (see error_model). The output
/// is poisoned with NaN first (unwritten elements fail) and the columns beyond it with a sentinel
/// (elements written outside the view fail). `fill_kernel(view2d<T>, rng)` makes the kernel.
template <class T, class Compute, class Model, class Fill = random_fill>
void check_case(const problem_case& c, std::mt19937_64& rng, Compute&& compute, Model&& model,
                Fill&& fill_kernel = {}) {
  INFO(c.describe());
  padded<T> in(c.rows, c.cols, c.pad);
  array2d<T> kernel(c.k_rows, c.k_cols);
  fill_random(in.view, rng);
  fill_kernel(kernel.view(), rng);
  const shape2d s = output_shape(c.rows, c.cols, c.k_rows, c.k_cols, c.opt);
  padded<T> out(s.rows, s.cols, c.pad);
  const T sentinel = T(12345);
  for (index_t r = 0; r < s.rows; ++r)
    for (index_t col = 0; col < s.cols + c.pad; ++col)
      out.storage(r, col) = col < s.cols ? std::numeric_limits<T>::quiet_NaN() : sentinel;
  compute(view2d<const T>(in.view), view2d<const T>(kernel.view()), out.view, c.opt);
  const array2d<double> want = reference::conv2d<T>(in.view, kernel.view(), c.opt);
  const array2d<double> mag = reference::conv2d<T>(in.view, kernel.view(), c.opt, true);
  const error_model m = model(c);
  // ||extended input||_2 * ||kernel||_2: the scale of a transform's error (Cauchy-Schwarz bounds
  // every output element by it). Only a transform's model needs it (and a direct method's problem
  // may have an extended input far too large to make: strides or dilations far beyond the image).
  double scale = 0;
  if (m.global > 0) {
    const detail::conv_problem g = problem_of<T>(c);
    array2d<T> ext(g.rows.extent, g.cols.extent);
    extend<T>(in.view, ext.view(), g.rows.pad_before, g.cols.pad_before, c.opt.edge, T(c.opt.edge_value));
    double ext2 = 0, k2 = 0;
    for (index_t i = 0; i < ext.size(); ++i) ext2 += double(ext.data()[i]) * double(ext.data()[i]);
    for (index_t i = 0; i < kernel.size(); ++i) k2 += double(kernel.data()[i]) * double(kernel.data()[i]);
    scale = std::sqrt(ext2) * std::sqrt(k2);
  }
  const double eps = std::numeric_limits<T>::epsilon();
  const auto allowed = [&](double magnitude) { return eps * (m.local * magnitude + m.global * scale) + 1e-300; };
  index_t bad = 0;
  for (index_t r = 0; r < s.rows; ++r) {
    for (index_t col = 0; col < s.cols; ++col) {
      const double got = static_cast<double>(out.view(r, col));
      const double err = std::abs(got - want(r, col));
      if (!(err <= allowed(mag(r, col))) && bad++ < 3) {
        INFO("element (" << r << ", " << col << "): got " << got << ", want " << want(r, col) << ", |x||k| "
                         << mag(r, col));
        CHECK(err <= allowed(mag(r, col)));
      }
    }
    for (index_t col = s.cols; col < s.cols + c.pad; ++col) {
      if (out.storage(r, col) != sentinel && bad++ < 3) {
        INFO("wrote outside the output view at (" << r << ", " << col << ")");
        CHECK(out.storage(r, col) == sentinel);
      }
    }
  }
  CHECK(bad == 0);
}

/// Roundoff bound of a direct evaluation: a sum of k_rows * k_cols products accumulates at most
/// that many roundings (plus one for the product), relative to the magnitude sum.
inline error_model direct_error(const problem_case& c) { return {double(c.k_rows * c.k_cols + 1), 0.0}; }

// --- Layers -----------------------------------------------------------------------------------------

struct layer_case {
  index_t n, c, k, h, w, r, s;  ///< input [n, c, h, w], weights [k, c / groups, r, s]
  bool bias;
  layer_options opt;

  shape4d input() const noexcept { return {n, c, h, w}; }
  shape4d weights() const noexcept { return {k, c / opt.groups, r, s}; }
  std::string describe() const {
    std::ostringstream o;
    o << "input [" << n << "," << c << "," << h << "," << w << "] weights [" << k << "," << c / opt.groups << "," << r
      << "," << s << "] groups " << opt.groups << " stride " << opt.stride_rows << "," << opt.stride_cols << " pad "
      << opt.pad_rows << "," << opt.pad_cols << " dil " << opt.dilation_rows << "," << opt.dilation_cols << " "
      << to_string(opt.edge) << (bias ? " bias" : " no bias");
    return o.str();
  }
};

/// The layer grid: N 1..3, C and K 1..8, groups dividing both (dense, grouped, depthwise groups = C = K),
/// R and S 1..7, stride, padding and dilation per axis 1..3 / 0..3 / 1..3, every border a layer takes
/// (zero, reflect, replicate, circular, symmetric), with and without bias, including the 1x1 stride-1
/// unpadded case; then `random_cases` cases drawn from the run's seed.
inline std::vector<layer_case> layer_grid(int random_cases = 64) {
  std::vector<layer_case> cases;
  const auto add = [&](layer_case c) {
    // The dilated kernel must fit in the padded input: grow the image until it does.
    c.h = std::max(c.h, (c.r - 1) * c.opt.dilation_rows + 1 - 2 * c.opt.pad_rows);
    c.w = std::max(c.w, (c.s - 1) * c.opt.dilation_cols + 1 - 2 * c.opt.pad_cols);
    cases.push_back(c);
  };
  const auto set_channels = [](layer_case& c, int grouping, index_t m) {
    if (grouping == 0) {  // dense
      c.opt.groups = 1;
      c.c = 1 + (3 * m) % 8;
      c.k = 1 + (5 * m + 2) % 8;
    } else if (grouping == 1) {  // grouped: 2..4 groups of 1..2 channels and 1..2 filters
      c.opt.groups = int(2 + m % 3);
      c.c = c.opt.groups * (1 + m % 2);
      c.k = c.opt.groups * (1 + (m / 2) % 2);
    } else {  // depthwise
      c.opt.groups = int(1 + (7 * m + 3) % 8);
      c.c = c.k = c.opt.groups;
    }
  };
  static const index_t images[][2] = {{9, 11}, {16, 5}, {1, 7}, {12, 12}, {6, 1}, {17, 3}, {2, 2}, {8, 14}};
  index_t m = 0;
  for (border edge : {border::zero, border::reflect, border::replicate, border::circular, border::symmetric})
    for (int grouping = 0; grouping < 3; ++grouping)
      for (bool bias : {false, true})
        for (int i = 0; i < 4; ++i, ++m) {
          layer_case c{};
          c.n = 1 + m % 3;
          set_channels(c, grouping, m);
          c.h = images[m % 8][0];
          c.w = images[m % 8][1];
          c.r = 1 + m % 7;
          c.s = 1 + (3 * m + 1) % 7;
          c.bias = bias;
          c.opt.edge = edge;
          c.opt.stride_rows = int(1 + m % 3);
          c.opt.stride_cols = int(1 + (m / 3) % 3);
          c.opt.pad_rows = int(m % 4);
          c.opt.pad_cols = int((m / 4) % 4);
          c.opt.dilation_rows = int(1 + (m / 2) % 3);
          c.opt.dilation_cols = int(1 + (m / 5) % 3);
          if (i == 0) {  // the common 3x3 "same" layer, or every fourth time the 1x1 stride-1 unpadded one
            c.r = c.s = (m % 16 == 0) ? 1 : 3;
            c.opt.stride_rows = c.opt.stride_cols = c.opt.dilation_rows = c.opt.dilation_cols = 1;
            c.opt.pad_rows = c.opt.pad_cols = (m % 16 == 0) ? 0 : 1;
          }
          add(c);
        }
  std::mt19937_64 rng(run_seed() ^ 0x1a7e5ULL);
  const auto pick = [&](index_t lo, index_t hi) { return std::uniform_int_distribution<index_t>(lo, hi)(rng); };
  for (int i = 0; i < random_cases; ++i) {
    layer_case c{};
    c.n = pick(1, 3);
    set_channels(c, int(pick(0, 2)), pick(0, 1000));
    c.h = pick(1, 20);
    c.w = pick(1, 20);
    c.r = pick(1, 7);
    c.s = pick(1, 7);
    c.bias = pick(0, 1) == 1;
    static const border edges[] = {border::zero, border::reflect, border::replicate, border::circular,
                                   border::symmetric};
    c.opt.edge = edges[pick(0, 4)];
    c.opt.stride_rows = int(pick(1, 3));
    c.opt.stride_cols = int(pick(1, 3));
    c.opt.pad_rows = int(pick(0, 3));
    c.opt.pad_cols = int(pick(0, 3));
    c.opt.dilation_rows = int(pick(1, 3));
    c.opt.dilation_cols = int(pick(1, 3));
    add(c);
  }
  return cases;
}

/// The validated problem of layer case c in precision T.
template <class T>
detail::conv_problem problem_of(const layer_case& c) {
  return detail::make_problem(detail::layer_request(c.input(), c.weights(), c.bias, c.opt, sizeof(T)));
}

/// Runs `compute(input, weights, bias, out, opt)` on fresh random data for case c and compares every
/// output element with the reference within the error_model `model(c)` allows, where "local" is
/// relative to |bias| + the sum of |input| * |weights| over the element's taps and "global" to
/// ||w_k||_2 * sqrt(sum over the group's channels of ||extended input plane||_2^2). The output is
/// poisoned with NaN first (unwritten elements fail) and guarded by sentinels on both sides
/// (writes outside it fail). Bias is passed as a pointer to K values, or null.
/// `fill_weights(view4d<T>, rng)` makes the weights.
template <class T, class Compute, class Model, class Fill = random_fill>
void check_layer_case(const layer_case& c, std::mt19937_64& rng, Compute&& compute, Model&& model,
                      Fill&& fill_weights = {}) {
  INFO(c.describe());
  array4d<T> input(c.n, c.c, c.h, c.w);
  const shape4d ws = c.weights();
  array4d<T> weights(ws.n, ws.c, ws.h, ws.w);
  array2d<T> bias(1, c.k);
  fill_random(input.view(), rng);
  fill_weights(weights.view(), rng);
  fill_random(bias.view(), rng);
  const T* b = c.bias ? bias.data() : nullptr;
  const shape4d s = layer_output_shape(c.input(), ws, c.opt);
  const index_t size = s.n * s.c * s.h * s.w, guard = 16;
  const T sentinel = T(12345);
  array2d<T> storage(1, size + 2 * guard);
  for (index_t i = 0; i < storage.size(); ++i)
    storage.data()[i] = (i < guard || i >= guard + size) ? sentinel : std::numeric_limits<T>::quiet_NaN();
  const view4d<T> out(storage.data() + guard, s.n, s.c, s.h, s.w);
  compute(view4d<const T>(input), view4d<const T>(weights), b, out, c.opt);
  const array4d<double> want = reference::conv2d<T>(input, weights, b, c.opt);
  const array4d<double> mag = reference::conv2d<T>(input, weights, b, c.opt, true);
  const error_model m = model(c);
  // Global scale per (image, filter): Cauchy-Schwarz over the group's extended planes and the filter
  // (a transform's model only: see check_case).
  const detail::conv_problem g = problem_of<T>(c);
  array2d<double> plane_norm2(c.n, c.c);
  if (m.global > 0) {
    array2d<T> ext(g.rows.extent, g.cols.extent);
    for (index_t n = 0; n < c.n; ++n)
      for (index_t ch = 0; ch < c.c; ++ch) {
        extend<T>(input.view().plane(n, ch), ext.view(), g.rows.pad_before, g.cols.pad_before, c.opt.edge);
        for (index_t i = 0; i < ext.size(); ++i) plane_norm2(n, ch) += double(ext.data()[i]) * double(ext.data()[i]);
      }
  }
  const double eps = std::numeric_limits<T>::epsilon();
  index_t bad = 0;
  for (index_t n = 0; n < s.n; ++n)
    for (index_t k = 0; k < s.c; ++k) {
      double w2 = 0, x2 = 0;
      for (index_t i = 0; i < ws.c * ws.h * ws.w; ++i)
        w2 += std::pow(double(weights.data()[k * ws.c * ws.h * ws.w + i]), 2);
      for (index_t ch = 0; ch < g.c_per_group(); ++ch)
        x2 += plane_norm2(n, (k / g.k_per_group()) * g.c_per_group() + ch);
      const double scale = std::sqrt(w2) * std::sqrt(x2) + (c.bias ? std::abs(double(bias.data()[k])) : 0.0);
      for (index_t i = 0; i < s.h; ++i)
        for (index_t j = 0; j < s.w; ++j) {
          const double got = static_cast<double>(out(n, k, i, j));
          const double err = std::abs(got - want(n, k, i, j));
          const double allowed = eps * (m.local * mag(n, k, i, j) + m.global * scale) + 1e-300;
          if (!(err <= allowed) && bad++ < 3) {
            INFO("element (" << n << ", " << k << ", " << i << ", " << j << "): got " << got << ", want "
                             << want(n, k, i, j) << ", magnitude " << mag(n, k, i, j));
            CHECK(err <= allowed);
          }
        }
    }
  for (index_t i = 0; i < guard; ++i) {
    if (storage.data()[i] != sentinel && bad++ < 3) FAIL_CHECK("wrote before the output at offset " << i - guard);
    if (storage.data()[guard + size + i] != sentinel && bad++ < 3) FAIL_CHECK("wrote after the output at offset " << i);
  }
  CHECK(bad == 0);
}

/// Roundoff bound of a direct evaluation of a layer: C/groups * R * S products and the bias summed,
/// relative to the magnitude sum.
inline error_model layer_direct_error(const layer_case& c) { return {double(c.c / c.opt.groups * c.r * c.s + 1), 0.0}; }

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
