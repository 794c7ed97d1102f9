# CONVKIT_BUILD_BENCHMARKS's default, by configuring convkit as the top-level project (every backend,
# test and example off):
#   - as it is: ON exactly where Google Benchmark is found (benchmark_DIR in the cache says);
#   - with Google Benchmark hidden (CMAKE_DISABLE_FIND_PACKAGE_benchmark=ON): OFF, and the configure
#     succeeds; forced ON, the configure fails saying Google Benchmark was not found.
# (That a project which add_subdirectory()s convkit gets OFF, tests/consumers/subdirectory checks.)
# Run: cmake -DCONVKIT_SOURCE_DIR=<src> -DWORK_DIR=<scratch> [-DCXX=<compiler>] [-DGENERATOR=<g>] -P benchmarks_option_test.cmake
cmake_minimum_required(VERSION 3.25)  # policies for this script
include(${CMAKE_CURRENT_LIST_DIR}/consumer_common.cmake)
file(REMOVE_RECURSE "${WORK_DIR}")
set(args -DCONVKIT_BUILD_TESTS=OFF -DCONVKIT_BUILD_EXAMPLES=OFF -DCONVKIT_WITH_FFTW=OFF -DCONVKIT_WITH_BLAS=OFF
    -DCONVKIT_WITH_CUDA=OFF)

# configure_default(<name> <args...>): configures convkit into WORK_DIR/<name>; returns its
# CONVKIT_BUILD_BENCHMARKS and benchmark_DIR cache entries in <name>_option and <name>_dir.
function(configure_default name)
  consumer_configure("${CONVKIT_SOURCE_DIR}" "${WORK_DIR}/${name}" rc output ${ARGN})
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "configuring convkit (${name}) failed:\n${output}")
  endif()
  file(STRINGS "${WORK_DIR}/${name}/CMakeCache.txt" option REGEX "^CONVKIT_BUILD_BENCHMARKS:")
  file(STRINGS "${WORK_DIR}/${name}/CMakeCache.txt" dir REGEX "^benchmark_DIR:")
  set(${name}_option "${option}" PARENT_SCOPE)
  set(${name}_dir "${dir}" PARENT_SCOPE)
endfunction()

configure_default(found ${args})
if(found_dir MATCHES "NOTFOUND$" OR found_dir STREQUAL "")
  set(expected OFF)
else()
  set(expected ON)
endif()
if(NOT found_option STREQUAL "CONVKIT_BUILD_BENCHMARKS:BOOL=${expected}")
  message(FATAL_ERROR "with ${found_dir}, the cache says ${found_option}, expected ${expected}")
endif()

configure_default(hidden ${args} -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON)
if(NOT hidden_option STREQUAL "CONVKIT_BUILD_BENCHMARKS:BOOL=OFF")
  message(FATAL_ERROR "without Google Benchmark, the cache says ${hidden_option}, expected OFF")
endif()

consumer_configure("${CONVKIT_SOURCE_DIR}" "${WORK_DIR}/forced" rc output ${args} -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
                   -DCONVKIT_BUILD_BENCHMARKS=ON)
if(rc EQUAL 0)
  message(FATAL_ERROR "CONVKIT_BUILD_BENCHMARKS=ON without Google Benchmark configured:\n${output}")
endif()
string(REGEX REPLACE "[ \t\n]+" " " flat "${output}")  # CMake wraps the lines of its errors
if(NOT flat MATCHES "CONVKIT_BUILD_BENCHMARKS is ON but Google Benchmark was not found")
  message(FATAL_ERROR "CONVKIT_BUILD_BENCHMARKS=ON without Google Benchmark failed without saying why:\n${output}")
endif()
message(STATUS "Google Benchmark as installed here: benchmarks ${expected} by default; hidden: OFF, and a clear "
               "error when forced ON")
