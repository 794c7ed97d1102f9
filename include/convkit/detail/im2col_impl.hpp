// The im2col backend's engine: tiles of output positions, the lowering of a tile into a column
// matrix, and one CBLAS GEMM per group per tile. Serves layers and (as one channel, one filter)
// single images; backends/im2col.hpp wraps it in executors.
//
// Per axis every problem is the valid correlation of an extended input (axis_geometry): output o
// with kernel tap j reads ext[o * stride + j * dilation], ext[e] = input[e - pad_before]. For one
// image and one group of Cg input channels and Kg filters, with depth = Cg * R * S:
//   columns  (depth x P), P the output positions of a tile: columns((c, u, v), p) = ext_c(i*sr + u*dr, j*sc + v*dc)
//            for output position p = (i, j);
//   weights  (Kg x depth): the layer's [K, C/groups, R, S] weights as they are, one group a block of rows;
//   out      (Kg x P) = weights x columns, written straight into the output planes (ldc = plane stride).
// A tile is several whole images (when an image has few output positions; their columns sit side by
// side, and the GEMM's output passes through a buffer into each image's planes), a run of whole
// output rows, or a piece of one output row, sized by plan_im2col_tiles so that its workspace fits
// in a per-thread share of the workspace bound. 1x1 kernels with stride 1 and no padding need no
// lowering when a tile is one image: its columns are the input planes themselves.
#pragma once

#include "../version.hpp"

#include <mutex>

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "../padding.hpp"
#include "checked.hpp"
#include "geometry.hpp"
#include "problem.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// Row-major C (m x n) = A (m x k) * B (k x n) through CBLAS; every size fits an int (checked when planning).
inline void gemm(index_t m, index_t n, index_t k, const float* a, index_t lda, const float* b, index_t ldb, float* c,
                 index_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), 1.0f, a, int(lda), b, int(ldb), 0.0f,
              c, int(ldc));
}
inline void gemm(index_t m, index_t n, index_t k, const double* a, index_t lda, const double* b, index_t ldb, double* c,
                 index_t ldc) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), 1.0, a, int(lda), b, int(ldb), 0.0, c,
              int(ldc));
}

/// How many threads the im2col engine may run GEMMs on at once without oversubscribing the BLAS:
/// convkit's threads each run a single-threaded GEMM. With OpenBLAS, `make_single_threaded` asks it
/// to (openblas_set_num_threads(1), process-wide, once: tuning::single_threaded_blas); otherwise,
/// while OpenBLAS runs threads of its own, the engine runs on one thread and OpenBLAS threads each
/// GEMM. Other CBLAS libraries are not asked (the README says how to make them single-threaded).
inline int blas_compatible_threads(int threads, [[maybe_unused]] bool make_single_threaded) {
#if defined(OPENBLAS_VERSION)
  if (make_single_threaded) {
    static std::once_flag once;
    std::call_once(once, [] { openblas_set_num_threads(1); });
  }
  if (openblas_get_num_threads() > 1) return 1;
#endif
  return threads;
}

/// What the engine computes (see the top of this file).
struct im2col_shape {
  axis_geometry rows, cols;
  index_t channels_per_group, filters_per_group, groups;
  bool contiguous_input;  ///< input rows are contiguous (row_stride == cols), as in NCHW arrays
  index_t depth() const noexcept { return channels_per_group * rows.kernel * cols.kernel; }
  /// 1x1 kernel, stride 1, no padding, contiguous rows: the input planes are the column matrix.
  bool one_by_one() const noexcept {
    return contiguous_input && rows.kernel == 1 && cols.kernel == 1 && rows.stride == 1 && cols.stride == 1 &&
           !rows.reads_outside() && !cols.reads_outside();
  }
  bool extends() const noexcept { return rows.reads_outside() || cols.reads_outside(); }
};

/// Tile sizes, measured with bench/layers.cpp on the reference machine (README, "im2col"). A tile's
/// column matrix plus its GEMM output should fit in about im2col_cache_bytes, so that the GEMM reads
/// the columns the lowering has just written, and OpenBLAS's separate pass over C (beta = 0) stays
/// in cache; but it should have at least im2col_min_positions output positions, so that each GEMM
/// call amortises packing the weights. Images whose whole output is smaller than that are lowered
/// together, several to a tile.
inline constexpr index_t im2col_cache_bytes = index_t(2) << 20;
inline constexpr index_t im2col_min_positions = 1024;
/// To give every thread work, an image's output is cut into smaller tiles, but not below this many
/// positions (a GEMM that narrow is slow); beyond that, threads split the filters of a tile instead
/// (each lowering the same columns, which costs little next to a GEMM with that many filters).
inline constexpr index_t im2col_min_split_positions = 128;
inline constexpr index_t im2col_min_filters_per_block = 16;

/// How the batch's output is cut into tiles, the work items of the engine.
struct im2col_tiling {
  index_t images_per_tile = 1;  ///< > 1: each tile is this many whole images (their outputs pass through a buffer)
  index_t rows_per_tile = 0;    ///< images_per_tile == 1 and > 0: tiles are runs of this many whole output rows
  index_t cols_per_tile = 0;    ///< else: tiles are pieces of this many columns of one output row
  index_t tiles_per_image = 1;  ///< when images_per_tile == 1
  index_t tiles = 0;            ///< tiles in the batch
  index_t filter_blocks = 1;    ///< each tile's filters are split into this many work items
  bool lowers = true;           ///< false: 1x1 tiles of one image read the input planes as the column matrix
  index_t column_elems = 0;     ///< elements of the largest tile's column matrix
  index_t window_elems = 0;     ///< elements of the largest tile's extended input window (one image, one group)
  index_t output_elems = 0;     ///< elements of the GEMM output buffer of multi-image tiles
  index_t workspace_elems() const noexcept { return column_elems + window_elems + output_elems; }
};

/// One tile: images [image0, image1) x output rows [row0, row1) x columns [col0, col1).
struct im2col_tile {
  index_t image0, image1, row0, row1, col0, col1;
  index_t positions_per_image() const noexcept { return (row1 - row0) * (col1 - col0); }
  index_t positions() const noexcept { return (image1 - image0) * positions_per_image(); }
};

/// The workspace of a tile of `n` images x `rows` output rows x `cols` output columns, in
/// elements, with t's buffer sizes (column matrix, extended window, GEMM output) set for it.
inline index_t im2col_tile_workspace(const im2col_shape& s, index_t n, index_t rows, index_t cols, im2col_tiling& t) {
  const char* what = "im2col workspace";
  const index_t positions = checked_mul(n, checked_mul(rows, cols, what), what);
  t.lowers = n > 1 || !s.one_by_one();
  t.column_elems = t.lowers ? checked_mul(s.depth(), positions, what) : 0;
  const index_t window_rows = (rows - 1) * s.rows.stride + s.rows.span,
                window_cols = (cols - 1) * s.cols.stride + s.cols.span;
  t.window_elems =
      s.extends() ? checked_mul(s.channels_per_group, checked_mul(window_rows, window_cols, what), what) : 0;
  t.output_elems = n > 1 ? checked_mul(s.filters_per_group, positions, what) : 0;
  return t.workspace_elems();
}

/// The largest n in [1, most] with fits(n) (1 if none fits); fits is monotone in n.
template <class Fits>
index_t largest_fitting(index_t most, Fits&& fits) {
  index_t lo = 1, hi = std::max<index_t>(1, most);
  while (lo < hi) {
    const index_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid))
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/// Cuts the output of `images` images into tiles whose workspace (column matrix, extended window and,
/// for multi-image tiles, GEMM output) fits in `budget_elems` elements, sized after
/// im2col_cache_bytes and im2col_min_positions (`cache_elems` is the former in elements), with at
/// least `threads` work items (tiles x filter blocks) when the output allows it. A tile is at least
/// one output position, so the workspace is never below depth + channels_per_group * span_rows *
/// span_cols elements, whatever the budget.
inline im2col_tiling plan_im2col_tiles(const im2col_shape& s, index_t images, index_t budget_elems, index_t cache_elems,
                                       index_t threads) {
  const axis_geometry& gr = s.rows;
  const axis_geometry& gc = s.cols;
  threads = std::max<index_t>(1, threads);
  const auto fits = [&](index_t n, index_t rows, index_t cols) {
    im2col_tiling scratch;
    return im2col_tile_workspace(s, n, rows, cols, scratch) <= budget_elems;
  };
  const index_t per_image = checked_mul(gr.out, gc.out, "im2col workspace");
  const index_t goal = std::max(im2col_min_positions, cache_elems / (s.depth() + s.filters_per_group));
  im2col_tiling t;
  if (images > 1 && per_image * 2 <= goal) {  // several whole images per tile
    const index_t most = std::min(goal / per_image, std::max<index_t>(1, images / threads));
    const index_t n = largest_fitting(most, [&](index_t m) { return fits(m, gr.out, gc.out); });
    t.images_per_tile = (images + (images + n - 1) / n - 1) / ((images + n - 1) / n);  // evened out
  }
  if (t.images_per_tile > 1) {
    t.rows_per_tile = gr.out;
    t.tiles = (images + t.images_per_tile - 1) / t.images_per_tile;
    im2col_tile_workspace(s, t.images_per_tile, gr.out, gc.out, t);
    return t;
  }
  // Enough tiles that every thread has one, unless that makes them narrower than the split minimum.
  const index_t tiles_per_image =
      std::max<index_t>(1, std::min((threads + images - 1) / images, per_image / im2col_min_split_positions));
  if (gr.out >= tiles_per_image && fits(1, 1, gc.out)) {  // runs of whole rows
    const index_t most = std::min(gr.out / tiles_per_image, std::max<index_t>(1, goal / gc.out));
    const index_t rows = largest_fitting(most, [&](index_t n) { return fits(1, n, gc.out); });
    t.tiles_per_image = (gr.out + rows - 1) / rows;
    t.rows_per_tile = (gr.out + t.tiles_per_image - 1) / t.tiles_per_image;  // the same count, evened out
    im2col_tile_workspace(s, 1, t.rows_per_tile, gc.out, t);
  } else {  // pieces of one row
    const index_t pieces_per_row = (tiles_per_image + gr.out - 1) / gr.out;
    const index_t most = std::min((gc.out + pieces_per_row - 1) / pieces_per_row, goal);
    const index_t cols = largest_fitting(most, [&](index_t n) { return fits(1, 1, n); });
    const index_t pieces = (gc.out + cols - 1) / cols;
    t.cols_per_tile = (gc.out + pieces - 1) / pieces;  // the same count, evened out
    t.tiles_per_image = checked_mul(gr.out, pieces, "im2col workspace");
    im2col_tile_workspace(s, 1, 1, t.cols_per_tile, t);
  }
  t.tiles = checked_mul(images, t.tiles_per_image, "im2col workspace");
  // Threads still without a tile share the filters of the tiles.
  t.filter_blocks = std::max<index_t>(
      1, std::min((threads + t.tiles - 1) / t.tiles, s.filters_per_group / im2col_min_filters_per_block));
  return t;
}

/// Tile i of the batch (0 <= i < t.tiles).
inline im2col_tile tile_at(const im2col_tiling& t, index_t images, const axis_geometry& rows, const axis_geometry& cols,
                           index_t i) noexcept {
  if (t.images_per_tile > 1) {
    const index_t n0 = i * t.images_per_tile;
    return {n0, std::min(images, n0 + t.images_per_tile), 0, rows.out, 0, cols.out};
  }
  const index_t n = i / t.tiles_per_image;
  i %= t.tiles_per_image;
  if (t.rows_per_tile > 0) {
    const index_t r0 = i * t.rows_per_tile;
    return {n, n + 1, r0, std::min(rows.out, r0 + t.rows_per_tile), 0, cols.out};
  }
  const index_t per_row = (cols.out + t.cols_per_tile - 1) / t.cols_per_tile;
  const index_t r = i / per_row, c0 = (i % per_row) * t.cols_per_tile;
  return {n, n + 1, r, r + 1, c0, std::min(cols.out, c0 + t.cols_per_tile)};
}

/// Where a tile's columns are read from: one image's group of channel planes (channel c's plane at
/// plane0 + c * plane_stride, rows row_stride apart, rows x cols each) and the border beyond them.
template <class T>
struct im2col_source {
  const T* plane0;
  index_t plane_stride, row_stride, rows, cols;
  border edge;
  T fill;
  view2d<const T> plane(index_t c) const { return view2d<const T>(plane0 + c * plane_stride, rows, cols, row_stride); }
};

/// The columns of channel c's taps for a tile whose window is mostly unread (a dilation far beyond
/// the kernel's taps): each element read from the input through the border rule, so that time
/// follows what the outputs read, not the window.
template <class T>
void gather_tile_columns(const im2col_shape& s, const im2col_tile& tile, const im2col_source<T>& from, index_t c,
                         T* columns, index_t ld) {
  const axis_geometry& gr = s.rows;
  const axis_geometry& gc = s.cols;
  const view2d<const T> in = from.plane(c);
  const index_t width = tile.col1 - tile.col0;
  for (index_t u = 0; u < gr.kernel; ++u)
    for (index_t v = 0; v < gc.kernel; ++v) {
      T* dst = columns + ((c * gr.kernel + u) * gc.kernel + v) * ld;
      for (index_t i = tile.row0; i < tile.row1; ++i, dst += width) {
        const index_t r = border_index(i * gr.stride + u * gr.dilation - gr.pad_before, from.rows, from.edge);
        for (index_t j = 0; j < width; ++j) {
          const index_t col =
              border_index((tile.col0 + j) * gc.stride + v * gc.dilation - gc.pad_before, from.cols, from.edge);
          dst[j] = r < 0 || col < 0 ? from.fill : in(r, col);
        }
      }
    }
}

/// Writes the columns of one image's part of a tile for channels [0, channels_per_group) of
/// `from`: column-matrix row (c, u, v) starts at columns + ((c * R + u) * S + v) * ld, and output
/// position (i, j) of the tile is its column (i - row0) * width + (j - col0). `window`
/// (tiling.window_elems) receives the extended input under the tile when the problem reads outside
/// the input.
template <class T>
void lower_tile(const im2col_shape& s, const im2col_tile& tile, const im2col_source<T>& from, T* window, T* columns,
                index_t ld) {
  const axis_geometry& gr = s.rows;
  const axis_geometry& gc = s.cols;
  const index_t width = tile.col1 - tile.col0;
  // Extended coordinates (e_r, e_c) of this tile start at (row0 * stride, col0 * stride).
  const index_t e_r0 = tile.row0 * gr.stride, e_c0 = tile.col0 * gc.stride;
  const index_t win_rows = (tile.row1 - tile.row0 - 1) * gr.stride + gr.span;
  const index_t win_cols = (width - 1) * gc.stride + gc.span;
  const double read = double(tile.row1 - tile.row0) * double(gr.kernel) * double(width) * double(gc.kernel);
  // Decided per tile, so with no large constant beside the ratio: a small workspace cuts a sparse
  // problem into thousands of tiles, each of which would extend its whole window.
  const bool gather = s.extends() && double(win_rows) * double(win_cols) > 4.0 * read + 64.0;
  for (index_t c = 0; c < s.channels_per_group; ++c) {
    if (gather) {
      gather_tile_columns(s, tile, from, c, columns, ld);
      continue;
    }
    const view2d<const T> in = from.plane(c);
    const T* src;
    index_t src_ld;
    if (s.extends()) {
      const view2d<T> win(window + c * win_rows * win_cols, win_rows, win_cols);
      extend<T>(in, win, gr.pad_before - e_r0, gc.pad_before - e_c0, from.edge, from.fill);
      src = win.data();
      src_ld = win_cols;
    } else {  // pad_before == 0: extended coordinates are input coordinates
      src = in.row(e_r0) + e_c0;
      src_ld = from.row_stride;
    }
    for (index_t u = 0; u < gr.kernel; ++u)
      for (index_t v = 0; v < gc.kernel; ++v) {
        T* dst = columns + ((c * gr.kernel + u) * gc.kernel + v) * ld;
        for (index_t i = 0; i < tile.row1 - tile.row0; ++i, dst += width) {
          const T* row = src + (i * gr.stride + u * gr.dilation) * src_ld + v * gc.dilation;
          if (gc.stride == 1) {
            std::memcpy(dst, row, sizeof(T) * static_cast<std::size_t>(width));
          } else {
            for (index_t j = 0; j < width; ++j) dst[j] = row[j * gc.stride];
          }
        }
      }
  }
}

/// Throws convkit::error unless `n` fits CBLAS's int arguments.
inline void check_blas_int(index_t n, const char* what) {
  if (n > INT_MAX)
    throw error(std::string("algorithm::im2col: ") + what + " (" + std::to_string(n) +
                ") exceeds the int range of CBLAS sizes");
}

/// The engine: prepared once for a shape, a batch size and a thread count; run() allocates nothing.
template <class T>
class im2col_engine {
 public:
  /// `weights` is K x depth row-major (K = groups * filters_per_group), copied; bias null or K
  /// values, copied. The workspace of all threads together stays within workspace_bytes (or the
  /// minimum that plan_im2col_tiles states).
  im2col_engine(const im2col_shape& s, index_t images, const T* weights, const T* bias, border edge, T fill,
                int threads, index_t workspace_bytes)
      : s_(s), images_(images), edge_(edge), fill_(fill) {
    const index_t k = checked_mul(s.groups, s.filters_per_group, "filters");
    weights_ = array2d<T>(k, s.depth());
    std::copy(weights, weights + weights_.size(), weights_.data());
    if (bias != nullptr) {
      bias_ = array2d<T>(1, k);
      std::copy(bias, bias + k, bias_.data());
    }
    tiling_ = plan_im2col_tiles(s, images, workspace_bytes / threads / index_t(sizeof(T)),
                                im2col_cache_bytes / index_t(sizeof(T)), threads);
    items_ = checked_mul(tiling_.tiles, tiling_.filter_blocks, "im2col work items");
    threads_ = static_cast<int>(std::min<index_t>(threads, items_));
    stride_ = (tiling_.workspace_elems() + 63) / 64 * 64;  // each thread's share starts on a cache line
    workspace_ = array2d<T>(threads_, stride_);
    const index_t positions = std::max(tiling_.images_per_tile * s.rows.out * s.cols.out, s.rows.out * s.cols.out);
    check_blas_int(s.depth(), "C/groups * R * S");
    check_blas_int(positions, "output positions of a tile");
    check_blas_int(checked_mul(s.rows.in, s.cols.in, "input plane"), "input H * W");
    check_blas_int(s.filters_per_group, "filters per group");
  }

  /// out planes (n, k) = the correlation of in planes (n, c) (in_rows x in_cols each) for all images.
  void run(planes<const T> in, index_t in_rows, index_t in_cols, planes<T> out) {
    parallel_slices(items_, threads_, [&](index_t slice, index_t i0, index_t i1) {
      T* ws = workspace_.data() + slice * stride_;  // this slice's share of the workspace
      for (index_t i = i0; i < i1; ++i) {
        const index_t b = i % tiling_.filter_blocks, kg = s_.filters_per_group;
        run_tile(in, in_rows, in_cols, out, tile_at(tiling_, images_, s_.rows, s_.cols, i / tiling_.filter_blocks),
                 kg * b / tiling_.filter_blocks, kg * (b + 1) / tiling_.filter_blocks, ws);
      }
    });
  }

 private:
  // Tile `tile` for the filters [k0, k1) of every group.
  void run_tile(planes<const T> in, index_t in_rows, index_t in_cols, planes<T> out, const im2col_tile& tile,
                index_t k0, index_t k1, T* ws) const {
    T* window = ws;
    T* columns = window + tiling_.window_elems;
    T* buffer = columns + tiling_.column_elems;
    const index_t cg = s_.channels_per_group, kg = k1 - k0, depth = s_.depth();
    const index_t width = tile.col1 - tile.col0, per_image = tile.positions_per_image(), positions = tile.positions();
    const bool one_image = tile.image1 - tile.image0 == 1;
    for (index_t g = 0; g < s_.groups; ++g) {
      const T* b = columns;
      index_t ldb = positions;
      if (tiling_.lowers) {
        for (index_t n = tile.image0; n < tile.image1; ++n)
          lower_tile<T>(s_, tile, {in.plane(n, g * cg), in.plane_stride, in.row_stride, in_rows, in_cols, edge_, fill_},
                        window, columns + (n - tile.image0) * per_image, positions);
      } else {  // 1x1, stride 1, unpadded: channel c's row of the column matrix is input plane c
        b = in.plane(tile.image0, g * cg) + tile.row0 * in.row_stride + tile.col0;
        ldb = in.plane_stride;
      }
      const index_t first = g * s_.filters_per_group + k0;  // the first filter of this work item
      const T* a = weights_.data() + first * depth;
      const T* bias = bias_.size() > 0 ? bias_.data() + first : nullptr;
      if (one_image && (out.row_stride == s_.cols.out || tile.row1 - tile.row0 == 1)) {
        // The tile's outputs are contiguous in each output plane: the GEMM writes them in place.
        T* c = out.plane(tile.image0, first) + tile.row0 * out.row_stride + tile.col0;
        gemm(kg, positions, depth, a, depth, b, ldb, c, kg == 1 ? positions : out.plane_stride);
        if (bias != nullptr)
          for (index_t k = 0; k < kg; ++k)
            for (T *p = c + k * out.plane_stride, *e = p + positions; p < e; ++p) *p += bias[k];
      } else if (one_image) {  // a single image whose output rows are not contiguous: one GEMM per row
        for (index_t i = tile.row0; i < tile.row1; ++i) {
          T* c = out.plane(tile.image0, first) + i * out.row_stride + tile.col0;
          gemm(kg, width, depth, a, depth, b + (i - tile.row0) * width, ldb, c, kg == 1 ? width : out.plane_stride);
          if (bias != nullptr)
            for (index_t k = 0; k < kg; ++k)
              for (T *p = c + k * out.plane_stride, *e = p + width; p < e; ++p) *p += bias[k];
        }
      } else {  // whole images (contiguous planes): through the buffer, then into each image's planes
        gemm(kg, positions, depth, a, depth, b, ldb, buffer, positions);
        for (index_t n = tile.image0; n < tile.image1; ++n)
          for (index_t k = 0; k < kg; ++k) {
            const T* from = buffer + k * positions + (n - tile.image0) * per_image;
            T* to = out.plane(n, first + k);
            const T add = bias != nullptr ? bias[k] : T(0);
            for (index_t p = 0; p < per_image; ++p) to[p] = from[p] + add;
          }
      }
    }
  }

  im2col_shape s_;
  index_t images_;
  border edge_;
  T fill_;
  array2d<T> weights_, bias_;
  im2col_tiling tiling_;
  index_t items_ = 0;  // tiles x filter blocks
  int threads_ = 1;
  index_t stride_ = 0;
  array2d<T> workspace_;  // one row per thread: extended window, column matrix, GEMM output buffer
};

}  // namespace detail
CONVKIT_NAMESPACE_END
