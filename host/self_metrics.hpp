// The host's own metrics, contributed to every MetricRegistry snapshot by a collector:
//   tracehost_plugin_state{plugin,state}                      gauge, 1 for the current state
//   tracehost_bpf_prog_run_count_total{plugin,program}        from the kernel's BPF run stats
//   tracehost_bpf_prog_run_time_seconds_total{plugin,program}
//   (the bus's tracehost_events_{published,malformed,delivered,dropped}_total and
//   tracehost_events_topic_muted come from the Prometheus sink's append_bus_metrics)
//   tracehost_process_cpu_seconds_total, tracehost_process_resident_memory_bytes
// Values are read at collect time; nothing is kept between scrapes.
#pragma once

#include <cstdint>
#include <optional>

#include "host/metrics.hpp"

namespace tracehost::host {

class EventBus;
class PluginManager;

struct ProcessStats {
  double cpu_seconds = 0;  // user + system
  std::uint64_t rss_bytes = 0;
};
// getrusage(RUSAGE_SELF) and /proc/self/statm.
std::optional<ProcessStats> read_process_stats();

class SelfMetrics {
 public:
  // Registers the collector; `plugins` must outlive this object.
  SelfMetrics(MetricRegistry& registry, const PluginManager& plugins);
  ~SelfMetrics();  // removes the collector
  SelfMetrics(const SelfMetrics&) = delete;
  SelfMetrics& operator=(const SelfMetrics&) = delete;

  // What the collector adds (exposed for tests).
  void collect(MetricsSnapshot& out) const;

  static constexpr std::string_view kOwner = "tracehost.self";

 private:
  MetricRegistry& registry_;
  const PluginManager& plugins_;
};

}  // namespace tracehost::host
