// The direct backend's micro-kernel, compiled once per instruction set (simd/per_isa.inl), and the
// run-time choice among the copies.
#pragma once

#include "../version.hpp"

#include <utility>

#include "../types.hpp"
#include "simd/isa.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// Output rows computed together by one micro-kernel call (they share input rows). With 6 rows, a
/// block holds 6 x 4 AVX-512 accumulators (24 of the 32 zmm registers, beside 4 input vectors and
/// one broadcast weight) or 6 x 2 AVX2 ones (12 of the 16 ymm registers, with 2 inputs and a
/// weight): each input vector loaded feeds up to 6 FMAs, and the R - 1 rows at each end of a
/// block's input, which feed fewer, are a smaller part of it than with 4 rows (direct_kernel.inl's
/// simd<T>::vecs is the vector count).
inline constexpr int direct_block_rows = 6;

/// Kernels of up to direct_stream_limit rows may stream (direct_kernel.inl: stream_vectors says
/// where): a job of m groups of kernel-rows output rows walks its input rows with the accumulators
/// as a ring, so only the first and last kernel - 1 input rows of the job sum products no output
/// keeps. Such jobs hold about direct_stream_rows rows (at least two groups): taller jobs amortise
/// those rows further but leave fewer jobs for the threads and make the banded path's per-thread
/// band larger. A visit takes about direct_stream_visit_rows input rows through one column tile
/// before the next tile.
inline constexpr int direct_stream_limit = 6;
inline constexpr int direct_stream_rows = 32;
inline constexpr int direct_stream_visit_rows = 12;

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

/// A block of the layer micro-kernel (layer_kernel.inl): KB output channels of one group at flat
/// positions q of the prepared input (direct_layer.hpp): out(k, q) = sum over c < channels and
/// t < taps of weights[(c * taps + t) * KB + k] * in[c * channel_step + q + tap_off[t]], written to
/// out + k * out_step + (q - first position of the range).
template <class T>
struct layer_job {
  const T* in;
  index_t channel_step;
  index_t channels;
  const index_t* tap_off;
  int taps;
  const T* weights;
  T* out;
  index_t out_step;
};

/// One plane of a depthwise layer (one filter per channel), zero border, stride S on both axes, rows
/// undilated: out(i, j) = bias + sum over u < KH, v < kw of
/// taps[u * kw + v] * x(S i + u - top, S j + v * col_dilation - left),
/// x being the h x w image (rows `row_stride` elements apart) and zero outside it; `rows` x `cols`
/// outputs.
template <class T>
struct depthwise_job {
  const T* image;
  index_t row_stride, h, w;
  index_t top, left, col_dilation;
  int kw;
  const T* taps;
  index_t rows, cols;
  T* out;
  index_t out_stride;
  T bias;
};

/// The layer micro-kernel's register tile: `channels` output channels (filters) x `vectors` vectors
/// of positions, and the fraction of the FMA peak its inner loop sustained with its input in cache
/// (a 64-channel 3x3 layer's ranges cycled over its filter blocks, one thread, the AVX-512 Xeon).
/// Each step of the tile loads `vectors` input vectors and broadcasts `channels` weights for
/// channels x vectors FMAs; the unaligned input loads are what limits it, so the tiles lean to
/// filters. AVX-512: 8 x 3 (24 of the 32 zmm registers, 3 inputs and a weight beside them; 88-94%),
/// or 4 x 6 (77-81%) where 8 would leave more filters of a group idle (ResNeXt's groups of 4;
/// oneDNN's jit kernels hold up to 28 accumulators, Halide's conv_layer schedule 4 x 5); AVX2:
/// 4 x 3 (12 of the 16 ymm registers with 3 inputs and a weight; 95% of the AVX2 peak; Halide's
/// 3 x 4); portable: 4 x 8 scalars, which the compiler may vectorise over positions. Layers of one
/// filter per group (depthwise) have nothing for a tile of filters to share: 1 x 8, eight
/// independent accumulators of positions per broadcast weight, one input load per FMA (35%: its
/// short channel sums leave the loop overhead in sight).
struct layer_tile_shape {
  int channels, vectors;
  double efficiency;
};
constexpr layer_tile_shape layer_tile_of(cpu::isa i, index_t filters_per_group) noexcept {
  if (filters_per_group == 1) return {1, 8, 0.35};
  if (i == cpu::isa::avx512) {
    constexpr layer_tile_shape wide{8, 3, 0.9}, narrow{4, 6, 0.8};
    const auto kept = [&](int channels) {
      const index_t blocks = (filters_per_group + channels - 1) / channels;
      return double(filters_per_group) / double(blocks * channels);
    };
    return kept(wide.channels) * wide.efficiency >= kept(narrow.channels) * narrow.efficiency ? wide : narrow;
  }
  return i == cpu::isa::avx2 ? layer_tile_shape{4, 3, 0.95} : layer_tile_shape{4, 8, 1.0};
}

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

/// Computes flat positions [q0, q1) of a layer_job (rounded up to whole vectors).
template <class T>
using layer_range_fn = void (*)(const layer_job<T>&, index_t, index_t);

/// The layer micro-kernel of instruction set i with tile layer_tile_of(i, filters_per_group).
template <class T>
layer_range_fn<T> layer_range_for(cpu::isa i, index_t filters_per_group) noexcept {
  constexpr layer_tile_shape single = layer_tile_of(cpu::isa::portable, 1);
  const layer_tile_shape tile = layer_tile_of(i, filters_per_group);
#if CONVKIT_ISA_X86
  constexpr layer_tile_shape wide = layer_tile_of(cpu::isa::avx512, 64), narrow = layer_tile_of(cpu::isa::avx512, 4),
                             ymm = layer_tile_of(cpu::isa::avx2, 2);
  static_assert(wide.channels != narrow.channels, "the two AVX-512 tiles");
  if (i == cpu::isa::avx512) {
    if (tile.channels == single.channels) return &direct_avx512::layer_range<T, single.channels, single.vectors>;
    if (tile.channels == wide.channels) return &direct_avx512::layer_range<T, wide.channels, wide.vectors>;
    return &direct_avx512::layer_range<T, narrow.channels, narrow.vectors>;
  }
  if (i == cpu::isa::avx2)
    return tile.channels == single.channels ? &direct_avx2::layer_range<T, single.channels, single.vectors>
                                            : &direct_avx2::layer_range<T, ymm.channels, ymm.vectors>;
#endif
  constexpr layer_tile_shape portable = layer_tile_of(cpu::isa::portable, 2);
  return tile.channels == single.channels ? &direct_generic::layer_range<T, single.channels, single.vectors>
                                          : &direct_generic::layer_range<T, portable.channels, portable.vectors>;
}

/// Copies a layer tile's results for one filter into its output plane, plus the bias
/// (layer_kernel.inl, layer_store).
template <class T>
using layer_store_fn = void (*)(const T*, index_t, index_t, index_t, index_t, T*, index_t, T);

/// layer_store of instruction set i.
template <class T>
layer_store_fn<T> layer_store_for(cpu::isa i) noexcept {
#if CONVKIT_ISA_X86
  if (i == cpu::isa::avx512) return &direct_avx512::layer_store<T>;
  if (i == cpu::isa::avx2) return &direct_avx2::layer_store<T>;
#endif
  (void)i;
  return &direct_generic::layer_store<T>;
}

/// A depthwise plane (layer_kernel.inl, depthwise_plane): blocks of 8 output rows, or of 4 for
/// planes of 4 to 7 rows (MobileNet's last, 7 x 7).
template <class T>
using depthwise_plane_fn = void (*)(const depthwise_job<T>&);
inline constexpr index_t depthwise_min_rows = 4;

/// Whether depthwise_plane_for has a kernel of `kernel_rows` rows at stride `stride`: 3 rows at
/// strides 1 and 2 (MobileNet's), 5 rows at stride 1 (EfficientNet's).
constexpr bool depthwise_kernel_exists(index_t kernel_rows, int stride) noexcept {
  return (kernel_rows == 3 && (stride == 1 || stride == 2)) || (kernel_rows == 5 && stride == 1);
}

/// depthwise_plane of instruction set i for kernels of `kernel_rows` rows, stride `stride` (both
/// axes) and planes of `rows` output rows (>= depthwise_min_rows); null where there is none
/// (depthwise_kernel_exists).
template <class T>
depthwise_plane_fn<T> depthwise_plane_for(cpu::isa i, index_t kernel_rows, int stride, index_t rows) noexcept {
  if (!depthwise_kernel_exists(kernel_rows, stride)) return nullptr;
  const int pick = (kernel_rows == 5 ? 4 : stride == 2 ? 2 : 0) + (rows >= 8 ? 0 : 1);
  const auto of = [pick](auto... fns) -> depthwise_plane_fn<T> {
    const depthwise_plane_fn<T> all[] = {fns...};
    return all[pick];
  };
#define CONVKIT_DEPTHWISE_PLANES(ns)                                                                       \
  of(&ns::depthwise_plane<T, 3, 8, 1>, &ns::depthwise_plane<T, 3, 4, 1>, &ns::depthwise_plane<T, 3, 8, 2>, \
     &ns::depthwise_plane<T, 3, 4, 2>, &ns::depthwise_plane<T, 5, 8, 1>, &ns::depthwise_plane<T, 5, 4, 1>)
#if CONVKIT_ISA_X86
  if (i == cpu::isa::avx512) return CONVKIT_DEPTHWISE_PLANES(direct_avx512);
  if (i == cpu::isa::avx2) return CONVKIT_DEPTHWISE_PLANES(direct_avx2);
#endif
  (void)i;
  return CONVKIT_DEPTHWISE_PLANES(direct_generic);
#undef CONVKIT_DEPTHWISE_PLANES
}

/// The tallest kernel whose rows instruction set i's micro-kernel streams for T (0: none).
template <class T>
constexpr int direct_stream_max_rows(cpu::isa i) noexcept {
#if CONVKIT_ISA_X86
  if (i == cpu::isa::avx512) return direct_avx512::stream_max_rows<T>();
  if (i == cpu::isa::avx2) return direct_avx2::stream_max_rows<T>();
#endif
  (void)i;
  return direct_generic::stream_max_rows<T>();
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
