// convkit/types.hpp - the glossary: index, shapes, modes, borders, algorithms, errors.
//
// Vocabulary used throughout convkit (and only this vocabulary):
//   image / input   the array being filtered, H x W ("rows x cols").
//   kernel          the filter, KH x KW. With dilation d the kernel's taps are d apart, so it spans
//                   KHe = (KH - 1) * d + 1 rows (the "effective" or "dilated" extent), likewise KWe.
//   convolution     out(i, j) = sum_{u,v} in(i - u*dr, j - v*dc) * k(u, v)      (kernel flipped)
//   correlation     out(i, j) = sum_{u,v} in(i + u*dr, j + v*dc) * k(u, v)      (kernel as given)
//                   Both are defined on the "full" index range, exactly as scipy.signal does.
//   output mode     full:  every position where kernel and image overlap, (H + KHe - 1) x (W + KWe - 1).
//                   same:  H x W, the full result cropped from ((KHe-1)/2, (KWe-1)/2) (SciPy's choice,
//                          also for even kernels).
//                   valid: only positions where the kernel lies inside the image, (H-KHe+1) x (W-KWe+1).
//   stride s        keep every s-th element of the mode's result, starting at its first:
//                   a dimension of length L becomes (L - 1) / s + 1.
//   border          how the image is extended beyond its edges before filtering (see padding.hpp);
//                   irrelevant for output::valid, which never reads outside the image.
//   backend         one way of computing the same function: direct, im2col (GEMM), fft (FFTW), cufft.
#pragma once

#include "version.hpp"

#include <cstddef>
#include <stdexcept>

CONVKIT_NAMESPACE_BEGIN

/// Signed size and index type of every extent, offset and stride. (Not `index`: POSIX declares a
/// function index() in <strings.h>, which `using namespace convkit;` would make ambiguous.)
using index_t = std::ptrdiff_t;

/// The name convkit 0.1 used for index_t; removed in the next release.
using index [[deprecated("convkit::index is now convkit::index_t")]] = index_t;

/// Rows x cols of a 2-D array.
struct shape2d {
  index_t rows, cols;
  friend bool operator==(shape2d a, shape2d b) { return a.rows == b.rows && a.cols == b.cols; }
  friend bool operator!=(shape2d a, shape2d b) { return !(a == b); }
};

/// SciPy's output modes (see the glossary above).
enum class output { full, same, valid };

/// How an image is extended beyond its edges. For an index i outside [0, n):
///   zero       0
///   constant   options::edge_value
///   replicate  clamp to [0, n-1]                          (NumPy edge, OpenCV BORDER_REPLICATE)
///   reflect    d c b | a b c d | c b a, edge not repeated  (NumPy reflect, OpenCV BORDER_REFLECT_101)
///   symmetric  c b a | a b c | c b a, edge repeated         (NumPy symmetric, OpenCV BORDER_REFLECT)
///   circular   i mod n                                      (NumPy wrap, OpenCV BORDER_WRAP)
enum class border { zero, constant, replicate, reflect, symmetric, circular };

/// Which backend computes the convolution. `automatic` picks one that is built in and suits the call.
enum class algorithm { automatic, direct, im2col, fft, cufft };

/// A bad argument. The message names the argument.
struct error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// A backend that is not part of this build, or that has no device to run on.
struct unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline const char* to_string(output o) noexcept {
  switch (o) {
    case output::full: return "full";
    case output::same: return "same";
    case output::valid: return "valid";
  }
  return "?";
}

inline const char* to_string(border b) noexcept {
  switch (b) {
    case border::zero: return "zero";
    case border::constant: return "constant";
    case border::replicate: return "replicate";
    case border::reflect: return "reflect";
    case border::symmetric: return "symmetric";
    case border::circular: return "circular";
  }
  return "?";
}

inline const char* to_string(algorithm a) noexcept {
  switch (a) {
    case algorithm::automatic: return "automatic";
    case algorithm::direct: return "direct";
    case algorithm::im2col: return "im2col";
    case algorithm::fft: return "fft";
    case algorithm::cufft: return "cufft";
  }
  return "?";
}

CONVKIT_NAMESPACE_END
