// Low-rank kernels: K (R x S) = sum over t < rank of c_t r_t^T, a column factor of R values times a
// row factor of S values, so that a convolution with K is `rank` pairs of 1-D passes.
//
//   rank       from the singular values of K (a one-sided Jacobi SVD in double): the smallest r whose
//              left-out singular values have a norm at most `tolerance` x ||K||_F. The default
//              tolerance is at the level of T's rounding (2 eps_T), so a kernel is taken as rank r only
//              where that changes nothing a rounding would not (a Gaussian, box, Sobel, LoG as they are
//              written, or one perturbed by an ulp); a tolerance above that is an explicit opt-in to a
//              lossy approximation (tuning::separable_tolerance), whose error is stated there.
//   factors    by cross approximation (Gaussian elimination with full pivoting: exact for integer
//              kernels such as Sobel or a box, whose pivots are whole numbers), else the SVD's,
//              whichever reconstructs K better; it must be within the tolerance, else the kernel is
//              taken as dense. Kernels of more than max_svd_taps taps: cross approximation alone.
// The analysis runs on K scaled by a power of two (exact), and the tolerance is relative, so the
// decision does not depend on the kernel's scale (x 1e30 or 1e-30 alike). Analyses are remembered
// per kernel (its values and shape), so plans and repeated calls analyse a kernel once.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "../types.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// K = sum over t < rank of column(t) row(t)^T, in double.
struct kernel_factors {
  index_t rows = 0, cols = 0;
  int rank = 0;                ///< 0: not low-rank (or not analysed)
  std::vector<double> column;  ///< rank x rows: column factor t at [t * rows]
  std::vector<double> row;     ///< rank x cols: row factor t at [t * cols]
  double relative_error = 0;   ///< ||K - factors||_F / ||K||_F, in double
};

/// The singular values of the rows x cols matrix `a` (row-major), descending, by one-sided Jacobi
/// rotations of its columns; `v` (cols x cols, row-major) receives the right singular vectors as
/// columns, in the same order, and `a` becomes U Sigma (its columns, reordered).
inline std::vector<double> jacobi_svd(std::vector<double>& a, index_t rows, index_t cols, std::vector<double>& v) {
  v.assign(std::size_t(cols * cols), 0.0);
  for (index_t i = 0; i < cols; ++i) v[std::size_t(i * cols + i)] = 1.0;
  const double eps = std::numeric_limits<double>::epsilon();
  for (int sweep = 0; sweep < 60; ++sweep) {
    bool rotated = false;
    for (index_t p = 0; p < cols - 1; ++p)
      for (index_t q = p + 1; q < cols; ++q) {
        double alpha = 0, beta = 0, gamma = 0;
        for (index_t i = 0; i < rows; ++i) {
          const double x = a[std::size_t(i * cols + p)], y = a[std::size_t(i * cols + q)];
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma == 0 || std::abs(gamma) <= eps * std::sqrt(alpha * beta)) continue;
        rotated = true;
        const double zeta = (beta - alpha) / (2 * gamma);
        const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::abs(zeta) + std::sqrt(1 + zeta * zeta));
        const double c = 1 / std::sqrt(1 + t * t), s = c * t;
        for (index_t i = 0; i < rows; ++i) {
          double& x = a[std::size_t(i * cols + p)];
          double& y = a[std::size_t(i * cols + q)];
          const double xp = x, yq = y;
          x = c * xp - s * yq;
          y = s * xp + c * yq;
        }
        for (index_t i = 0; i < cols; ++i) {
          double& x = v[std::size_t(i * cols + p)];
          double& y = v[std::size_t(i * cols + q)];
          const double xp = x, yq = y;
          x = c * xp - s * yq;
          y = s * xp + c * yq;
        }
      }
    if (!rotated) break;
  }
  std::vector<double> sigma(static_cast<std::size_t>(cols));
  for (index_t j = 0; j < cols; ++j) {
    double n2 = 0;
    for (index_t i = 0; i < rows; ++i) n2 += a[std::size_t(i * cols + j)] * a[std::size_t(i * cols + j)];
    sigma[std::size_t(j)] = std::sqrt(n2);
  }
  // Order by descending singular value (columns of a and of v alike).
  std::vector<index_t> order(static_cast<std::size_t>(cols));
  for (index_t j = 0; j < cols; ++j) order[std::size_t(j)] = j;
  std::stable_sort(order.begin(), order.end(),
                   [&](index_t x, index_t y) { return sigma[std::size_t(x)] > sigma[std::size_t(y)]; });
  std::vector<double> a2(a.size()), v2(v.size()), s2(sigma.size());
  for (index_t j = 0; j < cols; ++j) {
    const index_t from = order[std::size_t(j)];
    s2[std::size_t(j)] = sigma[std::size_t(from)];
    for (index_t i = 0; i < rows; ++i) a2[std::size_t(i * cols + j)] = a[std::size_t(i * cols + from)];
    for (index_t i = 0; i < cols; ++i) v2[std::size_t(i * cols + j)] = v[std::size_t(i * cols + from)];
  }
  a.swap(a2);
  v.swap(v2);
  return s2;
}

/// T's unit roundoff.
template <class T>
constexpr double rounding_unit() noexcept {
  return double(std::numeric_limits<T>::epsilon()) / 2;
}

/// True if the factors reproduce every tap of `kernel` (rows x cols, row-major) within `relative` of
/// its own magnitude, and their terms' magnitudes sum to at most twice it: then passes of them err
/// componentwise, by a few roundings times |x| * |k| (a zero tap must come out as exactly zero).
template <class T>
bool factors_componentwise(const kernel_factors& f, const T* kernel, double relative) {
  for (index_t i = 0; i < f.rows; ++i)
    for (index_t j = 0; j < f.cols; ++j) {
      double sum = 0, magnitudes = 0;
      for (int t = 0; t < f.rank; ++t) {
        const double term = f.column[std::size_t(t * f.rows + i)] * f.row[std::size_t(t * f.cols + j)];
        sum += term;
        magnitudes += std::abs(term);
      }
      const double k = std::abs(double(kernel[i * f.cols + j]));
      if (!(std::abs(sum - double(kernel[i * f.cols + j])) <= relative * k) || !(magnitudes <= 2.0 * k)) return false;
    }
  return true;
}

/// ||K - factors||_F of the first `rank` terms.
inline double reconstruction_error(const std::vector<double>& k, index_t rows, index_t cols,
                                   const std::vector<double>& column, const std::vector<double>& row, int rank) {
  double e2 = 0;
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      double x = k[std::size_t(i * cols + j)];
      for (int t = 0; t < rank; ++t) x -= column[std::size_t(t * rows + i)] * row[std::size_t(t * cols + j)];
      e2 += x * x;
    }
  return std::sqrt(e2);
}

/// Kernels of more taps than this are analysed by cross approximation alone (its cost grows as
/// the taps, the Jacobi SVD's as their 1.5th power); beyond max_analysed_taps, not at all (dense:
/// a kernel that large is the FFT's).
inline constexpr index_t max_svd_taps = 1024;
inline constexpr index_t max_analysed_taps = 65536;

/// Up to `max_rank` terms of the cross approximation of `k` (Gaussian elimination with full
/// pivoting), stopping at the first whose residual is within `limit` (Frobenius); the terms made.
inline int cross_approximation(const std::vector<double>& k, index_t rows, index_t cols, int max_rank, double limit,
                               std::vector<double>& column, std::vector<double>& row) {
  std::vector<double> residual = k;
  column.assign(std::size_t(max_rank * rows), 0.0);
  row.assign(std::size_t(max_rank * cols), 0.0);
  for (int t = 0; t < max_rank; ++t) {
    index_t pi = 0, pj = 0;
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j)
        if (std::abs(residual[std::size_t(i * cols + j)]) > std::abs(residual[std::size_t(pi * cols + pj)]))
          pi = i, pj = j;
    const double pivot = residual[std::size_t(pi * cols + pj)];
    if (pivot == 0) return t;
    for (index_t i = 0; i < rows; ++i) column[std::size_t(t * rows + i)] = residual[std::size_t(i * cols + pj)];
    for (index_t j = 0; j < cols; ++j) row[std::size_t(t * cols + j)] = residual[std::size_t(pi * cols + j)] / pivot;
    double r2 = 0;
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j) {
        double& x = residual[std::size_t(i * cols + j)];
        x -= column[std::size_t(t * rows + i)] * row[std::size_t(t * cols + j)];
        r2 += x * x;
      }
    if (std::sqrt(r2) <= limit) return t + 1;
  }
  return max_rank;
}

/// The rank of the rows x cols kernel `k` (scaled) from its singular values: the fewest terms whose
/// left-out singular values are within `limit` (0 if none up to max_rank), and its factors by cross
/// approximation (exact for integer kernels such as Sobel or a box) or from the SVD (column t =
/// (U Sigma)_t, row t = V_t), whichever reconstructs the kernel better.
inline int svd_rank_factors(const std::vector<double>& k, index_t rows, index_t cols, int max_rank, double limit,
                            std::vector<double>& column, std::vector<double>& row) {
  std::vector<double> us = k, v;
  const std::vector<double> sigma = jacobi_svd(us, rows, cols, v);
  // (Summed from the smallest: ||K||^2 less the leading ones would leave sqrt(eps) of cancellation.)
  const auto tail = [&](int from) {
    double t2 = 0;
    for (std::size_t i = sigma.size(); i-- > std::size_t(from);) t2 += sigma[i] * sigma[i];
    return std::sqrt(t2);
  };
  int rank = 0;
  while (rank < max_rank && rank < int(sigma.size()) && tail(rank) > limit) ++rank;
  if (tail(rank) > limit) return 0;
  const int cross_rank = cross_approximation(k, rows, cols, rank, limit, column, row);
  std::vector<double> svd_col(std::size_t(rank * rows)), svd_row(std::size_t(rank * cols));
  for (int t = 0; t < rank; ++t) {
    for (index_t i = 0; i < rows; ++i) svd_col[std::size_t(t * rows + i)] = us[std::size_t(i * cols + t)];
    for (index_t j = 0; j < cols; ++j) svd_row[std::size_t(t * cols + j)] = v[std::size_t(j * cols + t)];
  }
  const double cross_error = reconstruction_error(k, rows, cols, column, row, cross_rank);
  if (cross_error <= limit &&
      (cross_rank < rank || cross_error <= reconstruction_error(k, rows, cols, svd_col, svd_row, rank)))
    return cross_rank;
  column.swap(svd_col), row.swap(svd_row);
  return rank;
}

/// The low-rank factors of the rows x cols kernel `k` (row-major, double) at `tolerance` (relative,
/// Frobenius), trying ranks up to `max_rank`; rank 0 if none is within the tolerance.
inline kernel_factors factorise(std::vector<double> k, index_t rows, index_t cols, double tolerance, int max_rank) {
  kernel_factors f;
  f.rows = rows;
  f.cols = cols;
  if (rows < 2 || cols < 2 || rows * cols > max_analysed_taps) return f;  // 1-D already, or too large
  // Scaled by a power of two (exactly) so that the largest magnitude is in [1, 2): no square over- or
  // underflows, whatever the kernel's scale.
  double largest = 0;
  for (double x : k) largest = std::max(largest, std::abs(x));
  if (!(largest > 0) || !std::isfinite(largest)) return f;  // zero, or NaN / Inf
  const int exponent = std::ilogb(largest);
  double norm2 = 0;
  for (double& x : k) {
    x = std::ldexp(x, -exponent);
    norm2 += x * x;
  }
  const double norm = std::sqrt(norm2), limit = tolerance * norm;
  std::vector<double> column, row;
  f.rank = rows * cols > max_svd_taps ? cross_approximation(k, rows, cols, max_rank, limit, column, row)
                                      : svd_rank_factors(k, rows, cols, max_rank, limit, column, row);
  column.resize(std::size_t(f.rank * rows));
  row.resize(std::size_t(f.rank * cols));
  const double error = reconstruction_error(k, rows, cols, column, row, f.rank);
  if (f.rank == 0 || !(error <= limit)) {
    f.rank = 0;
    return f;
  }
  for (double& x : column) x = std::ldexp(x, exponent);  // back to the kernel's scale, exactly
  f.column = std::move(column);
  f.row = std::move(row);
  f.relative_error = error / norm;
  return f;
}

/// The analyses made so far, by kernel values, shape, tolerance and precision: a plan or a repeated
/// call analyses a kernel once. Bounded (256 kernels, 2^20 taps; forgets everything when full);
/// thread-safe.
template <class T>
std::shared_ptr<const kernel_factors> kernel_factors_of(const T* kernel, index_t rows, index_t cols, double tolerance,
                                                        int max_rank) {
  struct key {
    std::vector<T> values;
    index_t rows, cols;
    double tolerance;
    int max_rank;
    bool operator<(const key& o) const {
      if (rows != o.rows || cols != o.cols) return rows != o.rows ? rows < o.rows : cols < o.cols;
      if (tolerance != o.tolerance || max_rank != o.max_rank)
        return tolerance != o.tolerance ? tolerance < o.tolerance : max_rank < o.max_rank;
      return std::memcmp(values.data(), o.values.data(), sizeof(T) * values.size()) < 0;
    }
  };
  if (rows * cols > max_analysed_taps) return std::make_shared<const kernel_factors>();
  static std::mutex* mutex = new std::mutex;  // never destroyed: used until the process ends
  static auto* memory = new std::map<key, std::shared_ptr<const kernel_factors>>;
  static index_t remembered = 0;  // taps held by `memory`
  key k{std::vector<T>(kernel, kernel + rows * cols), rows, cols, tolerance, max_rank};
  {
    std::lock_guard<std::mutex> lock(*mutex);
    const auto it = memory->find(k);
    if (it != memory->end()) return it->second;
  }
  std::vector<double> d(std::size_t(rows * cols));
  for (index_t i = 0; i < rows * cols; ++i) d[std::size_t(i)] = double(kernel[i]);
  auto f = std::make_shared<const kernel_factors>(factorise(d, rows, cols, tolerance, max_rank));
  std::lock_guard<std::mutex> lock(*mutex);
  if (memory->size() >= 256 || remembered + rows * cols > (index_t(1) << 20)) memory->clear(), remembered = 0;
  if (memory->emplace(std::move(k), f).second) remembered += rows * cols;
  return f;
}

/// The largest number of separable terms worth running as 1-D passes (beyond it, dense is cheaper).
inline constexpr int max_separable_rank = 4;

/// The most terms a rows x cols kernel is worth analysing for: fewer multiply-adds than dense
/// (rank * (rows + cols) < rows * cols), and at most max_separable_rank.
inline int useful_rank(index_t rows, index_t cols) noexcept {
  if (rows < 2 || cols < 2) return 0;
  return int(std::min<index_t>(max_separable_rank, (rows * cols - 1) / (rows + cols)));
}

/// The default tolerance of T: its rounding level.
template <class T>
constexpr double rounding_tolerance() noexcept {
  return 2.0 * double(std::numeric_limits<T>::epsilon());
}

}  // namespace detail
CONVKIT_NAMESPACE_END
