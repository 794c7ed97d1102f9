// The kernel builders (kernels.hpp) against their OpenCV 4.6 and SciPy 1.10 counterparts: values
// printed by cv::getGaussianKernel, cv::getDerivKernels, cv::Laplacian (on a delta) and
// scipy.ndimage.gaussian_filter / gaussian_laplace (on a delta), pasted here to 17 digits.
#include <convkit/kernels.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

namespace convkit::testing {
namespace {

void check_row(const array2d<double>& k, index_t row, const std::vector<double>& want) {
  REQUIRE(k.cols() == index_t(want.size()));
  for (index_t i = 0; i < k.cols(); ++i) {
    INFO("element (" << row << ", " << i << ")");
    CHECK(k(row, i) == Approx(want[std::size_t(i)]).epsilon(1e-14).margin(1e-300));
  }
}
void check_taps(const array2d<double>& column_or_row, const std::vector<double>& want) {
  const array2d<double>& v = column_or_row;
  std::vector<double> got;
  for (index_t i = 0; i < v.rows() * v.cols(); ++i) got.push_back(v.data()[i]);
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("tap " << i);
    CHECK(got[i] == Approx(want[i]).epsilon(1e-14).margin(1e-300));
  }
}

}  // namespace

TEST_CASE("kernels: gaussian(sigma, size) is OpenCV's getGaussianKernel", "[kernels]") {
  check_taps(kernels::gaussian_factors(0, 7).row, {0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125});
  check_taps(kernels::gaussian_factors(0, 9).row,
             {0.015625, 0.05078125, 0.1171875, 0.19921875, 0.234375, 0.19921875, 0.1171875, 0.05078125, 0.015625});
  check_taps(kernels::gaussian_factors(2.5, 11).row,
             {0.022190548492442997, 0.045588999785278535, 0.079811408240091988, 0.11906462996609925,
              0.15136080967773607, 0.16396720767670225, 0.15136080967773607, 0.11906462996609925, 0.079811408240091988,
              0.045588999785278535, 0.022190548492442997});
  check_taps(kernels::gaussian_factors(0, 13).column,
             {0.0057988777015101868, 0.01640132200467247, 0.038398698559176263, 0.074414385468197008,
              0.1193713316000055, 0.15850607862252303, 0.17421861208783126, 0.15850607862252303, 0.1193713316000055,
              0.074414385468197008, 0.038398698559176263, 0.01640132200467247, 0.0057988777015101868});
  check_taps(kernels::gaussian_factors(0.8, 3).row, {0.2389942656229905, 0.52201146875401894, 0.2389942656229905});
  const array2d<double> k = kernels::gaussian(1.0, 7);
  CHECK(k(2, 4) == Approx(0.24203622937611435 * 0.24203622937611435).epsilon(1e-14));
  CHECK(kernels::opencv_gaussian_size(2.0, true) == 13);
  CHECK(kernels::opencv_gaussian_size(2.0, false) == 17);
  CHECK(kernels::opencv_gaussian_size(0.4, true) == 3);
  CHECK_THROWS_WITH(kernels::gaussian(1.0, 4), Catch::Contains("size must be odd"));
}

TEST_CASE("kernels: gaussian(sigma) and laplacian_of_gaussian are SciPy's", "[kernels]") {
  const array2d<double> g = kernels::gaussian(1.5);
  REQUIRE(g.rows() == 13);
  check_row(
      g, 6,
      {2.3729615242729036e-05, 0.00027346353912026996, 0.0020206374315717909, 0.0095732100474209911,
       0.029080844373900395, 0.056641750529659154, 0.070736986087240258, 0.056641750529659154, 0.029080844373900395,
       0.0095732100474209911, 0.0020206374315717909, 0.00027346353912026996, 2.3729615242729036e-05});
  CHECK(g(0, 0) == Approx(7.9603990884413831e-09).epsilon(1e-13));
  const array2d<double> log = kernels::laplacian_of_gaussian(1.2);
  REQUIRE(log.rows() == 11);
  check_row(log, 5,
            {0.00020026385703232925, 0.0027034699379430709, 0.014332303543773656, 0.014885590709360672,
             -0.070810226811371918, -0.15350669416699755, -0.070810226811371918, 0.014885590709360672,
             0.014332303543773656, 0.0027034699379430709, 0.00020026385703232925});
  CHECK(log(3, 6) == Approx(0.019910731539365026).epsilon(1e-13));
  CHECK(log(0, 0) == Approx(7.2461172619995908e-08).epsilon(1e-13));
  CHECK_THROWS_WITH(kernels::gaussian(-1.0), Catch::Contains("sigma must be positive"));
}

TEST_CASE("kernels: sobel, scharr and laplacian are OpenCV's; box is cv::blur's", "[kernels]") {
  kernels::factors s = kernels::sobel_factors(1, 0, 5);
  check_taps(s.row, {-1, -2, 0, 2, 1});
  check_taps(s.column, {1, 4, 6, 4, 1});
  s = kernels::sobel_factors(2, 1, 7);
  check_taps(s.row, {1, 2, -1, -4, -1, 2, 1});
  check_taps(s.column, {-1, -4, -5, 0, 5, 4, 1});
  s = kernels::sobel_factors(1, 0, 1);
  check_taps(s.row, {-1, 0, 1});
  check_taps(s.column, {1});
  const array2d<double> sobel3 = kernels::sobel(1, 0);
  check_row(sobel3, 0, {-1, 0, 1});
  check_row(sobel3, 1, {-2, 0, 2});
  s = kernels::scharr_factors(0, 1);
  check_taps(s.row, {3, 10, 3});
  check_taps(s.column, {-1, 0, 1});
  const array2d<double> l1 = kernels::laplacian(1), l3 = kernels::laplacian(3), l5 = kernels::laplacian(5);
  check_taps(l1, {0, 1, 0, 1, -4, 1, 0, 1, 0});
  check_taps(l3, {2, 0, 2, 0, -8, 0, 2, 0, 2});
  check_taps(l5, {2, 4, 4, 4, 2, 4, 0, -8, 0, 4, 4, -8, -24, -8, 4, 4, 0, -8, 0, 4, 2, 4, 4, 4, 2});
  const array2d<double> b = kernels::box(3, 5);
  for (index_t i = 0; i < b.size(); ++i) CHECK(b.data()[i] == Approx(1.0 / 15));
  CHECK_THROWS_WITH(kernels::sobel(0, 0), Catch::Contains("not both 0"));
  CHECK_THROWS_WITH(kernels::sobel(3, 0, 3), Catch::Contains("below its kernel's size"));
  CHECK_THROWS_WITH(kernels::scharr(1, 1), Catch::Contains("(1, 0) or (0, 1)"));
}

}  // namespace convkit::testing
