// The direct backend's micro-kernel, compiled once per instruction set (simd/per_isa.inl), and the
// run-time choice among the copies.
#pragma once

#include "../version.hpp"

#include <utility>

#include "../types.hpp"
#include "simd/isa.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// Output rows computed together by one micro-kernel call (they share input rows). With 4 rows, a
/// block holds 4 x 4 AVX-512 accumulators (16 of the 32 zmm registers, leaving room for 4 input
/// vectors and 4 broadcast weights) or 4 x 2 AVX2 ones (8 of the 16 ymm registers, with 2 inputs
/// and 4 weights): enough independent FMA chains to cover the FMA latency, few enough to stay in
/// registers (direct_kernel.inl's simd<T>::vecs is the vector count).
inline constexpr int direct_block_rows = 4;

/// A block of output rows whose input rows are evenly spaced: output row t of the block (t < rows)
/// with kernel row u reads input row t + u, which starts at in + (t + u) * in_step; its kernel column
/// v is at in-row offset col_off[v]. Output row t starts at out + t * out_step.
template <class T>
struct direct_job {
  const T* in;
  index_t in_step;
  const index_t* col_off;
  const T* k;  ///< k_rows x k_cols, contiguous, in correlation order
  int k_rows, k_cols;
  T* out;
  index_t out_step;
  index_t out_cols;
  int rows;
  bool accumulate = false;  ///< add to the output's values instead of overwriting them (channels, bias)
};

#define CONVKIT_ISA_FILE "../direct_kernel.inl"
#define CONVKIT_ISA_NAMESPACE(isa) direct_##isa
#include "simd/per_isa.inl"

template <class T>
using direct_kernel_fn = void (*)(const direct_job<T>&);

/// The separable path's 1-D passes for one instruction set (separable_kernel.inl, compiled with the
/// micro-kernel): the row pass, and the column pass for one output row or four consecutive ones.
template <class T>
struct separable_passes {
  void (*row)(const T*, index_t, const T*, int, index_t, T*, index_t, bool);
  void (*column)(const T* const*, const T*, int, T* const*, index_t);
  void (*column4)(const T* const*, const T*, int, T* const*, index_t);
  void (*column8)(const T* const*, const T*, int, T* const*, index_t);
};

template <class T>
separable_passes<T> separable_passes_for(cpu::isa i) noexcept {
#if CONVKIT_ISA_X86
  if (i == cpu::isa::avx512)
    return {&direct_avx512::row_pass<T>, &direct_avx512::column_pass_rows<1, T>, &direct_avx512::column_pass_rows<4, T>,
            &direct_avx512::column_pass_rows<8, T>};
  if (i == cpu::isa::avx2)
    return {&direct_avx2::row_pass<T>, &direct_avx2::column_pass_rows<1, T>, &direct_avx2::column_pass_rows<4, T>,
            &direct_avx2::column_pass_rows<8, T>};
#endif
  (void)i;
  return {&direct_generic::row_pass<T>, &direct_generic::column_pass_rows<1, T>,
          &direct_generic::column_pass_rows<4, T>, &direct_generic::column_pass_rows<8, T>};
}

template <class T>
direct_kernel_fn<T> direct_kernel_for(cpu::isa i) noexcept {
#if CONVKIT_ISA_X86
  if (i == cpu::isa::avx512) return &direct_avx512::run<T>;
  if (i == cpu::isa::avx2) return &direct_avx2::run<T>;
#endif
  (void)i;
  return &direct_generic::run<T>;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
