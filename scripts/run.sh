#!/usr/bin/env bash
# Builds tracehost (installing missing Debian packages first) and runs it with the default config.
#
#   bash scripts/run.sh                       live summary on stdout, JSON lines to a file,
#                                             Prometheus on 127.0.0.1:9464 (config/tracehost.toml)
#   bash scripts/run.sh --duration 10         any further arguments go to `tracehost run`
#   TRACEHOST_BUILD_DIR=out bash scripts/run.sh   another build directory (default: build)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO"

BUILD_DIR=${TRACEHOST_BUILD_DIR:-$REPO/build}

log "dependencies"
bash "$REPO/scripts/deps.sh"

log "configure + build ($BUILD_DIR)"
configure_build "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${TRACEHOST_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
# only the host and the first-party plugins: tests and benches are test.sh's business
build "$BUILD_DIR" tracehost tracehost_plugins

if [[ $(id -u) -ne 0 ]]; then
  echo "run.sh: note: tracehost needs CAP_BPF+CAP_PERFMON (or root) to load BPF programs" >&2
fi
log "tracehost run --config config/tracehost.toml $*"
exec "$BUILD_DIR/bin/tracehost" run --config "$REPO/config/tracehost.toml" "$@"
