// FFTW for the fft backend: float -> fftwf_*, double -> fftw_* (written once), RAII plans, the one
// mutex, and the cache of plans that one-shot conv2d calls share.
//
// Thread safety. FFTW's planner, plan destruction, wisdom and thread set-up share global state and
// are not thread-safe; its execute functions are. So every FFTW call other than execute happens
// while fftw_mutex() is held, plans are immutable once made and shared through shared_ptr, and
// executors run them with the new-array execute functions (fftw_execute_dft_r2c/c2r) on their own
// buffers, so one plan serves any number of threads at once. Planning cannot happen outside the
// lock (the planner itself is the shared state), so the cache looks up and plans under one lock.
//
// Buffers. Every plan is in-place (the reals of a row padded to 2 * (N_c / 2 + 1), see
// fft_sizes.hpp) and made on 64-byte aligned scratch memory, so every buffer it later runs on must
// start on a 64-byte boundary too (new-array execution requires the planner's alignment): callers
// that carve several buffers out of one array round each buffer's stride up to 64 bytes.
#pragma once

#include "../version.hpp"

#include <fftw3.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../view.hpp"
#include "fft_sizes.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// The one lock around every FFTW call except execute.
inline std::mutex& fftw_mutex() noexcept {
  static std::mutex m;
  return m;
}

template <class T>
struct fftw_traits;

// One definition for both precisions: PREFIX is fftwf_ or fftw_.
#define CONVKIT_FFTW_TRAITS(T, PREFIX)                                                                    \
  template <>                                                                                             \
  struct fftw_traits<T> {                                                                                 \
    using plan_type = PREFIX##plan;                                                                       \
    using complex_type = PREFIX##complex;                                                                 \
    static constexpr const char* wisdom_tag = #PREFIX "wisdom";                                           \
    static plan_type plan_r2c(int rows, int cols, T* in, complex_type* out, unsigned flags) {             \
      return PREFIX##plan_dft_r2c_2d(rows, cols, in, out, flags);                                         \
    }                                                                                                     \
    static plan_type plan_c2r(int rows, int cols, complex_type* in, T* out, unsigned flags) {             \
      return PREFIX##plan_dft_c2r_2d(rows, cols, in, out, flags);                                         \
    }                                                                                                     \
    static void r2c(plan_type p, T* in, complex_type* out) { PREFIX##execute_dft_r2c(p, in, out); }       \
    static void c2r(plan_type p, complex_type* in, T* out) { PREFIX##execute_dft_c2r(p, in, out); }       \
    static void destroy(plan_type p) { PREFIX##destroy_plan(p); }                                         \
    static int init_threads() { return PREFIX##init_threads(); }                                          \
    static void plan_with_threads(int n) { PREFIX##plan_with_nthreads(n); }                               \
    static void export_wisdom(void (*put)(char, void*), void* sink) { PREFIX##export_wisdom(put, sink); } \
    static int import_wisdom(const char* text) { return PREFIX##import_wisdom_from_string(text); }        \
    static void forget_wisdom() { PREFIX##forget_wisdom(); }                                              \
  };
CONVKIT_FFTW_TRAITS(float, fftwf_)
CONVKIT_FFTW_TRAITS(double, fftw_)
#undef CONVKIT_FFTW_TRAITS

inline unsigned fftw_flags(fft_rigour r) noexcept {
  switch (r) {
    case fft_rigour::estimate: return FFTW_ESTIMATE;
    case fft_rigour::measure: return FFTW_MEASURE;
    case fft_rigour::patient: return FFTW_PATIENT;
  }
  return FFTW_ESTIMATE;
}

/// Throws convkit::error unless FFTW's int sizes hold the transform.
inline void check_fftw_size(const fft::spectrum_layout& layout) {
  if (layout.rows > index_t(INT32_MAX) || layout.cols > index_t(INT32_MAX))
    throw error("fft: transform size " + std::to_string(layout.rows) + "x" + std::to_string(layout.cols) +
                " exceeds FFTW's int sizes");
}

/// FFTW plans made by this program so far (every precision); tests read it to prove plan reuse.
inline std::atomic<long long>& fftw_plans_made() noexcept {
  static std::atomic<long long> n{0};
  return n;
}

/// An in-place r2c / c2r pair for one transform size and thread count; immutable, shareable.
template <class T>
class fftw_plan_pair {
  using traits = fftw_traits<T>;

 public:
  using complex_type = typename traits::complex_type;

  /// Plans under fftw_mutex(), which the caller holds. Throws convkit::error if FFTW declines
  /// (flags with FFTW_WISDOM_ONLY and no wisdom for this size).
  fftw_plan_pair(fft::spectrum_layout layout, int threads, unsigned flags) : layout_(layout) {
    static const bool threads_ready = traits::init_threads() != 0;
    traits::plan_with_threads(threads_ready ? threads : 1);
    // FFTW_MEASURE overwrites the arrays it plans on: plan on scratch memory of the right alignment.
    const auto scratch = aligned_zeros<T>(layout.real_count(), "FFT planning buffer");
    T* real = scratch.get();
    auto* spectrum = reinterpret_cast<complex_type*>(real);
    const int rows = static_cast<int>(layout.rows), cols = static_cast<int>(layout.cols);
    forward_ = traits::plan_r2c(rows, cols, real, spectrum, flags);
    inverse_ = traits::plan_c2r(rows, cols, spectrum, real, flags);
    fftw_plans_made() += (forward_ != nullptr) + (inverse_ != nullptr);
    if (forward_ == nullptr || inverse_ == nullptr) {
      release();
      throw error("fft: FFTW made no plan for " + std::to_string(rows) + "x" + std::to_string(cols) +
                  " (no wisdom for it while planning from wisdom only?)");
    }
  }
  ~fftw_plan_pair() {
    std::lock_guard<std::mutex> lock(fftw_mutex());
    release();
  }
  fftw_plan_pair(const fftw_plan_pair&) = delete;
  fftw_plan_pair& operator=(const fftw_plan_pair&) = delete;

  const fft::spectrum_layout& layout() const noexcept { return layout_; }
  /// In place: the reals of `buffer` (layout().real_count() elements, 64-byte aligned) -> half spectrum.
  void forward(T* buffer) const noexcept { traits::r2c(forward_, buffer, reinterpret_cast<complex_type*>(buffer)); }
  /// In place: half spectrum -> reals, unnormalised (scaled by rows * cols).
  void inverse(T* buffer) const noexcept { traits::c2r(inverse_, reinterpret_cast<complex_type*>(buffer), buffer); }

 private:
  void release() noexcept {
    if (forward_ != nullptr) traits::destroy(forward_);
    if (inverse_ != nullptr) traits::destroy(inverse_);
    forward_ = inverse_ = nullptr;
  }
  fft::spectrum_layout layout_;
  typename traits::plan_type forward_ = nullptr, inverse_ = nullptr;
};

/// Plans shared by every conv2d call: keyed by transform size, precision (the template), threads
/// and planner flags. Holds the most recently used `capacity` pairs; executors keep theirs alive.
template <class T>
std::shared_ptr<const fftw_plan_pair<T>> fftw_cached_plans(fft::spectrum_layout layout, int threads, unsigned flags) {
  struct entry {
    index_t rows, cols;
    int threads;
    unsigned flags;
    std::uint64_t last_use;
    std::shared_ptr<const fftw_plan_pair<T>> plans;
  };
  constexpr std::size_t capacity = 64;
  std::mutex& mutex = fftw_mutex();  // constructed before the cache, so destroyed after it
  static std::vector<entry> cache;   // guarded by fftw_mutex()
  static std::uint64_t clock = 0;
  // Dropping the last reference to a pair destroys its plans, which takes fftw_mutex(): an evicted
  // pair is released here, after the lock below is.
  std::shared_ptr<const fftw_plan_pair<T>> evicted;
  std::lock_guard<std::mutex> lock(mutex);
  ++clock;
  for (entry& e : cache)
    if (e.rows == layout.rows && e.cols == layout.cols && e.threads == threads && e.flags == flags) {
      e.last_use = clock;
      return e.plans;
    }
  auto made = std::make_shared<const fftw_plan_pair<T>>(layout, threads, flags);
  entry fresh{layout.rows, layout.cols, threads, flags, clock, made};
  if (cache.size() < capacity) {
    cache.push_back(std::move(fresh));
  } else {
    auto oldest = cache.begin();
    for (auto it = cache.begin(); it != cache.end(); ++it)
      if (it->last_use < oldest->last_use) oldest = it;
    evicted = std::move(oldest->plans);
    *oldest = std::move(fresh);
  }
  return made;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
