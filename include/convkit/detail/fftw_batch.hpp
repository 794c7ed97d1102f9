// The fft backend on a batch (N images of C channels, K filters, groups): each input plane is
// transformed once per call, each filter's per-channel spectra once per plan, the products are
// summed over each group's channels in the frequency domain, and each output plane is transformed
// back once.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>

#include "../padding.hpp"
#include "backend.hpp"
#include "choice.hpp"
#include "fft_sizes.hpp"
#include "fftw_cost.hpp"
#include "fftw_traits.hpp"
#include "spectrum_product.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// A batch (N images, C channels, K filters) through FFTW, per sweep of (image, tile) pairs:
///   1. each input channel plane (tile) of each image: convkit::extend writes the window of the
///      padded input, r2c; once per call;
///   2. per output channel k, frequency by frequency: the sum over the C/groups input channels of
///      its group of input spectrum times filter spectrum (spectrum_product.hpp); the filters'
///      spectra are made once, at construction: padded_kernel (flipped: the product of spectra is
///      a convolution and the weights are in correlation order), r2c, scaled by 1 / (N_r N_c);
///   3. one c2r per output channel plane (tile), then bias, stride subsampling and crop into out.
/// Phases 1 and 3 split the (pair, channel) planes over the threads, phase 2 the (frequency block,
/// group, range of pairs) items; plans hold every buffer, so execute() allocates nothing.
template <class T>
class fftw_batch_executor final : public executor<T> {
  static constexpr index_t block = spectrum_block<T>;

 public:
  fftw_batch_executor(const conv_problem& p, const T* weights, const T* bias)
      : p_(p), product_(spectrum_kernel_for<T>(p.tune.instruction_set)), fill_(p.fill<T>()) {
    const conv_problem& g = p;
    const cost_profile& profile = costs_of(p);
    l_ = fftw_batch_plan(p, profile);
    const fft::spectrum_layout layout = l_.tiles.layout();
    check_fftw_size(layout);
    plans_ = fftw_cached_plans<T>(layout, 1, fftw_flags(p.tune.fft.planning));
    const index_t filters = g.k * g.c_per_group();
    weights_ = aligned_zeros<T>(checked_mul(filters, l_.spectrum_reals, "fft: filter spectra"), "fft: filter spectra");
    inputs_ = aligned_zeros<T>(
        checked_mul(checked_mul(l_.sweep, g.c, "fft: input spectra"), l_.spectrum_reals, "fft: input spectra"),
        "fft: input spectra");
    outputs_ = aligned_zeros<T>(
        checked_mul(checked_mul(l_.sweep, g.k, "fft: output spectra"), l_.spectrum_reals, "fft: output spectra"),
        "fft: output spectra");

    if (bias != nullptr) {
      bias_ = aligned_zeros<T>(g.k, "fft: bias");
      std::copy(bias, bias + g.k, bias_.get());
    }
    threads_ = fftw_useful_threads(fftw_batch_seconds(p, l_, 1, profile), p.threads);
    scratch_ = aligned_zeros<T>(checked_mul(threads_, l_.spectrum_reals, "fft: scratch"), "fft: scratch");
    // Filter spectra: padded kernel -> r2c -> scaled by 1 / (N_r N_c), the c2r's normalisation ->
    // stored by frequency block (see weights_).
    const kernel_placement where = l_.tiles.placement(true, g.rows.dilation, g.cols.dilation);
    const index_t taps = g.rows.kernel * g.cols.kernel;
    const T scale = T(1) / (T(layout.rows) * T(layout.cols));
    parallel_slices(filters, threads_, [&](index_t slice, index_t f0, index_t f1) {
      T* spectrum = scratch_.get() + slice * l_.spectrum_reals;
      for (index_t f = f0; f < f1; ++f) {
        padded_kernel<T>(view2d<const T>(weights + f * taps, g.rows.kernel, g.cols.kernel), real_view(spectrum), where);
        plans_->forward(spectrum);
        for (index_t b = 0; b < l_.spectrum_reals / block; ++b)
          for (index_t i = 0; i < block; ++i) weights_[(b * filters + f) * block + i] = spectrum[b * block + i] * scale;
      }
    });
  }

  void execute(planes<const T> in, planes<T> out) override { run(in, out, nullptr); }

  bool execute_finite(planes<const T> in, planes<T> out) override {
    std::atomic<bool> spoiled{false};
    run(in, out, &spoiled);
    return !spoiled.load();
  }

 private:
  // `spoiled`: if not null, each input window's transform is checked for having met NaN or Inf; once
  // one has, the call stops.
  void run(planes<const T> in, planes<T> out, std::atomic<bool>* spoiled) {
    const conv_problem& g = p_;
    for (index_t first = 0; first < l_.pairs; first += l_.sweep) {
      const index_t count = std::min(l_.sweep, l_.pairs - first);
      each_item(count * g.c, [&](index_t i, T* scratch) { forward(in, first, i / g.c, i % g.c, scratch, spoiled); });
      if (spoiled != nullptr && spoiled->load()) return;
      // Phase 2 items: (block of frequencies, group, range of pairs), the pairs split only as far as
      // needed to give every thread several items.
      const index_t parts = l_.spectrum_reals / block * g.groups;
      const index_t ranges = std::clamp<index_t>((4 * threads_ + parts - 1) / parts, 1, count);
      parallel_for(parts * ranges, threads_, [&](index_t i0, index_t i1) {
        for (index_t i = i0; i < i1; ++i) {
          const index_t range = i % ranges, part = i / ranges;
          const index_t p0 = count * range / ranges, p1 = count * (range + 1) / ranges;
          multiply(p0, p1 - p0, part / g.groups, part % g.groups);
        }
      });
      each_item(count * g.k, [&](index_t i, T* scratch) { inverse(out, first, i / g.k, i % g.k, scratch); });
    }
  }

  view2d<T> real_view(T* buffer) const {
    const fft::spectrum_layout l = l_.tiles.layout();
    return view2d<T>(buffer, l.rows, l.cols, l.real_row_stride());
  }

  /// Calls item(i, scratch) for every i in [0, n), split over threads_ slices with a scratch
  /// buffer (one in-place transform) each.
  template <class Item>
  void each_item(index_t n, Item&& item) {
    parallel_slices(n, threads_, [&](index_t slice, index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) item(i, scratch_.get() + slice * l_.spectrum_reals);
    });
  }

  // Block b of pair p's spectrum of input channel c (sweep-relative pair), and of output channel k.
  T* input_block(index_t b, index_t p, index_t c) const noexcept {
    return inputs_.get() + ((b * l_.sweep + p) * p_.c + c) * block;
  }
  T* output_block(index_t b, index_t p, index_t k) const noexcept {
    return outputs_.get() + ((b * l_.sweep + p) * p_.k + k) * block;
  }

  // Phase 1: input plane `channel` of sweep pair `p`'s image and tile -> r2c in scratch -> inputs_.
  void forward(planes<const T> in, index_t first, index_t p, index_t channel, T* scratch,
               std::atomic<bool>* spoiled) const {
    const fft::axis_tiles& ar = l_.tiles.rows;
    const fft::axis_tiles& ac = l_.tiles.cols;
    const index_t pair = first + p, image = pair / l_.tiles.tiles(), t = pair % l_.tiles.tiles();
    extend<T>(in.view(image, channel, p_.rows.in, p_.cols.in), real_view(scratch), ar.read_top(t / ac.tiles),
              ac.read_top(t % ac.tiles), p_.edge, fill_);
    plans_->forward(scratch);
    if (spoiled != nullptr && transform_met_nonfinite(scratch)) {
      spoiled->store(true);
      return;
    }
    for (index_t b = 0; b < l_.spectrum_reals / block; ++b)
      std::memcpy(input_block(b, p, channel), scratch + b * block, spectrum_block_bytes);
  }

  // Phase 2: frequency block b of the output spectra of group `group` for sweep pairs [first,
  // first + count).
  void multiply(index_t first, index_t count, index_t b, index_t group) const {
    const conv_problem& g = p_;
    const index_t cg = g.c_per_group(), k0 = group * g.k_per_group();
    const spectrum_job<T> job{input_block(b, first, group * cg),
                              block,
                              g.c * block,
                              weights_.get() + (b * g.k + k0) * cg * block,
                              block,
                              cg * block,
                              output_block(b, first, k0),
                              block,
                              g.k * block,
                              cg,
                              g.k_per_group(),
                              count,
                              block};
    product_(job);
  }

  // Phase 3: output spectrum `filter` of sweep pair p -> scratch -> c2r -> bias, strides and crop
  // into out.
  void inverse(planes<T> out, index_t first, index_t p, index_t filter, T* scratch) const {
    for (index_t b = 0; b < l_.spectrum_reals / block; ++b)
      std::memcpy(scratch + b * block, output_block(b, p, filter), spectrum_block_bytes);
    plans_->inverse(scratch);
    const index_t pair = first + p;
    const fft::axis_tiles& ar = l_.tiles.rows;
    const fft::axis_tiles& ac = l_.tiles.cols;
    const index_t image = pair / l_.tiles.tiles(), t = pair % l_.tiles.tiles();
    const fft::tile_outputs orow = ar.outputs(t / ac.tiles), ocol = ac.outputs(t % ac.tiles);
    const view2d<T> real = real_view(scratch), o = out.view(image, filter, p_.rows.out, p_.cols.out);
    const T b = bias_ ? bias_[filter] : T(0);
    for (index_t i = 0; i < orow.count; ++i) {
      const T* src = real.row(orow.local + i * ar.stride) + ocol.local;
      T* dst = o.row(orow.first + i) + ocol.first;
      for (index_t j = 0; j < ocol.count; ++j) dst[j] = src[j * ac.stride] + b;
    }
  }

  conv_problem p_;
  spectrum_kernel_fn<T> product_;
  T fill_;
  fftw_batch_layout l_;
  std::shared_ptr<const fftw_plan_pair<T>> plans_;
  // The filters' spectra by frequency block: reals [b * block, (b + 1) * block) of filter k's
  // channel c at weights_ + (b * K * C/groups + k * C/groups + c) * block, so that phase 2 reads
  // block b of every filter as one contiguous run. They are read once per sweep, and this order
  // streams them; stored plane by plane, every read landed in another page (3x slower at batch 1).
  std::unique_ptr<T[], aligned_free> weights_;
  // Per sweep, the spectra of every pair's input and output channels, by frequency block in the
  // same way (input_block, output_block), so that phase 2 reads and writes contiguous runs.
  std::unique_ptr<T[], aligned_free> inputs_, outputs_;
  std::unique_ptr<T[], aligned_free> scratch_;  // one in-place transform per thread
  std::unique_ptr<T[], aligned_free> bias_;
  int threads_ = 1;
};

}  // namespace detail
CONVKIT_NAMESPACE_END
