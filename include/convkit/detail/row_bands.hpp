// Output rows of one single-image problem computed apart from the rest: the distributed front door
// (distributed/mpi.hpp) and convkit_filter's streaming use it to compute a band of output rows from
// the input rows it reads, wherever those rows live (a rank's own band, rows received from other
// ranks, rows read from a file).
//
//   global problem   the whole image's problem (conv_problem, problem.hpp)
//   band of outputs  output rows [first, last) of it
//   band problem     the same convolution of a "band input" whose rows are exactly the extended rows
//                    the band reads, with no padding along the rows: the column axis is the global
//                    one (its padding and border included), the row axis is
//                      contiguous  extended rows [first * stride, (last - 1) * stride + span): the
//                                  same stride and dilation (most problems);
//                      per output  each output's R tap rows one after another, stride R and dilation
//                                  1 (where the contiguous rows would be mostly unread: a sparse
//                                  row axis, problem.hpp)
//   sources          for each band input row, the global input row it is (-1: the border value, for
//                    zero and constant borders), by the global border rule
// The band problem's outputs are the global problem's outputs [first, last), computed by the same
// backend with the same taps in the same order: for the direct backend (whose low-rank path is fixed
// by the global problem's choice, see direct_cost.hpp's band_tuning) they are bit-identical to a
// single-process call.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <vector>

#include "../padding.hpp"
#include "../tuning.hpp"
#include "prepared.hpp"
#include "problem.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// The global row of extended row e of axis a (-1: the border value).
inline index_t source_row(const axis_geometry& a, border edge, index_t e) noexcept {
  return border_index(e - a.pad_before, a.in, edge);
}

/// Output rows [first, last) of `global` as a problem of their own (see the file comment).
class row_band {
 public:
  row_band() = default;
  row_band(const conv_problem& global, index_t first, index_t last) : global_(global), first_(first), last_(last) {
    const axis_geometry& r = global.rows;
    const index_t outputs = last - first;
    contiguous_ = !global.rows.sparse();
    if (contiguous_) {
      const index_t e0 = first * r.stride;
      sources_.resize(std::size_t(outputs > 0 ? (outputs - 1) * r.stride + r.span : 0));
      for (std::size_t i = 0; i < sources_.size(); ++i) sources_[i] = source_row(r, global.edge, e0 + index_t(i));
    } else {
      sources_.resize(std::size_t(outputs * r.kernel));
      for (index_t o = 0; o < outputs; ++o)
        for (index_t u = 0; u < r.kernel; ++u)
          sources_[std::size_t(o * r.kernel + u)] = source_row(r, global.edge, (first + o) * r.stride + u * r.dilation);
    }
  }

  index_t first() const noexcept { return first_; }
  index_t last() const noexcept { return last_; }
  bool empty() const noexcept { return last_ <= first_; }
  /// The band input's rows, as global input rows (-1: the border value).
  const std::vector<index_t>& sources() const noexcept { return sources_; }

  /// The band problem (see the file comment), with `tune` in place of the global problem's tuning.
  conv_problem problem(const settings& tune) const {
    conv_problem p = global_;
    axis_geometry& r = p.rows;
    r.in = index_t(sources_.size());
    r.out = last_ - first_;
    r.pad_before = 0;
    if (!contiguous_) {
      r.stride = int(r.kernel);
      r.dilation = 1;
      r.span = r.kernel;
    }
    r.extent = (r.out - 1) * r.stride + r.span;
    p.tune = tune;
    return p;
  }

 private:
  conv_problem global_;
  index_t first_ = 0, last_ = 0;
  bool contiguous_ = true;
  std::vector<index_t> sources_;
};

/// A band's executor and the band input it reads (assembled from its sources, or a view given).
template <class T>
class band_runner {
 public:
  band_runner() = default;
  /// `weights`: the kernel in correlation order (rows.kernel x cols.kernel).
  band_runner(const row_band& band, const settings& tune, const T* weights)
      : band_(band), problem_(band.problem(tune)) {
    if (band.empty()) return;
    prepared_ = prepared<T>(problem_, weights, nullptr);
    fill_ = problem_.fill<T>();
  }

  const row_band& band() const noexcept { return band_; }
  const conv_problem& problem() const noexcept { return problem_; }
  algorithm chosen() const noexcept { return band_.empty() ? algorithm::automatic : prepared_.chosen(); }

  /// Computes the band's outputs from `rows` (band input rows, row_stride apart: a view of rows
  /// already in order).
  void run(view2d<const T> rows, view2d<T> out) {
    if (band_.empty()) return;
    prepared_.run(planes_of(rows), planes_of(out));
  }

  /// Assembles the band input from `row(g)` (a pointer to global input row g's cols values) into
  /// `buffer` and computes the band's outputs. `buffer` holds sources().size() x cols values.
  template <class RowOf>
  void gather_and_run(RowOf&& row, T* buffer, view2d<T> out) {
    if (band_.empty()) return;
    const index_t cols = problem_.cols.in;
    const std::vector<index_t>& s = band_.sources();
    for (std::size_t i = 0; i < s.size(); ++i) {
      T* to = buffer + index_t(i) * cols;
      if (s[i] < 0) {
        std::fill(to, to + cols, fill_);
      } else {
        const T* from = row(s[i]);
        std::copy(from, from + cols, to);
      }
    }
    run(view2d<const T>(buffer, index_t(s.size()), cols), out);
  }

 private:
  row_band band_;
  conv_problem problem_;
  prepared<T> prepared_;
  T fill_ = T(0);
};

}  // namespace detail
CONVKIT_NAMESPACE_END
