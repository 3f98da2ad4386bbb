// Self metrics: process stats and plugin states appear in every registry snapshot; bus counters
// do not (the Prometheus sink exports those from the bus itself).
#include "host/self_metrics.hpp"

#include <cstdint>
#include <span>

#include <gtest/gtest.h>

#include "host/event_bus.hpp"
#include "host/host_services.hpp"
#include "host/map_registry.hpp"
#include "host/plugin_manager.hpp"

namespace tracehost::host {
namespace {

TEST(SelfMetrics, ProcessStats) {
  auto ps = read_process_stats();
  ASSERT_TRUE(ps.has_value());
  EXPECT_GT(ps->rss_bytes, 0u);
  EXPECT_GE(ps->cpu_seconds, 0.0);
}

TEST(SelfMetrics, ProcessFamiliesInSnapshotNotBusFamilies) {
  EventBus bus;
  MetricRegistry metrics;
  MapRegistry maps;
  HostCore core{bus, metrics, maps, nullptr, true};
  PluginManager plugins(core);

  th_field field{};
  field.struct_size = sizeof(field);
  field.name = "value";
  field.type = TH_FIELD_UINT;
  field.offset = 0;
  field.size = 4;
  th_event_schema schema{};
  schema.struct_size = sizeof(schema);
  schema.topic = "test.topic";
  schema.record_size = 4;
  schema.fields = &field;
  schema.field_count = 1;
  auto topic = bus.register_topic("test", schema);
  ASSERT_TRUE(topic.ok()) << topic.error().describe();
  std::uint32_t v = 7;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(bus.publish(*topic, std::as_bytes(std::span<const std::uint32_t, 1>(&v, 1))).ok());
  }

  {
    SelfMetrics self(metrics, plugins);
    MetricsSnapshot snap = metrics.collect();
    // bus counters belong to the Prometheus sink (EventBus::stats()): never twice in one scrape
    EXPECT_EQ(snap.find("tracehost_events_published"), nullptr);
    const FamilySnapshot* rss = snap.find("tracehost_process_resident_memory_bytes");
    ASSERT_NE(rss, nullptr);
    ASSERT_EQ(rss->series.size(), 1u);
    EXPECT_GT(rss->series[0].value, 0);
    EXPECT_NE(snap.find("tracehost_process_cpu_seconds"), nullptr);
    ASSERT_NE(snap.find("tracehost_plugin_state"), nullptr);
    EXPECT_TRUE(snap.find("tracehost_plugin_state")->series.empty());  // no plugin loaded
  }
  // Gone with the SelfMetrics object.
  EXPECT_EQ(metrics.collect().find("tracehost_process_cpu_seconds"), nullptr);
}

}  // namespace
}  // namespace tracehost::host
