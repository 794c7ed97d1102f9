// bench_fft: the fft backend (FFTW) beside the direct backend and a bare FFTW pipeline.
//
// A float image (1000x1000, and 10000x10000) is correlated with a 15x15 kernel ('valid', like
// convkit_seed) by: the direct backend; the fft backend untiled (one transform of the whole image)
// and tiled (overlap-save tiles); and the bare-FFTW floor (bare_fftw.hpp: r2c of a pre-padded
// array, product, c2r) at the untiled transform size. 1 and 2 threads. Plans are made outside the
// timed loop and timed on their own ("/plan"). Then the crossover: direct vs fft at 1000x1000 on
// 1 thread for growing kernels (what the cost model should reflect). The summary gives the medians
// and the ratio of the fft backend to the floor.
//
//   bench_fft                          everything
//   bench_fft --peak-rss=tiled|untiled [--threads=N]
//                                      one 10000x10000 * 15x15 convolution; prints the peak RSS and
//                                      the part of it beyond the input and output arrays
// Other arguments go to Google Benchmark (e.g. --benchmark_filter=1000x1000).
#include <convkit/convkit.hpp>

#include <sys/resource.h>

#include <cstring>
#include <string>

#include "bare_fftw.hpp"
#include "bench_common.hpp"

namespace convkit::bench {
namespace {

constexpr index_t kernel_size = 15;

fftw::config with_tiling(fftw::tiling t) {
  fftw::config c;
  c.tiles = t;
  return c;
}

/// plan<float> for an n x n image and a k x k kernel with the fft configuration `cfg`.
options options_for(algorithm a, int threads, const fftw::config& cfg) {
  options o = valid_correlation(a, threads);
  o.tune.fft = cfg;
  return o;
}

plan<float> make_plan(index_t n, index_t k, algorithm a, int threads, const fftw::config& cfg) {
  return plan<float>(n, n, kernel(k), options_for(a, threads, cfg));
}

std::string describe_tiles(index_t n, index_t k, int threads, const fftw::config& cfg) {
  const detail::conv_problem p =
      detail::make_problem(detail::image_request(n, n, k, k, options_for(algorithm::fft, threads, cfg), sizeof(float)));
  const detail::fft::tile_plan t = detail::fftw_tile_plan(p, *active_profile());
  return std::to_string(t.rows.transform) + "x" + std::to_string(t.cols.transform) + " x" + std::to_string(t.tiles());
}

void register_plan_run(const std::string& name, const std::string& workload, const std::string& method, index_t n,
                       index_t k, algorithm a, int threads, const fftw::config& cfg, const std::string& baseline) {
  const double flops = 2.0 * double(n - k + 1) * double(n - k + 1) * double(k * k);
  const std::string note = a == algorithm::fft ? "transform " + describe_tiles(n, k, threads, cfg) : "";
  rows()[name] = {workload, method, note, threads, flops, baseline};
  benchmark::RegisterBenchmark(name.c_str(),
                               [=](benchmark::State& state) {
                                 plan<float> p = make_plan(n, k, a, threads, cfg);
                                 array2d<float> out(p.output_shape().rows, p.output_shape().cols);
                                 p.execute(image(n), out);  // warm up: first touch of the output and workspace pages
                                 count_allocations counting(state);
                                 for (auto _ : state) {
                                   p.execute(image(n), out);
                                   benchmark::DoNotOptimize(out.data());
                                 }
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

void register_plan_creation(const std::string& name, const std::string& workload, const std::string& method, index_t n,
                            algorithm a, int threads, const fftw::config& cfg) {
  rows()[name] = {workload, method + ": plan", "", threads, 0, ""};
  benchmark::RegisterBenchmark(name.c_str(),
                               [=](benchmark::State& state) {
                                 count_allocations counting(state);
                                 for (auto _ : state) {
                                   plan<float> p = make_plan(n, kernel_size, a, threads, cfg);
                                   benchmark::DoNotOptimize(&p);
                                 }
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

std::string floor_name(index_t n, int threads) {
  return "fft/" + std::to_string(n) + "x" + std::to_string(n) + "/bare_fftw/threads:" + std::to_string(threads);
}

void register_floor(index_t n, int threads) {
  const detail::conv_problem g = detail::make_problem(
      detail::image_request(n, n, kernel_size, kernel_size, valid_correlation(algorithm::fft, 1), sizeof(float)));
  const int rows_n = int(detail::fft::next_fast_size(g.rows.extent)),
            cols_n = int(detail::fft::next_fast_size(g.cols.extent));
  const std::string name = floor_name(n, threads);
  const std::string workload = std::to_string(n) + "x" + std::to_string(n);
  const double flops =
      2.0 * double(n - kernel_size + 1) * double(n - kernel_size + 1) * double(kernel_size * kernel_size);
  rows()[name] = {workload,
                  "bare FFTW floor (r2c, product, c2r)",
                  "transform " + std::to_string(rows_n) + "x" + std::to_string(cols_n),
                  threads,
                  flops,
                  ""};
  benchmark::RegisterBenchmark(name.c_str(),
                               [=](benchmark::State& state) {
                                 bare_fftw floor(rows_n, cols_n, int(n), int(n), int(kernel_size), threads);
                                 floor.run();
                                 count_allocations counting(state);
                                 for (auto _ : state) {
                                   floor.run();
                                   benchmark::DoNotOptimize(floor.result());
                                 }
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

void register_workload(index_t n, int threads) {
  const std::string workload = std::to_string(n) + "x" + std::to_string(n);
  const std::string base = "fft/" + workload + "/";
  const std::string t = "/threads:" + std::to_string(threads);
  register_plan_run(base + "direct" + t, workload, "convkit direct", n, kernel_size, algorithm::direct, threads, {},
                    "");
  const std::pair<const char*, fftw::tiling> variants[] = {
      {"untiled", fftw::tiling::never}, {"tiled", fftw::tiling::always}, {"automatic", fftw::tiling::automatic}};
  for (const auto& [label, tiling] : variants) {
    const std::string name = base + "fft_" + label + t;
    register_plan_run(name, workload, std::string("convkit fft, ") + label, n, kernel_size, algorithm::fft, threads,
                      with_tiling(tiling), base + "direct" + t);
    register_plan_creation(name + "/plan", workload, std::string("convkit fft, ") + label, n, algorithm::fft, threads,
                           with_tiling(tiling));
  }
  register_floor(n, threads);
}

/// Direct vs fft at 1000x1000 on one thread for kernel sizes k: where fft overtakes direct.
void register_crossover(index_t k) {
  const std::string workload = "1000x1000*" + std::to_string(k) + "x" + std::to_string(k);
  const std::string base = "crossover/k:" + std::to_string(k) + "/";
  register_plan_run(base + "direct", workload, "convkit direct", 1000, k, algorithm::direct, 1, {}, "");
  register_plan_run(base + "fft", workload, "convkit fft (automatic tiles)", 1000, k, algorithm::fft, 1, {},
                    base + "direct");
  rows()[base + "fft"].note +=
      std::string(", automatic picks ") +
      to_string(automatic_choice(1000, 1000, k, k, valid_correlation(algorithm::automatic, 1)));
}

long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

/// One 10000x10000 * 15x15 convolution; prints the peak RSS beyond the input and output arrays.
int peak_rss(const std::string& mode, int threads) {
  const index_t n = 10000;
  const array2d<float> in = random_image(n, n, 1);
  array2d<float> out(n - kernel_size + 1, n - kernel_size + 1);
  for (index_t i = 0; i < out.size(); i += 1024) out.data()[i] = 1.0f;  // touch the output's pages
  const long before = peak_rss_kib();
  fftw::config cfg = with_tiling(mode == "untiled" ? fftw::tiling::never : fftw::tiling::automatic);
  plan<float> p = make_plan(n, kernel_size, algorithm::fft, threads, cfg);
  p.execute(in, out);
  const long after = peak_rss_kib();
  std::printf(
      "fft %s, %s, %d thread(s): peak RSS %.1f MiB, of which %.1f MiB beyond the input and output arrays "
      "(%.1f MiB per thread)\n",
      mode.c_str(), describe_tiles(n, kernel_size, threads, cfg).c_str(), threads, after / 1024.0,
      (after - before) / 1024.0, (after - before) / 1024.0 / threads);
  return 0;
}

}  // namespace
}  // namespace convkit::bench

int main(int argc, char** argv) {
  // im2col rows run convkit's threads with a single-threaded OpenBLAS, which a library may not set
  // behind its user's back but a benchmark program may ask for (tuning.hpp).
  {
    convkit::tuning blas;
    blas.single_threaded_blas = true;
    convkit::set_default_tuning(blas);
  }
  using namespace convkit::bench;
  std::string rss_mode;
  int rss_threads = 1;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--peak-rss=", 11) == 0)
      rss_mode = argv[i] + 11;
    else if (std::strncmp(argv[i], "--threads=", 10) == 0)
      rss_threads = std::atoi(argv[i] + 10);
    else
      args.push_back(argv[i]);
  }
  if (!rss_mode.empty()) return peak_rss(rss_mode, rss_threads);
  int n_args = int(args.size());
  benchmark::Initialize(&n_args, args.data());
  for (convkit::index_t n : {1000, 10000})
    for (int threads : {1, 2}) register_workload(n, threads);
  for (convkit::index_t k : {3, 5, 7, 9, 11, 13, 15, 17, 21, 25, 31}) register_crossover(k);

  summary_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_summary();
  for (convkit::index_t n : {1000, 10000})
    for (int threads : {1, 2}) {
      const std::string base = "fft/" + std::to_string(n) + "x" + std::to_string(n) + "/";
      const double floor = reporter.seconds(floor_name(n, threads));
      for (const char* v : {"untiled", "tiled", "automatic"}) {
        const double t = reporter.seconds(base + "fft_" + v + "/threads:" + std::to_string(threads));
        if (floor > 0 && t > 0)
          std::printf("%s fft %-9s %d thread(s): %.2fx the bare-FFTW floor\n", base.c_str(), v, threads, t / floor);
      }
    }
  benchmark::Shutdown();
  return 0;
}
