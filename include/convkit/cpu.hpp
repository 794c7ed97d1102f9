// convkit/cpu.hpp - the instruction sets convkit's CPU kernels are compiled for, and which one runs.
//
//   isa                     portable C++, AVX2 + FMA, or AVX-512 (F, VL, BW, DQ)
//   best_instruction_set()  the best one this CPU and operating system support
//
// Every program carries all three builds of each kernel (the direct backend's micro-kernel, the fft
// backend's spectrum product) and picks one at run time, so no -march flag is needed. A plan runs
// tuning::instruction_set if it is set, else the process default (tuning.hpp): the best one, unless
// set_default_tuning() chose another (tests and benchmarks compare kernels that way).
#pragma once

#include "version.hpp"

#include "types.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define CONVKIT_ISA_X86 1
#else
#define CONVKIT_ISA_X86 0
#endif

CONVKIT_NAMESPACE_BEGIN
namespace cpu {

/// The instruction sets convkit has kernels for, in increasing order of capability.
enum class isa { portable, avx2, avx512 };

}  // namespace cpu

namespace detail {
template <>
struct enum_table<cpu::isa> {
  static constexpr const char* type = "convkit::cpu::isa";
  static constexpr enum_entry<cpu::isa> entries[] = {{cpu::isa::portable, "portable", "portable C++"},
                                                     {cpu::isa::avx2, "avx2", "AVX2+FMA"},
                                                     {cpu::isa::avx512, "avx512", "AVX-512"}};
};
}  // namespace detail

namespace cpu {

/// How people read the instruction set: "portable C++", "AVX2+FMA" or "AVX-512".
inline const char* to_string(isa i) noexcept { return detail::enum_label(i); }

/// The best instruction set this CPU (and OS) supports.
inline isa best_instruction_set() noexcept {
#if CONVKIT_ISA_X86
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq"))
    return isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return isa::avx2;
#endif
  return isa::portable;
}

}  // namespace cpu
CONVKIT_NAMESPACE_END
