# FindVips - libvips, for the benchmarks (Debian's libvips-dev ships pkg-config files, `vips` for the
# C API and `vips-cpp` for the C++ one, but no CMake package).
#
# Sets Vips_FOUND, Vips_VERSION and the imported target Vips::vips (the C API: <vips/vips.h>, with
# glib's include directories and libraries). pkg-config does the finding.

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_VIPS QUIET IMPORTED_TARGET vips)
endif()

set(Vips_VERSION "${PC_VIPS_VERSION}")
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Vips REQUIRED_VARS PC_VIPS_FOUND VERSION_VAR Vips_VERSION)

if(Vips_FOUND AND NOT TARGET Vips::vips)
  add_library(Vips::vips INTERFACE IMPORTED)
  target_link_libraries(Vips::vips INTERFACE PkgConfig::PC_VIPS)
endif()
