// The cpu_profile plugin, sampling side: a SEC("perf_event") program on the software cpu-clock of
// every online CPU counts (process, user stack, kernel stack) in the kernel; a plugin thread
// drains the counts every window_s seconds and writes them as folded stacks.
//
// Windows are double-buffered in the kernel (cpu_profile.bpf.c): the thread flips the generation
// the program writes to, lets the programs still running on the old one finish, then reads and
// clears the old generation while new samples land in the other. Nothing sampled during a drain
// is lost.
//
// For now frames are raw hex addresses (kernel frames suffixed "_[k]", as flamegraph.pl expects);
// symbolisation and the pprof / SVG writers come from the symbolizer/ and formats/ libraries.
#include <sys/stat.h>
#include <sys/statfs.h>
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
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tracehost/sdk.hpp"
#include "tracehost/task_filter.hpp"

#include "cpu_profile.bpf.embed.h"
#include "cpu_profile.h"

namespace tracehost::cpu_profile {
namespace {

namespace fs = std::filesystem;

static_assert(sizeof(cpu_profile_key) == 32);
static_assert(offsetof(cpu_profile_key, user_stack_id) == 8);
static_assert(offsetof(cpu_profile_key, kernel_stack_id) == 12);
static_assert(offsetof(cpu_profile_key, comm) == 16);

using Stack = std::array<std::uint64_t, TH_CPU_PROFILE_MAX_DEPTH>;

// pids, comms, cgroup, exclude_self: no thread filter, samples of a process's threads go together
constexpr unsigned kCpuProfileFilters = kFilterPids | kFilterComms | kFilterCgroup | kFilterExcludeSelf;
constexpr std::string_view kFilePrefix = "cpu_profile-";
constexpr std::string_view kFileSuffix = ".folded";
// Time for programs that read the old generation before a flip to finish with it: they run for
// microseconds, with preemption disabled, so this is generous.
constexpr auto kFlipGrace = std::chrono::milliseconds(20);

Error config_error(std::string_view key, std::string message) {
  return Error(ErrorKind::kConfig, detail::concat("[plugins.cpu_profile] ", key, ": ", message));
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

// "20261125T152300Z"
std::string utc_stamp(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

const std::array<std::string_view, TH_CPU_PROFILE_STAT_COUNT> kStatReason = {
    "", "stack_collision", "stack_map_full", "count_map_full"};

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
    k.push_back(ConfigKey::u64("window_s", 10, "seconds per profile window (one file each)")
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
    k.push_back(ConfigKey::u64("keep_windows", 360,
                               "window files kept in output_dir, oldest deleted first; 0 = all")
                    .range(0, 1000000));
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

  static std::vector<MetricFamily> metric_families() {
    std::vector<MetricFamily> m;
    m.push_back(
        MetricFamily::counter("cpu_profile_samples", "cpu-clock samples that passed the filters"));
    m.push_back(MetricFamily::counter("cpu_profile_lost_samples",
                                      "samples not in any profile, by reason", {"reason"}));
    m.push_back(
        MetricFamily::counter("cpu_profile_windows_written", "profile window files written"));
    return m;
  }

  explicit CpuProfilePlugin(Host& host) : host_(host) {}
  ~CpuProfilePlugin() override { stop(); }

  Status start(Host& host) override {
    TH_ASSIGN_OR_RETURN(settings_, read_settings(host));
    const Settings& s = settings_;
    TH_TRY(prepare_output_dir(s.output_dir));

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
    control_ = control;
    counts_ = {counts0, counts1};
    stacks_ = {stacks0, stacks1};
    stats_ = stats;
    const Metrics metrics = host.metrics();
    TH_ASSIGN_OR_RETURN(Metric samples, metrics.find("cpu_profile_samples"));
    TH_ASSIGN_OR_RETURN(Metric lost, metrics.find("cpu_profile_lost_samples"));
    TH_ASSIGN_OR_RETURN(Metric windows, metrics.find("cpu_profile_windows_written"));
    samples_metric_ = samples;
    lost_metric_ = lost;
    windows_metric_ = windows;
    // series exist from the start, at 0
    TH_TRY(samples.add(0));
    TH_TRY(windows.add(0));
    for (std::size_t i = 1; i < kStatReason.size(); ++i) TH_TRY(lost.add(0, {kStatReason[i]}));

    generation_ = 0;
    TH_TRY(control.update(std::uint32_t{0}, generation_));
    TH_TRY(obj.attach("cpu_profile_sample", perf_event_freq(s.frequency_hz)));

    {
      std::lock_guard lock(mu_);
      stopping_ = false;
    }
    thread_ = std::thread([this] { run(); });
    host.log().info("sampling at ", s.frequency_hz, " Hz per CPU, ", s.window_s, " s windows into ",
                    s.output_dir.string(), "; stacks: ",
                    s.mode == TH_CPU_PROFILE_MODE_USER     ? "user"
                    : s.mode == TH_CPU_PROFILE_MODE_KERNEL ? "kernel"
                                                           : "user+kernel",
                    s.include_idle ? "; idle included" : "",
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
  }

 private:
  struct WindowData {
    std::map<std::string, std::uint64_t> folded;  // line -> samples
    std::uint64_t samples = 0;
  };

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
    return ok();
  }

  void run() {
    const auto window = std::chrono::seconds(settings_.window_s);
    auto start = std::chrono::system_clock::now();
    auto next = std::chrono::steady_clock::now() + window;
    for (;;) {
      bool last = false;
      {
        std::unique_lock lock(mu_);
        last = cv_.wait_until(lock, next, [this] { return stopping_; });
      }
      const auto end = std::chrono::system_clock::now();
      auto st = finish_window(start, end);
      if (!st.ok()) host_.log().error("profile window lost: ", st.error().describe());
      if (last) return;
      start = end;
      next += window;
    }
  }

  // Flips the generation, drains the old one into a file, updates the metrics.
  Status finish_window(std::chrono::system_clock::time_point start,
                       std::chrono::system_clock::time_point end) {
    const std::uint32_t old = generation_;
    TH_TRY(control_->update(std::uint32_t{0}, old ^ 1u));
    generation_ = old ^ 1u;
    std::this_thread::sleep_for(kFlipGrace);

    TH_ASSIGN_OR_RETURN(WindowData data, drain(old));
    TH_TRY(publish_stats());
    if (data.samples == 0) {
      host_.log().debug("window ", utc_stamp(start), ": no samples, nothing written");
      return ok();
    }
    TH_TRY(write_window(data, start, end));
    TH_TRY(windows_metric_->add(1));
    rotate();
    return ok();
  }

  Result<WindowData> drain(std::uint32_t gen) {
    const Map& counts = counts_[gen];
    const Map& stacks = stacks_[gen];
    WindowData out;
    std::map<std::int32_t, std::optional<Stack>> stack_cache;
    auto stack = [&](std::int32_t id) -> const std::optional<Stack>& {
      auto [it, inserted] = stack_cache.try_emplace(id);
      if (inserted && id >= 0) {
        auto r = stacks.find<std::uint32_t, Stack>(static_cast<std::uint32_t>(id));
        if (r.ok()) it->second = *r;
      }
      return it->second;
    };

    TH_ASSIGN_OR_RETURN(std::vector<cpu_profile_key> keys, counts.keys<cpu_profile_key>());
    for (const auto& key : keys) {
      TH_ASSIGN_OR_RETURN(std::optional<std::uint64_t> n,
                          (counts.find<cpu_profile_key, std::uint64_t>(key)));
      if (!n.has_value() || *n == 0) continue;
      std::string line(key.comm, strnlen(key.comm, sizeof(key.comm)));
      if (line.empty()) line = "[unknown]";
      // ';' and ' ' separate frames and the count in folded stacks
      std::replace(line.begin(), line.end(), ';', '_');
      std::replace(line.begin(), line.end(), ' ', '_');
      if (settings_.per_thread) line += detail::concat(";[tid ", key.tid, "]");
      // root first: bpf_get_stackid stores the leaf at index 0, zero-terminated
      auto append = [&line](const Stack& frames, std::string_view suffix) {
        std::size_t depth = 0;
        while (depth < frames.size() && frames[depth] != 0) ++depth;
        for (std::size_t i = depth; i-- > 0;) line += detail::concat(";", hex(frames[i]), suffix);
      };
      if (const auto& u = stack(key.user_stack_id); u.has_value()) append(*u, "");
      if (const auto& k = stack(key.kernel_stack_id); k.has_value()) append(*k, "_[k]");
      out.folded[line] += *n;
      out.samples += *n;
    }
    // clear the generation for its next turn
    for (const auto& key : keys) (void)counts.erase(key);
    TH_ASSIGN_OR_RETURN(std::vector<std::uint32_t> ids, stacks.keys<std::uint32_t>());
    for (std::uint32_t id : ids) (void)stacks.erase(id);
    return out;
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

  Status write_window(const WindowData& data, std::chrono::system_clock::time_point start,
                      std::chrono::system_clock::time_point end) {
    char seq[16];
    std::snprintf(seq, sizeof(seq), "%06llu", static_cast<unsigned long long>(++sequence_));
    const std::string name = detail::concat(kFilePrefix, utc_stamp(start), "-", seq, kFileSuffix);
    const fs::path path = settings_.output_dir / name;
    const fs::path tmp = settings_.output_dir / detail::concat(".", name, ".tmp");
    {
      std::ofstream f(tmp, std::ios::trunc);
      for (const auto& [line, n] : data.folded) f << line << ' ' << n << '\n';
      f.flush();
      if (!f) {
        std::error_code ec;
        fs::remove(tmp, ec);
        return Error(ErrorKind::kInternal,
                     detail::concat("cannot write '", tmp.string(), "': ", std::strerror(errno),
                                    " (is output_dir full or read-only?)"));
      }
    }
    // readers never see a half-written window
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
      return Error(ErrorKind::kInternal, detail::concat("cannot rename '", tmp.string(), "' to '",
                                                        path.string(), "': ", ec.message()));
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(end - start).count();
    host_.log().debug("wrote ", path.string(), ": ", data.samples, " samples, ", data.folded.size(),
                      " stacks, ", ms, " ms");
    return ok();
  }

  // Keeps the newest keep_windows window files (names sort by start time).
  void rotate() {
    if (settings_.keep_windows == 0) return;
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(settings_.output_dir, ec)) {
      const std::string n = e.path().filename().string();
      if (n.starts_with(kFilePrefix) && n.ends_with(kFileSuffix)) files.push_back(e.path());
    }
    if (files.size() <= settings_.keep_windows) return;
    std::sort(files.begin(), files.end());
    const std::size_t excess = files.size() - settings_.keep_windows;
    for (std::size_t i = 0; i < excess; ++i) fs::remove(files[i], ec);
  }

  Host& host_;
  Settings settings_;
  std::optional<Map> control_;
  std::vector<Map> counts_;
  std::vector<Map> stacks_;
  std::optional<Map> stats_;
  std::optional<Metric> samples_metric_;
  std::optional<Metric> lost_metric_;
  std::optional<Metric> windows_metric_;
  std::uint32_t generation_ = 0;
  std::array<std::uint64_t, TH_CPU_PROFILE_STAT_COUNT> stat_seen_{};
  std::uint64_t sequence_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tracehost::cpu_profile

TRACEHOST_PLUGIN(tracehost::cpu_profile::CpuProfilePlugin, "cpu_profile", "0.1.0",
                 "sampled user and kernel stacks (perf_event cpu-clock), written per window as "
                 "folded stacks");
