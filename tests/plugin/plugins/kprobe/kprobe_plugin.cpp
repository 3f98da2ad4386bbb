// Asks for a kprobe. On kernels without kprobes the host must say so (kKernelIncompatible, naming
// CONFIG_KPROBES and the alternatives), not fail with a bare errno.
#include <tracehost/sdk.hpp>

#include "kprobe_only.bpf.embed.h"

namespace th = tracehost;

namespace {

class KprobePlugin final : public th::Plugin {
 public:
  th::Status start(th::Host& host) override {
    TH_ASSIGN_OR_RETURN(th::BpfObject obj,
                        host.bpf().open("kprobe_only", th::embedded::kprobe_only_bpf()));
    TH_TRY(obj.load());
    TH_TRY(obj.attach("kprobe_only_prog", th::kprobe("do_sys_openat2")));
    return th::ok();
  }
};

}  // namespace

TRACEHOST_PLUGIN(KprobePlugin, "kprobe", "1.0.0", "attaches a kprobe");
