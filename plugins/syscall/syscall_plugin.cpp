// The syscall plugin: per-syscall counts, errors and latency histograms, per-process counts, and
// exec / open / failed / slow syscall events, from tp_btf sys_enter + sys_exit.
//
// Everything per event happens in the kernel: metrics are map bindings read by the host at scrape
// time, events are ring buffers bound to topics. This file only turns the config into rodata and
// filter maps, and declares schemas and bindings.

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tracehost/event_fields.hpp"
#include "tracehost/sdk.hpp"
#include "tracehost/task_filter.hpp"

#include "syscall.bpf.embed.h"
#include "syscall.h"
#include "syscall/syscall_tables.hpp"

namespace tracehost::syscall {
namespace {

// ---- layout shared with syscall.bpf.c: what the schemas and bindings below rely on ------------

static_assert(sizeof(th_event_header) == 48);
static_assert(offsetof(th_event_header, timestamp_ns) == 0);
static_assert(offsetof(th_event_header, cgroup_id) == 8);
static_assert(offsetof(th_event_header, pid) == 16);
static_assert(offsetof(th_event_header, comm) == 32);
static_assert(sizeof(syscall_stats) == 24 + 8 * TH_SYSCALL_LATENCY_SLOTS);
static_assert(offsetof(syscall_stats, slots) == 24);
static_assert(sizeof(syscall_process_key) == 24);
static_assert(offsetof(syscall_process_key, pid) == 16);
static_assert(offsetof(syscall_process_key, id) == 20);
static_assert(sizeof(syscall_process_stats) == 24);
static_assert(sizeof(syscall_exec_event) == 600);
static_assert(offsetof(syscall_exec_event, filename) == 88);
static_assert(offsetof(syscall_exec_event, args) == 344);
static_assert(sizeof(syscall_open_event) == 344);
static_assert(offsetof(syscall_open_event, path) == 88);
static_assert(sizeof(syscall_event) == 72);
static_assert(offsetof(syscall_event, id) == 64);

constexpr std::string_view kTopicExec = "syscall.exec";
constexpr std::string_view kTopicOpen = "syscall.open";
constexpr std::string_view kTopicFailed = "syscall.failed";
constexpr std::string_view kTopicSlow = "syscall.slow";

constexpr std::uint32_t kNoSyscall = 0xffffffffu;

std::string_view arch_name(Arch arch) { return arch == Arch::kX86_64 ? "x86_64" : "arm64"; }

Error config_error(std::string_view key, std::string message) {
  return plugin_config_error("syscall", key, message);
}

// ---- settings: the validated config, in the units BPF wants ----------------------------------

struct Settings {
  std::uint32_t per_process = TH_SYSCALL_PER_PROCESS_COMM;
  TaskFilter tasks;
  std::vector<std::uint32_t> syscall_ids;  // empty: all
  bool failed_only = false;
  std::uint64_t min_latency_ns = 0;
  bool exec = true;
  bool open = false;
  bool failed = false;
  std::uint64_t slow_threshold_ns = 0;
  std::uint32_t ringbuf_bytes = 0;
  std::uint32_t max_series = 0;
  std::uint32_t process_map_entries = 0;
};

Result<Settings> read_settings(const Host& host) {
  const Config cfg = host.config();
  const auto table = native_table();
  Settings s;

  TH_ASSIGN_OR_RETURN(std::string per_process, cfg.str("per_process"));
  if (per_process == "comm") {
    s.per_process = TH_SYSCALL_PER_PROCESS_COMM;
  } else if (per_process == "pid") {
    s.per_process = TH_SYSCALL_PER_PROCESS_PID;
  } else if (per_process == "off") {
    s.per_process = TH_SYSCALL_PER_PROCESS_OFF;
  } else {
    return config_error("per_process",
                        detail::concat("'", per_process, "' is not one of comm, pid, off"));
  }

  TH_ASSIGN_OR_RETURN(s.tasks, read_task_filter(cfg, "syscall", kFilterAll));

  TH_ASSIGN_OR_RETURN(std::vector<std::string> names, cfg.strings("syscalls"));
  for (const auto& name : names) {
    auto id = find_id(table, name);
    if (!id.has_value()) {
      std::string hint;
      if (auto close = closest_name(table, name); !close.empty()) {
        hint = detail::concat(" (did you mean '", close, "'?)");
      }
      return config_error("syscalls", detail::concat("unknown syscall '", name, "' on ",
                                                     arch_name(native_arch()), hint));
    }
    if (*id >= TH_SYSCALL_MAX_ID) {
      return config_error("syscalls",
                          detail::concat("syscall '", name, "' has number ", *id, ", beyond the ",
                                         TH_SYSCALL_MAX_ID, " this plugin traces"));
    }
    s.syscall_ids.push_back(*id);
  }

  TH_ASSIGN_OR_RETURN(s.failed_only, cfg.boolean("failed_only"));
  TH_ASSIGN_OR_RETURN(std::uint64_t min_latency_us, cfg.u64("min_latency_us"));
  s.min_latency_ns = min_latency_us * 1000;

  TH_ASSIGN_OR_RETURN(s.exec, cfg.boolean("exec"));
  TH_ASSIGN_OR_RETURN(s.open, cfg.boolean("open"));
  TH_ASSIGN_OR_RETURN(s.failed, cfg.boolean("failed"));
  TH_ASSIGN_OR_RETURN(std::uint64_t slow_us, cfg.u64("slow_threshold_us"));
  s.slow_threshold_ns = slow_us * 1000;

  TH_ASSIGN_OR_RETURN(s.ringbuf_bytes, read_ringbuf_bytes(cfg, "syscall"));

  TH_ASSIGN_OR_RETURN(std::uint64_t max_series, cfg.u64("max_series"));
  s.max_series = static_cast<std::uint32_t>(max_series);
  TH_ASSIGN_OR_RETURN(std::uint64_t entries, cfg.u64("process_map_entries"));
  s.process_map_entries = static_cast<std::uint32_t>(entries);
  return s;
}

// ---- schemas -----------------------------------------------------------------------------------

constexpr std::string_view kTimestampDoc = "when the syscall returned";
constexpr std::string_view kCommDoc = "thread name at return (after exec: the new program's)";

EventSchema exec_schema() {
  using E = syscall_exec_event;
  auto f = event_header_fields<E>(kTimestampDoc, kCommDoc);
  f.push_back(field<&E::ppid>("ppid", FieldType::kPid).doc("parent process id").data());
  f.push_back(field<&E::id>("syscall", FieldType::kEnum)
                  .enums(native_table())
                  .doc("execve or execveat")
                  .data());
  f.push_back(field<&E::filename>("filename", FieldType::kString)
                  .doc("path passed to exec (truncated to 255 bytes)")
                  .data());
  f.push_back(
      field<&E::argc>("argc", FieldType::kUint).doc("arguments captured (at most 4)").data());
  for (std::uint32_t i = 0; i < TH_SYSCALL_EXEC_ARGS; ++i) {
    f.push_back(field_at<E>(detail::concat("arg", i), FieldType::kString,
                            static_cast<std::uint32_t>(offsetof(E, args) + i * TH_SYSCALL_ARG_LEN),
                            TH_SYSCALL_ARG_LEN)
                    .doc("argv[i], truncated to 63 bytes; empty past argc")
                    .data());
  }
  f.push_back(field<&E::args_truncated>("args_truncated", FieldType::kBool)
                  .doc("argv had more than 4 entries")
                  .data());
  f.push_back(field<&E::ret>("ret", FieldType::kInt).doc("0, or -errno").data());
  f.push_back(field<&E::err>("errno", FieldType::kErrno).doc("error name; 0 on success").data());
  f.push_back(field<&E::latency_ns>("latency_ns", FieldType::kDurationNs)
                  .doc("time in the syscall")
                  .data());
  return EventSchema(kTopicExec, "a process called execve/execveat (successful or not)", sizeof(E),
                     std::move(f));
}

EventSchema open_schema() {
  using E = syscall_open_event;
  auto f = event_header_fields<E>(kTimestampDoc, kCommDoc);
  f.push_back(field<&E::id>("syscall", FieldType::kEnum)
                  .enums(native_table())
                  .doc("open, openat, openat2 or creat")
                  .data());
  f.push_back(field<&E::path>("path", FieldType::kString)
                  .doc("path as passed (relative to dirfd); truncated to 255 bytes")
                  .data());
  f.push_back(field<&E::dirfd>("dirfd", FieldType::kInt).doc("-100 = AT_FDCWD").data());
  f.push_back(field<&E::flags>("flags", FieldType::kFlags).doc("O_* flags").data());
  f.push_back(field<&E::mode>("mode", FieldType::kFlags).doc("creation mode").data());
  f.push_back(field<&E::ret>("ret", FieldType::kInt).doc("file descriptor, or -errno").data());
  f.push_back(field<&E::err>("errno", FieldType::kErrno).doc("error name; 0 on success").data());
  f.push_back(field<&E::latency_ns>("latency_ns", FieldType::kDurationNs)
                  .doc("time in the syscall")
                  .data());
  return EventSchema(kTopicOpen, "a file open (open, openat, openat2, creat)", sizeof(E),
                     std::move(f));
}

EventSchema syscall_event_schema(std::string_view topic, std::string_view doc) {
  using E = syscall_event;
  auto f = event_header_fields<E>(kTimestampDoc, kCommDoc);
  f.push_back(field<&E::id>("syscall", FieldType::kEnum).enums(native_table()).data());
  f.push_back(field<&E::ret>("ret", FieldType::kInt).doc("return value").data());
  f.push_back(field<&E::err>("errno", FieldType::kErrno).doc("error name; 0 on success").data());
  f.push_back(field<&E::latency_ns>("latency_ns", FieldType::kDurationNs)
                  .doc("time in the syscall")
                  .data());
  return EventSchema(topic, doc, sizeof(E), std::move(f));
}

// ---- metric bindings ---------------------------------------------------------------------------

using StatsBinding = MapBinding<std::uint32_t, syscall_stats>;
using ProcessBinding = MapBinding<syscall_process_key, syscall_process_stats>;

StatsBinding stats_binding() {
  StatsBinding b;
  b.label("syscall", KeyKind::kEnum).enums(native_table()).skip_zero();
  return b;
}

ProcessBinding process_binding(std::uint32_t mode) {
  ProcessBinding b;
  if (mode == TH_SYSCALL_PER_PROCESS_PID) b.label<&syscall_process_key::pid>("pid", KeyKind::kUint);
  b.label<&syscall_process_key::comm>("comm", KeyKind::kString);
  b.label<&syscall_process_key::id>("syscall", KeyKind::kEnum).enums(native_table());
  b.skip_zero();
  return b;
}

MetricFamily process_family(std::string_view name, std::string_view help, std::uint32_t mode,
                            std::uint32_t max_series) {
  auto f = mode == TH_SYSCALL_PER_PROCESS_PID
               ? MetricFamily::counter(name, help, {"pid", "comm", "syscall"})
               : MetricFamily::counter(name, help, {"comm", "syscall"});
  f.max_series(max_series);
  return f;
}

}  // namespace

class SyscallPlugin final : public Plugin {
 public:
  static std::vector<ConfigKey> config_keys() {
    std::vector<ConfigKey> k;
    k.push_back(ConfigKey::str("per_process", "comm",
                               "per-process metrics keyed by process name, by pid (+ name), or "
                               "off (cheapest)")
                    .choices({"comm", "pid", "off"}));
    add_task_filter_keys(k, kFilterPids | kFilterTids | kFilterComms | kFilterCgroup);
    k.push_back(ConfigKey::strings("syscalls", "only these syscalls, by name; empty = all"));
    k.push_back(ConfigKey::boolean("failed_only", false,
                                   "only record syscalls that return -errno (metrics and events)"));
    k.push_back(ConfigKey::u64("min_latency_us", 0,
                               "only record syscalls at least this slow (metrics and events)")
                    .range(0, 3.6e9));
    add_task_filter_keys(k, kFilterExcludeSelf);
    k.push_back(ConfigKey::boolean("exec", true, "emit syscall.exec events (while subscribed)"));
    k.push_back(ConfigKey::boolean("open", false, "emit syscall.open events (while subscribed)"));
    k.push_back(ConfigKey::boolean(
        "failed", false,
        "emit syscall.failed events while subscribed (every syscall returning -errno: "
        "can be very frequent)"));
    k.push_back(ConfigKey::u64("slow_threshold_us", 0,
                               "emit syscall.slow events for syscalls at least this slow; 0 = off")
                    .range(0, 3.6e9));
    k.push_back(ringbuf_kb_key(256));
    k.push_back(ConfigKey::u64("max_series", 2000,
                               "label sets kept per per-process metric before folding into "
                               "\"other\"")
                    .range(1, 1000000));
    k.push_back(ConfigKey::u64("process_map_entries", 10240,
                               "(process, syscall) pairs kept in the kernel; least recently used "
                               "ones are evicted")
                    .range(16, 1 << 22));
    return k;
  }

  static std::vector<EventSchema> topics() {
    std::vector<EventSchema> t;
    t.push_back(exec_schema());
    t.push_back(open_schema());
    t.push_back(syscall_event_schema(kTopicFailed, "a syscall returned -errno"));
    t.push_back(syscall_event_schema(kTopicSlow, "a syscall took at least slow_threshold_us"));
    return t;
  }

  static std::vector<MetricFamily> metric_families() {
    std::vector<MetricFamily> m;
    m.push_back(MetricFamily::counter("syscall_calls", "syscalls completed", {"syscall"})
                    .max_series(TH_SYSCALL_MAX_ID));
    m.push_back(
        MetricFamily::counter("syscall_errors", "syscalls that returned -errno", {"syscall"})
            .max_series(TH_SYSCALL_MAX_ID));
    m.push_back(MetricFamily::histogram("syscall_latency_seconds",
                                        "time from syscall entry to exit (log2 buckets)",
                                        {"syscall"})
                    .max_series(TH_SYSCALL_MAX_ID));
    return m;
  }

  Status start(Host& host) override {
    TH_ASSIGN_OR_RETURN(Settings s, read_settings(host));
    const auto table = native_table();
    warn_about_filtered_topics(host, s);

    TH_ASSIGN_OR_RETURN(BpfObject obj, host.bpf().open("syscall", embedded::syscall_bpf()));
    TH_TRY(configure(obj, s, table));
    TH_TRY(obj.load());
    TH_TRY(fill_task_filter(obj, s.tasks));
    TH_TRY(bind_topic_rings(host, obj, topic_rings(s)));
    TH_TRY(bind_metrics(host, obj, s));
    // exit first: an exit without a recorded entry is ignored, an entry without exit is not
    TH_TRY(obj.attach("handle_sys_exit", tp_btf("sys_exit")));
    TH_TRY(obj.attach("handle_sys_enter", tp_btf("sys_enter")));

    host.log().info("tracing ", s.syscall_ids.empty() ? table.size() : s.syscall_ids.size(),
                    " syscalls (", arch_name(native_arch()), " table from ",
                    table_source(native_arch()), "); per_process=",
                    s.per_process == TH_SYSCALL_PER_PROCESS_OFF   ? "off"
                    : s.per_process == TH_SYSCALL_PER_PROCESS_PID ? "pid"
                                                                  : "comm",
                    "; events:", s.exec ? " exec" : "", s.open ? " open" : "",
                    s.failed ? " failed" : "", s.slow_threshold_ns != 0 ? " slow" : "",
                    (!s.exec && !s.open && !s.failed && s.slow_threshold_ns == 0) ? " none" : "",
                    s.tasks.self_tgid != 0 ? "; excluding the host's own pid" : "");
    return ok();
  }

 private:
  static bool selected(const Settings& s, std::span<const th_enum_entry> table,
                       std::string_view name) {
    if (s.syscall_ids.empty()) return true;
    auto id = find_id(table, name);
    return id.has_value() &&
           std::find(s.syscall_ids.begin(), s.syscall_ids.end(), *id) != s.syscall_ids.end();
  }

  // The syscalls filter applies to events too: say so when it silences an enabled topic.
  static void warn_about_filtered_topics(const Host& host, const Settings& s) {
    const auto table = native_table();
    if (s.exec && !selected(s, table, "execve") && !selected(s, table, "execveat")) {
      host.log().warn(
          "exec = true but 'syscalls' selects neither execve nor execveat: no "
          "syscall.exec events will be emitted");
    }
    if (s.open && !selected(s, table, "openat") && !selected(s, table, "open") &&
        !selected(s, table, "openat2") && !selected(s, table, "creat")) {
      host.log().warn(
          "open = true but 'syscalls' selects no open syscall: no syscall.open "
          "events will be emitted");
    }
  }

  static std::uint32_t id_of(std::span<const th_enum_entry> table, std::string_view name) {
    auto id = find_id(table, name);
    return id.has_value() ? *id : kNoSyscall;  // arm64 has no open/creat
  }

  static Status configure(const BpfObject& obj, const Settings& s,
                          std::span<const th_enum_entry> table) {
    auto u32 = [](bool b) { return static_cast<std::uint32_t>(b ? 1 : 0); };
    TH_TRY(configure_task_filter(obj, s.tasks));

    // syscall.bpf.c
    std::array<std::uint8_t, TH_SYSCALL_MAX_ID> traced{};
    for (std::uint32_t id : s.syscall_ids) traced[id] = 1;
    TH_TRY(obj.set_rodata("filter_syscalls", u32(!s.syscall_ids.empty())));
    TH_TRY(obj.set_rodata("traced", traced));
    TH_TRY(obj.set_rodata("failed_only", u32(s.failed_only)));
    TH_TRY(obj.set_rodata("min_latency_ns", s.min_latency_ns));
    TH_TRY(obj.set_rodata("per_process", s.per_process));
    TH_TRY(obj.set_rodata("emit_exec", u32(s.exec)));
    TH_TRY(obj.set_rodata("emit_open", u32(s.open)));
    TH_TRY(obj.set_rodata("emit_failed", u32(s.failed)));
    TH_TRY(obj.set_rodata("slow_threshold_ns", s.slow_threshold_ns));
    TH_TRY(obj.set_rodata("id_execve", id_of(table, "execve")));
    TH_TRY(obj.set_rodata("id_execveat", id_of(table, "execveat")));
    TH_TRY(obj.set_rodata("id_open", id_of(table, "open")));
    TH_TRY(obj.set_rodata("id_openat", id_of(table, "openat")));
    TH_TRY(obj.set_rodata("id_openat2", id_of(table, "openat2")));
    TH_TRY(obj.set_rodata("id_creat", id_of(table, "creat")));

    // a disabled topic's ring shrinks to one page; the process map to one entry when off
    TH_TRY(size_topic_rings(obj, topic_rings(s), s.ringbuf_bytes));
    TH_TRY(obj.set_max_entries(
        "process_stats", s.per_process == TH_SYSCALL_PER_PROCESS_OFF ? 1u : s.process_map_entries));
    return ok();
  }

  static std::array<TopicRing, 4> topic_rings(const Settings& s) {
    return {{{s.exec, "exec_events", kTopicExec, 0, "exec = false"},
             {s.open, "open_events", kTopicOpen, 0, "open = false"},
             {s.failed, "failed_events", kTopicFailed, 0, "failed = false"},
             {s.slow_threshold_ns != 0, "slow_events", kTopicSlow, 0, "slow_threshold_us = 0"}}};
  }

  static Status bind_metrics(Host& host, const BpfObject& obj, const Settings& s) {
    const Metrics metrics = host.metrics();
    TH_ASSIGN_OR_RETURN(Map stats, obj.map("syscall_stats"));
    TH_ASSIGN_OR_RETURN(Metric calls, metrics.find("syscall_calls"));
    TH_TRY(metrics.bind(calls, stats, stats_binding().value<&syscall_stats::calls>()));
    TH_ASSIGN_OR_RETURN(Metric errors, metrics.find("syscall_errors"));
    TH_TRY(metrics.bind(errors, stats, stats_binding().value<&syscall_stats::errors>()));
    TH_ASSIGN_OR_RETURN(Metric latency, metrics.find("syscall_latency_seconds"));
    TH_TRY(metrics.bind(
        latency, stats,
        stats_binding().log2_hist<&syscall_stats::slots, &syscall_stats::total_ns>().scale(1e-9)));

    if (s.per_process == TH_SYSCALL_PER_PROCESS_OFF) return ok();
    TH_ASSIGN_OR_RETURN(Map procs, obj.map("process_stats"));
    TH_ASSIGN_OR_RETURN(Metric pcalls,
                        metrics.register_family(process_family("syscall_process_calls",
                                                               "syscalls completed, per process",
                                                               s.per_process, s.max_series)));
    TH_TRY(metrics.bind(pcalls, procs,
                        process_binding(s.per_process).value<&syscall_process_stats::calls>()));
    TH_ASSIGN_OR_RETURN(Metric perrors,
                        metrics.register_family(process_family(
                            "syscall_process_errors", "syscalls that returned -errno, per process",
                            s.per_process, s.max_series)));
    TH_TRY(metrics.bind(perrors, procs,
                        process_binding(s.per_process).value<&syscall_process_stats::errors>()));
    TH_ASSIGN_OR_RETURN(Metric platency, metrics.register_family(process_family(
                                             "syscall_process_latency_seconds",
                                             "total time spent in syscalls, per process",
                                             s.per_process, s.max_series)));
    TH_TRY(metrics.bind(
        platency, procs,
        process_binding(s.per_process).value<&syscall_process_stats::total_ns>().scale(1e-9)));
    return ok();
  }
};

}  // namespace tracehost::syscall

TRACEHOST_PLUGIN(tracehost::syscall::SyscallPlugin, "syscall", "1.0.0",
                 "per-syscall counts, errors and latency; per-process counts; exec, open, "
                 "failed and slow syscall events (tp_btf sys_enter/sys_exit)");
