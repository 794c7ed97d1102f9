// How algorithm::automatic decides, cheaply. The decision is made from the problem's shapes, and
// remembered per problem, so the second call of a shape does no planning at all. NaN and Inf are
// looked for only when the backend the shapes point to is one that they would spoil (an FFT
// backend): in the (small) weights when the plan is made, and in the input by that backend itself,
// as it copies each window in (executor::execute_finite), with a fallback backend ready if it meets one.
// choice_rule::measure adds timing: prepared.hpp times the candidates the first time it meets a problem and remembers
// the fastest (here, and in the profile).
#pragma once

#include "../version.hpp"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>

#include "../profile.hpp"
#include "../view.hpp"
#include "backend.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// True if none of the n values at p is NaN or Inf. Tests the exponent bits rather than comparing
/// values, so that code built with -ffast-math (which lets compilers assume NaN never occurs) still
/// gets an answer; written as one reduction the compiler vectorises.
template <class T>
bool all_finite(const T* p, index_t n) noexcept {
  using bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr bits exponent = sizeof(T) == 4 ? bits(0x7f800000u) : bits(0x7ff0000000000000ull);
  bits special = 0;  // all-ones exponents: NaN or Inf
  for (index_t i = 0; i < n; ++i) {
    bits b;
    std::memcpy(&b, p + i, sizeof b);
    special |= bits((b & exponent) == exponent);
  }
  return special == 0;
}

template <class T>
bool all_finite(view2d<const T> v) noexcept {
  for (index_t r = 0; r < v.rows(); ++r)
    if (!all_finite(v.row(r), v.cols())) return false;
  return true;
}

/// Everything about problem p that changes which backends can run it or how fast they are, as one
/// word: the profile's key of a measured choice (precision, shapes, paddings, border, threads,
/// finiteness, plan or one-shot, and the settings that steer the backends).
inline std::string choice_key(const conv_problem& p) {
  const auto axis = [](const axis_geometry& a) {
    return std::to_string(a.in) + "," + std::to_string(a.kernel) + "," + std::to_string(a.stride) + "," +
           std::to_string(a.dilation) + "," + std::to_string(a.pad_before) + "," + std::to_string(a.out);
  };
  const fft_config& f = p.tune.fft;
  const gpu_fft_config& g = p.tune.gpu_fft;
  std::string k = (p.element_bytes == 4 ? "f32" : "f64");
  k += "/n" + std::to_string(p.n) + "c" + std::to_string(p.c) + "k" + std::to_string(p.k) + "g" +
       std::to_string(p.groups);
  k += "/r" + axis(p.rows) + "/c" + axis(p.cols);
  k += std::string("/") + to_string(p.edge) + (p.bias ? "/bias" : "") + (p.packed_input ? "/packed" : "");
  k += "/t" + std::to_string(p.threads) + (p.finite ? "/finite" : "/nonfinite") + (p.amortised ? "/plan" : "/call");
  k += "/fft" + std::to_string(int(f.planning)) + std::to_string(int(f.tiles)) + "," + std::to_string(f.tile_rows) +
       "," + std::to_string(f.tile_cols) + "," + std::to_string(f.memory_cap);
  k += "/gpu" + std::to_string(int(g.tiles)) + "," + std::to_string(g.tile_rows) + "," + std::to_string(g.tile_cols) +
       "," + std::to_string(g.memory_cap);
  k += "/im2col" + std::to_string(p.tune.im2col_workspace) + (p.tune.single_threaded_blas ? "st" : "");
  k += "/isa" + std::to_string(int(p.tune.instruction_set));
  k += "/rank" + std::to_string(p.kernel_rank);
  return k;
}

/// What the estimate decided for one problem key (finiteness left out of it): the backend for finite
/// data, and, where non-finite data would change that, the one for them.
struct estimated_choice {
  algorithm if_finite, if_not_finite;
};

/// Decisions remembered per problem: the estimates (keyed by profile too) and the measured choices.
/// Bounded: when full it forgets everything and starts again. Thread-safe.
class choice_memory {
 public:
  static choice_memory& instance() {
    static choice_memory* m = new choice_memory;  // never destroyed: used until the process ends
    return *m;
  }

  using profile_ptr = std::shared_ptr<const cost_profile>;

  std::optional<estimated_choice> estimate(const std::string& key, const profile_ptr& profile) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = estimates_.find({key, profile});
    if (it == estimates_.end()) return std::nullopt;
    return it->second;
  }
  void remember(const std::string& key, const profile_ptr& profile, estimated_choice c) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (estimates_.size() >= capacity) estimates_.clear();
    estimates_[{key, profile}] = c;
  }

  std::optional<algorithm> measured(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = measured_.find(key);
    if (it == measured_.end()) return std::nullopt;
    return it->second;
  }
  void remember_measured(const std::string& key, algorithm a) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (measured_.size() >= capacity) measured_.clear();
    measured_[key] = a;
  }

  /// Forgets every decision (tests; or after the profile changed).
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    estimates_.clear();
    measured_.clear();
  }

 private:
  static constexpr std::size_t capacity = 4096;
  std::mutex mutex_;
  std::map<std::pair<std::string, profile_ptr>, estimated_choice> estimates_;  // holds the profiles it names
  std::map<std::string, algorithm> measured_;
};

/// True if no element of the n x c planes (rows x cols each) of `in` is NaN or Inf; large inputs
/// are scanned on up to `threads` threads.
template <class T>
bool data_finite(planes<const T> in, index_t n, index_t c, index_t rows, index_t cols, int threads) {
  const index_t lines = n * c * rows;
  std::atomic<bool> finite{true};
  parallel_for(lines, useful_threads(double(lines) * double(cols), threads, 1 << 20), [&](index_t b, index_t e) {
    for (index_t i = b; i < e && finite.load(std::memory_order_relaxed); ++i) {
      const index_t plane = i / rows, r = i % rows;
      if (!all_finite(in.plane(plane / c, plane % c) + r * in.row_stride, cols)) finite.store(false);
    }
  });
  return finite.load();
}

/// What the estimate picked: the backend, and, where NaN or Inf in the input would make another
/// one right, that other one (else algorithm::automatic): the executor checks its input as it
/// reads it (executor::execute_finite) and the fallback runs if it meets one.
struct estimated_backend {
  const backend* chosen;
  algorithm fallback;
};

/// The backend the estimate picks for p (the named one unless p asks for automatic).
/// `weights_finite()` is called, at most once, only when finiteness decides between backends; p.finite
/// is left false only when the weights or the constant border are not finite.
template <class WeightsFinite>
estimated_backend estimate_backend(conv_problem& p, WeightsFinite&& weights_finite) {
  if (p.algo != algorithm::automatic) return {&find_backend(p.algo), algorithm::automatic};
  const std::shared_ptr<const cost_profile> profile = profile_of(p);
  const bool known_nonfinite = !p.finite;  // a non-finite constant border
  p.finite = true;
  const std::string key = choice_key(p);
  choice_memory& memory = choice_memory::instance();
  std::optional<estimated_choice> c = memory.estimate(key, profile);
  if (!c) {
    const algorithm if_finite = cheapest_backend(p, *profile).algo;
    conv_problem spoiled = p;
    spoiled.finite = false;
    algorithm if_not = if_finite;
    if (find_backend(if_finite).cost(spoiled, *profile) == never) if_not = cheapest_backend(spoiled, *profile).algo;
    c = estimated_choice{if_finite, if_not};
    memory.remember(key, profile, *c);
  }
  if (c->if_finite == c->if_not_finite) {
    p.finite = !known_nonfinite;
    return {&find_backend(c->if_finite), algorithm::automatic};
  }
  if (known_nonfinite || !weights_finite()) {
    p.finite = false;
    return {&find_backend(c->if_not_finite), algorithm::automatic};
  }
  return {&find_backend(c->if_finite), c->if_not_finite};
}

}  // namespace detail
CONVKIT_NAMESPACE_END
