// The cpu_profile plugin: a SEC("perf_event") program on the software cpu-clock of every online
// CPU counts (process, user stack, kernel stack) in the kernel; a plugin thread drains the counts
// every window_s seconds, symbolises them (symbolizer/) and writes the window as pprof, folded
// stacks and a flame graph SVG (formats/, window.hpp), keeping the newest keep_windows windows.
//
// Windows are double-buffered in the kernel (cpu_profile.bpf.c): the thread flips the generation
// the program writes to, lets the programs still running on the old one finish, then reads and
// clears the old generation while new samples land in the other. Nothing sampled during a drain
// is lost.
//
// Processes are symbolised from snapshots of their memory maps taken while they live: the BPF
// program announces each process's first sample of a window on the cpu_profile.process topic and
// the thread snapshots it right away, so a process that exits before the window ends still gets
// named frames. Snapshots of processes not sampled for two windows are dropped.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tracehost/event_fields.hpp"
#include "tracehost/sdk.hpp"
#include "tracehost/task_filter.hpp"

#include "cpu_profile.bpf.embed.h"
#include "cpu_profile.h"
#include "window.hpp"

namespace tracehost::cpu_profile {
namespace {

namespace fs = std::filesystem;

static_assert(sizeof(cpu_profile_key) == 32);
static_assert(offsetof(cpu_profile_key, user_stack_id) == 8);
static_assert(offsetof(cpu_profile_key, kernel_stack_id) == 12);
static_assert(offsetof(cpu_profile_key, comm) == 16);

using Stack = std::array<std::uint64_t, TH_CPU_PROFILE_MAX_DEPTH>;

// pids, comms, cgroup, exclude_self: no thread filter, samples of a process's threads go together
constexpr unsigned kCpuProfileFilters =
    kFilterPids | kFilterComms | kFilterCgroup | kFilterExcludeSelf;
constexpr std::string_view kTopicProcess = "cpu_profile.process";
// Snapshots of processes not sampled for this many windows are dropped.
constexpr std::uint64_t kForgetAfterWindows = 2;
// Time for programs that read the old generation before a flip to finish with it: they run for
// microseconds, with preemption disabled, so this is generous.
constexpr auto kFlipGrace = std::chrono::milliseconds(20);

Error config_error(std::string_view key, std::string message) {
  return plugin_config_error("cpu_profile", key, message);
}

// ---- settings ----------------------------------------------------------------------------------

struct Settings {
  std::uint64_t frequency_hz = 99;
  std::uint64_t window_s = 10;
  TaskFilter tasks;
  bool include_idle = false;
  std::uint32_t mode = TH_CPU_PROFILE_MODE_BOTH;
  bool per_thread = false;
  fs::path output_dir;
  std::uint64_t keep_windows = 0;
  unsigned formats = 0;  // OutputFormat bits
  std::uint64_t top_functions = 0;
  std::uint32_t max_keys = 0;
  std::uint32_t max_stacks = 0;
};

Result<std::uint64_t> preset_hz(const std::string& preset) {
  if (preset == "production") return 19;
  if (preset == "staging") return 49;
  if (preset == "development") return 99;
  if (preset == "debug") return 199;
  return config_error("preset", detail::concat("'", preset,
                                               "' is not one of production (19 Hz), staging "
                                               "(49 Hz), development (99 Hz), debug (199 Hz)"));
}

Result<Settings> read_settings(const Host& host) {
  const Config cfg = host.config();
  Settings s;

  // frequency_hz wins over the preset; 0 (the default) means "the preset's rate"
  TH_ASSIGN_OR_RETURN(std::string preset, cfg.str("preset"));
  TH_ASSIGN_OR_RETURN(s.frequency_hz, preset_hz(preset));
  TH_ASSIGN_OR_RETURN(std::uint64_t hz, cfg.u64("frequency_hz"));
  if (hz > 1000) {
    return config_error("frequency_hz",
                        detail::concat(hz,
                                       " Hz is above the 1000 Hz this plugin allows; sampling "
                                       "faster costs CPU on every core without sharper "
                                       "profiles: use at most 1000"));
  }
  if (hz != 0) s.frequency_hz = hz;

  TH_ASSIGN_OR_RETURN(s.window_s, cfg.u64("window_s"));
  if (s.window_s == 0) return config_error("window_s", "must be at least 1 second");

  TH_ASSIGN_OR_RETURN(s.tasks, read_task_filter(cfg, "cpu_profile", kCpuProfileFilters));
  TH_ASSIGN_OR_RETURN(s.include_idle, cfg.boolean("include_idle"));
  TH_ASSIGN_OR_RETURN(std::string mode, cfg.str("mode"));
  if (mode == "both") {
    s.mode = TH_CPU_PROFILE_MODE_BOTH;
  } else if (mode == "user") {
    s.mode = TH_CPU_PROFILE_MODE_USER;
  } else if (mode == "kernel") {
    s.mode = TH_CPU_PROFILE_MODE_KERNEL;
  } else {
    return config_error("mode", detail::concat("'", mode, "' is not one of user, kernel, both"));
  }
  TH_ASSIGN_OR_RETURN(s.per_thread, cfg.boolean("per_thread"));

  TH_ASSIGN_OR_RETURN(std::string out, cfg.str("output_dir"));
  if (out.empty()) return config_error("output_dir", "empty; give a directory for the profiles");
  s.output_dir = out;
  TH_ASSIGN_OR_RETURN(s.keep_windows, cfg.u64("keep_windows"));
  TH_ASSIGN_OR_RETURN(std::vector<std::string> formats, cfg.strings("formats"));
  if (formats.empty()) s.formats = kFormatPprof | kFormatFolded | kFormatSvg;
  for (const auto& f : formats) {
    const unsigned bit = parse_output_format(f);
    if (bit == 0) {
      return config_error("formats", detail::concat("'", f, "' is not one of pprof, folded, svg"));
    }
    s.formats |= bit;
  }
  TH_ASSIGN_OR_RETURN(s.top_functions, cfg.u64("top_functions"));
  TH_ASSIGN_OR_RETURN(std::uint64_t max_keys, cfg.u64("max_keys"));
  s.max_keys = static_cast<std::uint32_t>(max_keys);
  TH_ASSIGN_OR_RETURN(std::uint64_t max_stacks, cfg.u64("max_stacks"));
  s.max_stacks = static_cast<std::uint32_t>(max_stacks);

  return s;
}

// Creates `dir` (and parents) and checks that files can be created in it.
Status prepare_output_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return config_error("output_dir", detail::concat("cannot create '", dir.string(), "': ",
                                                     ec.message(), "; give a writable directory"));
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return config_error(
        "output_dir", detail::concat("'", dir.string(), "' is not writable (", std::strerror(errno),
                                     "); give a writable directory"));
  }
  return ok();
}

const std::array<std::string_view, TH_CPU_PROFILE_STAT_COUNT> kStatReason = {
    "", "stack_collision", "stack_map_full", "count_map_full"};

static_assert(sizeof(cpu_profile_process_event) == 56);
static_assert(offsetof(cpu_profile_process_event, window) == 48);

EventSchema process_schema() {
  using E = cpu_profile_process_event;
  auto f = event_header_fields<E>("time of the sample", "name of the thread sampled");
  f.push_back(field<&E::window>("window", FieldType::kUint)
                  .doc("window number since the plugin started")
                  .data());
  return EventSchema(kTopicProcess,
                     "a process's first sample in a profile window (the plugin then snapshots "
                     "its memory map for symbolisation)",
                     sizeof(E), std::move(f));
}

std::string_view mode_name(std::uint32_t mode) {
  return mode == TH_CPU_PROFILE_MODE_USER     ? "user"
         : mode == TH_CPU_PROFILE_MODE_KERNEL ? "kernel"
                                              : "user+kernel";
}

std::string formats_name(unsigned formats) {
  std::string out;
  auto add = [&](unsigned bit, std::string_view name) {
    if ((formats & bit) == 0) return;
    if (!out.empty()) out += ", ";
    out += name;
  };
  add(kFormatPprof, "pprof");
  add(kFormatFolded, "folded");
  add(kFormatSvg, "svg");
  return out;
}

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

class CpuProfilePlugin final : public Plugin {
 public:
  static std::vector<ConfigKey> config_keys() {
    std::vector<ConfigKey> k;
    k.push_back(ConfigKey::u64("frequency_hz", 0,
                               "samples per second per CPU (1 to 1000); 0 = the preset's rate")
                    .range(0, 1000));
    k.push_back(ConfigKey::str("preset", "development",
                               "sampling rate when frequency_hz is 0: production 19 Hz, staging "
                               "49 Hz, development 99 Hz, debug 199 Hz")
                    .choices({"production", "staging", "development", "debug"}));
    k.push_back(ConfigKey::u64("window_s", 10, "seconds per profile window (one set of files each)")
                    .range(1, 86400));
    add_task_filter_keys(k, kCpuProfileFilters & ~unsigned{kFilterExcludeSelf});
    k.push_back(ConfigKey::boolean("include_idle", false,
                                   "also count samples of the idle task (pid 0, 'swapper/N')"));
    k.push_back(ConfigKey::str("mode", "both", "stacks to record: user, kernel or both")
                    .choices({"user", "kernel", "both"}));
    k.push_back(ConfigKey::boolean("per_thread", false,
                                   "keep threads of a process apart (key by thread id)"));
    k.push_back(ConfigKey::str("output_dir", "/var/lib/tracehost/cpu_profile",
                               "directory for the window files (created if missing)"));
    k.push_back(ConfigKey::strings("formats",
                                   "files written per window: pprof (.pb.gz), folded (.folded), "
                                   "svg (flame graph .svg); empty = all three")
                    .choices({"pprof", "folded", "svg"}));
    k.push_back(ConfigKey::u64("keep_windows", 360,
                               "windows kept in output_dir (all formats of a window count as "
                               "one), oldest deleted first; 0 = all")
                    .range(0, 1000000));
    k.push_back(ConfigKey::u64("top_functions", 10,
                               "functions of the last window exported as gauges (self and "
                               "total share) for the console and Prometheus; 0 = none")
                    .range(0, 1000));
    k.push_back(ConfigKey::u64("max_keys", 16384,
                               "distinct (process, stacks) keys per window in the kernel; more "
                               "are lost and counted")
                    .range(64, 1 << 22));
    k.push_back(ConfigKey::u64("max_stacks", 16384,
                               "distinct stacks per window in the kernel (1016 bytes each, two "
                               "windows); more are lost and counted")
                    .range(64, 1 << 20));
    add_task_filter_keys(k, kFilterExcludeSelf);
    return k;
  }

  static std::vector<EventSchema> topics() {
    std::vector<EventSchema> t;
    t.push_back(process_schema());
    return t;
  }

  static std::vector<MetricFamily> metric_families() {
    std::vector<MetricFamily> m;
    m.push_back(
        MetricFamily::counter("cpu_profile_samples", "cpu-clock samples that passed the filters"));
    m.push_back(MetricFamily::counter("cpu_profile_lost_samples",
                                      "samples not in any profile, by reason", {"reason"}));
    m.push_back(MetricFamily::counter("cpu_profile_windows_written",
                                      "profile windows written (each in every configured format)"));
    m.push_back(MetricFamily::gauge("cpu_profile_function_self_ratio",
                                    "share of the last window's samples in which the function "
                                    "was running (the leaf), for the top_functions first",
                                    {"function", "module"})
                    .max_series(1000));
    m.push_back(MetricFamily::gauge("cpu_profile_function_total_ratio",
                                    "share of the last window's samples with the function "
                                    "anywhere on the stack, for the top_functions first",
                                    {"function", "module"})
                    .max_series(1000));
    return m;
  }

  explicit CpuProfilePlugin(Host& host) : host_(host) {}
  ~CpuProfilePlugin() override { stop(); }

  Status start(Host& host) override {
    TH_ASSIGN_OR_RETURN(settings_, read_settings(host));
    const Settings& s = settings_;
    TH_TRY(prepare_output_dir(s.output_dir));
    writer_.emplace(s.output_dir, s.formats, s.keep_windows);

    if (s.mode != TH_CPU_PROFILE_MODE_USER) {
      const std::size_t n = symbolizer_.load_kernel_symbols();
      if (n == 0) {
        host.log().warn(
            "/proc/kallsyms gave no kernel symbol addresses (kptr_restrict, or no CAP_SYSLOG): "
            "kernel frames will show as addresses; run as root or set "
            "kernel.kptr_restrict=0");
      } else {
        host.log().debug(n, " kernel symbols from /proc/kallsyms");
      }
    }

    TH_ASSIGN_OR_RETURN(BpfObject obj, host.bpf().open("cpu_profile", embedded::cpu_profile_bpf()));
    TH_TRY(configure(obj, s));
    TH_TRY(obj.load());
    TH_TRY(fill_task_filter(obj, s.tasks));
    TH_ASSIGN_OR_RETURN(Map control, obj.map("control"));
    TH_ASSIGN_OR_RETURN(Map counts0, obj.map("counts_0"));
    TH_ASSIGN_OR_RETURN(Map counts1, obj.map("counts_1"));
    TH_ASSIGN_OR_RETURN(Map stacks0, obj.map("stacks_0"));
    TH_ASSIGN_OR_RETURN(Map stacks1, obj.map("stacks_1"));
    TH_ASSIGN_OR_RETURN(Map stats, obj.map("stats"));
    TH_ASSIGN_OR_RETURN(Map process_events, obj.map("process_events"));
    control_ = control;
    counts_ = {counts0, counts1};
    stacks_ = {stacks0, stacks1};
    stats_ = stats;
    const Metrics metrics = host.metrics();
    TH_ASSIGN_OR_RETURN(Metric samples, metrics.find("cpu_profile_samples"));
    TH_ASSIGN_OR_RETURN(Metric lost, metrics.find("cpu_profile_lost_samples"));
    TH_ASSIGN_OR_RETURN(Metric windows, metrics.find("cpu_profile_windows_written"));
    TH_ASSIGN_OR_RETURN(Metric top_self, metrics.find("cpu_profile_function_self_ratio"));
    TH_ASSIGN_OR_RETURN(Metric top_total, metrics.find("cpu_profile_function_total_ratio"));
    samples_metric_ = samples;
    lost_metric_ = lost;
    windows_metric_ = windows;
    top_self_metric_ = top_self;
    top_total_metric_ = top_total;
    // series exist from the start, at 0
    TH_TRY(samples.add(0));
    TH_TRY(windows.add(0));
    for (std::size_t i = 1; i < kStatReason.size(); ++i) TH_TRY(lost.add(0, {kStatReason[i]}));

    // processes announced by the kernel are snapshotted by the window thread
    // announcements wake the host themselves: no polling for them
    TH_TRY(host.events().bind(process_events, kTopicProcess, TH_RINGBUF_PRODUCER_WAKES));
    TH_ASSIGN_OR_RETURN(subscription_,
                        host.events().subscribe(kTopicProcess, [this](const Event& e) {
                          if (auto rec = e.as<cpu_profile_process_event>()) {
                            std::lock_guard lock(mu_);
                            announced_.push_back(rec->hdr.pid);
                          }
                          cv_.notify_all();
                        }));

    window_ = 0;
    TH_TRY(control.update(std::uint32_t{0}, window_));
    TH_TRY(obj.attach("cpu_profile_sample", perf_event_freq(s.frequency_hz)));

    {
      std::lock_guard lock(mu_);
      stopping_ = false;
    }
    thread_ = std::thread([this] { run(); });
    host.log().info("sampling at ", s.frequency_hz, " Hz per CPU, ", s.window_s, " s windows as ",
                    formats_name(s.formats), " into ", s.output_dir.string(), " (keeping ",
                    s.keep_windows == 0 ? std::string("all") : std::to_string(s.keep_windows),
                    "); stacks: ", mode_name(s.mode), s.include_idle ? "; idle included" : "",
                    s.tasks.self_tgid != 0 ? "; excluding the host's own pid" : "");
    return ok();
  }

  // Writes the window in progress, then ends the thread (probes are still attached here).
  void stop() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (subscription_) {
      (void)host_.events().unsubscribe(*subscription_);
      subscription_.reset();
    }
  }

 private:
  static Status configure(const BpfObject& obj, const Settings& s) {
    auto u32 = [](bool b) { return static_cast<std::uint32_t>(b ? 1 : 0); };
    TH_TRY(configure_task_filter(obj, s.tasks));
    TH_TRY(obj.set_rodata("mode", s.mode));
    TH_TRY(obj.set_rodata("include_idle", u32(s.include_idle)));
    TH_TRY(obj.set_rodata("per_thread", u32(s.per_thread)));
    TH_TRY(obj.set_max_entries("counts_0", s.max_keys));
    TH_TRY(obj.set_max_entries("counts_1", s.max_keys));
    TH_TRY(obj.set_max_entries("stacks_0", s.max_stacks));
    TH_TRY(obj.set_max_entries("stacks_1", s.max_stacks));
    TH_TRY(obj.set_max_entries("announced", s.max_keys));
    return ok();
  }

  void run() {
    const auto window = std::chrono::seconds(settings_.window_s);
    auto start = std::chrono::system_clock::now();
    auto next = std::chrono::steady_clock::now() + window;
    for (;;) {
      bool last = false;
      std::vector<std::uint32_t> pids;
      {
        std::unique_lock lock(mu_);
        cv_.wait_until(lock, next, [this] { return stopping_ || !announced_.empty(); });
        last = stopping_;
        pids.swap(announced_);
      }
      remember(pids);
      if (!last && std::chrono::steady_clock::now() < next) continue;

      const auto end = std::chrono::system_clock::now();
      auto st = finish_window(start, end);
      if (!st.ok()) host_.log().error("profile window lost: ", st.error().describe());
      if (last) return;
      start = end;
      next += window;
      // a window that took longer than window_s (a huge profile): start the next one now
      if (next < std::chrono::steady_clock::now()) next = std::chrono::steady_clock::now() + window;
    }
  }

  // Snapshots the memory maps of announced processes while they live: once per process and
  // window, so an exec or a dlopen since the last window is seen (parsed ELF files are cached).
  void remember(const std::vector<std::uint32_t>& pids) {
    for (std::uint32_t pid : pids) {
      last_seen_[pid] = window_;
      symbolizer_.remember(static_cast<pid_t>(pid));
    }
  }

  // Flips the generation, drains the old one, symbolises and writes it, updates the metrics.
  Status finish_window(std::chrono::system_clock::time_point start,
                       std::chrono::system_clock::time_point end) {
    const std::uint32_t old = window_;
    TH_TRY(control_->update(std::uint32_t{0}, old + 1));
    window_ = old + 1;
    std::this_thread::sleep_for(kFlipGrace);

    const auto t0 = std::chrono::steady_clock::now();
    TH_ASSIGN_OR_RETURN(std::vector<RawSample> raw, drain(old & 1u));
    TH_TRY(publish_stats());
    const double drain_ms = ms_since(t0);

    // a process can still be announced for this window after its flip: pick those up first
    std::vector<std::uint32_t> pids;
    {
      std::lock_guard lock(mu_);
      pids.swap(announced_);
    }
    remember(pids);

    const auto t1 = std::chrono::steady_clock::now();
    ProfileWindow w;
    w.start_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count());
    w.end_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(end.time_since_epoch()).count());
    w.frequency_hz = static_cast<std::uint32_t>(settings_.frequency_hz);
    w.period_ns = 1000000000ULL / settings_.frequency_hz;
    const Profile profile = build_profile(raw, symbolizer_, w, settings_.per_thread);
    const double symbolize_ms = ms_since(t1);
    forget_stale();

    TH_TRY(publish_top(profile));
    if (profile.samples.empty()) {
      host_.log().debug("window ", utc_stamp(start), ": no samples, nothing written");
      return ok();
    }
    const auto t2 = std::chrono::steady_clock::now();
    TH_ASSIGN_OR_RETURN(std::vector<fs::path> files, writer_->write(profile, start));
    TH_TRY(windows_metric_->add(1));
    writer_->rotate();
    host_.log().debug("window ", utc_stamp(start), ": ", profile.total_samples(), " samples, ",
                      profile.samples.size(), " stacks; drain ", drain_ms, " ms, symbolise ",
                      symbolize_ms, " ms, write ", ms_since(t2), " ms; ",
                      files.empty() ? std::string() : files.front().stem().string());
    return ok();
  }

  Result<std::vector<RawSample>> drain(std::uint32_t gen) {
    const Map& counts = counts_[gen];
    const Map& stacks = stacks_[gen];
    std::map<std::int32_t, std::vector<std::uint64_t>> stack_cache;
    // leaf first, as stored; empty when the sample has none or the stack is gone
    auto stack = [&](std::int32_t id) -> const std::vector<std::uint64_t>& {
      auto [it, inserted] = stack_cache.try_emplace(id);
      if (inserted && id >= 0) {
        auto r = stacks.find<std::uint32_t, Stack>(static_cast<std::uint32_t>(id));
        if (r.ok() && r->has_value()) {
          const Stack& frames = **r;
          std::size_t depth = 0;
          while (depth < frames.size() && frames[depth] != 0) ++depth;
          it->second.assign(frames.begin(), frames.begin() + static_cast<std::ptrdiff_t>(depth));
        }
      }
      return it->second;
    };

    std::vector<RawSample> out;
    TH_ASSIGN_OR_RETURN(std::vector<cpu_profile_key> keys, counts.keys<cpu_profile_key>());
    out.reserve(keys.size());
    for (const auto& key : keys) {
      TH_ASSIGN_OR_RETURN(std::optional<std::uint64_t> n,
                          (counts.find<cpu_profile_key, std::uint64_t>(key)));
      if (!n.has_value() || *n == 0) continue;
      RawSample r;
      r.pid = key.pid;
      r.tid = key.tid;
      r.comm.assign(key.comm, strnlen(key.comm, sizeof(key.comm)));
      r.count = *n;
      r.user = stack(key.user_stack_id);
      r.kernel = stack(key.kernel_stack_id);
      out.push_back(std::move(r));
    }
    // clear the generation for its next turn
    for (const auto& key : keys) (void)counts.erase(key);
    TH_ASSIGN_OR_RETURN(std::vector<std::uint32_t> ids, stacks.keys<std::uint32_t>());
    for (std::uint32_t id : ids) (void)stacks.erase(id);
    return out;
  }

  // Drops the snapshots of processes not sampled for kForgetAfterWindows windows.
  void forget_stale() {
    for (auto it = last_seen_.begin(); it != last_seen_.end();) {
      if (window_ - it->second > kForgetAfterWindows) {
        symbolizer_.forget(static_cast<pid_t>(it->first));
        it = last_seen_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Adds what the kernel counted since the last window to the metrics.
  Status publish_stats() {
    for (std::uint32_t i = 0; i < TH_CPU_PROFILE_STAT_COUNT; ++i) {
      TH_ASSIGN_OR_RETURN(std::uint64_t total, (stats_->lookup<std::uint32_t, std::uint64_t>(i)));
      const std::uint64_t delta = total - stat_seen_[i];
      stat_seen_[i] = total;
      if (delta == 0) continue;
      if (i == TH_CPU_PROFILE_STAT_SAMPLES) {
        TH_TRY(samples_metric_->add(static_cast<double>(delta)));
      } else {
        TH_TRY(lost_metric_->add(static_cast<double>(delta), {kStatReason[i]}));
      }
    }
    return ok();
  }

  // The last window's top functions as gauges; functions that left the top are removed.
  Status publish_top(const Profile& profile) {
    if (settings_.top_functions == 0) return ok();
    const TopFunctions top = top_functions(profile, settings_.top_functions);
    const double total = top.samples > 0 ? static_cast<double>(top.samples) : 1.0;
    auto publish = [&](const Metric& metric, const std::vector<FunctionShare>& list,
                       std::uint64_t FunctionShare::*by,
                       std::set<std::vector<std::string>>& shown) -> Status {
      std::set<std::vector<std::string>> now;
      for (const auto& f : list) {
        std::vector<std::string> labels{f.function, f.module};
        TH_TRY(metric.set(static_cast<double>(f.*by) / total, labels));
        now.insert(std::move(labels));
      }
      for (const auto& labels : shown) {
        if (now.count(labels) == 0) TH_TRY(metric.remove(labels));
      }
      shown.swap(now);
      return ok();
    };
    TH_TRY(publish(*top_self_metric_, top.by_self, &FunctionShare::self, shown_self_));
    TH_TRY(publish(*top_total_metric_, top.by_total, &FunctionShare::total, shown_total_));
    return ok();
  }

  Host& host_;
  Settings settings_;
  Symbolizer symbolizer_;
  std::optional<WindowWriter> writer_;
  std::optional<Map> control_;
  std::vector<Map> counts_;
  std::vector<Map> stacks_;
  std::optional<Map> stats_;
  std::optional<Metric> samples_metric_;
  std::optional<Metric> lost_metric_;
  std::optional<Metric> windows_metric_;
  std::optional<Metric> top_self_metric_;
  std::optional<Metric> top_total_metric_;
  std::optional<SubscriptionId> subscription_;
  std::uint32_t window_ = 0;  // window number; its low bit is the generation samples go to
  std::array<std::uint64_t, TH_CPU_PROFILE_STAT_COUNT> stat_seen_{};
  // window thread only
  std::map<std::uint32_t, std::uint32_t> last_seen_;  // pid -> last window it was announced in
  std::set<std::vector<std::string>> shown_self_;
  std::set<std::vector<std::string>> shown_total_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::uint32_t> announced_;  // pids announced since the thread last looked
  std::thread thread_;
};

}  // namespace tracehost::cpu_profile

TRACEHOST_PLUGIN(tracehost::cpu_profile::CpuProfilePlugin, "cpu_profile", "0.2.0",
                 "sampled user and kernel stacks (perf_event cpu-clock), symbolised and written "
                 "per window as pprof, folded stacks and flame graph SVGs");
