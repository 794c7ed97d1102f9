# convkit_probe_package(<package> <result-var> [find_package arguments...])
#
# Sets <result-var> to TRUE when find_package(<package> <arguments>) succeeds in a throw-away CMake
# project, FALSE otherwise (with the probe's log path in a status message). A package config that
# fails hard (Debian's oneDNN config calls find_package(OpenCL REQUIRED), which is fatal even under
# QUIET when the OpenCL headers are missing) then fails only the probe, never the caller's configure;
# the caller calls find_package itself afterwards, only for packages whose probe succeeded.
# Works in a project and in script mode (cmake -P), which the tests use.
function(convkit_probe_package package result)
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/probe-${package}")
  file(REMOVE_RECURSE "${dir}")
  string(REPLACE ";" " " args "${ARGN}")
  file(WRITE "${dir}/CMakeLists.txt"
       "cmake_minimum_required(VERSION 3.25)\n"
       "project(convkit_probe_${package} LANGUAGES CXX)\n"
       "find_package(${package} ${args})\n"
       "if(NOT ${package}_FOUND)\n  message(FATAL_ERROR \"${package} not found\")\nendif()\n")
  set(forward)
  foreach(var CMAKE_PREFIX_PATH CMAKE_MODULE_PATH CMAKE_CXX_COMPILER CMAKE_FIND_ROOT_PATH)
    if(DEFINED ${var})
      string(REPLACE ";" "\\;" value "${${var}}")
      list(APPEND forward "-D${var}=${value}")
    endif()
  endforeach()
  execute_process(COMMAND "${CMAKE_COMMAND}" -S "${dir}" -B "${dir}/build" ${forward}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE log ERROR_VARIABLE log)
  file(WRITE "${dir}/probe.log" "${log}")
  if(rc EQUAL 0)
    set(${result} TRUE PARENT_SCOPE)
  else()
    set(${result} FALSE PARENT_SCOPE)
    message(STATUS "optional package ${package}: not usable here, left out (why: ${dir}/probe.log)")
  endif()
endfunction()
