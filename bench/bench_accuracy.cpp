// bench_accuracy: what the accuracy contract (docs/accuracy.md) costs, and what it buys.
//
// Workloads (float): a faint sky of ~1e-3 with 20 stars (1e4, or 1e6 with --bright 1e6) and a
// 31x31 disk PSF, 'same'; a photograph (examples/data/grace_hopper.pgm, tiled) with the disk and with
// a random 41x41 kernel of both signs; random data in [-1, 1] with random kernels. Variants, one plan
// each, timed interleaved (bench_common.hpp): automatic under the contract (the default), automatic
// with accuracy::normwise, fft by name (normwise) and direct. Per workload: medians with the fastest
// and slowest run, automatic's pick, contract over normwise (median of per-round ratios), and the
// largest error of each variant relative to the contract's bound at each output (<= 1 keeps it),
// with the count of outputs beyond it.
//
//   bench_accuracy [--threads N] [--rounds R] [--size S] [--bright B] [--photo PATH]
#include <convkit/convkit.hpp>
#include <convkit/reference.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace convkit::bench {
namespace {

struct workload {
  std::string name;
  array2d<float> image, kernel;
};

array2d<float> normalised_disk(index_t n) {
  array2d<float> k(n, n);
  const index_t c = n / 2;
  double sum = 0;
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) sum += k(i, j) = float((i - c) * (i - c) + (j - c) * (j - c) <= c * c);
  for (index_t i = 0; i < k.size(); ++i) k.data()[i] = float(k.data()[i] / sum);
  return k;
}

array2d<float> star_field(index_t n, double bright) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> sky(0.5e-3, 1.5e-3);
  array2d<float> a(n, n);
  for (index_t i = 0; i < a.size(); ++i) a.data()[i] = float(sky(rng));
  for (int s = 0; s < 20; ++s) a(index_t(rng() % std::uint32_t(n)), index_t(rng() % std::uint32_t(n))) = float(bright);
  return a;
}

/// A binary PGM (P5, 8-bit) repeated to n x n; empty if it cannot be read.
array2d<float> photograph(const std::string& path, index_t n) {
  std::ifstream f(path, std::ios::binary);
  std::string magic;
  int w = 0, h = 0, max = 0;
  f >> magic >> w >> h >> max;
  f.get();
  if (!f || magic != "P5" || w <= 0 || h <= 0 || max != 255) return {};
  std::vector<unsigned char> px(std::size_t(w) * std::size_t(h));
  f.read(reinterpret_cast<char*>(px.data()), std::streamsize(px.size()));
  if (!f) return {};
  array2d<float> a(n, n);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) a(i, j) = px[std::size_t(i % h) * std::size_t(w) + std::size_t(j % w)];
  return a;
}

/// The largest error relative to the contract's bound (16 gamma_m (|x| * |k|)) and how many outputs
/// exceed it.
struct contract_errors {
  double worst = 0;
  index_t beyond = 0;
};
contract_errors against_contract(const array2d<float>& got, const array2d<double>& want, const array2d<double>& mag,
                                 index_t taps) {
  const double u = std::numeric_limits<float>::epsilon() / 2.0, m = double(taps);
  const double bound = 16.0 * m * u / (1.0 - m * u);
  contract_errors e;
  for (index_t i = 0; i < got.size(); ++i) {
    const double r = std::abs(double(got.data()[i]) - want.data()[i]) / (bound * mag.data()[i] + 1e-300);
    e.worst = std::max(e.worst, r);
    e.beyond += r > 1.0;
  }
  return e;
}

void run(const workload& w, int threads, int rounds) {
  struct variant {
    const char* name;
    algorithm algo;
    convkit::accuracy acc;
  };
  const variant variants[] = {{"automatic", algorithm::automatic, accuracy::automatic},
                              {"automatic normwise", algorithm::automatic, accuracy::normwise},
                              {"fft", algorithm::fft, accuracy::automatic},
                              {"direct", algorithm::direct, accuracy::automatic}};
  options base;
  base.mode = output::same;
  base.threads = threads;
  std::vector<plan<float>> plans;
  std::vector<array2d<float>> outs;
  std::vector<std::function<void()>> calls;
  for (const variant& v : variants) {
    options o = base;
    o.algo = v.algo;
    o.accuracy = v.acc;
    plans.emplace_back(w.image.rows(), w.image.cols(), w.kernel, o);
    outs.emplace_back(w.image.rows(), w.image.cols());
  }
  for (std::size_t i = 0; i < plans.size(); ++i) calls.push_back([&, i] { plans[i].execute(w.image, outs[i]); });
  const std::vector<timing_summary> t = interleaved(calls, rounds, 1.0);
  std::vector<double> ratio;
  for (std::size_t r = 0; r < t[0].rounds.size(); ++r) ratio.push_back(t[0].rounds[r] / t[1].rounds[r]);
  std::sort(ratio.begin(), ratio.end());
  const array2d<double> want = reference::conv2d<float>(w.image, w.kernel, base),
                        mag = reference::conv2d<float>(w.image, w.kernel, base, true);
  std::printf("%s (%lldx%lld * %lldx%lld, same, %d thread%s)\n", w.name.c_str(), (long long)w.image.rows(),
              (long long)w.image.cols(), (long long)w.kernel.rows(), (long long)w.kernel.cols(), threads,
              threads == 1 ? "" : "s");
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const contract_errors e = against_contract(outs[i], want, mag, w.kernel.size());
    std::printf("  %-20s %-7s %8.2f ms [%6.2f - %6.2f]   worst error / contract bound %9.3g, outputs beyond it %lld\n",
                variants[i].name, to_string(plans[i].chosen()), t[i].median * 1e3, t[i].fastest * 1e3,
                t[i].slowest * 1e3, e.worst, (long long)e.beyond);
  }
  std::printf("  automatic under the contract / automatic normwise: %.3f (median of %zu paired rounds)\n\n",
              ratio[ratio.size() / 2], ratio.size());
}

}  // namespace
}  // namespace convkit::bench

int main(int argc, char** argv) {
  using namespace convkit;
  using namespace convkit::bench;
  int threads = 2, rounds = 15;
  index_t size = 1000;
  double bright = 1e4;
  std::string photo = CONVKIT_BENCH_PHOTO;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
    else if (a == "--size")
      size = std::atol(argv[i + 1]);
    else if (a == "--bright")
      bright = std::atof(argv[i + 1]);
    else if (a == "--photo")
      photo = argv[i + 1];
    else {
      std::fprintf(stderr, "bench_accuracy: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  std::printf("bench_accuracy on %s, float, medians of >= %d interleaved rounds [fastest - slowest]\n\n",
              cpu_model_name().c_str(), rounds);
  std::vector<workload> w;
  w.push_back({"star field: sky 1e-3, 20 stars of " + std::to_string(int(bright)) + ", disk PSF",
               star_field(size, bright), normalised_disk(31)});
  const array2d<float> pic = photograph(photo, size), pic2 = photograph(photo, 2 * size);
  if (pic.size() > 0) {
    w.push_back({"photograph, disk", pic, normalised_disk(31)});
    w.push_back({"photograph, random kernel of both signs", pic2, random_image(41, 41, 5)});
  } else {
    std::printf("(no photograph at %s: its rows left out)\n\n", photo.c_str());
  }
  w.push_back({"random data, random kernel", random_image(size, size, 3), random_image(31, 31, 4)});
  w.push_back({"random data, random kernel", random_image(2 * size, 2 * size, 3), random_image(51, 51, 4)});
  for (const workload& x : w) run(x, threads, rounds);
}
