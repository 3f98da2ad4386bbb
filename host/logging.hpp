// The host's logging: one spdlog logger per component/plugin, all writing to the same stderr sink
// (stdout is left to sinks such as `json` with path "-").
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "tracehost/result.hpp"

namespace tracehost::host {

// "trace" | "debug" | "info" | "warn" | "error" (also "warning", "off").
Result<spdlog::level::level_enum> parse_log_level(std::string_view text);

// Installs the stderr sink and the default logger "tracehost". Idempotent; later calls only
// change the level.
void init_logging(spdlog::level::level_enum level);

// Sets the level of every logger created here.
void set_log_level(spdlog::level::level_enum level);

// A logger named `name` (e.g. the plugin name) writing to the host's sinks at the host's level.
std::shared_ptr<spdlog::logger> component_logger(std::string_view name);

}  // namespace tracehost::host
