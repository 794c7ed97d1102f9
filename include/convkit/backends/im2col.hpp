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
#include <vector>

#include "../detail/backend.hpp"
#if CONVKIT_BACKEND_IMPLEMENTATION  // the executors: not in a program built against the compiled library
#include "../detail/calibration.hpp"
#include "../detail/im2col_impl.hpp"
#endif
#include "../tuning.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace im2col {

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

#if CONVKIT_BACKEND_IMPLEMENTATION
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

/// Cost model, in seconds (constants: im2col_costs): call_s per call, plus: the GEMM runs at
/// gemm_macs_per_s (one thread) scaled by m / (m + 12) for its row count m (the filters per group),
/// or at vector_macs_per_s for m = 1 (a memory-bound matrix-vector product: single images, depthwise
/// layers), lowering costs lower_s per column-matrix element, each GEMM call gemm_call_s, and all of
/// it divides over the threads.
inline double im2col_cost(const conv_problem& p, const cost_profile& profile) {
  if (p.sparse()) return never;
  const im2col_costs& m = profile.im2col;
  const im2col_shape s{p.rows, p.cols, p.c_per_group(), p.k_per_group(), p.groups, p.packed_input};
  const double lowered =
      s.one_by_one() ? 0.0
                     : double(p.n) * double(p.groups) * double(s.depth()) * double(p.rows.out) * double(p.cols.out);
  const double rows = double(p.k_per_group());
  const double rate = rows == 1 ? double(m.vector_macs_per_s) : m.gemm_macs_per_s * rows / (rows + 12);
  const double gemm_calls = double(p.n) * double(p.groups);  // at least one per image and group
  // Layers of a few channels per group: small GEMMs on column matrices that stay in cache, which the
  // dense layers' constants overestimated by 1.4-3x (measured apart: grouped_scale).
  const double kind = p.groups > 1 && p.c_per_group() > 1 ? double(m.grouped_scale) : 1.0;
  return m.call_s + kind * (p.macs() / rate + lowered * m.lower_s + gemm_calls * m.gemm_call_s) / p.threads;
}

/// Every constant of the im2col model, on one thread, with OpenBLAS's threads as the process runs
/// them (tuning::single_threaded_blas's default): the GEMM rate on a 1x1 layer (no lowering: 64
/// filters x 64 channels x 56 x 56 positions); the lowering cost per column-matrix element from a
/// 3x3 layer (with what a lowered GEMM loses against the 1x1 one, a deep column matrix packed by the
/// BLAS: 128 -> 128 channels, 28 x 28); a tiny call's time; the matrix-vector rate from a single
/// image (512 x 512, 5 x 5); a GEMM call's from a depthwise layer (256 groups of one channel and one
/// filter, 14 x 14); a grouped layer's scale against the model.
inline im2col_costs measure_im2col(calibration& c) {
  c.step("im2col: GEMM rate and lowering cost, 1 thread");
  im2col_costs m;
  cost_profile so_far;
  const auto on_one = [](timed_problem q) { return q.on(algorithm::im2col, 1).make(); };
  const conv_problem gemm = on_one(timed_problem::layer(1, 64, 64).planes(56).kernel(1));
  const double rows = double(gemm.k_per_group());
  m.gemm_macs_per_s.measure(gemm.macs() / c.seconds(gemm) / (rows / (rows + 12)));
  const conv_problem lowering = on_one(timed_problem::layer(1, 128, 128).planes(28).kernel(3));
  const double elements = double(lowering.c * 9) * double(lowering.rows.out * lowering.cols.out);
  const double gemm_part = lowering.macs() / (m.gemm_macs_per_s * rows / (rows + 12));
  m.lower_s.measure(std::max(1e-12, (c.seconds(lowering) - gemm_part) / elements));
  m.call_s.measure(c.seconds(on_one(timed_problem::image(16).kernel(3))));
  const conv_problem image = on_one(timed_problem::image(512).kernel(5));
  const double image_lowered = double(image.rows.out) * double(image.cols.out) * 25;
  m.vector_macs_per_s.measure(image.macs() / std::max(1e-9, c.seconds(image) - m.call_s - image_lowered * m.lower_s));
  so_far.im2col = m;
  so_far.im2col.gemm_call_s.measure(0.0);
  const conv_problem depthwise = on_one(timed_problem::layer(1, 256, 256).planes(14).kernel(3).grouped(256));
  m.gemm_call_s.measure(std::max(0.0, (c.seconds(depthwise) - im2col_cost(depthwise, so_far)) / 256.0));
  so_far.im2col = m;
  so_far.im2col.grouped_scale.measure(1.0);
  const conv_problem grouped = on_one(timed_problem::layer(2, 64, 64).planes(32).kernel(3).grouped(16));
  m.grouped_scale.measure(std::max(1e-3, (c.seconds(grouped) - m.call_s) / (im2col_cost(grouped, so_far) - m.call_s)));
  return m;
}

/// The im2col model has no rule between its constants beyond their ranges.
inline std::vector<const constant*> im2col_broken_rules(const im2col_costs&) { return {}; }

inline void im2col_calibrate(calibration& c, cost_profile& into, const cost_profile& previous) {
  into.im2col = measure_plausibly(
      c, previous.im2col, [&] { return measure_im2col(c); }, &im2col_broken_rules);
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

inline const backend im2col_backend{algorithm::im2col,    &im2col_cost,      &make_im2col<float>,
                                    &make_im2col<double>, &im2col_calibrate, &im2col_library};
inline const bool im2col_registered = register_backend(im2col_backend);

}  // namespace detail
CONVKIT_NAMESPACE_END
#endif  // CONVKIT_BACKEND_IMPLEMENTATION
