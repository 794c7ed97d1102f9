// Gaussian-blur a real photograph: read an image file, blur every channel with SciPy's Gaussian
// (kernels.hpp) through convkit's image call, write an image file.
//
//   example_blur_image [input] [output] [sigma] [border] [algorithm]
// Defaults: data/grace_hopper.png (Commodore Grace M. Hopper, official U.S. Navy photograph, public
// domain; taken from matplotlib's sample data and converted to 256x320 8-bit grayscale; the same
// pixels as data/grace_hopper.pgm), blurred.png, sigma 3, reflect, automatic. Any PNG, JPEG, PGM/PPM
// or TIFF the tools' image-file module reads (tools/image_files.hpp, not part of the library): the
// pixel type follows the input file (8-bit here), the output format the output's extension.
// The program checks its own result: every output pixel is the float64 definition rounded half to
// even and saturated (the image call's contract: off by one level at most, where that value lies
// within float's error of a .5), and the blur keeps the mean brightness (a normalised kernel with a
// reflecting border).
#include <convkit/convkit.hpp>
#include <convkit/kernels.hpp>
#include <convkit/reference.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>

#include "image_files.hpp"

namespace {

template <class E>
E parse(const char* s, std::initializer_list<E> values) {
  for (E v : values)
    if (std::strcmp(s, convkit::to_string(v)) == 0) return v;
  throw std::invalid_argument(std::string("unknown name: ") + s);
}

/// Compares `out` with the float64 reference of each channel: the largest difference, in pixel levels.
template <class P>
double worst_difference(const convkit::image<P>& in, const convkit::image<P>& out,
                        const convkit::array2d<double>& kernel, const convkit::options& opt) {
  double worst = 0;
  for (convkit::index_t ch = 0; ch < in.channels(); ++ch) {
    convkit::array2d<double> plane(in.rows(), in.cols());
    for (convkit::index_t r = 0; r < in.rows(); ++r)
      for (convkit::index_t c = 0; c < in.cols(); ++c) plane(r, c) = double(in(r, c, ch));
    const convkit::array2d<double> want = convkit::reference::conv2d<double>(plane, kernel, opt);
    for (convkit::index_t r = 0; r < want.rows(); ++r)
      for (convkit::index_t c = 0; c < want.cols(); ++c) {
        double w = want(r, c);
        if constexpr (std::is_integral_v<P>)
          w = std::fmin(std::fmax(std::nearbyint(w), double(std::numeric_limits<P>::lowest())),
                        double(std::numeric_limits<P>::max()));
        worst = std::fmax(worst, std::fabs(double(out(r, c, ch)) - w));
      }
  }
  return worst;
}

template <class P>
double mean(const convkit::image<P>& img) {
  double sum = 0;
  for (convkit::index_t i = 0; i < img.size(); ++i) sum += double(img.data()[i]);
  return sum / double(img.size());
}

}  // namespace

int main(int argc, char** argv) try {
  using namespace convkit;
  const std::string in_path = argc > 1 ? argv[1] : "data/grace_hopper.png";
  const std::string out_path = argc > 2 ? argv[2] : "blurred.png";
  const double sigma = argc > 3 ? std::atof(argv[3]) : 3.0;
  options opt;
  opt.mode = output::same;
  opt.edge = argc > 4 ? parse(argv[4], {border::zero, border::constant, border::replicate, border::reflect,
                                        border::symmetric, border::circular})
                      : border::reflect;
  opt.algo = argc > 5 ? parse(argv[5], {algorithm::automatic, algorithm::direct, algorithm::im2col, algorithm::fft,
                                        algorithm::cufft})
                      : algorithm::automatic;
  opt.correlate = true;  // kernels.hpp's kernels are in correlation order (a Gaussian is symmetric anyway)

  const array2d<double> kernel = kernels::gaussian(sigma);  // SciPy's gaussian_filter(sigma) kernel
  const files::any_image input = files::read_image(in_path);
  return std::visit(
      [&](const auto& image) {
        using P = typename std::decay_t<decltype(image)>::value_type;
        const convkit::image<P> blurred = conv2d(image, kernel, opt);  // every channel, in P's pixels
        files::write_image(out_path, blurred);

        const double worst = worst_difference(image, blurred, kernel, opt);
        const double mean_in = mean(image), mean_out = mean(blurred);
        std::printf(
            "%s: %lldx%lld, %lld channel(s) of %s pixels, %lldx%lld Gaussian (sigma %.1f), border %s, "
            "algorithm %s -> %s\n",
            in_path.c_str(), (long long)image.cols(), (long long)image.rows(), (long long)image.channels(),
            files::pixel_name<P>(), (long long)kernel.rows(), (long long)kernel.cols(), sigma, to_string(opt.edge),
            to_string(opt.algo), out_path.c_str());
        std::printf("mean brightness %.2f -> %.2f, largest difference from the rounded float64 reference %.2g\n",
                    mean_in, mean_out, worst);
        const double allowed = std::is_integral_v<P> ? 1.0 : 1e-4 * std::fmax(1.0, std::fabs(mean_in));
        const bool ok = worst <= allowed &&
                        (opt.edge != border::reflect || std::fabs(mean_in - mean_out) < 0.01 * std::fmax(1.0, mean_in));
        return ok ? 0 : 1;
      },
      input);
} catch (const std::exception& e) {
  std::fprintf(stderr, "example_blur_image: %s\n", e.what());
  return 1;
}
