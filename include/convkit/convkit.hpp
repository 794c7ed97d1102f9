// convkit/convkit.hpp - the umbrella header: the core (single images and layers), the direct
// backend, the profile file component (what automatic knows about this machine, kept between
// programs: profile_file.hpp), and every optional backend whose CMake target this translation unit
// was built with (each target defines its CONVKIT_HAS_* macro). Including a backend or component
// header is what adds it to the program.
#pragma once

#include "conv2d.hpp"
#include "cpu.hpp"
#include "dispatch.hpp"
#include "layer.hpp"
#include "layer_options.hpp"
#include "options.hpp"
#include "padding.hpp"
#include "plan.hpp"
#include "profile.hpp"
#include "profile_file.hpp"
#include "tuning.hpp"
#include "types.hpp"
#include "view.hpp"
#include "view4d.hpp"

#include "backends/direct.hpp"
#if defined(CONVKIT_HAS_FFTW)
#include "backends/fftw.hpp"
#endif
#if defined(CONVKIT_HAS_BLAS)
#include "backends/im2col.hpp"
#endif
#if defined(CONVKIT_HAS_CUFFT)
#include "backends/cufft.hpp"
#endif
