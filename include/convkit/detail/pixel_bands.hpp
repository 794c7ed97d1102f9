// A single-image problem run on interleaved pixel images (image.hpp): each channel's output rows go
// in bands (row_bands.hpp), each band's input rows converted from the pixels into a buffer of the
// compute type T as they are gathered, and its outputs converted back into the output's pixels
// (pixels.hpp), so no whole plane of T is ever made and every backend computes pixels of every type
// the same way. Bands of all channels go to the threads in chunks; every thread has its own
// executors (one per band shape: the full bands and the last) and buffers, made with the plan.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <vector>

#include "../image.hpp"
#include "choice.hpp"
#include "pixels.hpp"
#include "prepared.hpp"
#include "problem.hpp"
#include "row_bands.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

template <class T>
class pixel_bands {
 public:
  pixel_bands() = default;
  /// `global`: the whole image's problem (single plane); `weights`: its kernel in correlation order.
  pixel_bands(const conv_problem& global, const T* weights) : global_(global), tune_(band_tuning(global)) {
    resolve_profile(global_);
    const index_t out_rows = global_.rows.out;
    band_rows_ = std::min(out_rows, band_height(global_));
    for (index_t first = 0; first < out_rows; first += band_rows_)
      bands_.emplace_back(global_, first, std::min(out_rows, first + band_rows_));
    const conv_problem full = band_problem(bands_.front()), last = band_problem(bands_.back());
    const bool uneven = last.rows.out != full.rows.out;
    workers_.resize(std::size_t(std::min<index_t>(global_.threads, index_t(bands_.size()) * max_channels)));
    for (worker& w : workers_) {
      w.full = prepared<T>(full, weights, nullptr);
      if (uneven) w.last = prepared<T>(last, weights, nullptr);
      w.in = array2d<T>(full.rows.in, full.cols.in);
      w.out = array2d<T>(full.rows.out, full.cols.out);
    }
  }

  /// The backend the full bands run (never algorithm::automatic).
  algorithm chosen() const noexcept { return workers_.front().full.chosen(); }

  /// out = the problem applied to every channel of `in`; the caller has checked shapes, channels
  /// and aliasing.
  template <class P, class Q>
  void run(image_view<const P> in, image_view<Q> out) {
    const index_t channels = in.channels(), items = index_t(bands_.size()) * channels;
    const int threads = int(std::min<index_t>(index_t(workers_.size()), items));
    parallel_chunks(items, threads, [&](index_t slice, index_t i0, index_t i1) {
      worker& w = workers_[std::size_t(slice)];
      with_channels(channels, [&](auto c) {
        for (index_t i = i0; i < i1; ++i)
          run_band<decltype(c)::value>(w, bands_[std::size_t(i / channels)], i % channels, in, out);
      });
    });
  }

 private:
  struct worker {
    prepared<T> full, last;
    array2d<T> in, out;  // one band's input rows and output rows
  };

  // Output rows per band: enough that a band's executor works as on a whole image (an FFT backend's
  // tiles, the direct backend's row blocks), few enough that a band's buffers stay in cache and
  // there are bands for every thread.
  static index_t band_height(const conv_problem& g) {
    const bool transforms = g.algo == algorithm::fft || g.algo == algorithm::cufft ||
                            (g.algo == algorithm::automatic && g.rows.kernel * g.cols.kernel >= 15 * 15);
    return std::max<index_t>(transforms ? 256 : 64, 4 * g.rows.span);
  }

  conv_problem band_problem(const row_band& band) const {
    conv_problem p = band.problem(tune_);
    p.threads = 1;  // the bands are the threads' work
    p.amortised = true;
    return p;
  }

  template <int C, class P, class Q>
  void run_band(worker& w, const row_band& band, index_t ch, image_view<const P> in, image_view<Q> out) {
    const std::vector<index_t>& sources = band.sources();
    const index_t cols = global_.cols.in;
    const T fill = global_.fill<T>();
    for (std::size_t r = 0; r < sources.size(); ++r) {
      T* to = w.in.data() + index_t(r) * cols;
      if (sources[r] < 0)
        std::fill(to, to + cols, fill);
      else
        load_channel<C>(in.row(sources[r]), ch, cols, to);
    }
    const index_t rows = band.last() - band.first(), out_cols = global_.cols.out;
    prepared<T>& e = rows == w.full.problem().rows.out ? w.full : w.last;
    e.run(planes_of(view2d<const T>(w.in.data(), index_t(sources.size()), cols)),
          planes_of(view2d<T>(w.out.data(), rows, out_cols)));
    for (index_t r = 0; r < rows; ++r)
      store_channel<C>(w.out.data() + r * out_cols, out_cols, out.row(band.first() + r), ch);
  }

  conv_problem global_;
  settings tune_;
  index_t band_rows_ = 1;
  std::vector<row_band> bands_;
  std::vector<worker> workers_;
};

}  // namespace detail
CONVKIT_NAMESPACE_END
