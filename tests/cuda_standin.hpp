// A strict CPU stand-in for the CUDA runtime, cuFFT and cuBLAS calls of the cuFFT backend: it fills
// the backend's cuda_api table (include/convkit/detail/cuda_api.hpp) with functions that compute
// on the CPU (transforms through FFTW), so the backend's host-side logic runs in CI without a GPU.
//
// Strict: it fails where a lenient fake would pass code that breaks on a real GPU.
//   - Device memory is one arena mapped PROT_NONE; only the stand-in's own copy and execute code opens
//     it (mprotect), so host code that dereferences a device pointer dies with SIGSEGV. Fresh device
//     and pinned memory hold NaN bytes, as cudaMalloc's garbage might.
//   - Work on a stream (copies, transforms, products, event records) is queued and runs only when
//     that stream or one of its events is synchronised (or memory is freed, which synchronises, as
//     in CUDA). Reading a result before synchronising reads stale data; a pinned buffer rewritten
//     before the copy from it has run sends the new contents; two streams are not ordered.
//   - Asynchronous copies need pinned host memory, the direction (cudaMemcpyKind) must match where
//     the pointers live, every extent must lie inside one live allocation, and work is refused on the
//     legacy default stream.
//   - Plans check their sizes, batch, embeddings and type against the buffers and the exec function
//     they are run with, in-place padding, alignment, and their work area.
//   - A settable device-memory limit (cudaMemGetInfo reports it), counters of allocations, frees,
//     bytes, copies in each direction and objects made and destroyed, and failure injection: the
//     n-th call of any entry point returns an error status.
// Anything invalid that does not merely return an error status (a use after free, a stream destroyed
// with work that touches freed memory) is recorded in violations(); the tests require it empty.
// One thread at a time.
#pragma once

#include <convkit/detail/cuda_api.hpp>

#include <fftw3.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace convkit::testing::standin {

/// What the stand-in has seen since the last reset().
struct counters {
  long long device_allocs = 0, device_frees = 0, device_bytes = 0, device_peak_bytes = 0;
  long long pinned_allocs = 0, pinned_frees = 0;
  long long copies_to_device = 0, copies_to_host = 0, copies_on_device = 0;
  long long bytes_to_device = 0, bytes_to_host = 0;
  long long streams_made = 0, streams_destroyed = 0, events_made = 0, events_destroyed = 0;
  long long fft_plans_made = 0, fft_plans_destroyed = 0, blas_made = 0, blas_destroyed = 0;
  long long transforms = 0, products = 0;

  /// Everything made has been released.
  bool balanced() const {
    return device_allocs == device_frees && device_bytes == 0 && pinned_allocs == pinned_frees &&
           streams_made == streams_destroyed && events_made == events_destroyed &&
           fft_plans_made == fft_plans_destroyed && blas_made == blas_destroyed;
  }
  long long transfers() const { return copies_to_device + copies_to_host; }
};

namespace detail {

struct stream_state {
  std::deque<std::function<void()>> work;
  bool alive = true;
};

struct event_state {
  stream_state* stream = nullptr;  // where it was last recorded; null: never recorded
  long long generation = 0;        // which record the pending marker belongs to
  bool complete = false;
  std::chrono::steady_clock::time_point when{};
  bool alive = true;
};

struct fft_plan_state {
  bool made = false;
  int n[2] = {0, 0};
  int inembed[2] = {0, 0}, onembed[2] = {0, 0};
  int istride = 1, idist = 0, ostride = 1, odist = 0, batch = 0;
  cufftType type = CUFFT_R2C;
  bool auto_allocate = true;
  size_t work_bytes = 0;
  void* work_area = nullptr;
  void* own_work = nullptr;  // allocated by the plan itself (auto allocation)
  stream_state* stream = nullptr;
  bool alive = true;
};

struct blas_state {
  stream_state* stream = nullptr;
  bool alive = true;
};

/// Device memory: a PROT_NONE mapping, first-fit allocation, opened only while the stand-in works.
class arena {
 public:
  static constexpr size_t reserved = size_t(4) << 30;  // address space only (MAP_NORESERVE)
  static constexpr size_t alignment = 256;             // cudaMalloc's guarantee

  arena() {
    void* p = mmap(nullptr, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("cuda stand-in: cannot reserve the device arena");
    base_ = static_cast<char*>(p);
    free_[0] = reserved;
  }
  ~arena() { munmap(base_, reserved); }
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;

  /// Forgets every allocation (the memory stays mapped, closed).
  void clear() {
    live_.clear();
    free_.clear();
    free_[0] = reserved;
    opened_ = 0;
    mprotect(base_, reserved, PROT_NONE);
  }

  /// `bytes` rounded up to the alignment, or null; only the `bytes` asked for count as inside it.
  void* allocate(size_t bytes) {
    const size_t rounded = rounded_size(bytes);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < rounded) continue;
      const size_t at = it->first, left = it->second - rounded;
      free_.erase(it);
      if (left > 0) free_[at + rounded] = left;
      live_[at] = bytes;
      high_water_ = std::max(high_water_, at + rounded);
      return base_ + at;
    }
    return nullptr;
  }

  static size_t rounded_size(size_t bytes) {
    return (std::max<size_t>(bytes, 1) + alignment - 1) / alignment * alignment;
  }

  /// The (rounded) size of the live allocation that starts at p, or 0 if none does.
  size_t release(void* p) {
    const auto it = live_.find(offset(p));
    if (!contains(p) || it == live_.end()) return 0;
    const size_t at = it->first, bytes = rounded_size(it->second);
    live_.erase(it);
    auto next = free_.emplace(at, bytes).first;
    if (auto after = std::next(next); after != free_.end() && at + bytes == after->first) {
      next->second += after->second;
      free_.erase(after);
    }
    if (next != free_.begin()) {
      auto before = std::prev(next);
      if (before->first + before->second == at) {
        before->second += next->second;
        free_.erase(next);
      }
    }
    return bytes;
  }

  bool contains(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return c >= base_ && c < base_ + reserved;
  }

  /// True if [p, p + bytes) lies inside one live allocation.
  bool inside_live(const void* p, size_t bytes) const {
    if (!contains(p)) return false;
    const size_t at = offset(p);
    auto it = live_.upper_bound(at);
    if (it == live_.begin()) return false;
    --it;
    return at + bytes <= it->first + it->second;
  }

  /// Host access to the arena while a stand-in function works on it (nested calls allowed).
  class open_scope {
   public:
    explicit open_scope(arena& a) : a_(a) {
      if (a_.opened_++ == 0) a_.protect(PROT_READ | PROT_WRITE);
    }
    ~open_scope() {
      if (--a_.opened_ == 0) a_.protect(PROT_NONE);
    }
    open_scope(const open_scope&) = delete;
    open_scope& operator=(const open_scope&) = delete;

   private:
    arena& a_;
  };

 private:
  size_t offset(const void* p) const { return size_t(static_cast<const char*>(p) - base_); }
  void protect(int prot) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    const size_t len = (high_water_ + page - 1) / page * page;
    if (len > 0 && mprotect(base_, len, prot) != 0) std::abort();
  }

  char* base_ = nullptr;
  std::map<size_t, size_t> live_, free_;  // offset -> bytes asked for (live), bytes (free)
  size_t high_water_ = 0;
  int opened_ = 0;
};

struct state {
  arena device;
  size_t device_limit = size_t(1) << 30;
  cudaError_t device_status = cudaSuccess;  // what cudaGetDeviceCount reports
  std::map<void*, size_t> pinned;           // pinned host allocations
  std::vector<std::unique_ptr<stream_state>> streams;
  std::vector<std::unique_ptr<event_state>> events;
  std::vector<std::unique_ptr<fft_plan_state>> plans;  // cufftHandle h is plans[h]
  std::vector<std::unique_ptr<blas_state>> blas;
  counters count;
  std::map<std::string, long long> calls;    // calls per entry point since reset()
  std::map<std::string, long long> fail_at;  // entry point -> the call number that fails
  std::vector<std::string> violations;
};

inline state& the() {
  static state s;
  return s;
}

inline void violation(const std::string& what) { the().violations.push_back(what); }

/// Counts a call of `name`; true if failure injection says this call fails.
inline bool injected(const char* name) {
  state& s = the();
  const long long n = ++s.calls[name];
  const auto it = s.fail_at.find(name);
  return it != s.fail_at.end() && it->second == n;
}

inline stream_state* as_stream(cudaStream_t h) { return reinterpret_cast<stream_state*>(h); }
inline event_state* as_event(cudaEvent_t h) { return reinterpret_cast<event_state*>(h); }

/// Whether `p` is one of `objects` and not yet destroyed.
template <class State>
bool alive_in(const std::vector<std::unique_ptr<State>>& objects, const State* p) {
  for (const auto& o : objects)
    if (o.get() == p) return p->alive;
  return false;
}
inline bool known_stream(stream_state* p) { return alive_in(the().streams, p); }
inline bool known_event(event_state* p) { return alive_in(the().events, p); }

/// A new object of `objects`, counted in `made`, as its opaque handle type.
template <class Handle, class State>
Handle make_object(std::vector<std::unique_ptr<State>>& objects, long long& made) {
  objects.push_back(std::make_unique<State>());
  ++made;
  return reinterpret_cast<Handle>(objects.back().get());
}

/// Marks a live object destroyed and counts it in `destroyed`; false (a violation naming `call`) if
/// it is unknown or destroyed already.
template <class State>
bool destroy_object(const char* call, const std::vector<std::unique_ptr<State>>& objects, State* p,
                    long long& destroyed) {
  if (!alive_in(objects, p)) {
    violation(std::string(call) + ": unknown or destroyed handle");
    return false;
  }
  p->alive = false;
  ++destroyed;
  return true;
}
inline fft_plan_state* plan_of(cufftHandle h) {
  auto& plans = the().plans;
  if (h < 0 || std::size_t(h) >= plans.size() || !plans[std::size_t(h)]->alive) return nullptr;
  return plans[std::size_t(h)].get();
}
inline blas_state* blas_of(cublasHandle_t h) {
  blas_state* b = reinterpret_cast<blas_state*>(h);
  return alive_in(the().blas, b) ? b : nullptr;
}

/// Runs a stream's queued work, in order, with the arena open.
inline void drain(stream_state& s) {
  arena::open_scope open(the().device);
  while (!s.work.empty()) {
    auto job = std::move(s.work.front());
    s.work.pop_front();
    job();
  }
}

/// Runs every stream's work (what CUDA's implicit synchronisation of cudaFree does).
inline void drain_all() {
  for (auto& s : the().streams)
    if (s->alive) drain(*s);
}

/// Queues `job` on `stream`, which must be a live stream made by cudaStreamCreate*.
inline bool enqueue(stream_state* stream, const char* call, std::function<void()> job) {
  if (stream == nullptr) {
    violation(std::string(call) + ": work on the legacy default stream (the backend must use its own streams)");
    return false;
  }
  if (!known_stream(stream)) {
    violation(std::string(call) + ": unknown or destroyed stream");
    return false;
  }
  stream->work.push_back(std::move(job));
  return true;
}

/// [p, p + bytes) lies in one live device allocation.
inline bool device_range(const void* p, size_t bytes) { return the().device.inside_live(p, bytes); }

/// [p, p + bytes) lies in one live pinned host allocation.
inline bool pinned_range(const void* p, size_t bytes) {
  const auto& pinned = the().pinned;
  auto it = pinned.upper_bound(const_cast<void*>(p));
  if (it == pinned.begin()) return false;
  --it;
  const char* base = static_cast<const char*>(it->first);
  return static_cast<const char*>(p) >= base && static_cast<const char*>(p) + bytes <= base + it->second;
}

// ---- CUDA runtime --------------------------------------------------------------------------------

inline cudaError_t get_device_count(int* count) {
  if (injected("cudaGetDeviceCount")) return cudaErrorInsufficientDriver;
  *count = the().device_status == cudaSuccess ? 1 : 0;
  return the().device_status;
}

inline cudaError_t get_device(int* device) {
  if (injected("cudaGetDevice")) return cudaErrorNoDevice;
  *device = 0;
  return the().device_status;
}

inline cudaError_t get_device_name(int device, char* name, int length) {
  if (injected("cudaGetDeviceProperties")) return cudaErrorInvalidDevice;
  if (device != 0) return cudaErrorInvalidDevice;
  std::snprintf(name, std::size_t(length), "%s", "convkit CPU stand-in");
  return the().device_status;
}

inline cudaError_t mem_get_info(size_t* free_bytes, size_t* total_bytes) {
  if (injected("cudaMemGetInfo")) return cudaErrorUnknown;
  state& s = the();
  *total_bytes = s.device_limit;
  *free_bytes = s.device_limit - std::min<size_t>(s.device_limit, size_t(s.count.device_bytes));
  return cudaSuccess;
}

inline cudaError_t device_malloc(void** p, size_t bytes) {
  if (injected("cudaMalloc")) return cudaErrorMemoryAllocation;
  state& s = the();
  const size_t rounded = arena::rounded_size(bytes);
  if (size_t(s.count.device_bytes) + rounded > s.device_limit) return cudaErrorMemoryAllocation;
  void* q = s.device.allocate(bytes);
  if (q == nullptr) return cudaErrorMemoryAllocation;
  {
    arena::open_scope open(s.device);
    std::memset(q, 0xFF, rounded);  // NaN in float and double: unwritten memory shows
  }
  *p = q;
  ++s.count.device_allocs;
  s.count.device_bytes += static_cast<long long>(rounded);
  s.count.device_peak_bytes = std::max(s.count.device_peak_bytes, s.count.device_bytes);
  return cudaSuccess;
}

inline cudaError_t device_free(void* p) {
  if (p == nullptr) return cudaSuccess;
  drain_all();  // cudaFree synchronises the device
  state& s = the();
  const size_t bytes = s.device.release(p);
  if (bytes == 0) {
    violation("cudaFree: pointer was not returned by cudaMalloc, or freed twice");
    return cudaErrorInvalidValue;
  }
  ++s.count.device_frees;
  s.count.device_bytes -= static_cast<long long>(bytes);
  return cudaSuccess;
}

inline cudaError_t host_malloc(void** p, size_t bytes) {
  if (injected("cudaMallocHost")) return cudaErrorMemoryAllocation;
  bytes = std::max<size_t>(bytes, 1);
  void* q = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
  if (q == nullptr) return cudaErrorMemoryAllocation;
  std::memset(q, 0xFF, bytes);
  the().pinned[q] = bytes;
  ++the().count.pinned_allocs;
  *p = q;
  return cudaSuccess;
}

inline cudaError_t host_free(void* p) {
  if (p == nullptr) return cudaSuccess;
  drain_all();  // cudaFreeHost synchronises the device
  auto& pinned = the().pinned;
  const auto it = pinned.find(p);
  if (it == pinned.end()) {
    violation("cudaFreeHost: pointer was not returned by cudaMallocHost, or freed twice");
    return cudaErrorInvalidValue;
  }
  pinned.erase(it);
  std::free(p);
  ++the().count.pinned_frees;
  return cudaSuccess;
}

inline cudaError_t memcpy_2d_async(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t rows,
                                   cudaMemcpyKind kind, cudaStream_t stream) {
  if (injected("cudaMemcpy2DAsync")) return cudaErrorLaunchFailure;
  if (dpitch < width || spitch < width) {
    violation("cudaMemcpy2DAsync: a pitch is below the width (dpitch " + std::to_string(dpitch) + ", spitch " +
              std::to_string(spitch) + ", width " + std::to_string(width) + ")");
    return cudaErrorInvalidPitchValue;
  }
  // cudaDevAttrMaxPitch: 2^31 - 1 bytes on current GPUs; larger pitches are refused.
  if (dpitch > size_t(INT_MAX) || spitch > size_t(INT_MAX)) return cudaErrorInvalidPitchValue;
  if (width == 0 || rows == 0) return cudaSuccess;
  const size_t dst_extent = (rows - 1) * dpitch + width, src_extent = (rows - 1) * spitch + width;
  state& s = the();
  bool ok = false;
  switch (kind) {
    case cudaMemcpyHostToDevice:
      ok = pinned_range(src, src_extent) && device_range(dst, dst_extent);
      ++s.count.copies_to_device;
      s.count.bytes_to_device += static_cast<long long>(width * rows);
      break;
    case cudaMemcpyDeviceToHost:
      ok = device_range(src, src_extent) && pinned_range(dst, dst_extent);
      ++s.count.copies_to_host;
      s.count.bytes_to_host += static_cast<long long>(width * rows);
      break;
    case cudaMemcpyDeviceToDevice:
      ok = device_range(src, src_extent) && device_range(dst, dst_extent);
      ++s.count.copies_on_device;
      break;
    default:
      violation("cudaMemcpy2DAsync: only host-to-device, device-to-host and device-to-device copies are expected");
      return cudaErrorInvalidMemcpyDirection;
  }
  if (!ok) {
    violation(
        "cudaMemcpy2DAsync: an extent is not inside one live allocation of the kind the direction says "
        "(asynchronous copies need pinned host memory)");
    return cudaErrorInvalidValue;
  }
  const bool queued = enqueue(as_stream(stream), "cudaMemcpy2DAsync", [=] {
    const bool src_live =
        kind == cudaMemcpyHostToDevice ? pinned_range(src, src_extent) : device_range(src, src_extent);
    const bool dst_live =
        kind == cudaMemcpyDeviceToHost ? pinned_range(dst, dst_extent) : device_range(dst, dst_extent);
    if (!src_live || !dst_live) {
      violation("cudaMemcpy2DAsync: memory was freed before the copy ran");
      return;
    }
    for (size_t r = 0; r < rows; ++r)
      std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  });
  return queued ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

inline cudaError_t stream_create_with_flags(cudaStream_t* stream, unsigned int) {
  if (injected("cudaStreamCreateWithFlags")) return cudaErrorMemoryAllocation;
  *stream = make_object<cudaStream_t>(the().streams, the().count.streams_made);
  return cudaSuccess;
}

inline cudaError_t stream_destroy(cudaStream_t stream) {
  stream_state* s = as_stream(stream);
  if (known_stream(s)) drain(*s);  // CUDA finishes the work of a destroyed stream
  return destroy_object("cudaStreamDestroy", the().streams, s, the().count.streams_destroyed)
             ? cudaSuccess
             : cudaErrorInvalidResourceHandle;
}

inline cudaError_t stream_synchronize(cudaStream_t stream) {
  if (injected("cudaStreamSynchronize")) return cudaErrorLaunchFailure;
  stream_state* s = as_stream(stream);
  if (!known_stream(s)) {
    violation("cudaStreamSynchronize: unknown or destroyed stream (or the legacy default stream)");
    return cudaErrorInvalidResourceHandle;
  }
  drain(*s);
  return cudaSuccess;
}

inline cudaError_t event_create(cudaEvent_t* event) {
  if (injected("cudaEventCreate")) return cudaErrorMemoryAllocation;
  *event = make_object<cudaEvent_t>(the().events, the().count.events_made);
  return cudaSuccess;
}

inline cudaError_t event_destroy(cudaEvent_t event) {
  return destroy_object("cudaEventDestroy", the().events, as_event(event), the().count.events_destroyed)
             ? cudaSuccess
             : cudaErrorInvalidResourceHandle;
}

inline cudaError_t event_record(cudaEvent_t event, cudaStream_t stream) {
  if (injected("cudaEventRecord")) return cudaErrorLaunchFailure;
  event_state* e = as_event(event);
  if (!known_event(e)) return cudaErrorInvalidResourceHandle;
  const long long generation = ++e->generation;
  e->complete = false;
  e->stream = as_stream(stream);
  const bool queued = enqueue(as_stream(stream), "cudaEventRecord", [e, generation] {
    if (e->alive && e->generation == generation) {
      e->complete = true;
      e->when = std::chrono::steady_clock::now();
    }
  });
  return queued ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

inline cudaError_t event_synchronize(cudaEvent_t event) {
  if (injected("cudaEventSynchronize")) return cudaErrorLaunchFailure;
  event_state* e = as_event(event);
  if (!known_event(e)) return cudaErrorInvalidResourceHandle;
  if (e->stream == nullptr || e->complete) return cudaSuccess;
  arena::open_scope open(the().device);
  while (!e->complete && !e->stream->work.empty()) {
    auto job = std::move(e->stream->work.front());
    e->stream->work.pop_front();
    job();
  }
  return cudaSuccess;
}

inline cudaError_t event_elapsed_time(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (injected("cudaEventElapsedTime")) return cudaErrorInvalidValue;
  event_state* a = as_event(start);
  event_state* b = as_event(end);
  if (!known_event(a) || !known_event(b) || a->stream == nullptr || b->stream == nullptr)
    return cudaErrorInvalidResourceHandle;
  if (!a->complete || !b->complete) return cudaErrorNotReady;
  *ms = std::chrono::duration<float, std::milli>(b->when - a->when).count();
  return cudaSuccess;
}

// ---- cuFFT ---------------------------------------------------------------------------------------

inline bool is_forward(cufftType t) { return t == CUFFT_R2C || t == CUFFT_D2Z; }
inline size_t real_bytes(cufftType t) { return (t == CUFFT_R2C || t == CUFFT_C2R) ? sizeof(float) : sizeof(double); }

inline cufftResult fft_create(cufftHandle* h) {
  if (injected("cufftCreate")) return CUFFT_ALLOC_FAILED;
  the().plans.push_back(std::make_unique<fft_plan_state>());
  *h = cufftHandle(the().plans.size() - 1);
  ++the().count.fft_plans_made;
  return CUFFT_SUCCESS;
}

inline cufftResult fft_set_auto_allocation(cufftHandle h, int automatic) {
  if (injected("cufftSetAutoAllocation")) return CUFFT_INVALID_PLAN;
  fft_plan_state* p = plan_of(h);
  if (p == nullptr) return CUFFT_INVALID_PLAN;
  if (p->made) return CUFFT_INVALID_VALUE;  // cuFFT: set before the plan is made
  p->auto_allocate = automatic != 0;
  return CUFFT_SUCCESS;
}

inline cufftResult fft_make_plan_many(cufftHandle h, int rank, int* n, int* inembed, int istride, int idist,
                                      int* onembed, int ostride, int odist, cufftType type, int batch, size_t* work) {
  if (injected("cufftMakePlanMany")) return CUFFT_ALLOC_FAILED;
  fft_plan_state* p = plan_of(h);
  if (p == nullptr) return CUFFT_INVALID_PLAN;
  if (rank != 2) return CUFFT_NOT_IMPLEMENTED;  // the stand-in does what the backend needs
  if (type != CUFFT_R2C && type != CUFFT_C2R && type != CUFFT_D2Z && type != CUFFT_Z2D) return CUFFT_INVALID_TYPE;
  if (n[0] < 1 || n[1] < 1 || batch < 1 || istride < 1 || ostride < 1) return CUFFT_INVALID_SIZE;
  if ((inembed == nullptr) != (onembed == nullptr)) return CUFFT_INVALID_VALUE;
  const int half = n[1] / 2 + 1;
  const int in_cols = is_forward(type) ? n[1] : half, out_cols = is_forward(type) ? half : n[1];
  p->n[0] = n[0];
  p->n[1] = n[1];
  p->inembed[0] = inembed ? inembed[0] : n[0];
  p->inembed[1] = inembed ? inembed[1] : in_cols;
  p->onembed[0] = onembed ? onembed[0] : n[0];
  p->onembed[1] = onembed ? onembed[1] : out_cols;
  if (p->inembed[1] < in_cols || p->onembed[1] < out_cols) return CUFFT_INVALID_SIZE;
  p->istride = inembed ? istride : 1;
  p->ostride = onembed ? ostride : 1;
  p->idist = inembed ? idist : n[0] * in_cols;
  p->odist = onembed ? odist : n[0] * out_cols;
  p->batch = batch;
  p->type = type;
  // The work area is reported as one half spectrum per transform of the batch, within what the
  // backend budgets for it (a real buffer as large as the batch's padded planes).
  p->work_bytes = size_t(batch) * size_t(n[0]) * size_t(half) * 2 * real_bytes(type);
  if (p->auto_allocate) {
    void* w = nullptr;
    if (device_malloc(&w, p->work_bytes) != cudaSuccess) return CUFFT_ALLOC_FAILED;
    p->own_work = p->work_area = w;
  }
  p->made = true;
  *work = p->work_bytes;
  return CUFFT_SUCCESS;
}

inline cufftResult fft_set_work_area(cufftHandle h, void* area) {
  if (injected("cufftSetWorkArea")) return CUFFT_INVALID_VALUE;
  fft_plan_state* p = plan_of(h);
  if (p == nullptr) return CUFFT_INVALID_PLAN;
  p->work_area = area;
  return CUFFT_SUCCESS;
}

inline cufftResult fft_set_stream(cufftHandle h, cudaStream_t stream) {
  if (injected("cufftSetStream")) return CUFFT_INVALID_PLAN;
  fft_plan_state* p = plan_of(h);
  if (p == nullptr) return CUFFT_INVALID_PLAN;
  p->stream = as_stream(stream);
  return CUFFT_SUCCESS;
}

inline cufftResult fft_destroy(cufftHandle h) {
  fft_plan_state* p = plan_of(h);
  if (p == nullptr) {
    violation("cufftDestroy: unknown or destroyed plan");
    return CUFFT_INVALID_PLAN;
  }
  if (p->own_work != nullptr) device_free(p->own_work);
  p->alive = false;
  ++the().count.fft_plans_destroyed;
  return CUFFT_SUCCESS;
}

/// Elements a layout spans: batch blocks of dist, the last one rows x cols at `embed` and `stride`.
inline size_t span_elements(const int* n0, const int* embed, int stride, int dist, int batch, int cols) {
  return size_t(batch - 1) * size_t(dist) + (size_t(*n0 - 1) * size_t(embed[1]) + size_t(cols - 1)) * size_t(stride) +
         1;
}

template <class Real>
void run_fft(const fft_plan_state& p, Real* real, std::complex<Real>* spectrum, bool forward) {
  const int* real_embed = forward ? p.inembed : p.onembed;
  const int* complex_embed = forward ? p.onembed : p.inembed;
  const int real_stride = forward ? p.istride : p.ostride, complex_stride = forward ? p.ostride : p.istride;
  const int real_dist = forward ? p.idist : p.odist, complex_dist = forward ? p.odist : p.idist;
  if constexpr (std::is_same_v<Real, float>) {
    auto* c = reinterpret_cast<fftwf_complex*>(spectrum);
    fftwf_plan plan = forward ? fftwf_plan_many_dft_r2c(2, p.n, p.batch, real, real_embed, real_stride, real_dist, c,
                                                        complex_embed, complex_stride, complex_dist, FFTW_ESTIMATE)
                              : fftwf_plan_many_dft_c2r(2, p.n, p.batch, c, complex_embed, complex_stride, complex_dist,
                                                        real, real_embed, real_stride, real_dist, FFTW_ESTIMATE);
    fftwf_execute(plan);
    fftwf_destroy_plan(plan);
  } else {
    auto* c = reinterpret_cast<fftw_complex*>(spectrum);
    fftw_plan plan = forward ? fftw_plan_many_dft_r2c(2, p.n, p.batch, real, real_embed, real_stride, real_dist, c,
                                                      complex_embed, complex_stride, complex_dist, FFTW_ESTIMATE)
                             : fftw_plan_many_dft_c2r(2, p.n, p.batch, c, complex_embed, complex_stride, complex_dist,
                                                      real, real_embed, real_stride, real_dist, FFTW_ESTIMATE);
    fftw_execute(plan);
    fftw_destroy_plan(plan);
  }
}

/// Every check cuFFT (or a correct caller) needs before a transform of plan h from `in` to `out`.
template <class Real>
cufftResult exec(const char* call, cufftHandle h, cufftType expected, void* in, void* out) {
  if (injected(call)) return CUFFT_EXEC_FAILED;
  fft_plan_state* p = plan_of(h);
  if (p == nullptr || !p->made) return CUFFT_INVALID_PLAN;
  const std::string name(call);
  if (p->type != expected) {
    violation(name + ": the plan was made for another transform type");
    return CUFFT_INVALID_TYPE;
  }
  const bool forward = is_forward(p->type);
  const size_t in_elem = forward ? sizeof(Real) : 2 * sizeof(Real),
               out_elem = forward ? 2 * sizeof(Real) : sizeof(Real);
  const int half = p->n[1] / 2 + 1;
  const size_t in_bytes =
      span_elements(p->n, p->inembed, p->istride, p->idist, p->batch, forward ? p->n[1] : half) * in_elem;
  const size_t out_bytes =
      span_elements(p->n, p->onembed, p->ostride, p->odist, p->batch, forward ? half : p->n[1]) * out_elem;
  if (!device_range(in, in_bytes) || !device_range(out, out_bytes)) {
    violation(name + ": the plan's input or output extent does not lie in one live device allocation");
    return CUFFT_INVALID_VALUE;
  }
  if (reinterpret_cast<std::uintptr_t>(in) % in_elem != 0 || reinterpret_cast<std::uintptr_t>(out) % out_elem != 0) {
    violation(name + ": misaligned data");
    return CUFFT_UNALIGNED_DATA;
  }
  if (in == out) {  // in place: the real rows must be padded to hold the half spectrum
    const int* real_embed = forward ? p->inembed : p->onembed;
    if (real_embed[1] < 2 * half || p->istride != 1 || p->ostride != 1) {
      violation(name + ": in-place transform without the padded real layout");
      return CUFFT_INVALID_VALUE;
    }
  }
  if (!p->auto_allocate && (p->work_area == nullptr || !device_range(p->work_area, p->work_bytes))) {
    violation(name + ": no work area, or one smaller than the plan reported");
    return CUFFT_NO_WORKSPACE;
  }
  ++the().count.transforms;
  const fft_plan_state plan = *p;
  const bool queued = enqueue(p->stream, call, [=] {
    if (!device_range(in, in_bytes) || !device_range(out, out_bytes)) {
      violation(name + ": memory was freed before the transform ran");
      return;
    }
    if (forward) {
      run_fft<Real>(plan, static_cast<Real*>(in), static_cast<std::complex<Real>*>(out), true);
    } else {
      run_fft<Real>(plan, static_cast<Real*>(out), static_cast<std::complex<Real>*>(in), false);
      // cuFFT's out-of-place multi-dimensional c2r overwrites its input: leave it unusable.
      if (in != out) std::memset(in, 0xff, in_bytes);
    }
  });
  return queued ? CUFFT_SUCCESS : CUFFT_EXEC_FAILED;
}

inline cufftResult fft_exec_r2c(cufftHandle h, cufftReal* in, cufftComplex* out) {
  return exec<float>("cufftExecR2C", h, CUFFT_R2C, in, out);
}
inline cufftResult fft_exec_c2r(cufftHandle h, cufftComplex* in, cufftReal* out) {
  return exec<float>("cufftExecC2R", h, CUFFT_C2R, in, out);
}
inline cufftResult fft_exec_d2z(cufftHandle h, cufftDoubleReal* in, cufftDoubleComplex* out) {
  return exec<double>("cufftExecD2Z", h, CUFFT_D2Z, in, out);
}
inline cufftResult fft_exec_z2d(cufftHandle h, cufftDoubleComplex* in, cufftDoubleReal* out) {
  return exec<double>("cufftExecZ2D", h, CUFFT_Z2D, in, out);
}

// ---- cuBLAS --------------------------------------------------------------------------------------

inline cublasStatus_t blas_create(cublasHandle_t* h) {
  if (injected("cublasCreate")) return CUBLAS_STATUS_ALLOC_FAILED;
  *h = make_object<cublasHandle_t>(the().blas, the().count.blas_made);
  return CUBLAS_STATUS_SUCCESS;
}

inline cublasStatus_t blas_destroy(cublasHandle_t h) {
  return destroy_object("cublasDestroy", the().blas, reinterpret_cast<blas_state*>(h), the().count.blas_destroyed)
             ? CUBLAS_STATUS_SUCCESS
             : CUBLAS_STATUS_NOT_INITIALIZED;
}

inline cublasStatus_t blas_set_stream(cublasHandle_t h, cudaStream_t stream) {
  if (injected("cublasSetStream")) return CUBLAS_STATUS_INTERNAL_ERROR;
  blas_state* b = blas_of(h);
  if (b == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  b->stream = as_stream(stream);
  return CUBLAS_STATUS_SUCCESS;
}

/// C = diag(x) A (left) or A diag(x) (right), column-major m x n, as cuBLAS defines dgmm.
template <class Complex>
cublasStatus_t dgmm(const char* call, cublasHandle_t h, cublasSideMode_t mode, int m, int n, const Complex* a, int lda,
                    const Complex* x, int incx, Complex* c, int ldc) {
  if (injected(call)) return CUBLAS_STATUS_EXECUTION_FAILED;
  blas_state* b = blas_of(h);
  if (b == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || lda < std::max(1, m) || ldc < std::max(1, m) || incx < 1) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const std::string name(call);
  const int x_len = mode == CUBLAS_SIDE_LEFT ? m : n;
  const size_t a_bytes = (size_t(n - 1) * size_t(lda) + size_t(m)) * sizeof(Complex);
  const size_t c_bytes = (size_t(n - 1) * size_t(ldc) + size_t(m)) * sizeof(Complex);
  const size_t x_bytes = (size_t(x_len - 1) * size_t(incx) + 1) * sizeof(Complex);
  if (!device_range(a, a_bytes) || !device_range(x, x_bytes) || !device_range(c, c_bytes)) {
    violation(name + ": A, x or C does not lie in one live device allocation");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  ++the().count.products;
  const bool queued = enqueue(b->stream, call, [=] {
    if (!device_range(a, a_bytes) || !device_range(x, x_bytes) || !device_range(c, c_bytes)) {
      violation(name + ": memory was freed before the product ran");
      return;
    }
    using real = decltype(a->x);
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        const Complex xa = x[size_t(mode == CUBLAS_SIDE_LEFT ? i : j) * size_t(incx)];
        const Complex aa = a[size_t(j) * size_t(lda) + size_t(i)];
        const std::complex<real> r = std::complex<real>(xa.x, xa.y) * std::complex<real>(aa.x, aa.y);
        c[size_t(j) * size_t(ldc) + size_t(i)] = Complex{r.real(), r.imag()};
      }
  });
  return queued ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

inline cublasStatus_t blas_cdgmm(cublasHandle_t h, cublasSideMode_t mode, int m, int n, const cuComplex* a, int lda,
                                 const cuComplex* x, int incx, cuComplex* c, int ldc) {
  return dgmm("cublasCdgmm", h, mode, m, n, a, lda, x, incx, c, ldc);
}
inline cublasStatus_t blas_zdgmm(cublasHandle_t h, cublasSideMode_t mode, int m, int n, const cuDoubleComplex* a,
                                 int lda, const cuDoubleComplex* x, int incx, cuDoubleComplex* c, int ldc) {
  return dgmm("cublasZdgmm", h, mode, m, n, a, lda, x, incx, c, ldc);
}

/// C_b = alpha A_b B_b + beta C_b for b < batch, column-major (A_b = a + b * stride_a, m x k; B_b
/// k x n; C_b m x n), without transposes: what the layer path asks for.
template <class Complex>
cublasStatus_t gemm_strided_batched(const char* call, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                    int m, int n, int k, const Complex* alpha, const Complex* a, int lda, long long sa,
                                    const Complex* b, int ldb, long long sb, const Complex* beta, Complex* c, int ldc,
                                    long long sc, int batch) {
  if (injected(call)) return CUBLAS_STATUS_EXECUTION_FAILED;
  blas_state* bl = blas_of(h);
  if (bl == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (ta != CUBLAS_OP_N || tb != CUBLAS_OP_N) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < std::max(1, m) || ldb < std::max(1, k) || ldc < std::max(1, m) ||
      sa < 0 || sb < 0 || sc < 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  const std::string name(call);
  const auto span = [&](long long stride, int rows, int cols, int ld) {
    return (size_t(batch - 1) * size_t(stride) + size_t(cols - 1) * size_t(ld) + size_t(rows)) * sizeof(Complex);
  };
  const size_t a_bytes = k > 0 ? span(sa, m, k, lda) : 0, b_bytes = k > 0 ? span(sb, k, n, ldb) : 0,
               c_bytes = span(sc, m, n, ldc);
  if ((k > 0 && (!device_range(a, a_bytes) || !device_range(b, b_bytes))) || !device_range(c, c_bytes)) {
    violation(name + ": A, B or C does not lie in one live device allocation");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  // Batch entries whose C matrices interleave could race on a GPU (and this caller never needs it).
  if (batch > 1 && sc < (long long)(n - 1) * ldc + m) {
    violation(name + ": the batch's C matrices interleave");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  ++the().count.products;
  using real = decltype(a->x);
  const std::complex<real> al(alpha->x, alpha->y), be(beta->x, beta->y);  // host scalars, read at the call
  const bool queued = enqueue(bl->stream, call, [=] {
    if ((k > 0 && (!device_range(a, a_bytes) || !device_range(b, b_bytes))) || !device_range(c, c_bytes)) {
      violation(name + ": memory was freed before the product ran");
      return;
    }
    const auto at = [](const Complex* p, long long i) { return std::complex<real>(p[i].x, p[i].y); };
    for (long long e = 0; e < batch; ++e)
      for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
          std::complex<real> sum = 0;
          for (int l = 0; l < k; ++l)
            sum += at(a, e * sa + i + (long long)l * lda) * at(b, e * sb + l + (long long)j * ldb);
          Complex& out = c[e * sc + i + (long long)j * ldc];
          // beta == 0 ignores C (it may hold NaN), as BLAS specifies.
          const std::complex<real> r =
              al * sum +
              (be == std::complex<real>(0) ? std::complex<real>(0) : be * at(c, e * sc + i + (long long)j * ldc));
          out = Complex{r.real(), r.imag()};
        }
  });
  return queued ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

inline cublasStatus_t blas_cgemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                 int n, int k, const cuComplex* alpha, const cuComplex* a, int lda,
                                                 long long sa, const cuComplex* b, int ldb, long long sb,
                                                 const cuComplex* beta, cuComplex* c, int ldc, long long sc,
                                                 int batch) {
  return gemm_strided_batched("cublasCgemmStridedBatched", h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c,
                              ldc, sc, batch);
}
inline cublasStatus_t blas_zgemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                 int n, int k, const cuDoubleComplex* alpha, const cuDoubleComplex* a,
                                                 int lda, long long sa, const cuDoubleComplex* b, int ldb, long long sb,
                                                 const cuDoubleComplex* beta, cuDoubleComplex* c, int ldc, long long sc,
                                                 int batch) {
  return gemm_strided_batched("cublasZgemmStridedBatched", h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c,
                              ldc, sc, batch);
}

inline const char* blas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    default: return "CUBLAS_STATUS_<other>";
  }
}

inline const convkit::detail::cuda_api& table() {
  static const convkit::detail::cuda_api api = [] {
    convkit::detail::cuda_api a{};
    a.get_device_count = &get_device_count;
    a.get_device = &get_device;
    a.get_device_name = &get_device_name;
    a.mem_get_info = &mem_get_info;
    a.device_malloc = &device_malloc;
    a.device_free = &device_free;
    a.host_malloc = &host_malloc;
    a.host_free = &host_free;
    a.memcpy_2d_async = &memcpy_2d_async;
    a.stream_create_with_flags = &stream_create_with_flags;
    a.stream_destroy = &stream_destroy;
    a.stream_synchronize = &stream_synchronize;
    a.event_create = &event_create;
    a.event_destroy = &event_destroy;
    a.event_record = &event_record;
    a.event_synchronize = &event_synchronize;
    a.event_elapsed_time = &event_elapsed_time;
    // Error names and strings are a table inside libcudart that needs no driver: the real ones.
    a.get_error_name = &cudaGetErrorName;
    a.get_error_string = &cudaGetErrorString;
    a.fft_create = &fft_create;
    a.fft_set_auto_allocation = &fft_set_auto_allocation;
    a.fft_make_plan_many = &fft_make_plan_many;
    a.fft_set_work_area = &fft_set_work_area;
    a.fft_set_stream = &fft_set_stream;
    a.fft_exec_r2c = &fft_exec_r2c;
    a.fft_exec_c2r = &fft_exec_c2r;
    a.fft_exec_d2z = &fft_exec_d2z;
    a.fft_exec_z2d = &fft_exec_z2d;
    a.fft_destroy = &fft_destroy;
    a.blas_create = &blas_create;
    a.blas_destroy = &blas_destroy;
    a.blas_set_stream = &blas_set_stream;
    a.blas_cdgmm = &blas_cdgmm;
    a.blas_zdgmm = &blas_zdgmm;
    a.blas_cgemm_strided_batched = &blas_cgemm_strided_batched;
    a.blas_zgemm_strided_batched = &blas_zgemm_strided_batched;
    a.blas_status_name = &blas_status_name;
    return a;
  }();
  return api;
}

}  // namespace detail

/// Clears every allocation, object, counter, injected failure and violation; sets the device
/// memory that cudaMalloc and cudaMemGetInfo allow.
inline void reset(size_t device_limit = size_t(1) << 30) {
  detail::state& s = detail::the();
  for (auto& p : s.pinned) std::free(p.first);
  s.pinned.clear();
  s.device.clear();
  s.device_limit = device_limit;
  s.device_status = cudaSuccess;
  s.streams.clear();
  s.events.clear();
  s.plans.clear();
  s.blas.clear();
  s.count = counters{};
  s.calls.clear();
  s.fail_at.clear();
  s.violations.clear();
}

/// Device memory cudaMalloc allows from now on (what is allocated stays).
inline void set_device_limit(size_t bytes) { detail::the().device_limit = bytes; }

/// What cudaGetDeviceCount returns: cudaSuccess (one device) or an error such as cudaErrorNoDevice.
inline void set_device_status(cudaError_t s) { detail::the().device_status = s; }

/// The n-th call (n >= 1, counted from the last reset) of entry point `call` ("cudaMalloc",
/// "cufftExecR2C", ...: the real function's name) returns an error status.
inline void fail_call(const std::string& call, long long n) { detail::the().fail_at[call] = n; }

/// Stops all injected failures.
inline void clear_failures() { detail::the().fail_at.clear(); }

inline const counters& stats() { return detail::the().count; }
/// Calls per entry point since the last reset.
inline const std::map<std::string, long long>& calls() { return detail::the().calls; }
/// Calls of one entry point since the last reset.
inline long long calls_of(const std::string& call) {
  const auto it = detail::the().calls.find(call);
  return it == detail::the().calls.end() ? 0 : it->second;
}
inline const std::vector<std::string>& violations() { return detail::the().violations; }
/// The violations recorded so far, which are then forgotten (for tests that provoke them).
inline std::vector<std::string> take_violations() { return std::exchange(detail::the().violations, {}); }

/// The stand-in's table, for tests that call it directly.
inline const convkit::detail::cuda_api& api() { return detail::table(); }

/// Installs the stand-in for the cuFFT plans made while it lives (after a reset), and restores
/// the previous table after.
class scope {
 public:
  explicit scope(size_t device_limit = size_t(1) << 30) {
    reset(device_limit);
    previous_ = convkit::detail::install_cuda_api(&detail::table());
  }
  ~scope() { convkit::detail::install_cuda_api(previous_); }
  scope(const scope&) = delete;
  scope& operator=(const scope&) = delete;

 private:
  const convkit::detail::cuda_api* previous_ = nullptr;
};

}  // namespace convkit::testing::standin
