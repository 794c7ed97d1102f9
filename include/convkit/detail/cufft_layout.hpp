// The cuFFT backend's arithmetic that is neither a launch nor a copy: which rectangular copies
// assemble a tile's window of the border-extended input on the device, which copies pick a tile's
// (strided) results out of a transform buffer, how much device memory a tile plan takes, and how
// many images of a batch one pass can hold (cufft_batch_memory).
// Plain C++ (no CUDA type), so the CPU tests check it directly: applying the window copies on the
// host must reproduce convkit::extend, and the output copies must write every output once.
//
// Device-resident inputs need this because convkit::extend runs on the host: on the device the
// same window is made of block copies, each row and column mapped through the one border rule,
// convkit::border_index. Host inputs are extended by convkit::extend itself, into pinned memory.
#pragma once

#include "../version.hpp"

#include <algorithm>

#include "../padding.hpp"
#include "fft_sizes.hpp"
#include "problem.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// One rectangular copy into a window: window(dst_row + i, dst_col + j) = source(src_row + i, src_col + j)
/// for i < rows, j < cols. Sources: the input, rows of the window already assembled, or a vector of
/// the border's fill value (then rows == 1 or cols == 1, and the vector is read along that extent).
struct block_copy {
  enum class from { input, window, fill };
  from source;
  index_t src_row, src_col;
  index_t dst_row, dst_col;
  index_t rows, cols;
};

/// Runs of window columns [0, win_cols) whose input columns are consecutive: f(dst_col, src_col,
/// length), src_col = -1 (one column at a time) where the border rule gives the fill value.
template <class F>
void for_each_column_run(index_t in_cols, index_t left, index_t win_cols, border b, F&& f) {
  for (index_t c = 0; c < win_cols;) {
    const index_t s = border_index(c - left, in_cols, b);
    index_t len = 1;
    if (s >= 0)
      while (c + len < win_cols && border_index(c + len - left, in_cols, b) == s + len) ++len;
    f(c, s, len);
    c += len;
  }
}

/// The block copies that fill a win_rows x win_cols window with the extended input, exactly as
/// extend(input, window, top, left, b, fill) would: window(r, c) = ext(r - top, c - left). Emitted
/// in an order that is safe to run on one stream: window-to-window copies read rows copied earlier.
/// The fill vector they read needs max(win_rows, win_cols) elements.
/// About (2 + border rows) x (border columns) copies: a tile's rows inside the image are copied in
/// one block per run of columns; each other row is a copy of a row already there, or of the fill.
template <class Emit>
void for_each_window_copy(index_t in_rows, index_t in_cols, index_t top, index_t left, index_t win_rows,
                          index_t win_cols, border b, Emit&& emit) {
  using from = block_copy::from;
  // Window rows [ra, rb) read input rows r - top without the border rule.
  const index_t ra = std::clamp<index_t>(top, 0, win_rows), rb = std::clamp<index_t>(top + in_rows, ra, win_rows);
  if (ra < rb)
    for_each_column_run(in_cols, left, win_cols, b, [&](index_t c, index_t s, index_t len) {
      if (s >= 0)
        emit(block_copy{from::input, ra - top, s, ra, c, rb - ra, len});
      else
        emit(block_copy{from::fill, 0, 0, ra, c, rb - ra, 1});
    });
  for (index_t r = 0; r < win_rows; ++r) {
    if (r == ra && ra < rb) r = rb;  // skip the interior, done above
    if (r >= win_rows) break;
    const index_t s = border_index(r - top, in_rows, b);
    if (s < 0) {
      emit(block_copy{from::fill, 0, 0, r, 0, 1, win_cols});
    } else if (s + top >= ra && s + top < rb) {
      emit(block_copy{from::window, s + top, 0, r, 0, 1, win_cols});
    } else {  // the source row lies outside this window: assemble the row from the input
      for_each_column_run(in_cols, left, win_cols, b, [&](index_t c, index_t sc, index_t len) {
        if (sc >= 0)
          emit(block_copy{from::input, s, sc, r, c, 1, len});
        else
          emit(block_copy{from::fill, 0, 0, r, c, 1, 1});
      });
    }
  }
}

/// A copy of `height` runs of `width` contiguous elements: run k goes from src_offset + k * src_pitch
/// to dst_offset + k * dst_pitch (all in elements), as cudaMemcpy2D counts them (in bytes).
struct pitched_copy {
  index_t src_offset, src_pitch, dst_offset, dst_pitch, width, height;
};

/// The copies that move one tile's results from a transform buffer (rows of `buffer_pitch`
/// elements) to their place in an output (rows of `out_pitch` elements): out(rows.first + i,
/// cols.first + j) = buffer(rows.local + i * stride_rows, cols.local + j * stride_cols). One copy
/// when stride_cols is 1; otherwise one per output row or one per output column, whichever is fewer.
template <class Emit>
void for_each_output_copy(fft::tile_outputs rows, fft::tile_outputs cols, index_t stride_rows, index_t stride_cols,
                          index_t buffer_pitch, index_t out_pitch, Emit&& emit) {
  if (rows.count == 0 || cols.count == 0) return;
  const index_t src0 = rows.local * buffer_pitch + cols.local, dst0 = rows.first * out_pitch + cols.first;
  const index_t src_row_step = stride_rows * buffer_pitch;
  if (stride_cols == 1) {
    emit(pitched_copy{src0, src_row_step, dst0, out_pitch, cols.count, rows.count});
  } else if (rows.count <= cols.count) {
    for (index_t i = 0; i < rows.count; ++i)
      emit(pitched_copy{src0 + i * src_row_step, stride_cols, dst0 + i * out_pitch, 1, 1, cols.count});
  } else {
    for (index_t j = 0; j < cols.count; ++j)
      emit(pitched_copy{src0 + j * stride_cols, src_row_step, dst0 + j, out_pitch, 1, rows.count});
  }
}

/// Device memory of a cuFFT plan over tile plan `t` with `slots` tiles in flight, in bytes: the
/// kernel spectrum, the fill vector of device-side windows (one value per window row or column),
/// and per slot one in-place tile buffer and cuFFT's work area, budgeted as one more buffer. (The
/// backend allocates whatever work area cufftMakePlanMany asks for; that one buffer covers it is an
/// assumption, not yet checked on a GPU.)
inline index_t cufft_device_bytes(const fft::tile_plan& t, index_t element_bytes, index_t slots) {
  const index_t buffer = t.buffer_bytes(element_bytes);
  const index_t buffers =
      checked_mul(checked_add(checked_mul(2, slots, "cufft slots"), 1, "cufft slots"), buffer, "cufft device memory");
  const index_t fill = checked_mul(std::max(t.rows.transform, t.cols.transform), element_bytes, "cufft fill vector");
  return checked_add(buffers, fill, "cufft device memory");
}

/// Device memory of the cuFFT batch executor (detail/cufft_batch.hpp) for problem g with transform layout
/// l, in bytes (saturating). It transforms a chunk of images per pass, with spectra stored
/// frequency-major so that one batched complex GEMM per group sums over channels:
///   kept       the filters' K * C/groups half spectra and the real planes they are made from;
///   per image  max(C, K) padded real planes (inputs, then outputs), C input and K output half
///              spectra;
///   work area  cuFFT's, shared by the three batched plans, budgeted as large as their real planes
///              (K * C/groups, and max(C, K) per image). An assumption, not yet checked on a GPU.
struct cufft_batch_memory {
  index_t kept = 0, per_image = 0;

  /// Everything at once for passes of `images` images.
  index_t bytes(index_t images) const noexcept {
    return saturated_index(double(kept) + double(images) * double(per_image));
  }
};

inline cufft_batch_memory cufft_batch_bytes(const conv_problem& g, fft::spectrum_layout l, index_t element_bytes) {
  const double real = double(l.real_count()) * double(element_bytes);
  const double spectrum = double(l.complex_count()) * 2.0 * double(element_bytes);
  const double filters = double(g.k) * double(g.c_per_group());
  cufft_batch_memory m;
  m.kept = saturated_index(filters * (spectrum + 2.0 * real));
  m.per_image = saturated_index(2.0 * double(std::max(g.c, g.k)) * real + double(g.c + g.k) * spectrum);
  return m;
}

/// Images per pass of the cuFFT batch executor: the most (up to g.n) whose buffers fit under `cap`
/// bytes and whose transforms cuFFT's int sizes can index (batch * plane elements <= INT_MAX), then
/// evened out over the passes (5 images in passes of 3 take 3 + 2 -> 3, 7 in passes of 4 -> 4 + 3).
/// 0 if not even one image fits, or one plane's bytes exceed a copy's largest pitch (INT_MAX).
inline index_t cufft_batch_chunk(const conv_problem& g, fft::spectrum_layout l, index_t element_bytes, index_t cap) {
  const cufft_batch_memory m = cufft_batch_bytes(g, l, element_bytes);
  if (m.bytes(1) > cap) return 0;
  const double int_limit = double(std::numeric_limits<int>::max());
  const double plane = double(std::max(l.real_count(), 2 * l.complex_count()));
  if (double(g.k) * double(g.c_per_group()) * plane > int_limit) return 0;   // the filters' one transform
  if (double(l.real_count()) * double(element_bytes) > int_limit) return 0;  // a plane is one copy's pitch
  const double by_memory = std::floor((double(cap) - double(m.kept)) / double(m.per_image));
  const double by_int = std::floor(int_limit / (plane * double(std::max(g.c, g.k))));
  const index_t most = index_t(std::clamp(std::min(by_memory, by_int), 0.0, double(g.n)));
  if (most == 0) return 0;
  const index_t passes = (g.n + most - 1) / most;
  return (g.n + passes - 1) / passes;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
