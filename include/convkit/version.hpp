// convkit/version.hpp - which convkit this is: the release number, for the preprocessor and for people.
//
//   CONVKIT_VERSION_MAJOR    bumped when the API breaks after 1.0 (while 0.x, the minor number is)
//   CONVKIT_VERSION_MINOR    bumped for a release that adds to the API or, while 0.x, changes it
//   CONVKIT_VERSION_PATCH    bumped for a release with fixes only
//   CONVKIT_VERSION_STRING   "MAJOR.MINOR.PATCH", the same three numbers as a string literal
//   CONVKIT_VERSION          MAJOR * 10000 + MINOR * 100 + PATCH, for `#if CONVKIT_VERSION >= 200`
//
// CONVKIT_BACKEND_IMPLEMENTATION is 1 where the backends' executors are compiled: always, except in a
// program built against the compiled library (CONVKIT_COMPILED; detail/compiled.hpp).
//
// This header is the one place the version is written: CMake's project() reads the three numbers
// from it (CMakeLists.txt), so the installed package's convkitConfigVersion.cmake agrees with it,
// and the configure fails if CONVKIT_VERSION_STRING disagrees with them. Includes nothing.
#pragma once

#define CONVKIT_VERSION_MAJOR 0
#define CONVKIT_VERSION_MINOR 2
#define CONVKIT_VERSION_PATCH 0
#define CONVKIT_VERSION_STRING "0.2.0"
#define CONVKIT_VERSION (CONVKIT_VERSION_MAJOR * 10000 + CONVKIT_VERSION_MINOR * 100 + CONVKIT_VERSION_PATCH)

#if !defined(CONVKIT_COMPILED) || defined(CONVKIT_COMPILING_LIBRARY)
#define CONVKIT_BACKEND_IMPLEMENTATION 1
#else
#define CONVKIT_BACKEND_IMPLEMENTATION 0
#endif

// Every convkit name lives in an inline namespace named after the release (convkit::v0_2::...), so
// that two translation units built against different convkit releases cannot silently share one
// symbol (an ODR violation the linker would not report): they link to different names. Users write
// convkit::conv2d as always. The backends' availability is not part of the name: which backends a
// program has is decided at run time (detail/backend.hpp), so the API is the same in every build.
#define CONVKIT_ABI_NAMESPACE v0_2
#define CONVKIT_NAMESPACE_BEGIN \
  namespace convkit {           \
  inline namespace CONVKIT_ABI_NAMESPACE {
#define CONVKIT_NAMESPACE_END \
  }                           \
  }
