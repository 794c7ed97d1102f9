// gpu_conv: GPU convolution through the cuFFT backend from an ordinary C++ file (g++ is enough;
// link the CMake target convkit::cufft). Prints where the time goes: copies to the GPU, the FFT
// convolution itself, copies back, and the CPU's share. Exits 77 ("skipped") where there is no GPU.
#include <convkit/convkit.hpp>

#include <cmath>
#include <cstdio>
#include <random>

int main() {
  using namespace convkit;
  if (!cufft::available()) {
    std::printf("gpu_conv: skipped, %s\n", cufft::unavailable_reason().c_str());
    return 77;
  }
  const convkit::index_t n = 2000, k = 15;
  array2d<float> image(n, n), kernel(k, k);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (convkit::index_t i = 0; i < image.size(); ++i) image.data()[i] = uniform(rng);
  for (convkit::index_t i = 0; i < kernel.size(); ++i) kernel.data()[i] = uniform(rng);

  options opt;
  opt.mode = output::same;
  opt.edge = border::reflect;
  cufft::plan<float> gpu(n, n, kernel, opt);  // cuFFT plans, GPU buffers, kernel spectrum: made once
  array2d<float> out(n, n);
  cufft::timing t;
  gpu.execute(image, out, &t);  // host memory in, host memory out
  std::printf(
      "%lldx%lld * %lldx%lld on the GPU (%lld tile(s)): to GPU %.2f ms, FFT+product+inverse %.2f ms, "
      "back %.2f ms, CPU staging %.2f ms, total %.2f ms\n",
      (long long)n, (long long)n, (long long)k, (long long)k, (long long)t.tiles, t.host_to_device_ms, t.compute_ms,
      t.device_to_host_ms, t.host_ms, t.total_ms);

  // Data that lives on the GPU: no transfer at all.
  cufft::device_array<float> d_image(n, n), d_out(n, n);
  d_image.upload(image);
  gpu.execute_device(d_image.view(), d_out.view(), &t);
  std::printf("on device memory: %.2f ms on the GPU\n", t.compute_ms);

  // The same result as the CPU's direct backend, within FFT rounding.
  opt.algo = algorithm::direct;
  const array2d<float> cpu = conv2d(image, kernel, opt);
  array2d<float> from_device(n, n);
  d_out.download(from_device);
  double worst = 0, scale = 0;
  for (convkit::index_t i = 0; i < cpu.size(); ++i) {
    worst = std::max({worst, double(std::abs(out.data()[i] - cpu.data()[i])),
                      double(std::abs(from_device.data()[i] - cpu.data()[i]))});
    scale = std::max(scale, double(std::abs(cpu.data()[i])));
  }
  std::printf("largest difference from the direct backend: %.2g (values up to %.2g)\n", worst, scale);
  return worst <= 1e-4 * scale ? 0 : 1;
}
