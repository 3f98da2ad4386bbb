// Its BPF object fails verification: the host must return kLoadFailed with the verifier's
// complaint, and nothing of the object may stay in the kernel.
#include <tracehost/sdk.hpp>

#include "verifier_rejects.bpf.embed.h"

namespace th = tracehost;

namespace {

class VerifierRejectsPlugin final : public th::Plugin {
 public:
  th::Status start(th::Host& host) override {
    TH_ASSIGN_OR_RETURN(th::BpfObject obj,
                        host.bpf().open("verifier_rejects", th::embedded::verifier_rejects_bpf()));
    TH_TRY(obj.load());
    TH_TRY(obj.attach("verifier_rejects_prog", th::tp_btf("sys_enter")));
    return th::ok();
  }
};

}  // namespace

TRACEHOST_PLUGIN(VerifierRejectsPlugin, "verifier_rejects", "1.0.0",
                 "ships a program the verifier refuses");
