# FindFFTW3 - FFTW 3 (Debian's libfftw3-dev ships pkg-config files but no CMake package).
#
# Components (default: double):
#   double         libfftw3          -> FFTW3::fftw3
#   float          libfftw3f         -> FFTW3::fftw3f
#   double_threads libfftw3_threads  -> FFTW3::fftw3_threads   (links FFTW3::fftw3)
#   float_threads  libfftw3f_threads -> FFTW3::fftw3f_threads  (links FFTW3::fftw3f)
# Sets FFTW3_FOUND, FFTW3_<component>_FOUND, FFTW3_INCLUDE_DIR. pkg-config, where present, only
# supplies hints; find_library/find_path do the finding, so FFTW3_ROOT works too.

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_FFTW3 QUIET fftw3)
endif()

find_path(FFTW3_INCLUDE_DIR fftw3.h HINTS ${PC_FFTW3_INCLUDE_DIRS})

if(NOT FFTW3_FIND_COMPONENTS)
  set(FFTW3_FIND_COMPONENTS double)
endif()

set(_fftw3_lib_double fftw3)
set(_fftw3_lib_float fftw3f)
set(_fftw3_lib_double_threads fftw3_threads)
set(_fftw3_lib_float_threads fftw3f_threads)
set(_fftw3_base_double_threads double)
set(_fftw3_base_float_threads float)

foreach(_c IN LISTS FFTW3_FIND_COMPONENTS)
  if(NOT DEFINED _fftw3_lib_${_c})
    message(FATAL_ERROR "FindFFTW3: unknown component '${_c}'")
  endif()
  find_library(FFTW3_${_c}_LIBRARY NAMES ${_fftw3_lib_${_c}} HINTS ${PC_FFTW3_LIBRARY_DIRS})
  mark_as_advanced(FFTW3_${_c}_LIBRARY)
  if(FFTW3_${_c}_LIBRARY AND FFTW3_INCLUDE_DIR)
    set(FFTW3_${_c}_FOUND TRUE)
  else()
    set(FFTW3_${_c}_FOUND FALSE)
  endif()
endforeach()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(FFTW3 REQUIRED_VARS FFTW3_INCLUDE_DIR HANDLE_COMPONENTS)
mark_as_advanced(FFTW3_INCLUDE_DIR)

if(FFTW3_FOUND)
  foreach(_c double float double_threads float_threads)
    set(_t FFTW3::${_fftw3_lib_${_c}})
    if(FFTW3_${_c}_FOUND AND NOT TARGET ${_t})
      add_library(${_t} UNKNOWN IMPORTED)
      set_target_properties(${_t} PROPERTIES IMPORTED_LOCATION "${FFTW3_${_c}_LIBRARY}"
                                             INTERFACE_INCLUDE_DIRECTORIES "${FFTW3_INCLUDE_DIR}")
      if(DEFINED _fftw3_base_${_c})
        set_property(TARGET ${_t} APPEND PROPERTY INTERFACE_LINK_LIBRARIES
                     FFTW3::${_fftw3_lib_${_fftw3_base_${_c}}})
      endif()
    endif()
  endforeach()
endif()
