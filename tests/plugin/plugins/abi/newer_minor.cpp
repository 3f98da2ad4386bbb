// Claims a newer minor than the host provides: it might call services the host lacks, so the
// host must refuse it.
#include <boost/dll/alias.hpp>

#include "minimal.hpp"

namespace {

const th_plugin_descriptor* newer_minor_descriptor() {
  static const th_plugin_descriptor desc = [] {
    th_plugin_descriptor d = *tracehost::detail::descriptor<tracehost_test::MinimalPlugin>(
        "newer_minor", "1.0.0", "built for a newer minor plugin API");
    d.api_minor = TRACEHOST_PLUGIN_API_MINOR + 1;
    return d;
  }();
  return &desc;
}

}  // namespace

BOOST_DLL_ALIAS(newer_minor_descriptor, tracehost_plugin)
