#include "host/self_metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "host/event_bus.hpp"
#include "host/plugin_manager.hpp"

namespace tracehost::host {

namespace {

FamilySnapshot family(std::string name, std::string help, MetricType type,
                      std::vector<std::string> labels) {
  FamilySnapshot f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  f.owner = std::string(SelfMetrics::kOwner);
  f.label_names = std::move(labels);
  return f;
}

void add(FamilySnapshot& f, std::vector<std::string> labels, double value) {
  SeriesSnapshot s;
  s.label_values = std::move(labels);
  s.value = value;
  f.series.push_back(std::move(s));
}

void sort_series(FamilySnapshot& f) {
  std::sort(f.series.begin(), f.series.end(), [](const SeriesSnapshot& a, const SeriesSnapshot& b) {
    return a.label_values < b.label_values;
  });
  // Two subscriptions with the same name (a plugin subscribing twice) share one series.
  std::vector<SeriesSnapshot> merged;
  for (auto& s : f.series) {
    if (!merged.empty() && merged.back().label_values == s.label_values) {
      merged.back().value += s.value;
    } else {
      merged.push_back(std::move(s));
    }
  }
  f.series = std::move(merged);
}

}  // namespace

std::optional<ProcessStats> read_process_stats() {
  ProcessStats out;
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return std::nullopt;
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  out.cpu_seconds = secs(ru.ru_utime) + secs(ru.ru_stime);
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size_pages = 0, resident_pages = 0;
  if (statm >> size_pages >> resident_pages) {
    out.rss_bytes = resident_pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  }
  return out;
}

SelfMetrics::SelfMetrics(MetricRegistry& registry, const PluginManager& plugins)
    : registry_(registry), plugins_(plugins) {
  registry_.add_collector(kOwner, [this](MetricsSnapshot& out) { collect(out); });
}

SelfMetrics::~SelfMetrics() { registry_.remove_owner(kOwner); }

void SelfMetrics::collect(MetricsSnapshot& out) const {
  auto state = family("tracehost_plugin_state",
                      "1 for the state each enabled plugin is in, 0 for the others",
                      MetricType::kGauge, {"plugin", "state"});
  for (const auto& p : plugins_.statuses()) {
    for (PluginState s : kAllPluginStates) {
      add(state, {p.name, std::string(to_string(s))}, p.state == s ? 1 : 0);
    }
  }
  sort_series(state);
  out.families.push_back(std::move(state));

  auto runs =
      family("tracehost_bpf_prog_run_count", "times each BPF program ran (kernel BPF statistics)",
             MetricType::kCounter, {"plugin", "program"});
  auto run_time = family("tracehost_bpf_prog_run_time_seconds",
                         "total time spent in each BPF program (kernel BPF statistics)",
                         MetricType::kCounter, {"plugin", "program"});
  for (const auto& s : plugins_.program_stats()) {
    add(runs, {s.plugin, s.program}, static_cast<double>(s.run_cnt));
    add(run_time, {s.plugin, s.program}, static_cast<double>(s.run_time_ns) * 1e-9);
  }
  sort_series(runs);
  sort_series(run_time);
  out.families.push_back(std::move(runs));
  out.families.push_back(std::move(run_time));

  // Bus counters (published, delivered, dropped per topic and subscriber) are exported by the
  // Prometheus sink straight from EventBus::stats(); exporting them here too would duplicate the
  // families in one scrape.

  if (auto ps = read_process_stats()) {
    auto cpu = family("tracehost_process_cpu_seconds", "user + system CPU time of the host",
                      MetricType::kCounter, {});
    add(cpu, {}, ps->cpu_seconds);
    auto rss = family("tracehost_process_resident_memory_bytes", "resident set size of the host",
                      MetricType::kGauge, {});
    add(rss, {}, static_cast<double>(ps->rss_bytes));
    out.families.push_back(std::move(cpu));
    out.families.push_back(std::move(rss));
  }
}

}  // namespace tracehost::host
