// convkit/backends/im2col.hpp - algorithm::im2col: lower input patches into a column matrix, then
// one CBLAS GEMM (sgemm / dgemm) per group. CMake target convkit::blas (any CBLAS; OpenBLAS by default).
//
// The output is cut into tiles whose column matrix and extended input window fit a per-thread share
// of tuning::im2col_workspace (64 MiB unless set), so 10000x10000 * 15x15 lowers about 2 MiB per
// thread at a time instead of 90 GB; borders come from convkit::extend on each tile's window; 1x1
// stride-1 unpadded layers skip the lowering (detail/im2col_impl.hpp has the matrices written out).
// A single image is one channel and one filter, so its GEMM is a memory-bound matrix-vector
// product: automatic prefers direct there, and im2col earns its place on layers.
// Threads: see tuning::single_threaded_blas (convkit never changes OpenBLAS's threads unless asked).
// Public API: convkit::im2col::set_workspace_limit() and workspace_limit(), the process default of
// tuning::im2col_workspace.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <memory>
#include <string>

#include "../detail/backend.hpp"
#include "../detail/calibration.hpp"
#include "../detail/im2col_impl.hpp"
#include "../tuning.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace im2col {

/// The default workspace bound: 64 MiB.
inline constexpr index_t default_workspace_limit = index_t(64) << 20;

/// Sets the process default of tuning::im2col_workspace for plans and calls made from now on.
/// Throws convkit::error if bytes < 1.
inline void set_workspace_limit(index_t bytes) {
  if (bytes < 1) throw error("im2col::set_workspace_limit: bytes must be >= 1, got " + std::to_string(bytes));
  tuning t;
  t.im2col_workspace = bytes;
  set_default_tuning(t);
}

/// The process default of tuning::im2col_workspace, in bytes.
inline index_t workspace_limit() { return convkit::detail::default_settings::get().im2col_workspace; }

}  // namespace im2col
CONVKIT_NAMESPACE_END

CONVKIT_NAMESPACE_BEGIN
namespace detail {

template <class T>
class im2col_executor final : public executor<T> {
 public:
  im2col_executor(const conv_problem& p, const T* weights, const T* bias)
      : engine_({p.rows, p.cols, p.c_per_group(), p.k_per_group(), p.groups, p.packed_input}, p.n, weights, bias,
                p.edge, p.fill<T>(), blas_compatible_threads(p.threads, p.tune.single_threaded_blas),
                p.tune.im2col_workspace),
        rows_(p.rows.in),
        cols_(p.cols.in) {}

  void execute(planes<const T> in, planes<T> out) override { engine_.run(in, rows_, cols_, out); }

 private:
  im2col_engine<T> engine_;
  index_t rows_, cols_;
};

template <class T>
std::unique_ptr<executor<T>> make_im2col(const conv_problem& p, const T* weights, const T* bias) {
  refuse_sparse(p.sparse(), "im2col");
  return std::make_unique<im2col_executor<T>>(p, weights, bias);
}

/// Cost model, in seconds: im2col.call_s per call, plus: the GEMM runs at im2col.gemm_macs_per_s (one thread) scaled by
/// m / (m + 12) for its row count m (the filters per group: m = 1 is a memory-bound matrix-vector product), lowering
/// costs im2col.lower_s per column-matrix element, and both divide over the threads. Built in: 65e9 and 0.3 ns, fitted
/// to bench_layers on the AVX-512 Xeon this project ran on first; calibrate() measures both here.
inline double im2col_cost(const conv_problem& p, const cost_profile& profile) {
  if (p.sparse()) return never;
  const im2col_shape s{p.rows, p.cols, p.c_per_group(), p.k_per_group(), p.groups, p.packed_input};
  const double lowered =
      s.one_by_one() ? 0.0
                     : double(p.n) * double(p.groups) * double(s.depth()) * double(p.rows.out) * double(p.cols.out);
  const double m = double(p.k_per_group());
  const double rate = profile_value(profile, "im2col.gemm_macs_per_s", 65e9);
  const double gemm_calls = double(p.n) * double(p.groups);  // at least one per image and group
  // Layers of a few channels per group: small GEMMs on column matrices that stay in cache, which the
  // dense layers' constants overestimated by 1.4-3x here (measured apart: im2col.grouped_scale).
  const double kind = p.groups > 1 && p.c_per_group() > 1 ? profile_value(profile, "im2col.grouped_scale", 1.0) : 1.0;
  return profile_value(profile, "im2col.call_s", 3e-6) +
         kind *
             (p.macs() / (rate * m / (m + 12)) + lowered * profile_value(profile, "im2col.lower_s", 0.3e-9) +
              gemm_calls * profile_value(profile, "im2col.gemm_call_s", 1e-6)) /
             p.threads;
}

/// Measures the GEMM rate on a 1x1 layer (no lowering: 64 filters x 64 channels x 56 x 56 positions),
/// then the lowering cost per column-matrix element from a 3x3 layer (with what a lowered GEMM loses),
/// on one thread, a tiny call's time and a GEMM call's, and a grouped layer's scale.
inline void im2col_calibrate(calibration& c) {
  c.step("im2col: GEMM rate and lowering cost, 1 thread");
  const tuning t;  // OpenBLAS threads as the process runs them (tuning::single_threaded_blas's default)
  const conv_problem gemm = calibration::problem(1, 64, 64, 56, 56, 1, 1, 0, 1, algorithm::im2col, 1, t);
  const double m = double(gemm.k_per_group());
  const double rate = gemm.macs() / c.seconds(gemm) / (m / (m + 12));
  c.set("im2col.gemm_macs_per_s", rate);
  // The lowering, and what a lowered GEMM loses against the 1x1 one (a deep column matrix packed by
  // the BLAS), from a 128 -> 128 channel 3x3 layer on 28 x 28 planes.
  const conv_problem lowering = calibration::problem(1, 128, 128, 28, 28, 3, 3, 1, 1, algorithm::im2col, 1, t);
  const double elems = double(lowering.c * 9) * double(lowering.rows.out * lowering.cols.out);
  const double m2 = double(lowering.k_per_group());
  const double gemm_part = lowering.macs() / (rate * m2 / (m2 + 12));
  c.set("im2col.lower_s", std::max(1e-12, (c.seconds(lowering) - gemm_part) / elems));
  c.set("im2col.call_s", c.seconds(calibration::problem(1, 1, 1, 16, 16, 3, 3, 1, 1, algorithm::im2col, 1, t, false)));
  // Many small GEMMs: a depthwise layer (256 groups of one channel and one filter, 14 x 14).
  cost_profile so_far = c.profile();
  so_far.set_value("im2col.gemm_call_s", 0.0);
  const conv_problem depthwise =
      calibration::problem(1, 256, 256, 14, 14, 3, 3, 1, 1, algorithm::im2col, 1, t, true, 256);
  const double predicted = im2col_cost(depthwise, so_far);
  c.set("im2col.gemm_call_s", std::max(0.0, (c.seconds(depthwise) - predicted) / 256.0));
  // Grouped layers of a few channels per group, against the model so far.
  so_far = c.profile();
  so_far.set_value("im2col.grouped_scale", 1.0);
  const conv_problem grouped = calibration::grouped_layer(algorithm::im2col, 1, t);
  const double call = profile_value(so_far, "im2col.call_s", 3e-6);
  c.set("im2col.grouped_scale", std::max(1e-3, (c.seconds(grouped) - call) / (im2col_cost(grouped, so_far) - call)));
}

/// The BLAS this program links, the library the profile's im2col.* values were measured with.
inline std::string im2col_library() {
#if defined(OPENBLAS_VERSION)
  std::string v = OPENBLAS_VERSION;  // " OpenBLAS 0.3.21 "
  v.erase(0, v.find_first_not_of(' '));
  v.erase(v.find_last_not_of(' ') + 1);
  for (char& ch : v)
    if (ch == ' ') ch = '-';
  return "im2col=" + v;
#else
  return "im2col=cblas";
#endif
}

inline const backend im2col_backend{algorithm::im2col,    "convkit::blas",   &im2col_cost,   &make_im2col<float>,
                                    &make_im2col<double>, &im2col_calibrate, &im2col_library};
inline const bool im2col_registered = register_backend(im2col_backend);

}  // namespace detail
CONVKIT_NAMESPACE_END
