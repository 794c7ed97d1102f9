// The im2col backend's cost model (constants: im2col_costs, cost_models.hpp).
#pragma once

#include "../version.hpp"

#include "../profile.hpp"
#include "backend.hpp"
#include "im2col_impl.hpp"
#include "problem.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// Cost model, in seconds (constants: im2col_costs): call_s per call, plus: the GEMM runs at
/// gemm_macs_per_s (one thread) scaled by m / (m + 12) for its row count m (the filters per group),
/// or at vector_macs_per_s for m = 1 (a memory-bound matrix-vector product: single images, depthwise
/// layers), lowering costs lower_s per column-matrix element, each GEMM call gemm_call_s, and all of
/// it divides over the threads the work pays for (an extra thread from 4e6 multiply-adds, as the
/// direct backend's), each extra one counted as 0.9 of the first: bench_layers on the AVX-512 Xeon
/// measured 1.87x on ResNet's 64 -> 64 layer with two, and nothing gained on a depthwise layer of
/// 0.9e6 multiply-adds or a ResNeXt layer of 3.6e6, which a full second thread made look 2x faster
/// than they run.
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
  const int threads = useful_threads(p.macs(), p.threads, 4e6);
  return m.call_s +
         kind * (p.macs() / rate + lowered * m.lower_s + gemm_calls * m.gemm_call_s) / (1.0 + 0.9 * (threads - 1));
}

}  // namespace detail
CONVKIT_NAMESPACE_END
