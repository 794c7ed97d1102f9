// What every run-time dispatched kernel needs before simd/per_isa.inl compiles it three times: the
// intrinsics (x86 only) and the instruction-set vocabulary of cpu.hpp.
#pragma once

#include "../../cpu.hpp"

#if CONVKIT_ISA_X86
#include <immintrin.h>
#endif
