# Packaging: the generated headers <seqgrad/seqgrad.h> and <seqgrad/version.h>, the shared
# library's SONAME and exported symbols, `cmake --install` (headers, library, CMake package,
# pkg-config file) and `cpack -G DEB` (libseqgrad-dev). Included from the top-level CMakeLists.txt
# after the seqgrad target is defined.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# dist/ (MPI) is part of the library when the top level turns SEQGRAD_WITH_MPI on.
if(SEQGRAD_WITH_MPI)
  set(SEQGRAD_PACKAGE_WITH_MPI ON)
else()
  set(SEQGRAD_PACKAGE_WITH_MPI OFF)
endif()

# The headers include each other as "autograd/tensor.h", relative to the project root: installed
# under include/seqgrad/, that root is include/seqgrad, and <seqgrad/seqgrad.h> is found from include/.
set(SEQGRAD_GENERATED_INCLUDE ${PROJECT_BINARY_DIR}/include)
configure_file(${CMAKE_CURRENT_LIST_DIR}/version.h.in ${SEQGRAD_GENERATED_INCLUDE}/seqgrad/version.h @ONLY)
configure_file(${CMAKE_CURRENT_LIST_DIR}/seqgrad.h.in ${SEQGRAD_GENERATED_INCLUDE}/seqgrad/seqgrad.h COPYONLY)
target_include_directories(seqgrad PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}> $<BUILD_INTERFACE:${SEQGRAD_GENERATED_INCLUDE}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/seqgrad>)
# The public headers use C++20 (std::span, designated initializers): consumers compile as C++20 too.
target_compile_features(seqgrad PUBLIC cxx_std_20)

# Shared builds (-DBUILD_SHARED_LIBS=ON): libseqgrad.so.0.2 -> libseqgrad.so.0.2.0. Before 1.0 every
# minor release may break the ABI, so the SONAME carries major.minor.
set_target_properties(seqgrad PROPERTIES VERSION ${PROJECT_VERSION}
                                         SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
get_target_property(seqgrad_type seqgrad TYPE)
if(seqgrad_type STREQUAL "SHARED_LIBRARY")
  target_link_options(seqgrad PRIVATE "LINKER:--version-script=${CMAKE_CURRENT_LIST_DIR}/seqgrad.map"
                                      "LINKER:--no-undefined")
  set_property(TARGET seqgrad APPEND PROPERTY LINK_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/seqgrad.map)
endif()

# Installing is on by default only when seqgrad is the top-level project, so a project that pulls it
# in with add_subdirectory does not install seqgrad's files with its own.
option(SEQGRAD_INSTALL "Generate seqgrad's install rules and CPack package" ${PROJECT_IS_TOP_LEVEL})
if(NOT SEQGRAD_INSTALL)
  return()
endif()

set(SEQGRAD_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/seqgrad)
install(TARGETS seqgrad EXPORT seqgradTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Public headers only: the kernels, the ops' and dist's internals and the optimizers' update loops are
# not part of the API (and the kernels would pull xsimd into users' builds).
set(seqgrad_header_dirs autograd layers optim io)
if(SEQGRAD_PACKAGE_WITH_MPI)
  list(APPEND seqgrad_header_dirs dist)
endif()
foreach(dir IN LISTS seqgrad_header_dirs)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/seqgrad/${dir}
          FILES_MATCHING PATTERN "*.h" PATTERN "*.def"
          PATTERN "kernels" EXCLUDE PATTERN "*internal.h" EXCLUDE PATTERN "update.h" EXCLUDE)
endforeach()
# The one kernel header in the API: the int8 weights' type that layers/quantize.h exposes (no xsimd in it).
install(FILES ${PROJECT_SOURCE_DIR}/autograd/kernels/qgemm.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/seqgrad/autograd/kernels)
install(FILES ${SEQGRAD_GENERATED_INCLUDE}/seqgrad/seqgrad.h ${SEQGRAD_GENERATED_INCLUDE}/seqgrad/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/seqgrad)

# CMake package: find_package(seqgrad 0.2) accepts any 0.2.x (SameMinorVersion, as the SONAME).
install(EXPORT seqgradTargets NAMESPACE seqgrad:: DESTINATION ${SEQGRAD_INSTALL_CMAKEDIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/seqgradConfig.cmake.in
  ${PROJECT_BINARY_DIR}/seqgradConfig.cmake INSTALL_DESTINATION ${SEQGRAD_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/seqgradConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/seqgradConfig.cmake ${PROJECT_BINARY_DIR}/seqgradConfigVersion.cmake
        DESTINATION ${SEQGRAD_INSTALL_CMAKEDIR})

# pkg-config: the prefix is found from the .pc file's own place, so the same file works after
# `cmake --install --prefix P` and from the .deb (/usr).
file(RELATIVE_PATH SEQGRAD_PC_PREFIX_FROM_PCDIR /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" SEQGRAD_PC_PREFIX_FROM_PCDIR "${SEQGRAD_PC_PREFIX_FROM_PCDIR}")
set(SEQGRAD_PC_REQUIRES fmt)
if(SEQGRAD_PACKAGE_WITH_MPI)
  string(APPEND SEQGRAD_PC_REQUIRES " ompi-cxx")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/seqgrad.pc.in ${PROJECT_BINARY_DIR}/seqgrad.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/seqgrad.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# cpack -G DEB -> libseqgrad-dev_<version>_<arch>.deb, installed under /usr. Depends: the Debian
# packages users' builds need: fmt's headers, the C++20 library and libgomp of the GCC that built
# seqgrad, and Open MPI when dist/ is in.
set(CPACK_PACKAGE_NAME libseqgrad-dev)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "seqgrad maintainers <seqgrad@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "seqgrad: tape-based autodiff and recurrent sequence models in C++20 (development files)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(seqgrad_deb_depends "libfmt-dev")
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  string(REGEX MATCH "^[0-9]+" gcc_major ${CMAKE_CXX_COMPILER_VERSION})
  string(APPEND seqgrad_deb_depends ", libstdc++-${gcc_major}-dev, libgcc-${gcc_major}-dev")
endif()
if(SEQGRAD_PACKAGE_WITH_MPI)
  string(APPEND seqgrad_deb_depends ", libopenmpi-dev")
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS ${seqgrad_deb_depends})
include(CPack)
