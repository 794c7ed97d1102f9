// convkit_seed: the blog post's experiment, done properly, in one run.
//
// A float image (1000x1000, and 10000x10000; 9000x9000 on a GPU) is correlated with a 15x15
// kernel ('valid', as the post's naive loop does) by the post's naive loop, by every backend in
// this build and by the peers found at configure time (OpenCV's filter2D), with 1 thread and all
// threads. Plans are made outside the timed loop and timed on their own ("plan"). Each run prints time and heap
// allocations per call; the summary table at the end gives the median time, allocations, speed-up over the naive loop
// and GFLOP/s (2 * outputs * taps per call: the work of a direct evaluation, for every method).
//
//   convkit_seed            quick mode: the naive loop at 10000x10000 is estimated from 2000x2000, and
//                           the rows that take seconds per call there (im2col, untiled FFTs, the bare
//                           FFTW floor) run at 1000x1000 only
//   convkit_seed --full     runs them all (several minutes)
// Other arguments go to Google Benchmark (e.g. --benchmark_filter=1000x1000).
#include <convkit/convkit.hpp>

#include <cstring>
#include <thread>

#include "bench_common.hpp"
#include "seed_naive.hpp"

#if defined(CONVKIT_HAS_FFTW)
#include "bare_fftw.hpp"
#endif
#if defined(CONVKIT_BENCH_OPENCV)
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace convkit::bench {
namespace {

constexpr index_t kernel_size = 15;

struct workload {
  index_t n;
  std::string name() const { return std::to_string(n) + "x" + std::to_string(n); }
  double flops() const {
    const double out = double(n - kernel_size + 1);
    return 2.0 * out * out * double(kernel_size * kernel_size);
  }
};

const array2d<float>& kernel() { return bench::kernel(kernel_size); }

std::string naive_name(const workload& w) { return "seed/" + w.name() + "/naive"; }

void register_naive(const workload& w, const std::string& name, const std::string& note) {
  rows()[name] = {w.name(), "naive loop (the post)", note, 1, w.flops(), naive_name(w)};
  benchmark::RegisterBenchmark(name.c_str(),
                               [w](benchmark::State& state) {
                                 const array2d<float>& img = image(w.n);
                                 array2d<float> out(w.n - kernel_size + 1, w.n - kernel_size + 1);
                                 count_allocations counting(state);
                                 for (auto _ : state) {
                                   seed::naive_conv2d(img, kernel(), out);
                                   benchmark::DoNotOptimize(out.data());
                                 }
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->Iterations(1)
      ->Repetitions(1);
}

/// A backend's setting for one benchmark row (e.g. fft tiled or untiled): `apply` sets it in the
/// options its plans are made with.
struct variant {
  std::string suffix, label;
  void (*apply)(options&) = nullptr;
};

options options_for(algorithm a, int threads, const variant& v) {
  options o = valid_correlation(a, threads);
  if (v.apply) v.apply(o);
  return o;
}

void register_backend(const workload& w, algorithm a, int threads, const variant& v = {}) {
  options probe = valid_correlation(a, threads);
  try {
    plan<float>(16, 16, kernel(), probe);
  } catch (const unavailable&) {
    return;  // not in this build, or no device
  }
  const std::string base = "seed/" + w.name() + "/" + to_string(a) + v.suffix + "/threads:" + std::to_string(threads);
  std::string method = std::string("convkit ") + to_string(a) + v.label;
  if (a == algorithm::direct) method += std::string(" (") + direct::to_string(direct::instruction_set()) + ")";
  if (a == algorithm::automatic)
    method +=
        std::string(" (picks ") + to_string(plan<float>(w.n, w.n, kernel(), options_for(a, threads, v)).chosen()) + ")";
  rows()[base] = {w.name(), method, "", threads, w.flops(), naive_name(w)};
  benchmark::RegisterBenchmark(base.c_str(),
                               [w, a, threads, v](benchmark::State& state) {
                                 plan<float> p(w.n, w.n, kernel(), options_for(a, threads, v));
                                 array2d<float> out(p.output_shape().rows, p.output_shape().cols);
                                 p.execute(image(w.n), out);  // warm up: first touch of the output and workspace pages
                                 count_allocations counting(state);
                                 for (auto _ : state) {
                                   p.execute(image(w.n), out);
                                   benchmark::DoNotOptimize(out.data());
                                 }
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  rows()[base + "/plan"] = {w.name(), method + ": plan", "", threads, 0, ""};
  benchmark::RegisterBenchmark((base + "/plan").c_str(),
                               [w, a, threads, v](benchmark::State& state) {
                                 const options o = options_for(a, threads, v);
                                 count_allocations counting(state);
                                 for (auto _ : state) {
                                   plan<float> p(w.n, w.n, kernel(), o);
                                   benchmark::DoNotOptimize(&p);
                                 }
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

#if defined(CONVKIT_HAS_FFTW)
fftw::config& fft_settings(options& o) {
  if (!o.tune.fft) o.tune.fft = fftw::get_config();
  return *o.tune.fft;
}
const variant fft_untiled{"_untiled", " (untiled)", [](options& o) { fft_settings(o).tiles = fftw::tiling::never; }};
const variant fft_tiled{"_tiled", " (tiled)", [](options& o) { fft_settings(o).tiles = fftw::tiling::always; }};
// FFTW_MEASURE plans: slower to make (timed in the ": plan" row), faster to run.
const variant fft_measure{"_measure", " (FFTW_MEASURE)",
                          [](options& o) { fft_settings(o).planning = fftw::rigour::measure; }};

/// The floor: FFTW alone on a pre-padded image (r2c, product, c2r), plans made outside the loop.
void register_bare_fftw(const workload& w, int threads, unsigned flags) {
  const bool measure = flags == FFTW_MEASURE;
  const std::string name =
      "seed/" + w.name() + "/bare_fftw" + (measure ? "_measure" : "") + "/threads:" + std::to_string(threads);
  rows()[name] = {w.name(),  std::string("bare FFTW pipeline (floor") + (measure ? ", FFTW_MEASURE)" : ")"),
                  "",        threads,
                  w.flops(), naive_name(w)};
  benchmark::RegisterBenchmark(
      name.c_str(),
      [w, threads, flags](benchmark::State& state) {
        const detail::conv_problem g = detail::make_problem(detail::image_request(
            w.n, w.n, kernel_size, kernel_size, valid_correlation(algorithm::fft, threads), sizeof(float)));
        const int rows = int(detail::fft::next_fast_size(g.rows.extent)),
                  cols = int(detail::fft::next_fast_size(g.cols.extent));
        bare_fftw floor(rows, cols, int(w.n), int(w.n), int(kernel_size), threads, flags);
        count_allocations counting(state);
        for (auto _ : state) floor.run();
      })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}
#endif

#if defined(CONVKIT_BENCH_OPENCV)
void register_opencv(const workload& w, int threads) {
  const std::string name = "seed/" + w.name() + "/opencv_filter2D/threads:" + std::to_string(threads);
  rows()[name] = {w.name(), "OpenCV filter2D (same size)", "", threads, w.flops(), naive_name(w)};
  benchmark::RegisterBenchmark(name.c_str(),
                               [w, threads](benchmark::State& state) {
                                 cv::setNumThreads(threads);
                                 const array2d<float>& img = image(w.n);
                                 cv::Mat src(static_cast<int>(w.n), static_cast<int>(w.n), CV_32F,
                                             const_cast<float*>(img.data()));
                                 cv::Mat k(static_cast<int>(kernel_size), static_cast<int>(kernel_size), CV_32F,
                                           const_cast<float*>(kernel().data()));
                                 cv::Mat dst(static_cast<int>(w.n), static_cast<int>(w.n), CV_32F);
                                 cv::filter2D(src, dst, CV_32F, k, cv::Point(0, 0), 0, cv::BORDER_CONSTANT);
                                 count_allocations counting(state);
                                 for (auto _ : state) {
                                   cv::filter2D(src, dst, CV_32F, k, cv::Point(0, 0), 0, cv::BORDER_CONSTANT);
                                   benchmark::DoNotOptimize(dst.data);
                                 }
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}
#endif

/// After the table: per workload and thread count, what automatic picked and its time beside the
/// fastest convkit row (plans; the fastest of every backend and setting measured).
void print_automatic_against_best(const summary_reporter& reporter, std::initializer_list<workload> workloads,
                                  const std::vector<int>& thread_counts) {
  std::printf("\nalgorithm::automatic against the fastest convkit row (profile: %s)\n", profile_path().c_str());
  for (const workload& w : workloads)
    for (int t : thread_counts) {
      const std::string suffix = "/threads:" + std::to_string(t);
      const double automatic = reporter.seconds("seed/" + w.name() + "/automatic" + suffix);
      double best = 0;
      std::string best_method;
      for (const auto& [name, info] : rows()) {
        if (info.workload != w.name() || info.threads != t || info.flops == 0) continue;
        if (name.find("/automatic/") != std::string::npos || info.method.rfind("convkit", 0) != 0) continue;
        const double s = reporter.seconds(name);
        if (s > 0 && (best == 0 || s < best)) best = s, best_method = info.method;
      }
      if (automatic > 0 && best > 0)
        std::printf("  %-12s %d thread%s: automatic %.2f ms, fastest %.2f ms (%s): %.2fx\n", w.name().c_str(), t,
                    t > 1 ? "s" : " ", automatic * 1e3, best * 1e3, best_method.c_str(), automatic / best);
    }
}

}  // namespace
}  // namespace convkit::bench

int main(int argc, char** argv) {
  using namespace convkit::bench;
  bool full = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--full") == 0)
      full = true;
    else
      args.push_back(argv[i]);
  }
  int n_args = int(args.size());
  // im2col rows run convkit's threads with a single-threaded OpenBLAS, which a library may not set
  // behind its user's back but a benchmark program may ask for (tuning.hpp).
  {
    convkit::tuning blas;
    blas.single_threaded_blas = true;
    convkit::set_default_tuning(blas);
  }
  benchmark::Initialize(&n_args, args.data());
  const int all = convkit::detail::resolve_threads(0);
  std::vector<int> thread_counts{1};
  if (all > 1) thread_counts.push_back(all);
  benchmark::AddCustomContext("direct instruction set", convkit::direct::to_string(convkit::direct::instruction_set()));
  benchmark::AddCustomContext("mode", full ? "full" : "quick (naive loop at 10000x10000 estimated from 2000x2000)");

  const workload small{1000}, large{10000}, probe{2000};
  register_naive(small, naive_name(small), "");
  if (full)
    register_naive(large, naive_name(large), "");
  else
    register_naive(probe, "seed/2000x2000/naive", "");
  for (const workload& w : {small, large})
    for (int t : thread_counts) {
      const bool slow_rows = full || w.n <= 1000;  // rows of seconds per call at 10000x10000
      for (convkit::algorithm a : {convkit::algorithm::direct, convkit::algorithm::im2col, convkit::algorithm::fft,
                                   convkit::algorithm::cufft, convkit::algorithm::automatic})
        if (a != convkit::algorithm::im2col || slow_rows) register_backend(w, a, t);
#if defined(CONVKIT_HAS_FFTW)
      register_backend(w, convkit::algorithm::fft, t, fft_tiled);
      if (slow_rows) {
        register_backend(w, convkit::algorithm::fft, t, fft_untiled);
        register_bare_fftw(w, t, FFTW_ESTIMATE);
      }
      if (w.n <= 1000) {  // measuring plans for 10000x10000 transforms would take minutes
        register_backend(w, convkit::algorithm::fft, t, fft_measure);
        register_bare_fftw(w, t, FFTW_MEASURE);
      }
#endif
    }
  // The post's largest GPU run that fitted, 9000x9000, on the GPU only (where one is present; there is
  // no naive row at this size, so no speed-up). bench_cufft has the transfer / compute split.
  const workload gpu{9000};
  for (int t : thread_counts) register_backend(gpu, convkit::algorithm::cufft, t);
#if defined(CONVKIT_BENCH_OPENCV)
  for (const workload& w : {small, large})
    for (int t : thread_counts) register_opencv(w, t);
#endif

  summary_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  if (!full) {
    // Estimate the naive loop at 10000x10000 from 2000x2000: its time is proportional to the work.
    const double t = reporter.seconds("seed/2000x2000/naive");
    if (t > 0) {
      rows()[naive_name(large)] = {large.name(),  "naive loop (the post)", "(estimated from 2000x2000)", 1,
                                   large.flops(), naive_name(large)};
      reporter.add(naive_name(large), t * large.flops() / probe.flops());
    }
    rows().erase("seed/2000x2000/naive");
  }
  std::printf("\n== convkit_seed summary ==\n");
  std::printf("machine: %s, %d hardware threads; convkit %s, direct kernel %s\n", cpu_model_name().c_str(), all,
              CONVKIT_VERSION_STRING, convkit::direct::to_string(convkit::direct::instruction_set()));
  reporter.print_summary();
  print_automatic_against_best(reporter, {small, large}, thread_counts);
  benchmark::Shutdown();
  return 0;
}
