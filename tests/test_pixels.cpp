// Images of pixels (image.hpp): every pixel type and channel count over the shared grid's single-image
// cases, on every backend in the build, against the float64 reference rounded and saturated; the
// exactness contract (every integer mismatch a proven near-tie; integer-valued kernels exact),
// saturation at both ends, plans on images, and the argument errors.
#include <convkit/convkit.hpp>
#include <convkit/image.hpp>
#include <convkit/reference.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "problems.hpp"

namespace convkit::testing {
namespace {

template <class P>
const char* pixel_name() {
  if constexpr (std::is_same_v<P, std::uint8_t>) return "u8";
  if constexpr (std::is_same_v<P, std::uint16_t>) return "u16";
  if constexpr (std::is_same_v<P, std::int16_t>) return "s16";
  if constexpr (std::is_same_v<P, float>) return "float";
  return "double";
}

/// A padded image: storage with `pad` extra elements per row, and the view of its pixels.
template <class P>
struct padded_image {
  array2d<P> storage;
  image_view<P> view;
  padded_image(index_t rows, index_t cols, index_t channels, index_t pad)
      : storage(rows, cols * channels + pad), view(storage.data(), rows, cols, channels, cols * channels + pad) {}
};

/// Channel ch of an image as a plane of doubles.
template <class P>
array2d<double> plane_of(image_view<const P> v, index_t ch) {
  array2d<double> p(v.rows(), v.cols());
  for (index_t r = 0; r < v.rows(); ++r)
    for (index_t c = 0; c < v.cols(); ++c) p(r, c) = double(v(r, c, ch));
  return p;
}

/// The pixel of Q a value stores as, from its exact (double) value: rounded half to even, saturated.
template <class Q>
double expected_pixel(double v) {
  if constexpr (std::is_floating_point_v<Q>) {
    return double(Q(v));
  } else {
    if (std::isnan(v)) return double(std::numeric_limits<Q>::lowest());
    return std::clamp(std::nearbyint(v), double(std::numeric_limits<Q>::lowest()),
                      double(std::numeric_limits<Q>::max()));
  }
}

/// What the compute type's rounding may move a value: local * eps * |x||k| (direct sums; the kernel
/// rounded to the compute type adds one eps) plus global * eps * ||x||_2 ||k||_2 (transforms).
struct bound {
  double local = 0, global = 0, eps = 0, scale = 0;
  double at(double magnitude) const { return eps * (local * magnitude + global * scale) + 1e-12; }
};

/// Runs conv2d on fresh pixels of type P (channels given) into Q for image case `c`, and checks every
/// output pixel: equal to the reference rounded and saturated, or, for integer Q, one away from it
/// with the exact value within `b` of the rounding boundary between them (a near-tie), counted in
/// `ties`; floating Q within `b`. Unwritten pixels and writes between rows fail.
template <class P, class Q>
void check_pixels(const conv_case& c, index_t channels, std::mt19937_64& rng, bool exact, index_t& ties) {
  using T = detail::pixel_compute_t<P, Q>;
  INFO(pixel_name<P>() << " -> " << pixel_name<Q>() << ", " << channels << " channels, " << c.describe() << " "
                       << to_string(c.algo));
  const options opt = c.image_opt();
  padded_image<P> in(c.rows, c.cols, channels, c.view_pad * channels);
  fill_pixels(in.view, rng);
  array2d<double> kernel(c.k_rows, c.k_cols);
  for (index_t i = 0; i < kernel.size(); ++i)
    kernel.data()[i] = exact ? double(std::uniform_int_distribution<int>(-3, 3)(rng))
                             : std::uniform_real_distribution<double>(-1, 1)(rng);
  const shape2d s = output_shape(c.rows, c.cols, c.k_rows, c.k_cols, opt);
  const Q sentinel = Q(77);
  padded_image<Q> out(s.rows, s.cols, channels, 3);
  std::fill(out.storage.data(), out.storage.data() + out.storage.size(), sentinel);
  conv2d<P, double, Q>(in.view, kernel, out.view, opt);
  // Run again into an output first filled otherwise: a pixel left unwritten differs between the two.
  padded_image<Q> again(s.rows, s.cols, channels, 3);
  std::fill(again.storage.data(), again.storage.data() + again.storage.size(), Q(3));
  conv2d<P, double, Q>(in.view, kernel, again.view, opt);

  // The bound of the backend that ran the full bands (or the whole plane).
  bound b;
  b.eps = std::numeric_limits<T>::epsilon();
  b.local = double(c.k_rows * c.k_cols + 2);
  const detail::conv_problem p = problem_of<T>(c);
  if (!exact && (c.algo == algorithm::fft || c.algo == algorithm::automatic)) {
    // An FFT's error in any band or tile is within the whole extended image's norm times the
    // kernel's, over transforms at most twice the extended image in each axis.
    b.global = std::log2(4.0 * double(p.rows.extent) * double(p.cols.extent));
  }
  index_t bad = 0;
  for (index_t ch = 0; ch < channels; ++ch) {
    const array2d<double> plane = plane_of<P>(in.view, ch);
    const array2d<double> want = reference::conv2d<double>(plane, kernel, opt);
    const array2d<double> mag = reference::conv2d<double>(plane, kernel, opt, true);
    if (b.global > 0) {
      array2d<double> ext(p.rows.extent, p.cols.extent);
      extend<double>(plane, ext.view(), p.rows.pad_before, p.cols.pad_before, c.edge, c.edge_value);
      double x2 = 0, k2 = 0;
      for (index_t i = 0; i < ext.size(); ++i) x2 += ext.data()[i] * ext.data()[i];
      for (index_t i = 0; i < kernel.size(); ++i) k2 += kernel.data()[i] * kernel.data()[i];
      b.scale = std::sqrt(x2) * std::sqrt(k2);
    }
    for (index_t r = 0; r < s.rows; ++r)
      for (index_t col = 0; col < s.cols; ++col) {
        const double got = double(out.view(r, col, ch)), v = want(r, col), e = expected_pixel<Q>(v);
        bool ok = got == double(again.view(r, col, ch));
        if constexpr (std::is_integral_v<Q>) {
          if (ok && got != e) {
            ok = !exact && std::abs(got - e) == 1 && std::abs(v - (got + e) / 2) <= b.at(mag(r, col));
            ties += ok;
          }
        } else {
          ok = ok && std::abs(got - v) <= b.at(mag(r, col)) + std::numeric_limits<Q>::epsilon() * std::abs(v);
        }
        if (!ok && bad++ < 3) {
          INFO("pixel (" << r << ", " << col << ", " << ch << "): got " << got << ", exact " << v << ", expected " << e
                         << ", |x||k| " << mag(r, col) << ", bound " << b.at(mag(r, col)));
          CHECK(ok);
        }
      }
  }
  for (index_t r = 0; r < s.rows; ++r)
    for (index_t i = s.cols * channels; i < s.cols * channels + 3; ++i)
      if (out.view.row(r)[i] != sentinel && bad++ < 3) FAIL_CHECK("wrote between rows at row " << r);
  CHECK(bad == 0);
}

template <class P, class Q>
void check_grid(algorithm a, bool exact, int random_cases, index_t& ties) {
  std::mt19937_64 rng(run_seed() ^ 0x91c ^ std::uint64_t(a));
  int n = 0;
  for (conv_case c : conv_grid(front_door::image, random_cases)) {
    c.algo = a;
    if (a != algorithm::direct && a != algorithm::automatic && problem_of<float>(c).sparse()) continue;
    // A constant border of a fraction makes the exact values fractions: no exactness to ask for.
    if (exact && c.edge == border::constant) c.edge_value = std::round(c.edge_value * 10);
    check_pixels<P, Q>(c, 1 + n++ % 4, rng, exact, ties);
  }
}

template <class P, class Q>
void check_backends(bool exact) {
  index_t ties = 0;
  check_grid<P, Q>(algorithm::automatic, exact, 16, ties);
  check_grid<P, Q>(algorithm::direct, exact, 0, ties);
#if defined(CONVKIT_HAS_FFTW)
  if (!exact) check_grid<P, Q>(algorithm::fft, false, 0, ties);
#endif
#if defined(CONVKIT_HAS_BLAS)
  check_grid<P, Q>(algorithm::im2col, exact, 0, ties);
#endif
  if (exact) CHECK(ties == 0);
}

}  // namespace

TEST_CASE("pixels: 8-bit images, 1-4 channels, every backend, rounded and saturated; near-ties only", "[pixels]") {
  check_backends<std::uint8_t, std::uint8_t>(false);
  check_backends<std::uint8_t, float>(false);
}

TEST_CASE("pixels: 16-bit images, unsigned and signed", "[pixels]") {
  check_backends<std::uint16_t, std::uint16_t>(false);
  check_backends<std::int16_t, std::int16_t>(false);
  check_backends<std::uint16_t, float>(false);
}

TEST_CASE("pixels: float and double images with channels, and into 8 bits", "[pixels]") {
  check_backends<float, float>(false);
  check_backends<double, double>(false);
  check_backends<float, std::uint8_t>(false);
  check_backends<std::uint8_t, double>(false);
}

TEST_CASE("pixels: integer-valued kernels give exact integer outputs everywhere", "[pixels][exact]") {
  check_backends<std::uint8_t, std::uint8_t>(true);
  check_backends<std::uint16_t, std::uint16_t>(true);  // sums beyond 2^24: computed in double
  check_backends<std::int16_t, std::int16_t>(true);
}

TEST_CASE("pixels: images of many bands, the last one shorter, on every backend", "[pixels][bands]") {
  // Rows thousands of pixels wide make bands of few rows (the band buffer is held to a size in
  // bytes), so these images run as several full bands and a shorter last one, interleaved and per
  // channel (a column stride), in float and in double.
  std::mt19937_64 rng(run_seed() ^ 0xba4d);
  index_t ties = 0;
  std::vector<algorithm> algos = {algorithm::automatic, algorithm::direct};
#if defined(CONVKIT_HAS_FFTW)
  algos.push_back(algorithm::fft);
#endif
#if defined(CONVKIT_HAS_BLAS)
  algos.push_back(algorithm::im2col);
#endif
  for (algorithm a : algos) {
    conv_case c = image_case(71, 2900, 3, 3);
    c.mode = output::same;
    c.edge = border::reflect;
    c.correlate = true;
    c.algo = a;
    check_pixels<std::uint8_t, std::uint8_t>(c, 3, rng, false, ties);
    c.k_rows = 5, c.k_cols = 4, c.dilation_rows = 2, c.edge = border::replicate, c.view_pad = 3;
    check_pixels<std::uint16_t, std::uint16_t>(c, 4, rng, false, ties);
    check_pixels<std::uint8_t, double>(c, 3, rng, false, ties);  // computed in double
    c.stride_cols = 2, c.mode = output::full, c.edge = border::zero;
    check_pixels<std::uint8_t, float>(c, 2, rng, false, ties);  // per channel
  }
}

TEST_CASE("pixels: saturation at both ends, NaN to the lowest value", "[pixels]") {
  image<std::uint8_t> white(20, 30, 3);
  std::fill(white.data(), white.data() + white.size(), std::uint8_t(255));
  array2d<double> heavy(3, 3), negative(3, 3);
  for (index_t i = 0; i < 9; ++i) heavy.data()[i] = 0.25, negative.data()[i] = -1;
  options o;
  o.mode = output::same;
  o.edge = border::replicate;
  const image<std::uint8_t> bright = conv2d(white, heavy, o), dark = conv2d(white, negative, o);
  for (index_t i = 0; i < bright.size(); ++i) {
    CHECK(bright.data()[i] == 255);
    CHECK(dark.data()[i] == 0);
  }
  image<std::int16_t> s16(4, 4, 1);
  std::fill(s16.data(), s16.data() + s16.size(), std::int16_t(-30000));
  array2d<double> twice(1, 1);
  twice(0, 0) = 2;
  CHECK(conv2d(s16, twice)(1, 1, 0) == -32768);
  image<float> nan(3, 3, 1);
  nan(1, 1, 0) = std::numeric_limits<float>::quiet_NaN();
  image<std::uint8_t> eight(3, 3, 1);
  conv2d(nan, twice, eight, o);
  CHECK(eight(1, 1, 0) == 0);
  // Ties round to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2.
  image<float> halves(1, 3, 1);
  halves(0, 0, 0) = 0.5f, halves(0, 1, 0) = 1.5f, halves(0, 2, 0) = 2.5f;
  array2d<double> one(1, 1);
  one(0, 0) = 1;
  image<std::uint8_t> rounded(1, 3, 1);
  conv2d(halves, one, rounded);
  CHECK(rounded(0, 0, 0) == 0);
  CHECK(rounded(0, 1, 0) == 2);
  CHECK(rounded(0, 2, 0) == 2);
}

TEST_CASE("pixels: a plan executes on images as the one-shot call computes them", "[pixels][plan]") {
  std::mt19937_64 rng(run_seed() ^ 0x71a);
  image<std::uint8_t> rgb(300, 200, 3);
  fill_pixels(rgb.view(), rng);
  array2d<float> k(7, 7);
  fill_random(k.view(), rng);
  for (algorithm a : {algorithm::automatic, algorithm::direct}) {
    options o;
    o.mode = output::same;
    o.edge = border::reflect;
    o.algo = a;
    o.threads = 2;
    plan<float> p(rgb.rows(), rgb.cols(), k, o);
    image<std::uint8_t> got(300, 200, 3);
    for (int i = 0; i < 2; ++i) p.execute<std::uint8_t, std::uint8_t>(rgb, got.view());
    const image<std::uint8_t> want = conv2d(rgb, k, o);
    CHECK(std::equal(got.data(), got.data() + got.size(), want.data()));
  }
}

TEST_CASE("pixels: bad image arguments throw convkit::error naming them", "[pixels][errors]") {
  image<std::uint8_t> rgb(10, 10, 3), gray(10, 10, 1), small(9, 10, 3);
  array2d<float> k(3, 3);
  options o;
  o.mode = output::same;
  CHECK_THROWS_WITH(conv2d(rgb, k, gray, o), Catch::Contains("channels"));
  CHECK_THROWS_WITH(conv2d(rgb, k, small, o), Catch::Contains("out is 9x10"));
  CHECK_THROWS_WITH(conv2d(rgb, array2d<float>(0, 3), o), Catch::Contains("kernel is empty"));
  CHECK_THROWS_WITH(image_view<std::uint8_t>(rgb.data(), 10, 10, 5), Catch::Contains("channels must be 1 to 4"));
  CHECK_THROWS_WITH(image_view<std::uint8_t>(rgb.data(), 10, 10, 3, 20), Catch::Contains("row_stride"));
  CHECK_THROWS_WITH(conv2d(rgb, k, rgb, o), Catch::Contains("aliases input"));
  // A sparse image (a dilation far beyond it) is refused by a transform asked for by name, as a
  // float plane is, though each band of it alone might not be sparse; direct computes it.
  options sparse = o;
  sparse.dilation_rows = 1 << 20;
  sparse.algo = algorithm::fft;
  CHECK_THROWS_WITH(conv2d(rgb, k, sparse), Catch::Contains("algorithm::fft") && Catch::Contains("direct"));
  sparse.algo = algorithm::direct;
  CHECK(conv2d(rgb, k, sparse).rows() == 10);
}

}  // namespace convkit::testing
