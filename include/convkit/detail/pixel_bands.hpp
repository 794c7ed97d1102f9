// A single-image problem run on interleaved pixel images (image.hpp): output rows go in bands
// (row_bands.hpp), each band's input rows converted from the pixels into a buffer of the compute
// type T as they are gathered, and its outputs converted back into the output's pixels (pixels.hpp),
// so no whole plane of T is ever made and every backend computes pixels of every type alike.
//
//   interleaved   (column stride 1, the usual case) all C channels at once: each gathered row is
//                 the row extended along the columns by the border rule, channel by channel, and the
//                 band problem reads it as one plane C times as wide with the kernel's columns
//                 dilated by C more, so channel ch's taps read channel ch, every output row comes out
//                 interleaved as the image stores it, and the executor reads its input in place;
//   per channel   (a column stride, or a column axis mostly unread) one channel at a time, the band
//                 problem the image's own.
// Bands (of all channels) go to the threads in chunks; every thread has its own executors (one per
// band shape: the full bands and the last) and buffers, made with the plan. The bands may cover a
// range of the output rows only (a rank's share of a distributed image, distributed/mpi.hpp), and
// their input rows may come from anywhere (a row accessor).
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <limits>
#include <vector>

#include "../image.hpp"
#include "../padding.hpp"
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
  /// `global`: the whole image's problem (single plane); `weights`: its kernel in correlation order;
  /// `channels`: the images' channels (1 to 4) it will run on; output rows [first_out, last_out)
  /// are computed (all of them by default).
  pixel_bands(const conv_problem& global, const T* weights, index_t channels)
      : pixel_bands(global, weights, channels, 0, global.rows.out) {}
  pixel_bands(const conv_problem& global, const T* weights, index_t channels, index_t first_out, index_t last_out)
      : global_(global),
        channels_(channels),
        interleaved_(global.cols.stride == 1 && !global.cols.sparse() &&
                     (global.cols.kernel == 1 ||
                      index_t(global.cols.dilation) * channels <= index_t(std::numeric_limits<int>::max()))),
        fill_(global.fill<T>()) {
    // A transform asked for by name refuses a sparse image as it does on float planes, though a
    // band of it might not be sparse on its own.
    if (global_.algo == algorithm::fft || global_.algo == algorithm::cufft)
      refuse_sparse(global_.sparse(), global_.algo == algorithm::fft ? "fft" : "cufft");
    resolve_profile(global_);
    const settings& tune = global_.tune;  // every band decides its own path alike: the full bands share one shape
    if (last_out <= first_out) return;
    const index_t band_rows = std::min(last_out - first_out, band_height(global_, interleaved_ ? channels_ : 1));
    for (index_t first = first_out; first < last_out; first += band_rows)
      bands_.emplace_back(global_, first, std::min(last_out, first + band_rows));
    if (interleaved_) column_sources();
    const conv_problem full = band_problem(bands_.front(), tune), last = band_problem(bands_.back(), tune);
    const bool uneven = last.rows.out != full.rows.out;
    const index_t items = index_t(bands_.size()) * (interleaved_ ? 1 : channels_);
    workers_.resize(std::size_t(std::min<index_t>(global_.threads, items)));
    for (worker& w : workers_) {
      w.full = prepared<T>(full, weights, nullptr);
      if (uneven) w.last = prepared<T>(last, weights, nullptr);
      w.in = array2d<T>(full.rows.in, full.cols.in);
      w.out = array2d<T>(full.rows.out, full.cols.out);
    }
  }

  /// out = the problem applied to every channel of `in`; the caller has checked shapes, channels
  /// (those given when this was made) and aliasing.
  template <class P, class Q>
  void run(image_view<const P> in, image_view<Q> out) {
    run_rows<P, Q>([&](index_t row) { return in.row(row); }, [&](index_t row) { return out.row(row); });
  }

  /// The same from row accessors: in_row(g) points at input row g's pixels (cols x channels, a
  /// P*), out_row(o) at output row o's (a Q*), for o in the rows given at construction.
  template <class P, class Q, class InRow, class OutRow>
  void run_rows(const InRow& in_row, const OutRow& out_row) {
    if (bands_.empty()) return;
    const index_t per_band = interleaved_ ? 1 : channels_, items = index_t(bands_.size()) * per_band;
    const int threads = int(std::min<index_t>(index_t(workers_.size()), items));
    parallel_chunks(items, threads, [&](index_t slice, index_t i0, index_t i1) {
      worker& w = workers_[std::size_t(slice)];
      for (index_t i = i0; i < i1; ++i) {
        const row_band& band = bands_[std::size_t(i / per_band)];
        if (interleaved_)
          run_interleaved<P, Q>(w, band, in_row, out_row);
        else
          with_channels(channels_,
                        [&](auto c) { run_channel<decltype(c)::value, P, Q>(w, band, i % per_band, in_row, out_row); });
      }
    });
  }

 private:
  struct worker {
    prepared<T> full, last;
    array2d<T> in, out;  // one band's input rows and output rows
  };

  // Output rows per band: enough that a band's executor works as on a whole image (an FFT backend's
  // tiles, the direct backend's row blocks; at least 4 kernel spans, so that the rows read twice
  // stay a small part), few enough that a band's buffers stay in cache and there are bands for
  // every thread. Below a transform's size the input buffer is held to `band_bytes`, whatever the
  // width and channels: 8-bit RGB at 1920 columns ran 3x3, 5x5 and 7x7 filters 20-30% faster
  // in 16-row bands (368 KB of float) than in 64-row ones (1.5 MB), gray 3840 columns 15-25% faster
  // (one thread, this project's 2-vCPU Xeon, 2 MiB L2); transform-sized kernels gained nothing.
  static index_t band_height(const conv_problem& g, index_t channels) {
    const index_t floor_rows = 4 * g.rows.span;
    const bool transforms = g.algo == algorithm::fft || g.algo == algorithm::cufft ||
                            (g.algo == algorithm::automatic && g.rows.kernel * g.cols.kernel >= 15 * 15);
    if (transforms) return std::max<index_t>(256, floor_rows);
    constexpr index_t band_bytes = index_t(256) << 10;
    const index_t row_bytes = std::max<index_t>(1, g.cols.in * channels * index_t(sizeof(T)));
    return std::max<index_t>(std::clamp<index_t>(band_bytes / row_bytes, 1, 64), floor_rows);
  }

  // The band's problem; interleaved, its columns are the extended columns of every channel, read
  // as they are (valid), with the kernel's dilation times the channels.
  conv_problem band_problem(const row_band& band, const settings& tune) const {
    conv_problem p = band.problem(tune);
    p.threads = 1;  // the bands are the threads' work
    p.amortised = true;
    if (interleaved_) {
      axis_geometry& c = p.cols;
      c.in = c.extent * channels_;
      // A one-column kernel reads no other column, whatever its dilation (which may be any int).
      c.dilation = c.kernel == 1 ? 1 : int(index_t(c.dilation) * channels_);
      c.span = (c.kernel - 1) * c.dilation + 1;
      c.out *= channels_;
      c.pad_before = 0;
      c.extent = c.in;
      p.edge = border::zero;  // nothing outside is read
    }
    return p;
  }

  // The image column each extended column reads (-1: the border value), and the run of them that is
  // the image itself in order.
  void column_sources() {
    const axis_geometry& c = global_.cols;
    sources_.resize(std::size_t(c.extent));
    for (index_t e = 0; e < c.extent; ++e)
      sources_[std::size_t(e)] = border_index(e - c.pad_before, c.in, global_.edge);
    inside_begin_ = std::clamp<index_t>(c.pad_before, 0, c.extent);
    inside_end_ = std::clamp<index_t>(c.pad_before + c.in, inside_begin_, c.extent);
  }

  // Image row `row` extended along the columns, every channel, into `to` (extent x C values).
  template <class P, class Q>
  void load_extended_row(const pixel_rows<P, T, Q>& rows, const P* row, T* to) const {
    const index_t C = channels_;
    rows.load(row + (inside_begin_ - global_.cols.pad_before) * C, (inside_end_ - inside_begin_) * C,
              to + inside_begin_ * C);  // the image's own columns, in order
    for (index_t e = 0; e < index_t(sources_.size()); ++e) {
      if (e == inside_begin_) e = inside_end_;
      if (e == index_t(sources_.size())) break;
      const index_t s = sources_[std::size_t(e)];
      for (index_t ch = 0; ch < C; ++ch) to[e * C + ch] = s < 0 ? fill_ : T(row[s * C + ch]);
    }
  }

  template <class P, class Q, class InRow, class OutRow>
  void run_interleaved(worker& w, const row_band& band, const InRow& in_row, const OutRow& out_row) {
    const pixel_rows<P, T, Q> kernels = pixel_rows_for<P, T, Q>(global_.tune.instruction_set);
    const std::vector<index_t>& rows = band.sources();
    const index_t width = w.in.cols();
    for (std::size_t r = 0; r < rows.size(); ++r) {
      T* to = w.in.data() + index_t(r) * width;
      if (rows[r] < 0)
        std::fill(to, to + width, fill_);
      else
        load_extended_row(kernels, in_row(rows[r]), to);
    }
    compute(w, band, index_t(rows.size()), width);
    const index_t out_width = w.out.cols();
    for (index_t r = 0; r < band.last() - band.first(); ++r)
      kernels.store(w.out.data() + r * out_width, out_width, out_row(band.first() + r));
  }

  template <int C, class P, class Q, class InRow, class OutRow>
  void run_channel(worker& w, const row_band& band, index_t ch, const InRow& in_row, const OutRow& out_row) {
    const std::vector<index_t>& rows = band.sources();
    const index_t cols = global_.cols.in;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      T* to = w.in.data() + index_t(r) * cols;
      if (rows[r] < 0)
        std::fill(to, to + cols, fill_);
      else
        load_channel<C>(in_row(rows[r]), ch, cols, to);
    }
    compute(w, band, index_t(rows.size()), cols);
    const index_t out_cols = global_.cols.out;
    for (index_t r = 0; r < band.last() - band.first(); ++r)
      store_channel<C>(w.out.data() + r * out_cols, out_cols, out_row(band.first() + r), ch);
  }

  // The band's outputs from the gathered rows in w.in (rows x width).
  void compute(worker& w, const row_band& band, index_t rows, index_t width) {
    const index_t outputs = band.last() - band.first();
    prepared<T>& e = outputs == w.full.problem().rows.out ? w.full : w.last;
    e.run(planes_of(view2d<const T>(w.in.data(), rows, width)),
          planes_of(view2d<T>(w.out.data(), outputs, w.out.cols())));
  }

  conv_problem global_;
  index_t channels_ = 1;
  bool interleaved_ = true;
  T fill_ = T(0);
  std::vector<row_band> bands_;
  std::vector<index_t> sources_;               // interleaved: the image column of each extended column
  index_t inside_begin_ = 0, inside_end_ = 0;  // interleaved: the extended columns that are the image's
  std::vector<worker> workers_;
};

}  // namespace detail
CONVKIT_NAMESPACE_END
