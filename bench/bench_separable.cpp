// bench_separable: the kernels people filter images with, which are separable (Gaussian, Sobel) or
// sums of two separable terms (Laplacian of Gaussian), and a random (full-rank) kernel that must not
// pay for the detection. Float images, 'same' cross-correlation with the reflect border (OpenCV's
// BORDER_REFLECT_101), one-shot calls (what a user's call costs), all threads unless --threads.
// Per point, interleaved (A B C ..., B C A ..., see bench_common.hpp): convkit automatic; convkit
// dense direct (tuning::separable = never, today's path for these kernels); convkit fft; and, where
// OpenCV was found at configure time, sepFilter2D given the 1-D factors (two calls and an add for
// the LoG), GaussianBlur (Gaussians) and filter2D. Medians, with the spread of automatic's runs, and
// the largest difference between convkit's result and OpenCV's filter2D.
//
//   bench_separable                      1000 and 4000, every kernel, 7+ rounds
//   bench_separable --quick              1000 only, 3 rounds
//   bench_separable --images 2000 --rounds 11 --threads 1
#include <convkit/convkit.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

#if defined(CONVKIT_BENCH_OPENCV)
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace {

using convkit::array2d;
using convkit::index_t;

/// A kernel, and how a user would hand it to OpenCV's separable calls: sum over terms of
/// column_t row_t^T (empty: not separable).
struct test_kernel {
  std::string name;
  array2d<float> dense;
  std::vector<std::vector<float>> columns, rows;
  double sigma = 0;  ///< a Gaussian's, for GaussianBlur; 0 otherwise
};

std::vector<float> gaussian_1d(int n, double sigma, int derivative = 0) {
  std::vector<float> g(static_cast<std::size_t>(n));
  const double c = (n - 1) / 2.0;
  for (int i = 0; i < n; ++i) {
    const double x = i - c, e = std::exp(-x * x / (2 * sigma * sigma));
    g[std::size_t(i)] = float(derivative == 0 ? e : (x * x - sigma * sigma) / std::pow(sigma, 4) * e);
  }
  return g;
}

test_kernel separable_kernel(std::string name, const std::vector<std::vector<float>>& columns,
                             const std::vector<std::vector<float>>& rows) {
  test_kernel k{std::move(name), array2d<float>(index_t(columns[0].size()), index_t(rows[0].size())), columns, rows};
  for (std::size_t t = 0; t < columns.size(); ++t)
    for (index_t i = 0; i < k.dense.rows(); ++i)
      for (index_t j = 0; j < k.dense.cols(); ++j)
        k.dense(i, j) += columns[t][std::size_t(i)] * rows[t][std::size_t(j)];
  return k;
}

std::vector<test_kernel> kernels() {
  std::vector<test_kernel> out;
  for (int n : {5, 15, 31}) {
    const double sigma = 0.3 * ((n - 1) * 0.5 - 1) + 0.8;  // OpenCV's default sigma for the size
    const std::vector<float> g = gaussian_1d(n, sigma);
    out.push_back(separable_kernel("Gaussian " + std::to_string(n) + "x" + std::to_string(n), {g}, {g}));
    out.back().sigma = sigma;
  }
  out.push_back(separable_kernel("Sobel 3x3", {{1, 2, 1}}, {{-1, 0, 1}}));
  const std::vector<float> g = gaussian_1d(15, 2.0), d2 = gaussian_1d(15, 2.0, 2);
  out.push_back(separable_kernel("LoG 15x15 (rank 2)", {d2, g}, {g, d2}));
  test_kernel random{"random 15x15", convkit::bench::random_image(15, 15, 2), {}, {}};
  out.push_back(std::move(random));
  return out;
}

std::vector<index_t> parse_list(const char* text) {
  std::vector<index_t> v;
  for (const char* p = text; *p;) {
    v.push_back(std::strtol(p, const_cast<char**>(&p), 10));
    if (*p == ',') ++p;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace convkit;
  std::vector<index_t> images{1000, 4000};
  int rounds = 7, threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      images = {1000};
      rounds = 3;
    } else if (a == "--images" && i + 1 < argc) {
      images = parse_list(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_separable [--quick] [--images N,N] [--rounds R] [--threads T]\n");
      return 2;
    }
  }
  const int used = threads > 0 ? threads : int(std::thread::hardware_concurrency());
#if defined(CONVKIT_BENCH_OPENCV)
  cv::setNumThreads(used);
  const bool opencv = true;
#else
  const bool opencv = false;
#endif
  const bool fft = [] {  // the FFT backend is part of this build
    try {
      options o;
      o.algo = algorithm::fft;
      plan<float>(4, 4, array2d<float>(2, 2), o);
      return true;
    } catch (const unavailable&) {
      return false;
    }
  }();
  std::printf(
      "bench_separable: float 'same' correlation, reflect border, one-shot calls, %d threads, %d+ interleaved "
      "rounds, medians (ms); direct instruction set %s%s\n",
      used, rounds, cpu::to_string(direct::instruction_set()), opencv ? "" : "; OpenCV not found");
  std::printf("%-6s %-20s %10s %10s %10s %10s %10s %10s %9s %9s %9s %19s %9s\n", "image", "kernel", "automatic",
              "dense", "fft", "cv sep", "cv Gauss", "cv f2D", "dense/aut", "cvsep/aut", "cvf2D/aut", "automatic spread",
              "max diff");
  for (index_t n : images)
    for (const test_kernel& k : kernels()) {
      const array2d<float> img = bench::random_image(n, n, 1);
      array2d<float> out_auto(n, n), out_dense(n, n), out_fft(n, n);
      options o;
      o.mode = output::same;
      o.correlate = true;
      o.edge = border::reflect;
      o.threads = threads;
      options dense = o, by_fft = o;
      dense.algo = algorithm::direct;
      dense.tune.separable = separable_use::never;
      by_fft.algo = algorithm::fft;
      std::vector<std::function<void()>> runs{[&] { conv2d<float>(img, k.dense, out_auto, o); },
                                              [&] { conv2d<float>(img, k.dense, out_dense, dense); }};
      if (fft) runs.push_back([&] { conv2d<float>(img, k.dense, out_fft, by_fft); });
      double max_diff = std::nan("");
      int cv_sep = -1, cv_gauss = -1, cv_f2d = -1;
#if defined(CONVKIT_BENCH_OPENCV)
      const int ni = int(n);
      cv::Mat src(ni, ni, CV_32F, const_cast<float*>(img.data())), dst_sep(ni, ni, CV_32F), term(ni, ni, CV_32F),
          dst_gauss(ni, ni, CV_32F), dst_f2d(ni, ni, CV_32F);
      cv::Mat kernel2d(int(k.dense.rows()), int(k.dense.cols()), CV_32F, const_cast<float*>(k.dense.data()));
      if (!k.columns.empty()) {
        cv_sep = int(runs.size());
        runs.push_back([&] {
          for (std::size_t t = 0; t < k.columns.size(); ++t) {
            cv::Mat kx(1, int(k.rows[t].size()), CV_32F, const_cast<float*>(k.rows[t].data()));
            cv::Mat ky(int(k.columns[t].size()), 1, CV_32F, const_cast<float*>(k.columns[t].data()));
            cv::sepFilter2D(src, t == 0 ? dst_sep : term, CV_32F, kx, ky, cv::Point(-1, -1), 0, cv::BORDER_REFLECT_101);
            if (t > 0) dst_sep += term;
          }
        });
      }
      if (k.sigma > 0) {
        cv_gauss = int(runs.size());
        runs.push_back([&] {
          cv::GaussianBlur(src, dst_gauss, cv::Size(int(k.dense.cols()), int(k.dense.rows())), k.sigma, k.sigma,
                           cv::BORDER_REFLECT_101);
        });
      }
      cv_f2d = int(runs.size());
      runs.push_back(
          [&] { cv::filter2D(src, dst_f2d, CV_32F, kernel2d, cv::Point(-1, -1), 0, cv::BORDER_REFLECT_101); });
#endif
      const std::vector<bench::timing_summary> t = bench::interleaved(runs, rounds, 0.3);
#if defined(CONVKIT_BENCH_OPENCV)
      max_diff = 0;
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j < n; ++j)
          max_diff = std::max(max_diff, double(std::abs(out_auto(i, j) - dst_f2d.at<float>(int(i), int(j)))));
#endif
      const auto ms = [&](int i) {
        char buf[32];
        if (i < 0)
          std::snprintf(buf, sizeof buf, "-");
        else
          std::snprintf(buf, sizeof buf, "%.3f", t[std::size_t(i)].median * 1e3);
        return std::string(buf);
      };
      const auto ratio = [&](int i) {
        char buf[32];
        if (i < 0)
          std::snprintf(buf, sizeof buf, "-");
        else
          std::snprintf(buf, sizeof buf, "%.2fx", t[std::size_t(i)].median / t[0].median);
        return std::string(buf);
      };
      char spread[48];
      std::snprintf(spread, sizeof spread, "%.3f..%.3f", t[0].fastest * 1e3, t[0].slowest * 1e3);
      std::printf("%-6td %-20s %10s %10s %10s %10s %10s %10s %9s %9s %9s %19s %9.2g\n", n, k.name.c_str(),
                  ms(0).c_str(), ms(1).c_str(), ms(fft ? 2 : -1).c_str(), ms(cv_sep).c_str(), ms(cv_gauss).c_str(),
                  ms(cv_f2d).c_str(), ratio(1).c_str(), ratio(cv_sep).c_str(), ratio(cv_f2d).c_str(), spread, max_diff);
      std::fflush(stdout);
    }
  return 0;
}
