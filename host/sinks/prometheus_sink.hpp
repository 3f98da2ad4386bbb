// The Prometheus sink: an HTTP endpoint (prometheus-cpp Exposer, GET /metrics) serving
//  - every family of the MetricRegistry (collected on each scrape: map-bound families read their
//    BPF maps then), counters with "_total", base units, HELP and TYPE lines;
//  - the bus's own counters: tracehost_events_published_total{topic},
//    tracehost_events_delivered_total{topic,subscriber},
//    tracehost_events_dropped_total{topic,subscriber,where="kernel"|"bus"} (kernel drops have an
//    empty subscriber), tracehost_events_malformed_total{topic}.
//
// Keys: listen (default "127.0.0.1:9464"; "[::1]:9464" for IPv6), topics (limits the bus
// counters to matching topics), plus type/enabled. `where` is refused: it filters events, and
// this sink exports metrics.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "host/event_bus.hpp"
#include "host/metrics.hpp"
#include "host/sinks/filter.hpp"
#include "host/sinks/sink.hpp"

namespace prometheus {
class Exposer;
class Collectable;
}  // namespace prometheus

namespace tracehost::host {

struct PrometheusSinkOptions {
  std::string listen = "127.0.0.1:9464";
  std::string listen_where;  // "file:line:col" of the key, for errors at start()
  EventFilter filter;
};

Result<PrometheusSinkOptions> prometheus_sink_options(const toml::table& table,
                                                      const std::filesystem::path& config_path,
                                                      std::string_view table_name);
inline constexpr std::string_view kPrometheusSinkKeys[] = {"listen"};

// The bus counters above as snapshot families (only topics passing `filter`, if given).
void append_bus_metrics(const BusStats& stats, const EventFilter* filter, MetricsSnapshot& out);
// Snapshot → prometheus-cpp families (adds "_total" to counter names).
std::vector<prometheus::MetricFamily> to_prometheus(const MetricsSnapshot& snapshot);
// The text exposition format of a snapshot (prometheus::TextSerializer).
std::string prometheus_text(const MetricsSnapshot& snapshot);

class PrometheusSink final : public Sink {
 public:
  PrometheusSink(std::string name, PrometheusSinkOptions options, EventBus& bus,
                 MetricRegistry& metrics);
  ~PrometheusSink() override;

  [[nodiscard]] std::string_view name() const override { return name_; }
  [[nodiscard]] std::string_view type() const override { return "prometheus"; }
  // Binds the listener. A busy port is an error naming the address and the key to change.
  Status start() override;
  void stop() override;

  // What a scrape returns, without HTTP (tests, `check`).
  [[nodiscard]] std::vector<prometheus::MetricFamily> collect() const;

 private:
  std::string name_;
  PrometheusSinkOptions options_;
  EventBus& bus_;
  MetricRegistry& metrics_;
  std::shared_ptr<prometheus::Collectable> collectable_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace tracehost::host
