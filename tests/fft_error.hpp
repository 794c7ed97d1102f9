// The error model of the FFT backends (fft and cufft), the one every test of them uses: a transform
// rounds each value O(log2 N) times and spreads the error evenly, so the bound is global
// (error_model::global in problems.hpp),
//   fft_error_factor * eps * log2(N_r * N_c) * scale,
// for the transform size N_r x N_c the backend uses, where scale is
//   single images  ||extended input||_2 * ||kernel||_2;
//   layers         ||w_k||_2 * sqrt(sum over the group's channels of ||extended input plane||_2^2)
//                  (the per-channel errors sum in the frequency domain to at most that, by
//                  Cauchy-Schwarz), plus |bias|.
// The worst seen over many seeds with the fft backend is about 0.2 of this bound for single images
// and 0.42 for layers (float and double, untiled, tiled and forced small tiles).
//
// The transform size: the fft backend's actual tile plan under the current fftw::config; for cufft,
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

inline detail::problem problem_of(const problem_case& c) {
  detail::problem p{detail::make_geometry(c.rows, c.cols, c.k_rows, c.k_cols, c.opt), c.opt, true};
  p.opt.threads = detail::resolve_threads(c.opt.threads);
  return p;
}

inline detail::layer_problem layer_problem_of(const layer_case& c) {
  detail::layer_problem p{detail::make_layer_geometry(c.input(), c.weights(), c.opt), c.opt, true};
  p.opt.threads = detail::resolve_threads(c.opt.threads);
  return p;
}

#if defined(CONVKIT_HAS_FFTW)
/// The transform the fft backend uses for case c in precision T under the current fftw::config.
template <class T>
detail::fft::tile_plan tile_plan_of(const problem_case& c) {
  return detail::fftw_tile_plan(problem_of(c), sizeof(T), fftw::get_config());
}
template <class T>
detail::fft::tile_plan layer_tile_plan_of(const layer_case& c) {
  return detail::fftw_layer_plan(layer_problem_of(c), sizeof(T), fftw::get_config()).tiles;
}

/// The error models of a single image and of a layer on the fft backend.
template <class T>
error_model fft_error(const problem_case& c) {
  return fft_transform_error(tile_plan_of<T>(c));
}
template <class T>
error_model fft_layer_error(const layer_case& c) {
  return fft_transform_error(layer_tile_plan_of<T>(c));
}
#endif

#if defined(CONVKIT_HAS_CUFFT)
/// The error models of a single image and of a layer on the cufft backend. A single image's tiles
/// are never larger than the untiled transform or, for the circular shortcut, the image.
inline error_model cufft_error(const problem_case& c) {
  const detail::geometry g = problem_of(c).geo;
  return fft_transform_error(std::max(detail::fft::next_fast_size(g.rows.extent), g.rows.in),
                             std::max(detail::fft::next_fast_size(g.cols.extent), g.cols.in));
}
inline error_model cufft_layer_error(const layer_case& c) {
  return fft_transform_error(detail::cufft_layer_tiles(layer_problem_of(c), 4));
}
#endif

}  // namespace convkit::testing
