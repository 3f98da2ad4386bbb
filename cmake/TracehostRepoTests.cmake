# Tests of what ships beside the code (label "package"; they need the whole tree built):
#  - package.out_of_tree_plugin: install into a scratch prefix, build examples/hello_plugin
#    against it as a separate CMake project, and have the installed host describe the result
#    (cmake/TracehostPackageTest.cmake);
#  - config.<file>: every shipped config passes `tracehost check-config` (plugin tables are
#    validated against the built plugins' key tables; no privileges needed).
if(EXISTS ${PROJECT_SOURCE_DIR}/examples/hello_plugin/CMakeLists.txt)
  add_test(NAME package.out_of_tree_plugin
           COMMAND ${CMAKE_COMMAND}
                   -DBUILD_DIR=${CMAKE_BINARY_DIR}
                   -DEXAMPLE_DIR=${PROJECT_SOURCE_DIR}/examples/hello_plugin
                   -DWORK_DIR=${CMAKE_BINARY_DIR}/package-test
                   -DGENERATOR=${CMAKE_GENERATOR}
                   -P ${PROJECT_SOURCE_DIR}/cmake/TracehostPackageTest.cmake)
  set_tests_properties(package.out_of_tree_plugin PROPERTIES LABELS package TIMEOUT 300)
endif()

file(GLOB shipped_configs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/config/*.toml
     ${PROJECT_SOURCE_DIR}/config/examples/*.toml)
foreach(cfg ${shipped_configs})
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${cfg})
  add_test(NAME config.${rel}
           COMMAND $<TARGET_FILE:tracehost> check-config --config ${cfg}
                   --plugin-dir ${TRACEHOST_PLUGIN_OUTPUT_DIR})
  set_tests_properties(config.${rel} PROPERTIES LABELS package TIMEOUT 60)
endforeach()

# The Prometheus exposition, validated by promtool (optional: apt package prometheus). Root.
find_program(TRACEHOST_PROMTOOL promtool)
if(TRACEHOST_PROMTOOL)
  add_test(NAME runtime.promtool
           COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/check_prometheus.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(runtime.promtool PROPERTIES
    LABELS runtime RUN_SERIAL TRUE TIMEOUT 120 SKIP_RETURN_CODE 77
    ENVIRONMENT PROMTOOL=${TRACEHOST_PROMTOOL})
endif()
