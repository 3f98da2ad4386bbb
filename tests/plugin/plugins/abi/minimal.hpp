// A plugin that does nothing, for the ABI cases: each case exports its descriptor differently.
#pragma once

#include <tracehost/sdk.hpp>

namespace tracehost_test {

class MinimalPlugin final : public tracehost::Plugin {
 public:
  tracehost::Status start(tracehost::Host& host) override {
    host.log().info("minimal plugin started");
    return tracehost::ok();
  }
};

}  // namespace tracehost_test
