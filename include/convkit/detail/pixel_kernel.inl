// Rows of pixels in and out of the compute type, compiled once per instruction set (simd/per_isa.inl,
// from pixels.hpp): loads are plain loops the compiler vectorises; a float row stored as integer
// pixels converts with the vector unit's rounding (to nearest, ties to even) and saturating packs,
// as OpenCV does, where a scalar clamp would keep compilers from vectorising (a compare that may
// trap stops their if-conversion). NaN converts to the integer indefinite value, INT_MIN, and so
// saturates to the lowest pixel, as to_pixel() says.

/// to[i] = T(from[i]), i < n.
template <class P, class T>
void load_row(const P* from, index_t n, T* to) noexcept {
  for (index_t i = 0; i < n; ++i) to[i] = T(from[i]);
}

// GCC 12 warns that its own intrinsics' "undefined" operands (`__m512i __Y = __Y;`) may be used
// uninitialized: a false positive of its headers, silenced for this function.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
/// to[i] = to_pixel<Q>(from[i]), i < n.
template <class T, class Q>
void store_row(const T* from, index_t n, Q* to) noexcept {
  index_t i = 0;
#if CONVKIT_ISA_LEVEL == 2
  if constexpr (std::is_same_v<T, float> && std::is_integral_v<Q>) {
    const __m512 hi = _mm512_set1_ps(65535.0f);  // above every pixel, below INT_MAX
    const __m512i zero = _mm512_setzero_si512();
    for (; i + 16 <= n; i += 16) {
      const __m512i v = _mm512_cvtps_epi32(_mm512_min_ps(hi, _mm512_loadu_ps(from + i)));  // min(hi, NaN) is NaN
      if constexpr (std::is_same_v<Q, std::uint8_t>)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(to + i), _mm512_cvtusepi32_epi8(_mm512_max_epi32(v, zero)));
      else if constexpr (std::is_same_v<Q, std::uint16_t>)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + i), _mm512_cvtusepi32_epi16(_mm512_max_epi32(v, zero)));
      else
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + i), _mm512_cvtsepi32_epi16(v));
    }
  }
#elif CONVKIT_ISA_LEVEL == 1
  if constexpr (std::is_same_v<T, float> && std::is_integral_v<Q>) {
    const __m256 hi = _mm256_set1_ps(65535.0f);
    for (; i + 16 <= n; i += 16) {
      const __m256i a = _mm256_cvtps_epi32(_mm256_min_ps(hi, _mm256_loadu_ps(from + i)));
      const __m256i b = _mm256_cvtps_epi32(_mm256_min_ps(hi, _mm256_loadu_ps(from + i + 8)));
      // The packs work within 128-bit lanes: a0-3 b0-3 | a4-7 b4-7, put back in order by the permute.
      if constexpr (std::is_same_v<Q, std::uint16_t>) {
        const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + i), w);
      } else {
        const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xd8);
        if constexpr (std::is_same_v<Q, std::int16_t>) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + i), w);
        } else {
          const __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(w, w), 0x08);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(to + i), _mm256_castsi256_si128(bytes));
        }
      }
    }
  }
#endif
  for (; i < n; ++i) to[i] = to_pixel<Q>(from[i]);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
