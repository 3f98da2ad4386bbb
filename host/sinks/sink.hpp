// Sinks: where events and metrics go. One `[sinks.NAME]` table per sink; `type` defaults to NAME
// when NAME is a sink type ("console", "json", "prometheus").
//
// Common keys: type, enabled (default true), topics (globs, default ["*"]), where (inline table
// field = value, compared with the field's rendered text). Per-type keys are documented in the
// sink's header and in docs/configuration.md.
//
// Lifecycle (run by the App): make_sink() for each enabled table → start() once the plugins have
// registered their topics → ... → stop() after the bus has been drained: stop() unsubscribes,
// flushes everything already received (final console summary, JSON buffer) and releases
// listeners. A sink is destroyed after stop().
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "tracehost/result.hpp"

namespace tracehost::host {

class EventBus;
class MetricRegistry;

struct SinkContext {
  EventBus& bus;
  MetricRegistry& metrics;
  // True when another enabled sink writes events to stdout (json with path "-"): the console
  // sink then writes its summary to stderr so stdout stays pure JSON lines. make_sinks() sets it.
  bool stdout_taken = false;
};

class Sink {
 public:
  virtual ~Sink() = default;
  Sink() = default;
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  [[nodiscard]] virtual std::string_view name() const = 0;  // the NAME of [sinks.NAME]
  [[nodiscard]] virtual std::string_view type() const = 0;  // "console", "json", …
  // Subscribes / binds listeners / opens threads. Errors name the cause and the key to change.
  virtual Status start() = 0;
  // Flushes everything already received and stops. Idempotent; must not fail.
  virtual void stop() = 0;
};

// "console", "json", "prometheus"
std::span<const std::string_view> sink_types() noexcept;

// Checks a [sinks.NAME] table without side effects (no files opened, no ports bound): unknown
// keys (with did-you-mean), types, values. Errors are kConfig "file:line:col: sinks.NAME.key: …".
Status validate_sink(std::string_view name, const toml::table& table,
                     const std::filesystem::path& config_path);

// Validates and builds one sink. Returns nullptr (not an error) when `enabled = false`.
// Files are opened here (a bad path fails now, naming the path); listeners bind in start().
Result<std::unique_ptr<Sink>> make_sink(std::string_view name, const toml::table& table,
                                        const std::filesystem::path& config_path, SinkContext& ctx);

// Builds every enabled sink of the `[sinks]` table in file order, deciding stdout ownership
// first (ctx.stdout_taken). A missing [sinks] table is the caller's business (App default).
Result<std::vector<std::unique_ptr<Sink>>> make_sinks(const toml::table& sinks_table,
                                                      const std::filesystem::path& config_path,
                                                      SinkContext& ctx);

}  // namespace tracehost::host
