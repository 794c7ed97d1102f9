// The frequency-domain sum of products of the fft backend's layers: for a block of filters k,
// y_k = sum over input channels c of x_c * w_{k,c}, element-wise on half spectra (interleaved
// complex). One copy per instruction set (spectrum_product.inl), chosen at run time like the direct
// backend's micro-kernel (the plan's tuning::instruction_set, cpu.hpp). Names no FFT library.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "../types.hpp"
#include "simd/isa.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// A block of a spectrum is one cache line of reals (16 floats, 8 doubles: one AVX-512 vector,
/// two AVX2 vectors): spectrum lengths handed to multiply_accumulate are multiples of it (buffers
/// are padded with zeros up to it), and the fft backend stores spectra block by block.
inline constexpr index_t spectrum_block_bytes = 64;
template <class T>
inline constexpr index_t spectrum_block = spectrum_block_bytes / index_t(sizeof(T));

/// One call of the kernel: for `pairs` (image, tile) pairs p and `filters` filters k, `n` reals
/// (n / 2 complex numbers, n a multiple of spectrum_block<T>) of
///   y(p, k)[i] = sum_{c < channels} x(p, c)[i] * w(k, c)[i]
/// with x(p, c) = x + p * x_pair_step + c * x_channel_step, w(k, c) = w + k * w_filter_step +
/// c * w_channel_step and y(p, k) = y + p * y_pair_step + k * y_filter_step.
template <class T>
struct spectrum_job {
  const T* x;
  index_t x_channel_step, x_pair_step;
  const T* w;
  index_t w_channel_step, w_filter_step;
  T* y;
  index_t y_filter_step, y_pair_step;
  index_t channels, filters, pairs, n;
};

#define CONVKIT_ISA_FILE "../spectrum_product.inl"
#define CONVKIT_ISA_NAMESPACE(isa) spectrum_##isa
#include "simd/per_isa.inl"

template <class T>
using spectrum_kernel_fn = void (*)(const spectrum_job<T>&);

template <class T>
spectrum_kernel_fn<T> spectrum_kernel_for(cpu::isa i) noexcept {
#if CONVKIT_ISA_X86
  if (i == cpu::isa::avx512) return &spectrum_avx512::multiply_accumulate<T>;
  if (i == cpu::isa::avx2) return &spectrum_avx2::multiply_accumulate<T>;
#endif
  (void)i;
  return &spectrum_generic::multiply_accumulate<T>;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
