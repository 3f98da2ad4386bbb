// Claims plugin API major TRACEHOST_PLUGIN_API_MAJOR + 1, as a plugin built against a future,
// incompatible SDK would. The host must refuse it before calling any of its code.
#include <boost/dll/alias.hpp>

#include "minimal.hpp"

namespace {

const th_plugin_descriptor* wrong_major_descriptor() {
  static const th_plugin_descriptor desc = [] {
    th_plugin_descriptor d = *tracehost::detail::descriptor<tracehost_test::MinimalPlugin>(
        "wrong_major", "1.0.0", "built for the next major plugin API");
    d.api_major = TRACEHOST_PLUGIN_API_MAJOR + 1;
    d.api_minor = 0;
    return d;
  }();
  return &desc;
}

}  // namespace

BOOST_DLL_ALIAS(wrong_major_descriptor, tracehost_plugin)
