// convkit/padding.hpp - the padding module: every border rule, and kernels padded for FFTs.
//
//   border_index(i, n, b)  where index i of an axis of length n reads from under border rule b:
//                          a position in [0, n), or -1 for zero/constant (no source element).
//                          Defined for every i, however far outside [0, n) (see types.hpp, border).
//   extend(...)            an image extended by a border rule by any widths on four sides (negative
//                          widths crop). Every backend reads its input through this routine.
//   padded_kernel(...)     the kernel (optionally flipped, dilated) placed in a zero array of a given
//                          size with its origin wrapped to (0, 0), so that circular convolution of an
//                          image of that size equals linear convolution where it does not wrap.
//
// Border names differ between libraries; convkit's are NumPy's (README, "Borders", has the table).
#pragma once

#include "version.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "detail/checked.hpp"
#include "types.hpp"
#include "view.hpp"

CONVKIT_NAMESPACE_BEGIN

/// Source index for index i of an axis of length n >= 1 under border b; -1 means "the constant".
inline index_t border_index(index_t i, index_t n, border b) noexcept {
  if (i >= 0 && i < n) return i;
  switch (b) {
    case border::zero:
    case border::constant: return -1;
    case border::replicate: return i < 0 ? 0 : n - 1;
    case border::circular: {
      const index_t m = i % n;
      return m < 0 ? m + n : m;
    }
    case border::symmetric: {
      const index_t p = 2 * n;
      index_t m = i % p;
      if (m < 0) m += p;
      return m < n ? m : p - 1 - m;
    }
    case border::reflect: {
      if (n == 1) return 0;
      const index_t p = 2 * (n - 1);
      index_t m = i % p;
      if (m < 0) m += p;
      return m < n ? m : p - m;
    }
  }
  return -1;
}

namespace detail {
/// The period of border_index(i, n, b) in i: border_index(i + period, n, b) == border_index(i, n, b)
/// for every i; 0 for the rules that are not periodic (zero, constant, replicate).
inline index_t border_period(index_t n, border b) noexcept {
  switch (b) {
    case border::circular: return n;
    case border::symmetric: return 2 * n;
    case border::reflect: return n == 1 ? 1 : 2 * (n - 1);
    default: return 0;
  }
}
}  // namespace detail

/// Fills `out` with the input extended by border rule `b`: out(r, c) = ext(r - top, c - left), where
/// ext is `in` outside [0, rows) x [0, cols) continued by `b` (value `fill` for zero/constant; border::zero
/// ignores `fill`). top and left may be negative (the window starts inside the image); out may be any
/// size. Throws convkit::error if `in` is empty or out overlaps in.
template <class T>
void extend(view2d<const T> in, view2d<T> out, index_t top, index_t left, border b, T fill = T(0)) {
  if (in.empty()) throw error("extend: input is empty");
  if (b != border::zero && b != border::constant && b != border::replicate && b != border::reflect &&
      b != border::symmetric && b != border::circular)
    throw error("extend: b is not a convkit::border (value " + std::to_string(int(b)) + ")");
  constexpr index_t far = std::numeric_limits<index_t>::max() / 4;  // keeps r - top and c - left in range
  if (top < -far || top > far || left < -far || left > far) throw error("extend: top or left is out of range");
  if (detail::overlaps<T>(in, out)) throw error("extend: out aliases input");
  if (b == border::zero) fill = T(0);
  const index_t n_rows = in.rows(), n_cols = in.cols();
  // Windows much larger than the image (an FFT tile over a dilated kernel's span) are mostly border:
  // each extended element is found by border_index only until the rule's period has been written,
  // then copied from one period away, a row or a run at a time.
  const index_t row_period = detail::border_period(n_rows, b), col_period = detail::border_period(n_cols, b);
  // The columns of `out` that map straight into the image: [c_lo, c_hi).
  const index_t c_lo = std::clamp<index_t>(left, 0, out.cols());
  const index_t c_hi = std::clamp<index_t>(left + n_cols, c_lo, out.cols());
  index_t previous_source = -2;  // the source row of out row r - 1 (-1: the constant)
  for (index_t r = 0; r < out.rows(); ++r) {
    T* dst = out.row(r);
    const index_t sr = border_index(r - top, n_rows, b);
    if (sr == previous_source || (row_period > 0 && r >= row_period)) {
      const T* same = sr == previous_source ? out.row(r - 1) : out.row(r - row_period);
      std::copy(same, same + out.cols(), dst);
      previous_source = sr;
      continue;
    }
    previous_source = sr;
    if (sr < 0) {
      std::fill(dst, dst + out.cols(), fill);
      continue;
    }
    const T* src = in.row(sr);
    if (c_lo < c_hi) std::copy(src + (c_lo - left), src + (c_hi - left), dst + c_lo);  // (may lie beside the image)
    if (col_period == 0) {  // zero, constant, replicate: one value on each side
      std::fill(dst, dst + c_lo, b == border::replicate ? src[0] : fill);
      std::fill(dst + c_hi, dst + out.cols(), b == border::replicate ? src[n_cols - 1] : fill);
      continue;
    }
    // Left of the image, right to left: one period by index, then runs from one period to the right.
    index_t c = c_lo;
    for (const index_t indexed = std::max<index_t>(c_lo - col_period, 0); c > indexed; --c)
      dst[c - 1] = src[border_index(c - 1 - left, n_cols, b)];
    for (; c > 0;) {
      const index_t run = std::min(c, col_period);
      std::copy(dst + c - run + col_period, dst + c + col_period, dst + c - run);
      c -= run;
    }
    // Right of it, left to right: by index while a period back lies before the row, then runs.
    for (c = c_hi; c < std::min(out.cols(), std::max(c_hi, col_period)); ++c)
      dst[c] = src[border_index(c - left, n_cols, b)];
    for (; c < out.cols();) {
      const index_t run = std::min(out.cols() - c, col_period);
      std::copy(dst + c - col_period, dst + c - col_period + run, dst + c);
      c += run;
    }
  }
}

/// The input extended by `top`, `bottom`, `left`, `right` elements on its four sides (like numpy.pad;
/// negative widths crop). Throws convkit::error if the input is empty or the result would have a
/// negative size.
template <class T>
array2d<T> extend(view2d<const T> in, index_t top, index_t bottom, index_t left, index_t right, border b,
                  T fill = T(0)) {
  const index_t rows =
      detail::checked_add(detail::checked_add(in.rows(), top, "extend: top"), bottom, "extend: bottom");
  const index_t cols =
      detail::checked_add(detail::checked_add(in.cols(), left, "extend: left"), right, "extend: right");
  if (rows < 0 || cols < 0) throw error("extend: widths crop more than the whole input");
  array2d<T> out(rows, cols);
  extend<T>(in, out.view(), top, left, b, fill);
  return out;
}

/// Where and how padded_kernel places a kernel.
struct kernel_placement {
  bool flip = false;  ///< reverse both axes (correlation through a convolution)
  int dilation_rows = 1, dilation_cols = 1;
  index_t origin_row = 0, origin_col = 0;  ///< position in the dilated kernel that lands on (0, 0)
};

/// Writes into `out` (rows x cols, e.g. an FFT size) zeros everywhere except the dilated (and, if
/// asked, flipped) kernel, whose element at dilated position (p, q) goes to
/// ((p - origin_row) mod rows, (q - origin_col) mod cols). With origin (0, 0) the kernel sits in the
/// top-left corner, which is what linear convolution through an FFT of size >= H + KHe - 1 needs.
/// Throws convkit::error if the dilated kernel does not fit in `out` (it would wrap onto itself), if
/// a dilation is < 1, or if out aliases the kernel.
template <class T>
void padded_kernel(view2d<const T> kernel, view2d<T> out, const kernel_placement& where = {}) {
  if (kernel.empty()) throw error("padded_kernel: kernel is empty");
  if (where.dilation_rows < 1 || where.dilation_cols < 1) throw error("padded_kernel: dilation must be >= 1");
  if (detail::overlaps<T>(kernel, out)) throw error("padded_kernel: out aliases kernel");
  const index_t span_r = detail::checked_add(
      detail::checked_mul(kernel.rows() - 1, where.dilation_rows, "padded_kernel: dilation_rows"), 1, "padded_kernel");
  const index_t span_c = detail::checked_add(
      detail::checked_mul(kernel.cols() - 1, where.dilation_cols, "padded_kernel: dilation_cols"), 1, "padded_kernel");
  if (span_r > out.rows() || span_c > out.cols())
    throw error("padded_kernel: out (" + std::to_string(out.rows()) + "x" + std::to_string(out.cols()) +
                ") is smaller than the dilated kernel (" + std::to_string(span_r) + "x" + std::to_string(span_c) + ")");
  for (index_t r = 0; r < out.rows(); ++r) std::fill(out.row(r), out.row(r) + out.cols(), T(0));
  const auto wrap = [](index_t i, index_t n) {
    const index_t m = i % n;
    return m < 0 ? m + n : m;
  };
  for (index_t u = 0; u < kernel.rows(); ++u) {
    const index_t su = where.flip ? kernel.rows() - 1 - u : u;
    const index_t r = wrap(u * where.dilation_rows - where.origin_row, out.rows());
    for (index_t v = 0; v < kernel.cols(); ++v) {
      const index_t sv = where.flip ? kernel.cols() - 1 - v : v;
      out(r, wrap(v * where.dilation_cols - where.origin_col, out.cols())) = kernel(su, sv);
    }
  }
}

CONVKIT_NAMESPACE_END
