#include "host/cli.hpp"

#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "host/app.hpp"
#include "host/config.hpp"
#include "host/config_util.hpp"
#include "host/logging.hpp"
#include "host/plugin_manager.hpp"
#include "host/sinks/sink.hpp"

#ifndef TRACEHOST_VERSION
#define TRACEHOST_VERSION "0.0.0"
#endif

namespace tracehost::host {

namespace fs = std::filesystem;

int exit_code_for(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kConfig:
      return kExitUsage;
    case ErrorKind::kPermission:
    case ErrorKind::kKernelIncompatible:
    case ErrorKind::kUnsupportedPlatform:
      return kExitEnvironment;
    default:
      return kExitFailure;
  }
}

namespace {

struct Io {
  std::ostream& out;
  std::ostream& err;
};

int report(const Io& io, const Error& e, std::string_view hint = {}) {
  io.err << "tracehost: error: " << e.describe() << "\n";
  if (!hint.empty()) io.err << "tracehost: hint: " << hint << "\n";
  io.err.flush();
  return exit_code_for(e.kind());
}

Status validate_sink_adapter(std::string_view name, const toml::table& table,
                             const fs::path& file) {
  return validate_sink(name, table, file);
}

// The config for `run`: --config, else the default path if it exists.
Result<Config> load_run_config(const std::optional<std::string>& path) {
  if (path) return load_config(*path, validate_sink_adapter);
  std::error_code ec;
  if (fs::exists(kDefaultConfigPath, ec))
    return load_config(kDefaultConfigPath, validate_sink_adapter);
  return Error(ErrorKind::kConfig, std::string("no config file: ") + kDefaultConfigPath +
                                       " does not exist; pass --config FILE (an example is "
                                       "config/tracehost.toml in the source tree)");
}

// Plugin directory for the `plugins` commands: --plugin-dir, else the config's, else default.
Result<fs::path> plugin_dir_for(const std::optional<std::string>& dir,
                                const std::optional<std::string>& config_path) {
  Config cfg = default_config();
  if (config_path) {
    TH_ASSIGN_OR_RETURN(cfg, load_config(*config_path, validate_sink_adapter));
  }
  Overrides o;
  if (dir) o.plugin_dir = fs::path(*dir);
  TH_TRY(apply_overrides(cfg, o));
  return cfg.host.plugin_dir;
}

std::string format_default(const ConfigKeySpec& k) {
  switch (k.type) {
    case TH_VALUE_BOOL:
      return k.default_bool ? "true" : "false";
    case TH_VALUE_INT:
      return std::to_string(k.default_int);
    case TH_VALUE_DOUBLE:
      return fmt::format("{}", k.default_double);
    case TH_VALUE_STRING:
      return "\"" + k.default_string + "\"";
    case TH_VALUE_STRING_LIST:
    case TH_VALUE_INT_LIST:
      return "[]";
  }
  return "";
}

std::string format_constraints(const ConfigKeySpec& k) {
  std::string out;
  if (k.has_range) {
    bool integral = k.type != TH_VALUE_DOUBLE;
    auto num = [&](double v) {
      return integral ? std::to_string(static_cast<long long>(v)) : fmt::format("{}", v);
    };
    out += (k.type == TH_VALUE_STRING_LIST ? "length " : "range ");
    out += "[" + num(k.min) + ", " + num(k.max) + "]";
  }
  if (!k.choices.empty()) {
    if (!out.empty()) out += "; ";
    out += "one of: ";
    for (std::size_t i = 0; i < k.choices.size(); ++i) out += (i ? ", " : "") + k.choices[i];
  }
  return out;
}

std::string_view field_type_name(int32_t t) {
  switch (t) {
    case TH_FIELD_UINT:
      return "uint";
    case TH_FIELD_INT:
      return "int";
    case TH_FIELD_BOOL:
      return "bool";
    case TH_FIELD_STRING:
      return "string";
    case TH_FIELD_IPV4:
      return "ipv4";
    case TH_FIELD_IPV6:
      return "ipv6";
    case TH_FIELD_IP:
      return "ip";
    case TH_FIELD_PORT:
      return "port";
    case TH_FIELD_ERRNO:
      return "errno";
    case TH_FIELD_DURATION_NS:
      return "duration_ns";
    case TH_FIELD_TIMESTAMP_NS:
      return "timestamp_ns";
    case TH_FIELD_PID:
      return "pid";
    case TH_FIELD_TID:
      return "tid";
    case TH_FIELD_UID:
      return "uid";
    case TH_FIELD_CGROUP_ID:
      return "cgroup_id";
    case TH_FIELD_ENUM:
      return "enum";
    case TH_FIELD_STACK_ID:
      return "stack_id";
    case TH_FIELD_HEX:
      return "hex";
    case TH_FIELD_FLAGS:
      return "flags";
    default:
      return "?";
  }
}

std::string exposition_name(const th_metric_family& m) {
  std::string name = "tracehost_" + std::string(m.name);
  if (m.type == TH_METRIC_COUNTER) name += "_total";
  return name;
}

std::string_view metric_type_name(int32_t t) {
  switch (t) {
    case TH_METRIC_COUNTER:
      return "counter";
    case TH_METRIC_GAUGE:
      return "gauge";
    case TH_METRIC_HISTOGRAM:
      return "histogram";
    default:
      return "?";
  }
}

// ---- commands ----------------------------------------------------------------------------------

int cmd_run(const Io& io, const std::optional<std::string>& config_path,
            std::optional<double> duration, const std::optional<std::vector<std::string>>& plugins,
            const std::optional<std::string>& plugin_dir) {
  auto cfg = load_run_config(config_path);
  if (!cfg.ok()) return report(io, cfg.error());
  Overrides o;
  if (plugin_dir) o.plugin_dir = fs::path(*plugin_dir);
  o.plugins = plugins;
  if (Status s = apply_overrides(*cfg, o); !s.ok()) return report(io, s.error());
  RunOptions ro;
  if (duration) ro.duration = std::chrono::duration<double>(*duration);
  Status s = run_app(*cfg, ro);
  if (!s.ok()) return report(io, s.error());
  return kExitOk;
}

int cmd_check_config(const Io& io, const std::string& config_path,
                     const std::optional<std::string>& plugin_dir) {
  auto cfg = load_config(config_path, validate_sink_adapter);
  if (!cfg.ok()) return report(io, cfg.error());
  Overrides o;
  if (plugin_dir) o.plugin_dir = fs::path(*plugin_dir);
  if (Status s = apply_overrides(*cfg, o); !s.ok()) return report(io, s.error());

  // Only enabled plugins are opened: their descriptors carry the key tables to check against.
  std::vector<std::string> lines;
  for (const PluginSection* p : cfg->enabled_plugins()) {
    fs::path file = cfg->host.plugin_dir / plugin_file_name(p->name);
    std::error_code ec;
    if (!fs::exists(file, ec)) {
      std::string msg = "plugin '" + p->name + "' is enabled but " + file.string() +
                        " does not exist (see `tracehost plugins list`)";
      if (p->table != nullptr) msg.insert(0, where(*p->table, cfg->file) + ": ");
      return report(io, Error(ErrorKind::kConfig, msg));
    }
    auto lib = PluginLibrary::open(file);
    if (!lib.ok()) return report(io, lib.error().with_context("plugin " + p->name));
    auto pc = validate_plugin_table(**lib, *cfg, *p);
    if (!pc.ok()) return report(io, pc.error());
    lines.push_back(fmt::format("  plugin {} {}{}", p->name, (*lib)->version(),
                                p->required ? " (required)" : ""));
  }
  io.out << "config OK: " << cfg->file.string() << "\n";
  io.out << "  plugin_dir " << cfg->host.plugin_dir.string() << "\n";
  if (lines.empty()) io.out << "  no plugin enabled\n";
  for (const auto& l : lines) io.out << l << "\n";
  for (const auto& s : cfg->sinks) io.out << "  sink " << s.name << "\n";
  return kExitOk;
}

int cmd_plugins_list(const Io& io, const std::optional<std::string>& plugin_dir,
                     const std::optional<std::string>& config_path) {
  auto dir = plugin_dir_for(plugin_dir, config_path);
  if (!dir.ok()) return report(io, dir.error());
  std::error_code ec;
  if (!fs::is_directory(*dir, ec)) {
    return report(io, Error(ErrorKind::kConfig, "plugin directory " + dir->string() +
                                                    " does not exist; pass --plugin-dir DIR"));
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(*dir, ec)) {
    if (e.path().extension() == ".so") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  io.out << "plugins in " << dir->string() << ":\n";
  if (files.empty()) io.out << "  (none)\n";
  for (const auto& f : files) {
    std::string file = f.filename().string();
    if (!file.starts_with("tracehost_")) {
      io.out << fmt::format("  {:<26} ignored: not named tracehost_<name>.so\n", file);
      continue;
    }
    auto lib = PluginLibrary::open(f);
    if (!lib.ok()) {
      io.out << fmt::format("  {:<26} refused: {}\n", file, lib.error().message());
      continue;
    }
    const PluginLibrary& l = **lib;
    io.out << fmt::format("  {:<26} {:<10} API {}.{}  {}\n", l.name(), l.version(), l.api_major(),
                          l.api_minor(), l.description());
  }
  return kExitOk;
}

int cmd_plugins_describe(const Io& io, const std::string& name,
                         const std::optional<std::string>& plugin_dir,
                         const std::optional<std::string>& config_path) {
  auto dir = plugin_dir_for(plugin_dir, config_path);
  if (!dir.ok()) return report(io, dir.error());
  if (!valid_plugin_name(name)) {
    return report(io, Error(ErrorKind::kConfig, "'" + name + "' is not a plugin name"));
  }
  fs::path file = *dir / plugin_file_name(name);
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    return report(
        io,
        Error(ErrorKind::kConfig, "no plugin '" + name + "': " + file.string() + " does not exist"),
        "`tracehost plugins list` shows the installed plugins");
  }
  auto lib = PluginLibrary::open(file);
  if (!lib.ok()) return report(io, lib.error());
  const PluginLibrary& l = **lib;
  auto& o = io.out;
  o << l.name() << " " << l.version() << " (plugin API " << l.api_major() << "." << l.api_minor()
    << ")\n";
  if (!l.description().empty()) o << "  " << l.description() << "\n";
  o << "  file: " << l.path().string() << "\n\n";

  o << "config keys ([plugins." << l.name() << "]):\n";
  o << fmt::format("  {:<24} {:<12} {:<12} {}\n", "enabled", "bool", "false",
                   "load and start this plugin (host)");
  o << fmt::format("  {:<24} {:<12} {:<12} {}\n", "required", "bool", "false",
                   "its failure stops tracehost (host)");
  for (const auto& k : l.config_keys()) {
    o << fmt::format("  {:<24} {:<12} {:<12} {}\n", k.name, value_type_name(k.type),
                     format_default(k), k.doc);
    std::string c = format_constraints(k);
    if (!c.empty()) o << fmt::format("  {:<24} {}\n", "", c);
  }

  o << "\ntopics:\n";
  if (l.topics().empty()) o << "  (none declared; the plugin may register topics at run time)\n";
  for (const auto& t : l.topics()) {
    const th_event_schema& s = t.schema;
    o << "  " << s.topic << " (record " << s.record_size << " bytes)";
    if (s.doc != nullptr && s.doc[0] != '\0') o << " - " << s.doc;
    o << "\n";
    for (const auto& f : t.fields) {
      o << fmt::format("    {:<20} {:<13} @{:<4} {:>3}B  {}\n", f.name ? f.name : "?",
                       field_type_name(f.type), f.offset, f.size, f.doc ? f.doc : "");
    }
  }

  o << "\nmetrics:\n";
  if (l.metrics().empty()) o << "  (none declared)\n";
  for (const auto& m : l.metrics()) {
    std::string labels;
    for (std::size_t i = 0; i < m.label_count && m.label_names != nullptr; ++i) {
      labels += (i ? "," : "") + std::string(m.label_names[i] ? m.label_names[i] : "?");
    }
    o << fmt::format("  {:<44} {:<10} {{{}}}  {}\n", exposition_name(m), metric_type_name(m.type),
                     labels, m.help ? m.help : "");
  }
  return kExitOk;
}

int run_cli_impl(int argc, const char* const* argv, const Io& io) {
  CLI::App app{
      "tracehost: eBPF observability agent. Loads tracer plugins, runs their BPF "
      "programs and sends events and metrics to sinks.",
      "tracehost"};
  app.set_version_flag("--version", std::string("tracehost ") + TRACEHOST_VERSION);
  app.require_subcommand(1);

  // run
  auto* run = app.add_subcommand("run", "load the enabled plugins and run until Ctrl-C");
  std::optional<std::string> run_config;
  std::optional<double> duration;
  std::optional<std::vector<std::string>> run_plugins;
  std::optional<std::string> run_plugin_dir;
  run->add_option("--config,-c", run_config,
                  std::string("config file (default: ") + kDefaultConfigPath + ")");
  run->add_option("--duration,-d", duration, "stop after SECONDS")
      ->check(CLI::PositiveNumber)
      ->type_name("SECONDS");
  run->add_option("--plugins", run_plugins, "enable exactly these plugins (a,b,…)")
      ->delimiter(',')
      ->type_name("NAMES");
  run->add_option("--plugin-dir", run_plugin_dir, "directory with tracehost_<name>.so plugins")
      ->type_name("DIR");

  // check-config
  auto* check =
      app.add_subcommand("check-config", "validate a config file, including enabled plugins' keys");
  std::string check_config;
  std::optional<std::string> check_plugin_dir;
  check->add_option("--config,-c", check_config, "config file")->required();
  check->add_option("--plugin-dir", check_plugin_dir, "override [host] plugin_dir")
      ->type_name("DIR");

  // plugins list / describe
  auto* plugins = app.add_subcommand("plugins", "inspect installed plugins");
  plugins->require_subcommand(1);
  std::optional<std::string> pl_dir, pl_config;
  auto* list = plugins->add_subcommand("list",
                                       "every plugin file: name, version, API, or why it "
                                       "is refused");
  list->add_option("--plugin-dir", pl_dir, "plugin directory")->type_name("DIR");
  list->add_option("--config,-c", pl_config, "take plugin_dir from this config");
  auto* describe =
      plugins->add_subcommand("describe", "a plugin's config keys, topics and metrics");
  std::string describe_name;
  describe->add_option("NAME", describe_name, "plugin name")->required();
  describe->add_option("--plugin-dir", pl_dir, "plugin directory")->type_name("DIR");
  describe->add_option("--config,-c", pl_config, "take plugin_dir from this config");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, io.out, io.err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, io.out, io.err);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e, io.out, io.err);
  } catch (const CLI::ParseError& e) {
    io.err << "tracehost: error: " << e.what() << "\n";
    io.err << "tracehost: hint: run 'tracehost --help' (or 'tracehost <command> --help')\n";
    return kExitUsage;
  }

  if (*run) return cmd_run(io, run_config, duration, run_plugins, run_plugin_dir);
  init_logging(spdlog::level::warn);
  if (*check) return cmd_check_config(io, check_config, check_plugin_dir);
  if (*list) return cmd_plugins_list(io, pl_dir, pl_config);
  if (*describe) return cmd_plugins_describe(io, describe_name, pl_dir, pl_config);
  return kExitUsage;  // unreachable: a subcommand is required
}

}  // namespace

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  Io io{out, err};
  try {
    return run_cli_impl(argc, argv, io);
  } catch (const std::exception& e) {
    err << "tracehost: error: " << e.what() << "\n";
    return kExitFailure;
  } catch (...) {
    err << "tracehost: error: unknown exception\n";
    return kExitFailure;
  }
}

int run_cli(int argc, const char* const* argv) { return run_cli(argc, argv, std::cout, std::cerr); }

}  // namespace tracehost::host
