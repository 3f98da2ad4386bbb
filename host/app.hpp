// `tracehost run`: wires config, logging, the data plane, the plugin manager and the sinks, runs
// until SIGINT/SIGTERM or --duration, and shuts down in the one order that loses nothing and
// leaves nothing behind:
//   stop poller → stop plugins → drain bus → flush sinks → destroy links and objects →
//   destroy plugin instances → unload libraries.
#pragma once

#include <chrono>
#include <optional>

#include "host/config.hpp"
#include "tracehost/result.hpp"

namespace tracehost::host {

struct RunOptions {
  // Stop after this long; nullopt: until a signal.
  std::optional<std::chrono::duration<double>> duration;
};

// Runs the host. SIGINT and SIGTERM are blocked in the calling thread (and so in every thread it
// starts) and read through a signalfd; the previous mask is restored on return. Returns the error
// that ended the run early (a required plugin failing, no plugin running, a sink failing to
// start) or ok.
Status run_app(const Config& config, const RunOptions& options);

}  // namespace tracehost::host
