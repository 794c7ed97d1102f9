// convkit/backends/direct.hpp - algorithm::direct: the definition, computed fast. No dependencies;
// part of convkit::convkit. <convkit/convkit.hpp> includes it, which registers the backend.
//
//   1. Borders are applied by the padding module (convkit::extend), so the hot loop never tests an
//      index: for a single image to one band of input rows at a time, just before the band is used,
//      so the whole extended image is never materialised (skipped when the output reads only the
//      image); for a batch (a layer) to every input plane once per call, into the plan's workspace.
//   2. A column stride s > 1 splits the extended rows into s phase planes (columns p, p+s, ...), so
//      every kernel tap reads consecutive elements whatever the stride and dilation.
//   3. Output rows that read shared input rows are grouped; a register-blocked micro-kernel
//      (detail/direct_kernel.inl) computes up to 6 rows x 2-4 vectors at once (AVX2 kernels of
//      2-6 rows: a stream of ~32 rows, its accumulators a ring), compiled for AVX-512, AVX2+FMA
//      and portable C++ and chosen at run time (tuning::instruction_set, cpu.hpp).
//   4. Batches (layers) run a register tile of filters x output positions over every input channel
//      of their group, with the weights packed by the plan and each input plane extended and split
//      into its stride phases once per call (detail/direct_layer.hpp, detail/layer_kernel.inl); a
//      dilation that leaves those planes far wider than the output rows sums the plane
//      correlations over each filter's channels in the output plane instead.
//   5. Low-rank kernels (a Gaussian, Sobel, a LoG) run as 1-D passes where that is cheaper
//      (detail/direct_separable.hpp; the choice is the cost model's).
// The executor is in detail/direct_executor.hpp, the cost model in detail/direct_cost.hpp and its
// calibration in detail/direct_calibration.hpp.
// Public API: convkit::direct::instruction_set() and force_instruction_set(), the process default
// of tuning::instruction_set.
#pragma once

#include "../version.hpp"

#include "../cpu.hpp"
#include "../detail/backend.hpp"
#if CONVKIT_BACKEND_IMPLEMENTATION  // the executors: not in a program built against the compiled library
#include "../detail/direct_cost.hpp"
#include "../detail/direct_executor.hpp"
#endif
#include "../tuning.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace direct {

using isa = cpu::isa;
using cpu::best_instruction_set;
using cpu::to_string;

/// The process default of tuning::instruction_set: the instruction set plans use unless their
/// tuning names one.
inline isa instruction_set() { return convkit::detail::default_settings::get().instruction_set; }

/// Sets the process default of tuning::instruction_set for plans made from now on (tests and
/// benchmarks compare kernels this way). Throws convkit::unavailable if this CPU lacks `i`.
inline void force_instruction_set(isa i) {
  tuning t;
  t.instruction_set = i;
  set_default_tuning(t);
}

}  // namespace direct
CONVKIT_NAMESPACE_END

#if CONVKIT_BACKEND_IMPLEMENTATION
CONVKIT_NAMESPACE_BEGIN
namespace detail {

inline const backend direct_backend{algorithm::direct, &direct_cost, &make_direct<float>, &make_direct<double>};
inline const bool direct_registered = register_backend(direct_backend);

}  // namespace detail
CONVKIT_NAMESPACE_END
#endif  // CONVKIT_BACKEND_IMPLEMENTATION
