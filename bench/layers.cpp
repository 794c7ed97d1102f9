// Convolution layers of ResNet-50 and VGG-16 at batch 1 and 8, through every convkit backend that
// computes layers, automatic and, when oneDNN was found at configure time, through oneDNN's
// convolution (the peer to beat), on 1 and 2 threads. Counter GFLOP/s = 2 * N * K * C/groups * R * S
// * OH * OW / time.
//   bench_layers                  Google Benchmark's table (its usual flags)
//   bench_layers --compare [R]    automatic / best per layer, interleaved, R rounds (default 5)
//
// convkit runs a layer_plan (weights prepared once) on NCHW float arrays. oneDNN runs twice:
//   onednn_nchw     the same contract: NCHW input and output in memory, weights reordered once
//                   into oneDNN's preferred layout;
//   onednn_blocked  oneDNN's best case: input, weights and output in the blocked layouts it
//                   prefers (nChw16c), reorders done once outside the timing, as benchdnn measures.
#include <convkit/convkit.hpp>
#include <convkit/layer.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_common.hpp"

#if defined(CONVKIT_BENCH_ONEDNN)
#include <omp.h>

#include <dnnl.hpp>
#endif

namespace {

using convkit::index_t;

struct layer_shape {
  const char* name;
  index_t c, k, hw, r;
  int stride, pad, groups = 1;
};

// ResNet-50's conv1, the 3x3 layers of its four stages and a 1x1 reduction, and VGG-16's
// first layer.
const layer_shape layers[] = {
    {"resnet50_conv1_3to64_7x7s2_224", 3, 64, 224, 7, 2, 3}, {"resnet50_64to64_3x3_56", 64, 64, 56, 3, 1, 1},
    {"resnet50_128to128_3x3_28", 128, 128, 28, 3, 1, 1},     {"resnet50_256to256_3x3_14", 256, 256, 14, 3, 1, 1},
    {"resnet50_512to512_3x3_7", 512, 512, 7, 3, 1, 1},       {"resnet50_256to64_1x1_56", 256, 64, 56, 1, 1, 0},
    {"vgg16_conv1_1_3to64_3x3_224", 3, 64, 224, 3, 1, 1},    {"mobilenet_dw32_3x3_112", 32, 32, 112, 3, 1, 1, 32},
    {"mobilenet_dw512_3x3_14", 512, 512, 14, 3, 1, 1, 512},  {"resnext_128to128_3x3_g32_28", 128, 128, 28, 3, 1, 1, 32},
    {"large_32to32_11x11_64", 32, 32, 64, 11, 1, 5},         {"large_16to16_21x21_64", 16, 16, 64, 21, 1, 10},
};

convkit::layer_options options_for(const layer_shape& l, int threads) {
  convkit::layer_options o;
  o.stride_rows = o.stride_cols = l.stride;
  o.pad_rows = o.pad_cols = l.pad;
  o.groups = l.groups;
  o.threads = threads;
  return o;
}

double flops(const layer_shape& l, index_t n) {
  const convkit::shape4d out =
      convkit::layer_output_shape({n, l.c, l.hw, l.hw}, {l.k, l.c / l.groups, l.r, l.r}, options_for(l, 1));
  return 2.0 * double(n) * double(l.k) * double(l.c / l.groups) * double(l.r * l.r) * double(out.h) * double(out.w);
}

void fill(float* p, index_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (index_t i = 0; i < n; ++i) p[i] = d(g);
}

void convkit_layer(benchmark::State& state, layer_shape l, index_t n, int threads, convkit::algorithm algo) {
  convkit::layer_options o = options_for(l, threads);
  o.algo = algo;
  convkit::array4d<float> in(n, l.c, l.hw, l.hw), w(l.k, l.c / l.groups, l.r, l.r);
  std::vector<float> bias(static_cast<std::size_t>(l.k));
  fill(in.data(), in.size(), 1);
  fill(w.data(), w.size(), 2);
  fill(bias.data(), l.k, 3);
  convkit::layer_plan<float> plan(in.shape(), w, bias.data(), o);
  const convkit::shape4d s = plan.output_shape();
  convkit::array4d<float> out(s.n, s.c, s.h, s.w);
  for (auto _ : state) {
    plan.execute(in, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops(l, n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

#if defined(CONVKIT_BENCH_ONEDNN)
void onednn_layer(benchmark::State& state, layer_shape l, index_t n, int threads, bool blocked) {
  using namespace dnnl;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  omp_set_num_threads(threads);
  const convkit::shape4d s =
      convkit::layer_output_shape({n, l.c, l.hw, l.hw}, {l.k, l.c / l.groups, l.r, l.r}, options_for(l, 1));
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  // Grouped weights are [groups, K/groups, C/groups, R, S] to oneDNN (goihw), plain ones [K, C, R, S].
  const memory::dims wei_dims = l.groups == 1 ? memory::dims{l.k, l.c, l.r, l.r}
                                              : memory::dims{l.groups, l.k / l.groups, l.c / l.groups, l.r, l.r};
  const memory::dims src_dims{n, l.c, l.hw, l.hw}, bias_dims{l.k}, dst_dims{n, l.k, s.h, s.w};
  const memory::dims strides{l.stride, l.stride}, dilates{0, 0}, pad{l.pad, l.pad};
  const tag io = blocked ? tag::any : tag::nchw;
  const convolution_forward::desc desc(prop_kind::forward_inference, algorithm::convolution_direct,
                                       memory::desc(src_dims, dt::f32, io), memory::desc(wei_dims, dt::f32, tag::any),
                                       memory::desc(bias_dims, dt::f32, tag::x), memory::desc(dst_dims, dt::f32, io),
                                       strides, dilates, pad, pad);
  const convolution_forward::primitive_desc pd(desc, eng);
  // User data in plain layouts, reordered once (outside the timing) into what the primitive wants.
  memory user_src({src_dims, dt::f32, tag::nchw}, eng),
      user_wei({wei_dims, dt::f32, l.groups == 1 ? tag::oihw : tag::goihw}, eng);
  memory bias({bias_dims, dt::f32, tag::x}, eng);
  fill(static_cast<float*>(user_src.get_data_handle()), n * l.c * l.hw * l.hw, 1);
  fill(static_cast<float*>(user_wei.get_data_handle()), l.k * (l.c / l.groups) * l.r * l.r, 2);
  fill(static_cast<float*>(bias.get_data_handle()), l.k, 3);
  memory src(pd.src_desc(), eng), wei(pd.weights_desc(), eng), dst(pd.dst_desc(), eng);
  reorder(user_src, src).execute(strm, user_src, src);
  reorder(user_wei, wei).execute(strm, user_wei, wei);
  strm.wait();
  convolution_forward conv(pd);
  for (auto _ : state) {
    conv.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst}});
    strm.wait();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops(l, n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(pd.impl_info_str());
}
#endif

// Registers every (layer, batch, threads) for each convkit backend and automatic, then oneDNN.
void register_all() {
  for (const layer_shape& l : layers)
    for (index_t n : {index_t(1), index_t(8)})
      for (int threads : {1, 2}) {
        const std::string suffix =
            std::string(l.name) + "/batch:" + std::to_string(n) + "/threads:" + std::to_string(threads);
        for (convkit::algorithm a : {convkit::algorithm::direct, convkit::algorithm::im2col, convkit::algorithm::fft,
                                     convkit::algorithm::cufft, convkit::algorithm::automatic}) {
          convkit::layer_options o;
          o.algo = a;
          try {
            convkit::layer_plan<float>({1, 1, 4, 4}, convkit::array4d<float>(1, 1, 2, 2), nullptr, o);
          } catch (const convkit::unavailable&) {
            continue;  // not in this build, or does not compute layers
          }
          benchmark::RegisterBenchmark((std::string(convkit::to_string(a)) + "/" + suffix).c_str(), convkit_layer, l, n,
                                       threads, a)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        }
#if defined(CONVKIT_BENCH_ONEDNN)
        benchmark::RegisterBenchmark(("onednn_nchw/" + suffix).c_str(), onednn_layer, l, n, threads, false)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
        benchmark::RegisterBenchmark(("onednn_blocked/" + suffix).c_str(), onednn_layer, l, n, threads, true)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
#endif
      }
}

/// --compare: for every layer at batch 1 and 8 on all threads, each backend's layer_plan and
/// automatic's, run interleaved (A B C A B C ...); the table has medians, automatic's pick and
/// automatic / best, and the end its geometric mean and worst case.
int compare(int rounds) {
  using namespace convkit;
  std::vector<algorithm> backends;
  for (algorithm a : {algorithm::direct, algorithm::im2col, algorithm::fft, algorithm::cufft}) {
    layer_options o;
    o.algo = a;
    try {
      layer_plan<float>({1, 1, 4, 4}, array4d<float>(1, 1, 2, 2), nullptr, o);
      backends.push_back(a);
    } catch (const unavailable&) {
    }
  }
  std::printf("bench_layers --compare: layer_plan execute, float, all threads, %d+ interleaved rounds\n%s\n\n", rounds,
              machine_fingerprint().c_str());
  std::printf("%-30s %5s", "layer", "batch");
  for (algorithm a : backends) std::printf(" %11s", to_string(a));
  std::printf(" %11s %9s %6s %6s\n", "automatic", "picked", "/best", "paired");
  std::vector<double> ratios, paired;
  for (const layer_shape& l : layers)
    for (index_t n : {index_t(1), index_t(8)}) {
      array4d<float> in(n, l.c, l.hw, l.hw), w(l.k, l.c / l.groups, l.r, l.r);
      std::vector<float> bias(static_cast<std::size_t>(l.k));
      fill(in.data(), in.size(), 1);
      fill(w.data(), w.size(), 2);
      fill(bias.data(), l.k, 3);
      std::vector<std::unique_ptr<layer_plan<float>>> plans;
      for (algorithm a : backends) {
        layer_options o = options_for(l, 0);
        o.algo = a;
        plans.push_back(std::make_unique<layer_plan<float>>(in.shape(), w, bias.data(), o));
      }
      plans.push_back(std::make_unique<layer_plan<float>>(in.shape(), w, bias.data(), options_for(l, 0)));
      const shape4d s = plans[0]->output_shape();
      array4d<float> out(s.n, s.c, s.h, s.w);
      std::vector<std::function<void()>> runs;
      for (auto& p : plans) runs.push_back([&p, &in, &out] { p->execute(in, out); });
      const std::vector<bench::timing_summary> t = bench::interleaved(runs, rounds, 0.3);
      const bench::automatic_ratio r = bench::automatic_over_best(t);
      ratios.push_back(r.of_medians);
      paired.push_back(r.paired);
      std::printf("%-30s %5td", l.name, n);
      for (std::size_t i = 0; i + 1 < t.size(); ++i) std::printf(" %8.3f ms", t[i].median * 1e3);
      std::printf(" %8.3f ms %9s %6.3f %6.3f\n", t.back().median * 1e3, to_string(plans.back()->chosen()), r.of_medians,
                  r.paired);
      std::fflush(stdout);
    }
  const bench::ratio_summary r = bench::summarise(ratios), rp = bench::summarise(paired);
  std::printf("\nautomatic / best over %zu layers: geometric mean %.3f, worst %.3f (ratio of medians)\n", ratios.size(),
              r.geomean, r.worst);
  std::printf("automatic / best over %zu layers: geometric mean %.3f, worst %.3f (median of per-round ratios)\n",
              paired.size(), rp.geomean, rp.worst);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // im2col rows run convkit's threads with a single-threaded OpenBLAS, which a library may not set
  // behind its user's back but a benchmark program may ask for (tuning.hpp).
  {
    convkit::tuning blas;
    blas.single_threaded_blas = true;
    convkit::set_default_tuning(blas);
  }
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--compare") {
      const int rounds = i + 1 < argc ? std::max(1, std::atoi(argv[i + 1])) : 5;
      return compare(rounds);
    }
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
