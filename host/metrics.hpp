// The metric registry: counter / gauge / histogram families registered by plugins (or the host),
// fed by plugin code or bound to BPF maps that are read at collect() time, and a plain snapshot
// that the Prometheus and console sinks render.
//
// Names: a family registered as "syscall_calls" is exposed as "tracehost_syscall_calls" in the
// snapshot; the Prometheus exposition adds "_total" to counters. Values are in base units.
//
// Cardinality: each family keeps at most max_series label sets (family's max_series, else the
// registry default 1000). Past the cap, new label sets fold into the series whose label values
// are all "other", and tracehost_metric_series_folded_total{family} counts every fold (one per
// folded plugin update; one per folded map entry per collect).
//
// Threads: every public member is thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "host/map_registry.hpp"
#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost::host {

enum class MetricType { kCounter, kGauge, kHistogram };
std::string_view to_string(MetricType type) noexcept;

inline constexpr std::string_view kMetricPrefix = "tracehost_";
inline constexpr std::uint32_t kDefaultMaxSeries = 1000;

// ---- snapshot ----------------------------------------------------------------------------------

struct HistogramBucket {
  double upper_bound = 0;  // le; the last bucket is +Inf
  std::uint64_t cumulative_count = 0;
};

struct SeriesSnapshot {
  std::vector<std::string> label_values;  // parallel to FamilySnapshot::label_names
  double value = 0;                       // counter, gauge
  std::uint64_t count = 0;                // histogram: observations
  double sum = 0;                         // histogram: sum of observations (base units)
  std::vector<HistogramBucket> buckets;   // histogram: cumulative, ascending, ends with +Inf
};

struct FamilySnapshot {
  std::string name;  // full name with prefix, without "_total": "tracehost_syscall_calls"
  std::string help;
  MetricType type = MetricType::kCounter;
  std::string owner;
  std::vector<std::string> label_names;
  std::vector<SeriesSnapshot> series;  // sorted by label values
};

struct MetricsSnapshot {
  std::vector<FamilySnapshot> families;  // registered families by name, then collector output
  [[nodiscard]] const FamilySnapshot* find(std::string_view full_name) const noexcept;
};

// ---- map reading (abstracted so unit tests need no BPF) ----------------------------------------

// One readable map: every key with its value, per-CPU values already summed as u64 words.
class MapReader {
 public:
  virtual ~MapReader() = default;
  [[nodiscard]] virtual std::uint32_t key_size() const = 0;
  [[nodiscard]] virtual std::uint32_t value_size() const = 0;  // size of one (summed) value
  [[nodiscard]] virtual std::string name() const = 0;          // for error messages
  using EntryFn =
      std::function<void(std::span<const std::byte> key, std::span<const std::byte> value)>;
  virtual Status for_each(const EntryFn& fn) = 0;
};

// Reads a map through its fd with bpf_map_get_next_key / bpf_map_lookup_elem; per-CPU maps are
// summed across possible CPUs (value_size must then be a multiple of 8). The fd is borrowed: the
// caller (the BPF object's owner) keeps it open until the binding is removed (remove_owner).
Result<std::unique_ptr<MapReader>> make_fd_map_reader(int map_fd, std::string name);
// Same over a registered map; the reader holds the MapRef, so the fd outlives the object.
Result<std::unique_ptr<MapReader>> make_map_reader(MapRef map);

// ---- registry
// ------------------------------------------------------------------------------------

using MetricId = std::uint64_t;  // 0 is never a valid id

enum class MetricOp {
  kAdd = TH_METRIC_ADD,
  kSet = TH_METRIC_SET,
  kObserve = TH_METRIC_OBSERVE,
  kRemove = TH_METRIC_REMOVE,
};

class MetricRegistry {
 public:
  explicit MetricRegistry(std::uint32_t default_max_series = kDefaultMaxSeries);
  ~MetricRegistry();
  MetricRegistry(const MetricRegistry&) = delete;
  MetricRegistry& operator=(const MetricRegistry&) = delete;

  // Copies the family. kInvalidArgument errors: bad name or label names,
  // histogram buckets not ascending, unknown type; duplicate full name → kInvalidArgument naming
  // the owner that has it.
  Result<MetricId> register_family(std::string_view owner, const th_metric_family& family);
  // By name without prefix ("syscall_calls") or full name ("tracehost_syscall_calls").
  [[nodiscard]] std::optional<MetricId> find(std::string_view name) const;

  // label_values: one per label name, in order. ADD on counters needs value >= 0; SET only on
  // gauges; OBSERVE only on histograms; REMOVE (gauges) drops that series if it exists.
  Status update(MetricId id, std::span<const std::string_view> label_values, MetricOp op,
                double value);
  Status update(MetricId id, std::span<const std::string> label_values, MetricOp op, double value);

  // Binds a map to the family: checks the binding against the map's key/value sizes and the
  // family (U64 for counter/gauge, LOG2_HIST for histogram; every family label given exactly
  // once). `owner` is who bound it (removed with remove_owner(owner)).
  Status bind_map(MetricId id, std::string_view owner, std::unique_ptr<MapReader> reader,
                  const th_map_binding& binding);

  // Collectors contribute whole families to every snapshot (the host's self metrics). They run
  // inside collect(), on the caller's thread; they must not call back into the registry.
  using Collector = std::function<void(MetricsSnapshot& out)>;
  std::uint64_t add_collector(std::string_view owner, Collector collector);

  // Removes the owner's families, map bindings (also those on other owners' families) and
  // collectors. Safe while another thread runs collect().
  void remove_owner(std::string_view owner);

  // Reads every binding, merges plugin-fed series, runs collectors, and appends
  // tracehost_metric_series_folded_total. Map read failures are logged once per binding and the
  // binding's series are left out of that snapshot.
  MetricsSnapshot collect();

  [[nodiscard]] std::uint32_t default_max_series() const noexcept { return default_max_series_; }

 private:
  struct Family;
  struct Binding;

  std::uint32_t default_max_series_;
  // Guards the maps below. Family contents have their own mutex (updates don't contend with
  // registration); collect() holds the lock shared while reading maps.
  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<Family>> by_name_;  // full name → family
  std::unordered_map<MetricId, std::shared_ptr<Family>> by_id_;
  std::vector<std::pair<std::string, std::pair<std::uint64_t, Collector>>> collectors_;
  MetricId next_id_ = 1;
  std::uint64_t next_collector_ = 1;
  // folds per full family name; kept after a family goes away so the counter never goes back
  std::mutex folded_mu_;
  std::map<std::string, std::uint64_t> folded_;
};

// Converts a log2 slot array to cumulative buckets: slot i counts [2^i, 2^(i+1)) (slot 0 also
// holds 0), so its upper bound is 2^(i+1) * scale. Trailing empty slots are kept (stable bucket
// layout across scrapes); a final +Inf bucket equals the total count.
std::vector<HistogramBucket> log2_slots_to_buckets(std::span<const std::uint64_t> slots,
                                                   double scale);

}  // namespace tracehost::host
