# tracehost_add_plugin(<name> SOURCES file.cpp... [BPF file.bpf.c...] [LIBRARIES lib...])
#   Builds plugin <name> as a shared library tracehost_<name>.so into the plugin directory of the
#   build tree (and installs it into the plugin directory), with each BPF source compiled and
#   embedded (see TracehostBpf.cmake). Plugins are built with hidden visibility and
#   --no-undefined, so that only the descriptor alias is exported and a missing symbol fails the
#   link, not the load.
function(tracehost_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "OUTPUT_DIR" "SOURCES;BPF;LIBRARIES" ${ARGN})
  set(target tracehost_plugin_${name})
  set(embed_objects)
  foreach(bpf_src ${ARG_BPF})
    get_filename_component(bpf_name ${bpf_src} NAME)
    string(REGEX REPLACE "\\.bpf\\.c$" "" bpf_stem ${bpf_name})
    string(MAKE_C_IDENTIFIER ${bpf_stem} bpf_ident)
    tracehost_bpf_object(${target}_${bpf_ident}_bpf SOURCE ${bpf_src})
    # the embedded bytes' accessor stays internal: the plugin exports only its descriptor alias
    set_target_properties(${target}_${bpf_ident}_bpf PROPERTIES
      CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
    list(APPEND embed_objects ${target}_${bpf_ident}_bpf)
  endforeach()
  add_library(${target} MODULE ${ARG_SOURCES})
  foreach(obj ${embed_objects})
    target_sources(${target} PRIVATE $<TARGET_OBJECTS:${obj}>)
    target_include_directories(${target} PRIVATE $<TARGET_PROPERTY:${obj},INTERFACE_INCLUDE_DIRECTORIES>)
    add_dependencies(${target} ${obj})
  endforeach()
  target_link_libraries(${target} PRIVATE tracehost::sdk ${ARG_LIBRARIES})
  # structs shared with the BPF side include "tracehost/event_header.h"
  target_include_directories(${target} PRIVATE ${TRACEHOST_BPF_INCLUDE_DIR})
  tracehost_warnings(${target})
  if(NOT ARG_OUTPUT_DIR)
    set(ARG_OUTPUT_DIR ${TRACEHOST_PLUGIN_OUTPUT_DIR})
  endif()
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME tracehost_${name}
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
  set_property(GLOBAL APPEND PROPERTY TRACEHOST_PLUGIN_TARGETS ${target})
  if(NOT ARG_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION ${TRACEHOST_INSTALL_PLUGIN_DIR})
  endif()
endfunction()
