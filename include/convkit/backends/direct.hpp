// convkit/backends/direct.hpp - algorithm::direct: the definition, computed fast. No dependencies.
//
// How it works (the README has the measured speed):
//   1. Borders: each block's band of input rows is extended by the padding module just before the
//      block runs (skipped when the output reads only the image, as valid mode does), so the hot loop
//      never tests an index and the whole extended image is never materialised.
//   2. Column stride s > 1: the extended rows are split into s phase planes (columns p, p+s, ...), so
//      every kernel tap reads consecutive elements whatever the stride and dilation.
//   3. Rows are grouped so that the rows of a block read shared input rows (stride 1, or a dilation
//      that is a multiple of the stride); a register-blocked micro-kernel (detail/direct_kernel.inl)
//      then computes 4 output rows x 2-4 vectors at once, loading each input vector once.
//   4. Blocks of rows are split over options::threads threads.
//   5. The micro-kernel is compiled for AVX-512, AVX2+FMA and portable C++ in every program, and the
//      best one this CPU runs is chosen at run time (direct::instruction_set()).
// Layers (layer_options.hpp) run the same plane correlation once per (filter, input channel of its
// group), the micro-kernel adding each channel's result to the output plane (direct_job::accumulate);
// the batch's planes are extended once per call, and (image, filter) pairs are split over threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "../detail/backend.hpp"
#include "../detail/direct_impl.hpp"
#include "../detail/threads.hpp"
#include "../padding.hpp"
#include "../view4d.hpp"

namespace convkit::detail {

/// How the micro-kernel walks one plane: the strided, dilated valid correlation of an extended plane
/// (rows.extent x cols.extent, as axis_geometry defines it) with a kernel of rows.kernel x cols.kernel
/// taps given contiguously, already in correlation order. Shared by the single-image and layer executors.
template <class T>
class direct_plane {
 public:
  /// Where the micro-kernel reads an extended plane: its rows are `ld` elements apart.
  struct source {
    const T* base;
    index ld;
  };

  direct_plane() = default;
  /// banded: the input is prepared one block's band of rows at a time (band(), run_band()) rather
  /// than as a whole plane (prepare() of the whole plane, run()).
  direct_plane(const axis_geometry& rows, const axis_geometry& cols, bool banded = false)
      : rows_(rows), cols_(cols), phase_rows_(banded ? band_rows() : rows.extent) {
    const index sc = cols.stride;
    if (sc > 1) plane_cols_ = (cols.extent + sc - 1) / sc;
    checked_mul(checked_mul(sc, phase_rows_, "column phase planes"), plane_cols_, "column phase planes");
    col_off_.resize(static_cast<std::size_t>(cols.kernel));
    for (index v = 0; v < cols.kernel; ++v) {
      const index e = v * cols.dilation;  // column offset of tap v in the extended input
      col_off_[static_cast<std::size_t>(v)] = sc > 1 ? (e % sc) * phase_rows_ * plane_cols_ + e / sc : e;
    }
    plan_row_blocks();
  }

  /// Elements of the column-phase copy that prepare() needs (0 for stride 1).
  index phase_size() const noexcept { return cols_.stride > 1 ? cols_.stride * phase_rows_ * plane_cols_ : 0; }
  index blocks() const noexcept { return static_cast<index>(blocks_.size()); }

  /// The most input rows one block reads: its output rows share all but kernel - 1 of them.
  index band_rows() const noexcept { return direct_block_rows + rows_.kernel - 1; }

  /// The extended-input rows that block b reads: first, first + step, ... (count of them).
  struct band_rows_of {
    index first, step, count;
  };
  band_rows_of band(index b) const noexcept {
    const row_block& rb = blocks_[static_cast<std::size_t>(b)];
    return {rb.in_row, rb.in_step, rb.rows + rows_.kernel - 1};
  }

  /// The source for extended plane `ext` (at least rows.extent x cols.extent); for a column stride
  /// s > 1 it first splits ext into s phase planes (columns p, p+s, ...) at `phases`, so that every
  /// kernel tap reads consecutive elements whatever the stride and dilation.
  source prepare(view2d<const T> ext, T* phases) const {
    const index s = cols_.stride;
    if (s == 1) return {ext.data(), ext.row_stride()};
    // phases row p * phase_rows + r, column m  =  ext(r, m * stride + p).
    const index rows = std::min(ext.rows(), phase_rows_);
    for (index p = 0; p < s; ++p)
      for (index r = 0; r < rows; ++r) {
        const T* from = ext.row(r);
        T* to = phases + (p * phase_rows_ + r) * plane_cols_;
        for (index m = 0; m * s + p < cols_.extent; ++m) to[m] = from[m * s + p];
      }
    return {phases, plane_cols_};
  }

  /// Output row blocks [b0, b1) of out = correlation of src with k (or out += it, with accumulate).
  void run(direct_kernel_fn<T> kernel, source src, const T* k, view2d<T> out, bool accumulate, index b0, index b1) const {
    for (index b = b0; b < b1; ++b) {
      const row_block& rb = blocks_[static_cast<std::size_t>(b)];
      const direct_job<T> job{src.base + rb.in_row * src.ld,   rb.in_step * src.ld,
                              col_off_.data(),                 k,
                              int(rows_.kernel),               int(cols_.kernel),
                              out.row(rb.out_row),             rb.out_step * out.row_stride(),
                              cols_.out,                       rb.rows,
                              accumulate};
      kernel(job);
    }
  }

  /// Block b alone, from `src` holding the block's band(b) rows one after the other.
  void run_band(direct_kernel_fn<T> kernel, source src, const T* k, view2d<T> out, bool accumulate, index b) const {
    const row_block& rb = blocks_[static_cast<std::size_t>(b)];
    kernel(direct_job<T>{src.base, src.ld, col_off_.data(), k, int(rows_.kernel), int(cols_.kernel), out.row(rb.out_row),
                         rb.out_step * out.row_stride(), cols_.out, rb.rows, accumulate});
  }

 private:
  struct row_block {
    index in_row, in_step;    // in rows of the extended input
    index out_row, out_step;  // in rows of the output
    int rows;
  };

  // Output row o with kernel row u reads extended row o * stride + u * dilation. When the dilation is
  // a multiple m of the stride, the output rows o = q, q + m, q + 2m, ... read the evenly spaced
  // rows stride * q + j * dilation, so blocks of them share input rows; otherwise rows go one by one.
  void plan_row_blocks() {
    const index s = rows_.stride, d = rows_.dilation;
    if (d % s == 0) {
      const index m = d / s;
      for (index q = 0; q < std::min(m, rows_.out); ++q) {
        const index count = (rows_.out - q + m - 1) / m;
        for (index t = 0; t < count; t += direct_block_rows)
          blocks_.push_back({s * q + t * d, d, q + t * m, m, int(std::min<index>(direct_block_rows, count - t))});
      }
    } else {
      for (index o = 0; o < rows_.out; ++o) blocks_.push_back({o * s, d, o, 1, 1});
    }
  }

  axis_geometry rows_{}, cols_{};
  index phase_rows_ = 0;  // rows of each column-phase plane: the whole plane's, or one band's
  index plane_cols_ = 0;
  std::vector<index> col_off_;
  std::vector<row_block> blocks_;
};

// Waking a pool thread costs ~10-20 us; an extra thread pays for itself from ~4e6 multiply-adds
// (~70 us of micro-kernel time) of work each.
inline int direct_threads(double macs, int threads) { return static_cast<int>(std::clamp<double>(macs / 4e6, 1.0, threads)); }

/// A single image. When the output reads only the image and the column stride is 1 (valid mode), the
/// micro-kernel reads the input in place. Otherwise each block's band of rows is extended (and split
/// into column phases) just before the block runs, into a workspace per thread: the copy stays in
/// cache, is spread over the threads, and never holds the whole extended image.
template <class T>
class direct_executor final : public executor<T> {
 public:
  direct_executor(const problem& p, view2d<const T> kernel)
      : p_(p),
        run_(direct_kernel_for<T>(direct::instruction_set())),
        plane_(p.geo.rows, p.geo.cols, p.geo.reads_outside() || p.geo.cols.stride > 1),
        banded_(p.geo.reads_outside() || p.geo.cols.stride > 1) {
    const axis_geometry& gr = p.geo.rows;
    const axis_geometry& gc = p.geo.cols;
    // The micro-kernel correlates; a convolution correlates with the kernel reversed.
    k_ = array2d<T>(gr.kernel, gc.kernel);
    for (index u = 0; u < gr.kernel; ++u)
      for (index v = 0; v < gc.kernel; ++v)
        k_(u, v) = p.opt.correlate ? kernel(u, v) : kernel(gr.kernel - 1 - u, gc.kernel - 1 - v);
    threads_ = direct_threads(p.macs(), p.opt.threads);
    if (banded_)
      work_ = array2d<T>(threads_, checked_add(checked_mul(plane_.band_rows(), gc.extent, "direct band"), plane_.phase_size(),
                                               "direct band"));
  }

  void execute(view2d<const T> in, view2d<T> out) override {
    if (!banded_) {
      const typename direct_plane<T>::source from{in.data(), in.row_stride()};
      parallel_for(plane_.blocks(), threads_,
                   [&](index b0, index b1) { plane_.run(run_, from, k_.data(), out, false, b0, b1); });
      return;
    }
    const axis_geometry& gr = p_.geo.rows;
    const axis_geometry& gc = p_.geo.cols;
    const T fill = static_cast<T>(p_.opt.edge_value);
    parallel_slices(plane_.blocks(), threads_, [&](index slice, index b0, index b1) {
      T* const ext = work_.data() + slice * work_.cols();
      T* const phases = ext + plane_.band_rows() * gc.extent;
      for (index b = b0; b < b1; ++b) {
        const auto rows = plane_.band(b);
        const view2d<T> band(ext, rows.count, gc.extent);
        if (rows.step == 1) {
          extend<T>(in, band, gr.pad_before - rows.first, gc.pad_before, p_.opt.edge, fill);
        } else {
          for (index i = 0; i < rows.count; ++i)
            extend<T>(in, band.block(i, 0, 1, gc.extent), gr.pad_before - (rows.first + i * rows.step), gc.pad_before,
                      p_.opt.edge, fill);
        }
        plane_.run_band(run_, plane_.prepare(band, phases), k_.data(), out, false, b);
      }
    });
  }

 private:
  problem p_;
  direct_kernel_fn<T> run_;
  direct_plane<T> plane_;
  bool banded_;
  array2d<T> k_, work_;  // work_: one band (and its column phases) per thread
  int threads_ = 1;
};

template <class T>
std::unique_ptr<executor<T>> make_direct(const problem& p, view2d<const T> kernel) {
  return std::make_unique<direct_executor<T>>(p, kernel);
}

/// A layer: every input plane of the batch is extended (and split into column phases) once per call,
/// then each (image, filter) output plane sums the plane correlations over its group's channels.
template <class T>
class direct_layer_executor final : public layer_executor<T> {
 public:
  direct_layer_executor(const layer_problem& p, view4d<const T> weights, const T* bias)
      : p_(p), run_(direct_kernel_for<T>(direct::instruction_set())), plane_(p.geo.rows, p.geo.cols) {
    const layer_geometry& g = p.geo;
    w_ = array4d<T>(weights.n(), weights.c(), weights.h(), weights.w());
    std::copy(weights.data(), weights.data() + weights.size(), w_.data());
    if (bias != nullptr) {
      bias_ = array2d<T>(1, g.k);
      std::copy(bias, bias + g.k, bias_.data());
    }
    const index planes = checked_mul(g.n, g.c, "input N * C");
    if (g.reads_outside()) ext_ = array4d<T>(g.n, g.c, g.rows.extent, g.cols.extent);
    phases_ = array2d<T>(planes, plane_.phase_size());
    sources_.resize(static_cast<std::size_t>(planes));
    threads_ = direct_threads(p.macs(), p.opt.threads);
  }

  void execute(view4d<const T> in, view4d<T> out) override {
    const layer_geometry& g = p_.geo;
    parallel_for(g.n * g.c, threads_, [&](index p0, index p1) {
      for (index p = p0; p < p1; ++p) {
        const index n = p / g.c, c = p % g.c;
        view2d<const T> src = in.plane(n, c);
        if (ext_.size() > 0) {
          const view2d<T> ext = ext_.view().plane(n, c);
          extend<T>(src, ext, g.rows.pad_before, g.cols.pad_before, p_.opt.edge);
          src = ext;
        }
        sources_[static_cast<std::size_t>(p)] = plane_.prepare(src, phases_.data() + p * phases_.cols());
      }
    });
    const index cg = g.c_per_group(), kg = g.k_per_group();
    parallel_for(g.n * g.k, threads_, [&](index p0, index p1) {
      for (index p = p0; p < p1; ++p) {
        const index n = p / g.k, k = p % g.k, first_channel = (k / kg) * cg;
        const view2d<T> o = out.plane(n, k);
        if (bias_.size() > 0)
          for (index r = 0; r < o.rows(); ++r) std::fill(o.row(r), o.row(r) + o.cols(), bias_.data()[k]);
        for (index ci = 0; ci < cg; ++ci)
          plane_.run(run_, sources_[static_cast<std::size_t>(n * g.c + first_channel + ci)], &w_(k, ci, 0, 0), o,
                     ci > 0 || bias_.size() > 0, 0, plane_.blocks());
      }
    });
  }

 private:
  layer_problem p_;
  direct_kernel_fn<T> run_;
  direct_plane<T> plane_;
  array4d<T> w_, ext_;
  array2d<T> bias_, phases_;
  std::vector<typename direct_plane<T>::source> sources_;  // one per input plane, filled by execute()
  int threads_ = 1;
};

template <class T>
std::unique_ptr<layer_executor<T>> make_direct_layer(const layer_problem& p, view4d<const T> weights, const T* bias) {
  return std::make_unique<direct_layer_executor<T>>(p, weights, bias);
}

/// Cost model: multiply-adds at the rate the micro-kernel sustains on one core (measured on the
/// reference machine, README "Choosing a backend"), divided over the threads, plus one pass over
/// the extended input.
inline double direct_cost(const problem& p) {
  const direct::isa i = direct::instruction_set();
  const double macs_per_s = i == direct::isa::avx512 ? 60e9 : i == direct::isa::avx2 ? 25e9 : 2e9;
  const double elems = double(p.geo.rows.extent) * double(p.geo.cols.extent);
  return p.macs() / (macs_per_s * p.opt.threads) + elems * 1e-9;
}

/// Layer cost model: each (filter, channel) pair is one pass of the micro-kernel over an output
/// plane, which reaches the single-image rate only for large kernels and wide rows. Fitted to
/// bench/layers.cpp on the reference machine (README, "Choosing a backend"): the rate scales with
/// taps / (taps + 16) (per-row loads and stores are amortised over the taps), with the fraction of
/// vector lanes a row fills, and drops by 0.6 when strided rows cannot share input rows.
inline double direct_layer_cost(const layer_problem& p) {
  const direct::isa i = direct::instruction_set();
  const double macs_per_s = i == direct::isa::avx512 ? 60e9 : i == direct::isa::avx2 ? 25e9 : 2e9;
  const double lanes = i == direct::isa::avx512 ? 16 : i == direct::isa::avx2 ? 8 : 1;
  const layer_geometry& g = p.geo;
  const double taps = double(g.rows.kernel) * double(g.cols.kernel);
  const double row = double(g.cols.out), filled = row / (std::ceil(row / lanes) * lanes);
  const double shared_rows = g.rows.dilation % g.rows.stride == 0 ? 1.0 : 0.6;
  const double rate = macs_per_s * taps / (taps + 16) * filled * shared_rows;
  const double elems = double(g.n) * double(g.c) * double(g.rows.extent) * double(g.cols.extent);
  return p.macs() / (rate * p.opt.threads) + elems * 1e-9;
}

inline const backend direct_backend{algorithm::direct,      "convkit::convkit",       &direct_cost,
                                    &make_direct<float>,    &make_direct<double>,     &direct_layer_cost,
                                    &make_direct_layer<float>, &make_direct_layer<double>};
inline const bool direct_registered = register_backend(direct_backend);

}  // namespace convkit::detail
