# tracehost_warnings(<target>): the warning set for host, SDK, plugins and tests.
function(tracehost_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wold-style-cast -Wcast-align -Woverloaded-virtual
                                           -Wimplicit-fallthrough)
  if(TRACEHOST_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
