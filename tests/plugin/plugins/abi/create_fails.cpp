// Construction fails with a typed error through the SDK's static make(): the host must report the
// plugin's own message and kind.
#include <memory>

#include <tracehost/sdk.hpp>

namespace {

class CreateFailsPlugin final : public tracehost::Plugin {
 public:
  static tracehost::Result<std::unique_ptr<CreateFailsPlugin>> make(tracehost::Host& host) {
    host.log().warn("create_fails: refusing to be created");
    return tracehost::Error(tracehost::ErrorKind::kUnsupportedPlatform,
                            "create_fails refuses to run on purpose (test plugin)");
  }
  tracehost::Status start(tracehost::Host&) override { return tracehost::ok(); }
};

}  // namespace

TRACEHOST_PLUGIN(CreateFailsPlugin, "create_fails", "1.0.0", "make() returns an error");
