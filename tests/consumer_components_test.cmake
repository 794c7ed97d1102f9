# find_package(convkit) with and without COMPONENTS against this build's installed package, by
# configuring tests/consumers/components once per case (configure only, about a second each):
#   - every component built, asked for by name (REQUIRED), and fftw + blas together: all load, and
#     nothing else's dependency is looked up; with the package's exact major.minor version too
#   - COMPONENTS convkit: the core alone, and no dependency of another component looked up
#   - no COMPONENTS: core + every built component (their dependencies are all here)
#   - an unknown component, and each component this build left out: a clear failure
#   - an older minor version: refused (SameMinorVersion; 0.x minor releases change the API)
#   - a package built with CUDA on a machine without it (CMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON):
#     COMPONENTS fftw succeeds, COMPONENTS cufft fails saying CUDAToolkit is missing, OPTIONAL_COMPONENTS
#     cufft succeeds with convkit_cufft_FOUND FALSE, no COMPONENTS succeeds without convkit::cufft
# Run: cmake -DCONVKIT_SOURCE_DIR=<src> -DCONVKIT_BINARY_DIR=<build> -DCONVKIT_VERSION=<x.y.z>
#            -DCOMPONENTS=<built, comma-separated> -DKNOWN_COMPONENTS=<all, comma-separated>
#            -DWORK_DIR=<scratch> [-DCXX=<compiler>] [-DGENERATOR=<generator>] -P consumer_components_test.cmake
cmake_minimum_required(VERSION 3.25)  # policies for this script
include(${CMAKE_CURRENT_LIST_DIR}/consumer_common.cmake)
file(REMOVE_RECURSE "${WORK_DIR}")
run_checked("cmake --install" "${CMAKE_COMMAND}" --install "${CONVKIT_BINARY_DIR}" --prefix "${WORK_DIR}/prefix")
string(REPLACE "," ";" built "${COMPONENTS}")
string(REPLACE "," ";" known "${KNOWN_COMPONENTS}")
set(unbuilt ${known})
if(built)
  list(REMOVE_ITEM unbuilt ${built})
endif()
# Each component's dependency (the packages convkit_add_component looks up, in CMakeLists.txt).
set(dependency_fftw FFTW3)
set(dependency_blas BLAS)
set(dependency_cufft CUDAToolkit)

set(cases 0)
# check(<name> SUCCEEDS|FAILS [MATCHES <regex>] [ARGS <cmake -D arguments>...]): configures the
# components project with ARGS; it must succeed or fail as said, and its output must match MATCHES.
function(check name expectation)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "MATCHES" "ARGS")
  consumer_configure("${CONVKIT_SOURCE_DIR}/tests/consumers/components" "${WORK_DIR}/${name}" rc output
                     "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" ${arg_ARGS})
  if(expectation STREQUAL "SUCCEEDS" AND NOT rc EQUAL 0)
    message(FATAL_ERROR "case '${name}': configuring failed, it should have succeeded:\n${output}")
  elseif(expectation STREQUAL "FAILS" AND rc EQUAL 0)
    message(FATAL_ERROR "case '${name}': configuring succeeded, it should have failed:\n${output}")
  endif()
  string(REGEX REPLACE "[ \t\n]+" " " flat "${output}")  # CMake wraps the lines of its errors
  if(arg_MATCHES AND NOT flat MATCHES "${arg_MATCHES}")
    message(FATAL_ERROR "case '${name}': the output does not match '${arg_MATCHES}':\n${output}")
  endif()
  message(STATUS "case '${name}': ${expectation}, as it should")
  math(EXPR n "${cases} + 1")
  set(cases ${n} PARENT_SCOPE)
endfunction()

# not_looked_up(<var> <components loaded>): the dependencies of every other component, comma-separated.
function(not_looked_up var)
  set(packages)
  foreach(c IN LISTS known)
    if(NOT c IN_LIST ARGN AND DEFINED dependency_${c})
      list(APPEND packages ${dependency_${c}})
    endif()
  endforeach()
  string(REPLACE ";" "," packages "${packages}")
  set(${var} "${packages}" PARENT_SCOPE)
endfunction()

string(REGEX MATCH "^[0-9]+\\.[0-9]+" major_minor "${CONVKIT_VERSION}")
if(built)
  not_looked_up(others ${built})
  check(all_built_by_name SUCCEEDS ARGS "-DFIND_ARGS=${major_minor},REQUIRED,COMPONENTS,${COMPONENTS}"
        "-DEXPECT_TARGETS=${COMPONENTS}" "-DEXPECT_NOT_LOOKED_UP=${others}")
endif()
if("fftw" IN_LIST built AND "blas" IN_LIST built)
  not_looked_up(others fftw blas)
  check(fftw_blas SUCCEEDS ARGS "-DFIND_ARGS=REQUIRED,COMPONENTS,fftw,blas" "-DEXPECT_TARGETS=fftw,blas"
        "-DEXPECT_NO_TARGETS=cufft" "-DEXPECT_NOT_LOOKED_UP=${others}")
endif()
not_looked_up(none_others)
check(core_only_by_name SUCCEEDS ARGS "-DFIND_ARGS=REQUIRED,COMPONENTS,convkit" "-DEXPECT_NO_TARGETS=${KNOWN_COMPONENTS}"
      "-DEXPECT_NOT_LOOKED_UP=${none_others}")
check(no_components SUCCEEDS ARGS "-DFIND_ARGS=REQUIRED" "-DEXPECT_TARGETS=${COMPONENTS}")
check(unknown_component FAILS MATCHES "convkit has no component 'nosuch'"
      ARGS "-DFIND_ARGS=REQUIRED,COMPONENTS,nosuch")
foreach(c IN LISTS unbuilt)
  check(unbuilt_${c} FAILS MATCHES "convkit::${c} is not in this convkit package: it was built without it"
        ARGS "-DFIND_ARGS=REQUIRED,COMPONENTS,${c}")
  check(unbuilt_${c}_optional SUCCEEDS ARGS "-DFIND_ARGS=REQUIRED,OPTIONAL_COMPONENTS,${c}" "-DEXPECT_NOT_FOUND=${c}")
endforeach()
if(CONVKIT_VERSION MATCHES "^([0-9]+)\\.([0-9]+)" AND CMAKE_MATCH_2 GREATER 0)
  math(EXPR older_minor "${CMAKE_MATCH_2} - 1")
  check(older_minor_version FAILS MATCHES "convkitConfig.cmake, version: ${CONVKIT_VERSION}"
        ARGS "-DFIND_ARGS=${CMAKE_MATCH_1}.${older_minor},REQUIRED")
endif()

# A package built with CUDA, used on a machine without it.
if("cufft" IN_LIST built)
  set(hide_cuda -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON)
  set(others ${built})
  list(REMOVE_ITEM others cufft)
  string(REPLACE ";" "," others "${others}")
  if("fftw" IN_LIST built)
    check(no_cuda_fftw SUCCEEDS ARGS ${hide_cuda} "-DFIND_ARGS=REQUIRED,COMPONENTS,fftw" "-DEXPECT_TARGETS=fftw"
          "-DEXPECT_NO_TARGETS=cufft")
  endif()
  check(no_cuda_cufft FAILS MATCHES "convkit::cufft needs CUDAToolkit \\(for CUDA::toolkit\\), which was not found on this machine"
        ARGS ${hide_cuda} "-DFIND_ARGS=REQUIRED,COMPONENTS,cufft")
  check(no_cuda_cufft_optional SUCCEEDS ARGS ${hide_cuda} "-DFIND_ARGS=REQUIRED,OPTIONAL_COMPONENTS,cufft"
        "-DEXPECT_NOT_FOUND=cufft" "-DEXPECT_NO_TARGETS=cufft")
  check(no_cuda_no_components SUCCEEDS ARGS ${hide_cuda} "-DFIND_ARGS=REQUIRED" "-DEXPECT_TARGETS=${others}"
        "-DEXPECT_NO_TARGETS=cufft")
else()
  message(STATUS "convkit::cufft is not built here: the 'package built with CUDA, used without it' cases are skipped")
endif()
message(STATUS "${cases} find_package(convkit) cases passed")
