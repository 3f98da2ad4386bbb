# Script mode: generates the syscall name tables (th_enum_entry arrays) from the kernel's uapi
# headers, so that names follow the installed headers instead of a hand-typed list.
#
#   cmake -DX86_64_HEADER=<asm/unistd_64.h> -DGENERIC_HEADER=<asm-generic/unistd.h>
#         -DOUTPUT=<file.cpp> -P gen_syscall_tables.cmake
#
# x86_64: asm/unistd_64.h, one `#define __NR_<name> <number>` per syscall.
# arm64: asm-generic/unistd.h as arch/arm64/include/uapi/asm/unistd.h includes it: 64-bit
#   (__BITS_PER_LONG 64, no __SYSCALL_COMPAT) with the __ARCH_WANT_* macros arm64 defines. Its
#   conditional blocks are evaluated here, and the 64-bit names that alias `__NR3264_*` numbers
#   (`#define __NR_fcntl __NR3264_fcntl`) are resolved.
# A header that cannot be found yields an empty table for that arch (the build host's own
# arch is checked by the CMakeLists); a header construct this script does not understand is a
# hard error naming the line, so a header change is noticed instead of silently mis-parsed.

cmake_minimum_required(VERSION 3.25)

# Evaluates one preprocessor condition term: defined(X), defined X, !defined(X), X == N,
# X != N, or X (non-zero).
function(_th_eval_term term out)
  string(STRIP "${term}" term)
  set(negate FALSE)
  if(term MATCHES "^!(.*)$")
    set(negate TRUE)
    string(STRIP "${CMAKE_MATCH_1}" term)
  endif()
  # copy CMAKE_MATCH_n at once: every later MATCHES (even a failing one) resets them
  set(macro "")
  if(term MATCHES "^defined *\\( *([A-Za-z0-9_]+) *\\)$")
    set(macro "${CMAKE_MATCH_1}")
  elseif(term MATCHES "^defined +([A-Za-z0-9_]+)$")
    set(macro "${CMAKE_MATCH_1}")
  endif()
  if(NOT macro STREQUAL "")
    if(DEFINED _M_${macro})
      set(value TRUE)
    else()
      set(value FALSE)
    endif()
  elseif(term MATCHES "^([A-Za-z_][A-Za-z0-9_]*) *(==|!=) *([0-9]+)$")
    set(name "${CMAKE_MATCH_1}")
    set(op "${CMAKE_MATCH_2}")
    set(rhs "${CMAKE_MATCH_3}")
    set(lhs 0)
    if(DEFINED _M_${name})
      set(lhs "${_M_${name}}")
    endif()
    if(NOT lhs MATCHES "^[0-9]+$")
      message(FATAL_ERROR "gen_syscall_tables: ${name} is not numeric in '${term}'")
    endif()
    if(lhs EQUAL rhs)
      set(equal TRUE)
    else()
      set(equal FALSE)
    endif()
    if(op STREQUAL "==")
      set(value ${equal})
    elseif(equal)
      set(value FALSE)
    else()
      set(value TRUE)
    endif()
  elseif(term MATCHES "^[0-9]+$")
    if(term EQUAL 0)
      set(value FALSE)
    else()
      set(value TRUE)
    endif()
  else()
    message(FATAL_ERROR "gen_syscall_tables: unsupported preprocessor condition term '${term}'")
  endif()
  if(negate)
    if(value)
      set(value FALSE)
    else()
      set(value TRUE)
    endif()
  endif()
  set(${out} ${value} PARENT_SCOPE)
endfunction()

# a || b || c, each a && b && c of terms (no parentheses beyond defined(...)).
function(_th_eval_condition expr out)
  string(REPLACE "||" ";" alternatives "${expr}")
  foreach(alt IN LISTS alternatives)
    string(REPLACE "&&" ";" terms "${alt}")
    set(all TRUE)
    foreach(term IN LISTS terms)
      _th_eval_term("${term}" v)
      if(NOT v)
        set(all FALSE)
        break()
      endif()
    endforeach()
    if(all)
      set(${out} TRUE PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out} FALSE PARENT_SCOPE)
endfunction()

# Parses `header` with the macros in `predefined` (NAME or NAME=VALUE) and sets `out` to a
# sorted list of "<5-digit id>|<name>" for every `__NR_<name>` that resolves to a number.
function(_th_parse_unistd header predefined out)
  foreach(def IN LISTS predefined)
    if(def MATCHES "^([A-Za-z0-9_]+)=(.*)$")
      set(_M_${CMAKE_MATCH_1} "${CMAKE_MATCH_2}")
    else()
      set(_M_${def} "1")
    endif()
  endforeach()

  file(READ "${header}" text)
  # list-safe lines: drop ';' and '[' ']' (CMake list syntax), join continuations, drop
  # block comments (possibly spanning lines)
  string(REPLACE ";" " " text "${text}")
  string(REPLACE "[" " " text "${text}")
  string(REPLACE "]" " " text "${text}")
  string(REPLACE "\\\n" " " text "${text}")
  set(clean "")
  while(TRUE)
    string(FIND "${text}" "/*" open)
    if(open EQUAL -1)
      string(APPEND clean "${text}")
      break()
    endif()
    string(SUBSTRING "${text}" 0 ${open} before)
    string(APPEND clean "${before}")
    math(EXPR after_open "${open} + 2")
    string(SUBSTRING "${text}" ${after_open} -1 text)
    string(FIND "${text}" "*/" close)
    if(close EQUAL -1)
      message(FATAL_ERROR "gen_syscall_tables: unterminated comment in ${header}")
    endif()
    # keep the line count of the comment so error line numbers stay right
    string(SUBSTRING "${text}" 0 ${close} comment)
    string(REGEX REPLACE "[^\n]" "" newlines "${comment}")
    string(APPEND clean "${newlines}")
    math(EXPR after_close "${close} + 2")
    string(SUBSTRING "${text}" ${after_close} -1 text)
  endwhile()
  string(REPLACE "\n" ";" lines "${clean}")

  # conditional stack: each level is "<parent active>:<branch taken>:<active>"
  set(stack "")
  set(active TRUE)
  set(lineno 0)
  set(entries "")
  foreach(line IN LISTS lines)
    math(EXPR lineno "${lineno} + 1")
    string(STRIP "${line}" line)
    if(NOT line MATCHES "^#")
      continue()
    endif()
    string(REGEX REPLACE "^# *" "#" line "${line}")
    if(line MATCHES "^#(ifdef|ifndef) +([A-Za-z0-9_]+)")
      if(CMAKE_MATCH_1 STREQUAL "ifdef")
        set(cond "defined(${CMAKE_MATCH_2})")
      else()
        set(cond "!defined(${CMAKE_MATCH_2})")
      endif()
      _th_eval_condition("${cond}" v)
      if(active AND v)
        set(now TRUE)
      else()
        set(now FALSE)
      endif()
      list(APPEND stack "${active}:${v}")
      set(active ${now})
    elseif(line MATCHES "^#if +(.*)$")
      _th_eval_condition("${CMAKE_MATCH_1}" v)
      if(active AND v)
        set(now TRUE)
      else()
        set(now FALSE)
      endif()
      list(APPEND stack "${active}:${v}")
      set(active ${now})
    elseif(line MATCHES "^#elif +(.*)$")
      list(POP_BACK stack top)
      string(REPLACE ":" ";" top "${top}")
      list(GET top 0 parent)
      list(GET top 1 taken)
      _th_eval_condition("${CMAKE_MATCH_1}" v)
      if(parent AND v AND NOT taken)
        set(active TRUE)
      else()
        set(active FALSE)
      endif()
      if(taken OR v)
        set(taken TRUE)
      endif()
      list(APPEND stack "${parent}:${taken}")
    elseif(line MATCHES "^#else")
      list(POP_BACK stack top)
      string(REPLACE ":" ";" top "${top}")
      list(GET top 0 parent)
      list(GET top 1 taken)
      if(parent AND NOT taken)
        set(active TRUE)
      else()
        set(active FALSE)
      endif()
      list(APPEND stack "${parent}:TRUE")
    elseif(line MATCHES "^#endif")
      list(LENGTH stack depth)
      if(depth EQUAL 0)
        message(FATAL_ERROR "gen_syscall_tables: ${header}:${lineno}: #endif without #if")
      endif()
      list(POP_BACK stack top)
      string(REPLACE ":" ";" top "${top}")
      list(GET top 0 active)
    elseif(NOT active)
      continue()
    elseif(line MATCHES "^#define +([A-Za-z0-9_]+)(\\([^)]*\\))?(.*)$")
      set(name "${CMAKE_MATCH_1}")
      string(STRIP "${CMAKE_MATCH_3}" value)
      if(CMAKE_MATCH_2)
        set(_M_${name} "")   # function-like: only "defined" matters
        continue()
      endif()
      # resolve one level of aliasing (__NR_fcntl -> __NR3264_fcntl -> 25)
      if(value MATCHES "^[A-Za-z_][A-Za-z0-9_]*$" AND DEFINED _M_${value})
        set(value "${_M_${value}}")
      endif()
      set(_M_${name} "${value}")
      if(name MATCHES "^__NR_(.+)$")
        set(sys "${CMAKE_MATCH_1}")
        # not syscalls: the table size and the start of the arch-specific range
        if(sys STREQUAL "syscalls" OR sys STREQUAL "arch_specific_syscall")
          continue()
        endif()
        if(NOT value MATCHES "^[0-9]+$")
          message(FATAL_ERROR "gen_syscall_tables: ${header}:${lineno}: cannot resolve "
                              "${name} = '${value}' to a number")
        endif()
        string(LENGTH "${value}" len)
        math(EXPR pad "5 - ${len}")
        string(REPEAT "0" ${pad} zeros)
        list(APPEND entries "${zeros}${value}|${sys}")
      endif()
    elseif(line MATCHES "^#undef +([A-Za-z0-9_]+)")
      unset(_M_${CMAKE_MATCH_1})
    endif()
  endforeach()
  list(LENGTH stack depth)
  if(NOT depth EQUAL 0)
    message(FATAL_ERROR "gen_syscall_tables: ${header}: unterminated #if")
  endif()
  list(SORT entries)
  # one name per id: the first wins (headers define none twice today)
  set(result "")
  set(last_id "")
  foreach(e IN LISTS entries)
    string(REPLACE "|" ";" parts "${e}")
    list(GET parts 0 id)
    if(id STREQUAL last_id)
      continue()
    endif()
    set(last_id "${id}")
    list(APPEND result "${e}")
  endforeach()
  set(${out} "${result}" PARENT_SCOPE)
endfunction()

# Renders a table as the body of a std::array initializer.
function(_th_render entries out_body out_count)
  set(body "")
  set(count 0)
  foreach(e IN LISTS entries)
    string(REPLACE "|" ";" parts "${e}")
    list(GET parts 0 id)
    list(GET parts 1 name)
    math(EXPR id "${id}")  # strip the sort padding
    string(APPEND body "    th_enum_entry{${id}, \"${name}\"},\n")
    math(EXPR count "${count} + 1")
  endforeach()
  set(${out_body} "${body}" PARENT_SCOPE)
  set(${out_count} ${count} PARENT_SCOPE)
endfunction()

foreach(var X86_64_HEADER GENERIC_HEADER OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "gen_syscall_tables: -D${var}=... is required")
  endif()
endforeach()

set(x86_64_entries "")
if(EXISTS "${X86_64_HEADER}")
  _th_parse_unistd("${X86_64_HEADER}" "__BITS_PER_LONG=64" x86_64_entries)
  set(x86_64_source "${X86_64_HEADER}")
else()
  set(x86_64_source "(not found: ${X86_64_HEADER})")
endif()

# the macros arch/arm64/include/uapi/asm/unistd.h defines before including the generic table
set(arm64_defines __BITS_PER_LONG=64 __ARCH_WANT_RENAMEAT __ARCH_WANT_NEW_STAT
    __ARCH_WANT_SET_GET_RLIMIT __ARCH_WANT_TIME32_SYSCALLS __ARCH_WANT_SYS_CLONE3
    __ARCH_WANT_MEMFD_SECRET)
set(arm64_entries "")
if(EXISTS "${GENERIC_HEADER}")
  _th_parse_unistd("${GENERIC_HEADER}" "${arm64_defines}" arm64_entries)
  set(arm64_source "${GENERIC_HEADER}")
else()
  set(arm64_source "(not found: ${GENERIC_HEADER})")
endif()

_th_render("${x86_64_entries}" x86_64_body x86_64_count)
_th_render("${arm64_entries}" arm64_body arm64_count)

set(content "// Generated by gen_syscall_tables.cmake; do not edit.
// x86_64: ${x86_64_source} (${x86_64_count} syscalls)
// arm64:  ${arm64_source} (${arm64_count} syscalls)
#include \"syscall/syscall_tables.hpp\"

#include <array>

namespace tracehost::syscall {
namespace {

constexpr std::array<th_enum_entry, ${x86_64_count}> k_x86_64{{
${x86_64_body}}};

constexpr std::array<th_enum_entry, ${arm64_count}> k_arm64{{
${arm64_body}}};

}  // namespace

std::span<const th_enum_entry> table(Arch arch) noexcept {
  switch (arch) {
    case Arch::kX86_64: return k_x86_64;
    case Arch::kArm64: return k_arm64;
  }
  return {};
}

std::string_view table_source(Arch arch) noexcept {
  switch (arch) {
    case Arch::kX86_64: return \"${x86_64_source}\";
    case Arch::kArm64: return \"${arm64_source}\";
  }
  return {};
}

}  // namespace tracehost::syscall
")

# rewrite only on change, so dependents are not rebuilt for nothing
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
  if(old STREQUAL content)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${content}")
