// The tracehost config file: [host], [plugins.NAME], [sinks.NAME]. Parsing and validation of
// everything the host owns happens here; a plugin's own keys are validated against the plugin's
// th_config_key table (validate_plugin_config) once its descriptor is known.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/common.h>
#include <toml++/toml.h>

#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost::host {

struct HostSettings {
  // Resolved: config value (relative to the config file's directory) or the default.
  std::filesystem::path plugin_dir;
  bool plugin_dir_from_config = false;
  std::string log_level_name = "info";
  spdlog::level::level_enum log_level = spdlog::level::info;
  std::int64_t poll_interval_ms = 10;
  bool exclude_self = true;
  bool bpf_stats = false;  // kernel run-time stats per program (costs per program run)
};

struct PluginSection {
  std::string name;
  bool enabled = false;
  bool required = false;
  // The [plugins.NAME] table inside Config's document; nullptr when the plugin has none (e.g.
  // enabled by --plugins only).
  const toml::table* table = nullptr;
};

struct SinkSection {
  std::string name;
  const toml::table* table = nullptr;
};

struct Config {
  std::filesystem::path file;  // the config file ("" when none)
  HostSettings host;
  std::vector<PluginSection> plugins;  // in name order
  std::vector<SinkSection> sinks;      // in name order
  // Owns the document the sections point into; shared so Config stays cheap to copy.
  std::shared_ptr<const toml::table> document;

  [[nodiscard]] const PluginSection* find_plugin(std::string_view name) const;
  [[nodiscard]] std::vector<const PluginSection*> enabled_plugins() const;
};

// Where plugins are looked for when neither the config nor the command line says:
// <exe_dir>/../lib/tracehost/plugins if that directory exists (build tree, relocated install),
// else the install prefix's plugin directory.
std::filesystem::path default_plugin_dir();

// The function validating one [sinks.NAME] table; the data plane provides it. Injected so the
// config module does not depend on every sink.
using SinkValidator = Status (*)(std::string_view name, const toml::table& table,
                                 const std::filesystem::path& file);

// Parses and validates a config file: unknown tables/keys, types, ranges; each sink table via
// `validate_sink` when given. Plugin tables are checked for `enabled`/`required` only.
Result<Config> load_config(const std::filesystem::path& file, SinkValidator validate_sink);
Result<Config> parse_config(std::string_view text, const std::filesystem::path& file,
                            SinkValidator validate_sink);

// The config without a file: defaults only.
Config default_config();

// Command-line overrides: --plugin-dir (relative to the cwd) and --plugins (exactly these are
// enabled; ones without a table run with their defaults).
struct Overrides {
  std::optional<std::filesystem::path> plugin_dir;
  std::optional<std::vector<std::string>> plugins;
};
Status apply_overrides(Config& config, const Overrides& overrides);

// --- plugin config -----------------------------------------------------------------------------

// A th_config_key copied out of the plugin's descriptor.
struct ConfigKeySpec {
  std::string name;
  th_value_type type = TH_VALUE_BOOL;
  std::string doc;
  bool default_bool = false;
  std::int64_t default_int = 0;
  double default_double = 0;
  std::string default_string;
  bool has_range = false;
  double min = 0;
  double max = 0;
  std::vector<std::string> choices;
};

// Copies and sanity-checks a descriptor's key table (names, types, defaults within range).
Result<std::vector<ConfigKeySpec>> read_config_keys(const th_config_key* keys, std::size_t count,
                                                    std::string_view plugin);

std::string_view value_type_name(th_value_type t) noexcept;

struct ConfigValue {
  th_value_type type = TH_VALUE_BOOL;
  bool b = false;
  std::int64_t i = 0;
  double d = 0;
  std::string s;
  std::vector<std::string> strings;
  std::vector<std::int64_t> ints;
};

// A plugin's validated config, defaults applied. Backs th_config reads.
class PluginConfig {
 public:
  PluginConfig() = default;
  explicit PluginConfig(std::map<std::string, ConfigValue, std::less<>> values)
      : values_(std::move(values)) {}
  [[nodiscard]] const ConfigValue* find(std::string_view key) const;
  [[nodiscard]] const std::map<std::string, ConfigValue, std::less<>>& values() const {
    return values_;
  }

 private:
  std::map<std::string, ConfigValue, std::less<>> values_;
};

// Validates a [plugins.NAME] table (nullptr: none) against the plugin's keys. `enabled` and
// `required` belong to the host and are skipped. Errors name file:line:col and
// "plugins.NAME.key".
Result<PluginConfig> validate_plugin_config(std::span<const ConfigKeySpec> keys,
                                            const toml::table* table,
                                            const std::filesystem::path& file,
                                            std::string_view plugin);

// True for [a-z0-9_]+.
bool valid_plugin_name(std::string_view name) noexcept;

}  // namespace tracehost::host
