// What a backend's calibration is given and what it follows. A backend measures its cost model's
// constants with a pure function (measure_<backend>(calibration&) -> its costs struct), timing
// problems it names with timed_problem on its own executors; measure_plausibly() runs that function,
// checks each constant against its plausible range (cost_models.hpp) and the backend's rules
// between constants, measures again where one fails, and keeps the previous (else built-in) value
// of a constant that fails twice, reporting it: a machine too busy to measure leaves no garbage.
// Times are medians of repeated runs (a warm-up run first), so that this machine's 10-40% drift
// between runs moves them less.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "../profile.hpp"
#include "../tuning.hpp"
#include "backend.hpp"
#include "problem.hpp"

CONVKIT_NAMESPACE_BEGIN

/// A constant a calibration measured outside what is plausible, twice, and did not keep.
struct rejected_constant {
  std::string name;
  double first, second;  ///< the two measurements
  double kept;           ///< the value kept instead
  bool kept_previous;    ///< kept from the profile the calibration started from (else built in)
};

namespace detail {

/// A problem a calibration times, by named fields: N images of C channels on H x W planes, K filters
/// of C/groups x R x S taps, padded by `pad` on all four sides, border zero.
struct timed_problem {
  index_t n = 1, c = 1, k = 1, h = 1, w = 1, r = 1, s = 1, pad = 0;
  int stride = 1, groups = 1;
  bool packed = false;  ///< rows contiguous, as in an NCHW array (layers)
  algorithm algo = algorithm::direct;
  int threads = 1;
  tuning tune;

  /// One size x size image.
  static timed_problem image(index_t size) {
    timed_problem p;
    p.h = p.w = size;
    return p;
  }
  /// A layer of `images` x `channels` planes and `filters` filters (planes 1 x 1 until planes()).
  static timed_problem layer(index_t images, index_t channels, index_t filters) {
    timed_problem p;
    p.n = images;
    p.c = channels;
    p.k = filters;
    p.packed = true;
    return p;
  }
  timed_problem& planes(index_t size) { return h = w = size, *this; }
  /// A size x size kernel padded by (size - 1) / 2 ('same' for odd sizes).
  timed_problem& kernel(index_t size) { return r = s = size, pad = (size - 1) / 2, *this; }
  timed_problem& padding(index_t p) { return pad = p, *this; }
  timed_problem& grouped(int g) { return groups = g, *this; }
  timed_problem& on(algorithm a, int thread_count) { return algo = a, threads = thread_count, *this; }
  timed_problem& with(const tuning& t) { return tune = t, *this; }

  /// The validated problem (made for a plan: conv_problem::amortised).
  conv_problem make() const {
    problem_request q;
    q.n = n;
    q.c = c;
    q.k = k;
    q.groups = groups;
    q.weights_c = c / groups;
    for (axis_request* a : {&q.rows, &q.cols}) {
      a->names = &timed_axes;
      a->stride = stride;
      a->pad_before = a->pad_after = pad;
    }
    q.rows.in = h;
    q.cols.in = w;
    q.rows.kernel = r;
    q.cols.kernel = s;
    q.packed_input = packed;
    q.algo = algo;
    q.threads = threads;
    q.tune = &tune;
    conv_problem p = make_problem(q);
    p.amortised = true;
    return p;
  }

 private:
  static constexpr axis_names timed_axes{"rows", "rows", "kernel", "H", "R", "2 * pad"};
};

class calibration {
 public:
  calibration(bool quick, int threads, std::function<void(const std::string&)> progress)
      : quick_(quick), threads_(std::max(threads, 1)), progress_(std::move(progress)) {}

  bool quick() const noexcept { return quick_; }
  /// The thread count measured besides 1.
  int threads() const noexcept { return threads_; }

  /// Reports one step of the calibration.
  void step(const std::string& what) {
    if (progress_) progress_(what);
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
    std::vector<timed> runs;
    for (const conv_problem& p : problems) runs.emplace_back(p, kernel);
    double round = 0;  // warm-up: pages, caches, FFTW's first executes
    for (timed& r : runs) round += r.once();
    const double target = (quick_ ? 0.02 : 0.4) * share;
    const int reps = std::clamp(int(target * double(runs.size()) / std::max(round, 1e-6)), 3, quick_ ? 15 : 101);
    for (int i = 0; i < reps; ++i)
      for (timed& r : runs) r.times.push_back(r.once());
    std::vector<double> medians;
    for (timed& r : runs) medians.push_back(median(r.times));
    return medians;
  }

  /// The constants measured implausible twice, and what was kept instead.
  const std::vector<rejected_constant>& rejected() const noexcept { return rejected_; }
  void reject(rejected_constant r) { rejected_.push_back(std::move(r)); }

  static double median(std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
    return v[v.size() / 2];
  }

 private:
  // One problem being timed: its data, executor and times.
  struct timed {
    std::vector<float> in, out, weights;
    std::unique_ptr<executor<float>> e;
    planes<const float> from{};
    planes<float> to{};
    std::vector<double> times;

    timed(const conv_problem& p, const float* kernel) {
      const index_t in_plane = p.rows.in * p.cols.in, out_plane = p.rows.out * p.cols.out;
      in.resize(std::size_t(p.n * p.c * in_plane));
      out.resize(std::size_t(p.n * p.k * out_plane));
      weights.resize(std::size_t(p.k * p.c_per_group() * p.rows.kernel * p.cols.kernel));
      for (std::size_t j = 0; j < in.size(); ++j) in[j] = float((j * 7919) % 23) / 23.0f - 0.5f;
      for (std::size_t j = 0; j < weights.size(); ++j)
        weights[j] = kernel != nullptr ? kernel[j] : float((j * 104729) % 19) / 19.0f - 0.5f;
      e = find_backend(p.algo).factory<float>()(p, weights.data(), nullptr);
      from = {in.data(), p.c * in_plane, in_plane, p.cols.in};
      to = {out.data(), p.k * out_plane, out_plane, p.cols.out};
    }
    double once() {
      const auto t0 = std::chrono::steady_clock::now();
      e->execute(from, to);
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  };

  bool quick_;
  int threads_;
  std::function<void(const std::string&)> progress_;
  std::vector<rejected_constant> rejected_;
};

/// The constants of `costs` in their visit order.
template <class Costs>
std::vector<const constant*> constants_of(const Costs& costs) {
  std::vector<const constant*> all;
  Costs::visit(costs, [&](const std::string&, const constant& c) { all.push_back(&c); });
  return all;
}

/// Which constants of `m` are implausible: outside their range, or failing one of the backend's
/// rules between constants (`breaks_rule(m)` lists those).
template <class Costs, class Rules>
std::vector<bool> implausible(const Costs& m, Rules&& breaks_rule) {
  const std::vector<const constant*> all = constants_of(m);
  const std::vector<const constant*> broken = breaks_rule(m);
  std::vector<bool> bad(all.size());
  for (std::size_t i = 0; i < all.size(); ++i)
    bad[i] = !all[i]->plausible() || std::find(broken.begin(), broken.end(), all[i]) != broken.end();
  return bad;
}

/// A backend's costs as `measure()` gives them, each implausible constant (see implausible()) measured
/// again, and kept from `previous` (where it was measured there, else built in) if that fails too;
/// a constant the merged set still finds implausible is built in. Every constant not kept is reported
/// to `c`.
template <class Costs, class Measure, class Rules>
Costs measure_plausibly(calibration& c, const Costs& previous, Measure&& measure, Rules&& breaks_rule) {
  Costs result = measure();
  const std::vector<bool> bad = implausible(result, breaks_rule);
  if (std::find(bad.begin(), bad.end(), true) == bad.end()) return result;
  c.step(std::string(Costs::prefix) + ": implausible values (a busy machine?): measuring again");
  const Costs again = measure();
  const std::vector<bool> bad_again = implausible(again, breaks_rule);
  const std::vector<const constant*> second = constants_of(again), before = constants_of(previous);
  std::size_t i = 0;
  Costs::visit(result, [&](const std::string& name, constant& kept) {
    const std::size_t at = i++;
    if (!bad[at]) return;
    if (!bad_again[at]) {
      kept = *second[at];
      return;
    }
    const double first = kept.value();
    const bool from_previous = before[at]->measured() && before[at]->plausible();
    if (from_previous)
      kept = *before[at];
    else
      kept.forget();
    c.reject({std::string(Costs::prefix) + "." + name, first, second[at]->value(), kept.value(), from_previous});
  });
  // Constants taken from different measurements may break a rule between them (one thread's rate
  // from the second run, all threads' from the first): those fall back to their built-in values,
  // which no rule compares, until none is left.
  for (std::vector<bool> still = implausible(result, breaks_rule);
       std::find(still.begin(), still.end(), true) != still.end(); still = implausible(result, breaks_rule)) {
    i = 0;
    Costs::visit(result, [&](const std::string& name, constant& kept) {
      const std::size_t at = i++;
      if (!still[at]) return;
      const double merged = kept.value();
      kept.forget();
      c.reject({std::string(Costs::prefix) + "." + name, merged, second[at]->value(), kept.value(), false});
    });
  }
  return result;
}

/// A backend's calibration: measures its constants into `into`, keeping `previous`'s where a
/// measurement is implausible twice (measure_plausibly).
using calibrate_function = void (*)(calibration&, cost_profile& into, const cost_profile& previous);

/// The calibrations in this program, indexed by algorithm. Each backend's is in its own header
/// (detail/<backend>_calibration.hpp), which calibrate.hpp includes and which registers it: a program
/// that never calibrates compiles none of the measurements.
inline std::array<calibrate_function, std::size(enum_table<algorithm>::entries)>& calibration_table() noexcept {
  static std::array<calibrate_function, std::size(enum_table<algorithm>::entries)> table{};
  return table;
}

/// Called (once per backend) from the initialiser of an inline variable in its calibration header.
inline bool register_calibration(algorithm a, calibrate_function f) {
  calibration_table()[static_cast<std::size_t>(a)] = f;
  return true;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
