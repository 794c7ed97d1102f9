// convkit_sweep: every backend in this build over image sizes x kernel sizes, float, all threads,
// 'same' convolution with a zero border. Write the results as JSON and plot them:
//   convkit_sweep --benchmark_out=sweep.json --benchmark_out_format=json
//   /usr/bin/python3 bench/plot_sweep.py sweep.json docs/
// Each benchmark executes a plan made outside the timed loop; the counter GFLOPs is the work of a
// direct evaluation (2 * outputs * taps) per second, so backends compare on one scale.
#include <convkit/convkit.hpp>

#include <benchmark/benchmark.h>

#include <random>
#include <string>

namespace {

convkit::array2d<float> random_array(convkit::index_t rows, convkit::index_t cols, unsigned seed) {
  convkit::array2d<float> a(rows, cols);
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (convkit::index_t i = 0; i < a.size(); ++i) a.data()[i] = d(g);
  return a;
}

void run(benchmark::State& state, convkit::algorithm a) {
  const convkit::index_t n = state.range(0), k = state.range(1);
  const convkit::array2d<float> image = random_array(n, n, 1), kernel = random_array(k, k, 2);
  convkit::options opt;
  opt.mode = convkit::output::same;
  opt.algo = a;
  convkit::plan<float> p(n, n, kernel, opt);
  convkit::array2d<float> out(n, n);
  p.execute(image, out);
  for (auto _ : state) {
    p.execute(image, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * double(n * n) * double(k * k) * double(state.iterations()) / 1e9,
                                                benchmark::Counter::kIsRate);
  state.SetLabel(std::string(convkit::to_string(p.chosen())));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (convkit::algorithm a : {convkit::algorithm::direct, convkit::algorithm::im2col, convkit::algorithm::fft,
                               convkit::algorithm::cufft, convkit::algorithm::automatic}) {
    convkit::options probe;
    probe.algo = a;
    try {
      convkit::plan<float>(8, 8, convkit::array2d<float>(3, 3), probe);
    } catch (const convkit::unavailable&) {
      continue;
    }
    auto* b = benchmark::RegisterBenchmark((std::string("sweep/") + convkit::to_string(a)).c_str(), run, a);
    for (long n : {256, 512, 1000, 2048, 4096})
      for (long k : {3, 5, 7, 9, 11, 15, 21, 31, 51}) b->Args({n, k});
    b->ArgNames({"image", "kernel"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.2);
  }
  benchmark::AddCustomContext("direct instruction set", convkit::direct::to_string(convkit::direct::instruction_set()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
