// The well-behaved test plugin: every SDK facility a real plugin uses — config keys, a schema
// shared with BPF, a ring buffer bound to a topic, a per-CPU map bound to a counter family, a
// plugin-fed metric, a topic registered at run time, user-space publish and a subscription.
// The plugin tests load it next to each broken plugin and check that it keeps working.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <tracehost/sdk.hpp>

#include "good.bpf.embed.h"
#include "good.h"

namespace th = tracehost;

static_assert(sizeof(good_event) == 40, "good_event must match the BPF side");
static_assert(offsetof(good_event, nr) == 16 && offsetof(good_event, comm) == 24);

namespace {

class GoodPlugin final : public th::Plugin {
 public:
  static std::vector<th::ConfigKey> config_keys() {
    return {th::ConfigKey::u64("target_tgid", 0, "process whose syscalls are traced (0: none)")
                .range(0, 4'194'304),
            th::ConfigKey::u64("ring_bytes", 256 * 1024, "size of the events ring buffer")
                .range(4096, 64 * 1024 * 1024)};
  }

  static std::vector<th::EventSchema> topics() {
    return {th::schema<good_event>(
        "good.sys_enter", "one syscall entry of the target process",
        {th::field<&good_event::timestamp_ns>("timestamp", th::FieldType::kTimestampNs),
         th::field<&good_event::pid>("pid", th::FieldType::kPid),
         th::field<&good_event::tid>("tid", th::FieldType::kTid),
         th::field<&good_event::nr>("nr", th::FieldType::kInt).doc("syscall number"),
         th::field<&good_event::comm>("comm")})};
  }

  static std::vector<th::MetricFamily> metric_families() {
    return {th::MetricFamily::counter("good_syscalls", "syscalls of the target process", {"nr"}),
            th::MetricFamily::counter("good_events_seen",
                                      "records the plugin's own subscriber received"),
            th::MetricFamily::gauge("good_started", "1 once start() succeeded")};
  }

  explicit GoodPlugin(th::Host& host) : host_(host) {}

  th::Status start(th::Host& host) override {
    auto config = host.config();
    TH_ASSIGN_OR_RETURN(std::uint64_t target, config.u64("target_tgid"));
    TH_ASSIGN_OR_RETURN(std::uint64_t ring_bytes, config.u64("ring_bytes"));

    TH_ASSIGN_OR_RETURN(th::BpfObject obj, host.bpf().open("good", th::embedded::good_bpf()));
    TH_TRY(obj.set_rodata("target_tgid", static_cast<std::uint32_t>(target)));
    TH_TRY(obj.set_max_entries("events", static_cast<std::uint32_t>(ring_bytes)));
    TH_TRY(obj.load());
    TH_TRY(obj.attach("good_sys_enter", th::tp_btf("sys_enter")));

    TH_ASSIGN_OR_RETURN(th::Map events, obj.map("events"));
    TH_TRY(host.events().bind(events, "good.sys_enter"));

    TH_ASSIGN_OR_RETURN(th::Map counts, host.maps().find("counts"));
    TH_ASSIGN_OR_RETURN(th::Metric syscalls, host.metrics().find("good_syscalls"));
    TH_TRY(host.metrics().bind(
        syscalls, counts,
        th::MapBinding<std::uint32_t, std::uint64_t>().label("nr", th::KeyKind::kUint)));
    // the map is readable from user space too (absent key: no error, no value)
    TH_ASSIGN_OR_RETURN(auto absent, (counts.find<std::uint32_t, std::uint64_t>(~0u)));
    if (absent.has_value()) return th::Error(th::ErrorKind::kMap, "key ~0 unexpectedly present");

    TH_ASSIGN_OR_RETURN(seen_, host.metrics().find("good_events_seen"));
    TH_ASSIGN_OR_RETURN(th::SubscriptionId sub,
                        host.events().subscribe("good.sys_enter", [this](const th::Event& e) {
                          if (e.as<good_event>().has_value()) (void)seen_->add(1);
                        }));
    (void)sub;

    TH_TRY(host.events().register_topic(
        th::schema<good_hello>("good.hello", "published once by start()",
                               {th::field<&good_hello::value>("value", th::FieldType::kUint)})));
    TH_TRY(host.events().publish("good.hello", good_hello{42, 0}));

    TH_ASSIGN_OR_RETURN(th::Metric started, host.metrics().find("good_started"));
    TH_TRY(started.set(1));
    host.log().info("good: tracing syscalls of pid ", target);
    return th::ok();
  }

  void stop() override { host_.log().info("good: stopping"); }

 private:
  th::Host& host_;
  std::optional<th::Metric> seen_;
};

}  // namespace

TRACEHOST_PLUGIN(GoodPlugin, "good", "1.0.0", "test plugin that uses every SDK facility");
