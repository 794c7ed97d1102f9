// The fuzz target: bytes -> one whole call of convkit's public API, checked against the float64
// reference or against the error contract.
//
// A call is decoded byte by byte (bytes past the end read as 0): the front door (conv2d or a plan,
// single image, image of pixels of any type and 0-5 channels, or layer), the precision, shapes (empty, negative and
// huge ones too), view gaps, every option field including values outside their enumerators, extreme strides, dilations
// and paddings, tuning fields, aliasing between output and input, and data with NaN and Inf. Then:
//   - the call throws convkit::error or convkit::unavailable: the contract (a bad argument, named;
//     or a backend not here). Anything else thrown, a crash, a sanitizer report or a hang is a
//     finding;
//   - the call succeeds: every output element is compared with reference::conv2d within the error
//     bound of the backend that ran (local bound for direct and im2col; the transform bound for an
//     FFT; NaN and Inf exactly where the definition puts them unless an FFT was asked for by name).
//
// Built with clang's -fsanitize=fuzzer,address,undefined (CONVKIT_LIBFUZZER) it is a libFuzzer target;
// built otherwise it has a main() that runs the seed corpus files given as arguments, then random
// inputs: fuzz_conv2d [--runs N] [--seed S] [files...].
#include <convkit/convkit.hpp>
#include <convkit/reference.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace convkit;

/// Reads the input a byte at a time; past the end, zeros.
class bytes {
 public:
  bytes(const std::uint8_t* d, std::size_t n) : d_(d), n_(n) {}
  std::uint8_t u8() { return at_ < n_ ? d_[at_++] : 0; }
  bool flag() { return u8() & 1; }
  /// A small count in [lo, hi].
  index_t small(index_t lo, index_t hi) { return lo + index_t(u8()) % (hi - lo + 1); }
  /// Mostly small (1..4), sometimes extreme: 0, negative, huge.
  int step() {
    const std::uint8_t b = u8();
    switch (b % 16) {
      case 0: return 0;
      case 1: return -1;
      case 2: return INT_MAX;
      case 3: return 1 << 30;
      case 4: return 1000 + b;
      default: return 1 + b % 4;
    }
  }
  int pad() {
    const std::uint8_t b = u8();
    switch (b % 16) {
      case 0: return -1;
      case 1: return INT_MAX;
      case 2: return 1 << 30;
      default: return b % 5;
    }
  }
  /// An extent: mostly 1..max, sometimes 0 or negative.
  index_t extent(index_t max) {
    const std::uint8_t b = u8();
    if (b == 0) return 0;
    if (b == 1) return -3;
    return 1 + index_t(b) % max;
  }
  template <class E>
  E enumerator(int count) {
    const std::uint8_t b = u8();
    if (b % 23 == 22) return static_cast<E>(b % 3 == 0 ? 77 : b % 3 == 1 ? -1 : count);  // outside
    return static_cast<E>(b % count);
  }
  double value() {
    const std::uint8_t b = u8();
    switch (b % 32) {
      case 0: return std::numeric_limits<double>::quiet_NaN();
      case 1: return std::numeric_limits<double>::infinity();
      case 2: return -std::numeric_limits<double>::infinity();
      case 3: return 1e300;
      case 4: return 0.0;
      default: return double(int(b) - 128) / 64.0;
    }
  }

 private:
  const std::uint8_t* d_;
  std::size_t n_, at_ = 0;
};

/// What the current input decoded to, for the report of a finding.
std::string& current_call() {
  static std::string call;
  return call;
}

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_conv2d finding: %s\n  call: %s\n", what.c_str(), current_call().c_str());
  std::abort();
}

/// The options of a single image (options) or a layer (layer_options), for the report of a finding.
template <class Options>
std::string describe(const Options& o) {
  std::string shape;
  if constexpr (std::is_same_v<Options, options>)
    shape = std::string("mode ") + std::to_string(int(o.mode)) + (o.correlate ? " correlate" : " convolve") +
            " value " + std::to_string(o.edge_value);
  else
    shape =
        "groups " + std::to_string(o.groups) + " pad " + std::to_string(o.pad_rows) + "," + std::to_string(o.pad_cols);
  return shape + " edge " + std::to_string(int(o.edge)) + " stride " + std::to_string(o.stride_rows) + "," +
         std::to_string(o.stride_cols) + " dilation " + std::to_string(o.dilation_rows) + "," +
         std::to_string(o.dilation_cols) + " algo " + std::to_string(int(o.algo)) + " accuracy " +
         std::to_string(int(o.accuracy)) + " threads " + std::to_string(o.threads) +
         (o.tune.fft
              ? " fft tiles " + std::to_string(int(o.tune.fft->tiles)) + " " + std::to_string(o.tune.fft->tile_rows) +
                    "x" + std::to_string(o.tune.fft->tile_cols) + " cap " + std::to_string(o.tune.fft->memory_cap)
              : "") +
         (o.tune.im2col_workspace ? " im2col workspace " + std::to_string(*o.tune.im2col_workspace) : "") +
         (o.tune.single_threaded_blas ? " single-threaded blas " + std::to_string(*o.tune.single_threaded_blas) : "") +
         (o.tune.instruction_set ? " isa " + std::to_string(int(*o.tune.instruction_set)) : "") +
         (o.tune.choice ? " choice " + std::to_string(int(*o.tune.choice)) : "") +
         (o.tune.separable ? " separable " + std::to_string(int(*o.tune.separable)) : "") +
         (o.tune.separable_tolerance ? " tolerance " + std::to_string(*o.tune.separable_tolerance) : "");
}

/// Tuning fields, valid or not.
void decode_tuning(bytes& in, tuning& t) {
  const std::uint8_t which = in.u8();
  if (which & 1) {
    fft_config c;
    c.tiles = in.enumerator<fft_tiling>(3);
    c.tile_rows = index_t(in.u8() % 8) - 1;
    c.tile_cols = index_t(in.u8() % 8) - 1;
    c.memory_cap = in.flag() ? index_t(in.u8()) << 10 : index_t(64) << 20;
    t.fft = c;
  }
  if (which & 2) t.im2col_workspace = index_t(in.u8()) * 512 - 1024;
  if (which & 4) t.instruction_set = in.enumerator<cpu::isa>(3);
  if (which & 8) t.single_threaded_blas = in.flag();
  if (which & 16) {
    t.choice = in.enumerator<choice_rule>(2);
    // Measured choices go to a profile of the harness's own, never to the user's profile file.
    static const auto own = std::make_shared<const cost_profile>();
    t.profile = own;
  }
  if (which & 32) t.separable = in.enumerator<separable_use>(3);
  if (which & 64) {
    static const double tolerances[] = {0.0, 1e-6, 1e-3, 0.5, 1.0, -1e-3, std::nan("")};
    t.separable_tolerance = tolerances[in.u8() % 7];
  }
}

/// Replaces the rows x cols kernel with a sum of `terms` random outer products (the low-rank kernels
/// the direct backend runs as 1-D passes).
template <class T>
void make_low_rank(bytes& in, T* k, index_t rows, index_t cols, int terms) {
  std::mt19937 g(in.u8());
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<double> sum(static_cast<std::size_t>(rows * cols), 0.0), column(static_cast<std::size_t>(rows)),
      row(static_cast<std::size_t>(cols));
  for (int t = 0; t < terms; ++t) {
    for (double& x : column) x = d(g);
    for (double& x : row) x = d(g);
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j) sum[std::size_t(i * cols + j)] += column[std::size_t(i)] * row[std::size_t(j)];
  }
  for (std::size_t i = 0; i < sum.size(); ++i) k[i] = T(sum[i]);
}

/// The separable path's error (direct on a low-rank kernel) in units of eps ||kernel|| ||window||:
/// per term R + S + 2 roundings of products that may cancel between terms, the factors'
/// reconstruction error (2 eps) and an opted-in tolerance; 0 where `ran` never takes that path.
template <class T>
double separable_multiple(algorithm ran, const tuning& t, index_t k_rows, index_t k_cols) {
  if (ran == algorithm::fft || ran == algorithm::cufft || ran == algorithm::im2col) return 0.0;
  return double((k_rows + k_cols + 2) * detail::max_separable_rank + 2) +
         t.separable_tolerance.value_or(0.0) / std::numeric_limits<T>::epsilon();
}

/// The accuracy contract's local multiple for `taps` products and a bias (tests/problems.hpp,
/// contract_error): contract_multiple * gamma_m in units of eps.
template <class T>
double contract_local(index_t taps) {
  const double m = double(taps + 1), u = std::numeric_limits<T>::epsilon() / 2;
  return detail::contract_multiple * m / 2 / (1 - std::min(m * u, 0.5));
}

/// Adds the squares of plane's extended input under problem p (all of them to e2, those of the
/// finite elements to finite_e2, which bounds the windows of the finite outputs). Long double: the
/// square of a finite double near its range (1e300) overflows a double but must still count.
template <class T>
void add_extended_squares(view2d<const T> plane, const detail::conv_problem& p, long double& e2,
                          long double& finite_e2) {
  static_assert(std::numeric_limits<long double>::max_exponent >= 2 * std::numeric_limits<double>::max_exponent,
                "squares of doubles must fit");
  array2d<T> ext(p.rows.extent, p.cols.extent);
  extend<T>(plane, ext.view(), p.rows.pad_before, p.cols.pad_before, p.edge, p.fill<T>());
  for (index_t i = 0; i < ext.size(); ++i) {
    const long double x = ext.data()[i], x2 = x * x;
    e2 += x2;
    if (std::isfinite(x)) finite_e2 += x2;
  }
}

template <class T>
void fill(bytes& in, T* p, index_t n, bool specials) {
  const std::uint8_t seed = in.u8();
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> d(-1, 1);
  // One seed in four: a wide dynamic range, magnitudes from 1e-6 to 1e6 (the accuracy contract's
  // subject: small outputs beside large ones).
  const bool wide = seed % 4 == 3;
  for (index_t i = 0; i < n; ++i) p[i] = T(d(g) * (wide ? std::pow(10.0, double(int(g() % 13) - 6)) : 1.0));
  if (specials && n > 0) {
    const int count = in.u8() % 3;
    for (int k = 0; k < count; ++k) {
      const index_t at = index_t(in.u8()) * 131 % n;
      p[at] = T(k == 0 ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity());
    }
  }
}

/// got vs want: where want is finite, within eps * (local * magnitude + global_scale); where it is
/// NaN or Inf, NaN or Inf too (unless `spread` allows a transform to have spread them; with `any_kind`,
/// a lossy low-rank approximation of the kernel, NaN and Inf may trade places: its taps' signs are
/// not the kernel's). A transform's global_scale can overflow (values near double's range): then it
/// bounds nothing, as the bound says.
void compare(const double* want, const double* mag, const double* got, index_t n, double eps, double local,
             double global_scale, bool spread, const std::string& what, bool any_kind = false) {
  for (index_t i = 0; i < n; ++i) {
    const double w = want[i], g = got[i];
    if (!std::isfinite(w)) {
      if (spread) continue;
      if (std::isnan(w) && !any_kind ? !std::isnan(g) : !(std::isinf(g) || std::isnan(g)))
        finding(what + ": element " + std::to_string(i) + " should be NaN/Inf, got " + std::to_string(g));
      continue;
    }
    if (spread && !std::isfinite(g)) continue;
    const double allowed = eps * (local * mag[i] + global_scale) + 1e-300;
    if (!(std::abs(g - w) <= allowed))
      finding(what + ": element " + std::to_string(i) + " got " + std::to_string(g) + ", want " + std::to_string(w) +
              " (allowed " + std::to_string(allowed) + ")");
  }
}

/// A single image's options, every field from the input.
options decode_options(bytes& in) {
  options o;
  o.mode = in.enumerator<output>(3);
  o.edge = in.enumerator<border>(6);
  o.edge_value = in.value();
  o.stride_rows = in.step();
  o.stride_cols = in.step();
  o.dilation_rows = in.step();
  o.dilation_cols = in.step();
  o.correlate = in.flag();
  o.algo = in.enumerator<algorithm>(5);
  o.threads = int(in.u8() % 5) - 1;
  decode_tuning(in, o.tune);
  o.accuracy = in.enumerator<accuracy>(3);
  return o;
}

template <class T>
void single_image(bytes& in) {
  const index_t rows = in.extent(40), cols = in.extent(40), k_rows = in.extent(9), k_cols = in.extent(9);
  const index_t gap = in.small(0, 3);
  const options o = decode_options(in);
  const bool as_plan = in.flag(), alias = in.u8() % 13 == 0, specials = in.u8() % 4 == 0;
  const int terms = in.u8() % 4 == 0 ? 1 + in.u8() % 3 : 0;  // a low-rank kernel
  current_call() = std::string(sizeof(T) == 4 ? "float" : "double") + (as_plan ? " plan " : " conv2d ") +
                   std::to_string(rows) + "x" + std::to_string(cols) + " gap " + std::to_string(gap) + " * " +
                   std::to_string(k_rows) + "x" + std::to_string(k_cols) + " " + describe(o) +
                   (alias ? " aliased" : "") + (specials ? " specials" : "") +
                   (terms > 0 ? " rank " + std::to_string(terms) : "");
  if (std::getenv("CONVKIT_FUZZ_PRINT") != nullptr) std::fprintf(stderr, "%s\n", current_call().c_str());
  const index_t r = std::max<index_t>(rows, 1), c = std::max<index_t>(cols, 1);
  std::vector<T> storage(std::size_t(r * (c + gap) + 64 * 64)),
      kstore(std::size_t(std::max<index_t>(k_rows, 1) * std::max<index_t>(k_cols, 1)));
  fill(in, storage.data(), index_t(storage.size()), specials);
  fill(in, kstore.data(), index_t(kstore.size()), specials && in.flag());
  if (terms > 0 && k_rows > 0 && k_cols > 0) make_low_rank(in, kstore.data(), k_rows, k_cols, terms);
  try {
    const view2d<const T> image(storage.data(), rows, cols, cols < 0 ? -1 : cols + gap);
    const view2d<const T> kernel(kstore.data(), k_rows, k_cols);
    const shape2d s = output_shape(rows, cols, k_rows, k_cols, o);
    if (double(s.rows) * double(s.cols) > 2e5) return;  // a legal but large output: not this target's subject
    std::vector<T> out_store(std::size_t(s.rows * (s.cols + gap) + 1));
    // The output starts one element into the input's storage: it aliases the input where the
    // input's address range reaches past its first element (a 1 x 1 input does not), and must then be
    // refused before anything is written. A 1 x 1 input's output is computed, so it goes there only
    // where the storage holds it (a large 'full' output would overrun this harness's own buffer).
    const bool overlapping = (rows - 1) * (cols + gap) + cols > 1;
    const bool aliased = alias && (overlapping || 1 + s.rows * (s.cols + gap) <= index_t(storage.size()));
    T* out_data = aliased ? storage.data() + 1 : out_store.data();
    const view2d<T> out(out_data, s.rows, s.cols, s.cols + gap);
    algorithm ran;
    if (as_plan) {
      plan<T> p(rows, cols, kernel, o);
      ran = p.chosen();
      p.execute(image, out);
    } else {
      options probe = o;
      probe.tune.choice.reset();
      ran = o.algo == algorithm::automatic ? algorithm::automatic : plan<T>(rows, cols, kernel, probe).chosen();
      conv2d<T>(image, kernel, out, o);
    }
    if (aliased && overlapping) finding("an output overlapping the input was accepted");
    const array2d<double> want = reference::conv2d<T>(image, kernel, o),
                          mag = reference::conv2d<T>(image, kernel, o, true);
    array2d<double> got(s.rows, s.cols);
    for (index_t i = 0; i < s.rows; ++i)
      for (index_t j = 0; j < s.cols; ++j) got(i, j) = double(out(i, j));
    // automatic may have run an FFT (one-shot calls and plans may choose differently): it is held
    // to the looser of the two bounds, but must keep NaN and Inf where the definition puts them.
    const bool fft = ran == algorithm::fft || ran == algorithm::cufft || ran == algorithm::automatic;
    double scale = 0;
    const detail::conv_problem p =
        detail::make_problem(detail::image_request(rows, cols, k_rows, k_cols, o, sizeof(T)));
    // With NaN or Inf in the data, automatic must not have run an FFT: only the local bound holds.
    bool finite = std::isfinite(double(detail::to_element<T>(o.edge == border::constant ? o.edge_value : 0.0)));
    for (index_t i = 0; i < rows && finite; ++i) finite = detail::all_finite(image.row(i), cols);
    for (index_t i = 0; i < k_rows && finite; ++i) finite = detail::all_finite(kernel.row(i), k_cols);
    const double separable = separable_multiple<T>(ran, o.tune, k_rows, k_cols);
    const bool transform = fft && (finite || o.algo != algorithm::automatic);
    if ((transform || separable > 0) && !p.sparse()) {
      long double e2 = 0, finite_e2 = 0, k2 = 0;
      add_extended_squares<T>(image, p, e2, finite_e2);
      for (index_t i = 0; i < kernel.rows(); ++i)
        for (index_t j = 0; j < kernel.cols(); ++j) k2 += (long double)kernel(i, j) * kernel(i, j);
      // The transform bound: eps log2(N) ||extended input|| ||kernel||, N < 4 * extent^2. Where the
      // transform's sums could pass the type's range (spectra up to N ||x|| ||k||, the inverse's sum
      // N times that), it bounds nothing.
      if (transform) {
        const long double n_points = 4.0L * (p.rows.extent + p.rows.in) * (p.cols.extent + p.cols.in),
                          norms = std::sqrt(e2 * k2);
        scale = n_points * n_points * norms > (long double)std::numeric_limits<T>::max()
                    ? std::numeric_limits<double>::infinity()
                    : double(std::log2(n_points) * norms);
      }
      scale += separable * double(std::sqrt(finite_e2 * k2));
    }
    const bool spread = fft && o.algo != algorithm::automatic;               // asked for by name: may spread NaN
    if (std::isnan(scale)) scale = std::numeric_limits<double>::infinity();  // NaN data: an FFT bounds nothing
    const bool lossy = separable > 0 && o.tune.separable_tolerance.value_or(0.0) > 0;
    // The accuracy contract, where it is asked for (types.hpp): a multiple of the local bound alone.
    const bool contract =
        finite && !lossy &&
        (o.algo == algorithm::automatic ? o.accuracy != accuracy::normwise
                                        : o.algo == algorithm::fft && o.accuracy == accuracy::componentwise);
    compare(want.data(), mag.data(), got.data(), got.size(), std::numeric_limits<T>::epsilon(),
            contract ? contract_local<T>(k_rows * k_cols) : double(k_rows * k_cols + 1), contract ? 0.0 : scale, spread,
            contract ? "single image, accuracy contract" : "single image", lossy);
  } catch (const error&) {
  } catch (const unavailable&) {
  } catch (const std::exception& e) {
    finding(std::string("unexpected exception: ") + e.what());
  }
}

template <class T>
void layer(bytes& in) {
  const index_t n = in.extent(3), groups_raw = in.small(0, 4), c = in.extent(6), k = in.extent(6);
  const index_t h = in.extent(20), w = in.extent(20), r = in.extent(5), s = in.extent(5);
  layer_options o;
  o.groups = int(groups_raw);
  o.stride_rows = in.step();
  o.stride_cols = in.step();
  o.dilation_rows = in.step();
  o.dilation_cols = in.step();
  o.pad_rows = in.pad();
  o.pad_cols = in.pad();
  o.edge = in.enumerator<border>(6);
  o.algo = in.enumerator<algorithm>(5);
  o.threads = int(in.u8() % 4);
  decode_tuning(in, o.tune);
  o.accuracy = in.enumerator<accuracy>(3);
  const bool with_bias = in.flag(), as_plan = in.flag(), specials = in.u8() % 4 == 0;
  const index_t wc = groups_raw > 0 && c > 0 ? c / groups_raw + (in.u8() % 11 == 0) : 1;
  const auto cnt = [](std::initializer_list<index_t> e) {
    double p = 1;
    for (index_t x : e) p *= double(std::max<index_t>(x, 0));
    return p;
  };
  if (cnt({n, c, h, w}) > 1e5 || cnt({k, wc, r, s}) > 1e5) return;
  std::vector<T> input(std::size_t(cnt({n, c, h, w})) + 1), weights(std::size_t(cnt({k, wc, r, s})) + 1),
      bias(std::size_t(std::max<index_t>(k, 1)));
  fill(in, input.data(), index_t(input.size()), specials);
  fill(in, weights.data(), index_t(weights.size()), false);
  fill(in, bias.data(), index_t(bias.size()), false);
  current_call() = std::string(sizeof(T) == 4 ? "float" : "double") + (as_plan ? " layer_plan " : " layer conv2d ") +
                   std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w) +
                   " * " + std::to_string(k) + "x" + std::to_string(wc) + "x" + std::to_string(r) + "x" +
                   std::to_string(s) + " " + describe(o) + (with_bias ? " bias" : "") + (specials ? " specials" : "");
  if (std::getenv("CONVKIT_FUZZ_PRINT") != nullptr) std::fprintf(stderr, "%s\n", current_call().c_str());
  try {
    const view4d<const T> x(input.data(), n, c, h, w), wt(weights.data(), k, wc, r, s);
    const T* b = with_bias ? bias.data() : nullptr;
    const shape4d os = layer_output_shape(x.shape(), wt.shape(), o);
    if (cnt({os.n, os.c, os.h, os.w}) > 2e5) return;
    array4d<T> out(os.n, os.c, os.h, os.w);
    algorithm ran = o.algo;
    if (as_plan) {
      layer_plan<T> p(x.shape(), wt, b, o);
      ran = p.chosen();
      p.execute(x, out);
    } else {
      conv2d<T>(x, wt, b, out.view(), o);
    }
    const array4d<double> want = reference::conv2d<T>(x, wt, b, o), mag = reference::conv2d<T>(x, wt, b, o, true);
    std::vector<double> got(std::size_t(out.size()));
    for (index_t i = 0; i < out.size(); ++i) got[std::size_t(i)] = double(out.data()[i]);
    // automatic may have run an FFT unless the data hold NaN or Inf: the looser bound, but NaN and
    // Inf where the definition puts them.
    const bool fft = ran == algorithm::fft || ran == algorithm::cufft || ran == algorithm::automatic;
    const bool spread = (ran == algorithm::fft || ran == algorithm::cufft) && o.algo != algorithm::automatic;
    const bool finite = detail::all_finite(x.data(), x.size()) && detail::all_finite(wt.data(), wt.size());
    double scale = 0;
    if (fft && (finite || spread)) {  // a generous transform bound: sum of |x| * sum of |w|
      double xs = 0, ws = 0;
      for (index_t i = 0; i < x.size(); ++i) xs += std::abs(double(x.data()[i]));
      for (index_t i = 0; i < wt.size(); ++i) ws += std::abs(double(wt.data()[i]));
      scale = 64.0 * (xs * ws + (b != nullptr ? 1.0 : 0.0));
    }
    // Depthwise filters of low rank run separably: that path's bound, with every plane's extended
    // input and every filter (each bounds any one window and filter).
    const detail::conv_problem p =
        detail::make_problem(detail::layer_request(x.shape(), wt.shape(), b != nullptr, o, sizeof(T)));
    const double separable = separable_multiple<T>(ran, o.tune, r, s);
    if (separable > 0 && p.c_per_group() == 1 && !p.sparse()) {
      long double e2 = 0, finite_e2 = 0, k2 = 0;
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j < c; ++j) add_extended_squares<T>(x.plane(i, j), p, e2, finite_e2);
      for (index_t i = 0; i < wt.size(); ++i) k2 += (long double)wt.data()[i] * wt.data()[i];
      scale += separable * double(std::sqrt(finite_e2 * k2));
    }
    if (std::isnan(scale)) scale = std::numeric_limits<double>::infinity();  // NaN data: an FFT bounds nothing
    const bool lossy = separable > 0 && o.tune.separable_tolerance.value_or(0.0) > 0;
    const bool contract = finite && !lossy && o.algo == algorithm::automatic && o.accuracy != accuracy::normwise;
    compare(want.data(), mag.data(), got.data(), index_t(got.size()), std::numeric_limits<T>::epsilon(),
            contract ? contract_local<T>(wc * r * s) : double(wc * r * s + 1), contract ? 0.0 : scale, spread,
            contract ? "layer, accuracy contract" : "layer", lossy);
  } catch (const error&) {
  } catch (const unavailable&) {
  } catch (const std::exception& e) {
    finding(std::string("unexpected exception: ") + e.what());
  }
}

/// An image of pixels P (1-4 channels; 0 and 5 are refused) into Q: every output pixel the reference
/// rounded half to even and saturated, or a near-tie (one away, the exact value within the backend's
/// bound of the rounding boundary); integer pixels with an integer-valued kernel and border value
/// exactly. NaN and Inf in floating pixels become what to_pixel makes of the definition's value.
template <class P, class Q>
void pixel_image(bytes& in) {
  const index_t rows = in.extent(30), cols = in.extent(30), k_rows = in.extent(7), k_cols = in.extent(7);
  const index_t channels = in.small(0, 5), gap = in.small(0, 3);
  options o = decode_options(in);
  o.tune.separable_tolerance.reset();  // a lossy low-rank approximation's bound: single_image checks it
  const bool integer_kernel = in.flag(), specials = std::is_floating_point_v<P> && in.u8() % 4 == 0;
  if (integer_kernel) o.edge_value = std::round(o.edge_value);
  current_call() = std::string("pixels ") + std::to_string(sizeof(P)) + "->" + std::to_string(sizeof(Q)) + " " +
                   std::to_string(rows) + "x" + std::to_string(cols) + "x" + std::to_string(channels) + " * " +
                   std::to_string(k_rows) + "x" + std::to_string(k_cols) + " " + describe(o);
  if (std::getenv("CONVKIT_FUZZ_PRINT") != nullptr) std::fprintf(stderr, "%s\n", current_call().c_str());
  const index_t r = std::max<index_t>(rows, 1), c = std::max<index_t>(cols, 1) * std::max<index_t>(channels, 1);
  std::vector<P> storage(std::size_t(r * (c + gap)));
  std::vector<double> kstore(std::size_t(std::max<index_t>(k_rows, 1) * std::max<index_t>(k_cols, 1)));
  std::mt19937 g(in.u8());
  for (P& p : storage)
    p = std::is_integral_v<P>
            ? P(std::uniform_int_distribution<int>(std::numeric_limits<P>::lowest(), std::numeric_limits<P>::max())(g))
            : P(std::uniform_real_distribution<double>(-2, 300)(g));
  if (specials) storage[std::size_t(in.u8()) % storage.size()] = std::numeric_limits<P>::quiet_NaN();
  for (double& k : kstore)
    k = integer_kernel ? double(int(g() % 7) - 3) : std::uniform_real_distribution<double>(-1, 1)(g);
  try {
    const image_view<const P> img(storage.data(), rows, cols, channels, cols < 0 || channels < 1 ? -1 : c + gap);
    const view2d<const double> kernel(kstore.data(), k_rows, k_cols);
    const shape2d s = output_shape(rows, cols, k_rows, k_cols, o);
    if (double(s.rows) * double(s.cols) * double(channels) > 1e5) return;
    image<Q> out(s.rows, s.cols, channels);
    conv2d<P, double, Q>(img, kernel, out.view(), o);
    using T = detail::pixel_compute_t<P, Q>;
    const bool exact = detail::computes_exactly<P, Q>(kernel, o);
    const detail::conv_problem p =
        detail::make_problem(detail::image_request(rows, cols, k_rows, k_cols, o, sizeof(T)));
    const bool fft =
        !exact && (o.algo == algorithm::fft || o.algo == algorithm::cufft || o.algo == algorithm::automatic);
    if (specials && o.algo != algorithm::automatic && fft) return;  // an FFT asked for by name spreads NaN
    // A border value beyond T's range is +-Inf in T (documented): non-finite data, whose outputs the
    // single-image path checks.
    if (o.edge == border::constant && !std::isfinite(double(detail::to_element<T>(o.edge_value)))) return;
    for (index_t ch = 0; ch < channels; ++ch) {
      array2d<double> plane(rows, cols);
      for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) plane(i, j) = double(img(i, j, ch));
      const array2d<double> want = reference::conv2d<double>(plane, kernel, o),
                            mag = reference::conv2d<double>(plane, kernel, o, true);
      double scale = 0;
      if (fft && !p.sparse()) {
        array2d<double> ext(p.rows.extent, p.cols.extent);
        extend<double>(plane, ext.view(), p.rows.pad_before, p.cols.pad_before, o.edge, o.edge_value);
        long double e2 = 0, k2 = 0;
        for (index_t i = 0; i < ext.size(); ++i) e2 += (long double)ext.data()[i] * ext.data()[i];
        for (double k : kstore) k2 += (long double)k * k;
        scale = double(std::log2(4.0L * p.rows.extent * p.cols.extent) * std::sqrt(e2 * k2));
      }
      for (index_t i = 0; i < s.rows; ++i)
        for (index_t j = 0; j < s.cols; ++j) {
          const double w = want(i, j), got = double(out(i, j, ch));
          if (!std::isfinite(w) || !std::isfinite(scale)) continue;  // NaN data: checked by the tests
          const double allowed =
              std::numeric_limits<T>::epsilon() * (double(k_rows * k_cols + 2) * mag(i, j) + scale) + 1e-300;
          if constexpr (std::is_integral_v<Q>) {
            // Exact calls: the rounded, saturated sum. Others: the rounded, saturated value of
            // something within the error bound of the sum (near a tie, either neighbour; beside huge
            // cancelling terms, such as a border of 1e300 under taps of opposite signs, anything).
            const auto saturated = [](double v) {
              return std::clamp(std::nearbyint(v), double(std::numeric_limits<Q>::lowest()),
                                double(std::numeric_limits<Q>::max()));
            };
            const bool within =
                exact ? got == saturated(w) : got >= saturated(w - allowed) && got <= saturated(w + allowed);
            if (!within)
              finding("pixel (" + std::to_string(i) + ", " + std::to_string(j) + ", " + std::to_string(ch) + "): got " +
                      std::to_string(got) + ", exact " + std::to_string(w));
          } else if (!(std::abs(got - w) <= allowed + std::numeric_limits<Q>::epsilon() * std::abs(w))) {
            finding("pixel got " + std::to_string(got) + ", want " + std::to_string(w));
          }
        }
    }
  } catch (const error&) {
  } catch (const unavailable&) {
  } catch (const std::exception& e) {
    finding(std::string("unexpected exception: ") + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bytes in(data, size);
  const std::uint8_t what = in.u8();
  switch (what >= 248 ? what - 248 : -1) {  // 248..255: images of pixels (the seed corpus has none there)
    case 0: return pixel_image<std::uint8_t, std::uint8_t>(in), 0;
    case 1: return pixel_image<std::uint8_t, float>(in), 0;
    case 2: return pixel_image<std::uint16_t, std::uint16_t>(in), 0;
    case 3: return pixel_image<std::int16_t, std::int16_t>(in), 0;
    case 4: return pixel_image<float, std::uint8_t>(in), 0;
    case 5: return pixel_image<float, float>(in), 0;
    case 6: return pixel_image<double, std::uint16_t>(in), 0;
    case 7: return pixel_image<std::uint8_t, double>(in), 0;
    default: break;
  }
  switch (what % 4) {
    case 0: single_image<float>(in); break;
    case 1: single_image<double>(in); break;
    case 2: layer<float>(in); break;
    case 3: layer<double>(in); break;
  }
  return 0;
}

#if !defined(CONVKIT_LIBFUZZER)
#include <fstream>
#include <iterator>

int main(int argc, char** argv) {
  long runs = 2000;
  std::uint64_t seed = std::random_device{}();
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc)
      runs = std::atol(argv[++i]);
    else if (a == "--seed" && i + 1 < argc)
      seed = std::strtoull(argv[++i], nullptr, 10);
    else
      files.push_back(a);
  }
  for (const std::string& f : files) {
    std::ifstream s(f, std::ios::binary);
    const std::vector<std::uint8_t> d((std::istreambuf_iterator<char>(s)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(d.data(), d.size());
  }
  std::printf("fuzz_conv2d: %zu corpus files; %ld random inputs from seed %llu\n", files.size(), runs,
              static_cast<unsigned long long>(seed));
  std::mt19937_64 g(seed);
  std::vector<std::uint8_t> d;
  for (long r = 0; r < runs; ++r) {
    d.resize(std::size_t(g() % 96));
    for (auto& b : d) b = std::uint8_t(g());
    LLVMFuzzerTestOneInput(d.data(), d.size());
  }
  return 0;
}
#endif
