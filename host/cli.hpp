// The command line: run, check-config, plugins list, plugins describe, --version, --help.
// Exit codes: 0 ok; 2 usage or config error; 3 environment (privileges, kernel feature,
// platform); 1 any other failure. Errors go to stderr as "tracehost: error: ..." (+ a hint line
// when there is one).
#pragma once

#include <filesystem>
#include <iosfwd>

#include "tracehost/result.hpp"

namespace tracehost::host {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitEnvironment = 3;

// The exit code for an error of this kind.
int exit_code_for(ErrorKind kind) noexcept;

// Where `run` looks for a config when --config is not given.
inline constexpr const char* kDefaultConfigPath = "/etc/tracehost/tracehost.toml";

// Parses argv and runs the command; callable in-process (tests). Output to `out`, errors to
// `err`. Never throws.
int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);
int run_cli(int argc, const char* const* argv);

}  // namespace tracehost::host
