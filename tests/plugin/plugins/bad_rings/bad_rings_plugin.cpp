// Binds a ring buffer the wrong way (mode): a staged ring without TH_RINGBUF_STAGED
// ("staged_without_flag"), the flag on a ring without a stage ("flag_without_stage"), or a ring
// whose "<map>_muted" has the wrong shape ("bad_mute_map"); or declares a topic off the wrong way
// (API 1.5): one it does not have ("off_unknown"), another plugin's ("off_not_its_own"), or
// without a reason ("off_without_reason"). The host must refuse each with an error naming the
// ring or topic and the fix, and close the plugin's object.
#include <cstdint>
#include <string>
#include <vector>

#include <tracehost/sdk.hpp>

#include "bad_rings.bpf.embed.h"

namespace th = tracehost;

namespace {

struct bad_rings_record {
  std::uint64_t seq;
};

class BadRingsPlugin final : public th::Plugin {
 public:
  static std::vector<th::ConfigKey> config_keys() {
    return {th::ConfigKey::str("mode", "staged_without_flag", "which wrong bind to make")
                .choices({"staged_without_flag", "flag_without_stage", "bad_mute_map",
                          "off_unknown", "off_not_its_own", "off_without_reason"})};
  }

  static std::vector<th::EventSchema> topics() {
    return {th::schema<bad_rings_record>(
        "bad_rings.record", "never produced",
        {th::field<&bad_rings_record::seq>("seq", th::FieldType::kUint)})};
  }

  th::Status start(th::Host& host) override {
    TH_ASSIGN_OR_RETURN(std::string mode, host.config().str("mode"));
    if (mode == "off_unknown") return host.events().set_off("bad_rings.nope", "nope = false");
    if (mode == "off_not_its_own") return host.events().set_off("good.sys_enter", "mine = false");
    if (mode == "off_without_reason") return host.events().set_off("bad_rings.record", "");
    TH_ASSIGN_OR_RETURN(th::BpfObject obj,
                        host.bpf().open("bad_rings", th::embedded::bad_rings_bpf()));
    TH_TRY(obj.load());
    if (mode == "staged_without_flag") {
      TH_ASSIGN_OR_RETURN(th::Map ring, obj.map("staged_events"));
      return host.events().bind(ring, "bad_rings.record");
    }
    if (mode == "flag_without_stage") {
      TH_ASSIGN_OR_RETURN(th::Map ring, obj.map("plain_events"));
      return host.events().bind(ring, "bad_rings.record", TH_RINGBUF_STAGED);
    }
    TH_ASSIGN_OR_RETURN(th::Map ring, obj.map("odd_events"));
    return host.events().bind(ring, "bad_rings.record");
  }
};

}  // namespace

TRACEHOST_PLUGIN(BadRingsPlugin, "bad_rings", "1.0.0", "binds ring buffers the wrong way");
