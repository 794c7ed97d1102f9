// What the cufft backend keeps between calls: workspaces (cuFFT plans, streams, device and pinned
// buffers, made for one transform shape) that executors hand back when they end, so that the next
// executor of the same shape makes nothing. A one-shot conv2d builds one executor per call, and
// without this cache every call would plan cuFFT and allocate device memory anew.
//
//   cufft_workspace_base   what every workspace type shares: its device memory count, and settle()
//   cufft_cache            the cache: up to `per_kind` workspaces of each type, oldest evicted
//                          first; public as cufft::workspace_cache (tuning.hpp, gpu_fft_config::cache)
//   cufft_lease            an executor's hold on one workspace: taken from a cache or made, and
//                          handed back when the executor ends unless it failed
#pragma once

#include "../version.hpp"

#include <array>
#include <memory>
#include <mutex>
#include <typeinfo>
#include <utility>
#include <vector>

#include "../tuning.hpp"
#include "cuda/handles.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// The part every cached workspace type shares.
class cufft_workspace_base {
 public:
  cufft_workspace_base(const cufft_workspace_base&) = delete;
  cufft_workspace_base& operator=(const cufft_workspace_base&) = delete;
  virtual ~cufft_workspace_base() = default;

  /// Lets work in flight finish (statuses ignored: after a failure the first one is being
  /// reported) and forgets what it was for. Derived destructors call it before their buffers go.
  virtual void settle() noexcept = 0;
  /// Device memory it holds, in bytes.
  index_t device_bytes() const noexcept { return device_bytes_; }

  const cuda_api& api;

 protected:
  explicit cufft_workspace_base(const cuda_api& a) : api(a) {}
  /// Device memory, counted in device_bytes().
  gpu_handle<void*> device(index_t bytes) {
    gpu_handle<void*> h = device_alloc(api, bytes);
    device_bytes_ += bytes;
    return h;
  }

 private:
  index_t device_bytes_ = 0;
};

/// Workspaces executors gave back, for the next executor of the same key (each workspace type has a
/// `key`; W::id() returns it): at most `per_kind` of each type, the oldest released first. An
/// executor takes one for itself (its streams and buffers are not shared), so concurrent calls of
/// one shape each get their own. Thread-safe. Executors hold no reference to the cache after they
/// have handed their workspace back, but an executor in use does until it ends: a cache must
/// outlive the plans and calls that use it.
class cufft_cache {
 public:
  static constexpr std::size_t per_kind = 4, kinds = 4;

  cufft_cache() { cached_.reserve(per_kind * kinds); }
  cufft_cache(const cufft_cache&) = delete;
  cufft_cache& operator=(const cufft_cache&) = delete;

  /// A cached workspace of type W with key k, or null.
  template <class W>
  std::unique_ptr<W> take(const typename W::key& k) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = cached_.begin(); it != cached_.end(); ++it) {
      auto* w = dynamic_cast<W*>(it->get());
      if (w != nullptr && w->id() == k) {
        it->release();
        cached_.erase(it);
        return std::unique_ptr<W>(w);
      }
    }
    return nullptr;
  }

  /// Keeps `w` (with no work in flight) for a later take(); never allocates (destructors call it).
  void give(std::unique_ptr<cufft_workspace_base> w) noexcept {
    std::unique_ptr<cufft_workspace_base> evicted;  // released outside the lock
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t same = 0;
    auto oldest = cached_.end();
    const cufft_workspace_base& given = *w;
    for (auto it = cached_.begin(); it != cached_.end(); ++it) {
      const cufft_workspace_base& cached = **it;
      if (typeid(cached) == typeid(given) && same++ == 0) oldest = it;
    }
    if (same >= per_kind || cached_.size() == cached_.capacity()) {
      evicted = std::move(oldest != cached_.end() ? *oldest : cached_.front());
      cached_.erase(oldest != cached_.end() ? oldest : cached_.begin());
    }
    cached_.push_back(std::move(w));  // within the reserved capacity
  }

  /// Releases every cached workspace; executors in use keep theirs until they end.
  void release() noexcept {
    std::array<std::unique_ptr<cufft_workspace_base>, per_kind * kinds> gone;  // released outside the lock
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = 0; i < cached_.size(); ++i) gone[i] = std::move(cached_[i]);
    cached_.clear();  // keeps the reserved capacity
  }

  /// Cached workspaces of type W.
  template <class W>
  std::size_t count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t n = 0;
    for (const auto& w : cached_) n += dynamic_cast<const W*>(w.get()) != nullptr;
    return n;
  }

  /// Device bytes held by the cached workspaces made through `api`.
  index_t device_bytes(const cuda_api& api) const noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    index_t sum = 0;
    for (const auto& w : cached_)
      if (&w->api == &api) sum += w->device_bytes();
    return sum;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<cufft_workspace_base>> cached_;
};

/// The process-wide cache (gpu_fft_config::cache unset). Never destroyed: releasing GPU objects
/// during static destruction can run after the CUDA runtime has shut down (the process's end frees
/// them); cufft::release_cached() releases them earlier.
inline cufft_cache& default_cufft_cache() {
  static cufft_cache* cache = new cufft_cache;
  return *cache;
}

/// The cache a problem's tuning names, or the process-wide one.
inline cufft_cache& cufft_cache_of(const gpu_fft_config& c) {
  return c.cache != nullptr ? *c.cache : default_cufft_cache();
}

/// The device memory a new cuFFT executor plans for: gpu_fft_config::memory_cap if set, else 80% of
/// what cudaMemGetInfo reports free plus what the cache holds (a matching workspace is reused; the
/// others are released first if a new one needs their room, cufft_make_room), so that a second call
/// of one shape plans exactly as the first did.
inline index_t cufft_memory_cap(const cuda_api& api, const gpu_fft_config& cfg) {
  if (cfg.memory_cap > 0) return cfg.memory_cap;
  size_t free_bytes = 0, total_bytes = 0;
  check_cuda(api, api.mem_get_info(&free_bytes, &total_bytes), "cudaMemGetInfo");
  return static_cast<index_t>((free_bytes + size_t(cufft_cache_of(cfg).device_bytes(api))) / 5 * 4);
}

/// Before a new workspace of about `need` device bytes is made: if the free memory does not hold
/// it, the cache is released.
inline void cufft_make_room(const cuda_api& api, cufft_cache& cache, index_t need) {
  if (cache.device_bytes(api) == 0) return;
  size_t free_bytes = 0, total_bytes = 0;
  check_cuda(api, api.mem_get_info(&free_bytes, &total_bytes), "cudaMemGetInfo");
  if (index_t(free_bytes) < need) cache.release();
}

/// Whether an executor's workspace comes from a cache and goes back to it when the executor ends
/// (one-shot calls, convkit::plan, layer_plan), or is made for it and released with it (cufft::plan:
/// a caller who holds a plan manages its memory).
enum class cufft_reuse { pooled, owned };

/// The workspace an executor works with: taken from a cache or made (after cufft_make_room), and
/// handed back to that cache when the executor ends, unless it is owned (cufft_reuse::owned) or
/// failed (after a failure it serves its executor still, but is not handed on).
template <class Workspace>
class cufft_lease {
 public:
  cufft_lease() = default;
  cufft_lease(const cufft_lease&) = delete;
  cufft_lease& operator=(const cufft_lease&) = delete;
  ~cufft_lease() {
    if (ws_ && cache_ != nullptr && !failed_) {
      ws_->settle();
      cache_->give(std::move(ws_));
    }
  }

  /// `need`: about the device bytes a new workspace takes. `cache`: the one whose memory
  /// cufft_memory_cap counted as free, so a new workspace makes its room there (cufft_make_room)
  /// whether or not it is pooled; pooled, the workspace is also taken from and handed back to it.
  void acquire(const cuda_api& api, const typename Workspace::key& k, index_t need, cufft_cache& cache,
               cufft_reuse reuse) {
    cache_ = reuse == cufft_reuse::pooled ? &cache : nullptr;
    if (cache_ != nullptr) ws_ = cache.take<Workspace>(k);
    if (ws_) return;
    cufft_make_room(api, cache, need);
    ws_ = std::make_unique<Workspace>(api, k);
  }

  /// After a failure: lets work in flight finish; the workspace is not handed on.
  void fail() noexcept {
    if (ws_) ws_->settle();
    failed_ = true;
  }

  Workspace* operator->() const noexcept { return ws_.get(); }
  Workspace& operator*() const noexcept { return *ws_; }

 private:
  std::unique_ptr<Workspace> ws_;
  cufft_cache* cache_ = nullptr;
  bool failed_ = false;
};

}  // namespace detail
CONVKIT_NAMESPACE_END
