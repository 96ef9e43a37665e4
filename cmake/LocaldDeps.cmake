# Finds every third-party library through pkg-config. A missing one stops the
# configure step with the Debian package that provides it, so a new machine
# needs one apt-get line, not a hunt (scripts/bootstrap installs them all).
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package `pkg-config` (or run scripts/bootstrap)")
endif()

function(locald_require_pkg target module debian_package)
  pkg_check_modules(${target} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${target}_FOUND)
    message(FATAL_ERROR "missing dependency `${module}`: install the Debian package `${debian_package}` (or run scripts/bootstrap)")
  endif()
  add_library(locald::${target} ALIAS PkgConfig::${target})
endfunction()

locald_require_pkg(curl libcurl libcurl4-openssl-dev)
locald_require_pkg(crypto libcrypto libssl-dev)
locald_require_pkg(ssl libssl libssl-dev)
locald_require_pkg(archive libarchive libarchive-dev)
locald_require_pkg(zlib zlib zlib1g-dev)
locald_require_pkg(zstd libzstd libzstd-dev)
locald_require_pkg(yajl yajl libyajl-dev)
locald_require_pkg(seccomp libseccomp libseccomp-dev)
locald_require_pkg(cap libcap libcap-dev)
locald_require_pkg(tomlplusplus tomlplusplus libtomlplusplus-dev)
locald_require_pkg(fmt fmt libfmt-dev)

# ISA-L makes gzip inflate several times faster; optional, zlib otherwise.
pkg_check_modules(isal QUIET IMPORTED_TARGET GLOBAL libisal)
if(isal_FOUND)
  add_library(locald::isal ALIAS PkgConfig::isal)
  set(LOCALD_HAVE_ISAL ON CACHE INTERNAL "")
else()
  message(STATUS "libisal not found (Debian `libisal-dev`): gzip layers use zlib")
  set(LOCALD_HAVE_ISAL OFF CACHE INTERNAL "")
endif()

if(LOCALD_TESTS)
  find_package(GTest)
  if(NOT GTest_FOUND)
    message(FATAL_ERROR "missing dependency GoogleTest: install the Debian package `libgtest-dev` (and `libgmock-dev`)")
  endif()
endif()
