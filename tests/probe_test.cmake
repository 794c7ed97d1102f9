# convkit_probe_package (cmake/ProbePackage.cmake) against two fake packages in WORK_DIR: one whose
# config fails hard, as Debian's oneDNN config does without the OpenCL headers (it must be reported
# as missing, and this script must carry on), and one that is fine (it must be found).
# Run: cmake -DSOURCE_DIR=<convkit> -DWORK_DIR=<scratch> -P probe_test.cmake
list(APPEND CMAKE_MODULE_PATH "${SOURCE_DIR}/cmake")
include(ProbePackage)
file(REMOVE_RECURSE "${WORK_DIR}")
file(WRITE "${WORK_DIR}/prefix/lib/cmake/brokenpeer/brokenpeer-config.cmake"
     "find_package(ConvkitNoSuchDependency REQUIRED)\n")
file(WRITE "${WORK_DIR}/prefix/lib/cmake/finepeer/finepeer-config.cmake" "set(finepeer_FOUND TRUE)\n")
set(CMAKE_PREFIX_PATH "${WORK_DIR}/prefix")
set(CMAKE_CURRENT_BINARY_DIR "${WORK_DIR}")
convkit_probe_package(brokenpeer broken CONFIG QUIET)
convkit_probe_package(finepeer fine CONFIG QUIET)
if(broken OR NOT fine)
  message(FATAL_ERROR "convkit_probe_package: broken peer found = ${broken}, fine peer found = ${fine}")
endif()
message(STATUS "a failing peer config was probed without failing the caller; a working one was found")
