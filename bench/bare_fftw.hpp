// The bare-FFTW floor: the least any FFT convolution of an image does, written straight against
// FFTW with none of convkit. An image already zero-padded to the transform size is transformed
// (r2c, out of place), multiplied element-wise by a precomputed kernel spectrum and transformed
// back (c2r); plans, buffers and the kernel spectrum are made in the constructor, outside any timed
// loop. No border handling, no copy into an output array, no scaling (it would be folded into the
// kernel spectrum anyway). The fft backend's execute is compared with run() at the same transform size.
#pragma once

#include <fftw3.h>

#include <mutex>
#include <random>
#include <stdexcept>

#include <convkit/detail/fftw_traits.hpp>

namespace convkit::bench {

class bare_fftw {
 public:
  /// A rows x cols transform (each >= the image + kernel - 1 for a linear convolution) holding an
  /// image_rows x image_cols random image and a k x k random kernel, on `threads` FFTW threads.
  bare_fftw(int rows, int cols, int image_rows, int image_cols, int k, int threads, unsigned flags = FFTW_ESTIMATE)
      : rows_(rows), cols_(cols), half_(cols / 2 + 1) {
    const std::size_t reals = std::size_t(rows) * std::size_t(cols), complexes = std::size_t(rows) * std::size_t(half_);
    image_ = fftwf_alloc_real(reals);
    out_ = fftwf_alloc_real(reals);
    spectrum_ = fftwf_alloc_complex(complexes);
    kernel_spectrum_ = fftwf_alloc_complex(complexes);
    if (!image_ || !out_ || !spectrum_ || !kernel_spectrum_) throw std::bad_alloc();
    {
      // convkit plans under this mutex too; FFTW's planner must never run in two threads at once.
      std::lock_guard<std::mutex> lock(detail::fftw_mutex());
      fftwf_init_threads();
      fftwf_plan_with_nthreads(threads);
      forward_ = fftwf_plan_dft_r2c_2d(rows, cols, image_, spectrum_, flags | FFTW_PRESERVE_INPUT);
      inverse_ = fftwf_plan_dft_c2r_2d(rows, cols, spectrum_, out_, flags);
    }
    if (!forward_ || !inverse_) throw std::runtime_error("bare_fftw: FFTW made no plan");
    std::mt19937 g(3);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    // The kernel spectrum: the transform of a padded random kernel, scaled by 1 / (rows * cols).
    for (std::size_t i = 0; i < reals; ++i) image_[i] = 0.0f;
    for (int r = 0; r < k; ++r)
      for (int c = 0; c < k; ++c) image_[std::size_t(r) * cols + c] = d(g) / float(reals);
    fftwf_execute(forward_);
    for (std::size_t i = 0; i < complexes; ++i) {
      kernel_spectrum_[i][0] = spectrum_[i][0];
      kernel_spectrum_[i][1] = spectrum_[i][1];
    }
    // The image, zero-padded once.
    for (std::size_t i = 0; i < reals; ++i) image_[i] = 0.0f;
    for (int r = 0; r < image_rows; ++r)
      for (int c = 0; c < image_cols; ++c) image_[std::size_t(r) * cols + c] = d(g);
  }
  ~bare_fftw() {
    {
      std::lock_guard<std::mutex> lock(detail::fftw_mutex());
      fftwf_destroy_plan(forward_);
      fftwf_destroy_plan(inverse_);
    }
    fftwf_free(image_);
    fftwf_free(out_);
    fftwf_free(spectrum_);
    fftwf_free(kernel_spectrum_);
  }
  bare_fftw(const bare_fftw&) = delete;
  bare_fftw& operator=(const bare_fftw&) = delete;

  /// r2c, element-wise product, c2r.
  void run() noexcept {
    fftwf_execute(forward_);
    const std::size_t n = std::size_t(rows_) * std::size_t(half_);
    for (std::size_t i = 0; i < n; ++i) {
      const float ar = spectrum_[i][0], ai = spectrum_[i][1];
      const float br = kernel_spectrum_[i][0], bi = kernel_spectrum_[i][1];
      spectrum_[i][0] = ar * br - ai * bi;
      spectrum_[i][1] = ar * bi + ai * br;
    }
    fftwf_execute(inverse_);
  }
  const float* result() const noexcept { return out_; }

 private:
  int rows_, cols_, half_;
  float* image_ = nullptr;
  float* out_ = nullptr;
  fftwf_complex* spectrum_ = nullptr;
  fftwf_complex* kernel_spectrum_ = nullptr;
  fftwf_plan forward_ = nullptr, inverse_ = nullptr;
};

}  // namespace convkit::bench
