// The Host facade: the plugin's view of the services table (th_host_api) the host hands to
// `create`. Handles returned here (BpfObject, Probe, Map, Metric) are non-owning references to
// objects the host owns: copy them freely; the host frees everything when the plugin stops, so a
// plugin cannot leak kernel objects. They stay usable until the plugin is destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tracehost/config.hpp"
#include "tracehost/detail.hpp"
#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"
#include "tracehost/schema.hpp"

namespace tracehost {

class Host;

// ---- logging -----------------------------------------------------------------------------------

enum class LogLevel : std::int32_t {
  kTrace = TH_LOG_TRACE,
  kDebug = TH_LOG_DEBUG,
  kInfo = TH_LOG_INFO,
  kWarn = TH_LOG_WARN,
  kError = TH_LOG_ERROR,
};

// Writes to the host's log, tagged with the plugin name. Arguments are concatenated:
// log.info("attached ", n, " probes"). Never throws; callable from any thread.
class Log {
 public:
  explicit Log(const th_host_api* api) noexcept : api_(api) {}

  void write(LogLevel level, std::string_view message) const noexcept {
    try {
      std::string text(message);
      api_->log(api_->host, static_cast<std::int32_t>(level), text.c_str());
    } catch (...) {  // out of memory while logging: nothing better to do
    }
  }
  template <typename... Args>
  void trace(const Args&... args) const noexcept {
    emit(LogLevel::kTrace, args...);
  }
  template <typename... Args>
  void debug(const Args&... args) const noexcept {
    emit(LogLevel::kDebug, args...);
  }
  template <typename... Args>
  void info(const Args&... args) const noexcept {
    emit(LogLevel::kInfo, args...);
  }
  template <typename... Args>
  void warn(const Args&... args) const noexcept {
    emit(LogLevel::kWarn, args...);
  }
  template <typename... Args>
  void error(const Args&... args) const noexcept {
    emit(LogLevel::kError, args...);
  }

 private:
  template <typename... Args>
  void emit(LogLevel level, const Args&... args) const noexcept {
    try {
      std::string text = detail::concat(args...);
      api_->log(api_->host, static_cast<std::int32_t>(level), text.c_str());
    } catch (...) {
    }
  }

  const th_host_api* api_;
};

// ---- attach specs ------------------------------------------------------------------------------

enum class AttachKind : std::int32_t {
  kTracepoint = TH_ATTACH_TRACEPOINT,
  kRawTp = TH_ATTACH_RAW_TP,
  kTpBtf = TH_ATTACH_TP_BTF,
  kUprobe = TH_ATTACH_UPROBE,
  kUretprobe = TH_ATTACH_URETPROBE,
  kPerfEvent = TH_ATTACH_PERF_EVENT,
  kKprobe = TH_ATTACH_KPROBE,
  kKretprobe = TH_ATTACH_KRETPROBE,
};

// Where and how to attach a program. Build one with tp_btf(), raw_tp(), tracepoint(), uprobe(),
// uretprobe(), perf_event_freq(), perf_event_period(), kprobe(), kretprobe().
class AttachSpec {
 public:
  AttachSpec(AttachKind kind, std::string target) : kind_(kind), target_(std::move(target)) {}

  // Declare now, attach when the host calls bpf_attach_deferred (right after a successful start).
  [[nodiscard]] AttachSpec deferred() const {
    AttachSpec s = *this;
    s.deferred_ = true;
    return s;
  }
  // uprobe: an offset from the symbol (or a file offset when there is no symbol).
  [[nodiscard]] AttachSpec at_offset(std::uint64_t offset) const {
    AttachSpec s = *this;
    s.offset_ = offset;
    return s;
  }

  [[nodiscard]] AttachKind kind() const noexcept { return kind_; }
  [[nodiscard]] const std::string& target() const noexcept { return target_; }
  [[nodiscard]] bool is_deferred() const noexcept { return deferred_; }

  // The C view; valid while this spec lives unmodified.
  [[nodiscard]] th_attach_spec c() const noexcept {
    th_attach_spec s{};
    s.struct_size = sizeof(th_attach_spec);
    s.kind = static_cast<std::int32_t>(kind_);
    s.target = target_.c_str();
    s.symbol = symbol_.has_value() ? symbol_->c_str() : nullptr;
    s.offset = offset_;
    s.pid = pid_;
    s.frequency = frequency_;
    s.period = period_;
    s.deferred = deferred_ ? 1 : 0;
    return s;
  }

 private:
  friend AttachSpec uprobe(std::string_view, std::string_view, std::int32_t);
  friend AttachSpec uretprobe(std::string_view, std::string_view, std::int32_t);
  friend AttachSpec perf_event_freq(std::uint64_t);
  friend AttachSpec perf_event_period(std::uint64_t);

  AttachKind kind_;
  std::string target_;
  std::optional<std::string> symbol_;
  std::uint64_t offset_ = 0;
  std::int32_t pid_ = -1;
  std::uint64_t frequency_ = 0;
  std::uint64_t period_ = 0;
  bool deferred_ = false;
};

// BTF-enabled raw tracepoint; `name` matches the program's SEC("tp_btf/name"). No tracefs needed.
inline AttachSpec tp_btf(std::string_view name) {
  return AttachSpec(AttachKind::kTpBtf, std::string(name));
}
// Raw tracepoint by name ("sys_enter"). No tracefs needed.
inline AttachSpec raw_tp(std::string_view name) {
  return AttachSpec(AttachKind::kRawTp, std::string(name));
}
// Classic tracepoint "category:name"; needs tracefs, which the host mounts when missing.
inline AttachSpec tracepoint(std::string_view category, std::string_view name) {
  return AttachSpec(AttachKind::kTracepoint, detail::concat(category, ":", name));
}
// User-space function entry in `binary` (a path); pid -1 = every process.
inline AttachSpec uprobe(std::string_view binary, std::string_view symbol, std::int32_t pid = -1) {
  AttachSpec s(AttachKind::kUprobe, std::string(binary));
  s.symbol_ = std::string(symbol);
  s.pid_ = pid;
  return s;
}
inline AttachSpec uretprobe(std::string_view binary, std::string_view symbol,
                            std::int32_t pid = -1) {
  AttachSpec s(AttachKind::kUretprobe, std::string(binary));
  s.symbol_ = std::string(symbol);
  s.pid_ = pid;
  return s;
}
// Software cpu-clock sampling on every online CPU, `hz` samples per second per CPU.
inline AttachSpec perf_event_freq(std::uint64_t hz) {
  AttachSpec s(AttachKind::kPerfEvent, "cpu-clock");
  s.frequency_ = hz;
  return s;
}
// Software cpu-clock sampling on every online CPU, one sample every `ns` nanoseconds of CPU time.
inline AttachSpec perf_event_period(std::uint64_t ns) {
  AttachSpec s(AttachKind::kPerfEvent, "cpu-clock");
  s.period_ = ns;
  return s;
}
// Kernel function entry/return. Fails with kKernelIncompatible on kernels without kprobes
// (CONFIG_KPROBES off): prefer tp_btf or raw_tp.
inline AttachSpec kprobe(std::string_view function) {
  return AttachSpec(AttachKind::kKprobe, std::string(function));
}
inline AttachSpec kretprobe(std::string_view function) {
  return AttachSpec(AttachKind::kKretprobe, std::string(function));
}

// ---- probes ------------------------------------------------------------------------------------

enum class ProbeState : std::int32_t {
  kDeclared = TH_PROBE_DECLARED,
  kAttached = TH_PROBE_ATTACHED,
  kDetached = TH_PROBE_DETACHED,
  kFailed = TH_PROBE_FAILED,
  kPaused = TH_PROBE_PAUSED,  // pause(): no links until resume()
};

struct ProbeInfo {
  th_probe_id id = 0;
  std::string program;
  AttachKind kind = AttachKind::kTpBtf;
  std::string target;
  ProbeState state = ProbeState::kDeclared;
  std::uint32_t link_count = 0;
  std::string error;
};

// An attached (or declared) program. The host detaches it when the plugin stops; detach() only
// for probes a plugin wants to drop earlier.
class Probe {
 public:
  Probe(const th_host_api* api, th_probe_id id) noexcept : api_(api), id_(id) {}
  [[nodiscard]] th_probe_id id() const noexcept { return id_; }
  [[nodiscard]] Status detach() const { return detail::call(api_->bpf_detach, api_->host, id_); }
  // Stops the kernel calling the program (its links are destroyed) until resume(), which
  // attaches it again from the same spec: for probes run part of the time, e.g. sampling
  // windows on a busy tracepoint. Needs plugin API 1.3 on the host.
  [[nodiscard]] Status pause() const { return set_enabled(false); }
  [[nodiscard]] Status resume() const { return set_enabled(true); }

 private:
  [[nodiscard]] Status set_enabled(bool enabled) const {
    TH_TRY(detail::require_host_api(
        api_, offsetof(th_host_api, bpf_probe_set_enabled) + sizeof(api_->bpf_probe_set_enabled),
        "pausing or resuming a probe", 3));
    return detail::call(api_->bpf_probe_set_enabled, api_->host, id_,
                        static_cast<std::int32_t>(enabled ? 1 : 0));
  }

  const th_host_api* api_;
  th_probe_id id_;
};

// ---- maps --------------------------------------------------------------------------------------

struct MapInfo {
  std::string name;  // "plugin/map"
  std::uint32_t type = 0;
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;  // per CPU for per-CPU maps
  std::uint32_t max_entries = 0;
  bool per_cpu = false;
  std::uint32_t ncpus = 1;
};

// A map in the host's registry. Key and value types are checked against the map's sizes by the
// host; K and V must be the C structs (or integers) the BPF side uses.
class Map {
 public:
  Map(const th_host_api* api, th_map* map) noexcept : api_(api), map_(map) {}

  [[nodiscard]] th_map* c() const noexcept { return map_; }

  [[nodiscard]] Result<MapInfo> info() const {
    th_map_info ci{};
    ci.struct_size = sizeof(th_map_info);
    TH_TRY(detail::call(api_->map_info, api_->host, map_, &ci));
    MapInfo out;
    out.name = ci.name != nullptr ? ci.name : "";
    out.type = ci.type;
    out.key_size = ci.key_size;
    out.value_size = ci.value_size;
    out.max_entries = ci.max_entries;
    out.per_cpu = ci.per_cpu != 0;
    out.ncpus = ci.ncpus == 0 ? 1 : ci.ncpus;
    return out;
  }

  // The value at `key`; kNotFound when absent. Per-CPU maps: the sum over CPUs of each u64 word
  // of V (V must then be made of u64s).
  template <typename K, typename V>
  [[nodiscard]] Result<V> lookup(const K& key) const {
    check_types<K, V>();
    V value{};
    TH_TRY(detail::call(api_->map_lookup, api_->host, map_, static_cast<const void*>(&key),
                        sizeof(K), static_cast<void*>(&value), sizeof(V), TH_MAP_PERCPU_SUM));
    return value;
  }

  // Like lookup, but absence is not an error.
  template <typename K, typename V>
  [[nodiscard]] Result<std::optional<V>> find(const K& key) const {
    auto r = lookup<K, V>(key);
    if (r.ok()) return std::optional<V>(std::move(r).value());
    if (r.error().kind() == ErrorKind::kNotFound) return std::optional<V>();
    return std::move(r).error();
  }

  // Per-CPU maps: one value per possible CPU.
  template <typename K, typename V>
  [[nodiscard]] Result<std::vector<V>> lookup_per_cpu(const K& key) const {
    check_types<K, V>();
    TH_ASSIGN_OR_RETURN(MapInfo mi, info());
    const std::size_t stride = (sizeof(V) + 7) / 8 * 8;
    std::vector<std::byte> raw(stride * mi.ncpus);
    TH_TRY(detail::call(api_->map_lookup, api_->host, map_, static_cast<const void*>(&key),
                        sizeof(K), static_cast<void*>(raw.data()), raw.size(), TH_MAP_PERCPU_RAW));
    std::vector<V> out(mi.ncpus);
    for (std::size_t cpu = 0; cpu < mi.ncpus; ++cpu) {
      std::memcpy(&out[cpu], raw.data() + cpu * stride, sizeof(V));
    }
    return out;
  }

  // flags: BPF_ANY (0), BPF_NOEXIST (1), BPF_EXIST (2). Per-CPU maps: `value` goes to every CPU.
  template <typename K, typename V>
  [[nodiscard]] Status update(const K& key, const V& value, std::uint64_t flags = 0) const {
    check_types<K, V>();
    return detail::call(api_->map_update, api_->host, map_, static_cast<const void*>(&key),
                        sizeof(K), static_cast<const void*>(&value), sizeof(V), flags);
  }

  template <typename K>
  [[nodiscard]] Status erase(const K& key) const {
    static_assert(std::is_trivially_copyable_v<K>);
    return detail::call(api_->map_delete, api_->host, map_, static_cast<const void*>(&key),
                        sizeof(K));
  }

  // The key after `prev` (nullopt: the first key); nullopt at the end.
  template <typename K>
  [[nodiscard]] Result<std::optional<K>> next_key(const std::optional<K>& prev = {}) const {
    static_assert(std::is_trivially_copyable_v<K>);
    K next{};
    auto st = detail::call(api_->map_next_key, api_->host, map_,
                           prev.has_value() ? static_cast<const void*>(&*prev) : nullptr,
                           static_cast<void*>(&next), sizeof(K));
    if (st.ok()) return std::optional<K>(next);
    if (st.error().kind() == ErrorKind::kNotFound) return std::optional<K>();
    return std::move(st).error();
  }

  // Every key currently in the map (a snapshot; BPF may change the map meanwhile).
  template <typename K>
  [[nodiscard]] Result<std::vector<K>> keys() const {
    std::vector<K> out;
    std::optional<K> cur;
    for (;;) {
      TH_ASSIGN_OR_RETURN(std::optional<K> next, next_key<K>(cur));
      if (!next.has_value()) break;
      out.push_back(*next);
      cur = next;
    }
    return out;
  }

 private:
  template <typename K, typename V>
  static constexpr void check_types() {
    static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>,
                  "map keys and values are raw bytes shared with BPF: use plain C structs");
  }

  const th_host_api* api_;
  th_map* map_;
};

// ---- BPF objects -------------------------------------------------------------------------------

// A BPF object opened from ELF bytes. Configure (set_rodata, set_max_entries, set_autoload),
// then load(), then attach() programs. The host owns it and closes it when the plugin stops.
class BpfObject {
 public:
  BpfObject(const th_host_api* api, th_bpf_object* obj) noexcept : api_(api), obj_(obj) {}

  [[nodiscard]] th_bpf_object* c() const noexcept { return obj_; }

  // Sets the `const volatile` variable `variable` of .rodata before load. T must have the
  // variable's exact size (the host checks it against BTF).
  template <typename T>
  [[nodiscard]] Status set_rodata(std::string_view variable, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>,
                  "rodata values are copied as bytes: use integers, plain structs or arrays");
    return detail::call(api_->bpf_set_rodata, api_->host, obj_, detail::c_str(variable).c_str(),
                        static_cast<const void*>(&value), sizeof(T));
  }
  [[nodiscard]] Status set_max_entries(std::string_view map, std::uint32_t max_entries) const {
    return detail::call(api_->bpf_set_map_max_entries, api_->host, obj_, detail::c_str(map).c_str(),
                        max_entries);
  }
  [[nodiscard]] Status set_autoload(std::string_view program, bool autoload) const {
    return detail::call(api_->bpf_set_autoload, api_->host, obj_, detail::c_str(program).c_str(),
                        static_cast<std::int32_t>(autoload ? 1 : 0));
  }
  // On verifier rejection the error (kLoadFailed) carries the tail of the verifier log.
  [[nodiscard]] Status load() const { return detail::call(api_->bpf_load, api_->host, obj_); }

  [[nodiscard]] Result<Probe> attach(std::string_view program, const AttachSpec& spec) const {
    th_attach_spec cs = spec.c();
    th_probe_id id = 0;
    TH_TRY(detail::call(api_->bpf_attach, api_->host, obj_, detail::c_str(program).c_str(),
                        static_cast<const th_attach_spec*>(&cs), &id));
    return Probe(api_, id);
  }

  // Runs the iterator program `program` (SEC("iter/...")) once, start to end, and returns what
  // it wrote (bpf_seq_write / bpf_seq_printf). After load(). Needs plugin API 1.2 on the host.
  [[nodiscard]] Result<std::string> run_iterator(std::string_view program) const {
    TH_TRY(detail::require_host_api(
        api_, offsetof(th_host_api, bpf_run_iter) + sizeof(api_->bpf_run_iter),
        "running a BPF iterator", 2));
    std::string out;
    th_iter_output_fn append = [](void* user, const void* data, size_t size) {
      static_cast<std::string*>(user)->append(static_cast<const char*>(data), size);
    };
    TH_TRY(detail::call(api_->bpf_run_iter, api_->host, obj_, detail::c_str(program).c_str(),
                        append, static_cast<void*>(&out)));
    return out;
  }

  // A map of this plugin by its name in the object ("events"); available after load().
  [[nodiscard]] Result<Map> map(std::string_view name) const {
    th_map* m = nullptr;
    TH_TRY(detail::call(api_->map_find, api_->host, detail::c_str(name).c_str(), &m));
    return Map(api_, m);
  }

 private:
  const th_host_api* api_;
  th_bpf_object* obj_;
};

class Bpf {
 public:
  explicit Bpf(const th_host_api* api) noexcept : api_(api) {}

  // Opens an object from its ELF bytes (copied by the host), typically the embedded object:
  // host.bpf().open("syscall", tracehost::embedded::syscall_bpf()).
  [[nodiscard]] Result<BpfObject> open(std::string_view name,
                                       std::span<const std::byte> elf) const {
    th_bpf_object* obj = nullptr;
    TH_TRY(detail::call(api_->bpf_open, api_->host, detail::c_str(name).c_str(),
                        static_cast<const void*>(elf.data()), elf.size(), &obj));
    return BpfObject(api_, obj);
  }

  // Attaches every probe declared with .deferred(). The host does this itself right after a
  // successful start; plugins call it only to attach earlier.
  [[nodiscard]] Status attach_deferred() const {
    return detail::call(api_->bpf_attach_deferred, api_->host);
  }

  // This plugin's probes in declaration order.
  [[nodiscard]] Result<std::vector<ProbeInfo>> probes() const {
    std::vector<ProbeInfo> out;
    auto collect = [](void* user, const th_probe_info* p) {
      auto* v = static_cast<std::vector<ProbeInfo>*>(user);
      try {
        ProbeInfo pi;
        pi.id = p->id;
        pi.program = p->program != nullptr ? p->program : "";
        pi.kind = static_cast<AttachKind>(p->kind);
        pi.target = p->target != nullptr ? p->target : "";
        pi.state = static_cast<ProbeState>(p->state);
        pi.link_count = p->link_count;
        pi.error = p->error != nullptr ? p->error : "";
        v->push_back(std::move(pi));
      } catch (...) {  // no exception may unwind through the host's frames
      }
    };
    TH_TRY(detail::call(api_->bpf_list_probes, api_->host, +collect, static_cast<void*>(&out)));
    return out;
  }

 private:
  const th_host_api* api_;
};

class Maps {
 public:
  explicit Maps(const th_host_api* api) noexcept : api_(api) {}

  // "map" for one of this plugin's maps, "plugin/map" for another plugin's.
  [[nodiscard]] Result<Map> find(std::string_view name) const {
    th_map* m = nullptr;
    TH_TRY(detail::call(api_->map_find, api_->host, detail::c_str(name).c_str(), &m));
    return Map(api_, m);
  }

 private:
  const th_host_api* api_;
};

// ---- events ------------------------------------------------------------------------------------

// One record received by a subscriber. Valid only during the callback: copy what you keep.
class Event {
 public:
  explicit Event(const th_event& e) noexcept : e_(&e) {}

  [[nodiscard]] std::string_view topic() const noexcept { return e_->topic; }
  [[nodiscard]] const th_event_schema* schema() const noexcept { return e_->schema; }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
    return {static_cast<const std::byte*>(e_->data), e_->size};
  }
  // CLOCK_REALTIME ns at which the host took the record.
  [[nodiscard]] std::uint64_t time_ns() const noexcept { return e_->time_ns; }

  // The record as T (copied, so alignment does not matter); nullopt when it is shorter than T.
  template <typename T>
  [[nodiscard]] std::optional<T> as() const noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    if (e_->size < sizeof(T)) return std::nullopt;
    T out;
    std::memcpy(&out, e_->data, sizeof(T));
    return out;
  }

 private:
  const th_event* e_;
};

// A batch of events, iterable as Event.
class EventBatch {
 public:
  EventBatch(const th_event* events, std::size_t count) noexcept : events_(events, count) {}

  class Iterator {
   public:
    explicit Iterator(const th_event* p) noexcept : p_(p) {}
    Event operator*() const noexcept { return Event(*p_); }
    Iterator& operator++() noexcept {
      ++p_;
      return *this;
    }
    bool operator!=(const Iterator& o) const noexcept { return p_ != o.p_; }
    bool operator==(const Iterator& o) const noexcept { return p_ == o.p_; }

   private:
    const th_event* p_;
  };

  [[nodiscard]] Iterator begin() const noexcept { return Iterator(events_.data()); }
  [[nodiscard]] Iterator end() const noexcept { return Iterator(events_.data() + events_.size()); }
  [[nodiscard]] std::size_t size() const noexcept { return events_.size(); }
  [[nodiscard]] std::span<const th_event> raw() const noexcept { return events_; }

 private:
  std::span<const th_event> events_;
};

using SubscriptionId = th_subscription_id;

class Events {
 public:
  explicit Events(Host* host) noexcept : host_(host) {}

  // Registers a topic at run time (topics known up front belong in the descriptor).
  [[nodiscard]] Status register_topic(EventSchema schema) const;

  // Publishes every record of a BPF ring buffer on `topic`; no plugin code runs per event.
  [[nodiscard]] Status bind(const Map& ringbuf, std::string_view topic) const;
  // Same, with th_ringbuf_flags, e.g. TH_RINGBUF_PRODUCER_WAKES for a ring of rare records the
  // BPF side commits with a wakeup (the host then need not poll it), or TH_RINGBUF_STAGED for a
  // ring declared with TH_STAGED_RINGBUF (events.bpf.h). Needs a host with API 1.1 (1.4 for
  // TH_RINGBUF_STAGED); an older host gets a clear error.
  [[nodiscard]] Status bind(const Map& ringbuf, std::string_view topic, std::uint32_t flags) const;

  // Publishes one record from user space (copied).
  template <typename T>
  [[nodiscard]] Status publish(std::string_view topic, const T& record) const {
    static_assert(std::is_trivially_copyable_v<T>, "records are copied as bytes");
    return publish_bytes(topic, std::as_bytes(std::span<const T, 1>(&record, 1)));
  }
  [[nodiscard]] Status publish_bytes(std::string_view topic,
                                     std::span<const std::byte> record) const;

  // Subscribes to topics matching `glob` ("syscall.*"). `fn` takes `const Event&` (called per
  // event) or `EventBatch` (per batch) and runs on a host dispatch thread, never concurrently
  // with itself. Exceptions it throws are logged and dropped. The subscription ends with
  // unsubscribe() or, at the latest, before the plugin object is destroyed.
  template <typename F>
  [[nodiscard]] Result<SubscriptionId> subscribe(std::string_view glob, F&& fn) const;

  [[nodiscard]] Status unsubscribe(SubscriptionId id) const;

  // Says that this plugin does not produce its `topic` in this run, and why ("open = false"):
  // the console shows it as off with the reason, and a sink asking for it by name is warned.
  // Call it from start() for each declared topic the configuration turns off. Needs API 1.5.
  [[nodiscard]] Status set_off(std::string_view topic, std::string_view reason) const;

 private:
  Host* host_;
};

// ---- metrics -----------------------------------------------------------------------------------

// A family registered with the host. Label values, one per label name of the family, in order.
class Metric {
 public:
  Metric(const th_host_api* api, th_metric* metric) noexcept : api_(api), metric_(metric) {}

  [[nodiscard]] th_metric* c() const noexcept { return metric_; }

  // counter, gauge
  [[nodiscard]] Status add(double value,
                           std::initializer_list<std::string_view> labels = {}) const {
    return update(TH_METRIC_ADD, value, labels);
  }
  // gauge
  [[nodiscard]] Status set(double value,
                           std::initializer_list<std::string_view> labels = {}) const {
    return update(TH_METRIC_SET, value, labels);
  }
  // histogram
  [[nodiscard]] Status observe(double value,
                               std::initializer_list<std::string_view> labels = {}) const {
    return update(TH_METRIC_OBSERVE, value, labels);
  }
  // gauge: drops the series (no error when it does not exist)
  [[nodiscard]] Status remove(std::initializer_list<std::string_view> labels = {}) const {
    return update(TH_METRIC_REMOVE, 0, labels);
  }
  [[nodiscard]] Status remove(std::span<const std::string> labels) const {
    return update(TH_METRIC_REMOVE, 0, labels);
  }
  // Same with label values computed at run time.
  [[nodiscard]] Status add(double value, std::span<const std::string> labels) const {
    return update(TH_METRIC_ADD, value, labels);
  }
  [[nodiscard]] Status set(double value, std::span<const std::string> labels) const {
    return update(TH_METRIC_SET, value, labels);
  }
  [[nodiscard]] Status observe(double value, std::span<const std::string> labels) const {
    return update(TH_METRIC_OBSERVE, value, labels);
  }
  [[nodiscard]] Status update(std::int32_t op, double value,
                              std::span<const std::string> labels) const {
    std::vector<const char*> c_labels;
    c_labels.reserve(labels.size());
    for (const auto& l : labels) c_labels.push_back(l.c_str());
    return detail::call(api_->metric_update, api_->host, metric_,
                        c_labels.empty() ? nullptr : c_labels.data(), c_labels.size(), op, value);
  }

 private:
  [[nodiscard]] Status update(std::int32_t op, double value,
                              std::initializer_list<std::string_view> labels) const {
    std::vector<std::string> owned(labels.begin(), labels.end());
    return update(op, value, std::span<const std::string>(owned));
  }

  const th_host_api* api_;
  th_metric* metric_;
};

class Metrics {
 public:
  explicit Metrics(const th_host_api* api) noexcept : api_(api) {}

  // A family declared in the descriptor (or registered earlier), by name.
  [[nodiscard]] Result<Metric> find(std::string_view name) const {
    th_metric* m = nullptr;
    TH_TRY(detail::call(api_->metric_find, api_->host, detail::c_str(name).c_str(), &m));
    return Metric(api_, m);
  }

  [[nodiscard]] Result<Metric> register_family(MetricFamily family) const {
    th_metric* m = nullptr;
    const th_metric_family& cf = family.c();
    TH_TRY(detail::call(api_->metric_register, api_->host, &cf, &m));
    return Metric(api_, m);
  }

  // Feeds `metric` from `map` at every scrape. K and V must match the map's key and value sizes.
  template <typename K, typename V>
  [[nodiscard]] Status bind(const Metric& metric, const Map& map, MapBinding<K, V> binding) const {
    if (!binding.has_value()) {
      return Error(ErrorKind::kInvalidArgument,
                   "map binding names no value: call .value<&V::member>() or "
                   ".log2_hist<&V::slots, &V::sum>()");
    }
    TH_ASSIGN_OR_RETURN(MapInfo mi, map.info());
    if (mi.key_size != sizeof(K) || mi.value_size != sizeof(V)) {
      return Error(
          ErrorKind::kMap,
          detail::concat("map '", mi.name, "' has ", mi.key_size, "-byte keys and ", mi.value_size,
                         "-byte values, the binding's types have ", sizeof(K), " and ", sizeof(V),
                         ": bind the struct types the BPF side declares"));
    }
    const th_map_binding& cb = binding.c();
    return detail::call(api_->metric_bind_map, api_->host, metric.c(), map.c(), &cb);
  }

 private:
  const th_host_api* api_;
};

// ---- the host facade ---------------------------------------------------------------------------

// The plugin's handle on the host, valid from construction of the plugin until its destruction.
// Everything here is thread-safe.
class Host {
 public:
  explicit Host(const th_host_api* api) : api_(api), log_(api) {}
  ~Host() { unsubscribe_all(); }
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;
  Host(Host&&) = delete;
  Host& operator=(Host&&) = delete;

  [[nodiscard]] const Log& log() const noexcept { return log_; }
  [[nodiscard]] Config config() const noexcept { return Config(api_); }
  [[nodiscard]] Bpf bpf() const noexcept { return Bpf(api_); }
  [[nodiscard]] Maps maps() const noexcept { return Maps(api_); }
  [[nodiscard]] Events events() noexcept { return Events(this); }
  [[nodiscard]] Metrics metrics() const noexcept { return Metrics(api_); }

  // The raw services table, for services this SDK does not wrap yet.
  [[nodiscard]] const th_host_api* c_api() const noexcept { return api_; }

  // Ends every subscription of this plugin. The host guarantees that no callback runs once
  // event_unsubscribe returns, so the callables can be freed right after.
  void unsubscribe_all() noexcept {
    std::map<SubscriptionId, std::unique_ptr<Subscriber>> subs;
    {
      std::lock_guard lock(mu_);
      subs.swap(subscribers_);
    }
    for (auto& [id, sub] : subs) {
      th_error err{};
      err.struct_size = sizeof(th_error);
      api_->event_unsubscribe(api_->host, id, &err);  // NOT_FOUND: the host removed it already
    }
  }

 private:
  friend class Events;

  // What the C trampoline receives as `user`: the callable, type-erased.
  struct Subscriber {
    std::function<void(const EventBatch&)> fn;
    Log log;
    std::string glob;
  };

  static void trampoline(void* user, const th_event* events, std::size_t count) noexcept {
    auto* sub = static_cast<Subscriber*>(user);
    try {
      sub->fn(EventBatch(events, count));
    } catch (const std::exception& e) {
      sub->log.error("subscriber to '", sub->glob, "' threw: ", e.what(), " (events dropped)");
    } catch (...) {
      sub->log.error("subscriber to '", sub->glob, "' threw a non-std exception (events dropped)");
    }
  }

  const th_host_api* api_;
  Log log_;
  std::mutex mu_;
  std::map<SubscriptionId, std::unique_ptr<Subscriber>> subscribers_;
};

// ---- out-of-line members that need Host -----------------------------------------------------

inline Status Events::register_topic(EventSchema schema) const {
  TH_TRY(schema.validate());
  const th_event_schema& cs = schema.c();
  const th_host_api* api = host_->api_;
  return detail::call(api->event_register, api->host, &cs);
}

inline Status Events::bind(const Map& ringbuf, std::string_view topic) const {
  const th_host_api* api = host_->api_;
  return detail::call(api->event_bind_ringbuf, api->host, ringbuf.c(),
                      detail::c_str(topic).c_str());
}

inline Status Events::bind(const Map& ringbuf, std::string_view topic, std::uint32_t flags) const {
  const th_host_api* api = host_->api_;
  if (flags == 0) return bind(ringbuf, topic);
  TH_TRY(detail::require_host_api(
      api, offsetof(th_host_api, event_bind_ringbuf_flags) + sizeof(api->event_bind_ringbuf_flags),
      "binding ring buffer flags", 1));
  if ((flags & TH_RINGBUF_STAGED) != 0 && api->api_major == 1 && api->api_minor < 4) {
    return Error(ErrorKind::kAbi,
                 detail::concat("a staged ring buffer (TH_RINGBUF_STAGED) needs plugin API 1.4; "
                                "this host provides ",
                                api->api_major, ".", api->api_minor, ": upgrade tracehost"));
  }
  return detail::call(api->event_bind_ringbuf_flags, api->host, ringbuf.c(),
                      detail::c_str(topic).c_str(), flags);
}

inline Status Events::publish_bytes(std::string_view topic,
                                    std::span<const std::byte> record) const {
  const th_host_api* api = host_->api_;
  return detail::call(api->event_publish, api->host, detail::c_str(topic).c_str(),
                      static_cast<const void*>(record.data()), record.size());
}

inline Status Events::set_off(std::string_view topic, std::string_view reason) const {
  const th_host_api* api = host_->api_;
  TH_TRY(detail::require_host_api(api,
                                  offsetof(th_host_api, event_set_off) + sizeof(api->event_set_off),
                                  "declaring a topic off", 5));
  return detail::call(api->event_set_off, api->host, detail::c_str(topic).c_str(),
                      detail::c_str(reason).c_str());
}

template <typename F>
Result<SubscriptionId> Events::subscribe(std::string_view glob, F&& fn) const {
  using Fn = std::decay_t<F>;
  auto sub =
      std::make_unique<Host::Subscriber>(Host::Subscriber{{}, host_->log_, std::string(glob)});
  if constexpr (std::is_invocable_v<Fn&, const EventBatch&>) {
    sub->fn = std::forward<F>(fn);
  } else {
    static_assert(std::is_invocable_v<Fn&, const Event&>,
                  "subscribe() takes a callable of (const tracehost::Event&) or "
                  "(const tracehost::EventBatch&)");
    sub->fn = [f = Fn(std::forward<F>(fn))](const EventBatch& batch) mutable {
      for (Event e : batch) f(e);
    };
  }
  const th_host_api* api = host_->api_;
  Host::Subscriber* raw = sub.get();
  SubscriptionId id = 0;
  // Held across the call: a batch can arrive before the id is known, and the trampoline does
  // not need the map, but unsubscribe_all must not miss this subscriber.
  std::lock_guard lock(host_->mu_);
  TH_TRY(detail::call(api->event_subscribe, api->host, sub->glob.c_str(), &Host::trampoline,
                      static_cast<void*>(raw), &id));
  host_->subscribers_.emplace(id, std::move(sub));
  return id;
}

inline Status Events::unsubscribe(SubscriptionId id) const {
  const th_host_api* api = host_->api_;
  TH_TRY(detail::call(api->event_unsubscribe, api->host, id));
  std::unique_ptr<Host::Subscriber> sub;
  {
    std::lock_guard lock(host_->mu_);
    auto it = host_->subscribers_.find(id);
    if (it != host_->subscribers_.end()) {
      sub = std::move(it->second);
      host_->subscribers_.erase(it);
    }
  }
  return ok();
}

}  // namespace tracehost
