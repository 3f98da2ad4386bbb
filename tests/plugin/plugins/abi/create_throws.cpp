// The constructor throws std::runtime_error: the SDK must turn it into TH_ERR_INTERNAL with the
// exception's text instead of letting it unwind into the host.
#include <stdexcept>

#include <tracehost/sdk.hpp>

namespace {

class CreateThrowsPlugin final : public tracehost::Plugin {
 public:
  explicit CreateThrowsPlugin(tracehost::Host&) {
    throw std::runtime_error("create_throws constructor threw on purpose (test plugin)");
  }
  tracehost::Status start(tracehost::Host&) override { return tracehost::ok(); }
};

}  // namespace

TRACEHOST_PLUGIN(CreateThrowsPlugin, "create_throws", "1.0.0", "constructor throws");
