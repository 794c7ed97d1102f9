// Gaussian-blur a real photograph: read a PGM, convolve with a chosen border and backend, write a PGM.
//
//   example_blur_image [input.pgm] [output.pgm] [sigma] [border] [algorithm]
// Defaults: data/grace_hopper.pgm (Commodore Grace M. Hopper, official U.S. Navy photograph, public
// domain; taken from matplotlib's sample data and converted to 256x320 grayscale), blurred.pgm,
// sigma 3, reflect, automatic. The program checks its own result: the blur keeps the mean brightness
// (a normalised kernel with a reflecting border) and matches the float64 reference.
#include <convkit/convkit.hpp>
#include <convkit/reference.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>

namespace {

convkit::array2d<float> read_pgm(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string magic;
  long w = 0, h = 0, maxval = 0;
  f >> magic >> w >> h >> maxval;
  if (!f || magic != "P5" || maxval != 255 || w <= 0 || h <= 0)
    throw std::runtime_error(path + ": not an 8-bit binary PGM");
  f.get();  // the single whitespace after maxval
  convkit::array2d<float> img(h, w);
  for (convkit::index_t i = 0; i < img.size(); ++i) img.data()[i] = float(static_cast<unsigned char>(f.get())) / 255.0f;
  if (!f) throw std::runtime_error(path + ": truncated");
  return img;
}

void write_pgm(const std::string& path, const convkit::array2d<float>& img) {
  std::ofstream f(path, std::ios::binary);
  f << "P5\n" << img.cols() << " " << img.rows() << "\n255\n";
  for (convkit::index_t i = 0; i < img.size(); ++i)
    f.put(static_cast<char>(std::lround(std::fmin(std::fmax(img.data()[i], 0.0f), 1.0f) * 255.0f)));
}

convkit::array2d<float> gaussian(double sigma) {
  const convkit::index_t radius = convkit::index_t(std::ceil(3 * sigma)), n = 2 * radius + 1;
  convkit::array2d<float> k(n, n);
  double sum = 0;
  for (convkit::index_t r = 0; r < n; ++r)
    for (convkit::index_t c = 0; c < n; ++c) {
      const double y = double(r - radius), x = double(c - radius);
      sum += k(r, c) = float(std::exp(-(x * x + y * y) / (2 * sigma * sigma)));
    }
  for (convkit::index_t i = 0; i < k.size(); ++i) k.data()[i] = float(k.data()[i] / sum);
  return k;
}

template <class E>
E parse(const char* s, std::initializer_list<E> values) {
  for (E v : values)
    if (std::strcmp(s, convkit::to_string(v)) == 0) return v;
  throw std::invalid_argument(std::string("unknown name: ") + s);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace convkit;
  const std::string in_path = argc > 1 ? argv[1] : "data/grace_hopper.pgm";
  const std::string out_path = argc > 2 ? argv[2] : "blurred.pgm";
  const double sigma = argc > 3 ? std::atof(argv[3]) : 3.0;
  options opt;
  opt.mode = output::same;
  opt.edge = argc > 4 ? parse(argv[4], {border::zero, border::constant, border::replicate, border::reflect,
                                        border::symmetric, border::circular})
                      : border::reflect;
  opt.algo = argc > 5 ? parse(argv[5], {algorithm::automatic, algorithm::direct, algorithm::im2col, algorithm::fft,
                                        algorithm::cufft})
                      : algorithm::automatic;

  const array2d<float> image = read_pgm(in_path);
  const array2d<float> kernel = gaussian(sigma);
  plan<float> blur(image.rows(), image.cols(), kernel, opt);
  const array2d<float> blurred = blur(image);
  write_pgm(out_path, blurred);

  double mean_in = 0, mean_out = 0, worst = 0;
  const array2d<double> want = reference::conv2d<float>(image, kernel, opt);
  for (convkit::index_t i = 0; i < image.size(); ++i) {
    mean_in += image.data()[i];
    mean_out += blurred.data()[i];
    worst = std::fmax(worst, std::fabs(blurred.data()[i] - want.data()[i]));
  }
  mean_in /= double(image.size());
  mean_out /= double(image.size());
  std::printf("%s: %lldx%lld, %lldx%lld Gaussian (sigma %.1f), border %s, backend %s -> %s\n", in_path.c_str(),
              (long long)image.rows(), (long long)image.cols(), (long long)kernel.rows(), (long long)kernel.cols(),
              sigma, to_string(opt.edge), to_string(blur.chosen()), out_path.c_str());
  std::printf("mean brightness %.4f -> %.4f, largest difference from the float64 reference %.2e\n", mean_in, mean_out,
              worst);
  const bool ok = worst < 1e-5 && (opt.edge != border::reflect || std::fabs(mean_in - mean_out) < 0.01);
  return ok ? 0 : 1;
}
