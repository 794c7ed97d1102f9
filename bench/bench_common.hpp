// Shared by convkit's benchmark binaries: a counting allocator (allocations per call, which the
// blog post convkit grew out of reported), random images, a summary table built from Google
// Benchmark's median runs, and interleaved timing (A B C A B C ...) for comparisons that must not
// be skewed by this machine's drift between runs.
#pragma once

#include <convkit/options.hpp>
#include <convkit/view.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <new>
#include <random>
#include <string>
#include <vector>

namespace convkit::bench {

/// Heap allocations made by this program (the binary replaces the global operator new below).
inline std::atomic<long long> alloc_count{0}, alloc_bytes{0};

/// Counts the allocations made while it is alive, reported per iteration as benchmark counters.
class count_allocations {
 public:
  explicit count_allocations(benchmark::State& s) : state_(s), n0_(alloc_count.load()), b0_(alloc_bytes.load()) {}
  ~count_allocations() {
    const double it = double(state_.iterations() > 0 ? state_.iterations() : 1);
    state_.counters["allocs"] = double(alloc_count.load() - n0_) / it;
    state_.counters["alloc_bytes"] = double(alloc_bytes.load() - b0_) / it;
  }

 private:
  benchmark::State& state_;
  long long n0_, b0_;
};

inline array2d<float> random_image(index_t rows, index_t cols, unsigned seed) {
  array2d<float> a(rows, cols);
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (index_t i = 0; i < a.size(); ++i) a.data()[i] = d(g);
  return a;
}

/// The seed workload's options: 'valid' cross-correlation, which is what the post's naive loop computes.
inline options valid_correlation(algorithm a, int threads = 0) {
  options o;
  o.mode = output::valid;
  o.correlate = true;
  o.algo = a;
  o.threads = threads;
  return o;
}

/// Random n x n images (seed 1) and k x k kernels (seed 2), made once per size and shared by every
/// benchmark of a binary.
inline const array2d<float>& image(index_t n) {
  static std::map<index_t, array2d<float>> cache;
  auto it = cache.find(n);
  if (it == cache.end()) it = cache.emplace(n, random_image(n, n, 1)).first;
  return it->second;
}
inline const array2d<float>& kernel(index_t k) {
  static std::map<index_t, array2d<float>> cache;
  auto it = cache.find(k);
  if (it == cache.end()) it = cache.emplace(k, random_image(k, k, 2)).first;
  return it->second;
}

/// The CPU's model name ("model name" of /proc/cpuinfo, which lscpu shows).
inline std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      std::string m = colon == std::string::npos ? line : line.substr(colon + 1);
      m.erase(0, m.find_first_not_of(' '));
      return m;
    }
  return "unknown";
}

/// What a benchmark measures, for the summary table.
struct row_info {
  std::string workload, method, note;
  int threads;
  double flops;          ///< useful floating-point operations per call (2 per multiply-add of a direct evaluation)
  std::string baseline;  ///< name of the benchmark this one's speed-up is relative to ("" for none)
};

inline std::map<std::string, row_info>& rows() {
  static std::map<std::string, row_info> r;
  return r;
}

/// Console output as usual, plus a summary table of the median runs at the end.
class summary_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      if (!median && !single) continue;
      if (r.error_occurred) continue;
      result res;
      res.seconds = r.GetAdjustedRealTime() * unit_seconds(r.time_unit);
      const auto get = [&](const char* k) {
        auto it = r.counters.find(k);
        return it == r.counters.end() ? 0.0 : double(it->second);
      };
      res.allocs = get("allocs");
      res.bytes = get("alloc_bytes");
      results_[r.run_name.function_name + (r.run_name.args.empty() ? "" : "/" + r.run_name.args)] = res;
    }
  }

  /// One line per row, the workloads in size order (then by name).
  void print_summary() const {
    std::printf("\n%-12s %-42s %7s %10s %7s %11s %9s %8s\n", "workload", "method", "threads", "median", "allocs",
                "alloc bytes", "speed-up", "GFLOP/s");
    std::vector<std::pair<std::string, row_info>> ordered(rows().begin(), rows().end());
    const auto size = [](const std::string& workload) { return std::atof(workload.c_str()); };
    std::stable_sort(ordered.begin(), ordered.end(),
                     [&](const auto& a, const auto& b) { return size(a.second.workload) < size(b.second.workload); });
    for (const auto& [name, info] : ordered) {
      auto it = results_.find(name);
      if (it == results_.end()) continue;
      const result& res = it->second;
      std::string speedup = "";
      auto base = results_.find(info.baseline);
      if (base != results_.end()) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1fx", base->second.seconds / res.seconds);
        speedup = buf;
      }
      std::printf("%-12s %-42s %7d %10s %7.0f %11s %9s %8.1f%s\n", info.workload.c_str(), info.method.c_str(),
                  info.threads, format_time(res.seconds).c_str(), res.allocs, format_bytes(res.bytes).c_str(),
                  speedup.c_str(), info.flops / res.seconds / 1e9, info.note.empty() ? "" : ("  " + info.note).c_str());
    }
  }

  /// Adds (or replaces) the result of a benchmark measured outside Google Benchmark's runs.
  void add(const std::string& name, double seconds) { results_[name] = {seconds, 0, 0}; }
  double seconds(const std::string& name) const {
    auto it = results_.find(name);
    return it == results_.end() ? 0 : it->second.seconds;
  }

 private:
  struct result {
    double seconds = 0, allocs = 0, bytes = 0;
  };
  static double unit_seconds(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kNanosecond: return 1e-9;
      case benchmark::kMicrosecond: return 1e-6;
      case benchmark::kMillisecond: return 1e-3;
      default: return 1.0;
    }
  }
  static std::string format_time(double s) {
    char buf[32];
    if (s >= 1)
      std::snprintf(buf, sizeof buf, "%.2f s", s);
    else if (s >= 1e-3)
      std::snprintf(buf, sizeof buf, "%.2f ms", s * 1e3);
    else
      std::snprintf(buf, sizeof buf, "%.1f us", s * 1e6);
    return buf;
  }
  static std::string format_bytes(double b) {
    char buf[32];
    if (b >= 1 << 20)
      std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1 << 20));
    else if (b >= 1 << 10)
      std::snprintf(buf, sizeof buf, "%.1f KiB", b / (1 << 10));
    else
      std::snprintf(buf, sizeof buf, "%.0f B", b);
    return buf;
  }
  std::map<std::string, result> results_;
};

/// Median and spread (the fastest and slowest run) of one variant's runs.
struct timing_summary {
  double median = 0, fastest = 0, slowest = 0;
  std::vector<double> rounds;  ///< seconds, one per round, in the order the rounds ran
};

/// Times `variants` interleaved: each round runs every variant once in turn, starting one later each
/// round (A B C, B C A, C A B, ...: no variant always follows the same one, whose caches it inherits),
/// after one untimed warm-up round, for at least `rounds` rounds and until `min_seconds` have passed
/// (at most 100 * rounds: short variants get many more samples, whose median their noise moves less),
/// so that drift over time reaches every variant alike.
inline std::vector<timing_summary> interleaved(const std::vector<std::function<void()>>& variants, int rounds,
                                               double min_seconds = 0) {
  using clock = std::chrono::steady_clock;
  std::vector<std::vector<double>> runs(variants.size());
  for (const auto& v : variants) v();
  const auto start = clock::now();
  for (int r = 0; r < 100 * rounds; ++r) {
    if (r >= rounds && std::chrono::duration<double>(clock::now() - start).count() >= min_seconds) break;
    for (std::size_t j = 0; j < variants.size(); ++j) {
      const std::size_t i = (j + std::size_t(r)) % variants.size();  // each round starts one later
      const auto t0 = clock::now();
      variants[i]();
      runs[i].push_back(std::chrono::duration<double>(clock::now() - t0).count());
    }
  }
  std::vector<timing_summary> out;
  for (auto& t : runs) {
    std::vector<double> sorted = t;
    std::sort(sorted.begin(), sorted.end());
    out.push_back({sorted[sorted.size() / 2], sorted.front(), sorted.back(), std::move(t)});
  }
  return out;
}

/// automatic's time (the last of `t`, from interleaved()) over the fastest other variant's (by
/// median), two ways: the ratio of the two medians, and the median of the per-round ratios, each
/// round's automatic call over the same round's call of that variant. The second is the steadier:
/// what drifts over seconds here (a neighbour holding the second vCPU) reaches both calls of a round
/// alike, while two medians of separate samples can fall on different sides of it.
struct automatic_ratio {
  double of_medians = 1, paired = 1;
  std::size_t best = 0;  ///< which variant was fastest
};
inline automatic_ratio automatic_over_best(const std::vector<timing_summary>& t) {
  automatic_ratio r;
  for (std::size_t i = 1; i + 1 < t.size(); ++i)
    if (t[i].median < t[r.best].median) r.best = i;
  const timing_summary &a = t.back(), &b = t[r.best];
  r.of_medians = a.median / b.median;
  std::vector<double> per_round;
  for (std::size_t i = 0; i < a.rounds.size() && i < b.rounds.size(); ++i)
    per_round.push_back(a.rounds[i] / b.rounds[i]);
  std::sort(per_round.begin(), per_round.end());
  if (!per_round.empty()) r.paired = per_round[per_round.size() / 2];
  return r;
}

/// Geometric mean and worst of ratios.
struct ratio_summary {
  double geomean = 1, worst = 1;
};
inline ratio_summary summarise(const std::vector<double>& ratios) {
  ratio_summary s;
  if (ratios.empty()) return s;
  double log_sum = 0;
  s.worst = 0;
  for (double r : ratios) {
    log_sum += std::log(r);
    s.worst = std::max(s.worst, r);
  }
  s.geomean = std::exp(log_sum / double(ratios.size()));
  return s;
}

}  // namespace convkit::bench

// Replaceable global allocation functions: count every heap allocation in the benchmark binary.
// (Included by exactly one translation unit per binary.) They pair malloc/aligned_alloc with free,
// which GCC cannot see through.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  convkit::bench::alloc_count.fetch_add(1, std::memory_order_relaxed);
  convkit::bench::alloc_bytes.fetch_add(static_cast<long long>(n), std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void* operator new(std::size_t n, std::align_val_t a) {
  convkit::bench::alloc_count.fetch_add(1, std::memory_order_relaxed);
  convkit::bench::alloc_bytes.fetch_add(static_cast<long long>(n), std::memory_order_relaxed);
  const std::size_t align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
