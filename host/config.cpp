#include "host/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <set>
#include <system_error>

#include <fmt/format.h>

#include "host/config_util.hpp"
#include "host/logging.hpp"
#include "host/plugin_abi.hpp"

#ifndef TRACEHOST_INSTALL_PLUGIN_DIR
#define TRACEHOST_INSTALL_PLUGIN_DIR "/usr/local/lib/tracehost/plugins"
#endif

namespace tracehost::host {

namespace fs = std::filesystem;

namespace {

constexpr std::array<std::string_view, 3> kTopLevel = {"host", "plugins", "sinks"};
constexpr std::array<std::string_view, 5> kHostKeys = {"plugin_dir", "log_level",
                                                       "poll_interval_ms", "exclude_self", "bpf_stats"};
constexpr std::array<std::string_view, 2> kPluginHostKeys = {"enabled", "required"};

fs::path resolve_against(const fs::path& p, const fs::path& base_file) {
  if (p.is_absolute()) return p.lexically_normal();
  std::error_code ec;
  fs::path base =
      base_file.empty() ? fs::current_path(ec) : fs::absolute(base_file, ec).parent_path();
  return (base / p).lexically_normal();
}

Status parse_host(const toml::table& tbl, const fs::path& file, HostSettings& out) {
  TH_TRY(check_keys(tbl, file, kHostKeys, "host"));
  if (const toml::node* n = tbl.get("plugin_dir")) {
    TH_ASSIGN_OR_RETURN(std::string dir, get_string(tbl, "plugin_dir", "", file, "host"));
    if (dir.empty()) return config_error(*n, file, "host.plugin_dir", "must not be empty");
    out.plugin_dir = resolve_against(dir, file);
    out.plugin_dir_from_config = true;
  }
  TH_ASSIGN_OR_RETURN(out.log_level_name, get_string(tbl, "log_level", "info", file, "host"));
  auto level = parse_log_level(out.log_level_name);
  if (!level.ok()) {
    return config_error(*tbl.get("log_level"), file, "host.log_level", level.error().message());
  }
  out.log_level = *level;
  TH_ASSIGN_OR_RETURN(out.poll_interval_ms,
                      get_int_in_range(tbl, "poll_interval_ms", 10, 1, 1000, file, "host"));
  TH_ASSIGN_OR_RETURN(out.exclude_self, get_bool(tbl, "exclude_self", true, file, "host"));
  TH_ASSIGN_OR_RETURN(out.bpf_stats, get_bool(tbl, "bpf_stats", false, file, "host"));
  return ok();
}

Status parse_plugins(const toml::table& tbl, const fs::path& file,
                     std::vector<PluginSection>& out) {
  for (const auto& [k, v] : tbl) {
    std::string name(k.str());
    std::string key = "plugins." + name;
    const toml::table* t = v.as_table();
    if (t == nullptr) {
      return config_error(
          v, file, key,
          "expected a table [plugins." + name + "], got " + std::string(type_name(v.type())));
    }
    if (!valid_plugin_name(name)) {
      return config_error(k.source(), file, key,
                          "plugin names are lower-case letters, digits and '_'");
    }
    PluginSection s;
    s.name = name;
    s.table = t;
    TH_ASSIGN_OR_RETURN(s.enabled, get_bool(*t, "enabled", false, file, key));
    TH_ASSIGN_OR_RETURN(s.required, get_bool(*t, "required", false, file, key));
    out.push_back(std::move(s));
  }
  return ok();
}

Status parse_sinks(const toml::table& tbl, const fs::path& file, SinkValidator validate_sink,
                   std::vector<SinkSection>& out) {
  for (const auto& [k, v] : tbl) {
    std::string name(k.str());
    const toml::table* t = v.as_table();
    if (t == nullptr) {
      return config_error(
          v, file, "sinks." + name,
          "expected a table [sinks." + name + "], got " + std::string(type_name(v.type())));
    }
    if (validate_sink != nullptr) TH_TRY(validate_sink(name, *t, file));
    out.push_back(SinkSection{name, t});
  }
  return ok();
}

Result<Config> build_config(toml::table doc, const fs::path& file, SinkValidator validate_sink) {
  Config cfg;
  cfg.file = file;
  auto owned = std::make_shared<toml::table>(std::move(doc));
  cfg.document = owned;
  const toml::table& root = *owned;
  for (const auto& [k, v] : root) {
    if (std::find(kTopLevel.begin(), kTopLevel.end(), k.str()) == kTopLevel.end()) {
      std::string msg = v.is_table() ? "unknown table [" + std::string(k.str()) + "]"
                                     : "unknown top-level key '" + std::string(k.str()) + "'";
      if (auto s = closest_match(k.str(), kTopLevel)) {
        msg += "; did you mean [" + *s + "]?";
      } else {
        msg += " (allowed: [host], [plugins.NAME], [sinks.NAME])";
      }
      return config_error(k.source(), file, k.str(), msg);
    }
    if (!v.is_table()) {
      return config_error(v, file, k.str(),
                          "expected a table [" + std::string(k.str()) + "], got " +
                              std::string(type_name(v.type())));
    }
  }
  if (const toml::table* host = root["host"].as_table()) TH_TRY(parse_host(*host, file, cfg.host));
  if (!cfg.host.plugin_dir_from_config) cfg.host.plugin_dir = default_plugin_dir();
  if (const toml::table* plugins = root["plugins"].as_table()) {
    TH_TRY(parse_plugins(*plugins, file, cfg.plugins));
  }
  if (const toml::table* sinks = root["sinks"].as_table()) {
    TH_TRY(parse_sinks(*sinks, file, validate_sink, cfg.sinks));
  }
  return cfg;
}

std::string format_bound(double v, th_value_type type) {
  if (type == TH_VALUE_INT || type == TH_VALUE_INT_LIST || type == TH_VALUE_STRING_LIST) {
    return fmt::format("{}", static_cast<long long>(v));
  }
  return fmt::format("{}", v);
}

std::string range_text(const ConfigKeySpec& spec) {
  return "[" + format_bound(spec.min, spec.type) + ", " + format_bound(spec.max, spec.type) + "]";
}

std::string choices_text(const std::vector<std::string>& choices) {
  std::string out;
  for (std::size_t i = 0; i < choices.size(); ++i) {
    if (i != 0) out += ", ";
    out += choices[i];
  }
  return out;
}

Status check_choice(const ConfigKeySpec& spec, const std::string& value, const toml::node& n,
                    const fs::path& file, const std::string& key) {
  if (spec.choices.empty()) return ok();
  if (std::find(spec.choices.begin(), spec.choices.end(), value) != spec.choices.end()) return ok();
  std::vector<std::string_view> views(spec.choices.begin(), spec.choices.end());
  std::string msg = "'" + value + "' is not one of: " + choices_text(spec.choices);
  if (auto s = closest_match(value, views)) msg += "; did you mean '" + *s + "'?";
  return config_error(n, file, key, msg);
}

Status check_range(const ConfigKeySpec& spec, double value, const toml::node& n,
                   const fs::path& file, const std::string& key, std::string_view what) {
  if (!spec.has_range) return ok();
  if (value >= spec.min && value <= spec.max) return ok();
  return config_error(n, file, key,
                      std::string(what) + " " + format_bound(value, spec.type) +
                          " is out of range " + range_text(spec));
}

Result<ConfigValue> convert_value(const ConfigKeySpec& spec, const toml::node& n,
                                  const fs::path& file, const std::string& key) {
  ConfigValue v;
  v.type = spec.type;
  auto wrong = [&](std::string_view expected) {
    return config_error(
        n, file, key,
        "expected " + std::string(expected) + ", got " + std::string(type_name(n.type())));
  };
  switch (spec.type) {
    case TH_VALUE_BOOL:
      if (!n.is_boolean()) return wrong("a boolean (true or false)");
      v.b = n.as_boolean()->get();
      return v;
    case TH_VALUE_INT:
      if (!n.is_integer()) return wrong("an integer");
      v.i = n.as_integer()->get();
      TH_TRY(check_range(spec, static_cast<double>(v.i), n, file, key, "value"));
      return v;
    case TH_VALUE_DOUBLE:
      if (n.is_floating_point()) {
        v.d = n.as_floating_point()->get();
      } else if (n.is_integer()) {
        v.d = static_cast<double>(n.as_integer()->get());
      } else {
        return wrong("a number");
      }
      TH_TRY(check_range(spec, v.d, n, file, key, "value"));
      return v;
    case TH_VALUE_STRING:
      if (!n.is_string()) return wrong("a string");
      v.s = n.as_string()->get();
      TH_TRY(check_choice(spec, v.s, n, file, key));
      return v;
    case TH_VALUE_STRING_LIST: {
      const toml::array* arr = n.as_array();
      if (arr == nullptr) return wrong("an array of strings");
      for (const toml::node& e : *arr) {
        if (!e.is_string()) {
          return config_error(e, file, key,
                              "expected an array of strings, found an element that is " +
                                  std::string(type_name(e.type())));
        }
        v.strings.push_back(e.as_string()->get());
        TH_TRY(check_choice(spec, v.strings.back(), e, file, key));
      }
      if (spec.has_range) {
        auto len = static_cast<double>(v.strings.size());
        if (len < spec.min || len > spec.max) {
          return config_error(n, file, key,
                              "list has " + std::to_string(v.strings.size()) +
                                  " elements; allowed length is " + range_text(spec));
        }
      }
      return v;
    }
    case TH_VALUE_INT_LIST: {
      const toml::array* arr = n.as_array();
      if (arr == nullptr) return wrong("an array of integers");
      for (const toml::node& e : *arr) {
        if (!e.is_integer()) {
          return config_error(e, file, key,
                              "expected an array of integers, found an element that is " +
                                  std::string(type_name(e.type())));
        }
        v.ints.push_back(e.as_integer()->get());
        TH_TRY(check_range(spec, static_cast<double>(v.ints.back()), e, file, key, "element"));
      }
      return v;
    }
  }
  return config_error(n, file, key, "the plugin declares an unknown type for this key");
}

ConfigValue default_value(const ConfigKeySpec& spec) {
  ConfigValue v;
  v.type = spec.type;
  v.b = spec.default_bool;
  v.i = spec.default_int;
  v.d = spec.default_double;
  v.s = spec.default_string;
  return v;
}

}  // namespace

const PluginSection* Config::find_plugin(std::string_view name) const {
  for (const auto& p : plugins) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::vector<const PluginSection*> Config::enabled_plugins() const {
  std::vector<const PluginSection*> out;
  for (const auto& p : plugins) {
    if (p.enabled) out.push_back(&p);
  }
  return out;
}

fs::path default_plugin_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path candidate =
        (exe.parent_path() / ".." / "lib" / "tracehost" / "plugins").lexically_normal();
    if (fs::is_directory(candidate, ec)) return candidate;
  }
  return fs::path(TRACEHOST_INSTALL_PLUGIN_DIR);
}

Result<Config> parse_config(std::string_view text, const fs::path& file,
                            SinkValidator validate_sink) {
  TH_ASSIGN_OR_RETURN(toml::table doc, parse_toml_string(text, file));
  return build_config(std::move(doc), file, validate_sink);
}

Result<Config> load_config(const fs::path& file, SinkValidator validate_sink) {
  TH_ASSIGN_OR_RETURN(toml::table doc, parse_toml_file(file));
  return build_config(std::move(doc), file, validate_sink);
}

Config default_config() {
  Config cfg;
  cfg.document = std::make_shared<toml::table>();
  cfg.host.plugin_dir = default_plugin_dir();
  return cfg;
}

Status apply_overrides(Config& config, const Overrides& overrides) {
  if (overrides.plugin_dir) {
    if (overrides.plugin_dir->empty()) {
      return Error(ErrorKind::kConfig, "--plugin-dir must not be empty");
    }
    config.host.plugin_dir = resolve_against(*overrides.plugin_dir, {});
    config.host.plugin_dir_from_config = true;
  }
  if (overrides.plugins) {
    std::set<std::string> wanted;
    for (const auto& name : *overrides.plugins) {
      if (!valid_plugin_name(name)) {
        return Error(
            ErrorKind::kConfig,
            "--plugins: '" + name + "' is not a plugin name (lower-case letters, digits and '_')");
      }
      wanted.insert(name);
    }
    for (auto& p : config.plugins) p.enabled = wanted.count(p.name) != 0;
    for (const auto& name : wanted) {
      if (config.find_plugin(name) == nullptr) {
        PluginSection s;
        s.name = name;
        s.enabled = true;
        config.plugins.push_back(std::move(s));
      }
    }
    std::sort(config.plugins.begin(), config.plugins.end(),
              [](const PluginSection& a, const PluginSection& b) { return a.name < b.name; });
  }
  return ok();
}

bool valid_plugin_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string_view value_type_name(th_value_type t) noexcept {
  switch (t) {
    case TH_VALUE_BOOL:
      return "bool";
    case TH_VALUE_INT:
      return "int";
    case TH_VALUE_DOUBLE:
      return "double";
    case TH_VALUE_STRING:
      return "string";
    case TH_VALUE_STRING_LIST:
      return "string list";
    case TH_VALUE_INT_LIST:
      return "int list";
  }
  return "unknown";
}

Result<std::vector<ConfigKeySpec>> read_config_keys(const th_config_key* keys, std::size_t count,
                                                    std::string_view plugin) {
  std::string what = "plugin " + std::string(plugin) + ": config key table";
  TH_ASSIGN_OR_RETURN(std::vector<th_config_key> raw, abi_read_array(keys, count, what.c_str()));
  std::vector<ConfigKeySpec> out;
  std::set<std::string, std::less<>> seen;
  for (std::size_t idx = 0; idx < raw.size(); ++idx) {
    const th_config_key& k = raw[idx];
    auto bad = [&](const std::string& msg) {
      return Error(ErrorKind::kAbi, "plugin " + std::string(plugin) + ": config key #" +
                                        std::to_string(idx) + ": " + msg);
    };
    ConfigKeySpec s;
    if (k.name == nullptr || k.name[0] == '\0') return bad("has no name");
    s.name = k.name;
    if (std::find(kPluginHostKeys.begin(), kPluginHostKeys.end(), s.name) !=
        kPluginHostKeys.end()) {
      return bad("'" + s.name + "' is reserved for the host");
    }
    if (!seen.insert(s.name).second) return bad("'" + s.name + "' is declared twice");
    if (k.type < TH_VALUE_BOOL || k.type > TH_VALUE_INT_LIST) {
      return bad("'" + s.name + "' has unknown type " + std::to_string(k.type));
    }
    s.type = static_cast<th_value_type>(k.type);
    s.doc = abi_string(k.doc);
    s.default_bool = k.default_bool != 0;
    s.default_int = k.default_int;
    s.default_double = k.default_double;
    s.default_string = abi_string(k.default_string);
    s.has_range = k.has_range != 0;
    s.min = k.min;
    s.max = k.max;
    if (s.has_range && (std::isnan(s.min) || std::isnan(s.max) || s.min > s.max)) {
      return bad("'" + s.name + "' has an empty range " + range_text(s));
    }
    if (k.choice_count > 0) {
      if (k.choices == nullptr)
        return bad("'" + s.name + "' declares choices but the array is NULL");
      for (std::size_t c = 0; c < k.choice_count; ++c) {
        if (k.choices[c] == nullptr) return bad("'" + s.name + "' has a NULL choice");
        s.choices.emplace_back(k.choices[c]);
      }
    }
    // A default the host itself would reject makes the plugin unusable without config.
    if (s.has_range && s.type == TH_VALUE_INT &&
        (static_cast<double>(s.default_int) < s.min ||
         static_cast<double>(s.default_int) > s.max)) {
      return bad("'" + s.name + "' default " + std::to_string(s.default_int) +
                 " is outside its range " + range_text(s));
    }
    if (s.has_range && s.type == TH_VALUE_DOUBLE &&
        (s.default_double < s.min || s.default_double > s.max)) {
      return bad("'" + s.name + "' default " + fmt::format("{}", s.default_double) +
                 " is outside its range " + range_text(s));
    }
    if (s.type == TH_VALUE_STRING && !s.choices.empty() && !s.default_string.empty() &&
        std::find(s.choices.begin(), s.choices.end(), s.default_string) == s.choices.end()) {
      return bad("'" + s.name + "' default '" + s.default_string + "' is not one of its choices");
    }
    out.push_back(std::move(s));
  }
  return out;
}

const ConfigValue* PluginConfig::find(std::string_view key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

Result<PluginConfig> validate_plugin_config(std::span<const ConfigKeySpec> keys,
                                            const toml::table* table, const fs::path& file,
                                            std::string_view plugin) {
  std::map<std::string, ConfigValue, std::less<>> values;
  for (const auto& spec : keys) values.emplace(spec.name, default_value(spec));
  if (table == nullptr) return PluginConfig(std::move(values));

  std::vector<std::string_view> allowed(kPluginHostKeys.begin(), kPluginHostKeys.end());
  for (const auto& spec : keys) allowed.push_back(spec.name);
  std::string table_name = "plugins." + std::string(plugin);
  TH_TRY(check_keys(*table, file, allowed, table_name));

  for (const auto& [k, node] : *table) {
    std::string_view name = k.str();
    if (std::find(kPluginHostKeys.begin(), kPluginHostKeys.end(), name) != kPluginHostKeys.end()) {
      continue;
    }
    auto spec = std::find_if(keys.begin(), keys.end(),
                             [&](const ConfigKeySpec& s) { return s.name == name; });
    TH_ASSIGN_OR_RETURN(ConfigValue v,
                        convert_value(*spec, node, file, table_name + "." + std::string(name)));
    values[std::string(name)] = std::move(v);
  }
  return PluginConfig(std::move(values));
}

}  // namespace tracehost::host
