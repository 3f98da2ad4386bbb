#include "host/logging.hpp"

#include <mutex>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace tracehost::host {

namespace {

struct LoggingState {
  std::mutex mu;
  spdlog::sink_ptr sink;
  spdlog::level::level_enum level = spdlog::level::info;
};

LoggingState& state() {
  static LoggingState s;
  return s;
}

constexpr const char* kPattern = "%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v";

spdlog::sink_ptr sink_locked(LoggingState& s) {
  if (!s.sink) {
    s.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    s.sink->set_pattern(kPattern);
  }
  return s.sink;
}

}  // namespace

Result<spdlog::level::level_enum> parse_log_level(std::string_view text) {
  if (text == "trace") return spdlog::level::trace;
  if (text == "debug") return spdlog::level::debug;
  if (text == "info") return spdlog::level::info;
  if (text == "warn" || text == "warning") return spdlog::level::warn;
  if (text == "error") return spdlog::level::err;
  if (text == "off") return spdlog::level::off;
  return Error(ErrorKind::kConfig, "unknown log level '" + std::string(text) +
                                       "' (use trace, debug, info, warn, error or off)");
}

void init_logging(spdlog::level::level_enum level) {
  auto& s = state();
  std::lock_guard lock(s.mu);
  s.level = level;
  auto sink = sink_locked(s);
  auto existing = spdlog::get("tracehost");
  if (!existing) {
    auto logger = std::make_shared<spdlog::logger>("tracehost", sink);
    logger->set_level(level);
    logger->flush_on(spdlog::level::warn);
    spdlog::register_logger(logger);
    spdlog::set_default_logger(logger);
  }
  spdlog::set_level(level);
}

void set_log_level(spdlog::level::level_enum level) {
  auto& s = state();
  std::lock_guard lock(s.mu);
  s.level = level;
  spdlog::set_level(level);  // applies to every registered logger
}

std::shared_ptr<spdlog::logger> component_logger(std::string_view name) {
  auto& s = state();
  std::lock_guard lock(s.mu);
  std::string n(name);
  if (auto existing = spdlog::get(n)) return existing;
  auto logger = std::make_shared<spdlog::logger>(n, sink_locked(s));
  logger->set_level(s.level);
  logger->flush_on(spdlog::level::warn);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace tracehost::host
