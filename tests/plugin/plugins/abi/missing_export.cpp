// A plugin whose author forgot TRACEHOST_PLUGIN: the descriptor function exists but, built with
// hidden visibility and no alias, nothing is exported.
#include "minimal.hpp"

namespace tracehost_test {

const th_plugin_descriptor* missing_export_descriptor() {
  return tracehost::detail::descriptor<MinimalPlugin>("missing_export", "1.0.0",
                                                      "exports no descriptor");
}

}  // namespace tracehost_test
