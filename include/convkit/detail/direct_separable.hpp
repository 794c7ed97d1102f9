// The direct backend's path for low-rank kernels (separable.hpp): two 1-D passes per term, from the
// input rows straight into the output (separable_kernel.inl); backends/direct.hpp decides when it
// runs (runs_separably) and costs it.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "../padding.hpp"
#include "checked.hpp"
#include "direct_impl.hpp"
#include "problem.hpp"
#include "separable.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// Multiply-adds of the separable path: per plane, term and output row, a column pass over the
/// extended columns (R taps each) and a row pass over the outputs (S taps each).
inline double direct_separable_macs(const conv_problem& p) {
  return double(p.n) * double(p.k) * double(p.kernel_rank) * double(p.rows.out) *
         (double(p.cols.extent) * double(p.rows.kernel) + double(p.cols.out) * double(p.cols.kernel));
}

/// An extra thread pays for itself from ~2e6 of the separable path's multiply-adds each (~60 us at
/// its ~35 GMAC/s per core; a 1000 x 1000 Sobel, 6e6, measured 1.1-1.3x faster on two threads than
/// on one, Zen 4).
inline int direct_separable_threads(const conv_problem& p) {
  return useful_threads(direct_separable_macs(p), p.threads, 2e6);
}

/// The direct backend on a low-rank kernel (separable.hpp: K = sum over t of column_t row_t^T), a
/// single plane or a depthwise batch (one channel per filter). Per output row and term, a column
/// pass sums the column factor's taps straight from the input rows (a row of border values where a
/// tap falls outside the image) into a row buffer, whose columns beyond the image are then filled
/// by the border rule (per column, from the input); a row pass correlates that buffer with the row
/// factor into the output row, the terms added. Four output rows go at once where they read
/// consecutive input rows. Nothing is extended or allocated per call; per thread, four row buffers.
/// A NaN or Inf reaches exactly the outputs whose taps read it, as in the dense path.
template <class T>
class direct_separable {
 public:
  /// `weights`: K filters of rows.kernel x cols.kernel, each of rank <= p.kernel_rank.
  direct_separable(const conv_problem& p, const T* weights)
      : p_(p), passes_(separable_passes_for<T>(p.tune.instruction_set)), fill_(p.fill<T>()) {
    const axis_geometry &gr = p.rows, &gc = p.cols;
    const index_t R = gr.kernel, S = gc.kernel;
    rank_ = p.kernel_rank;
    const double tolerance = p.tune.separable_tolerance > 0 ? p.tune.separable_tolerance : rounding_tolerance<T>();
    columns_.assign(std::size_t(p.k * rank_ * R), T(0));
    rows_.assign(std::size_t(p.k * rank_ * S), T(0));
    terms_.assign(std::size_t(p.k), 0);
    for (index_t k = 0; k < p.k; ++k) {
      const auto f = kernel_factors_of(weights + k * R * S, R, S, tolerance, useful_rank(R, S));
      if (f->rank == 0 || f->rank > rank_) return;  // the flipped kernel analysed otherwise: not complete()
      terms_[std::size_t(k)] = f->rank;
      for (int t = 0; t < f->rank; ++t) {
        for (index_t u = 0; u < R; ++u)
          columns_[std::size_t((k * rank_ + t) * R + u)] = T(f->column[std::size_t(t * R + u)]);
        for (index_t v = 0; v < S; ++v) rows_[std::size_t((k * rank_ + t) * S + v)] = T(f->row[std::size_t(t * S + v)]);
      }
    }
    complete_ = true;
    // Where every extended row and column comes from (-1: the border value); a problem that is not
    // sparse reads most of its extent, so the tables are as small as the outputs' taps.
    row_source_.resize(std::size_t(gr.extent));
    for (index_t e = 0; e < gr.extent; ++e)
      row_source_[std::size_t(e)] = border_index(e - gr.pad_before, gr.in, p.edge);
    col_source_.resize(std::size_t(gc.extent));
    for (index_t e = 0; e < gc.extent; ++e)
      col_source_[std::size_t(e)] = border_index(e - gc.pad_before, gc.in, p.edge);
    inside_begin_ = std::clamp<index_t>(gc.pad_before, 0, gc.extent);
    inside_end_ = std::clamp<index_t>(gc.pad_before + gc.in, inside_begin_, gc.extent);
    fill_row_.assign(std::size_t(gc.in), fill_);
    consecutive_ = gr.stride == 1 && gr.dilation == 1;
    block_ = std::min<index_t>(gr.out, 16);
    blocks_ = (gr.out + block_ - 1) / block_;
    threads_ = direct_separable_threads(p);
    stride_ = checked_add(gc.extent, 64, "separable row buffers");  // the row pass reads a vector past the end
    buffers_ = array2d<T>(threads_, checked_mul(group, stride_, "separable row buffers"));
    pointers_.resize(std::size_t(threads_) * std::size_t(2 * (R + group - 1)));
  }

  /// Every filter has its factors. (The problem's rank came from the kernel as given; the filters
  /// here are in correlation order, whose analysis may round otherwise at the tolerance's edge.)
  bool complete() const noexcept { return complete_; }

  void run(planes<const T> in, planes<T> out, const T* bias) {
    const conv_problem& g = p_;
    const index_t items = g.n * g.k * blocks_, R = g.rows.kernel;
    parallel_slices(items, threads_, [&](index_t slice, index_t i0, index_t i1) {
      T* const buffers = buffers_.data() + slice * buffers_.cols();
      const T** const pointers = pointers_.data() + slice * 2 * (R + group - 1);
      for (index_t item = i0; item < i1; ++item) {
        const index_t b = item % blocks_, nk = item / blocks_, n = nk / g.k, k = nk % g.k;
        const index_t c = (k / g.k_per_group()) * g.c_per_group();  // one channel per filter
        run_block(in.view(n, c, g.rows.in, g.cols.in), out.view(n, k, g.rows.out, g.cols.out), k, b, buffers, pointers,
                  bias != nullptr ? bias[k] : T(0));
      }
    });
  }

 private:
  void run_block(view2d<const T> in, view2d<T> out, index_t k, index_t b, T* buffers, const T** pointers,
                 T bias) const {
    const axis_geometry &gr = p_.rows, &gc = p_.cols;
    const index_t R = gr.kernel, S = gc.kernel, o0 = b * block_, o1 = std::min(gr.out, o0 + block_);
    const index_t begin = inside_begin_, count = inside_end_ - inside_begin_, skip = begin - gc.pad_before;
    T* buffer[group];
    T* inside[group];
    for (int j = 0; j < group; ++j) buffer[j] = buffers + j * stride_, inside[j] = buffer[j] + begin;
    const T** const rows = pointers;                  // the rows the taps read: input rows or the border row
    const T** const from = pointers + R + group - 1;  // the same, at the first column inside the image
    const int terms = terms_[std::size_t(k)];
    for (index_t i = o0; i < o1;) {
      const int q = !consecutive_ ? 1 : o1 - i >= 8 ? 8 : o1 - i >= 4 ? 4 : 1;
      const index_t taps = R + q - 1;  // consecutive rows for q outputs, or one output's
      for (index_t e = 0; e < taps; ++e) {
        const index_t r = row_source_[std::size_t(i * gr.stride + (q > 1 ? e : e * gr.dilation))];
        rows[e] = r < 0 ? fill_row_.data() : in.row(r);
        from[e] = rows[e] + skip;
      }
      for (int t = 0; t < terms; ++t) {
        const T* wc = columns_.data() + (k * rank_ + t) * R;
        if (count > 0)
          (q == 8 ? passes_.column8 : q == 4 ? passes_.column4 : passes_.column)(from, wc, int(R), inside, count);
        // Columns beyond the image: the border rule's column of the input (or the border value).
        for (const auto& [e0, e1] : {std::pair<index_t, index_t>(0, begin), {inside_end_, gc.extent}})
          for (index_t e = e0; e < e1; ++e) {
            const index_t c = col_source_[std::size_t(e)];
            for (int j = 0; j < q; ++j) {
              T sum = T(0);
              for (index_t u = 0; u < R; ++u) sum += wc[u] * (c < 0 ? fill_ : rows[j + u][c]);
              buffer[j][e] = sum;
            }
          }
        const T* wr = rows_.data() + (k * rank_ + t) * S;
        for (int j = 0; j < q; ++j)
          passes_.row(buffer[j], gc.stride, wr, int(S), gc.dilation, out.row(i + j), gc.out, t > 0);
      }
      if (bias != T(0))
        for (int j = 0; j < q; ++j)
          for (index_t x = 0; x < gc.out; ++x) out.row(i + j)[x] += bias;
      i += q;
    }
  }

  static constexpr int group = 8;  // output rows of a column pass, at most

  conv_problem p_;
  separable_passes<T> passes_;
  T fill_;
  bool complete_ = false;
  int rank_ = 0;
  std::vector<T> columns_, rows_;  // per filter, rank_ terms (zeros past its own rank)
  std::vector<int> terms_;         // per filter: its rank
  std::vector<index_t> row_source_, col_source_;
  index_t inside_begin_ = 0, inside_end_ = 0;  // the extended columns inside the image
  std::vector<T> fill_row_;                    // the border value, a row of it
  bool consecutive_ = false;                   // four output rows read consecutive input rows
  index_t block_ = 1, blocks_ = 1;
  int threads_ = 1;
  index_t stride_ = 0;              // of the row buffers
  array2d<T> buffers_;              // per thread: four rows of column pass results
  std::vector<const T*> pointers_;  // per thread: the rows a column pass reads
};

}  // namespace detail
CONVKIT_NAMESPACE_END
