// bench_cufft: the cuFFT backend on the post's GPU workloads, with the transfer / compute split,
// beside the fft backend (FFTW) on this machine's CPU.
//
// A float image is correlated with a 15x15 kernel ('valid', like convkit_seed and bench_fft):
//   1000x1000 and 9000x9000   one transform each (the post timed 23 s at 9000x9000 and could not
//                             tell copying from computing)
//   10000x10000               overlap-save tiles streamed through pinned buffers on two streams,
//                             forced by a 256 MiB memory cap, as on a GPU too small for the image
// Rows per workload: cufft on host views (counters: host-to-device, compute, device-to-host and
// host-side staging milliseconds per call, from the plan's timing struct), cufft on device memory
// (no transfers), cufft plan creation, one-shot conv2d calls (which reuse cuFFT plans and buffers
// after the first), and the fft backend on all CPU threads. Plans are made outside the timed loops.
//
// Without a usable GPU every cufft row reports the reason as its error and the FFTW rows still run.
// Other arguments go to Google Benchmark (e.g. --benchmark_filter=1000x1000).
#include <convkit/convkit.hpp>

#include <cstdio>
#include <string>
#include <thread>

#include "bench_common.hpp"

namespace convkit::bench {
namespace {

constexpr index_t kernel_size = 15;

const array2d<float>& kernel() { return bench::kernel(kernel_size); }

/// Skips the benchmark (reporting why) where there is no GPU; true if it may run.
bool have_gpu(benchmark::State& state) {
  const std::string reason = cufft::unavailable_reason();
  if (reason.empty()) return true;
  state.SkipWithError(("skipped, " + reason).c_str());
  return false;
}

struct workload {
  index_t n;
  cufft::config cfg;
  std::string label() const { return std::to_string(n) + "x" + std::to_string(n); }
  double flops() const {
    const double out = double(n - kernel_size + 1);
    return 2.0 * out * out * double(kernel_size * kernel_size);
  }
};

/// The post's valid correlation on cufft with configuration `cfg`.
options with_config(const cufft::config& cfg) {
  options o = valid_correlation(algorithm::cufft);
  o.tune.gpu_fft = cfg;
  return o;
}

std::string tiles_note(const cufft::plan<float>& p) {
  return "transform " + std::to_string(p.transform_shape().rows) + "x" + std::to_string(p.transform_shape().cols) +
         " x" + std::to_string(p.tiles());
}

void register_cufft(const workload& w) {
  const std::string base = "cufft/" + w.label() + "/";
  const std::string fftw_name = base + "fftw";
  rows()[base + "host"] = {w.label(), "cufft, host views", "", 1, w.flops(), fftw_name};
  benchmark::RegisterBenchmark((base + "host").c_str(),
                               [w, base](benchmark::State& state) {
                                 if (!have_gpu(state)) return;
                                 cufft::plan<float> p(w.n, w.n, kernel(), with_config(w.cfg));
                                 rows()[base + "host"].note = tiles_note(p);
                                 array2d<float> out(p.output_shape().rows, p.output_shape().cols);
                                 p.execute(image(w.n), out);  // warm up: first touch of pages, cuFFT's lazy set-up
                                 cufft::timing t, sum;
                                 count_allocations counting(state);
                                 for (auto _ : state) {
                                   p.execute(image(w.n), out, &t);
                                   sum.host_to_device_ms += t.host_to_device_ms;
                                   sum.compute_ms += t.compute_ms;
                                   sum.device_to_host_ms += t.device_to_host_ms;
                                   sum.host_ms += t.host_ms;
                                 }
                                 using counter = benchmark::Counter;
                                 state.counters["h2d_ms"] = counter(sum.host_to_device_ms, counter::kAvgIterations);
                                 state.counters["compute_ms"] = counter(sum.compute_ms, counter::kAvgIterations);
                                 state.counters["d2h_ms"] = counter(sum.device_to_host_ms, counter::kAvgIterations);
                                 state.counters["host_ms"] = counter(sum.host_ms, counter::kAvgIterations);
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();

  rows()[base + "device"] = {w.label(), "cufft, device memory", "no transfers", 1, w.flops(), fftw_name};
  benchmark::RegisterBenchmark(
      (base + "device").c_str(),
      [w](benchmark::State& state) {
        if (!have_gpu(state)) return;
        cufft::plan<float> p(w.n, w.n, kernel(), with_config(w.cfg));
        cufft::device_array<float> in(w.n, w.n), out(p.output_shape().rows, p.output_shape().cols);
        in.upload(image(w.n));
        p.execute_device(in.view(), out.view());
        cufft::timing t;
        double compute_ms = 0;
        for (auto _ : state) {
          p.execute_device(in.view(), out.view(), &t);
          compute_ms += t.compute_ms;
        }
        state.counters["compute_ms"] = benchmark::Counter(compute_ms, benchmark::Counter::kAvgIterations);
      })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();

  rows()[base + "plan"] = {w.label(), "cufft: plan", "", 1, 0, ""};
  benchmark::RegisterBenchmark((base + "plan").c_str(),
                               [w](benchmark::State& state) {
                                 if (!have_gpu(state)) return;
                                 for (auto _ : state) {
                                   cufft::plan<float> p(w.n, w.n, kernel(), with_config(w.cfg));
                                   benchmark::DoNotOptimize(&p);
                                 }
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();

  // One-shot calls: the first makes the cuFFT plans and buffers, later ones of the same size reuse
  // them (cufft::release_cached), so each timed call pays the kernel spectrum and the copies only.
  rows()[base + "conv2d"] = {w.label(), "cufft: one-shot conv2d", "plans reused", 1, w.flops(), fftw_name};
  benchmark::RegisterBenchmark((base + "conv2d").c_str(),
                               [w](benchmark::State& state) {
                                 if (!have_gpu(state)) return;
                                 const options o = with_config(w.cfg);
                                 const shape2d s = output_shape(w.n, w.n, kernel_size, kernel_size, o);
                                 array2d<float> out(s.rows, s.cols);
                                 conv2d<float>(image(w.n), kernel(), out, o);
                                 for (auto _ : state) {
                                   conv2d<float>(image(w.n), kernel(), out, o);
                                   benchmark::DoNotOptimize(out.data());
                                 }
                                 cufft::release_cached();
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();

  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  rows()[fftw_name] = {w.label(), "fft (FFTW) on the CPU", "", threads, w.flops(), ""};
  benchmark::RegisterBenchmark(fftw_name.c_str(),
                               [w](benchmark::State& state) {
                                 options o = valid_correlation(algorithm::fft);
                                 std::unique_ptr<plan<float>> p;
                                 try {
                                   p = std::make_unique<plan<float>>(w.n, w.n, kernel(), o);
                                 } catch (const unavailable& e) {
                                   state.SkipWithError(e.what());
                                   return;
                                 }
                                 array2d<float> out(p->output_shape().rows, p->output_shape().cols);
                                 p->execute(image(w.n), out);
                                 for (auto _ : state) {
                                   p->execute(image(w.n), out);
                                   benchmark::DoNotOptimize(out.data());
                                 }
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace
}  // namespace convkit::bench

int main(int argc, char** argv) {
  using namespace convkit;
  using namespace convkit::bench;
  benchmark::Initialize(&argc, argv);
  const std::string reason = cufft::unavailable_reason();
  std::printf("cuFFT: %s\n", reason.empty() ? "a CUDA device is available" : reason.c_str());
  cufft::config tiled;
  tiled.memory_cap = convkit::index_t(256) << 20;
  for (const workload& w : {workload{1000, {}}, workload{9000, {}}, workload{10000, tiled}}) register_cufft(w);
  summary_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_summary();
  benchmark::Shutdown();
  return 0;
}
