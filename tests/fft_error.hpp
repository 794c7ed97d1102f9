// The error model of the FFT backends (fft and cufft), the one every test of them uses: a transform
// rounds each value O(log2 N) times and spreads the error evenly, so the bound is global
// (error_model::global in problems.hpp),
//   fft_error_factor * eps * log2(N_r * N_c) * scale,
// for the transform size N_r x N_c the backend uses, where scale is
//   ||w_k||_2 * sqrt(sum over the group's channels of ||extended input plane||_2^2) + |bias|
//   (the per-channel errors sum in the frequency domain to at most that, by Cauchy-Schwarz; for a
//   single image ||extended input||_2 * ||kernel||_2).
// The worst seen over many seeds with the fft backend is about 0.2 of this bound for single images
// and 0.42 for layers (float and double, untiled, tiled and forced small tiles).
//
// The transform size: the fft backend's actual tile plan under the case's tuning; for cufft,
// whose tiles depend on the device's free memory, an upper bound for single images (the untiled
// transform, or the image for the circular shortcut), and layers are always untiled.
#pragma once

#include <convkit/convkit.hpp>
#include <convkit/detail/fft_sizes.hpp>
#include <convkit/layer_options.hpp>

#include <algorithm>
#include <cmath>

#include "problems.hpp"

namespace convkit::testing {

constexpr double fft_error_factor = 1.0;

inline error_model fft_transform_error(index_t n_rows, index_t n_cols) {
  return {0.0, fft_error_factor * std::log2(std::max(4.0, double(n_rows) * double(n_cols)))};
}
inline error_model fft_transform_error(const detail::fft::tile_plan& t) {
  return fft_transform_error(t.rows.transform, t.cols.transform);
}

#if defined(CONVKIT_HAS_FFTW)
/// The transform the fft backend uses for problem p (its tuning's fft settings).
inline detail::fft::tile_plan fftw_tiles_of(const detail::conv_problem& p) {
  const auto profile = active_profile();
  return p.single_plane() ? detail::fftw_tile_plan(p, *profile) : detail::fftw_batch_plan(p, *profile).tiles;
}

/// The error model of case c on the fft backend in precision T.
template <class T>
error_model fft_error(const conv_case& c) {
  return fft_transform_error(fftw_tiles_of(problem_of<T>(c)));
}
#endif

#if defined(CONVKIT_HAS_CUFFT)
/// The error model of case c on the cufft backend. A single plane's tiles are never larger than the
/// untiled transform or, for the circular shortcut, the image; batches are untiled.
inline error_model cufft_error(const conv_case& c) {
  const detail::conv_problem p = problem_of<float>(c);
  if (!p.single_plane()) return fft_transform_error(detail::cufft_batch_tiles(p));
  return fft_transform_error(std::max(detail::fft::next_fast_size(p.rows.extent), p.rows.in),
                             std::max(detail::fft::next_fast_size(p.cols.extent), p.cols.in));
}
#endif

/// The error model of case c on backend `a` in precision T: a transform's for fft and cufft, the
/// direct sum's for every other.
template <class T>
error_model error_of([[maybe_unused]] algorithm a, const conv_case& c) {
#if defined(CONVKIT_HAS_FFTW)
  if (a == algorithm::fft) return fft_error<T>(c);
#endif
#if defined(CONVKIT_HAS_CUFFT)
  if (a == algorithm::cufft) return cufft_error(c);
#endif
  return direct_error(c);
}

}  // namespace convkit::testing
