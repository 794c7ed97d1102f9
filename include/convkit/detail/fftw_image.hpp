// The fft backend on a single plane (one image, one filter), with overlap-save tiles:
//   made once   the tile plan (fftw_cost.hpp), FFTW plans from the shared cache, one buffer per
//               worker, and the kernel spectrum: padded_kernel, r2c, scaled by 1 / (N_r N_c) so
//               that the unnormalised c2r needs no scaling pass;
//   per tile    convkit::extend writes the tile's window of the extended input into the worker's
//               buffer, r2c, element-wise product with the kernel spectrum, c2r, and the (strided)
//               results (plus the bias) go to the output. Tiles are spread over the workers; a
//               single transform uses FFTW's own threads instead.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>

#include "../padding.hpp"
#include "backend.hpp"
#include "choice.hpp"
#include "fft_sizes.hpp"
#include "fftw_cost.hpp"
#include "fftw_traits.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

template <class T>
class fftw_image_executor final : public executor<T> {
 public:
  fftw_image_executor(const conv_problem& p, const T* kernel, const T* bias) : p_(p), fill_(p.fill<T>()) {
    const cost_profile& profile = costs_of(p);
    tiles_ = fftw_tile_plan(p, profile);
    const fft::spectrum_layout layout = tiles_.layout();
    check_fftw_size(layout);
    const double single =
        fft::plan_seconds(tiles_.tiles(), layout.rows, layout.cols, 1, fftw_model(profile), sizeof(T));
    const int useful = fftw_useful_threads(single, p.threads);
    workers_ = static_cast<int>(std::min<index_t>(useful, tiles_.tiles()));
    plans_ = fftw_cached_plans<T>(layout, tiles_.tiles() == 1 ? useful : 1, fftw_flags(p.tune.fft.planning));
    // Each worker's buffer starts on a 64-byte boundary: FFTW planned on aligned scratch and may use
    // aligned SIMD loads, so new-array execution needs the same alignment.
    buffer_stride_ = (layout.real_count() + aligned_elements - 1) / aligned_elements * aligned_elements;
    buffers_ = aligned_zeros<T>(checked_mul(workers_, buffer_stride_, "fft workspace"), "fft workspace");
    spectrum_ = aligned_zeros<T>(layout.real_count(), "fft kernel spectrum");
    padded_kernel<T>(view2d<const T>(kernel, p.rows.kernel, p.cols.kernel), real_view(spectrum_.get()),
                     tiles_.placement(true, p.rows.dilation, p.cols.dilation));
    plans_->forward(spectrum_.get());
    const T scale = T(1) / (T(layout.rows) * T(layout.cols));
    for (index_t i = 0; i < layout.real_count(); ++i) spectrum_[i] *= scale;
    bias_ = bias != nullptr ? *bias : T(0);
  }

  void execute(planes<const T> in, planes<T> out) override { run(in, out, nullptr); }

  bool execute_finite(planes<const T> in, planes<T> out) override {
    std::atomic<bool> spoiled{false};
    run(in, out, &spoiled);
    return !spoiled.load();
  }

 private:
  view2d<T> real_view(T* buffer) const {
    const fft::spectrum_layout& l = tiles_.layout();
    return view2d<T>(buffer, l.rows, l.cols, l.real_row_stride());
  }

  // `spoiled`: if not null, each tile's transform is checked for having met NaN or Inf; once one
  // has, the remaining tiles are skipped.
  void run(planes<const T> in, planes<T> out, std::atomic<bool>* spoiled) {
    const view2d<const T> image = in.view(0, 0, p_.rows.in, p_.cols.in);
    const view2d<T> result = out.view(0, 0, p_.rows.out, p_.cols.out);
    const index_t tiles = tiles_.tiles();
    parallel_chunks(tiles, workers_, [&](index_t worker, index_t t0, index_t t1) {
      T* buffer = buffers_.get() + worker * buffer_stride_;
      for (index_t t = t0; t < t1; ++t) {
        if (spoiled != nullptr && spoiled->load(std::memory_order_relaxed)) return;
        run_tile(t, image, result, buffer, spoiled);
      }
    });
  }

  void run_tile(index_t t, view2d<const T> in, view2d<T> out, T* buffer, std::atomic<bool>* spoiled) const {
    const fft::axis_tiles& ar = tiles_.rows;
    const fft::axis_tiles& ac = tiles_.cols;
    const index_t tr = t / ac.tiles, tc = t % ac.tiles;
    const view2d<T> real = real_view(buffer);
    extend<T>(in, real, ar.read_top(tr), ac.read_top(tc), p_.edge, fill_);
    fft::clear_beyond_extent(real, ar, ac, tiles_.circular, tr, tc, p_.rows.extent, p_.cols.extent);
    plans_->forward(buffer);
    if (spoiled != nullptr && transform_met_nonfinite(buffer)) {
      spoiled->store(true);
      return;
    }
    multiply_spectra(buffer, spectrum_.get(), plans_->layout().complex_count());
    plans_->inverse(buffer);
    const fft::tile_outputs orow = ar.outputs(tr), ocol = ac.outputs(tc);
    for (index_t i = 0; i < orow.count; ++i) {
      const T* src = real.row(orow.local + i * ar.stride) + ocol.local;
      T* dst = out.row(orow.first + i) + ocol.first;
      if (ac.stride == 1) {
        for (index_t j = 0; j < ocol.count; ++j) dst[j] = src[j] + bias_;
      } else {
        for (index_t j = 0; j < ocol.count; ++j) dst[j] = src[j * ac.stride] + bias_;
      }
    }
  }

  // a[i] *= b[i] for n complex numbers stored as (re, im) pairs.
  static void multiply_spectra(T* __restrict a, const T* __restrict b, index_t n) noexcept {
    for (index_t i = 0; i < n; ++i) {
      const T ar = a[2 * i], ai = a[2 * i + 1], br = b[2 * i], bi = b[2 * i + 1];
      a[2 * i] = ar * br - ai * bi;
      a[2 * i + 1] = ar * bi + ai * br;
    }
  }

  static constexpr index_t aligned_elements = index_t(64 / sizeof(T));

  conv_problem p_;
  T fill_;
  T bias_ = T(0);
  fft::tile_plan tiles_;
  int workers_ = 1;
  index_t buffer_stride_ = 0;  // elements from one worker's buffer to the next: real_count rounded up to 64 bytes
  std::shared_ptr<const fftw_plan_pair<T>> plans_;
  std::unique_ptr<T[], aligned_free> buffers_, spectrum_;
};

}  // namespace detail
CONVKIT_NAMESPACE_END
