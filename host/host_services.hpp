// The th_host_api function table: the services a plugin gets, implemented on the host's kernel
// side (BpfObject, ProbeSet, MapRegistry) and data plane (EventBus, RingbufPoller,
// MetricRegistry).
//
// One PluginContext per plugin instance is its `th_host`: it knows the owner name and owns
// everything the plugin created through the table — BPF objects, probes, map and metric handles,
// ring buffer bindings, subscriptions — so the host can take all of it down when the plugin stops
// or fails, whatever the plugin does. Every entry point catches exceptions: nothing crosses the C
// boundary.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/logger.h>

#include "host/config.hpp"
#include "host/event_bus.hpp"
#include "host/map_registry.hpp"
#include "host/metrics.hpp"
#include "host/probes.hpp"
#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost::host {
class PluginContext;
}

// The opaque per-plugin context of plugin_api.h, defined by the host.
struct th_host {
  tracehost::host::PluginContext* ctx;
};

namespace tracehost::host {

class BpfObject;
class EventBus;
class RingbufPoller;

// The shared services every plugin context uses. Outlives every context.
struct HostCore {
  EventBus& bus;
  MetricRegistry& metrics;
  MapRegistry& maps;
  RingbufPoller* poller = nullptr;  // nullptr: ring buffer binding unavailable (no `run`)
  bool exclude_self = true;
};

// Reserved config keys every plugin may read besides its own (not part of its schema):
// "host.exclude_self" (bool: in-kernel filters should skip the host's pid) and "host.pid" (int).
inline constexpr std::string_view kHostExcludeSelfKey = "host.exclude_self";
inline constexpr std::string_view kHostPidKey = "host.pid";

// Converts a plugin's schema (with its stride and struct sizes) into a host-layout copy whose
// strings still point into the plugin's static data. Validated by the bus on registration.
struct NormalizedSchema {
  th_event_schema schema{};
  std::vector<th_field> fields;
};
Result<NormalizedSchema> normalize_schema(const th_event_schema* schema, std::string_view what);

class PluginContext {
 public:
  PluginContext(std::string owner, HostCore& core, PluginConfig config);
  ~PluginContext();  // teardown()
  PluginContext(const PluginContext&) = delete;
  PluginContext& operator=(const PluginContext&) = delete;

  [[nodiscard]] const std::string& owner() const noexcept { return owner_; }
  // The table handed to `create`; valid while this context lives.
  [[nodiscard]] const th_host_api* api() const noexcept { return &api_; }

  // Registration on the plugin's behalf (descriptor topics and metrics, before create).
  Status register_topic(const th_event_schema* schema);
  Result<th_metric*> register_metric(const th_metric_family* family);

  Status attach_deferred();

  // Teardown steps, in the host's shutdown order; each idempotent.
  // Unsubscribes every subscription of the plugin (waits until no callback of it runs).
  void remove_subscriptions();
  // Unbinds ring buffers from the poller, detaches probes, unregisters maps, closes objects.
  void close_kernel_objects();
  // Removes the plugin's metric families/bindings and its topics.
  void remove_registrations();
  // All of the above.
  void teardown();

  // Per-program statistics of every loaded object of this plugin.
  struct ProgramStat {
    std::string program;
    std::uint64_t run_cnt = 0;
    std::uint64_t run_time_ns = 0;
  };
  [[nodiscard]] std::vector<ProgramStat> program_stats() const;
  [[nodiscard]] std::vector<ProbeInfo> probes() const { return probes_.list(); }

  // ---- implementation of the C table (public for the trampolines in host_services.cpp) ----
  void log(int level, const char* message);
  Status config_bool(const char* key, int32_t* out);
  Status config_int(const char* key, int64_t* out);
  Status config_double(const char* key, double* out);
  Status config_string(const char* key, const char** out);
  Status config_list_size(const char* key, size_t* out);
  Status config_list_string(const char* key, size_t index, const char** out);
  Status config_list_int(const char* key, size_t index, int64_t* out);
  Result<th_bpf_object*> bpf_open(const char* name, const void* elf, size_t size);
  Status bpf_set_rodata(th_bpf_object* obj, const char* variable, const void* value, size_t size);
  Status bpf_set_map_max_entries(th_bpf_object* obj, const char* map, uint32_t max_entries);
  Status bpf_set_autoload(th_bpf_object* obj, const char* program, int32_t autoload);
  Status bpf_load(th_bpf_object* obj);
  Result<th_probe_id> bpf_attach(th_bpf_object* obj, const char* program,
                                 const th_attach_spec* spec);
  Status bpf_run_iter(th_bpf_object* obj, const char* program, th_iter_output_fn fn, void* user);
  Status bpf_detach(th_probe_id probe);
  Status bpf_probe_set_enabled(th_probe_id probe, bool enabled);
  Status bpf_list_probes(th_probe_info_fn fn, void* user);
  Result<th_map*> map_find(const char* name);
  Status map_info(th_map* map, th_map_info* out);
  Status map_lookup(th_map* map, const void* key, size_t key_size, void* value, size_t value_size,
                    uint32_t flags);
  Status map_update(th_map* map, const void* key, size_t key_size, const void* value,
                    size_t value_size, uint64_t flags);
  Status map_delete(th_map* map, const void* key, size_t key_size);
  Status map_next_key(th_map* map, const void* key, void* next_key, size_t key_size);
  Status event_bind_ringbuf(th_map* ringbuf, const char* topic, std::uint32_t flags);
  Status event_publish(const char* topic, const void* data, size_t size);
  Result<th_subscription_id> event_subscribe(const char* glob, th_event_batch_fn fn, void* user);
  Status event_unsubscribe(th_subscription_id id);
  Status event_set_off(const char* topic, const char* reason);
  Result<th_metric*> metric_find(const char* name);
  Status metric_update(th_metric* metric, const char* const* label_values, size_t label_count,
                       int32_t op, double value);
  Status metric_bind_map(th_metric* metric, th_map* map, const th_map_binding* binding);

 private:
  struct ObjectEntry;

  // An error of `kind` unless this plugin registered topic `id` (named `topic`); `hint` ends it.
  Status check_owner(TopicId id, const char* topic, ErrorKind kind, std::string_view hint) const;
  struct MapEntry;
  struct MetricEntry;

  Result<BpfObject*> object_of(th_bpf_object* handle);    // mu_ held
  Result<int> flush_program_fd(const std::string& ring);  // "<map>_flush" of a staged ring
  Result<MapRef> map_of(th_map* handle);
  Result<MetricId> metric_of(th_metric* handle);
  Result<const ConfigValue*> config_value(const char* key, th_value_type type);
  th_metric* metric_handle(MetricId id);  // mu_ held

  std::string owner_;
  HostCore& core_;
  PluginConfig config_;
  std::shared_ptr<spdlog::logger> logger_;
  th_host handle_{};
  th_host_api api_{};
  ProbeSet probes_;
  std::string pid_text_;

  mutable std::mutex mu_;  // the tables below; serialises BpfObject calls of this plugin
  std::deque<std::unique_ptr<ObjectEntry>> objects_;
  std::deque<std::unique_ptr<MapEntry>> maps_;
  std::deque<std::unique_ptr<MetricEntry>> metrics_;
  bool has_ringbufs_ = false;  // bound ring buffers in the poller
  std::vector<th_subscription_id> subscriptions_;
  bool kernel_closed_ = false;
};

}  // namespace tracehost::host
