// Loads a valid object, then attaches where nothing exists: a uprobe on a missing function
// (mode "uprobe": an attach failure) or a missing raw tracepoint (mode "raw_tp": the kernel lacks
// it). The host must report the target, close the object, and keep the other plugins running.
#include <string>
#include <vector>

#include <tracehost/sdk.hpp>

#include "attach_fails.bpf.embed.h"

namespace th = tracehost;

namespace {

class AttachFailsPlugin final : public th::Plugin {
 public:
  static std::vector<th::ConfigKey> config_keys() {
    return {th::ConfigKey::str("mode", "uprobe", "what to attach to that does not exist")
                .choices({"uprobe", "raw_tp"})};
  }

  th::Status start(th::Host& host) override {
    TH_ASSIGN_OR_RETURN(std::string mode, host.config().str("mode"));
    TH_ASSIGN_OR_RETURN(th::BpfObject obj,
                        host.bpf().open("attach_fails", th::embedded::attach_fails_bpf()));
    TH_TRY(obj.load());
    if (mode == "raw_tp") {
      TH_TRY(obj.attach("attach_fails_raw_tp", th::raw_tp("tracehost_no_such_tracepoint")));
    } else {
      TH_TRY(obj.attach("attach_fails_uprobe",
                        th::uprobe("/proc/self/exe", "tracehost_no_such_function")));
    }
    return th::ok();
  }
};

}  // namespace

TRACEHOST_PLUGIN(AttachFailsPlugin, "attach_fails", "1.0.0", "attaches where nothing exists");
