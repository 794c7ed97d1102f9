// Overflow-checked index arithmetic: every size product convkit forms goes through these, so that
// a huge or hostile shape throws convkit::error naming the argument instead of wrapping around.
#pragma once

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

}  // namespace convkit::detail
