# Installing a header-only library needs no build: configure a fresh tree, then `cmake --install`
# at once (the tools' install rules are OPTIONAL, so unbuilt tools are skipped), and the headers and
# the package must be there.
# Run: cmake -DCONVKIT_SOURCE_DIR=<src> -DWORK_DIR=<scratch> -DGENERATOR=<gen> -P install_without_build_test.cmake
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND ${CMAKE_COMMAND} -S "${CONVKIT_SOURCE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
                        -DCONVKIT_BUILD_TESTS=OFF -DCONVKIT_BUILD_EXAMPLES=OFF -DCONVKIT_BUILD_BENCHMARKS=OFF
                RESULT_VARIABLE configured OUTPUT_QUIET ERROR_VARIABLE errors)
if(NOT configured EQUAL 0)
  message(FATAL_ERROR "configure failed: ${errors}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install "${WORK_DIR}/build" --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE installed OUTPUT_VARIABLE out ERROR_VARIABLE errors)
if(NOT installed EQUAL 0)
  message(FATAL_ERROR "cmake --install without a build failed: ${errors}")
endif()
foreach(f include/convkit/convkit.hpp include/convkit/image.hpp share/cmake/convkit/convkitConfig.cmake)
  if(NOT EXISTS "${WORK_DIR}/prefix/${f}")
    message(FATAL_ERROR "cmake --install without a build left out ${f}")
  endif()
endforeach()
message(STATUS "installed without a build: headers and package in ${WORK_DIR}/prefix")
