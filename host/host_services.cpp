#include "host/host_services.hpp"

#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
#include <span>
#include <utility>

#include "host/bpf_object.hpp"
#include "host/bpf_stats.hpp"
#include "host/event_bus.hpp"
#include "host/kernel_checks.hpp"
#include "host/logging.hpp"
#include "host/plugin_abi.hpp"
#include "host/ringbuf_poller.hpp"

// Handles given to plugins: addresses of these, owned by the plugin's context.
struct th_bpf_object {
  tracehost::host::BpfObject* object;
};
struct th_map {
  tracehost::host::MapRef map;
};
struct th_metric {
  tracehost::host::MetricId id;
  bool own;  // registered by this plugin: it may update and bind it
};

namespace tracehost::host {

struct PluginContext::ObjectEntry {
  std::unique_ptr<BpfObject> object;
  th_bpf_object handle{};
};
struct PluginContext::MapEntry {
  th_map handle;
};
struct PluginContext::MetricEntry {
  th_metric handle{};
};

namespace {

th_status to_status(const Error& e, th_error* err) {
  e.to_c(err);
  return static_cast<th_status>(e.kind());
}

th_status finish(const Status& s, th_error* err) {
  if (s.ok()) return TH_OK;
  return to_status(s.error(), err);
}

// Runs one service call with exceptions turned into TH_ERR_INTERNAL: nothing crosses the C
// boundary, whatever the host code underneath throws (std::bad_alloc, toml, fmt).
template <typename F>
th_status guarded(th_host* host, th_error* err, F&& f) noexcept {
  try {
    if (host == nullptr || host->ctx == nullptr) {
      return to_status(Error(ErrorKind::kInvalidArgument, "th_host is NULL"), err);
    }
    return finish(f(*host->ctx), err);
  } catch (const std::bad_alloc&) {
    return to_status(Error(ErrorKind::kInternal, "out of memory", ENOMEM), err);
  } catch (const std::exception& e) {
    return to_status(Error(ErrorKind::kInternal, std::string("host exception: ") + e.what()), err);
  } catch (...) {
    return to_status(Error(ErrorKind::kInternal, "unknown host exception"), err);
  }
}

Error null_arg(const char* what) {
  return Error(ErrorKind::kInvalidArgument, std::string(what) + " is NULL", EINVAL);
}

// Writes a Result's value through `out` (checked non-NULL) and returns its status.
template <typename T, typename U>
Status deliver(Result<T> r, U* out) {
  if (!r.ok()) return std::move(r).error();
  *out = std::move(r).value();
  return ok();
}

spdlog::level::level_enum to_spdlog(int level) {
  switch (level) {
    case TH_LOG_TRACE:
      return spdlog::level::trace;
    case TH_LOG_DEBUG:
      return spdlog::level::debug;
    case TH_LOG_INFO:
      return spdlog::level::info;
    case TH_LOG_WARN:
      return spdlog::level::warn;
    default:
      return spdlog::level::err;
  }
}

std::span<const std::byte> bytes(const void* p, std::size_t n) {
  return {static_cast<const std::byte*>(p), n};
}
std::span<std::byte> wbytes(void* p, std::size_t n) { return {static_cast<std::byte*>(p), n}; }

// ---- the C table -----------------------------------------------------------------------------

void c_log(th_host* host, int32_t level, const char* message) {
  try {
    if (host != nullptr && host->ctx != nullptr) host->ctx->log(level, message);
  } catch (...) {  // logging must never fail the caller
  }
}

th_status c_config_bool(th_host* h, const char* key, int32_t* out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.config_bool(key, out); });
}
th_status c_config_int(th_host* h, const char* key, int64_t* out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.config_int(key, out); });
}
th_status c_config_double(th_host* h, const char* key, double* out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.config_double(key, out); });
}
th_status c_config_string(th_host* h, const char* key, const char** out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.config_string(key, out); });
}
th_status c_config_list_size(th_host* h, const char* key, size_t* out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.config_list_size(key, out); });
}
th_status c_config_list_string(th_host* h, const char* key, size_t index, const char** out,
                               th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.config_list_string(key, index, out); });
}
th_status c_config_list_int(th_host* h, const char* key, size_t index, int64_t* out,
                            th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.config_list_int(key, index, out); });
}

th_status c_bpf_open(th_host* h, const char* name, const void* elf, size_t size,
                     th_bpf_object** out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) -> Status {
    if (out == nullptr) return null_arg("out");
    *out = nullptr;
    return deliver(c.bpf_open(name, elf, size), out);
  });
}
th_status c_bpf_set_rodata(th_host* h, th_bpf_object* obj, const char* variable, const void* value,
                           size_t size, th_error* err) {
  return guarded(h, err,
                 [&](PluginContext& c) { return c.bpf_set_rodata(obj, variable, value, size); });
}
th_status c_bpf_set_map_max_entries(th_host* h, th_bpf_object* obj, const char* map,
                                    uint32_t max_entries, th_error* err) {
  return guarded(
      h, err, [&](PluginContext& c) { return c.bpf_set_map_max_entries(obj, map, max_entries); });
}
th_status c_bpf_set_autoload(th_host* h, th_bpf_object* obj, const char* program, int32_t autoload,
                             th_error* err) {
  return guarded(h, err,
                 [&](PluginContext& c) { return c.bpf_set_autoload(obj, program, autoload); });
}
th_status c_bpf_load(th_host* h, th_bpf_object* obj, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.bpf_load(obj); });
}
th_status c_bpf_attach(th_host* h, th_bpf_object* obj, const char* program,
                       const th_attach_spec* spec, th_probe_id* out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) -> Status {
    auto r = c.bpf_attach(obj, program, spec);
    if (!r.ok()) return std::move(r).error();
    if (out != nullptr) *out = *r;
    return ok();
  });
}
th_status c_bpf_run_iter(th_host* h, th_bpf_object* obj, const char* program, th_iter_output_fn fn,
                         void* user, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.bpf_run_iter(obj, program, fn, user); });
}
th_status c_bpf_attach_deferred(th_host* h, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.attach_deferred(); });
}
th_status c_bpf_detach(th_host* h, th_probe_id probe, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.bpf_detach(probe); });
}
th_status c_bpf_probe_set_enabled(th_host* h, th_probe_id probe, int32_t enabled, th_error* err) {
  return guarded(h, err,
                 [&](PluginContext& c) { return c.bpf_probe_set_enabled(probe, enabled != 0); });
}
th_status c_bpf_list_probes(th_host* h, th_probe_info_fn fn, void* user, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.bpf_list_probes(fn, user); });
}

th_status c_map_find(th_host* h, const char* name, th_map** out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) -> Status {
    if (out == nullptr) return null_arg("out");
    *out = nullptr;
    return deliver(c.map_find(name), out);
  });
}
th_status c_map_info(th_host* h, th_map* map, th_map_info* out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.map_info(map, out); });
}
th_status c_map_lookup(th_host* h, th_map* map, const void* key, size_t key_size, void* value,
                       size_t value_size, uint32_t flags, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) {
    return c.map_lookup(map, key, key_size, value, value_size, flags);
  });
}
th_status c_map_update(th_host* h, th_map* map, const void* key, size_t key_size, const void* value,
                       size_t value_size, uint64_t flags, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) {
    return c.map_update(map, key, key_size, value, value_size, flags);
  });
}
th_status c_map_delete(th_host* h, th_map* map, const void* key, size_t key_size, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.map_delete(map, key, key_size); });
}
th_status c_map_next_key(th_host* h, th_map* map, const void* key, void* next_key, size_t key_size,
                         th_error* err) {
  return guarded(h, err,
                 [&](PluginContext& c) { return c.map_next_key(map, key, next_key, key_size); });
}

th_status c_event_register(th_host* h, const th_event_schema* schema, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.register_topic(schema); });
}
th_status c_event_bind_ringbuf(th_host* h, th_map* ringbuf, const char* topic, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.event_bind_ringbuf(ringbuf, topic, 0); });
}

th_status c_event_bind_ringbuf_flags(th_host* h, th_map* ringbuf, const char* topic, uint32_t flags,
                                     th_error* err) {
  return guarded(h, err,
                 [&](PluginContext& c) { return c.event_bind_ringbuf(ringbuf, topic, flags); });
}
th_status c_event_publish(th_host* h, const char* topic, const void* data, size_t size,
                          th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.event_publish(topic, data, size); });
}
th_status c_event_subscribe(th_host* h, const char* glob, th_event_batch_fn fn, void* user,
                            th_subscription_id* out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) -> Status {
    auto r = c.event_subscribe(glob, fn, user);
    if (!r.ok()) return std::move(r).error();
    if (out != nullptr) *out = *r;
    return ok();
  });
}
th_status c_event_unsubscribe(th_host* h, th_subscription_id id, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.event_unsubscribe(id); });
}
th_status c_event_set_off(th_host* h, const char* topic, const char* reason, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.event_set_off(topic, reason); });
}

th_status c_metric_register(th_host* h, const th_metric_family* family, th_metric** out,
                            th_error* err) {
  return guarded(h, err, [&](PluginContext& c) -> Status {
    auto r = c.register_metric(family);
    if (!r.ok()) return std::move(r).error();
    if (out != nullptr) *out = *r;
    return ok();
  });
}
th_status c_metric_find(th_host* h, const char* name, th_metric** out, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) -> Status {
    if (out == nullptr) return null_arg("out");
    *out = nullptr;
    return deliver(c.metric_find(name), out);
  });
}
th_status c_metric_update(th_host* h, th_metric* metric, const char* const* label_values,
                          size_t label_count, int32_t op, double value, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) {
    return c.metric_update(metric, label_values, label_count, op, value);
  });
}
th_status c_metric_bind_map(th_host* h, th_metric* metric, th_map* map,
                            const th_map_binding* binding, th_error* err) {
  return guarded(h, err, [&](PluginContext& c) { return c.metric_bind_map(metric, map, binding); });
}

std::string list_keys(const PluginConfig& cfg) {
  std::string out;
  for (const auto& [k, v] : cfg.values()) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

Result<NormalizedSchema> normalize_schema(const th_event_schema* schema, std::string_view what) {
  std::string w(what);
  TH_ASSIGN_OR_RETURN(th_event_schema s, abi_read<th_event_schema>(schema, w.c_str()));
  std::string fw = w + (s.topic != nullptr ? std::string(" '") + s.topic + "'" : "") + " fields";
  TH_ASSIGN_OR_RETURN(std::vector<th_field> fields,
                      abi_read_array(s.fields, s.field_count, fw.c_str()));
  NormalizedSchema out;
  out.fields = std::move(fields);
  out.schema = s;
  out.schema.fields = out.fields.empty() ? nullptr : out.fields.data();
  out.schema.field_count = out.fields.size();
  return out;
}

PluginContext::PluginContext(std::string owner, HostCore& core, PluginConfig config)
    : owner_(std::move(owner)),
      core_(core),
      config_(std::move(config)),
      logger_(component_logger(owner_)),
      probes_(owner_) {
  handle_.ctx = this;
  api_.struct_size = sizeof(th_host_api);
  api_.api_major = TRACEHOST_PLUGIN_API_MAJOR;
  api_.api_minor = TRACEHOST_PLUGIN_API_MINOR;
  api_.host = &handle_;
  api_.log = c_log;
  api_.config_bool = c_config_bool;
  api_.config_int = c_config_int;
  api_.config_double = c_config_double;
  api_.config_string = c_config_string;
  api_.config_list_size = c_config_list_size;
  api_.config_list_string = c_config_list_string;
  api_.config_list_int = c_config_list_int;
  api_.bpf_open = c_bpf_open;
  api_.bpf_set_rodata = c_bpf_set_rodata;
  api_.bpf_set_map_max_entries = c_bpf_set_map_max_entries;
  api_.bpf_set_autoload = c_bpf_set_autoload;
  api_.bpf_load = c_bpf_load;
  api_.bpf_attach = c_bpf_attach;
  api_.bpf_attach_deferred = c_bpf_attach_deferred;
  api_.bpf_detach = c_bpf_detach;
  api_.bpf_list_probes = c_bpf_list_probes;
  api_.map_find = c_map_find;
  api_.map_info = c_map_info;
  api_.map_lookup = c_map_lookup;
  api_.map_update = c_map_update;
  api_.map_delete = c_map_delete;
  api_.map_next_key = c_map_next_key;
  api_.event_register = c_event_register;
  api_.event_bind_ringbuf = c_event_bind_ringbuf;
  api_.event_bind_ringbuf_flags = c_event_bind_ringbuf_flags;
  api_.bpf_run_iter = c_bpf_run_iter;
  api_.bpf_probe_set_enabled = c_bpf_probe_set_enabled;
  api_.event_publish = c_event_publish;
  api_.event_subscribe = c_event_subscribe;
  api_.event_unsubscribe = c_event_unsubscribe;
  api_.event_set_off = c_event_set_off;
  api_.metric_register = c_metric_register;
  api_.metric_find = c_metric_find;
  api_.metric_update = c_metric_update;
  api_.metric_bind_map = c_metric_bind_map;
  pid_text_ = std::to_string(::getpid());
}

PluginContext::~PluginContext() { teardown(); }

// ---- registration ------------------------------------------------------------------------------

Status PluginContext::register_topic(const th_event_schema* schema) {
  TH_ASSIGN_OR_RETURN(NormalizedSchema n, normalize_schema(schema, "event schema"));
  auto r = core_.bus.register_topic(owner_, n.schema);
  if (!r.ok()) return std::move(r).error();
  return ok();
}

th_metric* PluginContext::metric_handle(MetricId id) {
  for (auto& e : metrics_) {
    if (e->handle.id == id) return &e->handle;
  }
  auto e = std::make_unique<MetricEntry>();
  e->handle.id = id;
  e->handle.own = false;
  metrics_.push_back(std::move(e));
  return &metrics_.back()->handle;
}

Result<th_metric*> PluginContext::register_metric(const th_metric_family* family) {
  TH_ASSIGN_OR_RETURN(th_metric_family f, abi_read<th_metric_family>(family, "metric family"));
  TH_ASSIGN_OR_RETURN(MetricId id, core_.metrics.register_family(owner_, f));
  std::lock_guard lock(mu_);
  th_metric* h = metric_handle(id);
  h->own = true;
  return h;
}

Status PluginContext::attach_deferred() { return probes_.attach_deferred(); }

// ---- teardown ----------------------------------------------------------------------------------

void PluginContext::remove_subscriptions() {
  std::vector<th_subscription_id> subs;
  {
    std::lock_guard lock(mu_);
    subs.swap(subscriptions_);
  }
  for (auto id : subs) (void)core_.bus.unsubscribe(id);
  // Catches subscriptions made behind our back (none expected) so no callback into the plugin's
  // code survives.
  core_.bus.unsubscribe_owner(owner_);
}

void PluginContext::close_kernel_objects() {
  bool had_ringbufs = false;
  {
    std::lock_guard lock(mu_);
    if (kernel_closed_) return;
    had_ringbufs = std::exchange(has_ringbufs_, false);
  }
  // The poller must stop reading a ring buffer before its object (and map) goes away.
  if (core_.poller != nullptr && had_ringbufs) core_.poller->remove_owner(owner_);
  probes_.detach_all();
  core_.maps.remove_owner(owner_);
  std::lock_guard lock(mu_);
  objects_.clear();
  kernel_closed_ = true;
}

void PluginContext::remove_registrations() {
  core_.metrics.remove_owner(owner_);
  core_.bus.remove_owner(owner_);
  // Metric bindings borrowed the fds of these map refs: release them only now.
  std::lock_guard lock(mu_);
  maps_.clear();
  metrics_.clear();
}

void PluginContext::teardown() {
  remove_subscriptions();
  close_kernel_objects();
  remove_registrations();
}

std::vector<PluginContext::ProgramStat> PluginContext::program_stats() const {
  std::vector<ProgramStat> out;
  std::lock_guard lock(mu_);
  for (const auto& e : objects_) {
    if (!e->object || !e->object->loaded()) continue;
    auto stats = read_object_stats(*e->object);
    if (!stats.ok()) continue;
    for (const auto& s : *stats) out.push_back(ProgramStat{s.name, s.run_cnt, s.run_time_ns});
  }
  return out;
}

// ---- logging & config
// ----------------------------------------------------------------------------

void PluginContext::log(int level, const char* message) {
  logger_->log(to_spdlog(level), "{}", message != nullptr ? message : "(null)");
}

Result<const ConfigValue*> PluginContext::config_value(const char* key, th_value_type type) {
  if (key == nullptr) return null_arg("key");
  const ConfigValue* v = config_.find(key);
  if (v == nullptr) {
    return Error(ErrorKind::kNotFound, "plugin " + owner_ + " has no config key '" + key +
                                           "' (declared: " + list_keys(config_) + ")");
  }
  if (v->type != type) {
    return Error(ErrorKind::kConfig, "config key '" + std::string(key) + "' of plugin " + owner_ +
                                         " is declared as " +
                                         std::string(value_type_name(v->type)) + ", read as " +
                                         std::string(value_type_name(type)));
  }
  return v;
}

Status PluginContext::config_bool(const char* key, int32_t* out) {
  if (out == nullptr) return null_arg("out");
  if (key != nullptr && key == kHostExcludeSelfKey) {
    *out = core_.exclude_self ? 1 : 0;
    return ok();
  }
  TH_ASSIGN_OR_RETURN(const ConfigValue* v, config_value(key, TH_VALUE_BOOL));
  *out = v->b ? 1 : 0;
  return ok();
}

Status PluginContext::config_int(const char* key, int64_t* out) {
  if (out == nullptr) return null_arg("out");
  if (key != nullptr && key == kHostPidKey) {
    *out = ::getpid();
    return ok();
  }
  TH_ASSIGN_OR_RETURN(const ConfigValue* v, config_value(key, TH_VALUE_INT));
  *out = v->i;
  return ok();
}

Status PluginContext::config_double(const char* key, double* out) {
  if (out == nullptr) return null_arg("out");
  TH_ASSIGN_OR_RETURN(const ConfigValue* v, config_value(key, TH_VALUE_DOUBLE));
  *out = v->d;
  return ok();
}

Status PluginContext::config_string(const char* key, const char** out) {
  if (out == nullptr) return null_arg("out");
  TH_ASSIGN_OR_RETURN(const ConfigValue* v, config_value(key, TH_VALUE_STRING));
  *out = v->s.c_str();  // config_ is immutable while the context lives
  return ok();
}

Status PluginContext::config_list_size(const char* key, size_t* out) {
  if (out == nullptr) return null_arg("out");
  if (key == nullptr) return null_arg("key");
  const ConfigValue* v = config_.find(key);
  if (v != nullptr && v->type == TH_VALUE_INT_LIST) {
    *out = v->ints.size();
    return ok();
  }
  TH_ASSIGN_OR_RETURN(const ConfigValue* sv, config_value(key, TH_VALUE_STRING_LIST));
  *out = sv->strings.size();
  return ok();
}

Status PluginContext::config_list_string(const char* key, size_t index, const char** out) {
  if (out == nullptr) return null_arg("out");
  TH_ASSIGN_OR_RETURN(const ConfigValue* v, config_value(key, TH_VALUE_STRING_LIST));
  if (index >= v->strings.size()) {
    return Error(ErrorKind::kInvalidArgument,
                 "index " + std::to_string(index) + " is past the end of config list '" + key +
                     "' (size " + std::to_string(v->strings.size()) + ")");
  }
  *out = v->strings[index].c_str();
  return ok();
}

Status PluginContext::config_list_int(const char* key, size_t index, int64_t* out) {
  if (out == nullptr) return null_arg("out");
  TH_ASSIGN_OR_RETURN(const ConfigValue* v, config_value(key, TH_VALUE_INT_LIST));
  if (index >= v->ints.size()) {
    return Error(ErrorKind::kInvalidArgument,
                 "index " + std::to_string(index) + " is past the end of config list '" + key +
                     "' (size " + std::to_string(v->ints.size()) + ")");
  }
  *out = v->ints[index];
  return ok();
}

// ---- BPF
// -----------------------------------------------------------------------------------------

Result<BpfObject*> PluginContext::object_of(th_bpf_object* handle) {
  if (handle == nullptr) return null_arg("BPF object");
  for (auto& e : objects_) {
    if (&e->handle == handle) return e->object.get();
  }
  return Error(ErrorKind::kInvalidArgument,
               "plugin " + owner_ + ": unknown or closed BPF object handle", EINVAL);
}

Result<th_bpf_object*> PluginContext::bpf_open(const char* name, const void* elf, size_t size) {
  if (name == nullptr) return null_arg("name");
  if (elf == nullptr || size == 0) {
    return Error(ErrorKind::kInvalidArgument,
                 "plugin " + owner_ + ": bpf_open(\"" + name + "\") got no ELF bytes", EINVAL);
  }
  TH_TRY(check_bpf_environment());
  TH_ASSIGN_OR_RETURN(std::unique_ptr<BpfObject> obj,
                      BpfObject::make(owner_, name, bytes(elf, size)));
  std::lock_guard lock(mu_);
  if (kernel_closed_) {
    return Error(ErrorKind::kInvalidArgument, "plugin " + owner_ + " is shutting down");
  }
  auto e = std::make_unique<ObjectEntry>();
  e->object = std::move(obj);
  e->handle.object = e->object.get();
  objects_.push_back(std::move(e));
  return &objects_.back()->handle;
}

Status PluginContext::bpf_set_rodata(th_bpf_object* obj, const char* variable, const void* value,
                                     size_t size) {
  if (variable == nullptr) return null_arg("variable");
  if (value == nullptr) return null_arg("value");
  std::lock_guard lock(mu_);
  TH_ASSIGN_OR_RETURN(BpfObject * o, object_of(obj));
  return o->set_rodata(variable, bytes(value, size));
}

Status PluginContext::bpf_set_map_max_entries(th_bpf_object* obj, const char* map,
                                              uint32_t max_entries) {
  if (map == nullptr) return null_arg("map");
  std::lock_guard lock(mu_);
  TH_ASSIGN_OR_RETURN(BpfObject * o, object_of(obj));
  return o->set_map_max_entries(map, max_entries);
}

Status PluginContext::bpf_set_autoload(th_bpf_object* obj, const char* program, int32_t autoload) {
  if (program == nullptr) return null_arg("program");
  std::lock_guard lock(mu_);
  TH_ASSIGN_OR_RETURN(BpfObject * o, object_of(obj));
  return o->set_autoload(program, autoload != 0);
}

Status PluginContext::bpf_load(th_bpf_object* obj) {
  std::lock_guard lock(mu_);
  TH_ASSIGN_OR_RETURN(BpfObject * o, object_of(obj));
  TH_TRY(o->load());
  return core_.maps.register_object(*o);
}

Result<th_probe_id> PluginContext::bpf_attach(th_bpf_object* obj, const char* program,
                                              const th_attach_spec* spec) {
  if (program == nullptr) return null_arg("program");
  TH_ASSIGN_OR_RETURN(AttachSpec s, attach_spec_from_c(spec));
  std::lock_guard lock(mu_);
  TH_ASSIGN_OR_RETURN(BpfObject * o, object_of(obj));
  return probes_.attach(*o, program, s);
}

Status PluginContext::bpf_run_iter(th_bpf_object* obj, const char* program, th_iter_output_fn fn,
                                   void* user) {
  if (program == nullptr) return null_arg("program");
  std::lock_guard lock(mu_);
  TH_ASSIGN_OR_RETURN(BpfObject * o, object_of(obj));
  std::function<void(std::span<const std::byte>)> output;
  if (fn != nullptr) {
    output = [fn, user](std::span<const std::byte> chunk) { fn(user, chunk.data(), chunk.size()); };
  }
  return o->run_iterator(program, output);
}

Status PluginContext::bpf_detach(th_probe_id probe) { return probes_.detach(probe); }

Status PluginContext::bpf_probe_set_enabled(th_probe_id probe, bool enabled) {
  return probes_.set_enabled(probe, enabled);
}

Status PluginContext::bpf_list_probes(th_probe_info_fn fn, void* user) {
  if (fn == nullptr) return null_arg("fn");
  for (const ProbeInfo& p : probes_.list()) {
    th_probe_info info{};
    info.struct_size = sizeof(info);
    info.id = p.id;
    info.program = p.program.c_str();
    info.kind = static_cast<int32_t>(p.kind);
    info.target = p.target.c_str();
    info.state = static_cast<int32_t>(p.state);
    info.link_count = p.link_count;
    info.error = p.error.empty() ? nullptr : p.error.c_str();
    fn(user, &info);
  }
  return ok();
}

// ---- maps
// ----------------------------------------------------------------------------------------

Result<MapRef> PluginContext::map_of(th_map* handle) {
  if (handle == nullptr) return null_arg("map");
  std::lock_guard lock(mu_);
  for (auto& e : maps_) {
    if (&e->handle == handle) return e->handle.map;
  }
  return Error(ErrorKind::kInvalidArgument, "plugin " + owner_ + ": unknown map handle", EINVAL);
}

Result<th_map*> PluginContext::map_find(const char* name) {
  if (name == nullptr) return null_arg("name");
  std::string full = name;
  // A bare map name means one of the caller's own maps.
  if (full.find('/') == std::string::npos) full = owner_ + "/" + full;
  TH_ASSIGN_OR_RETURN(MapRef ref, core_.maps.find(full));
  std::lock_guard lock(mu_);
  for (auto& e : maps_) {
    if (e->handle.map == ref) return &e->handle;
  }
  auto e = std::make_unique<MapEntry>();
  e->handle.map = std::move(ref);
  maps_.push_back(std::move(e));
  return &maps_.back()->handle;
}

Status PluginContext::map_info(th_map* map, th_map_info* out) {
  if (out == nullptr) return null_arg("out");
  TH_ASSIGN_OR_RETURN(MapRef ref, map_of(map));
  // The caller's struct may be older (smaller) than ours: fill only what it has room for.
  std::uint32_t room = out->struct_size;
  if (room < sizeof(std::uint32_t)) {
    return Error(ErrorKind::kInvalidArgument,
                 "th_map_info.struct_size is not set (use sizeof(th_map_info))", EINVAL);
  }
  const MapInfo& i = ref->info();
  th_map_info info{};
  info.struct_size = sizeof(info);
  info.name = ref->name().c_str();  // lives as long as the map handle
  info.type = i.type;
  info.key_size = i.key_size;
  info.value_size = i.value_size;
  info.max_entries = i.max_entries;
  info.per_cpu = i.per_cpu ? 1 : 0;
  info.ncpus = i.ncpus;
  std::memcpy(out, &info, std::min<std::size_t>(room, sizeof(info)));
  out->struct_size = std::min<std::uint32_t>(room, sizeof(info));
  return ok();
}

Status PluginContext::map_lookup(th_map* map, const void* key, size_t key_size, void* value,
                                 size_t value_size, uint32_t flags) {
  if (key == nullptr) return null_arg("key");
  if (value == nullptr) return null_arg("value");
  TH_ASSIGN_OR_RETURN(MapRef ref, map_of(map));
  PerCpu mode = (flags & TH_MAP_PERCPU_RAW) != 0 ? PerCpu::kRaw : PerCpu::kSum;
  return ref->lookup(bytes(key, key_size), wbytes(value, value_size), mode);
}

Status PluginContext::map_update(th_map* map, const void* key, size_t key_size, const void* value,
                                 size_t value_size, uint64_t flags) {
  if (key == nullptr) return null_arg("key");
  if (value == nullptr) return null_arg("value");
  TH_ASSIGN_OR_RETURN(MapRef ref, map_of(map));
  return ref->update(bytes(key, key_size), bytes(value, value_size), flags);
}

Status PluginContext::map_delete(th_map* map, const void* key, size_t key_size) {
  if (key == nullptr) return null_arg("key");
  TH_ASSIGN_OR_RETURN(MapRef ref, map_of(map));
  return ref->remove(bytes(key, key_size));
}

Status PluginContext::map_next_key(th_map* map, const void* key, void* next_key, size_t key_size) {
  if (next_key == nullptr) return null_arg("next_key");
  TH_ASSIGN_OR_RETURN(MapRef ref, map_of(map));
  std::span<const std::byte> k =
      key == nullptr ? std::span<const std::byte>() : bytes(key, key_size);
  return ref->next_key(k, wbytes(next_key, key_size));
}

// ---- events
// --------------------------------------------------------------------------------------

Status PluginContext::event_bind_ringbuf(th_map* ringbuf, const char* topic, std::uint32_t flags) {
  if (topic == nullptr) return null_arg("topic");
  constexpr std::uint32_t kKnown = TH_RINGBUF_PRODUCER_WAKES | TH_RINGBUF_STAGED;
  if ((flags & ~kKnown) != 0) {
    return Error(ErrorKind::kInvalidArgument,
                 "plugin " + owner_ + ": unknown ring buffer flags " + std::to_string(flags) +
                     " (this host knows TH_RINGBUF_PRODUCER_WAKES and TH_RINGBUF_STAGED)",
                 EINVAL);
  }
  const bool staged = (flags & TH_RINGBUF_STAGED) != 0;
  if (staged && (flags & TH_RINGBUF_PRODUCER_WAKES) != 0) {
    return Error(ErrorKind::kInvalidArgument,
                 "plugin " + owner_ +
                     ": TH_RINGBUF_STAGED and TH_RINGBUF_PRODUCER_WAKES exclude each other (a "
                     "staged event waits for its stage to fill or for the host's next round)",
                 EINVAL);
  }
  TH_ASSIGN_OR_RETURN(MapRef ref, map_of(ringbuf));
  if (core_.poller == nullptr) {
    return Error(ErrorKind::kEvent, "plugin " + owner_ +
                                        ": ring buffers cannot be bound here (no poller; only "
                                        "`tracehost run` polls ring buffers)");
  }
  auto id = core_.bus.find_topic(topic);
  if (!id) {
    return Error(ErrorKind::kEvent, "plugin " + owner_ + ": cannot bind ring buffer " +
                                        ref->name() + " to unknown topic '" + topic +
                                        "' (declare it in the descriptor or event_register it)");
  }
  TH_TRY(check_owner(*id, topic, ErrorKind::kEvent, ""));
  // "<map>_drops" next to the ring buffer counts records the BPF side could not reserve.
  MapRef drops;
  if (auto d = core_.maps.find(ref->name() + "_drops"); d.ok()) drops = *d;
  // A staged ring (TH_STAGED_RINGBUF) comes with "<map>_staged" and the program "<map>_flush".
  MapRef stage_counts;
  if (auto d = core_.maps.find(ref->name() + "_staged"); d.ok()) stage_counts = *d;
  int flush_fd = -1;
  if (stage_counts && !staged) {
    return Error(ErrorKind::kEvent,
                 "plugin " + owner_ + ": ring buffer " + ref->name() +
                     " is staged (declared with TH_STAGED_RINGBUF): bind it with the flag "
                     "TH_RINGBUF_STAGED, or its records of several events would reach the bus "
                     "as one");
  }
  if (staged) {
    if (!stage_counts) {
      return Error(ErrorKind::kEvent, "plugin " + owner_ + ": ring buffer " + ref->name() +
                                          " is bound with TH_RINGBUF_STAGED but has no '" +
                                          ref->name() +
                                          "_staged' map (declare the ring with "
                                          "TH_STAGED_RINGBUF, events.bpf.h)");
    }
    TH_ASSIGN_OR_RETURN(flush_fd, flush_program_fd(ref->name()));
  }
  // "<map>_muted" (TH_RINGBUF defines it): the poller mutes the ring while nobody wants it
  MapRef muted;
  if (auto m = core_.maps.find(ref->name() + "_muted"); m.ok()) muted = *m;
  {
    std::lock_guard lock(mu_);
    if (kernel_closed_) return Error(ErrorKind::kEvent, "plugin " + owner_ + " is shutting down");
    has_ringbufs_ = true;  // set first: a concurrent teardown then removes what add() made
  }
  TH_TRY(staged ? core_.poller->add_staged(owner_, ref, *id, drops, stage_counts, flush_fd, muted)
                : core_.poller->add(owner_, ref, *id, drops,
                                    (flags & TH_RINGBUF_PRODUCER_WAKES) != 0, muted));
  return core_.bus.set_off(*id, {});  // a ring produces it after all (event_set_off)
}

Result<int> PluginContext::flush_program_fd(const std::string& ring) {
  // ring: "<plugin>/<map>"; the program is "<map>_flush" of the loaded object that has the map
  const std::string map = ring.substr(ring.find('/') + 1);
  const std::string program = map + "_flush";
  std::lock_guard lock(mu_);
  for (const auto& e : objects_) {
    if (!e->object || !e->object->loaded() || !e->object->map(map).ok()) continue;
    auto prog = e->object->program(program);
    if (!prog.ok()) {
      return Error(ErrorKind::kEvent, "plugin " + owner_ + ": staged ring buffer " + ring +
                                          " has no program '" + program +
                                          "' in its BPF object (TH_STAGED_RINGBUF defines it)");
    }
    const int fd = bpf_program__fd(*prog);
    if (fd < 0 || bpf_program__type(*prog) != BPF_PROG_TYPE_RAW_TRACEPOINT) {
      return Error(ErrorKind::kEvent, "plugin " + owner_ + ": program '" + program +
                                          "' must be a loaded SEC(\"raw_tp\") program "
                                          "(TH_STAGED_RINGBUF defines it)");
    }
    return fd;
  }
  return Error(ErrorKind::kEvent, "plugin " + owner_ + ": staged ring buffer " + ring +
                                      " belongs to no loaded BPF object of this plugin");
}

Status PluginContext::event_publish(const char* topic, const void* data, size_t size) {
  if (topic == nullptr) return null_arg("topic");
  if (data == nullptr && size != 0) return null_arg("data");
  auto id = core_.bus.find_topic(topic);
  if (!id) {
    return Error(ErrorKind::kEvent,
                 "plugin " + owner_ + ": cannot publish to unknown topic '" + topic + "'");
  }
  TH_TRY(check_owner(*id, topic, ErrorKind::kEvent, "; plugins publish only to their own topics"));
  return core_.bus.publish(*id, bytes(data, size));
}

Status PluginContext::check_owner(TopicId id, const char* topic, ErrorKind kind,
                                  std::string_view hint) const {
  const std::string owner = core_.bus.owner_of(id);
  if (owner == owner_) return ok();
  return Error(kind, "plugin " + owner_ + ": topic '" + std::string(topic) + "' belongs to " +
                         owner + std::string(hint));
}

Status PluginContext::event_set_off(const char* topic, const char* reason) {
  if (topic == nullptr) return null_arg("topic");
  if (reason == nullptr) return null_arg("reason");
  auto id = core_.bus.find_topic(topic);
  if (!id) {
    return Error(ErrorKind::kNotFound, "plugin " + owner_ + ": cannot declare unknown topic '" +
                                           topic + "' off (declare it in the descriptor first)");
  }
  TH_TRY(check_owner(*id, topic, ErrorKind::kInvalidArgument,
                     "; plugins declare only their own topics off"));
  std::string why(reason);
  if (why.empty()) {
    return Error(ErrorKind::kInvalidArgument,
                 "plugin " + owner_ + ": declaring topic '" + std::string(topic) +
                     "' off needs a reason for people, e.g. the config key that turned it off");
  }
  constexpr std::size_t kMaxReason = 200;  // one line of the console and the start-up log
  if (why.size() > kMaxReason) why = why.substr(0, kMaxReason - 3) + "...";
  return core_.bus.set_off(*id, std::move(why));
}

Result<th_subscription_id> PluginContext::event_subscribe(const char* glob, th_event_batch_fn fn,
                                                          void* user) {
  if (glob == nullptr) return null_arg("topic_glob");
  if (fn == nullptr) return null_arg("fn");
  {
    std::lock_guard lock(mu_);
    if (kernel_closed_) {
      return Error(ErrorKind::kEvent, "plugin " + owner_ + " is shutting down");
    }
  }
  SubscribeOptions opts;
  opts.name = "plugin:" + owner_;
  auto cb = [fn, user](std::span<const th_event> events) {
    fn(user, events.data(), events.size());
  };
  TH_ASSIGN_OR_RETURN(SubscriptionId id, core_.bus.subscribe(owner_, glob, cb, opts));
  std::lock_guard lock(mu_);
  subscriptions_.push_back(id);
  return id;
}

Status PluginContext::event_unsubscribe(th_subscription_id id) {
  {
    std::lock_guard lock(mu_);
    auto it = std::find(subscriptions_.begin(), subscriptions_.end(), id);
    if (it == subscriptions_.end()) {
      return Error(ErrorKind::kNotFound,
                   "plugin " + owner_ + " has no subscription " + std::to_string(id));
    }
    subscriptions_.erase(it);
  }
  return core_.bus.unsubscribe(id);
}

// ---- metrics
// -------------------------------------------------------------------------------------

Result<MetricId> PluginContext::metric_of(th_metric* handle) {
  if (handle == nullptr) return null_arg("metric");
  std::lock_guard lock(mu_);
  for (auto& e : metrics_) {
    if (&e->handle != handle) continue;
    if (!e->handle.own) {
      return Error(ErrorKind::kInvalidArgument,
                   "plugin " + owner_ +
                       ": this metric family belongs to another plugin; plugins "
                       "update and bind only their own families");
    }
    return e->handle.id;
  }
  return Error(ErrorKind::kInvalidArgument, "plugin " + owner_ + ": unknown metric handle", EINVAL);
}

Result<th_metric*> PluginContext::metric_find(const char* name) {
  if (name == nullptr) return null_arg("name");
  auto id = core_.metrics.find(name);
  if (!id) {
    return Error(ErrorKind::kNotFound,
                 "plugin " + owner_ + ": no metric family '" + std::string(name) + "'");
  }
  std::lock_guard lock(mu_);
  return metric_handle(*id);
}

Status PluginContext::metric_update(th_metric* metric, const char* const* label_values,
                                    size_t label_count, int32_t op, double value) {
  TH_ASSIGN_OR_RETURN(MetricId id, metric_of(metric));
  if (label_count > 0 && label_values == nullptr) return null_arg("label_values");
  if (op < TH_METRIC_ADD || op > TH_METRIC_REMOVE) {
    return Error(ErrorKind::kInvalidArgument,
                 "metric op " + std::to_string(op) + " is not a th_metric_op", EINVAL);
  }
  // Small label sets: avoid a heap allocation per update.
  constexpr std::size_t kInline = 8;
  std::string_view inline_labels[kInline];
  std::vector<std::string_view> heap_labels;
  std::span<const std::string_view> labels;
  if (label_count <= kInline) {
    for (std::size_t i = 0; i < label_count; ++i) {
      inline_labels[i] = label_values[i] != nullptr ? label_values[i] : "";
    }
    labels = std::span<const std::string_view>(inline_labels, label_count);
  } else {
    heap_labels.reserve(label_count);
    for (std::size_t i = 0; i < label_count; ++i) {
      heap_labels.emplace_back(label_values[i] != nullptr ? label_values[i] : "");
    }
    labels = heap_labels;
  }
  return core_.metrics.update(id, labels, static_cast<MetricOp>(op), value);
}

Status PluginContext::metric_bind_map(th_metric* metric, th_map* map,
                                      const th_map_binding* binding) {
  TH_ASSIGN_OR_RETURN(MetricId id, metric_of(metric));
  TH_ASSIGN_OR_RETURN(MapRef ref, map_of(map));
  TH_ASSIGN_OR_RETURN(th_map_binding b, abi_read<th_map_binding>(binding, "map binding"));
  TH_ASSIGN_OR_RETURN(std::vector<th_key_label> labels,
                      abi_read_array(b.labels, b.label_count, "map binding labels"));
  b.labels = labels.empty() ? nullptr : labels.data();
  b.label_count = labels.size();
  // The reader borrows the fd of `ref`, which this context keeps until remove_registrations().
  TH_ASSIGN_OR_RETURN(std::unique_ptr<MapReader> reader,
                      make_fd_map_reader(ref->fd(), ref->name()));
  return core_.metrics.bind_map(id, owner_, std::move(reader), b);
}

}  // namespace tracehost::host
