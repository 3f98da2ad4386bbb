# BPF build pipeline: <stem>.bpf.c --clang -target bpf--> <stem>.bpf.o --> embedded bytes.
#
# tracehost_generate_vmlinux_h()
#   Dumps the running kernel's BTF (/sys/kernel/btf/vmlinux, or TRACEHOST_VMLINUX_BTF) as C into
#   ${CMAKE_BINARY_DIR}/bpf/vmlinux/vmlinux.h with bpftool. CO-RE relocations make the resulting
#   objects portable to other kernels with BTF. TRACEHOST_VMLINUX_H points at a ready-made file
#   instead (cross builds, build machines without BTF).
#
# tracehost_bpf_object(<target> SOURCE <file.bpf.c> [INCLUDES dir...] [DEPENDS file...])
#   Compiles the source into ${CMAKE_CURRENT_BINARY_DIR}/<stem>.bpf.o and generates an
#   embedding <stem>.bpf.embed.cpp + <stem>.bpf.embed.h providing
#     namespace tracehost::embedded { std::span<const std::byte> <stem>_bpf(); }
#   as an OBJECT library <target> to link into the plugin that ships the object.

find_program(TRACEHOST_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(TRACEHOST_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
# The installed package config sets this to the installed BPF helpers before including this file.
if(NOT TRACEHOST_BPF_INCLUDE_DIR)
  set(TRACEHOST_BPF_INCLUDE_DIR ${CMAKE_CURRENT_LIST_DIR}/../bpf/include)
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(TRACEHOST_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(TRACEHOST_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "tracehost: unsupported architecture ${CMAKE_SYSTEM_PROCESSOR} (x86_64 and arm64 are)")
endif()

function(tracehost_generate_vmlinux_h)
  set(out_dir ${CMAKE_BINARY_DIR}/bpf/vmlinux)
  set(out ${out_dir}/vmlinux.h)
  file(MAKE_DIRECTORY ${out_dir})
  if(TRACEHOST_VMLINUX_H)
    configure_file(${TRACEHOST_VMLINUX_H} ${out} COPYONLY)
  else()
    if(NOT TRACEHOST_VMLINUX_BTF)
      set(TRACEHOST_VMLINUX_BTF /sys/kernel/btf/vmlinux)
    endif()
    if(NOT EXISTS ${TRACEHOST_VMLINUX_BTF})
      message(FATAL_ERROR
        "tracehost: ${TRACEHOST_VMLINUX_BTF} not found: this kernel was built without BTF "
        "(CONFIG_DEBUG_INFO_BTF). Pass -DTRACEHOST_VMLINUX_H=/path/to/vmlinux.h generated on a "
        "kernel with BTF (bpftool btf dump file /sys/kernel/btf/vmlinux format c).")
    endif()
    if(NOT EXISTS ${out})
      execute_process(COMMAND ${TRACEHOST_BPFTOOL} btf dump file ${TRACEHOST_VMLINUX_BTF} format c
                      OUTPUT_FILE ${out} RESULT_VARIABLE rc ERROR_VARIABLE err)
      if(NOT rc EQUAL 0)
        file(REMOVE ${out})
        message(FATAL_ERROR "tracehost: bpftool could not dump ${TRACEHOST_VMLINUX_BTF}: ${err}")
      endif()
    endif()
  endif()
  set(TRACEHOST_VMLINUX_DIR ${out_dir} CACHE INTERNAL "directory holding vmlinux.h")
endfunction()

function(tracehost_bpf_object target)
  cmake_parse_arguments(ARG "" "SOURCE" "INCLUDES;DEPENDS" ${ARGN})
  get_filename_component(src ${ARG_SOURCE} ABSOLUTE)
  get_filename_component(name ${src} NAME)
  string(REGEX REPLACE "\\.bpf\\.c$" "" stem ${name})
  string(MAKE_C_IDENTIFIER ${stem} ident)
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${stem}.bpf.o)
  set(embed_cpp ${CMAKE_CURRENT_BINARY_DIR}/${stem}.bpf.embed.cpp)
  set(embed_h ${CMAKE_CURRENT_BINARY_DIR}/include/${ident}.bpf.embed.h)

  set(includes -I${TRACEHOST_VMLINUX_DIR} -I${TRACEHOST_BPF_INCLUDE_DIR}
               -I${CMAKE_CURRENT_SOURCE_DIR} -I${CMAKE_CURRENT_BINARY_DIR})
  foreach(dir ${ARG_INCLUDES})
    list(APPEND includes -I${dir})
  endforeach()
  file(GLOB bpf_headers ${TRACEHOST_BPF_INCLUDE_DIR}/tracehost/*.h)

  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${TRACEHOST_CLANG} -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_${TRACEHOST_BPF_ARCH}
            -Wall -Werror -Wno-unused-function ${includes} -MD -MF ${obj}.d -c ${src} -o ${obj}
    DEPENDS ${src} ${ARG_DEPENDS} ${bpf_headers}
    # every header the source includes (shared structs, helpers) is a dependency
    DEPFILE ${obj}.d
    COMMENT "BPF ${stem}.bpf.c -> ${stem}.bpf.o"
    VERBATIM)

  add_custom_command(
    OUTPUT ${embed_cpp} ${embed_h}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${obj} -DOUTPUT_CPP=${embed_cpp} -DOUTPUT_H=${embed_h}
            -DIDENT=${ident} -P ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/TracehostEmbed.cmake
    DEPENDS ${obj} ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/TracehostEmbed.cmake
    COMMENT "Embedding ${stem}.bpf.o"
    VERBATIM)

  add_library(${target} OBJECT ${embed_cpp})
  target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_BINARY_DIR}/include)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()
