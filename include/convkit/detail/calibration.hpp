// What a backend's calibrate() is given: the profile it writes its measured constants into, how
// long to spend, and a way to time one problem on its own executor. Times are medians of repeated
// runs (a warm-up run first), so that this machine's 10-40% drift between runs moves them less.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../profile.hpp"
#include "../tuning.hpp"
#include "backend.hpp"
#include "problem.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

class calibration {
 public:
  calibration(cost_profile& profile, bool quick, int threads, std::function<void(const std::string&)> progress)
      : profile_(profile), quick_(quick), threads_(std::max(threads, 1)), progress_(std::move(progress)) {}

  cost_profile& profile() noexcept { return profile_; }
  bool quick() const noexcept { return quick_; }
  /// The thread count measured besides 1.
  int threads() const noexcept { return threads_; }

  /// Reports one step of the calibration.
  void step(const std::string& what) {
    if (progress_) progress_(what);
  }

  /// Records a measured constant.
  void set(const std::string& name, double value) { profile_.set_value(name, value); }

  /// A float problem of N images of C channels, K filters of C/groups x R x S taps on H x W planes,
  /// padded by `pad` on all four sides, border zero.
  static conv_problem problem(index_t n, index_t c, index_t k, index_t h, index_t w, index_t r, index_t s, index_t pad,
                              int stride, algorithm a, int threads, const tuning& t = {}, bool packed = true,
                              int groups = 1) {
    problem_request q;
    q.n = n;
    q.c = c;
    q.k = k;
    q.groups = groups;
    q.weights_c = c / groups;
    q.rows = {h, r, stride, 1, false, output::valid, pad, pad, "rows", "input rows", "kernel rows", "H", "R", "pad"};
    q.cols = {w, s, stride, 1, false, output::valid, pad, pad, "cols", "input cols", "kernel cols", "W", "S", "pad"};
    q.packed_input = packed;
    q.algo = a;
    q.threads = threads;
    q.tune = &t;
    conv_problem p = make_problem(q);
    p.amortised = true;
    return p;
  }

  /// The grouped layer the backends measure their grouped-layer scales on: 2 images of 64 -> 64
  /// channels in 16 groups of 4 (as ResNeXt's 32x4d blocks group them), 3 x 3, 32 x 32, padded by 1.
  static conv_problem grouped_layer(algorithm a, int threads, const tuning& t = {}) {
    return problem(2, 64, 64, 32, 32, 3, 3, 1, 1, a, threads, t, true, 16);
  }

  /// Median seconds of one execute of problem p (p.algo names the backend) on random float data (and
  /// `kernel`'s weights where given), the executor made outside the timing.
  double seconds(const conv_problem& p, const float* kernel = nullptr) {
    return seconds(std::vector<conv_problem>{p}, kernel)[0];
  }

  /// The median seconds of each problem's execute, timed in alternation (A B A B ...) so that the
  /// machine's drift (a neighbour taking the second core for a while) moves them alike: what is
  /// compared between them, e.g. one thread against all, stays right when the machine changes.
  /// `share` scales the time spent (for callers that time the same problems again later).
  std::vector<double> seconds(const std::vector<conv_problem>& problems, const float* kernel = nullptr,
                              double share = 1.0) {
    struct timed {
      std::vector<float> in, out, weights;
      std::unique_ptr<executor<float>> e;
      planes<const float> from{};
      planes<float> to{};
      std::vector<double> t;
    };
    std::vector<timed> runs(problems.size());
    for (std::size_t i = 0; i < problems.size(); ++i) {
      const conv_problem& p = problems[i];
      timed& r = runs[i];
      const index_t in_plane = p.rows.in * p.cols.in, out_plane = p.rows.out * p.cols.out;
      r.in.resize(std::size_t(p.n * p.c * in_plane));
      r.out.resize(std::size_t(p.n * p.k * out_plane));
      r.weights.resize(std::size_t(p.k * p.c_per_group() * p.rows.kernel * p.cols.kernel));
      for (std::size_t j = 0; j < r.in.size(); ++j) r.in[j] = float((j * 7919) % 23) / 23.0f - 0.5f;
      for (std::size_t j = 0; j < r.weights.size(); ++j)
        r.weights[j] = kernel != nullptr ? kernel[j] : float((j * 104729) % 19) / 19.0f - 0.5f;
      r.e = find_backend(p.algo).factory<float>()(p, r.weights.data(), nullptr);
      r.from = {r.in.data(), p.c * in_plane, in_plane, p.cols.in};
      r.to = {r.out.data(), p.k * out_plane, out_plane, p.cols.out};
    }
    using clock = std::chrono::steady_clock;
    const auto once = [](timed& r) {
      const auto t0 = clock::now();
      r.e->execute(r.from, r.to);
      return std::chrono::duration<double>(clock::now() - t0).count();
    };
    double round = 0;  // warm-up: pages, caches, FFTW's first executes
    for (timed& r : runs) round += once(r);
    const double target = (quick_ ? 0.02 : 0.4) * share;
    const int reps = std::clamp(int(target * double(runs.size()) / std::max(round, 1e-6)), 3, quick_ ? 15 : 101);
    for (int i = 0; i < reps; ++i)
      for (timed& r : runs) r.t.push_back(once(r));
    std::vector<double> medians;
    for (timed& r : runs) {
      std::nth_element(r.t.begin(), r.t.begin() + reps / 2, r.t.end());
      medians.push_back(r.t[std::size_t(reps / 2)]);
    }
    return medians;
  }

 private:
  cost_profile& profile_;
  bool quick_;
  int threads_;
  std::function<void(const std::string&)> progress_;
};

/// A measured constant of `profile`, or `fallback` where it has none.
inline double profile_value(const cost_profile& profile, const std::string& name, double fallback) {
  const std::optional<double> v = profile.value(name);
  return v ? *v : fallback;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
