// Edge-detect a real photograph: smooth it with OpenCV's 5x5 Gaussian (kernels::gaussian(sigma, size),
// as cv::GaussianBlur), take Sobel's x and y derivatives (kernels::sobel, as cv::Sobel) into float
// images, so that their negative side survives, and write the gradient magnitude.
//
//   example_edge_detect [input] [output] [float output]
// Defaults: data/grace_hopper.png (public domain, see blur_image.cpp), edges.png: the magnitude
// scaled to 0..255, 8-bit; and, where the build reads and writes TIFF, the float32 magnitude itself
// (default edges.tif). The images are read and written by the tools' image-file module
// (tools/image_files.hpp), not by the library. Color inputs are made gray first (the mean of R, G, B).
// The program checks its own result: the blur's 8-bit output is the image call's (rounded, saturated),
// and a Sobel of 8-bit pixels is exact (an integer kernel): each gradient away from the border must
// equal the plain 3x3 sum over the blurred pixels, to the bit.
#include <convkit/convkit.hpp>
#include <convkit/kernels.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "image_files.hpp"

int main(int argc, char** argv) try {
  using namespace convkit;
  const std::string in_path = argc > 1 ? argv[1] : "data/grace_hopper.png";
  const std::string out_path = argc > 2 ? argv[2] : "edges.png";
  const std::string float_path = argc > 3 ? argv[3] : "edges.tif";

  // An 8-bit gray image (the mean of the color channels, if any).
  const image<std::uint8_t> input = files::read_image_as<std::uint8_t>(in_path);
  image<std::uint8_t> gray(input.rows(), input.cols(), 1);
  const index_t colors = input.channels() >= 3 ? 3 : 1;  // an alpha channel is left out
  for (index_t r = 0; r < gray.rows(); ++r)
    for (index_t c = 0; c < gray.cols(); ++c) {
      int sum = 0;
      for (index_t ch = 0; ch < colors; ++ch) sum += input(r, c, ch);
      gray(r, c, 0) = std::uint8_t((sum + colors / 2) / colors);
    }

  options opt;
  opt.mode = output::same;
  opt.edge = border::reflect;  // OpenCV's default border, BORDER_REFLECT_101
  opt.correlate = true;        // kernels.hpp's kernels are in correlation order: cv::Sobel's sign
  const image<std::uint8_t> smooth = conv2d(gray, kernels::gaussian(1.4, 5), opt);

  // Sobel x and y of 8-bit pixels into float images: exact, negative values kept.
  image<float> gx(smooth.rows(), smooth.cols(), 1), gy(smooth.rows(), smooth.cols(), 1);
  const array2d<double> sobel_x = kernels::sobel(1, 0), sobel_y = kernels::sobel(0, 1);
  conv2d(smooth, sobel_x, gx, opt);
  conv2d(smooth, sobel_y, gy, opt);

  image<float> magnitude(smooth.rows(), smooth.cols(), 1);
  float largest = 0;
  for (index_t i = 0; i < magnitude.size(); ++i) {
    magnitude.data()[i] = std::hypot(gx.data()[i], gy.data()[i]);
    largest = std::fmax(largest, magnitude.data()[i]);
  }
  image<std::uint8_t> edges(smooth.rows(), smooth.cols(), 1);
  for (index_t i = 0; i < edges.size(); ++i)
    edges.data()[i] = std::uint8_t(std::lround(255.0f * magnitude.data()[i] / std::fmax(largest, 1.0f)));
  files::write_image(out_path, edges);
  const bool tiff = files::available(files::format::tiff);
  if (tiff) files::write_image(float_path, magnitude);

  // The check: away from the border, the plain correlation sums.
  long long wrong = 0, strong = 0;
  for (index_t r = 1; r + 1 < smooth.rows(); ++r)
    for (index_t c = 1; c + 1 < smooth.cols(); ++c) {
      double x = 0, y = 0;
      for (index_t u = 0; u < 3; ++u)
        for (index_t v = 0; v < 3; ++v) {
          x += sobel_x(u, v) * smooth(r + u - 1, c + v - 1, 0);
          y += sobel_y(u, v) * smooth(r + u - 1, c + v - 1, 0);
        }
      wrong += (double(gx(r, c, 0)) != x) + (double(gy(r, c, 0)) != y);
      strong += magnitude(r, c, 0) > 0.25f * largest;
    }
  std::printf("%s: %lldx%lld -> 5x5 Gaussian (sigma 1.4), Sobel x and y -> %s%s%s\n", in_path.c_str(),
              (long long)gray.cols(), (long long)gray.rows(), out_path.c_str(), tiff ? " and " : "",
              tiff ? float_path.c_str() : "");
  std::printf("largest gradient %.0f, %lld pixels above a quarter of it, %lld gradients off the plain sums\n",
              double(largest), strong, wrong);
  return wrong == 0 && largest > 0 && strong > 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "example_edge_detect: %s\n", e.what());
  return 1;
}
