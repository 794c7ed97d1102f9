// bench_peak: the direct backend's rate as a fraction of this machine's arithmetic peak, for every
// instruction set this CPU runs (forced through tuning::instruction_set), float and double, n x n
// images and k x k kernels, 'valid' correlation (the post's workload: every output reads k * k taps).
// In one process, interleaved: each round runs the peak loop of the instruction set and type
// (fma_peak.hpp), every kernel size through a direct plan, and a copy of the image (the memory
// floor: reading the input and writing an output of its size once), each starting one later than in
// the round before (bench_common's interleaved), so that drift reaches them alike. Reports medians
// with the fastest and slowest run; a figure's fraction of the peak uses the peak's median.
//
//   bench_peak                                  sizes 1000, 4000; kernels 3 5 7 9 15 21 31; float, double
//   bench_peak --sizes 1000 --kernels 7,15 --types float --isas avx2 --rounds 5 --threads 2
//   --seconds S: each table's rounds go on until S seconds have passed (default 1)
//
// GFLOP/s = 2 * outputs * k * k / seconds. "of peak": that over the peak of the same instruction
// set, type and thread count. "copy floor": the copy's time over direct's (1.0: as fast as a copy).
#include <convkit/convkit.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "fma_peak.hpp"

namespace {

using convkit::index_t;

std::vector<std::string> parse_words(const char* text) {
  std::vector<std::string> v;
  std::stringstream s(text);
  std::string item;
  while (std::getline(s, item, ',')) v.push_back(item);
  return v;
}

std::vector<index_t> parse_list(const char* text) {
  std::vector<index_t> v;
  for (const std::string& w : parse_words(text)) v.push_back(std::atoi(w.c_str()));
  return v;
}

// One instruction set and type: the peak, then a table row per size and kernel.
template <class T>
void measure(convkit::cpu::isa isa, const std::vector<index_t>& sizes, const std::vector<index_t>& kernels, int rounds,
             int threads, double seconds) {
  using namespace convkit;
  const int bytes = int(sizeof(T));
  // About 50 ms of peak loop per run on one thread of a 2 GHz core.
  const std::int64_t iterations = isa == cpu::isa::avx512 ? 3000000 : 4000000;
  const double peak_flops = bench::peak_loop_flops(isa, bytes, iterations) * threads;
  double keep = 0;
  for (index_t n : sizes) {
    array2d<T> image(n, n), copy(n, n);
    for (index_t i = 0; i < image.size(); ++i) image.data()[i] = T((i * 7919) % 101) / T(101) - T(0.5);
    std::vector<std::function<void()>> variants;
    variants.push_back([&] { keep += bench::run_peak_loop(isa, bytes, iterations, threads); });
    variants.push_back([&] {
      // The memory floor: the image read and an image-sized output written once, on `threads` threads.
      convkit::detail::parallel_for(n, threads, [&](index_t b, index_t e) {
        std::memcpy(copy.data() + b * n, image.data() + b * n, std::size_t((e - b) * n) * sizeof(T));
      });
    });
    std::vector<plan<T>> plans;
    std::vector<array2d<T>> outs;
    std::vector<double> flops;
    for (index_t k : kernels) {
      if (k > n) continue;
      array2d<T> kernel(k, k);
      for (index_t i = 0; i < kernel.size(); ++i) kernel.data()[i] = T((i * 104729) % 19) / T(19) - T(0.5);
      options o;
      o.mode = output::valid;
      o.correlate = true;
      o.algo = algorithm::direct;
      o.threads = threads;
      o.tune.instruction_set = isa;
      plans.emplace_back(n, n, kernel.view(), o);
      outs.emplace_back(n - k + 1, n - k + 1);
      flops.push_back(2.0 * double(n - k + 1) * double(n - k + 1) * double(k) * double(k));
    }
    for (std::size_t j = 0; j < plans.size(); ++j)
      variants.push_back([&, j] { plans[j].execute(image.view(), outs[j].view()); });
    const std::vector<bench::timing_summary> t = bench::interleaved(variants, rounds, seconds);
    const double peak = peak_flops / t[0].median;
    std::printf("%-14s %-6s %5lld  peak %7.1f GFLOP/s (%.1f..%.1f)   copy %7.3f ms\n", cpu::to_string(isa),
                bytes == 4 ? "float" : "double", static_cast<long long>(n), peak * 1e-9,
                peak_flops / t[0].slowest * 1e-9, peak_flops / t[0].fastest * 1e-9, t[1].median * 1e3);
    std::size_t j = 0;
    for (index_t k : kernels) {
      if (k > n) continue;
      const bench::timing_summary& s = t[2 + j];
      const double rate = flops[j] / s.median;
      std::printf("    k %2lld   %9.3f ms (%.3f..%.3f)   %7.1f GFLOP/s   %5.1f%% of peak   copy floor %.2f\n",
                  static_cast<long long>(k), s.median * 1e3, s.fastest * 1e3, s.slowest * 1e3, rate * 1e-9,
                  100.0 * rate / peak, t[1].median / s.median);
      ++j;
    }
  }
  if (keep == 12345.678) std::printf("\n");  // keeps the peak loops' results alive
}

}  // namespace

int main(int argc, char** argv) {
  using namespace convkit;
  std::vector<index_t> sizes{1000, 4000}, kernels{3, 5, 7, 9, 15, 21, 31};
  std::vector<std::string> types{"float", "double"}, isas;
  int rounds = 5, threads = 1;
  double seconds = 1.0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--sizes" && i + 1 < argc) {
      sizes = parse_list(argv[++i]);
    } else if (a == "--kernels" && i + 1 < argc) {
      kernels = parse_list(argv[++i]);
    } else if (a == "--types" && i + 1 < argc) {
      types = parse_words(argv[++i]);
    } else if (a == "--isas" && i + 1 < argc) {
      isas = parse_words(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--sizes 1000,4000] [--kernels 3,5,7] [--types float,double] "
                   "[--isas portable,avx2,avx512] [--rounds N] [--threads N] [--seconds S]\n",
                   argv[0]);
      return a == "--help" ? 0 : 2;
    }
  }
  if (threads < 1 || rounds < 1) {
    std::fprintf(stderr, "--threads and --rounds must be >= 1\n");
    return 2;
  }
  std::printf("bench_peak: direct, 'valid' correlation, %d thread(s), %d+ rounds interleaved; %s\n", threads, rounds,
              bench::cpu_model_name().c_str());
  for (const auto& entry : detail::enum_table<cpu::isa>::entries) {
    const cpu::isa isa = entry.value;
    if (isa > cpu::best_instruction_set()) continue;
    if (!isas.empty() && std::find(isas.begin(), isas.end(), std::string(entry.name)) == isas.end()) continue;
    for (const std::string& type : types) {
      if (type == "float")
        measure<float>(isa, sizes, kernels, rounds, threads, seconds);
      else if (type == "double")
        measure<double>(isa, sizes, kernels, rounds, threads, seconds);
    }
  }
  return 0;
}
