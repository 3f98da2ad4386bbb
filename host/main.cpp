// tracehost: the executable is the CLI (host/cli.cpp), kept callable in-process for tests.
#include <csignal>
#include <cstdio>
#include <exception>

#include "host/cli.hpp"

int main(int argc, char** argv) {
  // A closed stdout pipe or scraper socket is a write error to report, not a reason to die.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return tracehost::host::run_cli(argc, argv);
  } catch (const std::exception& e) {  // fatal startup errors only; run_cli catches the rest
    std::fprintf(stderr, "tracehost: error: %s\n", e.what());
    return tracehost::host::kExitFailure;
  }
}
