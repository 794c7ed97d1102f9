// bench_pixels: convkit filtering images of pixels (image.hpp) against OpenCV 4.6 and libvips 8.14.
//
// Workloads: 8UC1, 8UC3 and 16UC1 images (uniform random pixels) of 1920x1080 and 3840x2160, each
// filtered with Gaussians of sigma 1, 2, 4 and 8 (the size cv::GaussianBlur picks for ksize 0:
// kernels::opencv_gaussian_size), Sobel 3x3 (dx 1, dy 0; into int16 for 8-bit input and float for
// 16-bit input, as cv::Sobel is usually called: an 8-bit or 16-bit output would saturate the
// negative half), box 5x5, and dense random 5x5 and 15x15 kernels (taps uniform in [-0.5, 1),
// normalised to sum 1: full rank, some negative taps, outputs mostly inside the pixel range so
// that saturation does not hide arithmetic). 'same' output, cross-correlation (filter2D's), the
// reflect border (OpenCV BORDER_REFLECT_101 = convkit border::reflect), every result rounded half
// to even and saturated to the output type.
//
// Contenders, interleaved in one process (A B C ..., B C A ..., as bench_common.hpp's interleaved();
// 2 rounds by default, medians with an even count's middle two averaged), at 1 and at 2 threads
// (options::threads, cv::setNumThreads, vips_concurrency_set), after an untimed warm-up (every
// variant once at the first thread count; the new plan and OpenCV's thread arena at the next):
//   ck conv2d    convkit's one-shot image call conv2d(image_view, view2d<double>, image_view, options)
//   ck plan      a convkit plan<float> made once outside the timing, plan.execute(image_view, image_view)
//   cv named     cv::GaussianBlur (ksize 0) / cv::Sobel / cv::blur
//   cv sepF2D    cv::sepFilter2D given the 1-D factors (separable kernels)
//   cv filter2D  cv::filter2D given the 2-D kernel (every kernel)
//   vips float   libvips in float precision: vips_gaussblur's two steps, vips_gaussmat (min_ampl
//                chosen so that the mask has OpenCV's size, hence OpenCV's taps; gaussblur's own
//                min_ampl stops at 0.001, too coarse for 16-bit's 4 sigma) and vips_convsep; vips_conv
//                (Sobel, random); vips_convsep (box); then vips_rint and vips_cast to the output type:
//                the same function as the others except at the border (below)
//   vips int     libvips' integer modes, gaussblur's default: vips_gaussmat precision integer (taps
//                rint(20 g), scale their sum; same mask size) and vips_convsep precision integer;
//                vips_conv precision integer with the Sobel mask (on the input cast to short, or to int
//                for 16-bit) and with a 5x5 mask of ones and scale 25 (box). Not for the random
//                kernels (an integer mask only). For uchar input libvips runs these with Orc vector
//                code on 8-bit approximations of the mask (vips_convi_intize); otherwise in C, int sums.
// libvips' convolutions (vips_convi, vips_convf) always extend their input by copying the edge
// pixels (vips_embed VIPS_EXTEND_COPY = BORDER_REPLICATE = border::replicate) and have no reflect
// option, so the libvips columns compute the replicate border: their mismatches are counted against
// the float64 reference with border::replicate (arithmetic, not the border choice), and their times
// include an edge extension no dearer than the reflect one. vips_sobel computes the magnitude of both
// derivatives (not comparable), so Sobel uses vips_conv with the dx mask.
//
// Mismatches: each output is compared, at 9 windows of 64 x 64 pixels (the four corners, the middle
// of each edge and the centre: every border case and the interior), with convkit's
// reference::conv2d<double> of that window (computed once per workload, outside the timing) rounded
// half to even and saturated; the count is of samples (pixel x channel) that differ.
//
//   bench_pixels                        everything, 2 rounds (128 s on a 2-vCPU Xeon; more while
//                                       other jobs share the machine)
//   bench_pixels --quick                1920x1080, Gaussian sigma 2, Sobel, random 5x5, 1 round
//   bench_pixels --rounds 7 --threads 1,2 --sizes 1920x1080 --formats 8UC1,16UC1
//                --filters g1,g2,g4,g8,sobel,box5,rand5,rand15
#include <convkit/convkit.hpp>
#include <convkit/image.hpp>
#include <convkit/kernels.hpp>
#include <convkit/reference.hpp>

#include <time.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "bench_common.hpp"

#if defined(CONVKIT_BENCH_OPENCV)
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#endif
#if defined(CONVKIT_BENCH_VIPS)
#include <vips/vips.h>
// (after vips.h) vips_vector_isenabled: whether libvips' uchar integer path runs Orc code
#include <vips/vector.h>
#endif

namespace {

using convkit::array2d;
using convkit::image;
using convkit::image_view;
using convkit::index_t;
using convkit::view2d;
namespace bench = convkit::bench;

// ---------------------------------------------------------------------------------------------
// What is measured

enum class filter_kind { gaussian, sobel, box, random };

struct filter {
  std::string key;  ///< command-line name
  filter_kind kind;
  double sigma = 0;  ///< Gaussians
  index_t size = 0;  ///< box and random kernels
};

const std::vector<filter>& all_filters() {
  static const std::vector<filter> f{{"g1", filter_kind::gaussian, 1, 0},  {"g2", filter_kind::gaussian, 2, 0},
                                     {"g4", filter_kind::gaussian, 4, 0},  {"g8", filter_kind::gaussian, 8, 0},
                                     {"sobel", filter_kind::sobel, 0, 3},  {"box5", filter_kind::box, 0, 5},
                                     {"rand5", filter_kind::random, 0, 5}, {"rand15", filter_kind::random, 0, 15}};
  return f;
}

struct pixel_format {
  std::string name;
  int channels;
  bool sixteen;  ///< 16UC<n>, else 8UC<n>
};

struct image_size {
  index_t cols, rows;
  std::string name() const { return std::to_string(cols) + "x" + std::to_string(rows); }
};

/// The kernel of a filter for 8-bit or 16-bit input, in correlation order, with its 1-D factors
/// (kernel = column * row) when it is separable.
struct kernel_set {
  std::string label;
  array2d<double> dense;
  std::vector<double> column, row;  ///< empty: not separable
  index_t gaussian_size = 0;
};

std::vector<double> to_vector(const array2d<double>& a) { return std::vector<double>(a.data(), a.data() + a.size()); }

kernel_set make_kernel(const filter& f, bool eight_bit) {
  namespace kn = convkit::kernels;
  kernel_set k;
  char label[64];
  switch (f.kind) {
    case filter_kind::gaussian: {
      const index_t n = kn::opencv_gaussian_size(f.sigma, eight_bit);
      const kn::factors g = kn::gaussian_factors(f.sigma, n);
      k.dense = g.kernel();
      k.column = to_vector(g.column);
      k.row = to_vector(g.row);
      k.gaussian_size = n;
      std::snprintf(label, sizeof label, "Gauss s%g %tdx%td", f.sigma, n, n);
      break;
    }
    case filter_kind::sobel: {
      const kn::factors s = kn::sobel_factors(1, 0, 3);
      k.dense = s.kernel();
      k.column = to_vector(s.column);
      k.row = to_vector(s.row);
      std::snprintf(label, sizeof label, "Sobel dx 3x3");
      break;
    }
    case filter_kind::box: {
      const kn::factors b = kn::box_factors(f.size, f.size);
      k.dense = b.kernel();
      k.column = to_vector(b.column);
      k.row = to_vector(b.row);
      std::snprintf(label, sizeof label, "box %tdx%td", f.size, f.size);
      break;
    }
    case filter_kind::random: {
      k.dense = array2d<double>(f.size, f.size);
      std::mt19937 g(unsigned(1000 + f.size));
      std::uniform_real_distribution<double> d(-0.5, 1.0);
      double sum = 0;
      for (index_t i = 0; i < k.dense.size(); ++i) sum += k.dense.data()[i] = d(g);
      for (index_t i = 0; i < k.dense.size(); ++i) k.dense.data()[i] /= sum;
      std::snprintf(label, sizeof label, "random %tdx%td", f.size, f.size);
      break;
    }
  }
  k.label = label;
  return k;
}

template <class P>
image<P> random_pixels(index_t rows, index_t cols, int channels, unsigned seed) {
  image<P> im(rows, cols, channels);
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> d(0, int(std::numeric_limits<P>::max()));
  for (index_t i = 0; i < im.size(); ++i) im.data()[i] = P(d(g));
  return im;
}

// ---------------------------------------------------------------------------------------------
// The float64 reference at 9 windows, and the mismatches of an output against it

struct window {
  index_t r0, c0, rows, cols;
  std::vector<double> values;  ///< rows x cols x channels, interleaved
};

/// reference::conv2d<double> ('valid', correlation) of each window's input, extended around the
/// window by `edge` (border_index): the 'same' output of the whole image at those pixels.
template <class P>
std::vector<window> reference_windows(image_view<const P> in, const array2d<double>& kernel, convkit::border edge) {
  const index_t H = in.rows(), W = in.cols(), C = in.channels();
  const index_t s_r = std::min<index_t>(64, H), s_c = std::min<index_t>(64, W);
  const index_t kr = kernel.rows(), kc = kernel.cols(), ry = (kr - 1) / 2, rx = (kc - 1) / 2;
  convkit::options o;
  o.mode = convkit::output::valid;
  o.correlate = true;
  std::vector<window> out;
  for (index_t r0 : {index_t(0), (H - s_r) / 2, H - s_r})
    for (index_t c0 : {index_t(0), (W - s_c) / 2, W - s_c}) {
      window w{r0, c0, s_r, s_c, std::vector<double>(std::size_t(s_r * s_c * C))};
      array2d<double> padded(s_r + kr - 1, s_c + kc - 1);
      for (index_t ch = 0; ch < C; ++ch) {
        for (index_t i = 0; i < padded.rows(); ++i)
          for (index_t j = 0; j < padded.cols(); ++j)
            padded(i, j) = double(
                in(convkit::border_index(r0 - ry + i, H, edge), convkit::border_index(c0 - rx + j, W, edge), ch));
        const array2d<double> ref = convkit::reference::conv2d<double>(padded.view(), kernel.view(), o);
        for (index_t i = 0; i < s_r; ++i)
          for (index_t j = 0; j < s_c; ++j) w.values[std::size_t((i * s_c + j) * C + ch)] = ref(i, j);
      }
      out.push_back(std::move(w));
    }
  return out;
}

/// The pixel of type Q that the exact value x should give: rounded half to even (nearbyint in the
/// default rounding mode), saturated; a float output is x rounded to float.
template <class Q>
double expected_pixel(double x) {
  if constexpr (std::is_floating_point_v<Q>) {
    return double(Q(x));
  } else {
    const double lo = double(std::numeric_limits<Q>::lowest()), hi = double(std::numeric_limits<Q>::max());
    return std::nearbyint(std::min(hi, std::max(lo, x)));
  }
}

struct mismatch_count {
  long long count = 0, checked = 0;
  double largest = 0;  ///< the largest |output - expected|
  /// Integer outputs off by 1: the largest distance of the exact value from the nearest rounding
  /// boundary (a tie, k + 0.5), -1 if none: small means a near-tie (an error bound's business).
  double tie_distance = -1;
};

template <class Q>
mismatch_count mismatches(image_view<const Q> out, const std::vector<window>& ref) {
  mismatch_count m;
  const index_t C = out.channels();
  for (const window& w : ref)
    for (index_t i = 0; i < w.rows; ++i)
      for (index_t j = 0; j < w.cols; ++j)
        for (index_t ch = 0; ch < C; ++ch) {
          const double want = expected_pixel<Q>(w.values[std::size_t((i * w.cols + j) * C + ch)]);
          const double got = double(out(w.r0 + i, w.c0 + j, ch));
          ++m.checked;
          if (got != want) {
            ++m.count;
            m.largest = std::max(m.largest, std::abs(got - want));
            const double x = w.values[std::size_t((i * w.cols + j) * C + ch)];
            if (std::is_integral_v<Q> && std::abs(got - want) == 1)
              m.tie_distance = std::max(m.tie_distance, std::abs(x - (std::floor(x) + 0.5)));
          }
        }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Columns

enum column { ck_call, ck_plan, cv_named, cv_sep, cv_f2d, vips_float, vips_int, n_columns };
const char* const column_names[n_columns] = {"ck conv2d",   "ck plan",    "cv named", "cv sepF2D",
                                             "cv filter2D", "vips float", "vips int"};
bool is_opencv(int c) { return c == cv_named || c == cv_sep || c == cv_f2d; }
bool is_vips(int c) { return c == vips_float || c == vips_int; }

/// One row of the table: a workload at a thread count.
struct row_result {
  std::string format, size, filter;
  bool sixteen = false;
  int threads = 0;
  std::array<bool, n_columns> present{};
  std::array<bench::timing_summary, n_columns> t{};
  std::array<mismatch_count, n_columns> miss{};
  long long allocs_call = 0, allocs_plan = 0;
};

// ---------------------------------------------------------------------------------------------
// OpenCV and libvips glue

#if defined(CONVKIT_BENCH_OPENCV)
template <class T>
int cv_depth() {
  if constexpr (std::is_same_v<T, std::uint8_t>) return CV_8U;
  if constexpr (std::is_same_v<T, std::uint16_t>) return CV_16U;
  if constexpr (std::is_same_v<T, std::int16_t>) return CV_16S;
  return CV_32F;
}
template <class T>
cv::Mat as_mat(image_view<T> v) {
  using E = std::remove_const_t<T>;
  return cv::Mat(int(v.rows()), int(v.cols()), CV_MAKETYPE(cv_depth<E>(), int(v.channels())), const_cast<E*>(v.data()),
                 std::size_t(v.row_stride()) * sizeof(E));
}
#endif

#if defined(CONVKIT_BENCH_VIPS)
template <class T>
VipsBandFormat vips_format() {
  if constexpr (std::is_same_v<T, std::uint8_t>) return VIPS_FORMAT_UCHAR;
  if constexpr (std::is_same_v<T, std::uint16_t>) return VIPS_FORMAT_USHORT;
  if constexpr (std::is_same_v<T, std::int16_t>) return VIPS_FORMAT_SHORT;
  return VIPS_FORMAT_FLOAT;
}

[[noreturn]] void vips_fail(const char* what) {
  std::fprintf(stderr, "bench_pixels: libvips %s failed: %s\n", what, vips_error_buffer());
  std::exit(1);
}

/// Owns the VipsImages of one call.
struct vips_refs {
  std::vector<VipsImage*> images;
  VipsImage* keep(VipsImage* im) {
    images.push_back(im);
    return im;
  }
  ~vips_refs() {
    for (VipsImage* im : images) g_object_unref(im);
  }
};

template <class T>
VipsImage* vips_wrap(image_view<T> v) {
  using E = std::remove_const_t<T>;
  VipsImage* im = vips_image_new_from_memory(v.data(), std::size_t(v.rows() * v.row_stride()) * sizeof(E),
                                             int(v.cols()), int(v.rows()), int(v.channels()), vips_format<E>());
  if (im == nullptr) vips_fail("vips_image_new_from_memory");
  return im;
}

/// Computes `result` into the caller's buffer `out` (no copy: the sink writes there).
template <class Q>
void vips_write_into(VipsImage* result, image_view<Q> out) {
  VipsImage* target = vips_wrap(out);
  if (vips_image_write(result, target)) vips_fail("vips_image_write");
  g_object_unref(target);
}

/// A matrix image (mask) of rows x cols doubles with `scale`.
VipsImage* vips_mask(index_t rows, index_t cols, const double* taps, double scale = 1.0) {
  VipsImage* m = vips_image_new_matrix_from_array(int(cols), int(rows), taps, int(rows * cols));
  if (m == nullptr) vips_fail("vips_image_new_matrix_from_array");
  vips_image_set_double(m, "scale", scale);
  vips_image_set_double(m, "offset", 0.0);
  return m;
}

/// min_ampl for vips_gaussblur / vips_gaussmat that gives a mask of `size` (odd) taps: gaussmat
/// extends the mask while exp(-x^2 / (2 sigma^2)) >= min_ampl.
double vips_min_ampl(double sigma, index_t size) {
  const double r = double(size / 2) + 0.5;
  return std::exp(-r * r / (2 * sigma * sigma));
}
#endif

// ---------------------------------------------------------------------------------------------
// One workload: a format, a size, a filter, at each thread count

struct settings {
  std::vector<int> threads{1, 2};
  int rounds = 2;
};

/// The median of `x`, the mean of the two middle values for an even count.
double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  const std::size_t n = x.size();
  return n == 0 ? 0 : n % 2 == 1 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/// bench::interleaved without its warm-up round (run_workload warms up): `rounds` rounds, each
/// running every variant once, starting one later each round (A B C, B C A, ...); per variant the
/// median (an even count's two middle values averaged), the fastest and the slowest.
std::vector<bench::timing_summary> interleaved_rounds(const std::vector<std::function<void()>>& variants, int rounds) {
  using clock = std::chrono::steady_clock;
  std::vector<std::vector<double>> runs(variants.size());
  for (int r = 0; r < rounds; ++r)
    for (std::size_t j = 0; j < variants.size(); ++j) {
      const std::size_t i = (j + std::size_t(r)) % variants.size();
      const auto t0 = clock::now();
      variants[i]();
      runs[i].push_back(std::chrono::duration<double>(clock::now() - t0).count());
    }
  std::vector<bench::timing_summary> out;
  for (auto& t : runs) {
    const auto [lo, hi] = std::minmax_element(t.begin(), t.end());
    out.push_back({median(t), *lo, *hi, std::move(t)});
  }
  return out;
}

/// CPU seconds of every thread of this process so far (CLOCK_PROCESS_CPUTIME_ID: the scheduler's exact
/// runtime; getrusage's user/system split is adjusted after the fact and can appear to grow later).
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

template <class P, class Q>
void run_workload(const pixel_format& fmt, const image<P>& input, const filter& f, const settings& s,
                  std::vector<row_result>& rows_out) {
  using namespace convkit;
  const bool eight_bit = !fmt.sixteen;
  const kernel_set k = make_kernel(f, eight_bit);
  const index_t H = input.rows(), W = input.cols(), C = input.channels();
  const image_view<const P> src = input.view();
  [[maybe_unused]] const bool separable = !k.column.empty();

  // References (outside any timing): reflect for convkit and OpenCV, replicate for libvips.
  const std::vector<window> ref_reflect = reference_windows<P>(src, k.dense, border::reflect);
  std::vector<window> ref_replicate;
#if defined(CONVKIT_BENCH_VIPS)
  ref_replicate = reference_windows<P>(src, k.dense, border::replicate);
#endif

  std::array<std::unique_ptr<image<Q>>, n_columns> outs;
  std::array<std::function<void()>, n_columns> calls;
  const auto out_of = [&](int c) {
    if (!outs[c]) outs[c] = std::make_unique<image<Q>>(H, W, C);
    return outs[c]->view();
  };

  options opt;
  opt.mode = output::same;
  opt.correlate = true;
  opt.edge = border::reflect;
  {
    const image_view<Q> dst = out_of(ck_call);
    calls[ck_call] = [&opt, src, &k, dst] { conv2d<P, double, Q>(src, k.dense.view(), dst, opt); };
  }
  array2d<float> kernel_f(k.dense.rows(), k.dense.cols());
  for (index_t i = 0; i < kernel_f.size(); ++i) kernel_f.data()[i] = float(k.dense.data()[i]);
  std::unique_ptr<plan<float>> the_plan;  // made per thread count below, outside the timing
  {
    const image_view<Q> dst = out_of(ck_plan);
    calls[ck_plan] = [&the_plan, src, dst] { the_plan->execute<P, Q>(src, dst); };
  }

#if defined(CONVKIT_BENCH_OPENCV)
  const int ddepth = cv_depth<Q>();
  const cv::Mat cv_src = as_mat(src);
  const cv::Mat cv_kernel(int(k.dense.rows()), int(k.dense.cols()), CV_64F, const_cast<double*>(k.dense.data()));
  const cv::Mat cv_kx(1, int(k.row.size()), CV_64F, const_cast<double*>(k.row.data()));
  const cv::Mat cv_ky(int(k.column.size()), 1, CV_64F, const_cast<double*>(k.column.data()));
  // OpenCV writes into our buffers (dst.create() keeps a Mat of the right size and type); checked.
  const auto check_mat = [](const cv::Mat& m, const void* want) {
    if (m.data != want) {
      std::fprintf(stderr, "bench_pixels: OpenCV reallocated an output\n");
      std::exit(1);
    }
  };
  if (f.kind != filter_kind::random) {
    cv::Mat dst = as_mat(out_of(cv_named));
    const double sigma = f.sigma;
    const int box = int(f.size);
    const filter_kind kind = f.kind;
    const void* want = dst.data;
    calls[cv_named] = [cv_src, dst, sigma, box, kind, ddepth, check_mat, want]() mutable {
      switch (kind) {
        case filter_kind::gaussian:
          cv::GaussianBlur(cv_src, dst, cv::Size(), sigma, sigma, cv::BORDER_REFLECT_101);
          break;
        case filter_kind::sobel: cv::Sobel(cv_src, dst, ddepth, 1, 0, 3, 1, 0, cv::BORDER_REFLECT_101); break;
        case filter_kind::box:
          cv::blur(cv_src, dst, cv::Size(box, box), cv::Point(-1, -1), cv::BORDER_REFLECT_101);
          break;
        case filter_kind::random: break;
      }
      check_mat(dst, want);
    };
  }
  if (separable) {
    cv::Mat dst = as_mat(out_of(cv_sep));
    const void* want = dst.data;
    calls[cv_sep] = [cv_src, dst, cv_kx, cv_ky, ddepth, check_mat, want]() mutable {
      cv::sepFilter2D(cv_src, dst, ddepth, cv_kx, cv_ky, cv::Point(-1, -1), 0, cv::BORDER_REFLECT_101);
      check_mat(dst, want);
    };
  }
  {
    cv::Mat dst = as_mat(out_of(cv_f2d));
    const void* want = dst.data;
    calls[cv_f2d] = [cv_src, dst, cv_kernel, ddepth, check_mat, want]() mutable {
      cv::filter2D(cv_src, dst, ddepth, cv_kernel, cv::Point(-1, -1), 0, cv::BORDER_REFLECT_101);
      check_mat(dst, want);
    };
  }
#endif

#if defined(CONVKIT_BENCH_VIPS)
  // Masks made once per workload (a user would keep them too); each call builds its pipeline.
  struct mask_holder {
    VipsImage* m = nullptr;
    ~mask_holder() {
      if (m) g_object_unref(m);
    }
  };
  auto dense_mask = std::make_shared<mask_holder>();
  dense_mask->m = vips_mask(k.dense.rows(), k.dense.cols(), k.dense.data());
  auto row_mask = std::make_shared<mask_holder>();
  if (separable) row_mask->m = vips_mask(1, index_t(k.row.size()), k.row.data());
  auto ones_mask = std::make_shared<mask_holder>();
  if (f.kind == filter_kind::box) {
    const std::vector<double> ones(std::size_t(f.size * f.size), 1.0);
    ones_mask->m = vips_mask(f.size, f.size, ones.data(), double(f.size * f.size));
  }
  // Gaussians: vips_gaussblur is vips_gaussmat (separable) then vips_convsep in the same precision;
  // it is called as those two here because its min_ampl stops at 0.001, above what OpenCV's 16-bit
  // size (4 sigma) needs; gaussmat's goes down to 1e-6. The masks are checked: the float one has
  // OpenCV's taps, the integer one OpenCV's size (its taps are rint(20 g), scale their sum).
  auto gauss_float = std::make_shared<mask_holder>(), gauss_int = std::make_shared<mask_holder>();
  if (f.kind == filter_kind::gaussian) {
    const double min_ampl = vips_min_ampl(f.sigma, k.gaussian_size);
    if (vips_gaussmat(&gauss_float->m, f.sigma, min_ampl, "separable", TRUE, "precision", VIPS_PRECISION_FLOAT,
                      nullptr) ||
        vips_gaussmat(&gauss_int->m, f.sigma, min_ampl, "separable", TRUE, "precision", VIPS_PRECISION_INTEGER,
                      nullptr))
      vips_fail("vips_gaussmat");
    const VipsImage* g = gauss_float->m;
    const double scale = vips_image_get_scale(g);
    double worst = 0;
    const bool same_size = g->Xsize == int(k.gaussian_size) && gauss_int->m->Xsize == int(k.gaussian_size);
    for (int i = 0; same_size && i < g->Xsize; ++i)
      worst = std::max(worst, std::abs(*VIPS_MATRIX(g, i, 0) / scale - k.row[std::size_t(i)]));
    if (!same_size || worst > 1e-12) {
      std::fprintf(stderr, "bench_pixels: vips_gaussmat's mask differs from OpenCV's (size or taps)\n");
      std::exit(1);
    }
  }
  {
    const image_view<Q> dst = out_of(vips_float);
    const filter_kind kind = f.kind;
    calls[vips_float] = [src, dst, kind, dense_mask, row_mask, gauss_float] {
      vips_refs r;
      VipsImage* in = r.keep(vips_wrap(src));
      VipsImage* a = nullptr;
      int rc = 0;
      switch (kind) {
        case filter_kind::gaussian:
          rc = vips_convsep(in, &a, gauss_float->m, "precision", VIPS_PRECISION_FLOAT, nullptr);
          break;
        case filter_kind::box:
          rc = vips_convsep(in, &a, row_mask->m, "precision", VIPS_PRECISION_FLOAT, nullptr);
          break;
        default: rc = vips_conv(in, &a, dense_mask->m, "precision", VIPS_PRECISION_FLOAT, nullptr); break;
      }
      if (rc) vips_fail("float convolution");
      r.keep(a);
      if constexpr (std::is_integral_v<Q>) {
        VipsImage *b = nullptr, *c = nullptr;
        if (vips_rint(a, &b, nullptr)) vips_fail("vips_rint");
        r.keep(b);
        if (vips_cast(b, &c, vips_format<Q>(), nullptr)) vips_fail("vips_cast");
        a = r.keep(c);
      }
      vips_write_into(a, dst);
    };
  }
  if (f.kind != filter_kind::random) {
    const image_view<Q> dst = out_of(vips_int);
    const filter_kind kind = f.kind;
    calls[vips_int] = [src, dst, kind, dense_mask, ones_mask, gauss_int] {
      vips_refs r;
      VipsImage* in = r.keep(vips_wrap(src));
      VipsImage* a = nullptr;
      switch (kind) {
        case filter_kind::gaussian:
          if (vips_convsep(in, &a, gauss_int->m, "precision", VIPS_PRECISION_INTEGER, nullptr))
            vips_fail("vips_convsep");
          r.keep(a);
          break;
        case filter_kind::sobel: {
          VipsImage *wide = nullptr, *c = nullptr;
          if (vips_cast(in, &wide, std::is_same_v<P, std::uint8_t> ? VIPS_FORMAT_SHORT : VIPS_FORMAT_INT, nullptr))
            vips_fail("vips_cast");
          r.keep(wide);
          if (vips_conv(wide, &a, dense_mask->m, "precision", VIPS_PRECISION_INTEGER, nullptr)) vips_fail("vips_conv");
          r.keep(a);
          if (a->BandFmt != vips_format<Q>()) {  // 16-bit: int sums, stored as float like the others
            if (vips_cast(a, &c, vips_format<Q>(), nullptr)) vips_fail("vips_cast");
            a = r.keep(c);
          }
          break;
        }
        case filter_kind::box:
          if (vips_conv(in, &a, ones_mask->m, "precision", VIPS_PRECISION_INTEGER, nullptr)) vips_fail("vips_conv");
          r.keep(a);
          break;
        case filter_kind::random: break;
      }
      vips_write_into(a, dst);
    };
  }
#endif

  for (int threads : s.threads) {
    opt.threads = threads;
    {
      options po = opt;
      the_plan = std::make_unique<plan<float>>(H, W, kernel_f.view(), po);
    }
#if defined(CONVKIT_BENCH_OPENCV)
    cv::setNumThreads(threads);
#endif
#if defined(CONVKIT_BENCH_VIPS)
    vips_concurrency_set(threads);
#endif
    // Warm-up, untimed: at the first thread count one call of every variant (each library's lazy
    // set-up, convkit's kernel analysis, the plan's first image execute); at the next ones only what
    // the new thread count makes anew: the new plan's first execute, OpenCV's thread arena
    // (setNumThreads rebuilds it), so that the slowest workloads are not run a whole extra time.
    if (threads == s.threads.front()) {
      for (const auto& c : calls)
        if (c) c();
    } else {
      calls[ck_plan]();
#if defined(CONVKIT_BENCH_OPENCV)
      cv::Mat small(64, 64, CV_8U, cv::Scalar(0)), blurred;
      cv::blur(small, blurred, cv::Size(3, 3));
#endif
    }
    std::vector<std::function<void()>> runs;
    std::vector<int> which;
    for (int c = 0; c < n_columns; ++c)
      if (calls[c]) {
        runs.push_back(calls[c]);
        which.push_back(c);
      }
    const std::vector<bench::timing_summary> t = interleaved_rounds(runs, s.rounds);
    row_result r;
    r.format = fmt.name;
    r.size = std::to_string(W) + "x" + std::to_string(H);
    r.filter = k.label;
    r.sixteen = fmt.sixteen;
    r.threads = threads;
    for (std::size_t i = 0; i < which.size(); ++i) {
      const int c = which[i];
      r.present[c] = true;
      r.t[c] = t[i];
      r.miss[c] = mismatches<Q>(outs[c]->view(), is_vips(c) ? ref_replicate : ref_reflect);
    }
    // Heap allocations of one more call of each convkit variant (operator new: convkit's; OpenCV and
    // libvips allocate through malloc / g_malloc, which this does not see).
    long long n0 = bench::alloc_count.load();
    calls[ck_call]();
    r.allocs_call = bench::alloc_count.load() - n0;
    n0 = bench::alloc_count.load();
    calls[ck_plan]();
    r.allocs_plan = bench::alloc_count.load() - n0;
    rows_out.push_back(std::move(r));
  }
}

// ---------------------------------------------------------------------------------------------
// Printing

std::string cell_time(const row_result& r, int c) {
  char buf[32];
  if (!r.present[c]) return "-";
  const bench::timing_summary& t = r.t[c];
  const double spread = t.median > 0 ? 100.0 * (t.slowest - t.fastest) / t.median : 0;
  std::snprintf(buf, sizeof buf, "%.2f ±%.0f%%", t.median * 1e3, spread);
  return buf;
}

/// The fastest OpenCV or libvips column of a row (by median), -1 if none; with `clean_only`, only
/// those whose mismatches are below 0.1% of the samples checked.
int best_peer(const row_result& r, bool clean_only) {
  int best = -1;
  for (int c = cv_named; c < n_columns; ++c) {
    if (!r.present[c]) continue;
    if (clean_only && r.miss[c].count * 1000 >= r.miss[c].checked) continue;
    if (best < 0 || r.t[c].median < r.t[best].median) best = c;
  }
  return best;
}

void print_header() {
  std::printf("%-5s %-9s %-16s %3s", "fmt", "size", "filter", "thr");
  for (int c = 0; c < n_columns; ++c) std::printf(" %13s", column_names[c]);
  std::printf(" | %7s %-11s | %7s |", "ck/best", "best peer", "allocs");
  for (int c = 0; c < n_columns; ++c)
    std::printf(" %6s", c == ck_call      ? "ck"
                        : c == ck_plan    ? "plan"
                        : c == cv_named   ? "cvN"
                        : c == cv_sep     ? "cvS"
                        : c == cv_f2d     ? "cvF"
                        : c == vips_float ? "vF"
                                          : "vI");
  std::printf("\n");
}

void print_row(const row_result& r) {
  std::printf("%-5s %-9s %-16s %3d", r.format.c_str(), r.size.c_str(), r.filter.c_str(), r.threads);
  for (int c = 0; c < n_columns; ++c) std::printf(" %13s", cell_time(r, c).c_str());
  const int b = best_peer(r, false);
  if (b >= 0)
    std::printf(" | %7.2f %-11s", r.t[ck_call].median / r.t[b].median, column_names[b]);
  else
    std::printf(" | %7s %-11s", "-", "");
  char allocs[32];
  std::snprintf(allocs, sizeof allocs, "%lld/%lld", r.allocs_call, r.allocs_plan);
  std::printf(" | %7s |", allocs);
  for (int c = 0; c < n_columns; ++c) {
    if (r.present[c])
      std::printf(" %6lld", r.miss[c].count);
    else
      std::printf(" %6s", "-");
  }
  std::printf("\n");
  std::fflush(stdout);
}

void print_summary(const std::vector<row_result>& rows, const std::vector<int>& threads) {
  std::printf(
      "\nck/best: convkit's one-shot conv2d median over the faster of OpenCV's and libvips' calls (the "
      "fastest column among cv named, cv sepF2D, cv filter2D, vips float, vips int); below 1: convkit "
      "faster. Geometric means (worst row):\n");
  struct variant {
    const char* what;
    int ck;
    bool clean;
  };
  for (const variant v :
       {variant{"ck conv2d / best peer", ck_call, false}, variant{"ck plan / best peer", ck_plan, false},
        variant{"ck conv2d / best peer with < 0.1% mismatches", ck_call, true}}) {
    std::printf("  %s:\n", v.what);
    for (bool sixteen : {false, true})
      for (int th : threads) {
        std::vector<double> ratios;
        const row_result* worst = nullptr;
        double worst_ratio = 0;
        for (const row_result& r : rows) {
          if (r.sixteen != sixteen || r.threads != th) continue;
          const int b = best_peer(r, v.clean);
          if (b < 0) continue;
          const double q = r.t[v.ck].median / r.t[b].median;
          ratios.push_back(q);
          if (q > worst_ratio) {
            worst_ratio = q;
            worst = &r;
          }
        }
        if (ratios.empty()) continue;
        const bench::ratio_summary sm = bench::summarise(ratios);
        std::printf("    %2s-bit rows, %d thread%s: %.3f over %zu rows (worst %.2f: %s %s %s)\n", sixteen ? "16" : "8",
                    th, th == 1 ? " " : "s", sm.geomean, ratios.size(), worst_ratio, worst->format.c_str(),
                    worst->size.c_str(), worst->filter.c_str());
      }
  }
  // Accuracy per column, 8-bit and 16-bit inputs apart.
  std::printf(
      "\nmismatches against the float64 reference rounded half to even and saturated (all rows): samples "
      "differing / checked, the largest |difference| in output units, and among integer outputs off by 1 the "
      "largest distance of the exact value from a rounding tie k + 0.5 (small: near-ties only)\n");
  std::printf("  %-12s %-44s %-44s\n", "", "8-bit input", "16-bit input");
  for (int c = 0; c < n_columns; ++c) {
    std::printf("  %-12s", column_names[c]);
    for (bool sixteen : {false, true}) {
      long long n = 0, checked = 0;
      double largest = 0, tie = -1;
      for (const row_result& r : rows)
        if (r.present[c] && r.sixteen == sixteen) {
          n += r.miss[c].count;
          checked += r.miss[c].checked;
          largest = std::max(largest, r.miss[c].largest);
          tie = std::max(tie, r.miss[c].tie_distance);
        }
      char cell[96], tie_text[32] = "-";
      if (tie >= 0) std::snprintf(tie_text, sizeof tie_text, "%.2g", tie);
      if (checked == 0)
        std::snprintf(cell, sizeof cell, "-");
      else
        std::snprintf(cell, sizeof cell, "%lld / %lld (%.2f%%), %g, %s", n, checked,
                      100.0 * double(n) / double(checked), largest, tie_text);
      std::printf(" %-44s", cell);
    }
    std::printf("\n");
  }
}

/// The first three fields of /proc/loadavg: other work on this machine moves every number here.
std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

/// CPU time the process burns while its main thread sleeps for `ms` right after `call`: worker
/// threads that spin instead of sleeping (OMP_WAIT_POLICY=active-style) show up here.
double idle_cpu_ms(const std::function<void()>& call, int ms) {
  double worst = 0;
  for (int i = 0; i < 3; ++i) {
    call();
    const double c0 = cpu_seconds();
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    worst = std::max(worst, (cpu_seconds() - c0) * 1e3);
  }
  return worst;
}

void spin_probe() {
  using namespace convkit;
  const image<std::uint8_t> img = random_pixels<std::uint8_t>(1080, 1920, 1, 7);
  image<std::uint8_t> out(1080, 1920, 1);
  const array2d<double> g = convkit::kernels::gaussian(2, 13);
  options o;
  o.mode = output::same;
  o.correlate = true;
  o.edge = border::reflect;
  o.threads = 2;
  std::printf(
      "idle CPU, process CPU time during 20 ms of main-thread sleep (worst of 3; workers that spin "
      "instead of sleeping would show up to 20 ms each): with nothing run before %.1f ms",
      idle_cpu_ms([] {}, 20));
  std::printf(
      ", right after a 2-thread call of convkit %.1f ms",
      idle_cpu_ms([&] { conv2d<std::uint8_t, double, std::uint8_t>(img.view(), g.view(), out.view(), o); }, 20));
#if defined(CONVKIT_BENCH_OPENCV)
  cv::setNumThreads(2);
  const cv::Mat src = as_mat(img.view());
  cv::Mat dst = as_mat(out.view());
  std::printf(", OpenCV %.1f ms",
              idle_cpu_ms([&] { cv::GaussianBlur(src, dst, cv::Size(), 2, 2, cv::BORDER_REFLECT_101); }, 20));
#endif
#if defined(CONVKIT_BENCH_VIPS)
  vips_concurrency_set(2);
  std::printf(", libvips %.1f ms", idle_cpu_ms(
                                       [&] {
                                         VipsImage* in = vips_wrap(img.view());
                                         VipsImage* a = nullptr;
                                         if (vips_gaussblur(in, &a, 2.0, nullptr)) vips_fail("vips_gaussblur");
                                         vips_write_into(a, out.view());
                                         g_object_unref(a);
                                         g_object_unref(in);
                                       },
                                       20));
#endif
  std::printf("\n");
}

#if defined(CONVKIT_BENCH_OPENCV)
/// The "Parallel framework:" line of OpenCV's build information.
std::string opencv_parallel_framework() {
  std::stringstream info(cv::getBuildInformation());
  for (std::string line; std::getline(info, line);) {
    const auto at = line.find("Parallel framework:");
    if (at == std::string::npos) continue;
    std::string value = line.substr(at + 19);
    value.erase(0, value.find_first_not_of(' '));
    return "parallel framework " + value;
  }
  return "parallel framework unknown";
}
#endif

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> v;
  std::stringstream s(text);
  for (std::string item; std::getline(s, item, ',');) v.push_back(item);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace convkit;
  const auto start = std::chrono::steady_clock::now();
#if defined(CONVKIT_BENCH_VIPS)
  if (VIPS_INIT(argv[0])) vips_fail("VIPS_INIT");
  vips_cache_set_max(0);  // no operation cache: every call computes
#endif
  settings s;
  std::vector<pixel_format> formats{{"8UC1", 1, false}, {"8UC3", 3, false}, {"16UC1", 1, true}};
  std::vector<image_size> sizes{{1920, 1080}, {3840, 2160}};
  std::vector<filter> filters = all_filters();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--quick") {
      sizes = {{1920, 1080}};
      filters.clear();
      for (const filter& f : all_filters())
        if (f.key == "g2" || f.key == "sobel" || f.key == "rand5") filters.push_back(f);
      s.rounds = 1;
    } else if (a == "--rounds" && has_value) {
      s.rounds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--threads" && has_value) {
      s.threads.clear();
      for (const std::string& t : split(argv[++i])) s.threads.push_back(std::max(1, std::atoi(t.c_str())));
    } else if (a == "--sizes" && has_value) {
      sizes.clear();
      for (const std::string& t : split(argv[++i])) {
        const auto x = t.find('x');
        if (x == std::string::npos) {
          std::fprintf(stderr, "bench_pixels: a size is WxH, got %s\n", t.c_str());
          return 2;
        }
        sizes.push_back({std::atoi(t.substr(0, x).c_str()), std::atoi(t.substr(x + 1).c_str())});
      }
    } else if (a == "--formats" && has_value) {
      std::vector<pixel_format> keep;
      for (const std::string& t : split(argv[++i]))
        for (const pixel_format& f : formats)
          if (f.name == t) keep.push_back(f);
      formats = keep;
    } else if (a == "--filters" && has_value) {
      filters.clear();
      for (const std::string& t : split(argv[++i]))
        for (const filter& f : all_filters())
          if (f.key == t) filters.push_back(f);
    } else {
      std::fprintf(stderr,
                   "usage: bench_pixels [--quick] [--rounds N] [--threads 1,2] [--sizes 1920x1080,3840x2160] "
                   "[--formats 8UC1,8UC3,16UC1] [--filters g1,g2,g4,g8,sobel,box5,rand5,rand15]\n");
      return 2;
    }
  }

  std::printf(
      "bench_pixels: images of pixels, 'same' correlation, reflect border (libvips: replicate, its only "
      "one), outputs rounded half to even and saturated; %d interleaved rounds after a warm-up, medians in "
      "ms with the spread (slowest - fastest) / median\n",
      s.rounds);
  std::printf(
      "machine: %s (lscpu model name), %u hardware threads, load average %s at the start; threads "
      "measured:",
      convkit::bench::cpu_model_name().c_str(), std::thread::hardware_concurrency(), load_average().c_str());
  for (int t : s.threads) std::printf(" %d", t);
  std::printf(
      "; the FMA peak is not relevant here (8- and 16-bit pixels: conversion, memory traffic and per-call "
      "work bound these filters, not multiply-add throughput)\n");
  std::printf("convkit %s, direct instruction set %s", CONVKIT_VERSION_STRING,
              cpu::to_string(direct::instruction_set()));
#if defined(CONVKIT_BENCH_OPENCV)
  std::printf("; OpenCV %s (%s)", CV_VERSION, opencv_parallel_framework().c_str());
#else
  std::printf("; OpenCV not found at configure time: its columns are left out");
#endif
#if defined(CONVKIT_BENCH_VIPS)
  std::printf("; libvips %s (vector path %s)", vips_version_string(), vips_vector_isenabled() ? "on" : "off");
#else
  std::printf("; libvips not found at configure time: its columns are left out");
#endif
  std::printf("\n");
  spin_probe();
  std::printf(
      "mismatches: samples differing from the float64 reference (reference::conv2d<double>) rounded half "
      "to even and saturated, at 9 windows of 64x64 pixels (corners, edge middles, centre); libvips "
      "against the replicate-border reference\n");
  std::printf(
      "allocs: heap allocations (operator new) of one ck conv2d call / one ck plan execute; the last 7 "
      "columns are the mismatches of ck conv2d, ck plan, cv named, cv sepF2D, cv filter2D, vips float, vips "
      "int\n\n");
  print_header();

  std::vector<row_result> rows;
  for (const pixel_format& fmt : formats)
    for (const image_size& sz : sizes) {
      const unsigned seed = unsigned(fmt.channels * 100 + (fmt.sixteen ? 16 : 8));
      if (fmt.sixteen) {
        const image<std::uint16_t> img = random_pixels<std::uint16_t>(sz.rows, sz.cols, fmt.channels, seed);
        for (const filter& f : filters) {
          if (f.kind == filter_kind::sobel)
            run_workload<std::uint16_t, float>(fmt, img, f, s, rows);
          else
            run_workload<std::uint16_t, std::uint16_t>(fmt, img, f, s, rows);
          for (std::size_t i = rows.size() - s.threads.size(); i < rows.size(); ++i) print_row(rows[i]);
        }
      } else {
        const image<std::uint8_t> img = random_pixels<std::uint8_t>(sz.rows, sz.cols, fmt.channels, seed);
        for (const filter& f : filters) {
          if (f.kind == filter_kind::sobel)
            run_workload<std::uint8_t, std::int16_t>(fmt, img, f, s, rows);
          else
            run_workload<std::uint8_t, std::uint8_t>(fmt, img, f, s, rows);
          for (std::size_t i = rows.size() - s.threads.size(); i < rows.size(); ++i) print_row(rows[i]);
        }
      }
    }
  print_summary(rows, s.threads);
  std::printf("\ntotal run time %.0f s; load average at the end %s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), load_average().c_str());
#if defined(CONVKIT_BENCH_VIPS)
  vips_shutdown();
#endif
  return 0;
}
