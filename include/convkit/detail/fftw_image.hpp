// The fft backend on a single plane (one image, one filter), with overlap-save tiles:
//   made once   the tile plan (fftw_cost.hpp), FFTW plans from the shared cache, one buffer per
//               worker, and the kernel spectrum: padded_kernel, r2c, scaled by 1 / (N_r N_c) so
//               that the unnormalised c2r needs no scaling pass;
//   per tile    convkit::extend writes the tile's window of the extended input into the worker's
//               buffer, r2c, element-wise product with the kernel spectrum, c2r, and the (strided)
//               results (plus the bias) go to the output. Tiles are spread over the workers; a
//               single transform uses FFTW's own threads instead.
//   the contract (conv_problem::componentwise; fft_accuracy.hpp) each tile also bounds its error E
//               from its window's norm, keeps the outputs whose magnitude proves them, bounds
//               |x| * |k| by a second transform where the signs of the window or kernel could hide
//               it, and sums what neither proves directly, from the window, in double.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "../padding.hpp"
#include "backend.hpp"
#include "choice.hpp"
#include "fft_accuracy.hpp"
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
    contract_ = p.componentwise;
    spectrum_ = spectrum_of(std::vector<T>(kernel, kernel + p.rows.kernel * p.cols.kernel));
    bias_ = bias != nullptr ? *bias : T(0);
    if (contract_) prepare_contract(kernel);
  }

  void execute(planes<const T> in, planes<T> out) override { run(in, out, nullptr); }

  bool execute_finite(planes<const T> in, planes<T> out) override {
    std::atomic<bool> spoiled{false};
    run(in, out, &spoiled);
    return !spoiled.load();
  }

 private:
  struct window_stats {
    double sum_squares = 0;
    T largest = 0;                            // at least the largest magnitude (NaN: not finite)
    bool negative = false, positive = false;  // values below or above zero
  };

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
        run_tile(t, image, result, buffer, spoiled, worker);
      }
    });
  }

  void fill_window(index_t tr, index_t tc, view2d<const T> in, view2d<T> real) const {
    const fft::axis_tiles& ar = tiles_.rows;
    const fft::axis_tiles& ac = tiles_.cols;
    extend<T>(in, real, ar.read_top(tr), ac.read_top(tc), p_.edge, fill_);
    fft::clear_beyond_extent(real, ar, ac, tiles_.circular, tr, tc, p_.rows.extent, p_.cols.extent);
  }

  void run_tile(index_t t, view2d<const T> in, view2d<T> out, T* buffer, std::atomic<bool>* spoiled,
                index_t worker) const {
    const fft::axis_tiles& ar = tiles_.rows;
    const fft::axis_tiles& ac = tiles_.cols;
    const index_t tr = t / ac.tiles, tc = t % ac.tiles;
    const view2d<T> real = real_view(buffer);
    fill_window(tr, tc, in, real);
    window_stats stats;
    std::vector<bright_value>* bright = contract_ ? &bright_[std::size_t(worker)] : nullptr;
    if (contract_) {
      stats = window_stats_of(real);
      bright->clear();
      if (set_bright_apart(real, stats, *bright)) {
        const window_stats whole = stats;
        stats = window_stats_of(real);
        stats.negative = whole.negative;
        stats.positive = whole.positive;
      }
    }
    plans_->forward(buffer);
    if (spoiled != nullptr && transform_met_nonfinite(buffer)) {
      spoiled->store(true);
      return;
    }
    multiply_spectra(buffer, spectrum_.get(), plans_->layout().complex_count());
    plans_->inverse(buffer);
    const fft::tile_outputs orow = ar.outputs(tr), ocol = ac.outputs(tc);
    if (contract_) add_bright(*bright, real, orow, ocol);
    for (index_t i = 0; i < orow.count; ++i) {
      const T* src = real.row(orow.local + i * ar.stride) + ocol.local;
      T* dst = out.row(orow.first + i) + ocol.first;
      if (ac.stride == 1) {
        for (index_t j = 0; j < ocol.count; ++j) dst[j] = src[j] + bias_;
      } else {
        for (index_t j = 0; j < ocol.count; ++j) dst[j] = src[j * ac.stride] + bias_;
      }
    }
    if (contract_) keep_contract(tr, tc, in, out, buffer, stats, worker);
  }

  // A few values far above the window's RMS (stars on a faint sky) would make the whole tile's
  // error bound theirs: they are set apart (zeroed in the window, their products with the kernel
  // added to the results afterwards, in T), so that the transform carries only the rest.
  struct bright_value {
    index_t row, col;
    T value;
  };

  // True if values were set apart; false (and the window as it was) where none stands out or too
  // many do for adding their products to cost less than a transform.
  bool set_bright_apart(view2d<T> w, const window_stats& stats, std::vector<bright_value>& bright) const {
    if (tiles_.circular || bright_capacity_ == 0) return false;
    const double rms = std::sqrt(stats.sum_squares / double(w.rows() * w.cols()));
    const double limit = bright_factor * rms;
    if (!(double(stats.largest) > limit)) return false;
    const T at_most = limit < double(std::numeric_limits<T>::max()) ? T(limit) : std::numeric_limits<T>::max();
    for (index_t r = 0; r < w.rows(); ++r) {
      T* x = w.row(r);
      if (!(largest_magnitude(x, w.cols()) > at_most)) continue;  // most rows end here
      for (index_t c = 0; c < w.cols(); ++c) {
        if (!(std::abs(x[c]) > at_most)) continue;
        if (bright.size() == bright_capacity_) {
          for (const bright_value& b : bright) w(b.row, b.col) = b.value;
          bright.clear();
          return false;
        }
        bright.push_back({r, c, x[c]});
        x[c] = T(0);
      }
    }
    return true;
  }

  // max |x[i]|, i < n, in eight lanes (which vectorise, where one running maximum would not).
  static T largest_magnitude(const T* x, index_t n) noexcept {
    constexpr int lanes = 8;
    T m[lanes] = {};
    index_t i = 0;
    for (; i + lanes <= n; i += lanes)
      for (int l = 0; l < lanes; ++l) {
        const T v = std::abs(x[i + l]);
        m[l] = v > m[l] ? v : m[l];
      }
    for (int l = 0; i < n; ++i, ++l) m[l] = std::max(m[l], std::abs(x[i]));
    for (int l = 1; l < lanes; ++l) m[0] = std::max(m[0], m[l]);
    return m[0];
  }

  // Adds each bright value's products with the kernel to the dense results of the tile's outputs.
  void add_bright(const std::vector<bright_value>& bright, view2d<T> real, const fft::tile_outputs& orow,
                  const fft::tile_outputs& ocol) const {
    const fft::axis_tiles& ar = tiles_.rows;
    const fft::axis_tiles& ac = tiles_.cols;
    const index_t kr = p_.rows.kernel, kc = p_.cols.kernel;
    const index_t dr = p_.rows.dilation, dc = p_.cols.dilation;
    const index_t last_r = orow.local + (orow.count - 1) * ar.stride,
                  last_c = ocol.local + (ocol.count - 1) * ac.stride;
    for (const bright_value& b : bright)
      for (index_t u = 0; u < kr; ++u) {
        const index_t mr = b.row - u * dr;  // the dense result that reads this value through tap u
        if (mr < orow.local || mr > last_r || (mr - orow.local) % ar.stride != 0) continue;
        T* y = real.row(mr);
        const T* k = kernel_.data() + u * kc;
        for (index_t v = 0; v < kc; ++v) {
          const index_t mc = b.col - v * dc;
          if (mc < ocol.local || mc > last_c || (mc - ocol.local) % ac.stride != 0) continue;
          y[mc] += b.value * k[v];
        }
      }
  }

  // --- The accuracy contract (fft_accuracy.hpp) ---------------------------------------------------

  // Two passes over each row of the window that vectorise (compilers vectorise neither a running
  // floating-point sum nor a running maximum, but both of these): the squares in eight lanes of T,
  // then in double per row; the largest magnitude and the signs from the values' bits. The sum is
  // raised by its own rounding bound (each lane sums cols / 8 terms, then eight lanes, then rows)
  // and by what gradual underflow can lose (half the smallest subnormal per square); a row whose
  // sum overflows T is summed again in double.
  window_stats window_stats_of(view2d<const T> w) const noexcept {
    constexpr int lanes = 8;
    using bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr int high_shift = int(sizeof(T) * 8 - 32);  // a double's magnitude and sign: its high word
    double total = 0;
    std::int32_t largest = 0, negative = 0, positive = 0;
    for (index_t r = 0; r < w.rows(); ++r) {
      const T* x = w.row(r);
      T sq[lanes] = {};
      index_t j = 0;
      for (; j + lanes <= w.cols(); j += lanes)
        for (int l = 0; l < lanes; ++l) sq[l] += x[j + l] * x[j + l];
      for (int l = 0; j < w.cols(); ++j, ++l) sq[l] += x[j] * x[j];
      double row = 0;
      for (int l = 0; l < lanes; ++l) row += double(sq[l]);
      if (!(row <= double(std::numeric_limits<T>::max()))) {  // overflowed T (or NaN): in double
        row = 0;
        for (j = 0; j < w.cols(); ++j) row += double(x[j]) * double(x[j]);
      }
      total += row;
      for (j = 0; j < w.cols(); ++j) {
        bits b;
        std::memcpy(&b, x + j, sizeof b);
        const std::uint32_t high = std::uint32_t(b >> high_shift);
        const std::int32_t magnitude = std::int32_t(high & 0x7fffffffu);
        const std::int32_t nonzero = std::int32_t((b << 1) != 0);
        largest = magnitude > largest ? magnitude : largest;
        negative |= std::int32_t(high >> 31) & nonzero;
        positive |= std::int32_t((high >> 31) ^ 1u) & nonzero;
      }
    }
    const double u = double(std::numeric_limits<T>::epsilon()) / 2;
    const double n = double(w.rows()) * double(w.cols());
    window_stats s;
    s.sum_squares = total * (1.0 + 2.0 * double(w.cols() / lanes + lanes + w.rows()) * u) +
                    n * double(std::numeric_limits<T>::denorm_min());
    // The largest magnitude from its high word, the low word's bits all set: an upper bound.
    const bits top = (bits(std::uint32_t(largest)) << high_shift) | ((bits(1) << high_shift) - 1);
    std::memcpy(&s.largest, &top, sizeof top);
    s.negative = negative != 0;
    s.positive = positive != 0;
    return s;
  }

  // Under the contract a float plan's spectra are computed in double and rounded once, which
  // takes a third off its error bound (fft_accuracy.hpp); otherwise in T, as the tiles are.
  static constexpr bool precise_spectra = std::is_same_v<T, float>;

  // The r2c transform of the padded kernel `taps` (correlation order), scaled by 1 / (N_r N_c).
  std::unique_ptr<T[], aligned_free> spectrum_of(const std::vector<T>& taps) const {
    const fft::spectrum_layout& layout = tiles_.layout();
    auto spectrum = aligned_zeros<T>(layout.real_count(), "fft kernel spectrum");
    const kernel_placement where = tiles_.placement(true, p_.rows.dilation, p_.cols.dilation);
    if (contract_ && precise_spectra) {
      const double scale = 1.0 / (double(layout.rows) * double(layout.cols));
      const std::vector<double> wide(taps.begin(), taps.end());
      auto buffer = aligned_zeros<double>(layout.real_count(), "fft kernel spectrum");
      padded_kernel<double>(view2d<const double>(wide.data(), p_.rows.kernel, p_.cols.kernel),
                            view2d<double>(buffer.get(), layout.rows, layout.cols, layout.real_row_stride()), where);
      fftw_cached_plans<double>(layout, 1, fftw_flags(p_.tune.fft.planning))->forward(buffer.get());
      for (index_t i = 0; i < layout.real_count(); ++i) spectrum[i] = T(buffer[i] * scale);
      return spectrum;
    }
    padded_kernel<T>(view2d<const T>(taps.data(), p_.rows.kernel, p_.cols.kernel), real_view(spectrum.get()), where);
    plans_->forward(spectrum.get());
    const T scale_t = T(1) / (T(layout.rows) * T(layout.cols));
    for (index_t i = 0; i < layout.real_count(); ++i) spectrum[i] *= scale_t;
    return spectrum;
  }

  void prepare_contract(const T* kernel) {
    const index_t taps = p_.rows.kernel * p_.cols.kernel;
    kernel_.assign(kernel, kernel + taps);
    double norm = 0;
    bool positive = false, negative = false;
    for (T k : kernel_) {
      norm += double(k) * double(k);
      positive = positive || k > 0;
      negative = negative || k < 0;
    }
    const fft::spectrum_layout layout = tiles_.layout();
    bounds_ = fft_accuracy_bounds::make(double(std::numeric_limits<T>::epsilon()) / 2, taps, std::sqrt(norm),
                                        layout.rows * layout.cols, double(std::numeric_limits<T>::denorm_min()),
                                        precise_spectra);
    one_signed_kernel_ = !(positive && negative);
    if (one_signed_kernel_) {
      magnitude_spectrum_sign_ = negative ? T(-1) : T(1);
    } else {
      std::vector<T> magnitudes(kernel_.size());
      for (std::size_t i = 0; i < kernel_.size(); ++i) magnitudes[i] = std::abs(kernel_[i]);
      magnitude_spectrum_ = spectrum_of(magnitudes);
    }
    const fft::tile_outputs rows = tiles_.rows.outputs(0), cols = tiles_.cols.outputs(0);
    unproven_.assign(std::size_t(workers_), {});
    for (auto& u : unproven_) u.reserve(std::size_t(rows.count * cols.count));
    // Setting values apart pays while adding their products costs under a quarter of a tile's transforms.
    const double n = double(layout.rows) * double(layout.cols);
    bright_capacity_ = std::size_t(n * std::log2(n) / (4.0 * double(taps)));
    bright_.assign(std::size_t(workers_), {});
    for (auto& b : bright_) b.reserve(bright_capacity_);
    if (!tiles_.circular) make_window_executors();  // a circular window wraps: summed one by one
  }

  // A tile most of whose outputs are unproven (a star on a faint sky) goes to the direct backend:
  // one executor per worker, for the valid correlation of a tile's window, dense kernel (a
  // separable kernel's passes are bounded by |x| * |a| |b|^T, not by |x| * |k|).
  void make_window_executors() {
    const fft::spectrum_layout& layout = tiles_.layout();
    static constexpr axis_names window_axes[2] = {
        {"rows", "window rows", "kernel rows", "rows", "kernel rows", "padding"},
        {"cols", "window cols", "kernel cols", "cols", "kernel cols", "padding"}};
    problem_request r;
    r.rows.names = &window_axes[0];
    r.cols.names = &window_axes[1];
    r.rows.in = layout.rows;
    r.cols.in = layout.cols;
    r.rows.kernel = p_.rows.kernel;
    r.cols.kernel = p_.cols.kernel;
    r.rows.stride = p_.rows.stride;
    r.cols.stride = p_.cols.stride;
    r.rows.dilation = p_.rows.dilation;
    r.cols.dilation = p_.cols.dilation;
    r.rows.mode = r.cols.mode = output::valid;
    r.element_bytes = sizeof(T);
    r.algo = algorithm::direct;
    r.threads = 1;
    tuning dense;
    dense.separable = separable_use::never;
    dense.instruction_set = p_.tune.instruction_set;
    r.tune = &dense;
    conv_problem q = make_problem(r);
    q.tune.profile = p_.tune.profile;
    window_in_stride_ = layout.rows * layout.cols;
    window_out_stride_ = window_outputs(layout.rows, p_.rows) * window_outputs(layout.cols, p_.cols);
    window_in_ =
        aligned_zeros<T>(checked_mul(workers_, window_in_stride_, "fft contract workspace"), "fft contract workspace");
    window_out_ =
        aligned_zeros<T>(checked_mul(workers_, window_out_stride_, "fft contract workspace"), "fft contract workspace");
    for (int w = 0; w < workers_; ++w)
      window_direct_.push_back(find_backend(algorithm::direct).template factory<T>()(q, kernel_.data(), nullptr));
  }

  // The tile's outputs, copied out from `buffer`'s result, are kept where their magnitude proves
  // them; the others are proven by the transform of |x| with |k| or summed directly.
  void keep_contract(index_t tr, index_t tc, view2d<const T> in, view2d<T> out, T* buffer, const window_stats& stats,
                     index_t worker) const {
    std::vector<index_t>& unproven = unproven_[std::size_t(worker)];
    const fft::tile_outputs orow = tiles_.rows.outputs(tr), ocol = tiles_.cols.outputs(tc);
    const view2d<T> real = real_view(buffer);
    const fft::spectrum_layout& layout = tiles_.layout();
    const double n = double(layout.rows) * double(layout.cols);
    const T threshold =
        saturate<T>(bounds_.error(stats.sum_squares, double(stats.largest), index_t(n)) * bounds_.margin);
    const index_t outputs = orow.count * ocol.count;
    unproven.clear();
    const index_t below = count_below(real, orow, ocol, threshold);
    if (below == 0) return;
    const bool one_signed_window = !(stats.negative && stats.positive);
    // Where window and kernel each have one sign, |y| is |x| * |k|: a second transform proves nothing more.
    const bool magnitudes_can_help = !(one_signed_window && one_signed_kernel_);
    if (magnitudes_can_help && double(below) * double(kernel_.size()) > n * std::log2(n)) {
      fill_window(tr, tc, in, real);
      for (const bright_value& b : bright_[std::size_t(worker)]) real(b.row, b.col) = T(0);
      for (index_t r = 0; r < real.rows(); ++r) {
        T* x = real.row(r);
        for (index_t j = 0; j < real.cols(); ++j) x[j] = std::abs(x[j]);
      }
      plans_->forward(buffer);
      multiply_spectra(buffer, one_signed_kernel_ ? spectrum_.get() : magnitude_spectrum_.get(),
                       plans_->layout().complex_count());
      plans_->inverse(buffer);
      // |x| * |k| at each output, within E: those above the threshold are proven.
      collect_below(real, orow, ocol, threshold, one_signed_kernel_ ? magnitude_spectrum_sign_ : T(1), unproven);
    } else {
      collect_below(real, orow, ocol, threshold, T(0), unproven);
    }
    if (unproven.empty()) return;
    // Sums one by one cost ~40x the direct backend's per output (measured: one thread, float, 31 x 31).
    if (window_direct_.empty() || index_t(unproven.size()) * 40 < outputs) {
      fill_window(tr, tc, in, real);
      sum_directly(orow, ocol, real, unproven, out);
      return;
    }
    // Much of the tile: the direct backend's valid correlation of the window from the tile's first
    // output on (a stride's phase differs from tile to tile), then the unproven outputs copied.
    const fft::spectrum_layout& l = tiles_.layout();
    T* window = window_in_.get() + worker * window_in_stride_;
    T* result = window_out_.get() + worker * window_out_stride_;
    const view2d<T> w(window, l.rows, l.cols);
    extend<T>(in, w, tiles_.rows.read_top(tr) - orow.local, tiles_.cols.read_top(tc) - ocol.local, p_.edge, fill_);
    const index_t result_cols = window_outputs(l.cols, p_.cols);
    window_direct_[std::size_t(worker)]->execute(
        planes_of(view2d<const T>(w)), planes_of(view2d<T>(result, window_outputs(l.rows, p_.rows), result_cols)));
    for (const index_t o : unproven) {
      const index_t i = o / ocol.count, j = o % ocol.count;
      out(orow.first + i, ocol.first + j) = result[i * result_cols + j] + bias_;
    }
  }

  static index_t window_outputs(index_t window, const axis_geometry& g) noexcept {
    return (window - g.span) / g.stride + 1;
  }

  template <class U>
  static U saturate(double v) noexcept {
    return v < double(std::numeric_limits<U>::max()) ? U(v) : std::numeric_limits<U>::infinity();
  }

  // How many of the tile's results in `real` are not >= threshold in magnitude.
  index_t count_below(view2d<const T> real, const fft::tile_outputs& orow, const fft::tile_outputs& ocol,
                      T threshold) const noexcept {
    const index_t sr = tiles_.rows.stride, sc = tiles_.cols.stride;
    index_t below = 0;
    for (index_t i = 0; i < orow.count; ++i) {
      const T* y = real.row(orow.local + i * sr) + ocol.local;
      // In T-wide integers, which vectorise with the comparisons.
      using count = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
      count row = 0;
      if (sc == 1) {
        for (index_t j = 0; j < ocol.count; ++j) row += count(!(std::abs(y[j]) >= threshold));
      } else {
        for (index_t j = 0; j < ocol.count; ++j) row += count(!(std::abs(y[j * sc]) >= threshold));
      }
      below += index_t(row);
    }
    return below;
  }

  // The outputs (i * cols + j) whose result in `real` is not >= threshold: in magnitude where `sign`
  // is 0, else times `sign`.
  void collect_below(view2d<const T> real, const fft::tile_outputs& orow, const fft::tile_outputs& ocol, T threshold,
                     T sign, std::vector<index_t>& below) const {
    const index_t sr = tiles_.rows.stride, sc = tiles_.cols.stride;
    for (index_t i = 0; i < orow.count; ++i) {
      const T* y = real.row(orow.local + i * sr) + ocol.local;
      for (index_t j = 0; j < ocol.count; ++j) {
        const T v = sign == T(0) ? std::abs(y[j * sc]) : sign * y[j * sc];
        if (!(v >= threshold)) below.push_back(i * ocol.count + j);
      }
    }
  }

  // Each unproven output as a sum in double, read from the tile's window.
  void sum_directly(const fft::tile_outputs& orow, const fft::tile_outputs& ocol, view2d<const T> real,
                    const std::vector<index_t>& unproven, view2d<T> out) const {
    const fft::axis_tiles& ar = tiles_.rows;
    const fft::axis_tiles& ac = tiles_.cols;
    const index_t kr = p_.rows.kernel, kc = p_.cols.kernel;
    const index_t dr = p_.rows.dilation, dc = p_.cols.dilation;
    const index_t nr = real.rows(), nc = real.cols();
    // Window index of dense result m and tap u: m + u * dilation, shifted by the circular shortcut's
    // origin (0 for overlap-save tiles) and wrapped.
    const index_t shift_r = ar.origin - (p_.rows.span - 1), shift_c = ac.origin - (p_.cols.span - 1);
    const auto wrap = [](index_t i, index_t len) { return ((i % len) + len) % len; };
    for (const index_t o : unproven) {
      const index_t i = o / ocol.count, j = o % ocol.count;
      const index_t mr = orow.local + i * ar.stride, mc = ocol.local + j * ac.stride + shift_c;
      const bool inside = mc >= 0 && mc + (kc - 1) * dc < nc;
      double sum = 0;
      for (index_t u = 0; u < kr; ++u) {
        const T* x = real.row(wrap(mr + u * dr + shift_r, nr));
        const T* k = kernel_.data() + u * kc;
        if (inside) {
          for (index_t v = 0; v < kc; ++v) sum += double(x[mc + v * dc]) * double(k[v]);
        } else {
          for (index_t v = 0; v < kc; ++v) sum += double(x[wrap(mc + v * dc, nc)]) * double(k[v]);
        }
      }
      out(orow.first + i, ocol.first + j) = T(sum) + bias_;
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
  bool contract_ = false;  // conv_problem::componentwise
  fft_accuracy_bounds bounds_;
  std::vector<T> kernel_;  // correlation order, for the outputs summed directly
  bool one_signed_kernel_ = true;
  T magnitude_spectrum_sign_ = T(1);  // a one-signed kernel's |k| spectrum is its spectrum times this
  std::unique_ptr<T[], aligned_free> magnitude_spectrum_;  // |k|'s, where the kernel has both signs
  // Per worker: a tile's outputs not yet proven (index i * cols + j in the tile); reserved, so that
  // an execute allocates nothing.
  mutable std::vector<std::vector<index_t>> unproven_;
  static constexpr double bright_factor = 16;  // "bright": above this many times the window's RMS
  std::size_t bright_capacity_ = 0;
  mutable std::vector<std::vector<bright_value>> bright_;  // per worker, reserved
  // Per worker: a direct executor for a whole tile's window, the window and its output.
  std::vector<std::unique_ptr<executor<T>>> window_direct_;
  std::unique_ptr<T[], aligned_free> window_in_, window_out_;
  index_t window_in_stride_ = 0, window_out_stride_ = 0;
  fft::tile_plan tiles_;
  int workers_ = 1;
  index_t buffer_stride_ = 0;  // elements from one worker's buffer to the next: real_count rounded up to 64 bytes
  std::shared_ptr<const fftw_plan_pair<T>> plans_;
  std::unique_ptr<T[], aligned_free> buffers_, spectrum_;
};

}  // namespace detail
CONVKIT_NAMESPACE_END
