// Convolution layers of ResNet-50 and VGG-16 at batch 1 and 8, through every convkit backend that
// computes layers, automatic and, when oneDNN was found at configure time, through oneDNN's
// convolution (the peer to beat), on 1 and 2 threads. Counter GFLOP/s = 2 * N * K * C/groups * R * S
// * OH * OW / time.
//   bench_layers                  Google Benchmark's table (its usual flags)
//   bench_layers --compare [R] [F]  every backend, automatic, oneDNN and the FMA peak loop per layer,
//                                 batch and thread count, interleaved, R rounds (default 5); with F,
//                                 only the layers whose name contains F
//
// convkit runs a layer_plan (weights prepared once) on NCHW float arrays. oneDNN runs twice:
//   onednn_nchw     the same contract: NCHW input and output in memory, reordered into and out of
//                   the layouts oneDNN prefers in every call, weights reordered once;
//   onednn_blocked  oneDNN's best case: input, weights and output in the blocked layouts it
//                   prefers (nChw16c), reorders done once outside the timing, as benchdnn measures.
#include <convkit/convkit.hpp>
#include <convkit/layer.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "fma_peak.hpp"

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
    {"resnet50_conv1_3to64_7x7s2_224", 3, 64, 224, 7, 2, 3},    {"resnet50_64to64_3x3_56", 64, 64, 56, 3, 1, 1},
    {"resnet50_128to128_3x3_28", 128, 128, 28, 3, 1, 1},        {"resnet50_256to256_3x3_14", 256, 256, 14, 3, 1, 1},
    {"resnet50_512to512_3x3_7", 512, 512, 7, 3, 1, 1},          {"resnet50_256to64_1x1_56", 256, 64, 56, 1, 1, 0},
    {"vgg16_conv1_1_3to64_3x3_224", 3, 64, 224, 3, 1, 1},       {"mobilenet_dw32_3x3_112", 32, 32, 112, 3, 1, 1, 32},
    {"mobilenet_dw512_3x3_14", 512, 512, 14, 3, 1, 1, 512},     {"mobilenet_dw64_3x3s2_112", 64, 64, 112, 3, 2, 1, 64},
    {"resnext_128to128_3x3_g32_28", 128, 128, 28, 3, 1, 1, 32}, {"large_32to32_11x11_64", 32, 32, 64, 11, 1, 5},
    {"large_16to16_21x21_64", 16, 16, 64, 21, 1, 10},
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
/// oneDNN's convolution of one layer, made once (weights reordered once into the layout it prefers).
/// from_nchw: each run() reorders the NCHW input into the primitive's layout and the output back
/// (what a caller holding NCHW tensors pays; no reorder where the primitive takes NCHW itself);
/// otherwise run() is the convolution alone on its blocked layouts, as benchdnn measures.
class onednn_conv {
 public:
  onednn_conv(const layer_shape& l, index_t n, int threads, bool from_nchw)
      : eng_(dnnl::engine::kind::cpu, 0), strm_(eng_), threads_(threads) {
    using namespace dnnl;
    omp_set_num_threads(threads);  // before the primitive is made: it fixes its work split then
    using tag = memory::format_tag;
    using dt = memory::data_type;
    const convkit::shape4d s =
        convkit::layer_output_shape({n, l.c, l.hw, l.hw}, {l.k, l.c / l.groups, l.r, l.r}, options_for(l, 1));
    // Grouped weights are [groups, K/groups, C/groups, R, S] to oneDNN (goihw), plain ones [K, C, R, S].
    const memory::dims wei_dims = l.groups == 1 ? memory::dims{l.k, l.c, l.r, l.r}
                                                : memory::dims{l.groups, l.k / l.groups, l.c / l.groups, l.r, l.r};
    const memory::dims src_dims{n, l.c, l.hw, l.hw}, bias_dims{l.k}, dst_dims{n, l.k, s.h, s.w};
    const memory::dims strides{l.stride, l.stride}, dilates{0, 0}, pad{l.pad, l.pad};
    const convolution_forward::desc desc(
        prop_kind::forward_inference, algorithm::convolution_direct, memory::desc(src_dims, dt::f32, tag::any),
        memory::desc(wei_dims, dt::f32, tag::any), memory::desc(bias_dims, dt::f32, tag::x),
        memory::desc(dst_dims, dt::f32, tag::any), strides, dilates, pad, pad);
    const convolution_forward::primitive_desc pd(desc, eng_);
    impl_ = pd.impl_info_str();
    user_src_ = memory({src_dims, dt::f32, tag::nchw}, eng_);
    user_dst_ = memory({dst_dims, dt::f32, tag::nchw}, eng_);
    memory user_wei({wei_dims, dt::f32, l.groups == 1 ? tag::oihw : tag::goihw}, eng_);
    bias_ = memory({bias_dims, dt::f32, tag::x}, eng_);
    fill(static_cast<float*>(user_src_.get_data_handle()), n * l.c * l.hw * l.hw, 1);
    fill(static_cast<float*>(user_wei.get_data_handle()), l.k * (l.c / l.groups) * l.r * l.r, 2);
    fill(static_cast<float*>(bias_.get_data_handle()), l.k, 3);
    src_ = memory(pd.src_desc(), eng_);
    wei_ = memory(pd.weights_desc(), eng_);
    dst_ = memory(pd.dst_desc(), eng_);
    reorder(user_src_, src_).execute(strm_, user_src_, src_);
    reorder(user_wei, wei_).execute(strm_, user_wei, wei_);
    strm_.wait();
    conv_ = convolution_forward(pd);
    if (from_nchw && pd.src_desc() != user_src_.get_desc()) to_blocked_ = reorder(user_src_, src_);
    if (from_nchw && pd.dst_desc() != user_dst_.get_desc()) to_nchw_ = reorder(dst_, user_dst_);
    reorders_ = from_nchw;
  }

  void run() {
    omp_set_num_threads(threads_);
    if (reorders_ && to_blocked_) to_blocked_.execute(strm_, user_src_, src_);
    conv_.execute(strm_,
                  {{DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, wei_}, {DNNL_ARG_BIAS, bias_}, {DNNL_ARG_DST, dst_}});
    if (reorders_ && to_nchw_) to_nchw_.execute(strm_, dst_, user_dst_);
    strm_.wait();
  }

  const std::string& impl() const { return impl_; }

 private:
  dnnl::engine eng_;
  dnnl::stream strm_;
  int threads_;
  dnnl::memory user_src_, user_dst_, src_, wei_, bias_, dst_;
  dnnl::convolution_forward conv_;
  dnnl::reorder to_blocked_, to_nchw_;
  bool reorders_ = false;
  std::string impl_;
};

void onednn_layer(benchmark::State& state, layer_shape l, index_t n, int threads, bool from_nchw) {
  onednn_conv conv(l, n, threads, from_nchw);
  for (auto _ : state) conv.run();
  state.counters["GFLOP/s"] = benchmark::Counter(flops(l, n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(conv.impl());
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
        benchmark::RegisterBenchmark(("onednn_nchw/" + suffix).c_str(), onednn_layer, l, n, threads, true)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
        benchmark::RegisterBenchmark(("onednn_blocked/" + suffix).c_str(), onednn_layer, l, n, threads, false)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
#endif
      }
}

/// --compare [R]: for every layer at batch 1 and 8, on 1 and 2 threads, in one interleaved group
/// (A B C A B C ..., R rounds): this machine's FMA peak loop on those threads (fma_peak.hpp), each
/// convkit backend's layer_plan, automatic's, and oneDNN from NCHW (reorders included) and on its
/// blocked layouts (convolution only). Medians in ms; automatic's GFLOP/s and its fraction of the
/// peak measured in the same group; automatic over the best convkit backend and over both oneDNN
/// timings; the end has their geometric means and worst cases.
int compare(int rounds, const std::string& only) {
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
  const cpu::isa isa = cpu::best_instruction_set();
  std::printf(
      "bench_layers --compare: layer_plan execute, float, %d+ interleaved rounds, peak: %s float FMA loop\n%s\n\n",
      rounds, cpu::to_string(isa), machine_fingerprint().c_str());
  std::printf("%-30s %5s %3s", "layer", "batch", "thr");
  for (algorithm a : backends) std::printf(" %9s", to_string(a));
  std::printf(" %9s %7s %7s %5s %6s", "automatic", "picked", "GFLOP/s", "peak", "/best");
#if defined(CONVKIT_BENCH_ONEDNN)
  std::printf(" %9s %9s %6s %6s", "dnn_nchw", "dnn_blk", "/nchw", "/blk");
#endif
  std::printf("\n");
  std::vector<double> over_best, over_nchw, over_blocked;
  const std::int64_t peak_iterations = 1 << 19;
  double keep = 0;
  for (const layer_shape& l : layers) {
    if (std::string(l.name).find(only) == std::string::npos) continue;
    for (index_t n : {index_t(1), index_t(8)})
      for (int threads : {1, 2}) {
        array4d<float> in(n, l.c, l.hw, l.hw), w(l.k, l.c / l.groups, l.r, l.r);
        std::vector<float> bias(static_cast<std::size_t>(l.k));
        fill(in.data(), in.size(), 1);
        fill(w.data(), w.size(), 2);
        fill(bias.data(), l.k, 3);
        std::vector<std::unique_ptr<layer_plan<float>>> plans;
        for (algorithm a : backends) {
          layer_options o = options_for(l, threads);
          o.algo = a;
          plans.push_back(std::make_unique<layer_plan<float>>(in.shape(), w, bias.data(), o));
        }
        plans.push_back(std::make_unique<layer_plan<float>>(in.shape(), w, bias.data(), options_for(l, threads)));
        const shape4d s = plans[0]->output_shape();
        array4d<float> out(s.n, s.c, s.h, s.w);
        std::vector<std::function<void()>> runs;
        runs.push_back([&] { keep += bench::run_peak_loop(isa, 4, peak_iterations, threads); });
        for (auto& p : plans) runs.push_back([&p, &in, &out] { p->execute(in, out); });
#if defined(CONVKIT_BENCH_ONEDNN)
        onednn_conv nchw(l, n, threads, true), blocked(l, n, threads, false);
        runs.push_back([&] { nchw.run(); });
        runs.push_back([&] { blocked.run(); });
#endif
        const std::vector<bench::timing_summary> t = bench::interleaved(runs, rounds, 0.3);
        const double peak = bench::peak_loop_flops(isa, 4, peak_iterations) * threads / t[0].median;
        const std::size_t automatic = backends.size() + 1;
        double best = t[1].median;
        for (std::size_t i = 1; i < automatic; ++i) best = std::min(best, t[i].median);
        const double rate = flops(l, n) / t[automatic].median;
        over_best.push_back(t[automatic].median / best);
        std::printf("%-30s %5td %3d", l.name, n, threads);
        for (std::size_t i = 1; i <= automatic; ++i) std::printf(" %9.3f", t[i].median * 1e3);
        std::printf(" %7s %7.1f %4.0f%% %6.3f", to_string(plans.back()->chosen()), rate * 1e-9, 100.0 * rate / peak,
                    over_best.back());
#if defined(CONVKIT_BENCH_ONEDNN)
        over_nchw.push_back(t[automatic].median / t[automatic + 1].median);
        over_blocked.push_back(t[automatic].median / t[automatic + 2].median);
        std::printf(" %9.3f %9.3f %6.3f %6.3f", t[automatic + 1].median * 1e3, t[automatic + 2].median * 1e3,
                    over_nchw.back(), over_blocked.back());
#endif
        std::printf("\n");
        std::fflush(stdout);
      }
  }
  const auto line = [](const char* what, const std::vector<double>& v) {
    if (v.empty()) return;
    const bench::ratio_summary r = bench::summarise(v);
    std::printf("automatic / %s over %zu rows: geometric mean %.3f, worst %.3f\n", what, v.size(), r.geomean, r.worst);
  };
  std::printf("\n");
  line("best convkit backend", over_best);
  line("oneDNN from NCHW", over_nchw);
  line("oneDNN blocked", over_blocked);
  if (keep == 12345.678) std::printf("\n");  // keeps the peak loops' results alive
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
      return compare(rounds, i + 2 < argc ? argv[i + 2] : "");
    }
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
