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
#include "../detail/im2col_cost.hpp"
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

inline const backend im2col_backend{algorithm::im2col, &im2col_cost, &make_im2col<float>, &make_im2col<double>,
                                    &im2col_library};
inline const bool im2col_registered = register_backend(im2col_backend);

}  // namespace detail
CONVKIT_NAMESPACE_END
#endif  // CONVKIT_BACKEND_IMPLEMENTATION
