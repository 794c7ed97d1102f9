// convkit/kernels.hpp - the kernels people filter images with, built as OpenCV and SciPy build them.
//
// Every builder returns an array2d<double> in correlation order, the way OpenCV's filter2D and
// sepFilter2D apply kernels: pass options::correlate = true to get cv::Sobel's sign (symmetric
// kernels, the Gaussian, box and Laplacians, are the same either way). Separable kernels have a
// *_factors form: {column, row} with kernel = column (n x 1) times row (1 x m), OpenCV's ky and kx.
//
//   gaussian(sigma)             SciPy's gaussian_filter kernel: radius int(4 sigma + 0.5) (its
//                               `truncate` rule, truncate = 4; gaussian_truncated for another),
//                               exp(-x^2 / (2 sigma^2)) normalised to sum 1 per axis.
//   gaussian(sigma, size)       OpenCV's getGaussianKernel(size, sigma) per axis: size odd; sigma <= 0
//                               takes 0.3 ((size - 1) / 2 - 1) + 0.8, and sizes 1..9 with sigma <= 0
//                               OpenCV's fixed small kernels.
//   opencv_gaussian_size(sigma, eight_bit)
//                               the size cv::GaussianBlur picks for ksize 0: round(sigma * (3 for
//                               8-bit images, else 4) * 2 + 1), made odd.
//   box(rows, cols)             normalised: every tap 1 / (rows cols) (cv::blur).
//   sobel(dx, dy, size)         OpenCV's getDerivKernels(dx, dy, size) (Sobel's; size 1 is 3 with no
//                               smoothing across), not normalised: integer taps.
//   scharr(dx, dy)              OpenCV's Scharr kernels (dx + dy == 1): [3 10 3] across, [-1 0 1] along.
//   laplacian(size)             cv::Laplacian's kernel: size 1 [0 1 0; 1 -4 1; 0 1 0], size 3
//                               [2 0 2; 0 -8 0; 2 0 2], larger sizes sobel(2, 0) + sobel(0, 2).
//   laplacian_of_gaussian(sigma)
//                               SciPy's gaussian_laplace: the sum of the second-derivative Gaussians
//                               along each axis (radius int(4 sigma + 0.5)); rank 2.
// Arguments outside these ranges throw convkit::error naming them.
#pragma once

#include "version.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "types.hpp"
#include "view.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace kernels {

/// A separable kernel: kernel(u, v) = column(u, 0) * row(0, v).
struct factors {
  array2d<double> column;  ///< n x 1 (OpenCV's ky)
  array2d<double> row;     ///< 1 x m (OpenCV's kx)

  /// The kernel itself, column times row.
  array2d<double> kernel() const {
    array2d<double> k(column.rows(), row.cols());
    for (index_t u = 0; u < k.rows(); ++u)
      for (index_t v = 0; v < k.cols(); ++v) k(u, v) = column(u, 0) * row(0, v);
    return k;
  }
};

namespace detail {
inline array2d<double> as_row(const std::vector<double>& taps) {
  array2d<double> r(1, index_t(taps.size()));
  for (index_t i = 0; i < r.cols(); ++i) r(0, i) = taps[std::size_t(i)];
  return r;
}
inline array2d<double> as_column(const std::vector<double>& taps) {
  array2d<double> c(index_t(taps.size()), 1);
  for (index_t i = 0; i < c.rows(); ++i) c(i, 0) = taps[std::size_t(i)];
  return c;
}
inline void check_sigma(double sigma, const char* what) {
  if (!(sigma > 0) || !std::isfinite(sigma))
    throw error(std::string(what) + ": sigma must be positive and finite, got " + std::to_string(sigma));
}
/// exp(-x^2 / (2 sigma^2)) at x = -radius..radius, divided by its sum.
inline std::vector<double> gaussian_taps(double sigma, index_t radius) {
  std::vector<double> t(std::size_t(2 * radius + 1));
  double sum = 0;
  for (index_t x = -radius; x <= radius; ++x)
    sum += t[std::size_t(x + radius)] = std::exp(-0.5 * double(x * x) / (sigma * sigma));
  for (double& v : t) v /= sum;
  return t;
}
/// SciPy's radius for sigma and truncate: int(truncate * sigma + 0.5).
inline index_t scipy_radius(double sigma, double truncate) {
  const double r = truncate * sigma + 0.5;
  if (!(r < 1e6)) throw error("gaussian: sigma * truncate must be below 1e6, got " + std::to_string(truncate * sigma));
  return index_t(r);
}
/// OpenCV's getSobelKernels taps of one axis: derivative `order` of size `size` (integers).
inline std::vector<double> sobel_taps(int order, index_t size) {
  if (size == 1) return {1.0};
  if (size == 3) {
    if (order == 0) return {1, 2, 1};
    if (order == 1) return {-1, 0, 1};
    return {1, -2, 1};
  }
  std::vector<double> k(std::size_t(size + 1), 0.0);
  k[0] = 1;
  for (index_t i = 0; i < size - order - 1; ++i) {  // smoothing: binomial
    double old = k[0];
    for (index_t j = 1; j <= size; ++j) {
      const double next = k[std::size_t(j)] + k[std::size_t(j - 1)];
      k[std::size_t(j - 1)] = old;
      old = next;
    }
  }
  for (int i = 0; i < order; ++i) {  // differencing
    double old = -k[0];
    for (index_t j = 1; j <= size; ++j) {
      const double next = k[std::size_t(j - 1)] - k[std::size_t(j)];
      k[std::size_t(j - 1)] = old;
      old = next;
    }
  }
  k.resize(std::size_t(size));
  return k;
}
}  // namespace detail

/// SciPy's Gaussian of `sigma` truncated at `truncate` sigmas, as factors.
inline factors gaussian_truncated_factors(double sigma, double truncate) {
  detail::check_sigma(sigma, "gaussian");
  if (!(truncate > 0)) throw error("gaussian: truncate must be positive, got " + std::to_string(truncate));
  const std::vector<double> t = detail::gaussian_taps(sigma, detail::scipy_radius(sigma, truncate));
  return {detail::as_column(t), detail::as_row(t)};
}
inline array2d<double> gaussian_truncated(double sigma, double truncate) {
  return gaussian_truncated_factors(sigma, truncate).kernel();
}

/// SciPy's gaussian_filter kernel (truncate 4), as factors and as the kernel.
inline factors gaussian_factors(double sigma) { return gaussian_truncated_factors(sigma, 4.0); }
inline array2d<double> gaussian(double sigma) { return gaussian_factors(sigma).kernel(); }

/// OpenCV's getGaussianKernel(size, sigma) on both axes, as factors and as the kernel.
inline factors gaussian_factors(double sigma, index_t size) {
  if (size < 1 || size % 2 == 0 || size > 1000001)
    throw error("gaussian: size must be odd, from 1 to 1000001, got " + std::to_string(size));
  if (std::isnan(sigma)) throw error("gaussian: sigma is NaN");
  std::vector<double> t;
  if (sigma <= 0 && size <= 9) {  // OpenCV's fixed small kernels (4.6, imgproc/src/smooth.dispatch.cpp)
    static const std::vector<double> small[] = {
        {1.0},
        {0.25, 0.5, 0.25},
        {0.0625, 0.25, 0.375, 0.25, 0.0625},
        {0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125},
        {1 / 64.0, 13 / 256.0, 30 / 256.0, 51 / 256.0, 60 / 256.0, 51 / 256.0, 30 / 256.0, 13 / 256.0, 1 / 64.0}};
    t = small[size / 2];
  } else {
    const double s = sigma > 0 ? sigma : 0.3 * ((double(size) - 1) * 0.5 - 1) + 0.8;
    t = detail::gaussian_taps(s, size / 2);
  }
  return {detail::as_column(t), detail::as_row(t)};
}
inline array2d<double> gaussian(double sigma, index_t size) { return gaussian_factors(sigma, size).kernel(); }

/// The kernel size cv::GaussianBlur takes for sigma when given none (ksize 0).
inline index_t opencv_gaussian_size(double sigma, bool eight_bit) {
  detail::check_sigma(sigma, "opencv_gaussian_size");
  return index_t(std::lround(sigma * (eight_bit ? 3 : 4) * 2 + 1)) | 1;
}

/// The normalised box filter of rows x cols (cv::blur).
inline factors box_factors(index_t rows, index_t cols) {
  if (rows < 1 || cols < 1)
    throw error("box: rows and cols must be >= 1, got " + std::to_string(rows) + " x " + std::to_string(cols));
  return {detail::as_column(std::vector<double>(std::size_t(rows), 1.0 / double(rows))),
          detail::as_row(std::vector<double>(std::size_t(cols), 1.0 / double(cols)))};
}
inline array2d<double> box(index_t rows, index_t cols) { return box_factors(rows, cols).kernel(); }

/// OpenCV's getDerivKernels(dx, dy, size): derivative orders dx (along a row) and dy (down a column),
/// size 1, 3, 5, ..., 31; 1 means 3 along a derivative's axis and 1 across it.
inline factors sobel_factors(int dx, int dy, index_t size = 3) {
  if (dx < 0 || dy < 0 || dx + dy == 0) throw error("sobel: dx and dy must be >= 0, not both 0");
  if (size < 1 || size % 2 == 0 || size > 31)
    throw error("sobel: size must be 1, 3, 5, ..., 31, got " + std::to_string(size));
  const index_t size_x = size == 1 && dx > 0 ? 3 : size, size_y = size == 1 && dy > 0 ? 3 : size;
  if (dx >= size_x || dy >= size_y)
    throw error("sobel: an order must be below its kernel's size (dx " + std::to_string(dx) + ", dy " +
                std::to_string(dy) + ", size " + std::to_string(size) + ")");
  return {detail::as_column(detail::sobel_taps(dy, size_y)), detail::as_row(detail::sobel_taps(dx, size_x))};
}
inline array2d<double> sobel(int dx, int dy, index_t size = 3) { return sobel_factors(dx, dy, size).kernel(); }

/// OpenCV's Scharr kernels (dx, dy) = (1, 0) or (0, 1).
inline factors scharr_factors(int dx, int dy) {
  if (!((dx == 1 && dy == 0) || (dx == 0 && dy == 1))) throw error("scharr: (dx, dy) must be (1, 0) or (0, 1)");
  const std::vector<double> smooth{3, 10, 3}, derive{-1, 0, 1};
  return {detail::as_column(dy == 1 ? derive : smooth), detail::as_row(dx == 1 ? derive : smooth)};
}
inline array2d<double> scharr(int dx, int dy) { return scharr_factors(dx, dy).kernel(); }

/// cv::Laplacian's kernel for `size` 1, 3, ..., 31.
inline array2d<double> laplacian(index_t size = 1) {
  if (size < 1 || size % 2 == 0 || size > 31)
    throw error("laplacian: size must be 1, 3, 5, ..., 31, got " + std::to_string(size));
  array2d<double> k(size == 1 ? 3 : size, size == 1 ? 3 : size);
  if (size <= 3) {
    const double taps[2][9] = {{0, 1, 0, 1, -4, 1, 0, 1, 0}, {2, 0, 2, 0, -8, 0, 2, 0, 2}};
    for (index_t i = 0; i < 9; ++i) k.data()[i] = taps[size / 3][i];
    return k;
  }
  const array2d<double> xx = sobel(2, 0, size), yy = sobel(0, 2, size);
  for (index_t i = 0; i < k.size(); ++i) k.data()[i] = xx.data()[i] + yy.data()[i];
  return k;
}

/// SciPy's gaussian_laplace kernel for `sigma` (truncate 4).
inline array2d<double> laplacian_of_gaussian(double sigma) {
  detail::check_sigma(sigma, "laplacian_of_gaussian");
  const index_t radius = detail::scipy_radius(sigma, 4.0);
  const std::vector<double> g = detail::gaussian_taps(sigma, radius);
  std::vector<double> g2(g.size());  // SciPy's second derivative: (x^2 / sigma^4 - 1 / sigma^2) times g
  for (index_t x = -radius; x <= radius; ++x)
    g2[std::size_t(x + radius)] =
        (double(x * x) / (sigma * sigma * sigma * sigma) - 1 / (sigma * sigma)) * g[std::size_t(x + radius)];
  const index_t n = 2 * radius + 1;
  array2d<double> k(n, n);
  for (index_t u = 0; u < n; ++u)
    for (index_t v = 0; v < n; ++v)
      k(u, v) = g2[std::size_t(u)] * g[std::size_t(v)] + g[std::size_t(u)] * g2[std::size_t(v)];
  return k;
}

}  // namespace kernels
CONVKIT_NAMESPACE_END
