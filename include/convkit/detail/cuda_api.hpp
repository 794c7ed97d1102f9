// The GPU entry points of the cuFFT backend, in one table.
//
// The backend (backends/cufft.hpp) reaches CUDA, cuFFT and cuBLAS only through a cuda_api: a plain
// struct of function pointers with the libraries' own signatures. cuda_runtime_api() fills it with
// the real functions; the test tree fills another one with a strict CPU stand-in
// (tests/cuda_standin.hpp) and installs it with install_cuda_api(), so that every host-side step
// of the backend (sizes, strides, synchronisation, transfers, error paths) runs in CI without a GPU.
//
// Loaded when first used. The real table binds the functions of libcudart, libcufft and libcublas
// by name (dlopen of the sonames of the major versions this program was compiled against, then
// dlsym), each typed with the declaration in the headers the program was built with (decltype), so
// the compiler still checks every call's signature. A program that links convkit::cufft loads none
// of the three until the backend is first asked about (a cost estimate, a plan): loaded, the CUDA
// runtime and cuFFT take ~200 MB of memory, GPU or not, which every program would otherwise pay at
// start-up. Where a library is missing, the backend is unavailable and says which library and why;
// where the driver is missing, libcudart reports it as a status (cudaErrorInsufficientDriver), which
// the backend turns into convkit::unavailable too.
//
// Why cuBLAS: the element-wise product of two spectra is cublas<C|Z>dgmm (C = diag(x) * A, with A a
// column of the spectrum's length), and a layer's sum over channels of such products is, frequency
// by frequency, a small complex matrix product (cublas<C|Z>gemmStridedBatched, one batch entry per
// frequency): library calls, so the backend needs no kernel of its own, no nvcc and no run-time
// compiler, and a g++-compiled .cpp can use it.
#pragma once

#include "../version.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cufft.h>
#include <dlfcn.h>

#include <atomic>
#include <cstring>
#include <string>

#include "../types.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// Every CUDA, cuFFT and cuBLAS function the cuFFT backend calls, with the libraries' signatures.
struct cuda_api {
  // CUDA runtime: devices, memory, copies, streams, events, errors.
  cudaError_t (*get_device_count)(int* count);
  cudaError_t (*get_device)(int* device);  ///< the calling thread's current device
  /// The name of a device (cudaGetDeviceProperties' name) into `name` (`length` bytes, terminated).
  cudaError_t (*get_device_name)(int device, char* name, int length);
  cudaError_t (*mem_get_info)(size_t* free_bytes, size_t* total_bytes);
  cudaError_t (*device_malloc)(void** ptr, size_t bytes);
  cudaError_t (*device_free)(void* ptr);
  cudaError_t (*host_malloc)(void** ptr, size_t bytes);  ///< pinned (page-locked) host memory
  cudaError_t (*host_free)(void* ptr);
  cudaError_t (*memcpy_2d_async)(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width_bytes,
                                 size_t rows, cudaMemcpyKind kind, cudaStream_t stream);
  cudaError_t (*stream_create_with_flags)(cudaStream_t* stream, unsigned int flags);
  cudaError_t (*stream_destroy)(cudaStream_t stream);
  cudaError_t (*stream_synchronize)(cudaStream_t stream);
  cudaError_t (*event_create)(cudaEvent_t* event);
  cudaError_t (*event_destroy)(cudaEvent_t event);
  cudaError_t (*event_record)(cudaEvent_t event, cudaStream_t stream);
  cudaError_t (*event_synchronize)(cudaEvent_t event);
  cudaError_t (*event_elapsed_time)(float* ms, cudaEvent_t start, cudaEvent_t end);
  const char* (*get_error_name)(cudaError_t status);
  const char* (*get_error_string)(cudaError_t status);

  // cuFFT: plans made with a work area the backend allocates itself (so its memory cap holds).
  cufftResult (*fft_create)(cufftHandle* plan);
  cufftResult (*fft_set_auto_allocation)(cufftHandle plan, int auto_allocate);
  cufftResult (*fft_make_plan_many)(cufftHandle plan, int rank, int* n, int* inembed, int istride, int idist,
                                    int* onembed, int ostride, int odist, cufftType type, int batch,
                                    size_t* work_bytes);
  cufftResult (*fft_set_work_area)(cufftHandle plan, void* work_area);
  cufftResult (*fft_set_stream)(cufftHandle plan, cudaStream_t stream);
  cufftResult (*fft_exec_r2c)(cufftHandle plan, cufftReal* in, cufftComplex* out);
  cufftResult (*fft_exec_c2r)(cufftHandle plan, cufftComplex* in, cufftReal* out);
  cufftResult (*fft_exec_d2z)(cufftHandle plan, cufftDoubleReal* in, cufftDoubleComplex* out);
  cufftResult (*fft_exec_z2d)(cufftHandle plan, cufftDoubleComplex* in, cufftDoubleReal* out);
  cufftResult (*fft_destroy)(cufftHandle plan);

  // cuBLAS: the spectrum product (single images) and the sum over channels (layers).
  cublasStatus_t (*blas_create)(cublasHandle_t* handle);
  cublasStatus_t (*blas_destroy)(cublasHandle_t handle);
  cublasStatus_t (*blas_set_stream)(cublasHandle_t handle, cudaStream_t stream);
  cublasStatus_t (*blas_cdgmm)(cublasHandle_t handle, cublasSideMode_t mode, int m, int n, const cuComplex* a, int lda,
                               const cuComplex* x, int incx, cuComplex* c, int ldc);
  cublasStatus_t (*blas_zdgmm)(cublasHandle_t handle, cublasSideMode_t mode, int m, int n, const cuDoubleComplex* a,
                               int lda, const cuDoubleComplex* x, int incx, cuDoubleComplex* c, int ldc);
  cublasStatus_t (*blas_cgemm_strided_batched)(cublasHandle_t handle, cublasOperation_t transa,
                                               cublasOperation_t transb, int m, int n, int k, const cuComplex* alpha,
                                               const cuComplex* a, int lda, long long stride_a, const cuComplex* b,
                                               int ldb, long long stride_b, const cuComplex* beta, cuComplex* c,
                                               int ldc, long long stride_c, int batch);
  cublasStatus_t (*blas_zgemm_strided_batched)(cublasHandle_t handle, cublasOperation_t transa,
                                               cublasOperation_t transb, int m, int n, int k,
                                               const cuDoubleComplex* alpha, const cuDoubleComplex* a, int lda,
                                               long long stride_a, const cuDoubleComplex* b, int ldb,
                                               long long stride_b, const cuDoubleComplex* beta, cuDoubleComplex* c,
                                               int ldc, long long stride_c, int batch);
  const char* (*blas_status_name)(cublasStatus_t status);
};

/// A macro's expansion as a string: the symbol a declaration names (cublasCreate is cublasCreate_v2).
#define CONVKIT_CUDA_SYMBOL(name) CONVKIT_CUDA_SYMBOL_TEXT(name)
#define CONVKIT_CUDA_SYMBOL_TEXT(name) #name

/// The real libraries, loaded once (see the top of this file): their handles, and why one is missing.
struct cuda_libraries {
  std::string missing;  ///< "" when all three loaded (declared first: the loads below write it)
  void* runtime = nullptr;
  void* fft = nullptr;
  void* blas = nullptr;

  static const cuda_libraries& instance() {
    static const cuda_libraries libraries;
    return libraries;
  }

 private:
  // The driver first: without it there is no GPU to use, and the runtime libraries (~200 MB once
  // loaded) stay unloaded. CUDART_VERSION is major * 1000 + minor * 10; each soname carries its
  // library's major version.
  cuda_libraries() {
    if (::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL) == nullptr) {
      missing = std::string("no NVIDIA GPU driver found (") + ::dlerror() + ")";
      return;
    }
    runtime = open("libcudart.so." + std::to_string(CUDART_VERSION / 1000));
    fft = open("libcufft.so." + std::to_string(CUFFT_VER_MAJOR));
    blas = open("libcublas.so." + std::to_string(CUBLAS_VER_MAJOR));
  }
  // By soname (the loader's path), else in the toolkit the program was built with.
  void* open(const std::string& soname) {
    void* h = ::dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
#if defined(CONVKIT_CUDA_LIBRARY_DIR)
    if (h == nullptr)
      h = ::dlopen((std::string(CONVKIT_CUDA_LIBRARY_DIR) + "/" + soname).c_str(), RTLD_NOW | RTLD_LOCAL);
#endif
    if (h == nullptr && missing.empty())
      missing = "the CUDA libraries cannot be loaded: " + soname + ": " + ::dlerror();
    return h;
  }
};

/// The function `name` of `library`, typed F; null (noting it in `missing`) if it is not there.
template <class F>
F cuda_function(void* library, const char* name, std::string& missing) {
  void* f = library != nullptr ? ::dlsym(library, name) : nullptr;
  if (f == nullptr && library != nullptr && missing.empty()) missing = std::string("no function ") + name;
  return reinterpret_cast<F>(f);
}

/// The table of the real CUDA, cuFFT and cuBLAS functions, bound on first use; where a library or
/// function is missing (cuda_runtime_missing() says which), every entry is null. (Longer than most
/// functions here: one line per function bound, a list best read in one place.)
inline std::string& cuda_binding_failure() noexcept {
  static std::string failure;
  return failure;
}
/// Where the real table lives: its address is known without binding anything.
inline cuda_api& cuda_runtime_storage() noexcept {
  static cuda_api api{};
  return api;
}
inline bool is_runtime_api(const cuda_api& api) noexcept { return &api == &cuda_runtime_storage(); }

inline const cuda_api& cuda_runtime_api() noexcept {
  static const bool bound = [] {
    const cuda_libraries& libs = cuda_libraries::instance();
    std::string& missing = cuda_binding_failure();
    missing = libs.missing;
    cuda_api& a = cuda_runtime_storage();
#define CONVKIT_BIND(library, field, function) \
  a.field = cuda_function<decltype(&function)>(libs.library, CONVKIT_CUDA_SYMBOL(function), missing)
    CONVKIT_BIND(runtime, get_device_count, cudaGetDeviceCount);
    CONVKIT_BIND(runtime, get_device, cudaGetDevice);
    CONVKIT_BIND(runtime, mem_get_info, cudaMemGetInfo);
    CONVKIT_BIND(runtime, device_malloc, cudaMalloc);
    CONVKIT_BIND(runtime, device_free, cudaFree);
    CONVKIT_BIND(runtime, host_malloc, cudaMallocHost);
    CONVKIT_BIND(runtime, host_free, cudaFreeHost);
    CONVKIT_BIND(runtime, memcpy_2d_async, cudaMemcpy2DAsync);
    CONVKIT_BIND(runtime, stream_create_with_flags, cudaStreamCreateWithFlags);
    CONVKIT_BIND(runtime, stream_destroy, cudaStreamDestroy);
    CONVKIT_BIND(runtime, stream_synchronize, cudaStreamSynchronize);
    CONVKIT_BIND(runtime, event_create, cudaEventCreate);
    CONVKIT_BIND(runtime, event_destroy, cudaEventDestroy);
    CONVKIT_BIND(runtime, event_record, cudaEventRecord);
    CONVKIT_BIND(runtime, event_synchronize, cudaEventSynchronize);
    CONVKIT_BIND(runtime, event_elapsed_time, cudaEventElapsedTime);
    CONVKIT_BIND(runtime, get_error_name, cudaGetErrorName);
    CONVKIT_BIND(runtime, get_error_string, cudaGetErrorString);
    CONVKIT_BIND(fft, fft_create, cufftCreate);
    CONVKIT_BIND(fft, fft_set_auto_allocation, cufftSetAutoAllocation);
    CONVKIT_BIND(fft, fft_make_plan_many, cufftMakePlanMany);
    CONVKIT_BIND(fft, fft_set_work_area, cufftSetWorkArea);
    CONVKIT_BIND(fft, fft_set_stream, cufftSetStream);
    CONVKIT_BIND(fft, fft_exec_r2c, cufftExecR2C);
    CONVKIT_BIND(fft, fft_exec_c2r, cufftExecC2R);
    CONVKIT_BIND(fft, fft_exec_d2z, cufftExecD2Z);
    CONVKIT_BIND(fft, fft_exec_z2d, cufftExecZ2D);
    CONVKIT_BIND(fft, fft_destroy, cufftDestroy);
    CONVKIT_BIND(blas, blas_create, cublasCreate);
    CONVKIT_BIND(blas, blas_destroy, cublasDestroy);
    CONVKIT_BIND(blas, blas_set_stream, cublasSetStream);
    CONVKIT_BIND(blas, blas_cdgmm, cublasCdgmm);
    CONVKIT_BIND(blas, blas_zdgmm, cublasZdgmm);
    CONVKIT_BIND(blas, blas_cgemm_strided_batched, cublasCgemmStridedBatched);
    CONVKIT_BIND(blas, blas_zgemm_strided_batched, cublasZgemmStridedBatched);
    CONVKIT_BIND(blas, blas_status_name, cublasGetStatusName);
#undef CONVKIT_BIND
    static decltype(&cudaGetDeviceProperties) properties = nullptr;
    properties = cuda_function<decltype(&cudaGetDeviceProperties)>(
        libs.runtime, CONVKIT_CUDA_SYMBOL(cudaGetDeviceProperties), missing);
    a.get_device_name = [](int device, char* name, int length) {
      cudaDeviceProp props{};
      const cudaError_t s = properties(&props, device);
      if (s == cudaSuccess && length > 0) {
        std::strncpy(name, props.name, std::size_t(length) - 1);
        name[length - 1] = '\0';
      }
      return s;
    };
    if (!missing.empty()) a = cuda_api{};
    return true;
  }();
  (void)bound;
  return cuda_runtime_storage();
}

/// Why the real libraries could not be bound ("" if they were); binds them first.
inline const std::string& cuda_runtime_missing() noexcept {
  cuda_runtime_api();
  return cuda_binding_failure();
}

inline std::atomic<const cuda_api*>& installed_cuda_api() noexcept {
  static std::atomic<const cuda_api*> api{nullptr};
  return api;
}

/// The table that cuFFT plans made from now on use: the real one unless a test installed another.
inline const cuda_api& active_cuda_api() noexcept {
  const cuda_api* a = installed_cuda_api().load();
  return a != nullptr ? *a : cuda_runtime_api();
}

/// Makes plans made from now on use `api` (nullptr: the real libraries again); returns the previous
/// installed table. For tests: plans keep the table they were made with.
inline const cuda_api* install_cuda_api(const cuda_api* api) noexcept { return installed_cuda_api().exchange(api); }

/// cuFFT has no function that names its statuses.
inline const char* cufft_status_name(cufftResult r) noexcept {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_UNALIGNED_DATA: return "CUFFT_UNALIGNED_DATA";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    case CUFFT_MISSING_DEPENDENCY: return "CUFFT_MISSING_DEPENDENCY";
    case CUFFT_NVRTC_FAILURE: return "CUFFT_NVRTC_FAILURE";
    case CUFFT_NVJITLINK_FAILURE: return "CUFFT_NVJITLINK_FAILURE";
    case CUFFT_NVSHMEM_FAILURE: return "CUFFT_NVSHMEM_FAILURE";
  }
  return "unknown cufftResult";
}

/// "cufft: <call> failed: <status>", the message of every failed GPU call.
inline std::string gpu_failure(const char* call, const std::string& status) {
  return std::string("cufft: ") + call + " failed: " + status;
}

/// Throws convkit::error naming `call` and the status unless `s` is cudaSuccess.
inline void check_cuda(const cuda_api& api, cudaError_t s, const char* call) {
  if (s != cudaSuccess)
    throw error(gpu_failure(call, std::string(api.get_error_name(s)) + " (" + api.get_error_string(s) + ")"));
}

inline void check_cufft(cufftResult r, const char* call) {
  if (r != CUFFT_SUCCESS) throw error(gpu_failure(call, cufft_status_name(r)));
}

inline void check_cublas(const cuda_api& api, cublasStatus_t s, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS) throw error(gpu_failure(call, api.blas_status_name(s)));
}

/// Why `api` cannot run the backend ("" if it can): no driver, a driver too old, or no device.
inline std::string probe_cuda_device(const cuda_api& api) {
  if (is_runtime_api(api) && !cuda_runtime_missing().empty()) return cuda_runtime_missing();
  int count = 0;
  const cudaError_t s = api.get_device_count(&count);
  // Without an NVIDIA driver the runtime answers "driver version insufficient": say what that means.
  const char* meaning = s == cudaErrorInsufficientDriver
                            ? "no NVIDIA GPU driver found, or one older than this CUDA runtime"
                        : s == cudaErrorNoDevice ? "no NVIDIA GPU found"
                                                 : "no usable CUDA device";
  if (s != cudaSuccess)
    return std::string(meaning) + ": cudaGetDeviceCount returned " + api.get_error_name(s) + " (" +
           api.get_error_string(s) + ")";
  if (count < 1) return "no CUDA device: cudaGetDeviceCount found 0 devices";
  return {};
}

/// probe_cuda_device(api), asked once per program for the real libraries (the answer cannot change,
/// and the first CUDA call loads the driver).
inline std::string cuda_unavailable_reason(const cuda_api& api) {
  if (!is_runtime_api(api)) return probe_cuda_device(api);
  static const std::string reason = probe_cuda_device(api);
  return reason;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
