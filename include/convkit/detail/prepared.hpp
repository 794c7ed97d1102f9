// The one plan type underneath both front doors: a validated problem, the backend chosen for it,
// and that backend's executor. plan<T> (single images) and layer_plan<T> (layers) are facades over
// it that check their own argument shapes; one-shot conv2d calls make one and run it once.
//
// Choosing (algorithm::automatic): choice_rule::estimate takes the cheapest backend by the cost
// models (choice.hpp: decisions are remembered; where NaN or Inf in the input would change the
// answer, the chosen backend checks its input as it reads it, and a fallback runs if it meets one,
// made the first time it is needed);
// choice_rule::measure times the candidates the first time a problem is met, on the call's data
// (a plan: on synthetic data of its shape), keeps the fastest one's executor, and remembers it per
// problem in memory and, with the profile file component (profile_file.hpp), in the file. Measuring stops once it has
// spent measure_budget times the fastest candidate's time, so a first call costs a bounded multiple of one call.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../profile.hpp"
#include "../view.hpp"
#include "backend.hpp"
#include "choice.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// The kernel in correlation order as a contiguous array: reversed in both axes for a convolution.
template <class T>
array2d<T> correlation_order(view2d<const T> kernel, bool correlate) {
  const index_t kh = kernel.rows(), kw = kernel.cols();
  array2d<T> k(kh, kw);
  for (index_t u = 0; u < kh; ++u)
    for (index_t v = 0; v < kw; ++v) k(u, v) = correlate ? kernel(u, v) : kernel(kh - 1 - u, kw - 1 - v);
  return k;
}

inline std::string shape_str(shape2d s) { return std::to_string(s.rows) + "x" + std::to_string(s.cols); }

/// Measuring stops once the time spent exceeds this many times the fastest candidate's.
inline constexpr double measure_budget = 8.0;

template <class T>
class prepared {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "convkit computes in float or double");

 public:
  prepared() = default;
  /// `weights`: K x C/groups x R x S contiguous values in correlation order; `bias` null or K
  /// values. Both are copied. `in` and `out`: the call's data where known (one-shot calls), used to
  /// scan for NaN and Inf and, with choice_rule::measure, to time the candidates on. Throws
  /// convkit::unavailable if the problem names a backend this program lacks (or one without a device).
  prepared(const conv_problem& p, const T* weights, const T* bias, const planes<const T>* in = nullptr,
           const planes<T>* out = nullptr);

  /// Runs the executor; the caller has checked shapes and aliasing. Where the chosen backend would
  /// spread a NaN or Inf of the input, and meets one, the fallback backend computes the call instead
  /// (made here, the first time: the one allocation an execute can make).
  void run(planes<const T> in, planes<T> out);

  const conv_problem& problem() const noexcept { return problem_; }
  algorithm chosen() const noexcept { return chosen_; }

 private:
  using clock = std::chrono::steady_clock;

  // Candidates: every backend that can serve the problem, cheapest estimate first.
  std::vector<const backend*> measure_candidates() const;
  void use(const backend& b, const T* weights, const T* bias);
  // Makes `fallback` the backend that computes a call whose input the chosen one finds not finite.
  void keep_fallback(algorithm fallback, const T* weights, const T* bias, index_t weight_count);
  void choose_by_measuring(const T* weights, const T* bias, const planes<const T>* in, const planes<T>* out);
  // Times the candidates on the call's data, or on synthetic data of the problem's shape (a plan),
  // keeping the fastest one's executor; stops once it has spent measure_budget times the fastest.
  void time_candidates(const std::vector<const backend*>& candidates, const T* weights, const T* bias,
                       const planes<const T>* in, const planes<T>* out);

  static double seconds_since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

  conv_problem problem_;
  algorithm chosen_ = algorithm::direct;
  std::unique_ptr<executor<T>> executor_;
  algorithm fallback_ = algorithm::automatic;  // none
  std::unique_ptr<executor<T>> fallback_executor_;
  std::vector<T> weights_, bias_;  // copies, only where there is a fallback to make
};

// The members below are defined out of the class, so that they are not inline: in the compiled mode
// (compiled.hpp) translation units declare prepared<float> and prepared<double> extern and compile
// none of them.

template <class T>
prepared<T>::prepared(const conv_problem& p, const T* weights, const T* bias, const planes<const T>* in,
                      const planes<T>* out)
    : problem_(p) {
  resolve_profile(problem_);
  const index_t weight_count = problem_.k * problem_.c_per_group() * problem_.rows.kernel * problem_.cols.kernel;
  const auto weights_finite = [&] { return all_finite(weights, weight_count); };
  if (problem_.algo == algorithm::automatic && problem_.tune.choice == choice_rule::measure) {
    problem_.finite = problem_.finite && weights_finite() &&
                      (in == nullptr ||
                       data_finite(*in, problem_.n, problem_.c, problem_.rows.in, problem_.cols.in, problem_.threads));
    choose_by_measuring(weights, bias, in, out);
    // A plan is measured without its data: where the fastest backend would spread a NaN or Inf it
    // may meet at execute, the backend for non-finite data is kept ready, as the estimate does.
    if (in == nullptr && problem_.finite) {
      conv_problem spoiled = problem_;
      spoiled.finite = false;
      const cost_profile& profile = *problem_.tune.profile;
      if (find_backend(chosen_).cost(spoiled, profile) == never)
        keep_fallback(cheapest_backend(spoiled, profile).algo, weights, bias, weight_count);
    }
    return;
  }
  const estimated_backend e = estimate_backend(problem_, weights_finite);
  chosen_ = e.chosen->algo;
  executor_ = e.chosen->template factory<T>()(problem_, weights, bias);
  if (e.fallback != algorithm::automatic) keep_fallback(e.fallback, weights, bias, weight_count);
}

template <class T>
void prepared<T>::keep_fallback(algorithm fallback, const T* weights, const T* bias, index_t weight_count) {
  fallback_ = fallback;
  weights_.assign(weights, weights + weight_count);  // the fallback is made from copies, should it be needed
  if (bias != nullptr) bias_.assign(bias, bias + problem_.k);
}

template <class T>
void prepared<T>::run(planes<const T> in, planes<T> out) {
  if (!executor_) throw error("plan is empty: it was moved from");
  if (fallback_ == algorithm::automatic) return executor_->execute(in, out);
  if (executor_->execute_finite(in, out)) return;
  if (!fallback_executor_) {
    conv_problem q = problem_;
    q.finite = false;
    fallback_executor_ =
        find_backend(fallback_).template factory<T>()(q, weights_.data(), bias_.empty() ? nullptr : bias_.data());
  }
  fallback_executor_->execute(in, out);
}

template <class T>
std::vector<const backend*> prepared<T>::measure_candidates() const {
  std::vector<std::pair<double, const backend*>> rated;
  for (const backend* b : backend_table())
    if (b != nullptr)
      if (const double c = b->cost(problem_, *problem_.tune.profile); c < never) rated.push_back({c, b});
  std::sort(rated.begin(), rated.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<const backend*> candidates;
  for (const auto& r : rated) candidates.push_back(r.second);
  return candidates;
}

template <class T>
void prepared<T>::use(const backend& b, const T* weights, const T* bias) {
  chosen_ = b.algo;
  executor_ = b.template factory<T>()(problem_, weights, bias);
}

template <class T>
void prepared<T>::choose_by_measuring(const T* weights, const T* bias, const planes<const T>* in,
                                      const planes<T>* out) {
  const cost_profile& profile = *problem_.tune.profile;
  const choice_fields fields = choice_fields_of(problem_);
  std::optional<algorithm> known = choice_memory::instance().measured(fields);
  const std::string key = known ? std::string() : choice_key(problem_);
  if (!known) known = profile.choice(key);
  if (known && backend_table()[std::size_t(*known)] != nullptr) return use(find_backend(*known), weights, bias);
  const std::vector<const backend*> candidates = measure_candidates();
  if (!candidates.empty()) time_candidates(candidates, weights, bias, in, out);
  if (!executor_)  // nothing claims it, or every candidate declined (no device after all): the estimate's answer
    return use(cheapest_backend(problem_, profile), weights, bias);
  choice_memory::instance().remember_measured(fields, chosen_);
  const profile_store& store = registered_profile_store();
  if (problem_.tune.profile_is_active && store.save_choice != nullptr) store.save_choice(key, chosen_);
}

template <class T>
void prepared<T>::time_candidates(const std::vector<const backend*>& candidates, const T* weights, const T* bias,
                                  const planes<const T>* in, const planes<T>* out) {
  array2d<T> own_in, own_out;
  planes<const T> data_in = in != nullptr ? *in : planes<const T>{};
  planes<T> data_out = out != nullptr ? *out : planes<T>{};
  if (in == nullptr) {
    own_in = array2d<T>(problem_.n * problem_.c, problem_.rows.in * problem_.cols.in);
    for (index_t i = 0; i < own_in.size(); ++i) own_in.data()[i] = T((i * 7919) % 17) / T(17) - T(0.5);
    data_in = {own_in.data(), problem_.c * problem_.rows.in * problem_.cols.in, problem_.rows.in * problem_.cols.in,
               problem_.cols.in};
  }
  if (out == nullptr) {
    own_out = array2d<T>(problem_.n * problem_.k, problem_.rows.out * problem_.cols.out);
    data_out = {own_out.data(), problem_.k * problem_.rows.out * problem_.cols.out,
                problem_.rows.out * problem_.cols.out, problem_.cols.out};
  }
  double best = never, spent = 0;
  for (const backend* b : candidates) {
    if (best < never && spent > measure_budget * best) break;
    const auto start = clock::now();
    std::unique_ptr<executor<T>> e;
    try {
      e = b->template factory<T>()(problem_, weights, bias);
    } catch (const unavailable&) {
      continue;
    }
    const auto made = clock::now();
    e->execute(data_in, data_out);  // first run: touches the pages, warms the caches
    double run = seconds_since(made);
    // A short call is timed again, the fastest of a few runs within a millisecond or so.
    for (int i = 0; i < 8 && run < 1e-3; ++i) {
      const auto t0 = clock::now();
      e->execute(data_in, data_out);
      run = std::min(run, seconds_since(t0));
    }
    // One-shot calls make their executor on every call: that counts too.
    const double t = run + (problem_.amortised ? 0.0 : std::chrono::duration<double>(made - start).count());
    spent += seconds_since(start);
    if (t < best) {
      best = t;
      chosen_ = b->algo;
      executor_ = std::move(e);
    }
  }
}

}  // namespace detail
CONVKIT_NAMESPACE_END
