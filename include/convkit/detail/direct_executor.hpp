// The direct backend's executor: borders applied band by band, column strides split into phase
// planes, the register-blocked micro-kernel over blocks of output rows (backends/direct.hpp has the
// overview), the gather path of sparse problems, the separable path of low-rank kernels and the
// layer path of batches (direct_layer.hpp).
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "../padding.hpp"
#include "backend.hpp"
#include "direct_cost.hpp"
#include "direct_impl.hpp"
#include "direct_layer.hpp"
#include "direct_separable.hpp"
#include "problem.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// How the micro-kernel walks one plane: the strided, dilated valid correlation of an extended plane
/// (rows.extent x cols.extent, as axis_geometry defines it) with a kernel of rows.kernel x cols.kernel
/// taps given contiguously, in correlation order.
template <class T>
class direct_plane {
 public:
  /// Where the micro-kernel reads an extended plane: its rows are `ld` elements apart.
  struct source {
    const T* base;
    index_t ld;
  };

  direct_plane() = default;
  /// banded: the input is prepared one block's band of rows at a time (band(), run_band()) rather
  /// than as a whole plane (prepare() of the whole plane, run()).
  /// stream_max_rows: the tallest kernel the micro-kernel streams (direct_stream_max_rows).
  direct_plane(const axis_geometry& rows, const axis_geometry& cols, int stream_max_rows, bool banded = false)
      : rows_(rows), cols_(cols), stream_max_rows_(stream_max_rows), phase_rows_(banded ? band_rows() : rows.extent) {
    const index_t sc = cols.stride;
    if (sc > 1) plane_cols_ = (cols.extent + sc - 1) / sc;
    checked_mul(checked_mul(phase_count(), phase_rows_, "column phase planes"), plane_cols_, "column phase planes");
    col_off_.resize(static_cast<std::size_t>(cols.kernel));
    for (index_t v = 0; v < cols.kernel; ++v) {
      const index_t e = v * cols.dilation;  // column offset of tap v in the extended input
      col_off_[static_cast<std::size_t>(v)] = sc > 1 ? (e % sc) * phase_rows_ * plane_cols_ + e / sc : e;
    }
    plan_row_blocks();
  }

  /// Elements of the column-phase copy that prepare() needs (0 for stride 1).
  index_t phase_size() const noexcept { return cols_.stride > 1 ? phase_count() * phase_rows_ * plane_cols_ : 0; }
  index_t blocks() const noexcept { return static_cast<index_t>(blocks_.size()); }

  /// The most input rows one block reads: its output rows share all but kernel - 1 of them.
  index_t band_rows() const noexcept { return block_rows() + rows_.kernel - 1; }

  /// Evenly spaced rows: first, first + step, ... (count of them).
  struct row_span {
    index_t first, step, count;
  };
  /// The extended-input rows that block b reads.
  row_span band(index_t b) const noexcept {
    const row_block& rb = blocks_[static_cast<std::size_t>(b)];
    return {rb.in_row, rb.in_step, rb.rows + rows_.kernel - 1};
  }
  /// The output rows that block b writes.
  row_span outputs(index_t b) const noexcept {
    const row_block& rb = blocks_[static_cast<std::size_t>(b)];
    return {rb.out_row, rb.out_step, rb.rows};
  }

  /// The source for extended plane `ext` (at least rows.extent x cols.extent); for a column stride
  /// s > 1 it first splits ext into s phase planes (columns p, p+s, ...) at `phases`, so that every
  /// kernel tap reads consecutive elements whatever the stride and dilation.
  source prepare(view2d<const T> ext, T* phases) const {
    const index_t s = cols_.stride;
    if (s == 1) return {ext.data(), ext.row_stride()};
    // phases row p * phase_rows + r, column m  =  ext(r, m * stride + p).
    const index_t rows = std::min(ext.rows(), phase_rows_);
    for (index_t p = 0; p < phase_count(); ++p)
      for (index_t r = 0; r < rows; ++r) {
        const T* from = ext.row(r);
        T* to = phases + (p * phase_rows_ + r) * plane_cols_;
        for (index_t m = 0; m * s + p < cols_.extent; ++m) to[m] = from[m * s + p];
      }
    return {phases, plane_cols_};
  }

  /// Output row blocks [b0, b1) of out = correlation of src with k (or out += it, with accumulate).
  void run(direct_kernel_fn<T> kernel, source src, const T* k, view2d<T> out, bool accumulate, index_t b0,
           index_t b1) const {
    for (index_t b = b0; b < b1; ++b) {
      const row_block& rb = blocks_[static_cast<std::size_t>(b)];
      const direct_job<T> job{src.base + rb.in_row * src.ld,
                              rb.in_step * src.ld,
                              col_off_.data(),
                              k,
                              int(rows_.kernel),
                              int(cols_.kernel),
                              out.row(rb.out_row),
                              rb.out_step * out.row_stride(),
                              cols_.out,
                              rb.rows,
                              accumulate};
      kernel(job);
    }
  }

  /// Block b alone, from `src` holding the block's band(b) rows one after the other.
  void run_band(direct_kernel_fn<T> kernel, source src, const T* k, view2d<T> out, bool accumulate, index_t b) const {
    const row_block& rb = blocks_[static_cast<std::size_t>(b)];
    kernel(direct_job<T>{src.base, src.ld, col_off_.data(), k, int(rows_.kernel), int(cols_.kernel),
                         out.row(rb.out_row), rb.out_step * out.row_stride(), cols_.out, rb.rows, accumulate});
  }

 private:
  // Output rows per block: where the micro-kernel streams the kernel's rows, whole groups of them,
  // about direct_stream_rows; otherwise direct_block_rows, or the kernel's rows where fewer.
  index_t block_rows() const noexcept {
    const index_t kh = rows_.kernel;
    if (kh >= 2 && kh <= stream_max_rows_) return kh * std::max<index_t>(2, (direct_stream_rows + kh - 1) / kh);
    return std::min<index_t>(direct_block_rows, kh);
  }

  // Column phases that hold a column: a stride beyond the extent leaves the others empty.
  index_t phase_count() const noexcept { return std::min<index_t>(cols_.stride, cols_.extent); }

  struct row_block {
    index_t in_row, in_step;    // in rows of the extended input
    index_t out_row, out_step;  // in rows of the output
    int rows;
  };

  // Output row o with kernel row u reads extended row o * stride + u * dilation. When the dilation is
  // a multiple m of the stride, the output rows o = q, q + m, q + 2m, ... read the evenly spaced
  // rows stride * q + j * dilation, so blocks of them share input rows; otherwise rows go one by one.
  void plan_row_blocks() {
    const index_t s = rows_.stride, d = rows_.dilation;
    if (d % s == 0) {
      const index_t m = d / s;
      for (index_t q = 0; q < std::min(m, rows_.out); ++q) {
        const index_t count = (rows_.out - q + m - 1) / m;
        for (index_t t = 0; t < count; t += block_rows())
          blocks_.push_back({s * q + t * d, d, q + t * m, m, int(std::min<index_t>(block_rows(), count - t))});
      }
    } else {
      for (index_t o = 0; o < rows_.out; ++o) blocks_.push_back({o * s, d, o, 1, 1});
    }
  }

  axis_geometry rows_{}, cols_{};
  int stream_max_rows_ = 0;
  index_t phase_rows_ = 0;  // rows of each column-phase plane: the whole plane's, or one band's
  index_t plane_cols_ = 0;
  std::vector<index_t> col_off_;
  std::vector<row_block> blocks_;
};

/// The direct backend on a sparse problem (problem.hpp: most of the extended input is never read):
/// each output element sums its taps read straight from the input through per-axis tables of source
/// indices (border_index, -1 for the fill value), so time and memory follow the outputs and their
/// taps, whatever the strides, dilations and paddings.
template <class T>
class direct_gather {
 public:
  explicit direct_gather(const conv_problem& p) : p_(p), fill_(p.fill<T>()) {
    rows_ = table(p.rows);
    cols_ = table(p.cols);
  }

  /// out planes (n, k) for every image and filter; weights K x C/groups x R x S, bias null or K.
  void run(planes<const T> in, planes<T> out, const T* weights, const T* bias) const {
    const conv_problem& g = p_;
    const index_t cg = g.c_per_group(), kg = g.k_per_group(), R = g.rows.kernel, S = g.cols.kernel;
    const index_t lines = g.n * g.k * g.rows.out;
    parallel_for(lines, useful_threads(g.macs(), g.threads, 1e6), [&](index_t b, index_t e) {
      for (index_t line = b; line < e; ++line) {
        const index_t i = line % g.rows.out, nk = line / g.rows.out, n = nk / g.k, k = nk % g.k;
        T* o = out.plane(n, k) + i * out.row_stride;
        for (index_t j = 0; j < g.cols.out; ++j) {
          T sum = bias != nullptr ? bias[k] : T(0);
          for (index_t ci = 0; ci < cg; ++ci) {
            const T* plane = in.plane(n, (k / kg) * cg + ci);
            const T* w = weights + (k * cg + ci) * R * S;
            for (index_t u = 0; u < R; ++u) {
              const index_t r = rows_[std::size_t(i * R + u)];
              for (index_t v = 0; v < S; ++v) {
                const index_t c = cols_[std::size_t(j * S + v)];
                sum += w[u * S + v] * (r < 0 || c < 0 ? fill_ : plane[r * in.row_stride + c]);
              }
            }
          }
          o[j] = sum;
        }
      }
    });
  }

 private:
  // Source index of tap j of output o along an axis: input[-pad_before + o * stride + j * dilation].
  std::vector<index_t> table(const axis_geometry& a) const {
    std::vector<index_t> t(std::size_t(checked_mul(a.out, a.kernel, "direct gather table")));
    for (index_t o = 0; o < a.out; ++o)
      for (index_t j = 0; j < a.kernel; ++j)
        t[std::size_t(o * a.kernel + j)] =
            border_index(o * index_t(a.stride) + j * index_t(a.dilation) - a.pad_before, a.in, p_.edge);
    return t;
  }

  conv_problem p_;
  T fill_;
  std::vector<index_t> rows_, cols_;
};

/// The direct backend's executor. A single plane (one image, one filter) is correlated band by band:
/// each block's band of rows is extended (and split into column phases) just before the block runs,
/// into a workspace per thread, so the copy stays in cache, is spread over the threads, and never
/// holds the whole extended image; when the output reads only the image and the column stride is 1
/// (valid mode) the micro-kernel reads the input in place. A batch runs the layer path where
/// direct_layer_applies; otherwise it extends every input plane once per call, then each (image,
/// filter) output plane sums the correlations over its group's channels.
template <class T>
class direct_executor final : public executor<T> {
 public:
  direct_executor(const conv_problem& p, const T* weights, const T* bias)
      : p_(p),
        kernel_(direct_kernel_for<T>(p.tune.instruction_set)),
        banded_(p.single_plane() && (p.reads_outside() || p.cols.stride > 1)),
        threads_(direct_threads(p.macs(), p.threads)) {
    weights_ = array2d<T>(checked_mul(p.k, p.c_per_group(), "weights K * C/groups"),
                          checked_mul(p.rows.kernel, p.cols.kernel, "weights R * S"));
    std::copy(weights, weights + weights_.size(), weights_.data());
    if (bias != nullptr) {
      bias_ = array2d<T>(1, p.k);
      std::copy(bias, bias + p.k, bias_.data());
    }
    if (p.sparse()) {
      gather_ = std::make_unique<direct_gather<T>>(p);
      return;
    }
    if (runs_separably(p, costs_of(p).direct)) {
      separable_ = std::make_unique<direct_separable<T>>(p, weights_.data());
      if (separable_->complete()) return;
      separable_.reset();
    }
    if (direct_layer_applies(p)) {
      layer_ = std::make_unique<direct_layer<T>>(p, weights_.data(), threads_);
      return;
    }
    plane_ = direct_plane<T>(p.rows, p.cols, direct_stream_max_rows<T>(p.tune.instruction_set), banded_);
    if (p.single_plane()) {
      if (banded_)
        work_ = array2d<T>(threads_, checked_add(checked_mul(plane_.band_rows(), p.cols.extent, "direct band"),
                                                 plane_.phase_size(), "direct band"));
      return;
    }
    const index_t planes = checked_mul(p.n, p.c, "input N * C");
    if (p.reads_outside()) ext_ = array4d<T>(p.n, p.c, p.rows.extent, p.cols.extent);
    phases_ = array2d<T>(planes, plane_.phase_size());
    sources_.resize(static_cast<std::size_t>(planes));
  }

  void execute(planes<const T> in, planes<T> out) override {
    if (gather_)
      gather_->run(in, out, weights_.data(), bias_.size() > 0 ? bias_.data() : nullptr);
    else if (separable_)
      separable_->run(in, out, bias_.size() > 0 ? bias_.data() : nullptr);
    else if (layer_)
      layer_->run(in, out, bias_.size() > 0 ? bias_.data() : nullptr);
    else if (p_.single_plane())
      run_plane(in.view(0, 0, p_.rows.in, p_.cols.in), out.view(0, 0, p_.rows.out, p_.cols.out));
    else
      run_batch(in, out);
  }

 private:
  bool accumulates() const noexcept { return bias_.size() > 0; }

  // Fills block b's output rows with the bias, which the micro-kernel then adds to.
  void fill_bias(view2d<T> out, index_t b, T value) const {
    const auto rows = plane_.outputs(b);
    for (index_t i = 0; i < rows.count; ++i) {
      T* row = out.row(rows.first + i * rows.step);
      std::fill(row, row + out.cols(), value);
    }
  }

  void run_plane(view2d<const T> in, view2d<T> out) {
    const T* k = weights_.data();
    const bool add = accumulates();
    if (!banded_) {
      const typename direct_plane<T>::source from{in.data(), in.row_stride()};
      parallel_chunks(plane_.blocks(), threads_, [&](index_t, index_t b0, index_t b1) {
        for (index_t b = b0; b < b1; ++b) {
          if (add) fill_bias(out, b, bias_.data()[0]);
          plane_.run(kernel_, from, k, out, add, b, b + 1);
        }
      });
      return;
    }
    const axis_geometry& gr = p_.rows;
    const axis_geometry& gc = p_.cols;
    const T fill = p_.fill<T>();
    parallel_chunks(plane_.blocks(), threads_, [&](index_t slice, index_t b0, index_t b1) {
      T* const ext = work_.data() + slice * work_.cols();
      T* const phases = ext + plane_.band_rows() * gc.extent;
      for (index_t b = b0; b < b1; ++b) {
        const auto rows = plane_.band(b);
        const view2d<T> band(ext, rows.count, gc.extent);
        if (rows.step == 1) {
          extend<T>(in, band, gr.pad_before - rows.first, gc.pad_before, p_.edge, fill);
        } else {
          for (index_t i = 0; i < rows.count; ++i)
            extend<T>(in, band.block(i, 0, 1, gc.extent), gr.pad_before - (rows.first + i * rows.step), gc.pad_before,
                      p_.edge, fill);
        }
        if (add) fill_bias(out, b, bias_.data()[0]);
        plane_.run_band(kernel_, plane_.prepare(band, phases), k, out, add, b);
      }
    });
  }

  void run_batch(planes<const T> in, planes<T> out) {
    const conv_problem& g = p_;
    const T fill = p_.fill<T>();
    parallel_for(g.n * g.c, threads_, [&](index_t p0, index_t p1) {
      for (index_t p = p0; p < p1; ++p) {
        const index_t n = p / g.c, c = p % g.c;
        view2d<const T> src = in.view(n, c, g.rows.in, g.cols.in);
        if (ext_.size() > 0) {
          const view2d<T> ext = ext_.view().plane(n, c);
          extend<T>(src, ext, g.rows.pad_before, g.cols.pad_before, p_.edge, fill);
          src = ext;
        }
        sources_[static_cast<std::size_t>(p)] = plane_.prepare(src, phases_.data() + p * phases_.cols());
      }
    });
    const index_t cg = g.c_per_group(), kg = g.k_per_group(), taps = weights_.cols();
    parallel_for(g.n * g.k, threads_, [&](index_t p0, index_t p1) {
      for (index_t p = p0; p < p1; ++p) {
        const index_t n = p / g.k, k = p % g.k, first_channel = (k / kg) * cg;
        const view2d<T> o = out.view(n, k, g.rows.out, g.cols.out);
        if (accumulates())
          for (index_t r = 0; r < o.rows(); ++r) std::fill(o.row(r), o.row(r) + o.cols(), bias_.data()[k]);
        for (index_t ci = 0; ci < cg; ++ci)
          plane_.run(kernel_, sources_[static_cast<std::size_t>(n * g.c + first_channel + ci)],
                     weights_.data() + (k * cg + ci) * taps, o, ci > 0 || accumulates(), 0, plane_.blocks());
      }
    });
  }

  conv_problem p_;
  direct_kernel_fn<T> kernel_;
  bool banded_;  // a single plane extended band by band
  direct_plane<T> plane_;
  std::unique_ptr<direct_gather<T>> gather_;        // sparse problems
  std::unique_ptr<direct_separable<T>> separable_;  // low-rank kernels, where cheaper
  std::unique_ptr<direct_layer<T>> layer_;          // batches whose filters share channels
  int threads_ = 1;
  array2d<T> weights_, bias_;
  array2d<T> work_;                                        // single plane: one band (and its column phases) per thread
  array4d<T> ext_;                                         // batch: every extended input plane
  array2d<T> phases_;                                      // batch: the column phases of every plane
  std::vector<typename direct_plane<T>::source> sources_;  // batch: one per input plane, filled by execute()
};

template <class T>
std::unique_ptr<executor<T>> make_direct(const conv_problem& p, const T* weights, const T* bias) {
  return std::make_unique<direct_executor<T>>(p, weights, bias);
}

}  // namespace detail
CONVKIT_NAMESPACE_END
