// hello: the smallest useful tracehost plugin. Counts exec calls into a metric and publishes one
// "hello.exec" event per exec — all declared, no plugin code per event.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <tracehost/sdk.hpp>

#include "hello.bpf.embed.h"
#include "hello.h"

namespace {

static_assert(sizeof(hello_event) == 176, "hello.h and hello.bpf.c disagree");

class HelloPlugin final : public tracehost::Plugin {
 public:
  static std::vector<tracehost::ConfigKey> config_keys() {
    return {tracehost::ConfigKey::boolean("events", true, "publish a hello.exec event per exec")};
  }

  static std::vector<tracehost::EventSchema> topics() {
    using tracehost::field;
    using tracehost::FieldType;
    return {tracehost::schema<hello_event>(
        "hello.exec", "a process called exec",
        {field<&hello_event::hdr, &th_event_header::timestamp_ns>("timestamp",
                                                                  FieldType::kTimestampNs),
         field<&hello_event::hdr, &th_event_header::pid>("pid", FieldType::kPid),
         field<&hello_event::hdr, &th_event_header::uid>("uid", FieldType::kUid),
         field<&hello_event::hdr, &th_event_header::comm>("comm", FieldType::kString),
         field<&hello_event::filename>("filename", FieldType::kString)})};
  }

  static std::vector<tracehost::MetricFamily> metric_families() {
    return {tracehost::MetricFamily::counter("hello_execs", "exec calls seen")};
  }

  tracehost::Status start(tracehost::Host& host) override {
    TH_ASSIGN_OR_RETURN(bool events, host.config().boolean("events"));
    TH_ASSIGN_OR_RETURN(tracehost::BpfObject obj,
                        host.bpf().open("hello", tracehost::embedded::hello_bpf()));
    TH_TRY(obj.set_rodata("emit_events", static_cast<std::uint32_t>(events ? 1 : 0)));
    TH_TRY(obj.load());
    TH_TRY(obj.attach("on_exec", tracehost::tp_btf("sched_process_exec")));

    TH_ASSIGN_OR_RETURN(tracehost::Map ring, obj.map("events"));
    TH_TRY(host.events().bind(ring, "hello.exec"));

    TH_ASSIGN_OR_RETURN(tracehost::Metric execs, host.metrics().find("hello_execs"));
    TH_ASSIGN_OR_RETURN(tracehost::Map counts, obj.map("execs"));
    return host.metrics().bind(execs, counts,
                               tracehost::MapBinding<std::uint32_t, std::uint64_t>());
  }
};

}  // namespace

TRACEHOST_PLUGIN(HelloPlugin, "hello", "1.0.0", "counts exec calls; a hello.exec event per exec");
