// Threads: how many to use, and a fork-join loop over a range of work items on a persistent pool.
//
// The pool's workers are started once, on first use, and wait on a condition variable between jobs,
// so a parallel call costs a wake-up rather than thread creation and allocates nothing (plans promise
// no allocation per execute). One fork-join runs on the pool at a time: a caller that finds the pool
// busy (another thread's convolution is using it) runs its whole range itself, since the cores are
// taken anyway.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "../types.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// The threads this machine runs at once (at least 1); read once.
inline int hardware_threads() noexcept {
  static const int n = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return n;
}

/// options::threads resolved: 0 means every hardware thread, and so does any count above it (the
/// pool has no more workers, and every thread a plan counts would get its own workspace: 10000
/// asked for on two cores must not allocate 10000 buffers). Never less than 1.
inline int resolve_threads(int requested) noexcept {
  return requested > 0 ? std::min(requested, hardware_threads()) : hardware_threads();
}

/// How many of `threads` threads a job of `work` (seconds, multiply-adds, ...) should use, when a
/// thread pays for itself only with at least `work_each` of it (waking a pool thread costs
/// ~10-20 us; splitting caches costs more for some jobs).
inline int useful_threads(double work, int threads, double work_each) noexcept {
  return static_cast<int>(std::clamp<double>(work / work_each, 1.0, std::max(threads, 1)));
}

class thread_pool {
 public:
  /// The process-wide pool, with one worker per hardware thread beyond the caller's.
  static thread_pool& instance() {
    static thread_pool pool(resolve_threads(0) - 1);
    return pool;
  }

  /// True in a child created by fork() after the pool started: the child has none of its worker
  /// threads, so every fork-join there runs on the caller alone (instead of waiting forever).
  static std::atomic<bool>& forked() noexcept {
    static std::atomic<bool> flag{false};
    return flag;
  }

  ~thread_pool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  int workers() const noexcept { return static_cast<int>(workers_.size()); }

  /// Calls part(p) for every p in [0, parts) on the caller and up to parts - 1 workers; returns false
  /// without calling anything if the pool is busy. The first exception of any part is rethrown.
  template <class Part>
  bool run(index_t parts, Part& part) {
    if (forked().load(std::memory_order_relaxed)) return false;
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = &part;
      call_ = [](void* job, index_t p) { (*static_cast<Part*>(job))(p); };
      parts_ = parts;
      next_.store(1);  // part 0 is the caller's
      running_ = static_cast<int>(std::min<index_t>(parts - 1, workers()));
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    work(0);
    for (index_t p = next_.fetch_add(1); p < parts; p = next_.fetch_add(1)) work(p);
    std::unique_lock<std::mutex> lock(m_);
    done_.wait(lock, [&] { return running_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  explicit thread_pool(int n) {
#if defined(__unix__) || defined(__APPLE__)
    pthread_atfork(nullptr, nullptr, [] { forked().store(true); });
#endif
    workers_.reserve(static_cast<std::size_t>(std::max(n, 0)));
    for (int i = 0; i < n; ++i) workers_.emplace_back([this, i] { loop(i); });
  }

  void work(index_t p) noexcept {
    try {
      call_(job_, p);
    } catch (...) {
      std::lock_guard<std::mutex> lock(m_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void loop(int id) {
    std::uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(m_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        // Only the first `running_` workers of this job take part (the job may have few parts).
        if (id >= std::min<index_t>(parts_ - 1, workers())) continue;
      }
      for (index_t p = next_.fetch_add(1); p < parts_; p = next_.fetch_add(1)) work(p);
      std::lock_guard<std::mutex> lock(m_);
      if (--running_ == 0) done_.notify_one();
    }
  }

  std::mutex busy_;  // held by the caller of run() for the whole fork-join
  std::mutex m_;     // guards everything below
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  void* job_ = nullptr;
  void (*call_)(void*, index_t) = nullptr;
  index_t parts_ = 0;
  std::atomic<index_t> next_{0};
  int running_ = 0;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

/// Calls body(slice, begin, end) for each of `threads` contiguous, nearly equal slices of [0, n)
/// (slice < threads: an index for per-thread workspace), the first on the calling thread, the others on
/// the pool (or all on the caller, one after another, if the pool is busy). The first exception thrown
/// by any slice is rethrown after all have finished.
template <class Body>
void parallel_slices(index_t n, int threads, Body&& body) {
  const index_t parts = std::clamp<index_t>(threads, 1, std::max<index_t>(n, 1));
  auto part = [&](index_t p) { body(p, n * p / parts, n * (p + 1) / parts); };
  if (parts > 1 && thread_pool::instance().run(parts, part)) return;
  for (index_t p = 0; p < parts; ++p) part(p);
}

/// parallel_slices' contract, with [0, n) handed out in chunks (about eight per slice) as the slices
/// ask for them rather than cut in advance: a slice whose core is slowed (another process holding it,
/// common on shared machines) takes fewer chunks instead of holding up the whole call. body(slice,
/// begin, end) is called once per chunk; a slice's chunks come in increasing order.
template <class Body>
void parallel_chunks(index_t n, int threads, Body&& body) {
  const index_t parts = std::clamp<index_t>(threads, 1, std::max<index_t>(n, 1));
  if (parts == 1) return body(index_t(0), index_t(0), n);
  const index_t chunk = std::max<index_t>(1, n / (8 * parts));
  std::atomic<index_t> next{0};
  auto part = [&](index_t slice) {
    for (index_t b = next.fetch_add(chunk); b < n; b = next.fetch_add(chunk)) body(slice, b, std::min(n, b + chunk));
  };
  if (thread_pool::instance().run(parts, part)) return;
  for (index_t p = 0; p < parts; ++p) part(p);
}

/// parallel_slices for bodies that need no slice index: body(begin, end).
template <class Body>
void parallel_for(index_t n, int threads, Body&& body) {
  parallel_slices(n, threads, [&](index_t, index_t b, index_t e) { body(b, e); });
}

}  // namespace detail
CONVKIT_NAMESPACE_END
