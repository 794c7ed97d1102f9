// The compiled mode: CMake's convkit::compiled target (option CONVKIT_COMPILED) builds convkit's
// plan core, problem validation and every backend of the build once, into a static library, and
// defines CONVKIT_COMPILED for the programs that link it. Their translation units then see the
// declarations below instead of instantiating the templates themselves, and include no backend's
// executors (backends/*.hpp keep only their public settings): a file that includes convkit compiles
// in a fraction of the header-only time. The library's one source, src/compiled.cpp, defines
// CONVKIT_COMPILING_LIBRARY, includes every backend and instantiates what is declared here.
//
//   CONVKIT_COMPILED             this translation unit is part of a program built against the library
//   CONVKIT_BACKEND_IMPLEMENTATION  1 where the backends' executors, cost models and registration are
//                                compiled: header-only programs, and the library itself
//
// Header-only use (the default) is unaffected: without CONVKIT_COMPILED nothing here applies.
#pragma once

#include "../version.hpp"

#include "arguments.hpp"
#include "prepared.hpp"

#if defined(CONVKIT_COMPILED)
CONVKIT_NAMESPACE_BEGIN
namespace detail {

extern template class prepared<float>;
extern template class prepared<double>;
extern template conv_problem image_problem<float>(index_t, index_t, view2d<const float>, const options&, bool);
extern template conv_problem image_problem<double>(index_t, index_t, view2d<const double>, const options&, bool);
extern template conv_problem layer_problem<float>(shape4d, view4d<const float>, const float*, const layer_options&,
                                                  bool);
extern template conv_problem layer_problem<double>(shape4d, view4d<const double>, const double*, const layer_options&,
                                                   bool);

}  // namespace detail
CONVKIT_NAMESPACE_END
#endif
