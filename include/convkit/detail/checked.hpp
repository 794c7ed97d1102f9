// Overflow-checked index arithmetic: every size product convkit forms goes through these, so that
// a huge or hostile shape throws convkit::error naming the argument instead of wrapping around.
// Cost models, which rate candidates without allocating them, saturate instead (saturated_index).
#pragma once

#include "../version.hpp"

#include <limits>
#include <string>

#include "../types.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

inline index_t checked_mul(index_t a, index_t b, const char* what) {
  index_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw error(std::string(what) + ": size overflows convkit::index_t");
  return r;
}

inline index_t checked_add(index_t a, index_t b, const char* what) {
  index_t r;
  if (__builtin_add_overflow(a, b, &r)) throw error(std::string(what) + ": size overflows convkit::index_t");
  return r;
}

/// v rounded to T as IEEE arithmetic does: beyond T's range, +-infinity (a plain conversion would be
/// undefined behaviour there).
template <class T>
T to_element(double v) noexcept {
  constexpr double top = double(std::numeric_limits<T>::max());
  if (v > top) return std::numeric_limits<T>::infinity();
  if (v < -top) return -std::numeric_limits<T>::infinity();
  return static_cast<T>(v);
}

/// x as an index, saturating at a quarter of the largest (so that sums of a few stay representable).
inline index_t saturated_index(double x) noexcept {
  constexpr index_t top = std::numeric_limits<index_t>::max() / 4;
  return x < double(top) ? index_t(x) : top;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
