// convkit/backends/im2col.hpp - algorithm::im2col: lower input patches into a column matrix, then
// one CBLAS GEMM (sgemm / dgemm) per group. CMake target convkit::blas (any CBLAS; OpenBLAS by default).
//
// How it works (detail/im2col_impl.hpp has the matrices written out):
//   1. The output is cut into tiles (several whole images when images are small, else runs of whole
//      output rows, or pieces of one row), so that a tile's column matrix plus the extended input
//      under it fit in a per-thread share of the workspace bound (im2col::workspace_limit(), 64 MiB
//      unless set), and are about the size that keeps the lowered columns in cache until the GEMM
//      reads them (im2col_cache_bytes). A 10000x10000 image with a 15x15 kernel lowers
//      225 x 10^8 elements (90 GB) in one piece; here it takes about 2 MiB per thread at a time.
//   2. Borders: each tile's window of the input is extended by the padding module (convkit::extend,
//      which reads windows that start anywhere), so every border rule works and no full extended
//      copy of the input is ever made.
//   3. 1x1 kernels with stride 1 and no padding (layers) skip the lowering: the input planes already
//      are the column matrix.
//   4. Threads: the (image, tile) pairs are split over options::threads threads, each with its own
//      workspace, each calling a single-threaded GEMM. With OpenBLAS the backend sets OpenBLAS's
//      process-wide thread count to 1 (openblas_set_num_threads) so that BLAS threads never compete
//      with convkit's; with another CBLAS, make it single-threaded yourself (e.g. MKL_NUM_THREADS=1)
//      or set options::threads = 1 and let the BLAS thread.
//   5. Single images are one channel and one filter: the kernel (reversed for a convolution) is the
//      1 x KH*KW weight matrix, and the GEMM is a matrix-vector product. That is memory-bound, so
//      for single images algorithm::automatic prefers direct; im2col earns its place on layers.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>

#include "../detail/backend.hpp"
#include "../detail/im2col_impl.hpp"
#include "../layer_options.hpp"
#include "../view4d.hpp"

namespace convkit::im2col {

/// The default workspace bound: 64 MiB.
inline constexpr index default_workspace_limit = index(64) << 20;

namespace detail {
inline std::atomic<index>& limit() noexcept {
  static std::atomic<index> bytes{default_workspace_limit};
  return bytes;
}
}  // namespace detail

/// Bounds the workspace (column matrices, extended input windows and GEMM output buffers, all threads
/// together) of im2col plans and calls made from now on. The bound cannot go below one output position's column and
/// window per thread (C/groups * R * S plus C/groups * span_rows * span_cols elements): smaller
/// bounds use that. Throws convkit::error if bytes < 1.
inline void set_workspace_limit(index bytes) {
  if (bytes < 1) throw error("im2col::set_workspace_limit: bytes must be >= 1, got " + std::to_string(bytes));
  detail::limit().store(bytes);
}

/// The current workspace bound in bytes.
inline index workspace_limit() noexcept { return detail::limit().load(); }

}  // namespace convkit::im2col

namespace convkit::detail {

template <class T>
class im2col_executor final : public executor<T> {
 public:
  im2col_executor(const problem& p, view2d<const T> kernel)
      : engine_(shape(p), 1, flipped(p, kernel).data(), nullptr, p.opt.edge, static_cast<T>(p.opt.edge_value),
                p.opt.threads, im2col::workspace_limit()),
        rows_(p.geo.rows.in),
        cols_(p.geo.cols.in) {}

  void execute(view2d<const T> in, view2d<T> out) override {
    engine_.run({in.data(), 0, 0, in.row_stride()}, rows_, cols_, {out.data(), 0, 0, out.row_stride()});
  }

 private:
  static im2col_shape shape(const problem& p) { return {p.geo.rows, p.geo.cols, 1, 1, 1, false}; }
  // The kernel in correlation order (reversed for a convolution): the 1 x KH*KW weight matrix.
  static array2d<T> flipped(const problem& p, view2d<const T> kernel) {
    const index kh = kernel.rows(), kw = kernel.cols();
    array2d<T> k(kh, kw);
    for (index u = 0; u < kh; ++u)
      for (index v = 0; v < kw; ++v) k(u, v) = p.opt.correlate ? kernel(u, v) : kernel(kh - 1 - u, kw - 1 - v);
    return k;
  }

  im2col_engine<T> engine_;
  index rows_, cols_;
};

template <class T>
class im2col_layer_executor final : public layer_executor<T> {
 public:
  im2col_layer_executor(const layer_problem& p, view4d<const T> weights, const T* bias)
      : engine_({p.geo.rows, p.geo.cols, p.geo.c_per_group(), p.geo.k_per_group(), p.geo.groups, true}, p.geo.n,
                weights.data(), bias, p.opt.edge, T(0), p.opt.threads, im2col::workspace_limit()) {}

  void execute(view4d<const T> in, view4d<T> out) override {
    engine_.run({in.data(), in.c() * in.h() * in.w(), in.h() * in.w(), in.w()}, in.h(), in.w(),
                {out.data(), out.c() * out.h() * out.w(), out.h() * out.w(), out.w()});
  }

 private:
  im2col_engine<T> engine_;
};

template <class T>
std::unique_ptr<executor<T>> make_im2col(const problem& p, view2d<const T> kernel) {
  return std::make_unique<im2col_executor<T>>(p, kernel);
}

template <class T>
std::unique_ptr<layer_executor<T>> make_im2col_layer(const layer_problem& p, view4d<const T> weights, const T* bias) {
  return std::make_unique<im2col_layer_executor<T>>(p, weights, bias);
}

/// Cost model, in seconds, fitted to bench/layers.cpp on the reference machine (README, "Choosing a
/// backend"): the GEMM runs at 65e9 multiply-adds per second scaled by m / (m + 12) for its row count
/// m (the filters per group: m = 1 is a memory-bound matrix-vector product), lowering costs 0.3 ns
/// per column-matrix element, and both divide over the threads.
inline double im2col_seconds(double macs, double lowered_elems, double m, int threads) {
  return (macs / (65e9 * m / (m + 12)) + lowered_elems * 0.3e-9) / threads;
}

inline double im2col_cost(const problem& p) {
  const double positions = double(p.geo.rows.out) * double(p.geo.cols.out);
  return im2col_seconds(p.macs(), positions * double(p.k_rows()) * double(p.k_cols()), 1.0, p.opt.threads);
}

inline double im2col_layer_cost(const layer_problem& p) {
  const layer_geometry& g = p.geo;
  const im2col_shape s{g.rows, g.cols, g.c_per_group(), g.k_per_group(), g.groups, true};
  const double lowered = !s.one_by_one() ? double(g.n) * double(g.groups) * double(s.depth()) *
                                                  double(g.rows.out) * double(g.cols.out)
                                            : 0.0;
  return im2col_seconds(p.macs(), lowered, double(g.k_per_group()), p.opt.threads);
}

inline const backend im2col_backend{algorithm::im2col,         "convkit::blas",          &im2col_cost,
                                    &make_im2col<float>,       &make_im2col<double>,     &im2col_layer_cost,
                                    &make_im2col_layer<float>, &make_im2col_layer<double>};
inline const bool im2col_registered = register_backend(im2col_backend);

}  // namespace convkit::detail
