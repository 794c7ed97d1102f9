// This machine's arithmetic peak per instruction set, measured in the calling process: one thread
// runs a loop of independent multiply-adds (more accumulators than the FMA latency times the FMA
// ports, so that nothing waits), for float and double, with the registers of the instruction set
// convkit's kernels use: AVX-512 (zmm FMA), AVX2+FMA (ymm FMA), portable (SSE2 multiply and add,
// what the portable kernel compiles to without -march). Every GFLOP/s a benchmark reports beside it
// is a fraction of the peak of the instruction set it ran, measured in the same run.
#pragma once

#include <convkit/cpu.hpp>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CONVKIT_BENCH_X86 1
#else
#define CONVKIT_BENCH_X86 0
#endif

namespace convkit::bench {

#if CONVKIT_BENCH_X86
// Each loop: `iterations` rounds of 16 independent multiply-adds on vectors; returns a value built
// from the accumulators so that the compiler keeps them. Flops per call: 2 * 16 * lanes * iterations.
__attribute__((target("avx512f"))) inline float peak_loop_avx512_float(std::int64_t iterations) {
  __m512 a[16];
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(float(i));
  for (std::int64_t n = 0; n < iterations; ++n)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], x, y);
  for (int i = 1; i < 16; ++i) a[0] = _mm512_add_ps(a[0], a[i]);
  float out[16];  // (not _mm512_reduce_add_ps: g++ 12 warns inside its own header)
  _mm512_storeu_ps(out, a[0]);
  return out[0] + out[15];
}
__attribute__((target("avx512f"))) inline double peak_loop_avx512_double(std::int64_t iterations) {
  __m512d a[16];
  const __m512d x = _mm512_set1_pd(0.999999), y = _mm512_set1_pd(1e-7);
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_pd(double(i));
  for (std::int64_t n = 0; n < iterations; ++n)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_pd(a[i], x, y);
  for (int i = 1; i < 16; ++i) a[0] = _mm512_add_pd(a[0], a[i]);
  double out[8];
  _mm512_storeu_pd(out, a[0]);
  return out[0] + out[7];
}
// AVX2: 12 accumulators of the 16 ymm registers (two for the operands).
__attribute__((target("avx2,fma"))) inline float peak_loop_avx2_float(std::int64_t iterations) {
  __m256 a[12];
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(float(i));
  for (std::int64_t n = 0; n < iterations; ++n)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], x, y);
  for (int i = 1; i < 12; ++i) a[0] = _mm256_add_ps(a[0], a[i]);
  float out[8];
  _mm256_storeu_ps(out, a[0]);
  return out[0] + out[7];
}
__attribute__((target("avx2,fma"))) inline double peak_loop_avx2_double(std::int64_t iterations) {
  __m256d a[12];
  const __m256d x = _mm256_set1_pd(0.999999), y = _mm256_set1_pd(1e-7);
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_pd(double(i));
  for (std::int64_t n = 0; n < iterations; ++n)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_pd(a[i], x, y);
  for (int i = 1; i < 12; ++i) a[0] = _mm256_add_pd(a[0], a[i]);
  double out[4];
  _mm256_storeu_pd(out, a[0]);
  return out[0] + out[3];
}
// Portable: SSE2 multiply then add (no FMA without -march), 12 accumulators.
inline float peak_loop_sse2_float(std::int64_t iterations) {
  __m128 a[12];
  const __m128 x = _mm_set1_ps(0.999999f), y = _mm_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) a[i] = _mm_set1_ps(float(i));
  for (std::int64_t n = 0; n < iterations; ++n)
    for (int i = 0; i < 12; ++i) a[i] = _mm_add_ps(_mm_mul_ps(a[i], x), y);
  for (int i = 1; i < 12; ++i) a[0] = _mm_add_ps(a[0], a[i]);
  return _mm_cvtss_f32(a[0]);
}
inline double peak_loop_sse2_double(std::int64_t iterations) {
  __m128d a[12];
  const __m128d x = _mm_set1_pd(0.999999), y = _mm_set1_pd(1e-7);
  for (int i = 0; i < 12; ++i) a[i] = _mm_set1_pd(double(i));
  for (std::int64_t n = 0; n < iterations; ++n)
    for (int i = 0; i < 12; ++i) a[i] = _mm_add_pd(_mm_mul_pd(a[i], x), y);
  for (int i = 1; i < 12; ++i) a[0] = _mm_add_pd(a[0], a[i]);
  return _mm_cvtsd_f64(a[0]);
}
#endif

/// Flops of one call of the peak loop of `isa` and element size `bytes` (4: float, 8: double).
inline double peak_loop_flops(cpu::isa isa, int bytes, std::int64_t iterations) {
  const int vector_bytes = isa == cpu::isa::avx512 ? 64 : isa == cpu::isa::avx2 ? 32 : 16;
  const int accumulators = isa == cpu::isa::avx512 ? 16 : 12;
  return 2.0 * accumulators * (vector_bytes / bytes) * double(iterations);
}

/// Runs the peak loop of `isa` for float (bytes 4) or double (8) on `threads` threads at once, each
/// `iterations` rounds; returns the sum of what the loops return (keep it, so they are not removed).
inline double run_peak_loop(cpu::isa isa, int bytes, std::int64_t iterations, int threads) {
#if CONVKIT_BENCH_X86
  const auto one = [&]() -> double {
    if (isa == cpu::isa::avx512)
      return bytes == 4 ? double(peak_loop_avx512_float(iterations)) : peak_loop_avx512_double(iterations);
    if (isa == cpu::isa::avx2)
      return bytes == 4 ? double(peak_loop_avx2_float(iterations)) : peak_loop_avx2_double(iterations);
    return bytes == 4 ? double(peak_loop_sse2_float(iterations)) : peak_loop_sse2_double(iterations);
  };
  std::vector<double> sums(std::size_t(threads), 0.0);
  std::vector<std::thread> others;
  for (int t = 1; t < threads; ++t) others.emplace_back([&, t] { sums[std::size_t(t)] = one(); });
  sums[0] = one();
  for (auto& t : others) t.join();
  double s = 0;
  for (double v : sums) s += v;
  return s;
#else
  (void)isa, (void)bytes, (void)iterations, (void)threads;
  return 0;
#endif
}

}  // namespace convkit::bench
