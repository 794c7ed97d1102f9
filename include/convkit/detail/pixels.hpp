// Pixels in and out of the compute type: rows (or one channel of an interleaved row) read into T
// (float or double), and T written back as pixels: for integer pixels rounded half to even, then
// saturated to the type's range (OpenCV's saturate_cast; NaN becomes the lowest value, as cvRound's
// INT_MIN saturates), for floating ones converted. Whole rows go through pixel_kernel.inl, compiled
// per instruction set.
#pragma once

#include "../version.hpp"

#include <cstdint>
#include <limits>
#include <type_traits>

#include "../types.hpp"
#include "simd/isa.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// The pixel of type Q that value x (in T) stores as (see the top of this file).
template <class Q, class T>
inline Q to_pixel(T x) noexcept {
  if constexpr (std::is_floating_point_v<Q>) {
    return Q(x);
  } else {
    constexpr T lo = T(std::numeric_limits<Q>::lowest()), hi = T(std::numeric_limits<Q>::max());
    const T clamped = x >= lo ? (x <= hi ? x : hi) : lo;  // NaN fails both tests: lo
    // Rounded half to even: adding and subtracting 1.5 * 2^(mantissa bits - 1) rounds in the FPU's
    // default mode (to nearest, ties to even) for |x| below 2^22, and unlike std::nearbyint it
    // vectorises on every x86-64 (SSE2 has no rounding instruction).
    constexpr T magic = T(1.5) * T(std::uint64_t(1) << (std::numeric_limits<T>::digits - 1));
    return Q(static_cast<std::int32_t>((clamped + magic) - magic));
  }
}

/// to[i] = row[i * C + ch] in T, for i < n (C channels interleaved).
template <int C, class P, class T>
void load_channel(const P* row, index_t ch, index_t n, T* to) noexcept {
  const P* from = row + ch;
  for (index_t i = 0; i < n; ++i) to[i] = T(from[i * C]);
}

/// row[i * C + ch] = the pixel of from[i], for i < n.
template <int C, class Q, class T>
void store_channel(const T* from, index_t n, Q* row, index_t ch) noexcept {
  Q* to = row + ch;
  for (index_t i = 0; i < n; ++i) to[i * C] = to_pixel<Q>(from[i]);
}

/// Calls f(std::integral_constant<int, C>) for the channel count `channels` (1 to 4), so that the
/// loops above see it as a constant.
template <class F>
void with_channels(index_t channels, F&& f) {
  switch (channels) {
    case 1: return f(std::integral_constant<int, 1>());
    case 2: return f(std::integral_constant<int, 2>());
    case 3: return f(std::integral_constant<int, 3>());
    default: return f(std::integral_constant<int, 4>());
  }
}

#define CONVKIT_ISA_FILE "../pixel_kernel.inl"
#define CONVKIT_ISA_NAMESPACE(isa) pixel_##isa
#include "simd/per_isa.inl"

/// Contiguous rows of pixels P read into T, and T written as pixels Q, for one instruction set.
template <class P, class T, class Q>
struct pixel_rows {
  void (*load)(const P*, index_t, T*);
  void (*store)(const T*, index_t, Q*);
};

template <class P, class T, class Q>
pixel_rows<P, T, Q> pixel_rows_for(cpu::isa i) noexcept {
#if CONVKIT_ISA_X86
  if (i == cpu::isa::avx512) return {&pixel_avx512::load_row<P, T>, &pixel_avx512::store_row<T, Q>};
  if (i == cpu::isa::avx2) return {&pixel_avx2::load_row<P, T>, &pixel_avx2::store_row<T, Q>};
#endif
  (void)i;
  return {&pixel_generic::load_row<P, T>, &pixel_generic::store_row<T, Q>};
}

}  // namespace detail
CONVKIT_NAMESPACE_END
