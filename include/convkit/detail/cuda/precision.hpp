// cuFFT and cuBLAS name the two precisions differently: cufft_traits<T> maps float and double to
// their types, calls and names (written once per precision); the calls built from them are written
// once for both.
#pragma once

#include "../../version.hpp"

#include "../cuda_api.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

template <class T>
struct cufft_traits;

template <>
struct cufft_traits<float> {
  using complex = cuComplex;
  static constexpr cufftType forward_type = CUFFT_R2C, inverse_type = CUFFT_C2R;
  static constexpr const char* forward_name = "cufftExecR2C";
  static constexpr const char* inverse_name = "cufftExecC2R";
  static constexpr const char* product_name = "cublasCdgmm";
  static constexpr const char* gemm_name = "cublasCgemmStridedBatched";
  static cufftResult forward(const cuda_api& a, cufftHandle p, void* in, void* out) {
    return a.fft_exec_r2c(p, static_cast<cufftReal*>(in), static_cast<cufftComplex*>(out));
  }
  static cufftResult inverse(const cuda_api& a, cufftHandle p, void* in, void* out) {
    return a.fft_exec_c2r(p, static_cast<cufftComplex*>(in), static_cast<cufftReal*>(out));
  }
  static constexpr auto dgmm = &cuda_api::blas_cdgmm;
  static constexpr auto gemm = &cuda_api::blas_cgemm_strided_batched;
};

template <>
struct cufft_traits<double> {
  using complex = cuDoubleComplex;
  static constexpr cufftType forward_type = CUFFT_D2Z, inverse_type = CUFFT_Z2D;
  static constexpr const char* forward_name = "cufftExecD2Z";
  static constexpr const char* inverse_name = "cufftExecZ2D";
  static constexpr const char* product_name = "cublasZdgmm";
  static constexpr const char* gemm_name = "cublasZgemmStridedBatched";
  static cufftResult forward(const cuda_api& a, cufftHandle p, void* in, void* out) {
    return a.fft_exec_d2z(p, static_cast<cufftDoubleReal*>(in), static_cast<cufftDoubleComplex*>(out));
  }
  static cufftResult inverse(const cuda_api& a, cufftHandle p, void* in, void* out) {
    return a.fft_exec_z2d(p, static_cast<cufftDoubleComplex*>(in), static_cast<cufftDoubleReal*>(out));
  }
  static constexpr auto dgmm = &cuda_api::blas_zdgmm;
  static constexpr auto gemm = &cuda_api::blas_zgemm_strided_batched;
};

/// buf[i] *= spectrum[i], i < n complex values: C = diag(x) A with A a column of n.
template <class T>
cublasStatus_t spectrum_product(const cuda_api& a, cublasHandle_t h, int n, void* buf, const void* spectrum) {
  using complex = typename cufft_traits<T>::complex;
  auto* c = static_cast<complex*>(buf);
  return (a.*cufft_traits<T>::dgmm)(h, CUBLAS_SIDE_LEFT, n, 1, c, n, static_cast<const complex*>(spectrum), 1, c, n);
}

/// For b < batch: C_b = A_b B_b (column-major, no transposes; A_b m x k at a + b * sa, ...).
template <class T>
cublasStatus_t gemm_batched(const cuda_api& api, cublasHandle_t h, int m, int n, int k, const void* a, int lda,
                            long long sa, const void* b, int ldb, long long sb, void* c, int ldc, long long sc,
                            int batch) {
  using complex = typename cufft_traits<T>::complex;
  const complex one{1, 0}, zero{0, 0};
  return (api.*cufft_traits<T>::gemm)(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, static_cast<const complex*>(a), lda,
                                      sa, static_cast<const complex*>(b), ldb, sb, &zero, static_cast<complex*>(c), ldc,
                                      sc, batch);
}

}  // namespace detail
CONVKIT_NAMESPACE_END
