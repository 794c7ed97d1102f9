// convkit/dispatch.hpp - which backend serves a call.
//
// An explicitly named algorithm is used if this program has it, and otherwise throws
// convkit::unavailable naming the algorithm and the CMake target that provides it.
// algorithm::automatic asks every backend in the program for its cost estimate for the problem
// (seconds, from each backend's own model; +inf where it cannot or should not serve it, e.g. fft
// when the data hold NaN or Inf, since an FFT smears one NaN over the whole output) and takes the
// cheapest. The models are written next to each backend; the README tabulates what they pick.
//
// Layers follow the same rule among the backends that compute layers (backend::computes_layers):
// an explicit algorithm without layer support throws convkit::unavailable, and automatic takes the
// backend with the smallest layer_cost (seconds, each backend's own model; on a tie the earlier
// algorithm in enum order, so direct wins ties).
#pragma once

#include <string>

#include "detail/backend.hpp"
#include "detail/threads.hpp"

namespace convkit {

namespace detail {
inline const char* target_of(algorithm a) noexcept {
  switch (a) {
    case algorithm::im2col: return "convkit::blas";
    case algorithm::fft: return "convkit::fftw";
    case algorithm::cufft: return "convkit::cufft";
    default: return "convkit::convkit";
  }
}

inline const backend& find_backend(algorithm a) {
  const auto slot = static_cast<std::size_t>(a);
  if (slot >= backend_table().size())
    throw error("algo: not a convkit::algorithm (value " + std::to_string(static_cast<int>(a)) + ")");
  const backend* b = backend_table()[slot];
  if (b == nullptr)
    throw unavailable(std::string("algorithm::") + to_string(a) + " is not in this build: link the CMake target " +
                      target_of(a) + " and include <convkit/convkit.hpp>");
  return *b;
}

/// The backend for problem p (never automatic).
inline const backend& choose_backend(const problem& p) {
  if (p.opt.algo != algorithm::automatic) return find_backend(p.opt.algo);
  const backend* best = nullptr;
  double best_cost = never;
  for (const backend* b : backend_table()) {
    if (b == nullptr) continue;
    const double c = b->cost(p);
    if (best == nullptr || c < best_cost) {
      best = b;
      best_cost = c;
    }
  }
  if (best == nullptr) throw unavailable("no convolution backend is registered in this program");
  return *best;
}

/// The backend for layer problem p (never automatic).
inline const backend& choose_layer_backend(const layer_problem& p) {
  if (p.opt.algo != algorithm::automatic) {
    const backend& b = find_backend(p.opt.algo);
    if (!b.computes_layers())
      throw unavailable(std::string("algorithm::") + to_string(p.opt.algo) +
                        " does not compute convolution layers in this build");
    return b;
  }
  const backend* best = nullptr;
  double best_cost = never;
  for (const backend* b : backend_table()) {
    if (b == nullptr || !b->computes_layers()) continue;
    const double c = b->layer_cost(p);
    if (best == nullptr || c < best_cost) {
      best = b;
      best_cost = c;
    }
  }
  if (best == nullptr) throw unavailable("no backend that computes convolution layers is registered in this program");
  return *best;
}
}  // namespace detail

/// The algorithm that algorithm::automatic picks for this problem in this program (for reports).
inline algorithm automatic_choice(index rows, index cols, index k_rows, index k_cols, const options& opt) {
  detail::problem p{detail::make_geometry(rows, cols, k_rows, k_cols, opt), opt, true};
  p.opt.algo = algorithm::automatic;
  p.opt.threads = detail::resolve_threads(opt.threads);
  return detail::choose_backend(p).algo;
}

}  // namespace convkit
