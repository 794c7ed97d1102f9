// Overflow-checked index arithmetic: every size product convkit forms goes through these, so that
// a huge or hostile shape throws convkit::error naming the argument instead of wrapping around.
// Cost models, which rate candidates without allocating them, saturate instead (saturated_index).
#pragma once

#include <limits>
#include <string>

#include "../types.hpp"

namespace convkit::detail {

inline index checked_mul(index a, index b, const char* what) {
  index r;
  if (__builtin_mul_overflow(a, b, &r)) throw error(std::string(what) + ": size overflows convkit::index");
  return r;
}

inline index checked_add(index a, index b, const char* what) {
  index r;
  if (__builtin_add_overflow(a, b, &r)) throw error(std::string(what) + ": size overflows convkit::index");
  return r;
}

/// x as an index, saturating at a quarter of the largest (so that sums of a few stay representable).
inline index saturated_index(double x) noexcept {
  constexpr index top = std::numeric_limits<index>::max() / 4;
  return x < double(top) ? index(x) : top;
}

}  // namespace convkit::detail
