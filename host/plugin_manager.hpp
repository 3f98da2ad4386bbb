// Plugin libraries and instances: discovery in the plugin directory, the security and ABI checks
// done before any plugin code runs, and the lifecycle create → start → (deferred attach) → stop →
// destroy with isolation — a plugin that fails at any stage is torn down (probes detached,
// objects closed, subscriptions, metrics, topics and maps removed) and the others go on, unless
// the config marks it `required`.
//
// Library lifetime: a PluginLibrary is unloaded only after its instance is destroyed and every
// subscription into its code is gone; the manager's shutdown order guarantees it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/dll/shared_library.hpp>

#include "host/config.hpp"
#include "host/host_services.hpp"
#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost::host {

// "tracehost_<name>.so"
std::string plugin_file_name(std::string_view plugin);

// Files named tracehost_*.so in `dir`, sorted. kNotFound / kConfig naming the directory when it
// does not exist or cannot be read.
Result<std::vector<std::filesystem::path>> discover_plugins(const std::filesystem::path& dir);

// Loading code runs its constructors: refuse files (and their directory) that someone other than
// root or the current user could have written. Error names the path, the mode and the fix.
Status check_plugin_file_security(const std::filesystem::path& file);

// Quick ELF sanity check before dlopen: magic, class, type (shared object) and machine.
Status check_elf_shared_object(const std::filesystem::path& file);

// The plugin API version check: "built for plugin API x.y, host provides a.b" when incompatible.
Status check_api_version(std::uint32_t major, std::uint32_t minor);

// A loaded, ABI-checked plugin library and its descriptor, copied into host layout.
class PluginLibrary {
 public:
  // Security check → ELF check → dlopen (RTLD_NOW | RTLD_LOCAL) → resolve the descriptor alias →
  // ABI checks → descriptor contents. Each failure is a distinct error naming the file.
  static Result<std::unique_ptr<PluginLibrary>> open(const std::filesystem::path& file);

  ~PluginLibrary() = default;
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& version() const noexcept { return version_; }
  [[nodiscard]] const std::string& description() const noexcept { return description_; }
  [[nodiscard]] std::uint32_t api_major() const noexcept { return desc_.api_major; }
  [[nodiscard]] std::uint32_t api_minor() const noexcept { return desc_.api_minor; }
  // Host-layout copy; function pointers and strings point into the library.
  [[nodiscard]] const th_plugin_descriptor& descriptor() const noexcept { return desc_; }
  [[nodiscard]] std::span<const ConfigKeySpec> config_keys() const noexcept { return keys_; }
  [[nodiscard]] std::span<const NormalizedSchema> topics() const noexcept { return topics_; }
  [[nodiscard]] std::span<const th_metric_family> metrics() const noexcept { return metrics_; }

 private:
  PluginLibrary() = default;

  boost::dll::shared_library lib_;
  std::filesystem::path path_;
  th_plugin_descriptor desc_{};
  std::string name_;
  std::string version_;
  std::string description_;
  std::vector<ConfigKeySpec> keys_;
  std::vector<NormalizedSchema> topics_;
  std::vector<th_metric_family> metrics_;
};

// Validates a [plugins.NAME] table against an opened library's keys.
Result<PluginConfig> validate_plugin_table(const PluginLibrary& lib, const Config& config,
                                           const PluginSection& section);

enum class PluginState {
  kLoaded,  // library open, config validated
  kCreated,
  kRunning,  // started, deferred probes attached
  kStopped,
  kFailed,
  kDestroyed,
};
std::string_view to_string(PluginState state) noexcept;
inline constexpr PluginState kAllPluginStates[] = {PluginState::kLoaded,  PluginState::kCreated,
                                                   PluginState::kRunning, PluginState::kStopped,
                                                   PluginState::kFailed,  PluginState::kDestroyed};

struct PluginStatus {
  std::string name;
  PluginState state = PluginState::kLoaded;
  bool required = false;
  std::optional<Error> error;  // why it failed
};

class PluginManager {
 public:
  explicit PluginManager(HostCore& core);
  ~PluginManager();  // shutdown()
  PluginManager(const PluginManager&) = delete;
  PluginManager& operator=(const PluginManager&) = delete;

  // Opens the library of every enabled plugin (only those: disabled plugins are never opened)
  // and validates its config table. A config error is returned (fatal, whatever `required`
  // says); a plugin that cannot be loaded fails alone, unless required (its error is returned).
  Status load(const Config& config);

  // Adds an already opened library (tests, tools). Duplicate names are an error.
  Status add(std::unique_ptr<PluginLibrary> lib, PluginConfig config, bool required);

  // For each loaded plugin in order: register its topics and metrics, create, start, attach its
  // deferred probes. A failing plugin is torn down; a required one's error is returned (the
  // caller shuts down). Also an error when plugins were enabled but none is running.
  Status start_all();

  // Shutdown steps (see App): call every running plugin's stop(); then, after the bus is
  // drained and sinks flushed, remove subscriptions + detach probes + close objects; destroy
  // the instances and their registrations; unload the libraries. Each idempotent.
  void stop_all();
  void close_kernel_objects();
  void destroy_all();
  void unload_all();
  // All of the above in order (for error paths and the destructor).
  void shutdown();

  [[nodiscard]] std::vector<PluginStatus> statuses() const;
  [[nodiscard]] std::size_t running_count() const;

  // Program statistics per plugin, for self metrics: (plugin, program, run_cnt, run_time_ns).
  struct ProgramStat {
    std::string plugin;
    std::string program;
    std::uint64_t run_cnt = 0;
    std::uint64_t run_time_ns = 0;
  };
  [[nodiscard]] std::vector<ProgramStat> program_stats() const;

 private:
  struct Instance;

  Status start_one(Instance& p);
  // Tears one plugin down after a failure at any stage and records the error.
  void fail(Instance& p, Error error);
  void stop_one(Instance& p);
  void destroy_one(Instance& p);

  HostCore& core_;
  mutable std::mutex mu_;  // guards states for statuses() from other threads
  std::vector<std::unique_ptr<Instance>> plugins_;
};

}  // namespace tracehost::host
