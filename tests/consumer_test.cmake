# Configures, builds and runs a consumer project against this convkit, one of the ways a user's
# project can get it (MODE):
#   install       cmake --install this build into WORK_DIR/prefix, then examples/consumer with
#                 CMAKE_PREFIX_PATH=<prefix>: find_package(convkit CONFIG REQUIRED COMPONENTS <COMPONENTS>)
#   compiled      the same installed, with COMPONENTS compiled alone: linking convkit::compiled only
#   build_tree    examples/consumer with -Dconvkit_DIR=<this build dir>: the same, nothing installed
#   subdirectory  tests/consumers/subdirectory, which add_subdirectory()s CONVKIT_SOURCE_DIR with the
#                 same components (SETTINGS: CONVKIT_WITH_<X>=ON|OFF, comma-separated)
# Run: cmake -DMODE=<mode> -DCONVKIT_SOURCE_DIR=<src> -DCONVKIT_BINARY_DIR=<build> -DCONVKIT_VERSION=<x.y.z>
#            -DCOMPONENTS=<built components, comma-separated> [-DSETTINGS=...] -DWORK_DIR=<scratch> [-DCXX=<compiler>]
#            [-DGENERATOR=<generator>] -P consumer_test.cmake
cmake_minimum_required(VERSION 3.25)  # policies for this script
include(${CMAKE_CURRENT_LIST_DIR}/consumer_common.cmake)
file(REMOVE_RECURSE "${WORK_DIR}")
string(REPLACE "," ";" components "${COMPONENTS}")

if(MODE STREQUAL "compiled")  # installed, the compiled mode alone asked for
  set(COMPONENTS compiled)
  set(components compiled)
endif()
if(MODE STREQUAL "install" OR MODE STREQUAL "compiled")
  run_checked("cmake --install" "${CMAKE_COMMAND}" --install "${CONVKIT_BINARY_DIR}" --prefix "${WORK_DIR}/prefix")
  set(source "${CONVKIT_SOURCE_DIR}/examples/consumer")
  set(args "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" "-DCONVKIT_COMPONENTS=${COMPONENTS}")
elseif(MODE STREQUAL "build_tree")
  set(source "${CONVKIT_SOURCE_DIR}/examples/consumer")
  set(args "-Dconvkit_DIR=${CONVKIT_BINARY_DIR}" "-DCONVKIT_COMPONENTS=${COMPONENTS}")
elseif(MODE STREQUAL "subdirectory")
  set(source "${CONVKIT_SOURCE_DIR}/tests/consumers/subdirectory")
  set(args "-DCONVKIT_SOURCE_DIR=${CONVKIT_SOURCE_DIR}")
  string(REPLACE "," ";" settings "${SETTINGS}")  # this build's CONVKIT_WITH_*, so that it builds the same components
  list(TRANSFORM settings PREPEND "-D")
  list(APPEND args ${settings})
else()
  message(FATAL_ERROR "consumer_test.cmake: MODE must be install, compiled, build_tree or subdirectory, not '${MODE}'")
endif()

consumer_configure("${source}" "${WORK_DIR}/build" rc output ${args})
if(rc)
  message(FATAL_ERROR "configuring the consumer project (${MODE}) failed:\n${output}")
endif()
run_checked("building the consumer project (${MODE})" "${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
run_checked("the consumer program (${MODE})" "${WORK_DIR}/build/consumer")
# The consumer's configure said which of convkit's targets it links: all that this build has.
if(NOT output MATCHES "-- convkit consumer links: ([^\n]*)")
  message(FATAL_ERROR "the consumer project (${MODE}) did not say what it links:\n${output}")
endif()
set(linked "${CMAKE_MATCH_1}")
if(MODE STREQUAL "compiled")
  set(expected convkit::compiled)
elseif(MODE STREQUAL "subdirectory")
  set(expected convkit::convkit)  # and convkit::fftw where it is built
  if("fftw" IN_LIST components)
    list(APPEND expected convkit::fftw)
  endif()
else()
  list(TRANSFORM components PREPEND convkit:: OUTPUT_VARIABLE expected)
  list(PREPEND expected convkit::convkit)
endif()
string(REPLACE ";" " " expected "${expected}")
if(NOT linked STREQUAL "${expected}")
  message(FATAL_ERROR "the consumer (${MODE}) linked convkit targets '${linked}', expected '${expected}'")
endif()
message(STATUS "consumer (${MODE}) built and ran against convkit ${CONVKIT_VERSION}, linking ${linked}")
