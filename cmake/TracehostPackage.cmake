# Install rules for the SDK and the package config that lets third parties build plugins out of
# tree: find_package(tracehost) -> tracehost::sdk, tracehost_add_plugin(), tracehost_bpf_object().
#
# Installed layout (relative to CMAKE_INSTALL_PREFIX):
#   bin/tracehost                                   the host (host/CMakeLists.txt)
#   lib/tracehost/plugins/tracehost_<name>.so       first-party plugins (tracehost_add_plugin)
#   include/tracehost/                              plugin_api.h + C++ SDK (sdk/CMakeLists.txt)
#   share/tracehost/bpf/include/tracehost/*.bpf.h   BPF-side helpers
#   share/tracehost/bpf/vmlinux/vmlinux.h           fallback for build machines without BTF
#   lib/cmake/tracehost/                            tracehostConfig.cmake + the cmake modules
#   share/tracehost/config/                         default and example configs
include(CMakePackageConfigHelpers)

set(TRACEHOST_INSTALL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tracehost)
set(TRACEHOST_INSTALL_BPF_INCLUDE_DIR ${CMAKE_INSTALL_DATADIR}/tracehost/bpf/include)
set(TRACEHOST_INSTALL_VMLINUX_H ${CMAKE_INSTALL_DATADIR}/tracehost/bpf/vmlinux/vmlinux.h)

file(STRINGS ${PROJECT_SOURCE_DIR}/sdk/include/tracehost/plugin_api.h api_lines
     REGEX "^#define TRACEHOST_PLUGIN_API_(MAJOR|MINOR) [0-9]+")
foreach(line ${api_lines})
  if(line MATCHES "^#define TRACEHOST_PLUGIN_API_(MAJOR|MINOR) ([0-9]+)")
    set(TRACEHOST_PLUGIN_API_${CMAKE_MATCH_1} ${CMAKE_MATCH_2})
  endif()
endforeach()

set_target_properties(tracehost_sdk PROPERTIES EXPORT_NAME sdk)
install(TARGETS tracehost_sdk EXPORT tracehostTargets)
install(EXPORT tracehostTargets NAMESPACE tracehost:: DESTINATION ${TRACEHOST_INSTALL_CMAKE_DIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/bpf/include/ DESTINATION ${TRACEHOST_INSTALL_BPF_INCLUDE_DIR}
        FILES_MATCHING PATTERN "*.h")
install(FILES ${TRACEHOST_VMLINUX_DIR}/vmlinux.h
        DESTINATION ${CMAKE_INSTALL_DATADIR}/tracehost/bpf/vmlinux)

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/tracehostConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/tracehostConfig.cmake
  INSTALL_DESTINATION ${TRACEHOST_INSTALL_CMAKE_DIR}
  PATH_VARS TRACEHOST_INSTALL_BPF_INCLUDE_DIR TRACEHOST_INSTALL_PLUGIN_DIR TRACEHOST_INSTALL_VMLINUX_H)
# The SDK follows the plugin API: same major is compatible.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/tracehostConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES
  ${CMAKE_BINARY_DIR}/cmake/tracehostConfig.cmake
  ${CMAKE_BINARY_DIR}/cmake/tracehostConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/TracehostBpf.cmake
  ${PROJECT_SOURCE_DIR}/cmake/TracehostEmbed.cmake
  ${PROJECT_SOURCE_DIR}/cmake/TracehostPlugin.cmake
  ${PROJECT_SOURCE_DIR}/cmake/TracehostWarnings.cmake
  DESTINATION ${TRACEHOST_INSTALL_CMAKE_DIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/config/ DESTINATION ${CMAKE_INSTALL_DATADIR}/tracehost/config
        FILES_MATCHING PATTERN "*.toml")
