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
#include <string>

#include "detail/enum_table.hpp"

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

/// What an FFT backend may trade for speed (docs/accuracy.md). Direct summation of an output
/// y = sum x * k over m = R * S taps errs by at most gamma_m * (|x| * |k|) at that output,
/// gamma_m = m u / (1 - m u), u the unit roundoff of T; an FFT's error is bounded by the norms of the
/// whole transform, so beside large values small outputs can lose their relative accuracy.
///   automatic      componentwise under algorithm::automatic, normwise for a backend asked for by name
///   componentwise  every output within 16 * gamma_m * (|x| * |k|) at it (the accuracy contract):
///                  FFT outputs that cannot be proven so are computed by direct summation
///   normwise       the FFT's own bound: the fastest path
enum class accuracy { automatic, componentwise, normwise };

/// A bad argument. The message names the argument.
struct error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// A backend that is not part of this build, or that has no device to run on.
struct unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <>
struct enum_table<output> {
  static constexpr const char* type = "convkit::output";
  static constexpr enum_entry<output> entries[] = {
      {output::full, "full"}, {output::same, "same"}, {output::valid, "valid"}};
};
template <>
struct enum_table<border> {
  static constexpr const char* type = "convkit::border";
  static constexpr enum_entry<border> entries[] = {{border::zero, "zero"},           {border::constant, "constant"},
                                                   {border::replicate, "replicate"}, {border::reflect, "reflect"},
                                                   {border::symmetric, "symmetric"}, {border::circular, "circular"}};
};
template <>
struct enum_table<algorithm> {
  static constexpr const char* type = "convkit::algorithm";
  static constexpr enum_entry<algorithm> entries[] = {{algorithm::automatic, "automatic"},
                                                      {algorithm::direct, "direct"},
                                                      {algorithm::im2col, "im2col"},
                                                      {algorithm::fft, "fft"},
                                                      {algorithm::cufft, "cufft"}};
};
template <>
struct enum_table<accuracy> {
  static constexpr const char* type = "convkit::accuracy";
  static constexpr enum_entry<accuracy> entries[] = {
      {accuracy::automatic, "automatic"}, {accuracy::componentwise, "componentwise"}, {accuracy::normwise, "normwise"}};
};

/// Throws convkit::error "<what>: not a <E's type> (value <n>)" for a value outside E's enumerators.
template <class E>
void check_enum(E e, const std::string& what) {
  if (!enum_valid(e))
    throw error(what + ": not a " + enum_table<E>::type + " (value " + std::to_string(static_cast<int>(e)) + ")");
}
}  // namespace detail

inline const char* to_string(output o) noexcept { return detail::enum_name(o); }
inline const char* to_string(border b) noexcept { return detail::enum_name(b); }
inline const char* to_string(algorithm a) noexcept { return detail::enum_name(a); }
inline const char* to_string(accuracy a) noexcept { return detail::enum_name(a); }

CONVKIT_NAMESPACE_END
