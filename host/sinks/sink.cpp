#include "host/sinks/sink.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <tuple>
#include <utility>

#include "host/config_util.hpp"
#include "host/event_bus.hpp"
#include "host/metrics.hpp"
#include "host/sinks/console_sink.hpp"
#include "host/sinks/json_sink.hpp"
#include "host/sinks/prometheus_sink.hpp"

namespace tracehost::host {

namespace {

constexpr std::array<std::string_view, 3> kSinkTypes = {"console", "json", "prometheus"};
constexpr std::array<std::string_view, 4> kCommonKeys = {"type", "enabled", "topics", "where"};

Result<std::string> sink_type(std::string_view name, const toml::table& table,
                              const std::filesystem::path& path) {
  const std::string table_name = "sinks." + std::string(name);
  const bool name_is_type =
      std::find(kSinkTypes.begin(), kSinkTypes.end(), name) != kSinkTypes.end();
  const toml::node* node = table.get("type");
  if (node == nullptr) {
    if (name_is_type) return std::string(name);
    return config_error(table, path, table_name,
                        "has no 'type' and '" + std::string(name) +
                            "' is not a sink type; add type = \"console\", \"json\" or "
                            "\"prometheus\"");
  }
  TH_ASSIGN_OR_RETURN(std::string type, get_string(table, "type", "", path, table_name));
  if (std::find(kSinkTypes.begin(), kSinkTypes.end(), type) == kSinkTypes.end()) {
    std::string msg = "unknown sink type \"" + type + "\"";
    if (auto guess = closest_match(type, kSinkTypes)) {
      msg += "; did you mean \"" + *guess + "\"?";
    } else {
      msg += "; the sink types are \"console\", \"json\" and \"prometheus\"";
    }
    return config_error(*node, path, table_name + ".type", msg);
  }
  return type;
}

std::vector<std::string_view> allowed_keys(std::string_view type) {
  std::vector<std::string_view> keys(kCommonKeys.begin(), kCommonKeys.end());
  if (type == "console")
    keys.insert(keys.end(), std::begin(kConsoleSinkKeys), std::end(kConsoleSinkKeys));
  if (type == "json") keys.insert(keys.end(), std::begin(kJsonSinkKeys), std::end(kJsonSinkKeys));
  if (type == "prometheus") {
    keys.insert(keys.end(), std::begin(kPrometheusSinkKeys), std::end(kPrometheusSinkKeys));
  }
  return keys;
}

struct Checked {
  std::string type;
  bool enabled = true;
};

Result<Checked> check_common(std::string_view name, const toml::table& table,
                             const std::filesystem::path& path) {
  const std::string table_name = "sinks." + std::string(name);
  Checked c;
  TH_ASSIGN_OR_RETURN(c.type, sink_type(name, table, path));
  auto keys = allowed_keys(c.type);
  TH_TRY(check_keys(table, path, keys, table_name));
  TH_ASSIGN_OR_RETURN(c.enabled, get_bool(table, "enabled", true, path, table_name));
  return c;
}

}  // namespace

std::span<const std::string_view> sink_types() noexcept { return kSinkTypes; }

Status validate_sink(std::string_view name, const toml::table& table,
                     const std::filesystem::path& config_path) {
  const std::string table_name = "sinks." + std::string(name);
  TH_ASSIGN_OR_RETURN(Checked c, check_common(name, table, config_path));
  if (c.type == "console") {
    TH_TRY(console_sink_options(table, config_path, table_name));
  } else if (c.type == "json") {
    TH_TRY(json_sink_options(table, config_path, table_name));
  } else {
    TH_TRY(prometheus_sink_options(table, config_path, table_name));
  }
  return ok();
}

Result<std::unique_ptr<Sink>> make_sink(std::string_view name, const toml::table& table,
                                        const std::filesystem::path& config_path,
                                        SinkContext& ctx) {
  const std::string table_name = "sinks." + std::string(name);
  TH_ASSIGN_OR_RETURN(Checked c, check_common(name, table, config_path));
  if (!c.enabled) return std::unique_ptr<Sink>();
  if (c.type == "console") {
    TH_ASSIGN_OR_RETURN(ConsoleSinkOptions o, console_sink_options(table, config_path, table_name));
    std::FILE* out =
        o.output == "stderr" || (o.output == "auto" && ctx.stdout_taken) ? stderr : stdout;
    return std::unique_ptr<Sink>(
        std::make_unique<ConsoleSink>(std::string(name), std::move(o), ctx.bus, ctx.metrics, out));
  }
  if (c.type == "json") {
    TH_ASSIGN_OR_RETURN(JsonSinkOptions o, json_sink_options(table, config_path, table_name));
    auto sink = JsonSink::make(std::string(name), std::move(o), ctx.bus);
    if (!sink.ok()) {
      if (const toml::node* p = table.get("path")) {
        return config_error(*p, config_path, table_name + ".path", sink.error().message());
      }
      return std::move(sink).error();
    }
    return std::unique_ptr<Sink>(std::move(sink).value());
  }
  TH_ASSIGN_OR_RETURN(PrometheusSinkOptions o,
                      prometheus_sink_options(table, config_path, table_name));
  return std::unique_ptr<Sink>(
      std::make_unique<PrometheusSink>(std::string(name), std::move(o), ctx.bus, ctx.metrics));
}

Result<std::vector<std::unique_ptr<Sink>>> make_sinks(const toml::table& sinks_table,
                                                      const std::filesystem::path& config_path,
                                                      SinkContext& ctx) {
  // File order, so sinks start (and report errors) in the order the user wrote them.
  struct Entry {
    std::string name;
    const toml::table* table;
    toml::source_position pos;
  };
  std::vector<Entry> entries;
  for (const auto& [key, node] : sinks_table) {
    const toml::table* t = node.as_table();
    if (t == nullptr) {
      return config_error(node, config_path, "sinks." + std::string(key.str()),
                          "expected a table ([sinks." + std::string(key.str()) + "]), found " +
                              std::string(type_name(node.type())));
    }
    entries.push_back({std::string(key.str()), t, node.source().begin});
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.pos.line, a.pos.column) < std::tie(b.pos.line, b.pos.column);
  });

  // Who owns stdout: at most one JSON sink; then the console moves to stderr.
  const Entry* stdout_json = nullptr;
  for (const auto& e : entries) {
    auto checked = check_common(e.name, *e.table, config_path);
    if (!checked.ok()) return std::move(checked).error();
    if (!checked->enabled || checked->type != "json") continue;
    TH_ASSIGN_OR_RETURN(JsonSinkOptions o,
                        json_sink_options(*e.table, config_path, "sinks." + e.name));
    if (o.path != "-") continue;
    if (stdout_json != nullptr) {
      return config_error(*e.table, config_path, "sinks." + e.name,
                          "writes JSON to stdout, and so does [sinks." + stdout_json->name +
                              "]; give one of them a file path");
    }
    stdout_json = &e;
  }
  ctx.stdout_taken = stdout_json != nullptr;
  if (stdout_json != nullptr) {
    for (const auto& e : entries) {
      const toml::node* out = e.table->get("output");
      if (out != nullptr && out->value_or(std::string_view{}) == "stdout") {
        return config_error(*out, config_path, "sinks." + e.name + ".output",
                            "\"stdout\" would mix the console summary into the JSON lines that "
                            "[sinks." +
                                stdout_json->name +
                                "] writes to stdout; use \"stderr\" or \"auto\"");
      }
    }
  }

  std::vector<std::unique_ptr<Sink>> sinks;
  for (const auto& e : entries) {
    TH_ASSIGN_OR_RETURN(std::unique_ptr<Sink> sink, make_sink(e.name, *e.table, config_path, ctx));
    if (sink) sinks.push_back(std::move(sink));
  }
  return sinks;
}

}  // namespace tracehost::host
