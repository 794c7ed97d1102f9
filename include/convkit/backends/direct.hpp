// convkit/backends/direct.hpp - algorithm::direct: the definition, computed fast. No dependencies.
//
// How it works (the README has the measured speed):
//   1. Borders: the input is extended once by the padding module (skipped when the output reads only
//      the image, as valid mode does), so the hot loop never tests an index.
//   2. Column stride s > 1: the extended input is split into s phase planes (columns p, p+s, ...), so
//      every kernel tap reads consecutive elements whatever the stride and dilation.
//   3. Rows are grouped so that the rows of a block read shared input rows (stride 1, or a dilation
//      that is a multiple of the stride); a register-blocked micro-kernel (detail/direct_kernel.inl)
//      then computes 4 output rows x 2-3 vectors at once, loading each input vector once.
//   4. Blocks of rows are split over options::threads threads.
//   5. The micro-kernel is compiled for AVX-512, AVX2+FMA and portable C++ in every program, and the
//      best one this CPU runs is chosen at run time (direct::instruction_set()).
#pragma once

#include <algorithm>
#include <memory>
#include <vector>

#include "../detail/backend.hpp"
#include "../detail/direct_impl.hpp"
#include "../detail/threads.hpp"
#include "../padding.hpp"

namespace convkit::detail {

template <class T>
class direct_executor final : public executor<T> {
 public:
  direct_executor(const problem& p, view2d<const T> kernel)
      : p_(p), run_(direct_kernel_for<T>(direct::instruction_set())) {
    const axis_geometry& gr = p.geo.rows;
    const axis_geometry& gc = p.geo.cols;
    // The micro-kernel correlates; a convolution correlates with the kernel reversed.
    k_ = array2d<T>(gr.kernel, gc.kernel);
    for (index u = 0; u < gr.kernel; ++u)
      for (index v = 0; v < gc.kernel; ++v)
        k_(u, v) = p.opt.correlate ? kernel(u, v) : kernel(gr.kernel - 1 - u, gc.kernel - 1 - v);
    if (p.geo.reads_outside()) ext_ = array2d<T>(gr.extent, gc.extent);
    const index sc = gc.stride;
    if (sc > 1) {
      plane_cols_ = (gc.extent + sc - 1) / sc;
      planes_ = array2d<T>(checked_mul(sc, gr.extent, "column phase planes"), plane_cols_);
    }
    col_off_.resize(static_cast<std::size_t>(gc.kernel));
    for (index v = 0; v < gc.kernel; ++v) {
      const index e = v * gc.dilation;  // column offset of tap v in the extended input
      col_off_[static_cast<std::size_t>(v)] = sc > 1 ? (e % sc) * gr.extent * plane_cols_ + e / sc : e;
    }
    plan_row_blocks();
    // Spawning a thread costs ~20 us; below ~1 ms of work per extra thread it does not pay.
    threads_ = static_cast<int>(std::clamp<double>(p.macs() / 2e7, 1.0, p.opt.threads));
  }

  void execute(view2d<const T> in, view2d<T> out) override {
    const axis_geometry& gr = p_.geo.rows;
    const axis_geometry& gc = p_.geo.cols;
    view2d<const T> src = in;
    if (ext_.size() > 0) {
      extend<T>(in, ext_.view(), gr.pad_before, gc.pad_before, p_.opt.edge, static_cast<T>(p_.opt.edge_value));
      src = ext_.view();
    }
    const T* base = src.data();
    index ld = src.row_stride();
    if (gc.stride > 1) {
      deinterleave(src);
      base = planes_.data();
      ld = plane_cols_;
    }
    parallel_for(static_cast<index>(blocks_.size()), threads_, [&](index b0, index b1) {
      for (index b = b0; b < b1; ++b) {
        const row_block& rb = blocks_[static_cast<std::size_t>(b)];
        const direct_job<T> job{base + rb.in_row * ld,        rb.in_step * ld,
                                col_off_.data(),              k_.data(),
                                int(gr.kernel),               int(gc.kernel),
                                out.row(rb.out_row),          rb.out_step * out.row_stride(),
                                gc.out,                       rb.rows};
        run_(job);
      }
    });
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
    const axis_geometry& gr = p_.geo.rows;
    const index s = gr.stride, d = gr.dilation;
    if (d % s == 0) {
      const index m = d / s;
      for (index q = 0; q < std::min(m, gr.out); ++q) {
        const index count = (gr.out - q + m - 1) / m;
        for (index t = 0; t < count; t += direct_block_rows)
          blocks_.push_back({s * q + t * d, d, q + t * m, m, int(std::min<index>(direct_block_rows, count - t))});
      }
    } else {
      for (index o = 0; o < gr.out; ++o) blocks_.push_back({o * s, d, o, 1, 1});
    }
  }

  // planes_ row p * extent_rows + r, column m  =  src(r, m * stride + p).
  void deinterleave(view2d<const T> src) {
    const axis_geometry& gr = p_.geo.rows;
    const axis_geometry& gc = p_.geo.cols;
    const index s = gc.stride;
    for (index p = 0; p < s; ++p)
      for (index r = 0; r < gr.extent; ++r) {
        const T* from = src.row(r);
        T* to = planes_.data() + (p * gr.extent + r) * plane_cols_;
        for (index m = 0; m * s + p < gc.extent; ++m) to[m] = from[m * s + p];
      }
  }

  problem p_;
  direct_kernel_fn<T> run_;
  array2d<T> k_, ext_, planes_;
  index plane_cols_ = 0;
  std::vector<index> col_off_;
  std::vector<row_block> blocks_;
  int threads_ = 1;
};

template <class T>
std::unique_ptr<executor<T>> make_direct(const problem& p, view2d<const T> kernel) {
  return std::make_unique<direct_executor<T>>(p, kernel);
}

/// Cost model: multiply-adds at the rate the micro-kernel sustains on one core (measured on the
/// reference machine, README "Choosing a backend"), divided over the threads, plus one pass over
/// the extended input.
inline double direct_cost(const problem& p) {
  const direct::isa i = direct::instruction_set();
  const double macs_per_s = i == direct::isa::avx512 ? 45e9 : i == direct::isa::avx2 ? 20e9 : 2e9;
  const double elems = double(p.geo.rows.extent) * double(p.geo.cols.extent);
  return p.macs() / (macs_per_s * p.opt.threads) + elems * 1e-9;
}

inline const backend direct_backend{algorithm::direct, "convkit::convkit", &direct_cost, &make_direct<float>,
                                    &make_direct<double>};
inline const bool direct_registered = register_backend(direct_backend);

}  // namespace convkit::detail
