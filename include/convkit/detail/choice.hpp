// How algorithm::automatic decides, cheaply. The decision is made from the problem's shapes, and
// remembered per problem, so the second call of a shape does no planning at all. NaN and Inf are
// looked for only when the backend the shapes point to is one that they would spoil (an FFT
// backend): in the (small) weights when the plan is made, and in the input by that backend itself,
// as it copies each window in (executor::execute_finite), with a fallback backend ready if it meets one.
// choice_rule::measure adds timing: prepared.hpp times the candidates the first time it meets a problem and remembers
// the fastest (here, and where a persistence component is included, in the profile file).
#pragma once

#include "../version.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../profile.hpp"
#include "../view.hpp"
#include "backend.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// True if none of the n values at p is NaN or Inf. Tests bits rather than comparing values, so that
/// code built with -ffast-math (which lets compilers assume NaN never occurs) still gets an answer.
/// NaN and Inf are the values whose magnitude bits exceed the largest finite value's; for a double
/// the high 32 bits alone decide it, so both types test one 32-bit word per value with a signed
/// compare (SSE2 has one), in blocks of fixed length that compilers vectorise at -O2 too (the
/// measured mode's scan of the input and cuFFT's staging read whole images with it).
template <class T>
bool all_finite(const T* p, index_t n) noexcept {
  using bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr std::int32_t largest_finite = sizeof(T) == 4 ? 0x7f7fffff : 0x7fefffff;
  constexpr int high_shift = int(sizeof(T) * 8 - 32);
  constexpr index_t block = 16;
  const auto magnitude = [p](index_t i) {
    bits b;
    std::memcpy(&b, p + i, sizeof b);
    return std::int32_t(std::uint32_t(b >> high_shift) & 0x7fffffffu);
  };
  std::int32_t special = 0;
  index_t i = 0;
  for (; i + block <= n; i += block) {
    std::int32_t in_block = 0;
    for (index_t j = 0; j < block; ++j) in_block |= std::int32_t(magnitude(i + j) > largest_finite);
    special |= in_block;
  }
  for (; i < n; ++i) special |= std::int32_t(magnitude(i) > largest_finite);
  return special == 0;
}

/// Whether a forward transform met NaN or Inf in what it transformed, read off its zero-frequency
/// bin (the first value of an r2c spectrum): that bin depends on every value transformed through
/// additions and multiplications only, and a NaN or Inf entering those never leaves a finite result
/// (x * 0 gives NaN, Inf - Inf gives NaN). A transform whose sum overflows reports itself too, and
/// its spectrum is no good either. One value in place of scanning the whole tile, which cost 2-10%
/// of an FFT call made by automatic.
template <class T>
bool transform_met_nonfinite(const T* spectrum) noexcept {
  return !all_finite(spectrum, 1);
}

template <class T>
bool all_finite(view2d<const T> v) noexcept {
  for (index_t r = 0; r < v.rows(); ++r)
    if (!all_finite(v.row(r), v.cols())) return false;
  return true;
}

/// Calls visit(label, value) for everything about problem p that changes which backends can run it
/// or how fast they are: precision, shapes, paddings, border, threads, finiteness, plan or one-shot,
/// and the settings that steer the backends. The one list behind both keys below.
template <class Visit>
void visit_choice_fields(const conv_problem& p, Visit&& visit) {
  const auto axis = [&](const char* label, const axis_geometry& a) {
    visit(label, a.in);
    for (index_t v : {a.kernel, index_t(a.stride), index_t(a.dilation), a.pad_before, a.out}) visit(",", v);
  };
  const fft_config& f = p.tune.fft;
  const gpu_fft_config& g = p.tune.gpu_fft;
  visit("b", p.element_bytes);
  visit("/n", p.n);
  visit("c", p.c);
  visit("k", p.k);
  visit("g", p.groups);
  axis("/r", p.rows);
  axis("/c", p.cols);
  visit("/border", index_t(p.edge));
  visit("/bias", index_t(p.bias));
  visit("/packed", index_t(p.packed_input));
  visit("/t", index_t(p.threads));
  visit("/finite", index_t(p.finite));
  visit("/plan", index_t(p.amortised));
  visit("/accuracy", index_t(p.componentwise));
  visit(",", index_t(p.one_signed_weights));
  visit(",", index_t(std::lround(4.0 * std::log2(std::max(p.kernel_spread, 0.5)))));
  visit("/fft", index_t(f.planning));
  for (index_t v : {index_t(f.tiles), f.tile_rows, f.tile_cols, f.memory_cap}) visit(",", v);
  visit("/gpu", index_t(g.tiles));
  for (index_t v : {g.tile_rows, g.tile_cols, g.memory_cap}) visit(",", v);
  visit("/im2col", p.tune.im2col_workspace);
  visit(",", index_t(p.tune.single_threaded_blas));
  visit("/isa", index_t(p.tune.instruction_set));
  visit("/separable", index_t(p.tune.separable));
  visit("/rank", index_t(p.kernel_rank));
}

/// visit_choice_fields as numbers: compared in a few nanoseconds, so that remembering decisions costs
/// a one-shot call on a small image next to nothing (building the word below takes a microsecond).
struct choice_fields {
  static constexpr std::size_t count = 40;
  std::array<index_t, count> values{};
  friend bool operator<(const choice_fields& a, const choice_fields& b) noexcept { return a.values < b.values; }
};
inline choice_fields choice_fields_of(const conv_problem& p) {
  choice_fields k;
  std::size_t i = 0;
  visit_choice_fields(p, [&](const char*, index_t v) {
    if (i < choice_fields::count) k.values[i] = v;
    ++i;
  });
  if (i != choice_fields::count) throw std::logic_error("convkit: choice_fields::count is out of date");
  return k;
}

/// visit_choice_fields as one word: the profile's key of a measured choice.
inline std::string choice_key(const conv_problem& p) {
  std::string k;
  visit_choice_fields(p, [&](const char* label, index_t v) { k += label + std::to_string(v); });
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

  std::optional<estimated_choice> estimate(const choice_fields& key, const profile_ptr& profile) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = estimates_.find({key, profile});
    if (it == estimates_.end()) return std::nullopt;
    return it->second;
  }
  void remember(const choice_fields& key, const profile_ptr& profile, estimated_choice c) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (estimates_.size() >= capacity) estimates_.clear();
    estimates_[{key, profile}] = c;
  }

  std::optional<algorithm> measured(const choice_fields& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = measured_.find(key);
    if (it == measured_.end()) return std::nullopt;
    return it->second;
  }
  void remember_measured(const choice_fields& key, algorithm a) {
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
  std::map<std::pair<choice_fields, profile_ptr>, estimated_choice> estimates_;  // holds the profiles it names
  std::map<choice_fields, algorithm> measured_;
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
  resolve_profile(p);
  if (p.algo != algorithm::automatic) return {&find_backend(p.algo), algorithm::automatic};
  const std::shared_ptr<const cost_profile>& profile = p.tune.profile;
  const bool known_nonfinite = !p.finite;  // a non-finite constant border
  p.finite = true;
  const choice_fields key = choice_fields_of(p);
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
