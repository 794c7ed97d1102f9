// convkit/backends/direct.hpp - algorithm::direct: the definition, computed fast. No dependencies;
// part of convkit::convkit. <convkit/convkit.hpp> includes it, which registers the backend.
//
//   1. Borders are applied by the padding module (convkit::extend) to one band of input rows at a
//      time, just before the band is used, so the hot loop never tests an index and the whole
//      extended image is never materialised (skipped when the output reads only the image).
//   2. A column stride s > 1 splits the extended rows into s phase planes (columns p, p+s, ...), so
//      every kernel tap reads consecutive elements whatever the stride and dilation.
//   3. Output rows that read shared input rows are grouped; a register-blocked micro-kernel
//      (detail/direct_kernel.inl) computes 4 rows x 2-4 vectors at once, compiled for AVX-512,
//      AVX2+FMA and portable C++ and chosen at run time (tuning::instruction_set, cpu.hpp).
//   4. Batches (layers) sum the plane correlations over each filter's channels in the output plane.
//   5. Low-rank kernels (a Gaussian, Sobel, a LoG) run as 1-D passes where that is cheaper
//      (detail/direct_separable.hpp; the choice is direct_cost's).
// Public API: convkit::direct::instruction_set() and force_instruction_set(), the process default
// of tuning::instruction_set.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../cpu.hpp"
#include "../detail/backend.hpp"
#include "../detail/calibration.hpp"
#include "../detail/direct_impl.hpp"
#include "../detail/direct_separable.hpp"
#include "../detail/separable.hpp"
#include "../detail/threads.hpp"
#include "../padding.hpp"
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

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// How the micro-kernel walks one plane: the strided, dilated valid correlation of an extended plane
/// (rows.extent x cols.extent, as axis_geometry defines it) with a kernel of rows.kernel x cols.kernel
/// taps given contiguously, in correlation order.
template <class T>
class direct_plane {
 public:
  /// Where the micro-kernel reads an extended plane: its rows are `ld` elements apart.
  struct source {
    const T* base;
    index_t ld;
  };

  direct_plane() = default;
  /// banded: the input is prepared one block's band of rows at a time (band(), run_band()) rather
  /// than as a whole plane (prepare() of the whole plane, run()).
  direct_plane(const axis_geometry& rows, const axis_geometry& cols, bool banded = false)
      : rows_(rows), cols_(cols), phase_rows_(banded ? band_rows() : rows.extent) {
    const index_t sc = cols.stride;
    if (sc > 1) plane_cols_ = (cols.extent + sc - 1) / sc;
    checked_mul(checked_mul(phase_count(), phase_rows_, "column phase planes"), plane_cols_, "column phase planes");
    col_off_.resize(static_cast<std::size_t>(cols.kernel));
    for (index_t v = 0; v < cols.kernel; ++v) {
      const index_t e = v * cols.dilation;  // column offset of tap v in the extended input
      col_off_[static_cast<std::size_t>(v)] = sc > 1 ? (e % sc) * phase_rows_ * plane_cols_ + e / sc : e;
    }
    plan_row_blocks();
  }

  /// Elements of the column-phase copy that prepare() needs (0 for stride 1).
  index_t phase_size() const noexcept { return cols_.stride > 1 ? phase_count() * phase_rows_ * plane_cols_ : 0; }
  index_t blocks() const noexcept { return static_cast<index_t>(blocks_.size()); }

  /// The most input rows one block reads: its output rows share all but kernel - 1 of them.
  index_t band_rows() const noexcept { return direct_block_rows + rows_.kernel - 1; }

  /// Evenly spaced rows: first, first + step, ... (count of them).
  struct row_span {
    index_t first, step, count;
  };
  /// The extended-input rows that block b reads.
  row_span band(index_t b) const noexcept {
    const row_block& rb = blocks_[static_cast<std::size_t>(b)];
    return {rb.in_row, rb.in_step, rb.rows + rows_.kernel - 1};
  }
  /// The output rows that block b writes.
  row_span outputs(index_t b) const noexcept {
    const row_block& rb = blocks_[static_cast<std::size_t>(b)];
    return {rb.out_row, rb.out_step, rb.rows};
  }

  /// The source for extended plane `ext` (at least rows.extent x cols.extent); for a column stride
  /// s > 1 it first splits ext into s phase planes (columns p, p+s, ...) at `phases`, so that every
  /// kernel tap reads consecutive elements whatever the stride and dilation.
  source prepare(view2d<const T> ext, T* phases) const {
    const index_t s = cols_.stride;
    if (s == 1) return {ext.data(), ext.row_stride()};
    // phases row p * phase_rows + r, column m  =  ext(r, m * stride + p).
    const index_t rows = std::min(ext.rows(), phase_rows_);
    for (index_t p = 0; p < phase_count(); ++p)
      for (index_t r = 0; r < rows; ++r) {
        const T* from = ext.row(r);
        T* to = phases + (p * phase_rows_ + r) * plane_cols_;
        for (index_t m = 0; m * s + p < cols_.extent; ++m) to[m] = from[m * s + p];
      }
    return {phases, plane_cols_};
  }

  /// Output row blocks [b0, b1) of out = correlation of src with k (or out += it, with accumulate).
  void run(direct_kernel_fn<T> kernel, source src, const T* k, view2d<T> out, bool accumulate, index_t b0,
           index_t b1) const {
    for (index_t b = b0; b < b1; ++b) {
      const row_block& rb = blocks_[static_cast<std::size_t>(b)];
      const direct_job<T> job{src.base + rb.in_row * src.ld,
                              rb.in_step * src.ld,
                              col_off_.data(),
                              k,
                              int(rows_.kernel),
                              int(cols_.kernel),
                              out.row(rb.out_row),
                              rb.out_step * out.row_stride(),
                              cols_.out,
                              rb.rows,
                              accumulate};
      kernel(job);
    }
  }

  /// Block b alone, from `src` holding the block's band(b) rows one after the other.
  void run_band(direct_kernel_fn<T> kernel, source src, const T* k, view2d<T> out, bool accumulate, index_t b) const {
    const row_block& rb = blocks_[static_cast<std::size_t>(b)];
    kernel(direct_job<T>{src.base, src.ld, col_off_.data(), k, int(rows_.kernel), int(cols_.kernel),
                         out.row(rb.out_row), rb.out_step * out.row_stride(), cols_.out, rb.rows, accumulate});
  }

 private:
  // Column phases that hold a column: a stride beyond the extent leaves the others empty.
  index_t phase_count() const noexcept { return std::min<index_t>(cols_.stride, cols_.extent); }

  struct row_block {
    index_t in_row, in_step;    // in rows of the extended input
    index_t out_row, out_step;  // in rows of the output
    int rows;
  };

  // Output row o with kernel row u reads extended row o * stride + u * dilation. When the dilation is
  // a multiple m of the stride, the output rows o = q, q + m, q + 2m, ... read the evenly spaced
  // rows stride * q + j * dilation, so blocks of them share input rows; otherwise rows go one by one.
  void plan_row_blocks() {
    const index_t s = rows_.stride, d = rows_.dilation;
    if (d % s == 0) {
      const index_t m = d / s;
      for (index_t q = 0; q < std::min(m, rows_.out); ++q) {
        const index_t count = (rows_.out - q + m - 1) / m;
        for (index_t t = 0; t < count; t += direct_block_rows)
          blocks_.push_back({s * q + t * d, d, q + t * m, m, int(std::min<index_t>(direct_block_rows, count - t))});
      }
    } else {
      for (index_t o = 0; o < rows_.out; ++o) blocks_.push_back({o * s, d, o, 1, 1});
    }
  }

  axis_geometry rows_{}, cols_{};
  index_t phase_rows_ = 0;  // rows of each column-phase plane: the whole plane's, or one band's
  index_t plane_cols_ = 0;
  std::vector<index_t> col_off_;
  std::vector<row_block> blocks_;
};

/// An extra thread pays for itself from ~4e6 multiply-adds (~70 us of micro-kernel time) each.
inline int direct_threads(double macs, int threads) { return useful_threads(macs, threads, 4e6); }

/// The direct backend on a sparse problem (problem.hpp: most of the extended input is never read):
/// each output element sums its taps read straight from the input through per-axis tables of source
/// indices (border_index, -1 for the fill value), so time and memory follow the outputs and their
/// taps, whatever the strides, dilations and paddings.
template <class T>
class direct_gather {
 public:
  explicit direct_gather(const conv_problem& p) : p_(p), fill_(p.fill<T>()) {
    rows_ = table(p.rows);
    cols_ = table(p.cols);
  }

  /// out planes (n, k) for every image and filter; weights K x C/groups x R x S, bias null or K.
  void run(planes<const T> in, planes<T> out, const T* weights, const T* bias) const {
    const conv_problem& g = p_;
    const index_t cg = g.c_per_group(), kg = g.k_per_group(), R = g.rows.kernel, S = g.cols.kernel;
    const index_t lines = g.n * g.k * g.rows.out;
    parallel_for(lines, useful_threads(g.macs(), g.threads, 1e6), [&](index_t b, index_t e) {
      for (index_t line = b; line < e; ++line) {
        const index_t i = line % g.rows.out, nk = line / g.rows.out, n = nk / g.k, k = nk % g.k;
        T* o = out.plane(n, k) + i * out.row_stride;
        for (index_t j = 0; j < g.cols.out; ++j) {
          T sum = bias != nullptr ? bias[k] : T(0);
          for (index_t ci = 0; ci < cg; ++ci) {
            const T* plane = in.plane(n, (k / kg) * cg + ci);
            const T* w = weights + (k * cg + ci) * R * S;
            for (index_t u = 0; u < R; ++u) {
              const index_t r = rows_[std::size_t(i * R + u)];
              for (index_t v = 0; v < S; ++v) {
                const index_t c = cols_[std::size_t(j * S + v)];
                sum += w[u * S + v] * (r < 0 || c < 0 ? fill_ : plane[r * in.row_stride + c]);
              }
            }
          }
          o[j] = sum;
        }
      }
    });
  }

 private:
  // Source index of tap j of output o along an axis: input[-pad_before + o * stride + j * dilation].
  std::vector<index_t> table(const axis_geometry& a) const {
    std::vector<index_t> t(std::size_t(checked_mul(a.out, a.kernel, "direct gather table")));
    for (index_t o = 0; o < a.out; ++o)
      for (index_t j = 0; j < a.kernel; ++j)
        t[std::size_t(o * a.kernel + j)] =
            border_index(o * index_t(a.stride) + j * index_t(a.dilation) - a.pad_before, a.in, p_.edge);
    return t;
  }

  conv_problem p_;
  T fill_;
  std::vector<index_t> rows_, cols_;
};

/// The separable path runs problem p (a low-rank kernel on a single plane or a depthwise batch) where
/// it is cheaper than the dense one (direct_cost's two estimates).
inline bool runs_separably(const conv_problem& p, const cost_profile& profile);

/// The direct backend's executor. A single plane (one image, one filter) is correlated band by band:
/// each block's band of rows is extended (and split into column phases) just before the block runs,
/// into a workspace per thread, so the copy stays in cache, is spread over the threads, and never
/// holds the whole extended image; when the output reads only the image and the column stride is 1
/// (valid mode) the micro-kernel reads the input in place. A batch extends every input plane once
/// per call, then each (image, filter) output plane sums the correlations over its group's channels.
template <class T>
class direct_executor final : public executor<T> {
 public:
  direct_executor(const conv_problem& p, const T* weights, const T* bias)
      : p_(p),
        kernel_(direct_kernel_for<T>(p.tune.instruction_set)),
        banded_(p.single_plane() && (p.reads_outside() || p.cols.stride > 1)),
        threads_(direct_threads(p.macs(), p.threads)) {
    weights_ = array2d<T>(checked_mul(p.k, p.c_per_group(), "weights K * C/groups"),
                          checked_mul(p.rows.kernel, p.cols.kernel, "weights R * S"));
    std::copy(weights, weights + weights_.size(), weights_.data());
    if (bias != nullptr) {
      bias_ = array2d<T>(1, p.k);
      std::copy(bias, bias + p.k, bias_.data());
    }
    if (p.sparse()) {
      gather_ = std::make_unique<direct_gather<T>>(p);
      return;
    }
    if (runs_separably(p, *profile_of(p))) {
      separable_ = std::make_unique<direct_separable<T>>(p, weights_.data());
      if (separable_->complete()) return;
      separable_.reset();
    }
    plane_ = direct_plane<T>(p.rows, p.cols, banded_);
    if (p.single_plane()) {
      if (banded_)
        work_ = array2d<T>(threads_, checked_add(checked_mul(plane_.band_rows(), p.cols.extent, "direct band"),
                                                 plane_.phase_size(), "direct band"));
      return;
    }
    const index_t planes = checked_mul(p.n, p.c, "input N * C");
    if (p.reads_outside()) ext_ = array4d<T>(p.n, p.c, p.rows.extent, p.cols.extent);
    phases_ = array2d<T>(planes, plane_.phase_size());
    sources_.resize(static_cast<std::size_t>(planes));
  }

  void execute(planes<const T> in, planes<T> out) override {
    if (gather_)
      gather_->run(in, out, weights_.data(), bias_.size() > 0 ? bias_.data() : nullptr);
    else if (separable_)
      separable_->run(in, out, bias_.size() > 0 ? bias_.data() : nullptr);
    else if (p_.single_plane())
      run_plane(in.view(0, 0, p_.rows.in, p_.cols.in), out.view(0, 0, p_.rows.out, p_.cols.out));
    else
      run_batch(in, out);
  }

 private:
  bool accumulates() const noexcept { return bias_.size() > 0; }

  // Fills block b's output rows with the bias, which the micro-kernel then adds to.
  void fill_bias(view2d<T> out, index_t b, T value) const {
    const auto rows = plane_.outputs(b);
    for (index_t i = 0; i < rows.count; ++i) {
      T* row = out.row(rows.first + i * rows.step);
      std::fill(row, row + out.cols(), value);
    }
  }

  void run_plane(view2d<const T> in, view2d<T> out) {
    const T* k = weights_.data();
    const bool add = accumulates();
    if (!banded_) {
      const typename direct_plane<T>::source from{in.data(), in.row_stride()};
      parallel_chunks(plane_.blocks(), threads_, [&](index_t, index_t b0, index_t b1) {
        for (index_t b = b0; b < b1; ++b) {
          if (add) fill_bias(out, b, bias_.data()[0]);
          plane_.run(kernel_, from, k, out, add, b, b + 1);
        }
      });
      return;
    }
    const axis_geometry& gr = p_.rows;
    const axis_geometry& gc = p_.cols;
    const T fill = p_.fill<T>();
    parallel_chunks(plane_.blocks(), threads_, [&](index_t slice, index_t b0, index_t b1) {
      T* const ext = work_.data() + slice * work_.cols();
      T* const phases = ext + plane_.band_rows() * gc.extent;
      for (index_t b = b0; b < b1; ++b) {
        const auto rows = plane_.band(b);
        const view2d<T> band(ext, rows.count, gc.extent);
        if (rows.step == 1) {
          extend<T>(in, band, gr.pad_before - rows.first, gc.pad_before, p_.edge, fill);
        } else {
          for (index_t i = 0; i < rows.count; ++i)
            extend<T>(in, band.block(i, 0, 1, gc.extent), gr.pad_before - (rows.first + i * rows.step), gc.pad_before,
                      p_.edge, fill);
        }
        if (add) fill_bias(out, b, bias_.data()[0]);
        plane_.run_band(kernel_, plane_.prepare(band, phases), k, out, add, b);
      }
    });
  }

  void run_batch(planes<const T> in, planes<T> out) {
    const conv_problem& g = p_;
    const T fill = p_.fill<T>();
    parallel_for(g.n * g.c, threads_, [&](index_t p0, index_t p1) {
      for (index_t p = p0; p < p1; ++p) {
        const index_t n = p / g.c, c = p % g.c;
        view2d<const T> src = in.view(n, c, g.rows.in, g.cols.in);
        if (ext_.size() > 0) {
          const view2d<T> ext = ext_.view().plane(n, c);
          extend<T>(src, ext, g.rows.pad_before, g.cols.pad_before, p_.edge, fill);
          src = ext;
        }
        sources_[static_cast<std::size_t>(p)] = plane_.prepare(src, phases_.data() + p * phases_.cols());
      }
    });
    const index_t cg = g.c_per_group(), kg = g.k_per_group(), taps = weights_.cols();
    parallel_for(g.n * g.k, threads_, [&](index_t p0, index_t p1) {
      for (index_t p = p0; p < p1; ++p) {
        const index_t n = p / g.k, k = p % g.k, first_channel = (k / kg) * cg;
        const view2d<T> o = out.view(n, k, g.rows.out, g.cols.out);
        if (accumulates())
          for (index_t r = 0; r < o.rows(); ++r) std::fill(o.row(r), o.row(r) + o.cols(), bias_.data()[k]);
        for (index_t ci = 0; ci < cg; ++ci)
          plane_.run(kernel_, sources_[static_cast<std::size_t>(n * g.c + first_channel + ci)],
                     weights_.data() + (k * cg + ci) * taps, o, ci > 0 || accumulates(), 0, plane_.blocks());
      }
    });
  }

  conv_problem p_;
  direct_kernel_fn<T> kernel_;
  bool banded_;  // a single plane extended band by band
  direct_plane<T> plane_;
  std::unique_ptr<direct_gather<T>> gather_;        // sparse problems
  std::unique_ptr<direct_separable<T>> separable_;  // low-rank kernels, where cheaper
  int threads_ = 1;
  array2d<T> weights_, bias_;
  array2d<T> work_;                                        // single plane: one band (and its column phases) per thread
  array4d<T> ext_;                                         // batch: every extended input plane
  array2d<T> phases_;                                      // batch: the column phases of every plane
  std::vector<typename direct_plane<T>::source> sources_;  // batch: one per input plane, filled by execute()
};

template <class T>
std::unique_ptr<executor<T>> make_direct(const conv_problem& p, const T* weights, const T* bias) {
  return std::make_unique<direct_executor<T>>(p, weights, bias);
}

// --- Cost model ------------------------------------------------------------------------------------
//
// A single plane: seconds = direct.call_s + multiply-adds / rate, where rate is the multiply-adds
// per second the micro-kernel sustains for the problem's instruction set, kernel size and threads.
// The profile holds rates measured by calibrate() ("direct.<isa>.t<threads>.k<k>" for a k x k
// kernel on 1 thread and on the calibration's thread count), interpolated in log(taps) between the
// measured kernels and linearly in the threads. Without a profile the rate is derived from the
// instruction set: lanes x 2 FMA units x the clock (/proc/cpuinfo, else 2.5 GHz) x 0.75, times
// taps / (taps + 30) (small kernels are bound by loads, stores and the border copy: fitted on the
// AVX-512 Xeon this project ran on first, within 10% for 3x3..31x31), times 0.9 per extra thread.
// A batch runs one filter-channel pair at a time: its rate also scales with taps / (taps + 16), the
// fraction of vector lanes a row fills, and 0.6 when strided rows cannot share input rows (fitted
// to bench_layers there), times the measured direct.<isa>.batch_scale (depthwise_scale for layers of
// one channel per filter, which sum nothing in their output planes; grouped_scale for layers of a
// few channels per group, whose short channel sums the dense layer's scale overestimated by
// 1.1-1.6x here; batch_scale where a profile has no grouped_scale).

/// The kernel sizes calibrate() measures (k x k), and the quick subset.
inline constexpr int direct_kernel_sizes[] = {1, 3, 5, 7, 9, 15, 21, 31};
inline constexpr int direct_quick_kernel_sizes[] = {3, 7, 15, 31};

inline const char* isa_name(cpu::isa i) noexcept {
  return i == cpu::isa::avx512 ? "avx512" : i == cpu::isa::avx2 ? "avx2" : "portable";
}

/// The clock in Hz from /proc/cpuinfo ("cpu MHz"), else 2.5 GHz.
inline double cpu_hz() {
  static const double hz = [] {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("cpu MHz", 0) == 0) {
        const double mhz = std::atof(line.substr(line.find(':') + 1).c_str());
        if (mhz > 100) return mhz * 1e6;
      }
    return 2.5e9;
  }();
  return hz;
}

/// The built-in rate of one thread (no profile).
inline double direct_default_rate(cpu::isa i, double taps) {
  const double lanes = i == cpu::isa::avx512 ? 16 : i == cpu::isa::avx2 ? 8 : 1;
  return lanes * 2.0 * cpu_hz() * 0.75 * taps / (taps + 30.0);
}

/// Multiply-adds per second of a single plane with `taps` taps on `threads` threads.
inline double direct_rate(const cost_profile& profile, cpu::isa i, double taps, int threads, int calibrated_threads) {
  const std::string base = std::string("direct.") + isa_name(i) + ".t";
  const auto measured = [&](int t) -> double {  // interpolated in log(taps); 0 if not measured
    double lo_taps = 0, lo = 0, hi_taps = 0, hi = 0;
    for (int k : direct_kernel_sizes) {
      const std::optional<double> r = profile.value(base + std::to_string(t) + ".k" + std::to_string(k));
      if (!r) continue;
      const double kt = double(k) * k;
      if (kt <= taps) lo_taps = kt, lo = *r;
      if (kt >= taps && hi == 0) hi_taps = kt, hi = *r;
    }
    if (lo == 0) return hi;
    if (hi == 0 || hi_taps == lo_taps) return lo;
    const double f = std::log(taps / lo_taps) / std::log(hi_taps / lo_taps);
    return lo + (hi - lo) * f;
  };
  const double one = measured(1);
  if (one == 0) return direct_default_rate(i, taps) * (1.0 + 0.9 * (threads - 1));
  if (threads == 1 || calibrated_threads <= 1) return one * (1.0 + 0.9 * (threads - 1));
  const double many = measured(calibrated_threads);
  if (many == 0) return one * (1.0 + 0.9 * (threads - 1));
  return one + (many - one) * double(threads - 1) / double(calibrated_threads - 1);
}

/// Multiply-adds per second of the gather path (scalar, with index lookups; sparse problems only).
inline constexpr double direct_gather_rate = 1e9;

/// Multiply-adds per second of the separable path's 1-D passes on `threads` threads (measured:
/// direct.<isa>.separable.t<threads>; built in: a quarter of the instruction set's peak).
inline double direct_separable_rate(const cost_profile& profile, cpu::isa i, int threads, int calibrated_threads) {
  const std::string base = std::string("direct.") + isa_name(i) + ".separable.t";
  const std::optional<double> one = profile.value(base + "1");
  const double lanes = i == cpu::isa::avx512 ? 16 : i == cpu::isa::avx2 ? 8 : 1;
  if (!one) return lanes * 2.0 * cpu_hz() * 0.25 * (1.0 + 0.9 * (threads - 1));
  const std::optional<double> many = profile.value(base + std::to_string(calibrated_threads));
  if (threads == 1 || calibrated_threads <= 1 || !many) return *one * (1.0 + 0.9 * (threads - 1));
  return *one + (*many - *one) * double(threads - 1) / double(calibrated_threads - 1);
}

/// Seconds of the separable path.
inline double direct_separable_cost(const conv_problem& p, const cost_profile& profile) {
  const double macs = direct_separable_macs(p);
  const int threads = direct_separable_threads(p);
  const int calibrated = int(profile_value(profile, "direct.threads", 1));
  return profile_value(profile, "direct.call_s", 1e-6) +
         macs / direct_separable_rate(profile, p.tune.instruction_set, threads, calibrated);
}

/// Seconds of the dense paths (the micro-kernel, or the gather path of sparse problems).
inline double direct_dense_cost(const conv_problem& p, const cost_profile& profile) {
  if (p.sparse()) return p.macs() / (direct_gather_rate * useful_threads(p.macs(), p.threads, 1e6));
  const cpu::isa i = p.tune.instruction_set;
  const double taps = double(p.rows.kernel) * double(p.cols.kernel);
  const int threads = direct_threads(p.macs(), p.threads);
  const int calibrated = int(profile_value(profile, "direct.threads", 1));
  const double call = profile_value(profile, "direct.call_s", 1e-6);
  const double rate = direct_rate(profile, i, taps, threads, calibrated);
  if (p.single_plane()) return call + p.macs() / rate;
  const double lanes = i == cpu::isa::avx512 ? 16 : i == cpu::isa::avx2 ? 8 : 1;
  const double row = double(p.cols.out), filled = row / (std::ceil(row / lanes) * lanes);
  const double shared_rows = p.rows.dilation % p.rows.stride == 0 ? 1.0 : 0.6;
  // Dense and grouped batches sum channels in each output plane; depthwise ones (one channel per
  // filter) do not. Each kind is measured apart.
  const std::string base = std::string("direct.") + isa_name(i);
  const double dense_scale = profile_value(profile, base + ".batch_scale", 1.0);
  const double kind_scale = p.c_per_group() == 1 ? profile_value(profile, base + ".depthwise_scale", 1.0)
                            : p.groups > 1       ? profile_value(profile, base + ".grouped_scale", dense_scale)
                                                 : dense_scale;
  const double batch = (taps / (taps + 16)) / (taps / (taps + 30)) * filled * shared_rows * kind_scale;
  const double elems = double(p.n) * double(p.c) * double(p.rows.extent) * double(p.cols.extent);
  return call + p.macs() / (rate * batch) + elems * 1e-9;
}

inline bool runs_separably(const conv_problem& p, const cost_profile& profile) {
  if (p.kernel_rank == 0 || p.sparse() || !(p.single_plane() || p.c_per_group() == 1)) return false;
  return p.tune.separable == separable_use::always || direct_separable_cost(p, profile) < direct_dense_cost(p, profile);
}

/// The direct backend's cost: the cheaper of its dense and separable paths (the one it runs).
inline double direct_cost(const conv_problem& p, const cost_profile& profile) {
  return runs_separably(p, profile) ? direct_separable_cost(p, profile) : direct_dense_cost(p, profile);
}

/// Measures direct_rate's constants: single planes of k x k kernels sized to ~2e8 multiply-adds
/// (quick: fewer kernels, ~2e7), 'same' with a zero border, on 1 thread and on all; a dense and a
/// depthwise layer for batch_scale and depthwise_scale; a tiny call for call_s. Every instruction set the CPU runs from
/// AVX2 up.
inline void direct_calibrate(calibration& c) {
  const int all = c.threads();
  c.set("direct.threads", all);
  std::vector<cpu::isa> sets{cpu::best_instruction_set()};
  if (sets[0] == cpu::isa::avx512 && !c.quick()) sets.push_back(cpu::isa::avx2);
  for (cpu::isa i : sets) {
    tuning t;
    t.instruction_set = i;
    const std::vector<int> thread_counts = all > 1 ? std::vector<int>{1, all} : std::vector<int>{1};
    const auto run = [&](const auto& sizes) {
      // Images large enough to leave the caches, as real ones do (the rate drops by ~20% there). One
      // thread and all are timed in alternation, so that their ratio holds while the machine drifts,
      // and in three passes over the kernels, whose median per kernel outlasts a neighbour taking
      // the second core for a few seconds (a rate measured then was half the others).
      constexpr int passes = 3;
      std::vector<std::vector<conv_problem>> problems;
      for (int k : sizes) {
        const double target = c.quick() ? 2e7 : 2e8;
        const index_t n = std::clamp<index_t>(index_t(std::sqrt(target / (double(k) * k))), 128, 3000);
        problems.emplace_back();
        for (int threads : thread_counts)
          problems.back().push_back(
              calibration::problem(1, 1, 1, n, n, k, k, (k - 1) / 2, 1, algorithm::direct, threads, t, false));
      }
      std::vector<std::vector<std::vector<double>>> seconds(problems.size());  // [kernel][threads][pass]
      for (int pass = 0; pass < passes; ++pass)
        for (std::size_t m = 0; m < problems.size(); ++m) {
          const std::vector<double> s = c.seconds(problems[m], nullptr, 1.0 / passes);
          seconds[m].resize(s.size());
          for (std::size_t j = 0; j < s.size(); ++j) seconds[m][j].push_back(s[j]);
        }
      for (std::size_t m = 0; m < problems.size(); ++m)
        for (std::size_t j = 0; j < thread_counts.size(); ++j) {
          std::vector<double>& v = seconds[m][j];
          std::nth_element(v.begin(), v.begin() + passes / 2, v.end());
          c.set(std::string("direct.") + isa_name(i) + ".t" + std::to_string(thread_counts[j]) + ".k" +
                    std::to_string(sizes[m]),
                problems[m][j].macs() / v[passes / 2]);
        }
    };
    c.step(std::string("direct (") + cpu::to_string(i) + "): kernels 1..31, 1 and " + std::to_string(all) + " threads");
    if (c.quick())
      run(direct_quick_kernel_sizes);
    else
      run(direct_kernel_sizes);
    // Batches: a 16 -> 16 channel 3x3 layer on 56 x 56 planes, against the model with scale 1.
    cost_profile so_far = c.profile();
    so_far.set_value(std::string("direct.") + isa_name(i) + ".batch_scale", 1.0);
    so_far.set_value(std::string("direct.") + isa_name(i) + ".depthwise_scale", 1.0);
    so_far.set_value(std::string("direct.") + isa_name(i) + ".grouped_scale", 1.0);
    const conv_problem layer = calibration::problem(2, 16, 16, 56, 56, 3, 3, 1, 1, algorithm::direct, all, t);
    const double predicted = direct_cost(layer, so_far) - profile_value(so_far, "direct.call_s", 1e-6);
    c.set(std::string("direct.") + isa_name(i) + ".batch_scale", predicted / c.seconds(layer));
    // Depthwise: 256 groups of one channel and one filter, 14 x 14.
    const conv_problem depthwise =
        calibration::problem(1, 256, 256, 14, 14, 3, 3, 1, 1, algorithm::direct, all, t, true, 256);
    const double predicted_dw = direct_cost(depthwise, so_far) - profile_value(so_far, "direct.call_s", 1e-6);
    c.set(std::string("direct.") + isa_name(i) + ".depthwise_scale", predicted_dw / c.seconds(depthwise));
    const conv_problem grouped = calibration::grouped_layer(algorithm::direct, all, t);
    const double predicted_g = direct_cost(grouped, so_far) - profile_value(so_far, "direct.call_s", 1e-6);
    c.set(std::string("direct.") + isa_name(i) + ".grouped_scale", predicted_g / c.seconds(grouped));
  }
  const conv_problem tiny = calibration::problem(1, 1, 1, 16, 16, 3, 3, 1, 1, algorithm::direct, 1, {}, false);
  c.set("direct.call_s", c.seconds(tiny));
  // The separable path's 1-D passes: a 15 x 15 Gaussian (rank 1) on a 1000 x 1000 image, 1 and all threads.
  std::vector<float> gauss(15 * 15);
  for (int u = 0; u < 15; ++u)
    for (int v = 0; v < 15; ++v)
      gauss[std::size_t(u * 15 + v)] = float(std::exp(-((u - 7) * (u - 7) + (v - 7) * (v - 7)) / 18.0));
  for (cpu::isa i : sets) {
    tuning t;
    t.instruction_set = i;
    const std::vector<int> thread_counts = all > 1 ? std::vector<int>{1, all} : std::vector<int>{1};
    std::vector<conv_problem> problems;
    for (int threads : thread_counts) {
      problems.push_back(calibration::problem(1, 1, 1, 1000, 1000, 15, 15, 7, 1, algorithm::direct, threads, t, false));
      problems.back().kernel_rank = 1;
    }
    const std::vector<double> s = c.seconds(problems, gauss.data());
    for (std::size_t j = 0; j < problems.size(); ++j)
      c.set(std::string("direct.") + isa_name(i) + ".separable.t" + std::to_string(thread_counts[j]),
            direct_separable_macs(problems[j]) / s[j]);
  }
}

inline const backend direct_backend{algorithm::direct,   "convkit::convkit",   &direct_cost,
                                    &make_direct<float>, &make_direct<double>, &direct_calibrate};
inline const bool direct_registered = register_backend(direct_backend);

}  // namespace detail
CONVKIT_NAMESPACE_END
