// Low-rank kernels (separable.hpp) and the direct backend's separable path: the detector finds the
// rank of outer products, integer filters and sums of them whatever their scale, and refuses kernels
// that are only nearly low-rank; the path computes the reference's function over the shared problem
// grid (every mode, border, stride, dilation, float and double, single images and depthwise layers)
// and keeps non-finite values where the dense path does.
#include <convkit/convkit.hpp>

#include "problems.hpp"

namespace convkit::testing {

namespace {

/// Writes sum over t < rank of column_t row_t^T into k, with factors uniform in [-1, 1) (rank 0: no
/// change); `scale` multiplies the result.
template <class T>
void fill_low_rank(view2d<T> k, int rank, std::mt19937_64& rng, double scale = 1.0) {
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  std::vector<double> sum(std::size_t(k.rows() * k.cols()), 0.0);
  for (int t = 0; t < rank; ++t) {
    std::vector<double> column(std::size_t(k.rows())), row(std::size_t(k.cols()));
    for (double& x : column) x = d(rng);
    for (double& x : row) x = d(rng);
    for (index_t i = 0; i < k.rows(); ++i)
      for (index_t j = 0; j < k.cols(); ++j)
        sum[std::size_t(i * k.cols() + j)] += column[std::size_t(i)] * row[std::size_t(j)];
  }
  for (index_t i = 0; i < k.rows(); ++i)
    for (index_t j = 0; j < k.cols(); ++j) k(i, j) = T(sum[std::size_t(i * k.cols() + j)] * scale);
}

/// The rank the direct backend would run kernel k at (0: dense), by its default tolerance.
template <class T>
int rank_of(const array2d<T>& k, double tolerance = detail::rounding_tolerance<T>()) {
  return detail::kernel_factors_of(k.data(), k.rows(), k.cols(), tolerance, detail::useful_rank(k.rows(), k.cols()))
      ->rank;
}

template <class T>
array2d<T> kernel_of(index_t rows, index_t cols, std::initializer_list<double> values) {
  array2d<T> k(rows, cols);
  index_t i = 0;
  for (double v : values) k.data()[i++] = T(v);
  return k;
}

/// A sampled Gaussian (rank 1) and Laplacian of Gaussian (rank 2: g''(x) g(y) + g(x) g''(y)).
template <class T>
array2d<T> gaussian(index_t n, double sigma) {
  array2d<T> k(n, n);
  const double c = double(n - 1) / 2;
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j)
      k(i, j) = T(std::exp(-((i - c) * (i - c) + (j - c) * (j - c)) / (2 * sigma * sigma)));
  return k;
}
template <class T>
array2d<T> laplacian_of_gaussian(index_t n, double sigma) {
  array2d<T> k(n, n);
  const double c = double(n - 1) / 2, s2 = sigma * sigma;
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      const double r2 = (i - c) * (i - c) + (j - c) * (j - c);
      k(i, j) = T((r2 - 2 * s2) / (s2 * s2) * std::exp(-r2 / (2 * s2)));
    }
  return k;
}

/// The rank a rows x cols kernel of `rank` terms is run at: 0 (dense) where that many terms would
/// cost more multiply-adds than the dense kernel.
int expected_rank(index_t rows, index_t cols, int rank) { return rank <= detail::useful_rank(rows, cols) ? rank : 0; }

/// The separable path's error: each term is a column pass of R products and a row pass of S, so the
/// local bound is that of R + S + 2 roundings and the factors' own (their magnitude is the kernel's
/// for rank 1); for more terms, whose products may cancel, and for the factors' reconstruction error
/// (within the tolerance, 2 eps), a global part: per term (R + S + 2) eps sigma_t ||window||_2 with
/// sigma_t <= ||K||_F, bounded by the whole extended input's norm (Cauchy-Schwarz). A bias adds
/// one rounding.
error_model separable_error(const conv_case& c, int rank) {
  const double passes = double(c.k_rows + c.k_cols + 2);
  return {passes + 2 + (c.bias ? 1 : 0), rank > 1 ? passes * rank + 2 : 2.0};
}

template <class T>
void run_grid_low_rank(int rank, double scale) {
  std::mt19937_64 rng(run_seed() ^ (0x5e9ULL << 20) ^ (std::uint64_t(rank) << 8) ^ sizeof(T));
  int separable = 0;
  for (conv_case c : conv_grid(front_door::image)) {
    c.algo = algorithm::direct;
    c.tune.separable = separable_use::always;
    bool ran = false;
    check_case<T>(
        c, rng,
        [&](view2d<const T> in, view2d<const T> k, view2d<T> out, const options& o) {
          const detail::conv_problem p = detail::image_problem<T>(in.rows(), in.cols(), k, o, false);
          ran = p.kernel_rank > 0 && detail::runs_separably(p, active_profile()->direct);
          if (!p.sparse()) {
            INFO("kernel of rank " << rank << " analysed as rank " << p.kernel_rank);
            CHECK(p.kernel_rank == expected_rank(c.k_rows, c.k_cols, rank));
          }
          conv2d<T>(in, k, out, o);
        },
        separable_error(c, rank), [&](view2d<T> k, std::mt19937_64& g) { fill_low_rank(k, rank, g, scale); });
    separable += ran ? 1 : 0;
  }
  INFO("grid cases run by the separable path");
  CHECK(separable > 20);
}

}  // namespace

TEST_CASE("separable: the detector finds the rank of outer products and their sums", "[separable]") {
  std::mt19937_64 rng(run_seed() ^ 0xde7ULL);
  for (index_t n : {3, 5, 9, 15, 31})
    for (int rank = 1; rank <= 3; ++rank) {
      INFO(n << "x" << n << " of rank " << rank);
      array2d<float> kf(n, n + 2);
      array2d<double> kd(n + 1, n);
      fill_low_rank(kf.view(), rank, rng);
      fill_low_rank(kd.view(), rank, rng);
      CHECK(rank_of(kf) == expected_rank(n, n + 2, rank));
      CHECK(rank_of(kd) == expected_rank(n + 1, n, rank));
      // One element one ulp away: still within rounding.
      kf(n / 2, n / 2) = std::nextafter(kf(n / 2, n / 2), 2.0f);
      kd(n / 2, n / 3) = std::nextafter(kd(n / 2, n / 3), 2.0);
      CHECK(rank_of(kf) == expected_rank(n, n + 2, rank));
      CHECK(rank_of(kd) == expected_rank(n + 1, n, rank));
    }
}

TEST_CASE("separable: the decision does not depend on the kernel's scale", "[separable]") {
  std::mt19937_64 rng(run_seed() ^ 0x5ca1eULL);
  for (int rank = 1; rank <= 3; ++rank) {
    array2d<double> base(7, 9);
    fill_low_rank(base.view(), rank, rng);
    const auto f = detail::kernel_factors_of(base.data(), 7, 9, detail::rounding_tolerance<double>(), 4);
    for (double scale : {1e-300, 1e-30, 1e30, 1e300}) {
      INFO("rank " << rank << " scaled by " << scale);
      array2d<double> k(7, 9);
      array2d<float> kf(7, 9);
      for (index_t i = 0; i < k.size(); ++i) k.data()[i] = base.data()[i] * scale;
      const auto g = detail::kernel_factors_of(k.data(), 7, 9, detail::rounding_tolerance<double>(), 4);
      CHECK(g->rank == rank);
      CHECK(g->relative_error <= 2 * f->relative_error + 1e-15);
      if (scale >= 1e-30 && scale <= 1e30) {  // within float's range
        for (index_t i = 0; i < k.size(); ++i) kf.data()[i] = float(base.data()[i] * scale);
        CHECK(rank_of(kf) == rank);
      }
    }
  }
}

TEST_CASE("separable: integer filters factor exactly", "[separable]") {
  const auto sobel = kernel_of<float>(3, 3, {-1, 0, 1, -2, 0, 2, -1, 0, 1});
  const auto scharr = kernel_of<float>(3, 3, {-3, 0, 3, -10, 0, 10, -3, 0, 3});
  const auto binomial =
      kernel_of<double>(5, 5, {1, 4, 6, 4, 1, 4, 16, 24, 16, 4, 6, 24, 36, 24, 6, 4, 16, 24, 16, 4, 1, 4, 6, 4, 1});
  array2d<float> box(5, 7);
  for (index_t i = 0; i < box.size(); ++i) box.data()[i] = 1;
  for (const array2d<float>* k : std::initializer_list<const array2d<float>*>{&sobel, &scharr, &box}) {
    const auto f = detail::kernel_factors_of(k->data(), k->rows(), k->cols(), detail::rounding_tolerance<float>(), 4);
    CHECK(f->rank == 1);
    CHECK(f->relative_error == 0);
  }
  const auto f = detail::kernel_factors_of(binomial.data(), 5, 5, detail::rounding_tolerance<double>(), 4);
  CHECK(f->rank == 1);
  CHECK(f->relative_error == 0);
  // A Laplacian of Gaussian and a difference of Gaussians are two terms.
  CHECK(rank_of(laplacian_of_gaussian<double>(15, 2.0)) == 2);
  CHECK(rank_of(laplacian_of_gaussian<float>(15, 2.0)) == 2);
  array2d<float> dog = gaussian<float>(11, 1.5), wide = gaussian<float>(11, 3.0);
  for (index_t i = 0; i < dog.size(); ++i) dog.data()[i] -= wide.data()[i];
  CHECK(rank_of(dog) == 2);
  CHECK(rank_of(gaussian<float>(31, 5.0)) == 1);
}

TEST_CASE("separable: kernels only nearly low-rank are refused", "[separable]") {
  std::mt19937_64 rng(run_seed() ^ 0x7ea7ULL);
  for (index_t n : {3, 5, 15}) {
    INFO(n << "x" << n);
    array2d<double> noise(n, n), kd(n, n);
    array2d<float> kf(n, n);
    fill_random(noise.view(), rng);
    for (int rank = 1; rank <= detail::useful_rank(n, n); ++rank) {
      fill_low_rank(kd.view(), rank, rng);
      for (index_t i = 0; i < kd.size(); ++i) kf.data()[i] = float(kd.data()[i] + 1e-5 * noise.data()[i]);
      for (index_t i = 0; i < kd.size(); ++i) kd.data()[i] += 1e-13 * noise.data()[i];
      CHECK(rank_of(kf) != rank);
      CHECK(rank_of(kd) != rank);
      // Opting in to a lossy approximation takes them (its bound is the caller's choice).
      CHECK(rank_of(kf, 1e-3) == rank);
    }
    array2d<float> random(n, n);
    fill_random(random.view(), rng);
    CHECK(rank_of(random) == 0);
  }
  // Nothing to gain, or nothing to analyse: 1-D kernels, a zero kernel, a non-finite one.
  CHECK(rank_of(kernel_of<float>(1, 5, {1, 2, 3, 2, 1})) == 0);
  CHECK(rank_of(kernel_of<float>(5, 1, {1, 2, 3, 2, 1})) == 0);
  CHECK(rank_of(array2d<float>(4, 4)) == 0);
  CHECK(rank_of(kernel_of<double>(2, 2, {1, std::numeric_limits<double>::infinity(), 1, 1})) == 0);
}

TEST_CASE("separable: the path matches the reference over the problem grid", "[separable]") {
  for (int rank = 1; rank <= 3; ++rank) {
    INFO("rank " << rank);
    run_grid_low_rank<float>(rank, 1.0);
    run_grid_low_rank<double>(rank, 1.0);
  }
  INFO("scaled kernels");
  run_grid_low_rank<float>(1, 1e-30);
  run_grid_low_rank<float>(2, 1e30);
  run_grid_low_rank<double>(2, 1e-300);
}

TEST_CASE("separable: integer filters and the usual shapes through every border", "[separable]") {
  std::mt19937_64 rng(run_seed() ^ 0x1e7ULL);
  const auto sobel = kernel_of<float>(3, 3, {-1, 0, 1, -2, 0, 2, -1, 0, 1});
  const array2d<float> g = gaussian<float>(15, 3.0), log = laplacian_of_gaussian<float>(15, 2.0);
  for (const array2d<float>* k : {&sobel, &g, &log})
    for (border edge :
         {border::zero, border::constant, border::replicate, border::reflect, border::symmetric, border::circular})
      for (output mode : {output::full, output::same, output::valid}) {
        conv_case c = image_case(41, 70, k->rows(), k->cols());
        c.view_pad = 3;
        c.mode = mode;
        c.edge = edge;
        c.edge_value = 0.5;
        c.algo = algorithm::direct;
        c.tune.separable = separable_use::always;
        const int rank = k == &log ? 2 : 1;
        check_case<float>(c, rng, call_conv2d<float>{}, separable_error(c, rank),
                          [&](view2d<float> kk, std::mt19937_64&) {
                            for (index_t i = 0; i < kk.rows(); ++i)
                              for (index_t j = 0; j < kk.cols(); ++j) kk(i, j) = (*k)(i, j);
                          });
      }
}

TEST_CASE("separable: depthwise layers with separable filters match the reference", "[separable][layers]") {
  std::mt19937_64 rng(run_seed() ^ 0xd3e9ULL);
  int checked = 0;
  for (conv_case c : conv_grid(front_door::layer)) {
    if (c.groups != c.c || c.c != c.k || c.k_rows < 3 || c.k_cols < 3) continue;  // depthwise, 2-D filters
    c.algo = algorithm::direct;
    c.tune.separable = separable_use::always;
    for (int rank = 1; rank <= 2; ++rank) {
      check_case<float>(
          c, rng,
          [&](view4d<const float> in, view4d<const float> w, const float* b, view4d<float> out,
              const layer_options& o) {
            const detail::conv_problem p = detail::layer_problem<float>(in.shape(), w, b, o, false);
            if (!p.sparse()) CHECK(p.kernel_rank == expected_rank(c.k_rows, c.k_cols, rank));
            conv2d<float>(in, w, b, out, o);
          },
          separable_error(c, rank), [&](view2d<float> w, std::mt19937_64& g) { fill_low_rank(w, rank, g); });
      ++checked;
    }
  }
  CHECK(checked > 10);
}

TEST_CASE("separable: NaN and Inf reach the outputs the dense path gives them", "[separable][nan]") {
  const array2d<double> g = gaussian<double>(9, 2.0), log = laplacian_of_gaussian<double>(9, 1.5);
  for (const array2d<double>* k : {&g, &log})
    for (border edge : {border::zero, border::replicate, border::reflect, border::circular})
      for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
        INFO(to_string(edge) << " " << bad << (k == &log ? " LoG" : " Gaussian"));
        array2d<double> in(30, 40);
        for (index_t i = 0; i < in.size(); ++i) in.data()[i] = std::sin(0.1 * double(i));
        in(3, 37) = bad;
        in(20, 10) = bad;
        options o;
        o.mode = output::same;
        o.edge = edge;
        o.algo = algorithm::direct;
        o.tune.separable = separable_use::always;
        const array2d<double> separable = conv2d(in, *k, o);
        o.tune.separable = separable_use::never;
        const array2d<double> dense = conv2d(in, *k, o);
        index_t differ = 0, finite = 0;
        for (index_t i = 0; i < dense.size(); ++i) {
          differ += std::isfinite(dense.data()[i]) != std::isfinite(separable.data()[i]) ? 1 : 0;
          finite += std::isfinite(dense.data()[i]) ? 1 : 0;
        }
        CHECK(differ == 0);
        CHECK(finite > dense.size() / 2);
      }
}

TEST_CASE("separable: the choice, the options and plans", "[separable]") {
  const array2d<float> g = gaussian<float>(15, 3.0);
  array2d<float> img(300, 300);
  for (index_t i = 0; i < img.size(); ++i) img.data()[i] = float(i % 17);
  options o;
  o.mode = output::same;
  o.algo = algorithm::direct;
  const detail::conv_problem p = detail::image_problem<float>(300, 300, view2d<const float>(g), o, false);
  CHECK(p.kernel_rank == 1);
  CHECK(detail::runs_separably(p, active_profile()->direct));  // 30 multiply-adds a pixel, not 225
  o.tune.separable = separable_use::never;
  CHECK(detail::image_problem<float>(300, 300, view2d<const float>(g), o, false).kernel_rank == 0);
  // Backends other than direct never analyse the kernel.
  o.tune.separable = separable_use::always;
  o.algo = algorithm::im2col;
  CHECK(detail::image_problem<float>(300, 300, view2d<const float>(g), o, false).kernel_rank == 0);
  // A plan reused on new inputs; a bad tuning value is refused by name.
  o.algo = algorithm::direct;
  plan<float> pl(300, 300, g, o);
  array2d<float> a(300, 300), b(300, 300);
  pl.execute(img, a);
  for (index_t i = 0; i < img.size(); ++i) img.data()[i] = float(i % 5);
  pl.execute(img, a);
  o.tune.separable = separable_use::never;
  conv2d<float>(img, g, b.view(), o);
  for (index_t i = 0; i < a.size(); ++i)
    REQUIRE(std::abs(a.data()[i] - b.data()[i]) <= 1e-4f * (1 + std::abs(b.data()[i])));
  o.tune.separable = static_cast<separable_use>(7);
  CHECK_THROWS_WITH(conv2d(img, g, o), Catch::Contains("tuning.separable"));
  o.tune.separable = separable_use::always;
  o.tune.separable_tolerance = 1.5;
  CHECK_THROWS_WITH(conv2d(img, g, o), Catch::Contains("tuning.separable_tolerance"));
}

}  // namespace convkit::testing
