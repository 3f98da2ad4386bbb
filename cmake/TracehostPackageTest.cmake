# Script mode (ctest package.out_of_tree_plugin): proves a third party can build a plugin against
# the installed SDK alone.
#   -DBUILD_DIR=<tracehost build tree> -DEXAMPLE_DIR=<plugin project> -DWORK_DIR=<scratch>
#   -DGENERATOR=<cmake generator>
# 1. cmake --install BUILD_DIR into WORK_DIR/prefix
# 2. configure + build EXAMPLE_DIR with CMAKE_PREFIX_PATH=WORK_DIR/prefix (nothing else: the
#    source tree is not on any path)
# 3. the plugin exports exactly the descriptor alias, and the installed host lists and describes it
foreach(v BUILD_DIR EXAMPLE_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "TracehostPackageTest: -D${v}= is required")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "FAILED (exit ${rc}): ${cmd}\n${out}\n${err}")
  endif()
  set(run_output "${out}${err}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(example_build ${WORK_DIR}/hello-build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

message(STATUS "installing ${BUILD_DIR} into ${prefix}")
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(f include/tracehost/plugin_api.h lib/cmake/tracehost/tracehostConfig.cmake
          lib/cmake/tracehost/tracehostConfigVersion.cmake lib/cmake/tracehost/tracehostTargets.cmake
          lib/cmake/tracehost/TracehostPlugin.cmake share/tracehost/bpf/vmlinux/vmlinux.h
          bin/tracehost)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "installed tree lacks ${f}")
  endif()
endforeach()

message(STATUS "building ${EXAMPLE_DIR} against the installed SDK")
run(${CMAKE_COMMAND} -S ${EXAMPLE_DIR} -B ${example_build} -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRACEHOST_WERROR=ON)
run(${CMAKE_COMMAND} --build ${example_build})

set(plugin_dir ${example_build}/lib/tracehost/plugins)
set(so ${plugin_dir}/tracehost_hello.so)
if(NOT EXISTS ${so})
  message(FATAL_ERROR "the example build did not produce ${so}")
endif()

# Hidden visibility: the only exported data/function symbol is the descriptor alias.
find_program(NM nm REQUIRED)
run(${NM} -D --defined-only ${so})
if(NOT run_output MATCHES " tracehost_plugin\n")
  message(FATAL_ERROR "${so} does not export tracehost_plugin:\n${run_output}")
endif()
if(run_output MATCHES "[0-9a-f]+ T ([^\n]+)")
  message(FATAL_ERROR "${so} exports function ${CMAKE_MATCH_1}: plugins must be built with "
                      "hidden visibility (tracehost_add_plugin does that)\n${run_output}")
endif()

# The installed host loads it through the plugin ABI (no BPF needed to list or describe).
run(${prefix}/bin/tracehost plugins describe hello --plugin-dir ${plugin_dir})
message(STATUS "tracehost plugins describe hello:\n${run_output}")
if(NOT run_output MATCHES "hello")
  message(FATAL_ERROR "the installed host did not describe the out-of-tree plugin")
endif()

# As root: the plugin really runs — its BPF object loads and attaches, and an exec shows up as a
# hello.exec JSON line.
execute_process(COMMAND id -u OUTPUT_VARIABLE uid OUTPUT_STRIP_TRAILING_WHITESPACE)
if(uid STREQUAL "0")
  set(events ${WORK_DIR}/hello-events.jsonl)
  file(WRITE ${WORK_DIR}/hello.toml "[host]\nlog_level = \"warn\"\n"
       "[plugins.hello]\nenabled = true\nrequired = true\n"
       "[sinks.console]\nenabled = false\n"
       "[sinks.json]\npath = \"${events}\"\ntopics = [\"hello.*\"]\n")
  # (a script file: semicolons would split a CMake argument list)
  file(WRITE ${WORK_DIR}/hello-run.sh
       "'${prefix}/bin/tracehost' run --config '${WORK_DIR}/hello.toml' "
       "--plugin-dir '${plugin_dir}' --duration 4 &\n"
       "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do /bin/true; sleep 0.2; done\n"
       "wait $!\n")
  run(sh ${WORK_DIR}/hello-run.sh)
  file(READ ${events} lines)
  if(NOT lines MATCHES "\"topic\":\"hello.exec\"[^\n]*\"filename\":\"/bin/true\"")
    message(FATAL_ERROR "no hello.exec event for /bin/true in ${events}:\n${lines}\n${run_output}")
  endif()
  message(STATUS "the out-of-tree plugin ran: hello.exec events arrived")
else()
  message(STATUS "not root: skipped running the plugin (build and describe checked)")
endif()
message(STATUS "package test passed")
