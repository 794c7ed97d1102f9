// The blog post's story, done right, with numbers.
//
// The post convolved an image with a kernel four ways: a naive loop, then FFT convolution. Its FFT
// version made three mistakes. This program reproduces each one on a 64x64 image and a 7x7 kernel,
// measures its error against convkit's float64 reference, and shows what convkit does instead:
//   1. the kernel padded to the image size *centred*, the rest filled with sigmoid(0) = 0.5, not zeros;
//   2. transforms of the image size, not H + K - 1, so the result wraps around (circular convolution);
//   3. the spectra multiplied with a matrix product instead of element by element.
// To stay self-contained and dependency-free, the transforms here are a textbook O(n^3) DFT; with
// convkit::fftw linked, convkit's own FFT backend is run too.
#include <convkit/convkit.hpp>
#include <convkit/reference.hpp>

#include <cmath>
#include <complex>
#include <cstdio>
#include <vector>

#include "../bench/seed_naive.hpp"

namespace {

using convkit::index_t;
using cplx = std::complex<double>;
using spectrum = std::vector<std::vector<cplx>>;

/// 2-D DFT of an n x n array (sign -1: forward; +1: inverse, scaled by 1/n^2), rows then columns.
spectrum dft2(const spectrum& a, int sign) {
  const std::size_t n = a.size();
  const double pi = std::acos(-1.0);
  const auto dft1 = [&](const std::vector<cplx>& x) {
    std::vector<cplx> y(n);
    for (std::size_t k = 0; k < n; ++k)
      for (std::size_t j = 0; j < n; ++j) y[k] += x[j] * std::polar(1.0, sign * 2 * pi * double(j * k % n) / double(n));
    return y;
  };
  spectrum rows(n), out(n, std::vector<cplx>(n));
  for (std::size_t r = 0; r < n; ++r) rows[r] = dft1(a[r]);
  for (std::size_t c = 0; c < n; ++c) {
    std::vector<cplx> col(n);
    for (std::size_t r = 0; r < n; ++r) col[r] = rows[r][c];
    col = dft1(col);
    for (std::size_t r = 0; r < n; ++r) out[r][c] = sign > 0 ? col[r] / double(n * n) : col[r];
  }
  return out;
}

spectrum to_spectrum(convkit::view2d<const double> a, std::size_t n) {
  spectrum s(n, std::vector<cplx>(n));
  for (index_t r = 0; r < a.rows(); ++r)
    for (index_t c = 0; c < a.cols(); ++c) s[std::size_t(r)][std::size_t(c)] = a(r, c);
  return s;
}

/// IDFT(DFT(image) x DFT(kernel_array)), with x element-wise or (the post's mistake) a matrix product.
convkit::array2d<double> fft_convolve(const convkit::array2d<double>& image,
                                      const convkit::array2d<double>& kernel_array, std::size_t n,
                                      bool matrix_product) {
  const spectrum fi = dft2(to_spectrum(image, n), -1), fk = dft2(to_spectrum(kernel_array, n), -1);
  spectrum prod(n, std::vector<cplx>(n));
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t c = 0; c < n; ++c) {
      if (!matrix_product) {
        prod[r][c] = fi[r][c] * fk[r][c];
      } else {
        for (std::size_t j = 0; j < n; ++j) prod[r][c] += fi[r][j] * fk[j][c];
      }
    }
  const spectrum y = dft2(prod, +1);
  convkit::array2d<double> out{index_t(n), index_t(n)};
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t c = 0; c < n; ++c) out(index_t(r), index_t(c)) = y[r][c].real();
  return out;
}

/// Largest |got - want| over want's shape, with got read from offset (r0, c0), relative to max |want|.
double rel_error(const convkit::array2d<double>& got, const convkit::array2d<double>& want, index_t r0 = 0,
                 index_t c0 = 0) {
  double worst = 0, scale = 0;
  for (index_t r = 0; r < want.rows(); ++r)
    for (index_t c = 0; c < want.cols(); ++c) {
      worst = std::fmax(worst, std::fabs(got(r + r0, c + c0) - want(r, c)));
      scale = std::fmax(scale, std::fabs(want(r, c)));
    }
  return worst / scale;
}

}  // namespace

int main() {
  using convkit::index_t;
  const index_t n = 64, k = 7, radius = k / 2;
  convkit::array2d<double> image(n, n), kernel(k, k);
  for (index_t r = 0; r < n; ++r)
    for (index_t c = 0; c < n; ++c) image(r, c) = std::sin(0.3 * double(r)) * std::cos(0.2 * double(c)) + 0.5;
  for (index_t r = 0; r < k; ++r)
    for (index_t c = 0; c < k; ++c)
      kernel(r, c) = std::exp(-double((r - radius) * (r - radius) + (c - radius) * (c - radius)) / 4.0);

  convkit::options same;
  same.mode = convkit::output::same;
  const convkit::array2d<double> want = convkit::reference::conv2d<double>(image, kernel, same);
  bool ok = true;
  const auto report = [&](const char* what, double err, bool should_be_exact) {
    std::printf("  %-72s %.1e%s\n", what, err, should_be_exact ? "" : "  <- wrong");
    if (should_be_exact != (err < 1e-9)) ok = false;
  };

  std::printf("0. The naive loop ('valid' correlation, the post's first version) against convkit:\n");
  {
    convkit::array2d<float> img_f(n, n), ker_f(k, k), naive(n - k + 1, n - k + 1);
    for (index_t i = 0; i < image.size(); ++i) img_f.data()[i] = float(image.data()[i]);
    for (index_t i = 0; i < kernel.size(); ++i) ker_f.data()[i] = float(kernel.data()[i]);
    convkit::seed::naive_conv2d(img_f, ker_f, naive);
    convkit::options valid_corr;
    valid_corr.mode = convkit::output::valid;
    valid_corr.correlate = true;
    const convkit::array2d<float> fast = convkit::conv2d(img_f, ker_f, valid_corr);
    double worst = 0;
    for (index_t i = 0; i < naive.size(); ++i) worst = std::fmax(worst, std::fabs(naive.data()[i] - fast.data()[i]));
    std::printf("  %-72s %.1e (float)\n", "naive loop vs convkit direct, largest difference", worst);
    ok = ok && worst < 1e-4;
  }

  std::printf("1-3. FFT convolution ('same' output), relative error against the float64 reference:\n");
  // convkit's way: transforms of at least H + K - 1, kernel placed by padded_kernel with its origin
  // at (0, 0) and zeros elsewhere, spectra multiplied element by element; then crop 'same'.
  const std::size_t big = std::size_t(n + k - 1);
  convkit::array2d<double> placed{index_t(big), index_t(big)};
  convkit::padded_kernel<double>(kernel, placed.view());
  report("convkit: size H+K-1, kernel at the origin, zeros, element-wise",
         rel_error(fft_convolve(image, placed, big, false), want, radius, radius), true);

  // The post's kernel array: image-sized, kernel centred, the rest sigmoid(0) = 0.5.
  convkit::array2d<double> centred(n, n);
  const double sigmoid0 = 1.0 / (1.0 + std::exp(0.0));
  for (index_t i = 0; i < centred.size(); ++i) centred.data()[i] = sigmoid0;
  for (index_t r = 0; r < k; ++r)
    for (index_t c = 0; c < k; ++c) centred(n / 2 - radius + r, n / 2 - radius + c) = kernel(r, c);
  // Undo the centring by reading the circular result shifted by n/2 (the post did not, either way).
  convkit::array2d<double> post = fft_convolve(image, centred, std::size_t(n), false);
  convkit::array2d<double> unshifted(n, n);
  for (index_t r = 0; r < n; ++r)
    for (index_t c = 0; c < n; ++c) unshifted(r, c) = post((r + n / 2) % n, (c + n / 2) % n);
  report("post mistake 1: rest of the kernel array filled with sigmoid(0) = 0.5", rel_error(unshifted, want), false);

  convkit::array2d<double> centred_zero(n, n);
  convkit::kernel_placement wrap_centre;
  wrap_centre.origin_row = radius;
  wrap_centre.origin_col = radius;
  convkit::padded_kernel<double>(kernel, centred_zero.view(), wrap_centre);
  const convkit::array2d<double> wrapped = fft_convolve(image, centred_zero, std::size_t(n), false);
  report("post mistake 2: zeros, but transforms of the image size (wraps around)", rel_error(wrapped, want), false);
  convkit::options circular = same;
  circular.edge = convkit::border::circular;
  const convkit::array2d<double> want_circular = convkit::reference::conv2d<double>(image, kernel, circular);
  report("  ... which is exactly convolution with border::circular", rel_error(wrapped, want_circular), true);

  report("post mistake 3: spectra multiplied as matrices, not element-wise",
         rel_error(fft_convolve(image, placed, big, true), want, radius, radius), false);

  convkit::options fft = same;
  fft.algo = convkit::algorithm::fft;
  try {
    report("convkit algorithm::fft (FFTW)", rel_error(convkit::conv2d(image, kernel, fft), want), true);
  } catch (const convkit::unavailable& e) {
    std::printf("  (convkit's FFT backend is not in this build: %s)\n", e.what());
  }
  std::printf("%s\n", ok ? "every result is as expected" : "UNEXPECTED RESULT");
  return ok ? 0 : 1;
}
