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
// A tile is either a run of whole output rows or a piece of one output row, chosen so that the
// column matrix and the extended window it is lowered from fit in a per-thread share of the
// workspace bound. 1x1 kernels with stride 1 and no padding need no lowering: columns are the input
// planes themselves.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "../padding.hpp"
#include "../options.hpp"
#include "checked.hpp"
#include "threads.hpp"

namespace convkit::detail {

/// Row-major C (m x n) = A (m x k) * B (k x n) through CBLAS; every size fits an int (checked when planning).
inline void gemm(index m, index n, index k, const float* a, index lda, const float* b, index ldb, float* c, index ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), 1.0f, a, int(lda), b, int(ldb), 0.0f, c,
              int(ldc));
}
inline void gemm(index m, index n, index k, const double* a, index lda, const double* b, index ldb, double* c, index ldc) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), 1.0, a, int(lda), b, int(ldb), 0.0, c,
              int(ldc));
}

/// convkit's threads run the GEMMs, one each, so the BLAS must not start threads of its own: with
/// OpenBLAS this sets its (process-wide) thread count to 1 when it is not already. Other CBLAS
/// libraries keep their own setting (the README says how to make them single-threaded).
inline void single_threaded_blas() noexcept {
#if defined(OPENBLAS_VERSION)
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
#endif
}

/// A batch of planes in memory: plane (n, c) starts at data + n * image_stride + c * plane_stride,
/// and its rows are row_stride elements apart. NCHW arrays and single view2d images are both this.
template <class T>
struct strided_planes {
  T* data;
  index image_stride, plane_stride, row_stride;
  T* plane(index n, index c) const noexcept { return data + n * image_stride + c * plane_stride; }
};

/// What the engine computes (see the top of this file).
struct im2col_shape {
  axis_geometry rows, cols;
  index channels_per_group, filters_per_group, groups;
  bool contiguous_input;  ///< input rows are contiguous (row_stride == cols), as in NCHW arrays
  index depth() const noexcept { return channels_per_group * rows.kernel * cols.kernel; }
  /// 1x1 kernel, stride 1, no padding, contiguous rows: the input planes are the column matrix.
  bool needs_lowering() const noexcept {
    return !(contiguous_input && rows.kernel == 1 && cols.kernel == 1 && rows.stride == 1 && cols.stride == 1 &&
             !rows.reads_outside() && !cols.reads_outside());
  }
  bool extends() const noexcept { return rows.reads_outside() || cols.reads_outside(); }
};

/// How each output plane is cut into tiles (the same cut for every image and group).
struct im2col_tiling {
  index rows_per_tile = 0;   ///< > 0: each tile is this many whole output rows (the last may have fewer)
  index cols_per_tile = 0;   ///< rows_per_tile == 0: each tile is this many columns of one output row
  index tiles = 0;           ///< tiles per output plane
  index column_elems = 0;    ///< elements of the largest tile's column matrix
  index window_elems = 0;    ///< elements of the largest tile's extended input window (all channels of a group)
  index workspace_elems() const noexcept { return column_elems + window_elems; }
};

/// One tile: output rows [row0, row1) x columns [col0, col1).
struct im2col_tile {
  index row0, row1, col0, col1;
  index positions() const noexcept { return (row1 - row0) * (col1 - col0); }
};

/// Cuts the output into tiles whose column matrix plus extended window fit in `limit_elems`
/// elements, with at least `min_tiles` tiles when the output has that many positions (so that
/// threads have work). Tiles are whole output rows when one row fits, else pieces of one row. A tile
/// is at least one output position, so the workspace is never below
/// depth + channels_per_group * span_rows * span_cols elements, whatever the limit.
inline im2col_tiling plan_im2col_tiles(const im2col_shape& s, index limit_elems, index min_tiles) {
  const axis_geometry& gr = s.rows;
  const axis_geometry& gc = s.cols;
  const bool lowered = s.needs_lowering(), extended = s.extends();
  const index depth = s.depth(), cg = s.channels_per_group;
  const char* what = "im2col workspace";
  // Workspace of a tile of `rows` output rows x `cols` output columns.
  const auto columns = [&](index rows, index cols) { return lowered ? checked_mul(depth, checked_mul(rows, cols, what), what) : 0; };
  const auto window = [&](index rows, index cols) {
    if (!extended) return index(0);
    return checked_mul(cg, checked_mul((rows - 1) * gr.stride + gr.span, (cols - 1) * gc.stride + gc.span, what), what);
  };
  const auto fits = [&](index rows, index cols) { return columns(rows, cols) + window(rows, cols) <= limit_elems; };
  // The largest n in [1, most] with fits(n) (1 if none fits): fits is monotone in n.
  const auto largest = [](index most, auto&& fits_n) {
    index lo = 1, hi = std::max<index>(1, most);
    while (lo < hi) {
      const index mid = lo + (hi - lo + 1) / 2;
      if (fits_n(mid)) lo = mid; else hi = mid - 1;
    }
    return lo;
  };
  min_tiles = std::max<index>(1, min_tiles);
  im2col_tiling t;
  if (gr.out >= min_tiles && fits(1, gc.out)) {
    const index rows = largest(gr.out / min_tiles, [&](index n) { return fits(n, gc.out); });
    t.rows_per_tile = rows;
    t.tiles = (gr.out + rows - 1) / rows;
    t.column_elems = columns(rows, gc.out);
    t.window_elems = window(rows, gc.out);
  } else {
    const index pieces_per_row = (min_tiles + gr.out - 1) / gr.out;
    const index cols = largest((gc.out + pieces_per_row - 1) / pieces_per_row, [&](index n) { return fits(1, n); });
    t.cols_per_tile = cols;
    t.tiles = checked_mul(gr.out, (gc.out + cols - 1) / cols, what);
    t.column_elems = columns(1, cols);
    t.window_elems = window(1, cols);
  }
  return t;
}

inline im2col_tile tile_at(const im2col_tiling& t, const axis_geometry& rows, const axis_geometry& cols, index i) noexcept {
  if (t.rows_per_tile > 0) {
    const index r0 = i * t.rows_per_tile;
    return {r0, std::min(rows.out, r0 + t.rows_per_tile), 0, cols.out};
  }
  const index per_row = (cols.out + t.cols_per_tile - 1) / t.cols_per_tile;
  const index r = i / per_row, c0 = (i % per_row) * t.cols_per_tile;
  return {r, r + 1, c0, std::min(cols.out, c0 + t.cols_per_tile)};
}

/// Writes the column matrix of one tile for the channels [0, channels_per_group) of `planes` (the
/// group's first input plane at planes(0), the next at + plane_stride): columns row (c, u, v),
/// column (i - row0) * width + (j - col0). `window` (tiling.window_elems) receives the extended
/// input under the tile when the problem reads outside the input.
template <class T>
void lower_tile(const im2col_shape& s, const im2col_tile& tile, const T* plane0, index plane_stride, index row_stride,
                index in_rows, index in_cols, border edge, T fill, T* window, T* columns) {
  const axis_geometry& gr = s.rows;
  const axis_geometry& gc = s.cols;
  const index width = tile.col1 - tile.col0, positions = tile.positions();
  // Extended coordinates (e_r, e_c) of this tile start at (row0 * stride, col0 * stride).
  const index e_r0 = tile.row0 * gr.stride, e_c0 = tile.col0 * gc.stride;
  const index win_rows = (tile.row1 - tile.row0 - 1) * gr.stride + gr.span;
  const index win_cols = (width - 1) * gc.stride + gc.span;
  for (index c = 0; c < s.channels_per_group; ++c) {
    const view2d<const T> in(plane0 + c * plane_stride, in_rows, in_cols, row_stride);
    const T* src;
    index ld;
    if (s.extends()) {
      const view2d<T> win(window + c * win_rows * win_cols, win_rows, win_cols);
      extend<T>(in, win, gr.pad_before - e_r0, gc.pad_before - e_c0, edge, fill);
      src = win.data();
      ld = win_cols;
    } else {  // pad_before == 0: extended coordinates are input coordinates
      src = in.row(e_r0) + e_c0;
      ld = row_stride;
    }
    for (index u = 0; u < gr.kernel; ++u)
      for (index v = 0; v < gc.kernel; ++v) {
        T* dst = columns + ((c * gr.kernel + u) * gc.kernel + v) * positions;
        for (index i = 0; i < tile.row1 - tile.row0; ++i, dst += width) {
          const T* from = src + (i * gr.stride + u * gr.dilation) * ld + v * gc.dilation;
          if (gc.stride == 1) {
            std::memcpy(dst, from, sizeof(T) * static_cast<std::size_t>(width));
          } else {
            for (index j = 0; j < width; ++j) dst[j] = from[j * gc.stride];
          }
        }
      }
  }
}

/// Throws convkit::error unless `n` fits CBLAS's int arguments.
inline void check_blas_int(index n, const char* what) {
  if (n > INT_MAX) throw error(std::string("algorithm::im2col: ") + what + " (" + std::to_string(n) +
                               ") exceeds the int range of CBLAS sizes");
}

/// The engine: prepared once for a shape, a batch size and a thread count; run() allocates nothing.
template <class T>
class im2col_engine {
 public:
  /// `weights` is K x depth row-major (K = groups * filters_per_group), copied; bias null or K values, copied.
  im2col_engine(const im2col_shape& s, index images, const T* weights, const T* bias, border edge, T fill, int threads,
                index workspace_bytes, index preferred_bytes)
      : s_(s), images_(images), edge_(edge), fill_(fill) {
    const index k = checked_mul(s.groups, s.filters_per_group, "filters");
    weights_ = array2d<T>(k, s.depth());
    std::copy(weights, weights + weights_.size(), weights_.data());
    if (bias != nullptr) {
      bias_ = array2d<T>(1, k);
      std::copy(bias, bias + k, bias_.data());
    }
    // Each thread's share of the bound, and at most the preferred tile size (see im2col_tile_bytes).
    const index limit = std::min(workspace_bytes / threads, preferred_bytes) / index(sizeof(T));
    tiling_ = plan_im2col_tiles(s, limit, (threads + images - 1) / images);
    const index items = checked_mul(images, tiling_.tiles, "im2col tiles");
    threads_ = static_cast<int>(std::min<index>(threads, items));
    // Round each thread's share up to whole cache lines.
    stride_ = (tiling_.workspace_elems() + 63) / 64 * 64;
    workspace_ = array2d<T>(threads_, stride_);
    check_blas_int(s.depth(), "C/groups * R * S");
    check_blas_int(checked_mul(s.rows.out, s.cols.out, "output plane"), "output OH * OW");
    check_blas_int(checked_mul(s.rows.in, s.cols.in, "input plane"), "input H * W");
    check_blas_int(s.filters_per_group, "filters per group");
  }

  const im2col_tiling& tiling() const noexcept { return tiling_; }

  /// out planes (n, k) = the correlation of in planes (n, c) (in_rows x in_cols each) for all images.
  void run(strided_planes<const T> in, index in_rows, index in_cols, strided_planes<T> out) {
    single_threaded_blas();
    const index items = images_ * tiling_.tiles;
    parallel_for(threads_, threads_, [&](index t0, index t1) {
      for (index t = t0; t < t1; ++t) {
        T* window = workspace_.data() + t * stride_;
        T* columns = window + tiling_.window_elems;
        for (index item = items * t / threads_; item < items * (t + 1) / threads_; ++item)
          run_tile(in, in_rows, in_cols, out, item / tiling_.tiles, tile_at(tiling_, s_.rows, s_.cols, item % tiling_.tiles),
                   window, columns);
      }
    });
  }

 private:
  void run_tile(strided_planes<const T> in, index in_rows, index in_cols, strided_planes<T> out, index n,
                const im2col_tile& tile, T* window, T* columns) const {
    const index cg = s_.channels_per_group, kg = s_.filters_per_group, depth = s_.depth();
    const index width = tile.col1 - tile.col0, positions = tile.positions();
    for (index g = 0; g < s_.groups; ++g) {
      const T* plane0 = in.plane(n, g * cg);
      const T* b;
      index ldb;
      if (s_.needs_lowering()) {
        lower_tile<T>(s_, tile, plane0, in.plane_stride, in.row_stride, in_rows, in_cols, edge_, fill_, window, columns);
        b = columns;
        ldb = positions;
      } else {  // 1x1, stride 1, unpadded: channel c's row of columns is input plane c (rows contiguous)
        b = plane0 + tile.row0 * in.row_stride + tile.col0;
        ldb = in.plane_stride;
      }
      const T* a = weights_.data() + g * kg * depth;
      T* c = out.plane(n, g * kg);
      if (out.row_stride == s_.cols.out || tile.row1 - tile.row0 == 1) {
        gemm(kg, positions, depth, a, depth, b, ldb, c + tile.row0 * out.row_stride + tile.col0, kg == 1 ? positions : out.plane_stride);
      } else {  // output rows are not contiguous (a single-image view): one GEMM per output row
        for (index i = tile.row0; i < tile.row1; ++i)
          gemm(kg, width, depth, a, depth, b + (i - tile.row0) * width, ldb, c + i * out.row_stride + tile.col0,
               kg == 1 ? width : out.plane_stride);
      }
      if (bias_.size() > 0)
        for (index k = 0; k < kg; ++k) {
          const T add = bias_.data()[g * kg + k];
          for (index i = tile.row0; i < tile.row1; ++i) {
            T* row = c + k * out.plane_stride + i * out.row_stride;
            for (index j = tile.col0; j < tile.col1; ++j) row[j] += add;
          }
        }
    }
  }

  im2col_shape s_;
  index images_;
  border edge_;
  T fill_;
  array2d<T> weights_, bias_;
  im2col_tiling tiling_;
  int threads_ = 1;
  index stride_ = 0;
  array2d<T> workspace_;  // one row per thread: extended window, then column matrix
};

}  // namespace convkit::detail
