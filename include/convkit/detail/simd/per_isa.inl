// Compiles one kernel source once per instruction set that convkit dispatches among at run time,
// each copy in its own namespace and under its own target attributes: one binary carries all three
// and no -march flag is needed (a plan picks one, cpu.hpp). Used inside namespace convkit::detail,
// after including simd/isa.hpp:
//
//   #define CONVKIT_ISA_FILE "../direct_kernel.inl"        // the kernel source, relative to this file
//   #define CONVKIT_ISA_NAMESPACE(isa) direct_##isa         // direct_generic, direct_avx2, direct_avx512
//   #include "simd/per_isa.inl"
//
// Inside the kernel source CONVKIT_ISA_LEVEL is 0 (portable C++), 1 (AVX2 + FMA) or 2 (AVX-512),
// CONVKIT_ALWAYS_INLINE forces inlining and CONVKIT_UNROLL unrolls the loop after it. CONVKIT_ISA_FILE,
// CONVKIT_ISA_NAMESPACE, CONVKIT_ALWAYS_INLINE and CONVKIT_UNROLL are undefined afterwards. Deliberately without an
// include guard: once per kernel.

#if defined(__GNUC__) || defined(__clang__)
#define CONVKIT_ALWAYS_INLINE inline __attribute__((always_inline))
#define CONVKIT_UNROLL _Pragma("GCC unroll 16")
#else
#define CONVKIT_ALWAYS_INLINE inline
#define CONVKIT_UNROLL
#endif

namespace CONVKIT_ISA_NAMESPACE(generic) {
#define CONVKIT_ISA_LEVEL 0
#include CONVKIT_ISA_FILE
#undef CONVKIT_ISA_LEVEL
}  // namespace CONVKIT_ISA_NAMESPACE(generic)

#if CONVKIT_ISA_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace CONVKIT_ISA_NAMESPACE(avx2) {
#define CONVKIT_ISA_LEVEL 1
#include CONVKIT_ISA_FILE
#undef CONVKIT_ISA_LEVEL
}  // namespace CONVKIT_ISA_NAMESPACE(avx2)
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#endif
namespace CONVKIT_ISA_NAMESPACE(avx512) {
#define CONVKIT_ISA_LEVEL 2
#include CONVKIT_ISA_FILE
#undef CONVKIT_ISA_LEVEL
}  // namespace CONVKIT_ISA_NAMESPACE(avx512)
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

#undef CONVKIT_ISA_FILE
#undef CONVKIT_ISA_NAMESPACE
#undef CONVKIT_ALWAYS_INLINE
#undef CONVKIT_UNROLL
