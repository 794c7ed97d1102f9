// convkit_sweep: which backend wins, and how close algorithm::automatic comes to it, over image
// sizes x kernel sizes: float, 'same' convolution with a zero border, all threads, one-shot conv2d
// calls (what a user's call costs: validation, choice, executor, convolution). For each point the
// backends and automatic run interleaved (direct, fft, automatic, direct, fft, automatic, ...), so
// that this machine's drift reaches them alike; the table has each one's median, automatic's pick
// and automatic / best, and the end its geometric mean and worst case.
//
//   convkit_sweep                       the full grid (images 256..4096, kernels 3..51)
//   convkit_sweep --quick               a smaller grid, fewer rounds
//   convkit_sweep --images 1000,4000 --kernels 3,15 --rounds 7 --threads 1
//   convkit_sweep --plans               plans executed (made outside the timing) instead of one-shot calls
//   convkit_sweep --json sweep.json     also write the medians for bench/plot_sweep.py
// im2col is left out (with one filter its GEMM is a matrix-vector product; it never wins a single
// image and takes minutes on the large ones); --im2col adds it for images up to 1000.
#include <convkit/convkit.hpp>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace {

using convkit::index_t;

std::vector<index_t> parse_list(const char* text) {
  std::vector<index_t> v;
  std::stringstream s(text);
  std::string item;
  while (std::getline(s, item, ',')) v.push_back(std::atoi(item.c_str()));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace convkit;
  std::vector<index_t> images{256, 512, 1000, 2000, 2048, 4000, 4096}, kernels{3, 5, 7, 9, 11, 15, 21, 31, 51};
  int rounds = 5, threads = 0;
  bool plans = false, with_im2col = false;
  const char* json = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      images = {256, 1000, 2000, 4000};
      kernels = {3, 7, 15, 31};
      rounds = 3;
    } else if (a == "--images" && i + 1 < argc) {
      images = parse_list(argv[++i]);
    } else if (a == "--kernels" && i + 1 < argc) {
      kernels = parse_list(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--plans") {
      plans = true;
    } else if (a == "--im2col") {
      with_im2col = true;
    } else if (a == "--json" && i + 1 < argc) {
      json = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--images a,b] [--kernels a,b] [--rounds n] [--threads n] [--plans] "
                   "[--im2col] [--json path]\n",
                   argv[0]);
      return 2;
    }
  }
  // im2col rows run convkit's threads with a single-threaded OpenBLAS, which a library may not set
  // behind its user's back but a benchmark program may ask for (tuning.hpp).
  {
    convkit::tuning blas;
    blas.single_threaded_blas = true;
    convkit::set_default_tuning(blas);
  }
  std::vector<algorithm> backends;
  for (algorithm a : {algorithm::direct, algorithm::im2col, algorithm::fft, algorithm::cufft}) {
    options probe;
    probe.algo = a;
    if (a == algorithm::im2col && !with_im2col) continue;
    try {
      plan<float>(8, 8, array2d<float>(3, 3), probe);
      backends.push_back(a);
    } catch (const unavailable&) {
    }
  }
  std::printf(
      "convkit_sweep: 'same' float convolution, zero border, %s, %s threads, %d+ interleaved rounds; "
      "direct ISA %s\n%s\n\n",
      plans ? "plans" : "one-shot conv2d calls", threads == 0 ? "all" : std::to_string(threads).c_str(), rounds,
      cpu::to_string(direct::instruction_set()), machine_fingerprint().c_str());
  std::printf("%6s %6s", "image", "kernel");
  for (algorithm a : backends) std::printf(" %11s", to_string(a));
  std::printf(" %11s %9s %6s %6s  %s\n", "automatic", "picked", "/best", "paired",
              "spread of automatic (fastest..slowest)");
  std::vector<double> ratios, paired;
  std::string json_rows;
  for (index_t n : images)
    for (index_t k : kernels) {
      const array2d<float>& img = bench::image(n);
      const array2d<float>& ker = bench::kernel(k);
      array2d<float> out(n, n);
      std::vector<algorithm> variants;
      for (algorithm a : backends)
        if (a != algorithm::im2col || n <= 1000) variants.push_back(a);
      variants.push_back(algorithm::automatic);
      std::vector<std::function<void()>> runs;
      std::vector<std::unique_ptr<plan<float>>> made;
      for (algorithm a : variants) {
        options o;
        o.mode = output::same;
        o.algo = a;
        o.threads = threads;
        if (plans) {
          made.push_back(std::make_unique<plan<float>>(n, n, ker, o));
          plan<float>* p = made.back().get();
          runs.push_back([p, &img, &out] { p->execute(img, out); });
        } else {
          runs.push_back([o, &img, &ker, &out] { conv2d<float>(img, ker, out, o); });
        }
      }
      options automatic;
      automatic.mode = output::same;
      automatic.threads = threads;
      // What automatic runs: a plan amortises the kernel's spectrum, a one-shot call does not, so the
      // two can differ (256 x 256 * 31 x 31: fft for a plan, direct for a call).
      const algorithm picked = plans ? made.back()->chosen() : automatic_choice(n, n, k, k, automatic);
      const std::vector<bench::timing_summary> t = bench::interleaved(runs, rounds, 0.2);
      const bench::automatic_ratio r = bench::automatic_over_best(t);
      const bench::timing_summary& a = t.back();
      ratios.push_back(r.of_medians);
      paired.push_back(r.paired);
      std::printf("%6td %6td", n, k);
      std::size_t v = 0;
      for (algorithm b : backends) {
        if (v < variants.size() - 1 && variants[v] == b)
          std::printf(" %8.3f ms", t[v++].median * 1e3);
        else
          std::printf(" %11s", "-");
      }
      std::printf(" %8.3f ms %9s %6.3f %6.3f  %.3f..%.3f ms\n", a.median * 1e3, to_string(picked), r.of_medians,
                  r.paired, a.fastest * 1e3, a.slowest * 1e3);
      std::fflush(stdout);
      for (std::size_t i = 0; i < variants.size(); ++i) {
        char row[200];
        std::snprintf(row, sizeof row,
                      "%s{\"name\": \"sweep/%s/image:%td/kernel:%td\", \"real_time\": %.6f, \"time_unit\": \"ms\"}",
                      json_rows.empty() ? "" : ",\n    ", to_string(variants[i]), n, k, t[i].median * 1e3);
        json_rows += row;
      }
    }
  const bench::ratio_summary s = bench::summarise(ratios), sp = bench::summarise(paired);
  std::printf("\nautomatic / best over %zu points: geometric mean %.3f, worst %.3f (ratio of medians)\n", ratios.size(),
              s.geomean, s.worst);
  std::printf("automatic / best over %zu points: geometric mean %.3f, worst %.3f (median of per-round ratios)\n",
              paired.size(), sp.geomean, sp.worst);
  if (json != nullptr) {
    std::FILE* f = std::fopen(json, "w");
    if (f == nullptr) {
      std::fprintf(stderr, "convkit_sweep: cannot write %s\n", json);
      return 1;
    }
    std::fprintf(f, "{\n  \"context\": {\"direct instruction set\": \"%s\"},\n  \"benchmarks\": [\n    %s\n  ]\n}\n",
                 cpu::to_string(direct::instruction_set()), json_rows.c_str());
    std::fclose(f);
  }
  return 0;
}
