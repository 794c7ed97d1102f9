// The core on its own: views, shapes, the padding module, the reference (against hand-computed and
// SciPy/NumPy-computed numbers), and every argument error. Only the direct backend is in this program.
#include <convkit/backends/direct.hpp>
#include <convkit/conv2d.hpp>
#include <convkit/dispatch.hpp>
#include <convkit/padding.hpp>
#include <convkit/reference.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace convkit::testing {
using Catch::Matchers::Contains;

namespace {
template <class T>
array2d<T> make(index_t rows, index_t cols, std::initializer_list<T> values) {
  array2d<T> a(rows, cols);
  index_t i = 0;
  for (T v : values) a.data()[i++] = v;
  REQUIRE(i == rows * cols);
  return a;
}

template <class A, class B>
void require_equal(const A& got, const B& want) {
  REQUIRE(got.rows() == want.rows());
  REQUIRE(got.cols() == want.cols());
  for (index_t r = 0; r < got.rows(); ++r)
    for (index_t c = 0; c < got.cols(); ++c) {
      INFO("(" << r << ", " << c << ")");
      CHECK(double(got(r, c)) == Approx(double(want(r, c))).margin(1e-12));
    }
}

options opts(output size, bool correlate = false) {
  options o;
  o.mode = size;
  o.correlate = correlate;
  return o;
}
}  // namespace

TEST_CASE("view2d and array2d", "[view]") {
  array2d<float> a(3, 5);
  CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0);
  for (index_t i = 0; i < a.size(); ++i) CHECK(a.data()[i] == 0.0f);
  a(2, 4) = 7;
  view2d<float> v = a;         // array2d converts to a view without a cast
  view2d<const float> cv = v;  // and a view to its const form
  CHECK(cv(2, 4) == 7);
  CHECK(cv.row_stride() == 5);
  view2d<const float> sub(a.data() + 1, 2, 3, 5);
  CHECK(sub(1, 2) == a(1, 3));
  static_assert(std::is_convertible_v<array2d<double>&, view2d<double>>);
  static_assert(std::is_convertible_v<const array2d<double>&, view2d<const double>>);
  static_assert(!std::is_convertible_v<view2d<const double>, view2d<double>>);
  array2d<float> copy = a;
  CHECK(copy(2, 4) == 7);
  CHECK(copy.data() != a.data());
  CHECK_THROWS_WITH(view2d<float>(a.data(), 2, 5, 4), Contains("row_stride"));
  CHECK_THROWS_WITH(view2d<float>(a.data(), -1, 5), Contains("rows"));
  CHECK_THROWS_WITH(array2d<float>(4, -2), Contains("cols"));
  CHECK_THROWS_WITH(array2d<float>(std::numeric_limits<index_t>::max() / 2, 4), Contains("overflows"));
}

TEST_CASE("output_shape follows SciPy's modes, dilation and stride", "[shape]") {
  options o;
  CHECK(output_shape(10, 7, 3, 4, o) == shape2d{12, 10});
  o.mode = output::same;
  CHECK(output_shape(10, 7, 3, 4, o) == shape2d{10, 7});
  o.mode = output::valid;
  CHECK(output_shape(10, 7, 3, 4, o) == shape2d{8, 4});
  o.dilation_rows = 2;  // 3 taps 2 apart span 5 rows
  CHECK(output_shape(10, 7, 3, 4, o) == shape2d{6, 4});
  o.stride_rows = 4;  // 6 rows, every 4th starting at the first: 0, 4
  o.stride_cols = 3;  // 4 cols: 0, 3
  CHECK(output_shape(10, 7, 3, 4, o) == shape2d{2, 2});
  o.mode = output::full;
  o.dilation_rows = 1;
  CHECK(output_shape(10, 7, 3, 4, o) == shape2d{3, 4});           // 12 -> (11)/4+1 = 3; 10 -> 9/3+1 = 4
  CHECK(output_shape(2, 2, 9, 9, options{}) == shape2d{10, 10});  // kernel larger than the image
}

TEST_CASE("border_index matches numpy.pad for widths beyond the image", "[padding]") {
  // numpy.pad([1, 2, 3, 4], (9, 7), mode) for NumPy's edge, reflect, symmetric and wrap.
  const std::vector<int> edge = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4};
  const std::vector<int> reflect = {4, 3, 2, 1, 2, 3, 4, 3, 2, 1, 2, 3, 4, 3, 2, 1, 2, 3, 4, 3};
  const std::vector<int> symmetric = {1, 1, 2, 3, 4, 4, 3, 2, 1, 1, 2, 3, 4, 4, 3, 2, 1, 1, 2, 3};
  const std::vector<int> wrap = {4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3};
  const std::pair<border, const std::vector<int>*> cases[] = {{border::replicate, &edge},
                                                              {border::reflect, &reflect},
                                                              {border::symmetric, &symmetric},
                                                              {border::circular, &wrap}};
  for (const auto& [b, want] : cases) {
    INFO(to_string(b));
    for (index_t i = -9; i < 4 + 7; ++i) CHECK(border_index(i, 4, b) + 1 == (*want)[std::size_t(i + 9)]);
  }
  for (index_t i = -20; i < 20; ++i) {
    CHECK(border_index(i, 1, border::reflect) == 0);  // numpy: [5] padded by reflect is all 5
    CHECK(border_index(i, 1, border::symmetric) == 0);
    CHECK(border_index(i, 3, border::zero) == (i >= 0 && i < 3 ? i : -1));
  }
}

TEST_CASE("extend pads and crops on four sides", "[padding]") {
  const array2d<int> img = make<int>(2, 3, {1, 2, 3, 4, 5, 6});
  // numpy.pad(arange(1, 7).reshape(2, 3), ((3, 2), (4, 1)), mode='reflect')
  const array2d<int> want =
      make<int>(7, 8, {4, 5, 6, 5, 4, 5, 6, 5, 1, 2, 3, 2, 1, 2, 3, 2, 4, 5, 6, 5, 4, 5, 6, 5, 1, 2, 3, 2,
                       1, 2, 3, 2, 4, 5, 6, 5, 4, 5, 6, 5, 1, 2, 3, 2, 1, 2, 3, 2, 4, 5, 6, 5, 4, 5, 6, 5});
  require_equal(extend<int>(img, 3, 2, 4, 1, border::reflect), want);
  const array2d<int> constant = extend<int>(img, 1, 0, 0, 2, border::constant, 9);
  require_equal(constant, make<int>(3, 5, {9, 9, 9, 9, 9, 1, 2, 3, 9, 9, 4, 5, 6, 9, 9}));
  require_equal(extend<int>(img, 0, -1, -1, 0, border::zero), make<int>(1, 2, {2, 3}));  // negative widths crop
  require_equal(extend<int>(img, 1, 1, 1, 1, border::zero, 9),  // border::zero ignores the fill value
                make<int>(4, 5, {0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 4, 5, 6, 0, 0, 0, 0, 0, 0}));
  CHECK_THROWS_WITH(extend<int>(img, -3, 0, 0, 0, border::zero), Contains("crop"));
  array2d<int> buf(2, 3);
  CHECK_THROWS_WITH(extend<int>(buf.view(), view2d<int>(buf.data(), 2, 3), 0, 0, border::zero), Contains("aliases"));
}

TEST_CASE("extend writes every element as border_index says, for windows many periods away and wide", "[padding]") {
  // Windows larger than the image are copied from one period away: every window position relative to
  // the image (before it, across it, beyond it, several periods out) against the definition.
  const border rules[] = {border::zero,    border::constant,  border::replicate,
                          border::reflect, border::symmetric, border::circular};
  for (const index_t rows : {1, 2, 3}) {
    for (const index_t cols : {1, 2, 5}) {
      array2d<int> img(rows, cols);
      for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) img(i, j) = int(10 * i + j + 1);
      for (const border b : rules) {
        for (const index_t top : {-9, -2, 0, 1, 4, 17})
          for (const index_t left : {-23, -4, 0, 2, 6, 30}) {
            INFO(to_string(b) << " image " << rows << "x" << cols << " top " << top << " left " << left);
            array2d<int> out(13, 37);
            extend<int>(img, out.view(), top, left, b, -7);
            bool all = true;
            for (index_t r = 0; r < out.rows(); ++r)
              for (index_t c = 0; c < out.cols(); ++c) {
                const index_t sr = border_index(r - top, rows, b), sc = border_index(c - left, cols, b);
                const int want = sr < 0 || sc < 0 ? (b == border::zero ? 0 : -7) : img(sr, sc);
                all = all && out(r, c) == want;
              }
            CHECK(all);
          }
      }
    }
  }
}

TEST_CASE("padded_kernel places, flips, dilates and wraps the kernel", "[padding]") {
  const array2d<double> k = make<double>(2, 2, {1, 2, 3, 4});
  array2d<double> out(3, 4);
  padded_kernel<double>(k, out.view());
  require_equal(out, make<double>(3, 4, {1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0}));
  kernel_placement flip_dilate;
  flip_dilate.flip = true;
  flip_dilate.dilation_cols = 2;
  padded_kernel<double>(k, out.view(), flip_dilate);
  require_equal(out, make<double>(3, 4, {4, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0}));
  kernel_placement centred;
  centred.origin_row = 1;
  centred.origin_col = 1;
  padded_kernel<double>(k, out.view(), centred);  // (1, 1) lands on (0, 0); the rest wraps around
  require_equal(out, make<double>(3, 4, {4, 0, 0, 3, 0, 0, 0, 0, 2, 0, 0, 1}));
  array2d<double> small(1, 4);
  CHECK_THROWS_WITH(padded_kernel<double>(k, small.view()), Contains("smaller than the dilated kernel"));
}

TEST_CASE("circular convolution with the padded kernel is linear convolution where it does not wrap", "[padding]") {
  // An image of N x N, kernel 3 x 2 dilated by 2 x 1: circular convolution (brute force) of the
  // zero-padded image with padded_kernel equals the reference's full convolution when N >= H + KHe - 1.
  const index_t H = 5, W = 4, N = 12;
  array2d<double> img(H, W), k(3, 2);
  for (index_t i = 0; i < img.size(); ++i) img.data()[i] = double(i % 7) - 3;
  for (index_t i = 0; i < k.size(); ++i) k.data()[i] = double(i) + 0.5;
  options o;
  o.dilation_rows = 2;
  const array2d<double> want = reference::conv2d<double>(img, k, o);  // 9 x 5
  for (bool correlate : {false, true}) {
    o.correlate = correlate;
    const array2d<double> lin = reference::conv2d<double>(img, k, o);
    kernel_placement where;
    where.flip = correlate;  // correlation is convolution with the flipped kernel
    where.dilation_rows = 2;
    array2d<double> pk(N, N);
    padded_kernel<double>(k, pk.view(), where);
    for (index_t r = 0; r < lin.rows(); ++r)
      for (index_t c = 0; c < lin.cols(); ++c) {
        double sum = 0;
        for (index_t i = 0; i < H; ++i)
          for (index_t j = 0; j < W; ++j) sum += img(i, j) * pk(((r - i) % N + N) % N, ((c - j) % N + N) % N);
        CHECK(sum == Approx(lin(r, c)).margin(1e-12));
      }
  }
  CHECK(want.rows() == 9);
}

TEST_CASE("reference agrees with scipy.signal on a hand-sized case", "[reference]") {
  const array2d<double> x = make<double>(2, 3, {1, 2, 0, 3, -1, 4});
  const array2d<double> k = make<double>(2, 2, {1, 2, 0, -1});
  // scipy.signal.convolve / correlate(x, k, mode)
  require_equal(reference::conv2d<double>(x, k, opts(output::full)),
                make<double>(3, 4, {1, 4, 4, 0, 3, 4, 0, 8, 0, -3, 1, -4}));
  require_equal(reference::conv2d<double>(x, k, opts(output::full, true)),
                make<double>(3, 4, {-1, -2, 0, 0, -1, 6, -2, 0, 6, 1, 7, 4}));
  require_equal(reference::conv2d<double>(x, k, opts(output::same)), make<double>(2, 3, {1, 4, 4, 3, 4, 0}));
  require_equal(reference::conv2d<double>(x, k, opts(output::same, true)), make<double>(2, 3, {-1, -2, 0, -1, 6, -2}));
  require_equal(reference::conv2d<double>(x, k, opts(output::valid)), make<double>(1, 2, {4, 0}));
  require_equal(reference::conv2d<double>(x, k, opts(output::valid, true)), make<double>(1, 2, {6, -2}));
}

TEST_CASE("reference applies borders, strides and dilations as defined", "[reference]") {
  const array2d<double> x = make<double>(1, 5, {1, 2, 3, 4, 5});
  const array2d<double> box = make<double>(1, 3, {1, 1, 1});
  options o = opts(output::same);
  o.edge = border::replicate;  // 1 | 1 2 3 4 5 | 5
  require_equal(reference::conv2d<double>(x, box, o), make<double>(1, 5, {4, 6, 9, 12, 14}));
  o.edge = border::reflect;  // 2 | 1 2 3 4 5 | 4
  require_equal(reference::conv2d<double>(x, box, o), make<double>(1, 5, {5, 6, 9, 12, 13}));
  o.edge = border::symmetric;  // 1 | ... | 5
  require_equal(reference::conv2d<double>(x, box, o), make<double>(1, 5, {4, 6, 9, 12, 14}));
  o.edge = border::circular;  // 5 | ... | 1
  require_equal(reference::conv2d<double>(x, box, o), make<double>(1, 5, {8, 6, 9, 12, 10}));
  o.edge = border::constant;
  o.edge_value = 10;
  require_equal(reference::conv2d<double>(x, box, o), make<double>(1, 5, {13, 6, 9, 12, 19}));
  o.stride_cols = 2;  // every second of the same result, starting at the first
  require_equal(reference::conv2d<double>(x, box, o), make<double>(1, 3, {13, 9, 19}));
  o = opts(output::valid, true);
  o.dilation_cols = 2;  // taps x[j], x[j+2], x[j+4] weighted 1, 10, 100
  require_equal(reference::conv2d<double>(x, make<double>(1, 3, {1, 10, 100}), o), make<double>(1, 1, {531}));
  o.correlate = false;  // convolution flips: weights 100, 10, 1
  require_equal(reference::conv2d<double>(x, make<double>(1, 3, {1, 10, 100}), o), make<double>(1, 1, {135}));
}

TEST_CASE("conv2d accepts arrays and views of either constness", "[api]") {
  array2d<float> img(6, 6), k(3, 3);
  img(2, 3) = 1;
  k(1, 1) = 2;
  const array2d<float>& cimg = img;
  array2d<float> a = conv2d(img, k);  // array2d arguments, no casts
  array2d<float> b = conv2d(cimg.view(), k.view());
  array2d<float> c(8, 8);
  conv2d(img, k, c);
  conv2d(img.view(), view2d<const float>(k.view()), c.view(), options{});
  CHECK(a(3, 4) == 2);
  CHECK(b(3, 4) == 2);
  CHECK(c(3, 4) == 2);
  plan<float> p(6, 6, k, opts(output::same));
  CHECK(p.chosen() == algorithm::direct);
  CHECK(p.output_shape() == shape2d{6, 6});
  CHECK(p(img)(2, 3) == 2);
  plan<float> moved = std::move(p);
  CHECK(moved(img)(2, 3) == 2);
  static_assert(!std::is_copy_constructible_v<plan<float>>);
}

TEST_CASE("bad arguments throw convkit::error naming the argument", "[errors]") {
  array2d<float> img(8, 8), k(3, 3), out(10, 10);
  const array2d<float> empty;
  options o;
  CHECK_THROWS_AS(conv2d(empty, k), error);
  CHECK_THROWS_WITH(conv2d(empty, k), Contains("input rows"));
  CHECK_THROWS_WITH(conv2d(img, empty), Contains("kernel is empty"));
  o.mode = output::valid;
  CHECK_THROWS_WITH(conv2d(img, array2d<float>(9, 2), o), Contains("output::valid is empty"));
  o.dilation_cols = 4;  // 3 taps span 9 > 8 columns
  CHECK_THROWS_WITH(conv2d(img, k, o), Contains("dilated kernel cols"));
  o = {};
  o.stride_rows = 0;
  CHECK_THROWS_WITH(conv2d(img, k, o), Contains("stride_rows"));
  o = {};
  o.stride_cols = -2;
  CHECK_THROWS_WITH(conv2d(img, k, o), Contains("stride_cols"));
  o = {};
  o.dilation_rows = 0;
  CHECK_THROWS_WITH(conv2d(img, k, o), Contains("dilation_rows"));
  o = {};
  o.threads = -1;
  CHECK_THROWS_WITH(conv2d(img, k, o), Contains("threads"));
  CHECK_THROWS_WITH(conv2d(img, k, array2d<float>(10, 9)), Contains("out is 10x9, expected 10x10"));
  // Aliasing: the output overlapping the input or the kernel.
  array2d<float> big(20, 20);
  view2d<float> in_view(big.data(), 8, 8, 20);
  view2d<float> out_view(big.data() + 5 * 20, 10, 10, 20);
  CHECK_THROWS_WITH(conv2d(in_view, k, out_view), Contains("out aliases input"));
  view2d<float> k_view(big.data() + 5 * 20 + 2, 3, 3, 20);
  view2d<float> out_over_k(big.data() + 4 * 20, 10, 10, 20);
  CHECK_THROWS_WITH(conv2d(img, k_view, out_over_k), Contains("out aliases kernel"));
  // Sizes whose products overflow convkit::index: a view that claims a huge extent.
  const index_t huge = std::numeric_limits<index_t>::max() / 4;
  float one = 1;
  view2d<const float> tall(&one, huge, 1, 1);
  view2d<const float> wide_k(&one, 1, 1, 1);
  o = {};
  o.dilation_cols = std::numeric_limits<int>::max();
  CHECK_THROWS_WITH(conv2d(tall, view2d<const float>(&one, 1, 3, 3), o), Contains("overflows"));
  CHECK_THROWS_WITH(output_shape(huge, huge, 1, 1, options{}), Contains("overflows"));
  CHECK_THROWS_WITH(output_shape(3, 3, huge, 1, options{}), Contains("overflows"));
  (void)wide_k;
  // plan::execute checks shapes and aliasing too.
  plan<float> p(8, 8, k);
  CHECK_THROWS_WITH(p.execute(array2d<float>(8, 7), out), Contains("input is 8x7, expected 8x8"));
  CHECK_THROWS_WITH(p.execute(img, array2d<float>(3, 3)), Contains("out is 3x3"));
  CHECK_THROWS_WITH(p.execute(in_view, out_view), Contains("aliases"));
}

TEST_CASE("a backend missing from the program is unavailable, naming its CMake target", "[errors]") {
  // This test program includes no optional backend header, so only direct is registered.
  array2d<double> img(8, 8), k(3, 3);
  options o;
  o.algo = algorithm::fft;
  CHECK_THROWS_AS(conv2d(img, k, o), unavailable);
  CHECK_THROWS_WITH(conv2d(img, k, o), Contains("convkit::fftw"));
  o.algo = algorithm::im2col;
  CHECK_THROWS_WITH(conv2d(img, k, o), Contains("convkit::blas"));
  o.algo = algorithm::cufft;
  CHECK_THROWS_WITH(plan<double>(8, 8, k, o), Contains("convkit::cufft"));
  CHECK(automatic_choice(8, 8, 3, 3, options{}) == algorithm::direct);
  o.algo = static_cast<algorithm>(7);  // not an enumerator: an error, not an out-of-bounds table read
  CHECK_THROWS_WITH(conv2d(img, k, o), Contains("algo"));
}

template <class T>
void check_all_finite_at_every_position() {
  using limits = std::numeric_limits<T>;
  const T finite[] = {limits::max(), -limits::max(), limits::denorm_min(), -T(0), T(1)};
  const T special[] = {limits::infinity(), -limits::infinity(), limits::quiet_NaN(), -limits::quiet_NaN()};
  for (index_t n : {1, 15, 16, 17, 37}) {  // a block of 16 values, its edges and a tail
    for (index_t at = 0; at < n; ++at) {
      INFO("n " << n << ", at " << at);
      std::vector<T> v(std::size_t(n), T(0.5));
      for (T x : finite) {
        v[std::size_t(at)] = x;
        CHECK(detail::all_finite<T>(v.data(), n));
      }
      for (T x : special) {
        v[std::size_t(at)] = x;
        CHECK_FALSE(detail::all_finite<T>(v.data(), n));
        CHECK(detail::all_finite<T>(v.data(), at));  // the values before it
      }
    }
  }
}

TEST_CASE("all_finite finds NaN and Inf by their bits, at every position of a block and its tail", "[api]") {
  check_all_finite_at_every_position<float>();
  check_all_finite_at_every_position<double>();
  array2d<float> f(3, 4);
  CHECK(detail::all_finite<float>(f));
  f(2, 3) = std::numeric_limits<float>::infinity();
  CHECK_FALSE(detail::all_finite<float>(f));
}

TEST_CASE("without the profile file component convkit reads no file: automatic uses the built-in constants",
          "[profile]") {
  // This program includes no <convkit/profile_file.hpp> (nor <convkit/convkit.hpp>): a profile file
  // where the component would look must not be read, nor a measured choice written to it.
  const std::string path = "convkit_test_core_profile." + std::to_string(std::random_device{}()) + ".txt";
  {
    std::ofstream f(path);
    f << "[machine anything]\ndirect.call_s 0.5\nend 1\n";
  }
  ::setenv("CONVKIT_PROFILE", path.c_str(), 1);
  set_active_profile(nullptr);
  options o;
  o.tune.choice = choice_rule::measure;
  const array2d<float> out = conv2d(array2d<float>(40, 40), array2d<float>(5, 5), o);
  CHECK(out.rows() == 44);
  CHECK(active_profile()->empty());
  CHECK(!active_profile()->direct.call_s.measured());
  std::ifstream f(path);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(text == "[machine anything]\ndirect.call_s 0.5\nend 1\n");
  std::remove(path.c_str());
}

}  // namespace convkit::testing
