// The direct backend's kernels, one copy per instruction set, and the run-time choice among them.
#pragma once

#include <atomic>
#include <string>
#include <utility>

#include "../types.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define CONVKIT_DIRECT_X86 1
#include <immintrin.h>
#else
#define CONVKIT_DIRECT_X86 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CONVKIT_DIRECT_INLINE inline __attribute__((always_inline))
#else
#define CONVKIT_DIRECT_INLINE inline
#endif

namespace convkit::detail {

/// Output rows computed together by one micro-kernel call (they share input rows).
inline constexpr int direct_block_rows = 4;

/// A block of output rows whose input rows are evenly spaced: output row t of the block (t < rows)
/// with kernel row u reads input row t + u, which starts at in + (t + u) * in_step; its kernel column
/// v is at in-row offset col_off[v]. Output row t starts at out + t * out_step.
template <class T>
struct direct_job {
  const T* in;
  index in_step;
  const index* col_off;
  const T* k;  ///< k_rows x k_cols, contiguous, already flipped for convolution
  int k_rows, k_cols;
  T* out;
  index out_step;
  index out_cols;
  int rows;
  bool accumulate = false;  ///< add to the output's values instead of overwriting them (layers sum channels)
};

#define CONVKIT_ISA_FILE "direct_kernel.inl"
#define CONVKIT_ISA_NAMESPACE(isa) direct_##isa
#include "per_isa.inl"

}  // namespace convkit::detail

namespace convkit::direct {

/// The instruction sets the direct backend has kernels for.
enum class isa { portable, avx2, avx512 };

inline const char* to_string(isa i) noexcept {
  switch (i) {
    case isa::portable: return "portable C++";
    case isa::avx2: return "AVX2+FMA";
    case isa::avx512: return "AVX-512";
  }
  return "?";
}

/// The best instruction set this CPU (and OS) supports.
inline isa best_instruction_set() noexcept {
#if CONVKIT_DIRECT_X86
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq"))
    return isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return isa::avx2;
#endif
  return isa::portable;
}

namespace detail {
inline std::atomic<int>& forced_isa() noexcept {
  static std::atomic<int> forced{-1};
  return forced;
}
}  // namespace detail

/// Makes the direct backend use `i` (at most best_instruction_set()) in plans made from now on; for
/// tests and benchmarks that compare kernels. Throws convkit::unavailable if this CPU lacks it.
inline void force_instruction_set(isa i) {
  if (static_cast<int>(i) > static_cast<int>(best_instruction_set()))
    throw unavailable(std::string("direct::force_instruction_set: this CPU does not support ") + to_string(i));
  detail::forced_isa().store(static_cast<int>(i));
}

/// The instruction set that plans made now use.
inline isa instruction_set() noexcept {
  const int f = detail::forced_isa().load();
  return f < 0 ? best_instruction_set() : static_cast<isa>(f);
}

}  // namespace convkit::direct

namespace convkit::detail {

template <class T>
using direct_kernel_fn = void (*)(const direct_job<T>&);

template <class T>
direct_kernel_fn<T> direct_kernel_for(direct::isa i) noexcept {
#if CONVKIT_DIRECT_X86
  if (i == direct::isa::avx512) return &direct_avx512::run<T>;
  if (i == direct::isa::avx2) return &direct_avx2::run<T>;
#endif
  (void)i;
  return &direct_generic::run<T>;
}

}  // namespace convkit::detail
