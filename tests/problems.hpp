// The one problem generator and the one checker that every backend's tests share.
//
// problem_grid() covers every output mode x border x convolution/correlation, with kernel shapes that
// are odd, even, 1x1, non-square and larger than the image, strides and dilations 1..3, and views
// whose row_stride exceeds cols; then adds random cases drawn from the run's seed. Inputs are fresh
// random numbers on every run: the seed is printed, and CONVKIT_TEST_SEED=<n> replays a run.
#pragma once

#include <convkit/conv2d.hpp>
#include <convkit/reference.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>
#include <string>
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
  index rows, cols, k_rows, k_cols;
  index pad;  ///< extra elements at the end of every row of the input and output views
  options opt;

  std::string describe() const {
    std::ostringstream o;
    o << rows << "x" << cols << " * " << k_rows << "x" << k_cols << " " << to_string(opt.size) << " "
      << to_string(opt.edge) << (opt.correlate ? " corr" : " conv") << " stride " << opt.stride_rows << ","
      << opt.stride_cols << " dil " << opt.dilation_rows << "," << opt.dilation_cols << " pad " << pad;
    return o.str();
  }
};

/// The shared grid (deterministic coverage) followed by `random_cases` cases drawn from the seed.
inline std::vector<problem_case> problem_grid(int random_cases = 64) {
  static const index kernels[][2] = {{1, 1}, {3, 3}, {2, 2}, {5, 4}, {4, 7}, {9, 9}, {1, 6}, {8, 1}, {6, 6}, {7, 3}, {2, 9}};
  static const index images[][2] = {{17, 23}, {32, 8}, {5, 40}, {3, 4}, {24, 24}, {1, 13}, {11, 1}, {2, 2}};
  std::vector<problem_case> cases;
  const auto add = [&](problem_case c) {
    // valid mode needs the dilated kernel inside the image: grow the image until it fits.
    if (c.opt.size == output::valid) {
      c.rows = std::max(c.rows, (c.k_rows - 1) * c.opt.dilation_rows + 1);
      c.cols = std::max(c.cols, (c.k_cols - 1) * c.opt.dilation_cols + 1);
    }
    cases.push_back(c);
  };
  int n = 0;
  for (output size : {output::full, output::same, output::valid})
    for (border edge : {border::zero, border::constant, border::replicate, border::reflect, border::symmetric, border::circular})
      for (bool correlate : {false, true})
        for (int i = 0; i < 4; ++i, ++n) {
          problem_case c{};
          c.rows = images[n % 8][0];
          c.cols = images[n % 8][1];
          c.k_rows = kernels[n % 11][0];
          c.k_cols = kernels[n % 11][1];
          c.pad = (n % 3 == 0) ? 5 : 0;
          c.opt.size = size;
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
  const auto pick = [&](index lo, index hi) { return std::uniform_int_distribution<index>(lo, hi)(rng); };
  for (int i = 0; i < random_cases; ++i) {
    problem_case c{};
    c.rows = pick(1, 48);
    c.cols = pick(1, 48);
    c.k_rows = pick(1, 9);
    c.k_cols = pick(1, 9);
    c.pad = pick(0, 1) * pick(1, 7);
    c.opt.size = static_cast<output>(pick(0, 2));
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

/// Uniform random values in [-1, 1), from a generator seeded by the run's seed.
template <class T>
void fill_random(view2d<T> v, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  for (index r = 0; r < v.rows(); ++r)
    for (index c = 0; c < v.cols(); ++c) v(r, c) = static_cast<T>(d(rng));
}

/// An array with `pad` extra columns and a view of its first `cols` columns: a view whose
/// row_stride exceeds cols.
template <class T>
struct padded {
  array2d<T> storage;
  view2d<T> view;
  padded(index rows, index cols, index pad) : storage(rows, cols + pad), view(storage.data(), rows, cols, cols + pad) {}
};

/// How much rounding error a backend may make, in units of T's epsilon, for one output element:
///   local  * (sum over its taps of |input| * |kernel|)      - a direct sum of products, and
///   global * ||extended input||_2 * ||kernel||_2            - a transform, whose error spreads evenly.
/// A direct method has local = taps + 1 (rounding of each product and each addition), global = 0; an
/// FFT has local = 0 and global = c * log2(transform size) for a small stated c.
struct error_model {
  double local = 0, global = 0;
};

/// Runs `compute(input, kernel, out, opt)` on fresh random data for case c and compares with the
/// reference: every element within the error_model `model(c)` allows (see error_model). The output
/// is poisoned with NaN first (unwritten elements fail) and the columns beyond it with a sentinel
/// (elements written outside the view fail).
template <class T, class Compute, class Model>
void check_case(const problem_case& c, std::mt19937_64& rng, Compute&& compute, Model&& model) {
  INFO(c.describe());
  padded<T> in(c.rows, c.cols, c.pad);
  array2d<T> kernel(c.k_rows, c.k_cols);
  fill_random(in.view, rng);
  fill_random(kernel.view(), rng);
  const shape2d s = output_shape(c.rows, c.cols, c.k_rows, c.k_cols, c.opt);
  padded<T> out(s.rows, s.cols, c.pad);
  const T sentinel = T(12345);
  for (index r = 0; r < s.rows; ++r)
    for (index col = 0; col < s.cols + c.pad; ++col)
      out.storage(r, col) = col < s.cols ? std::numeric_limits<T>::quiet_NaN() : sentinel;
  compute(view2d<const T>(in.view), view2d<const T>(kernel.view()), out.view, c.opt);
  const array2d<double> want = reference::conv2d<T>(in.view, kernel.view(), c.opt);
  const array2d<double> mag = reference::conv2d<T>(in.view, kernel.view(), c.opt, true);
  const error_model m = model(c);
  // ||extended input||_2 * ||kernel||_2: the scale of a transform's error (Cauchy-Schwarz bounds
  // every output element by it).
  const detail::geometry g = detail::make_geometry(c.rows, c.cols, c.k_rows, c.k_cols, c.opt);
  array2d<T> ext(g.rows.extent, g.cols.extent);
  extend<T>(in.view, ext.view(), g.rows.pad_before, g.cols.pad_before, c.opt.edge, T(c.opt.edge_value));
  double ext2 = 0, k2 = 0;
  for (index i = 0; i < ext.size(); ++i) ext2 += double(ext.data()[i]) * double(ext.data()[i]);
  for (index i = 0; i < kernel.size(); ++i) k2 += double(kernel.data()[i]) * double(kernel.data()[i]);
  const double scale = std::sqrt(ext2) * std::sqrt(k2);
  const double eps = std::numeric_limits<T>::epsilon();
  const auto allowed = [&](double magnitude) { return eps * (m.local * magnitude + m.global * scale) + 1e-300; };
  index bad = 0;
  for (index r = 0; r < s.rows; ++r) {
    for (index col = 0; col < s.cols; ++col) {
      const double got = static_cast<double>(out.view(r, col));
      const double err = std::abs(got - want(r, col));
      if (!(err <= allowed(mag(r, col))) && bad++ < 3) {
        INFO("element (" << r << ", " << col << "): got " << got << ", want " << want(r, col) << ", |x||k| "
                         << mag(r, col));
        CHECK(err <= allowed(mag(r, col)));
      }
    }
    for (index col = s.cols; col < s.cols + c.pad; ++col) {
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

}  // namespace convkit::testing
