#!/usr/bin/env bash
# Runs the host briefly with the syscall plugin and the Prometheus sink, scrapes /metrics and
# validates the exposition with `promtool check metrics` (the Prometheus project's own linter),
# then checks that the syscall families carry data.
#
#   sudo bash scripts/check_prometheus.sh [BUILD_DIR]
# Registered as the ctest `runtime.promtool` when promtool is installed (apt: prometheus).
# Exit 77 (skipped) without root, unless TRACEHOST_REQUIRE_BPF=1.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${1:-${TRACEHOST_BUILD_DIR:-$REPO/build}}
TRACEHOST=$BUILD_DIR/bin/tracehost
PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}

if [[ -z $PROMTOOL ]]; then
  echo "SKIP: promtool not installed (apt-get install prometheus)"; exit 77
fi
if [[ $(id -u) -ne 0 ]]; then
  if [[ ${TRACEHOST_REQUIRE_BPF:-0} != 0 ]]; then
    echo "FAIL: TRACEHOST_REQUIRE_BPF=1 but not root"; exit 1
  fi
  echo "SKIP: needs root to load BPF"; exit 77
fi

work=$(mktemp -d /tmp/tracehost-promtool.XXXXXX)
pid=""
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill -INT "$pid"; wait "$pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# a port nobody listens on
port=$(( 20000 + RANDOM % 20000 ))
while ss -ltn 2>/dev/null | grep -q ":$port "; do port=$(( 20000 + RANDOM % 20000 )); done

cat >"$work/prom.toml" <<TOML
[host]
log_level = "warn"
[plugins.syscall]
enabled = true
required = true
[sinks.console]
enabled = false
[sinks.prometheus]
listen = "127.0.0.1:$port"
TOML

"$TRACEHOST" run --config "$work/prom.toml" --plugin-dir "$BUILD_DIR/lib/tracehost/plugins" \
  --duration 60 2>"$work/host.err" &
pid=$!

# wait for the endpoint and for a collection that has seen syscalls
for _ in $(seq 100); do
  if curl -fsS --max-time 2 "http://127.0.0.1:$port/metrics" -o "$work/metrics.txt" 2>/dev/null &&
     grep -q '^tracehost_syscall_calls_total{' "$work/metrics.txt"; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: tracehost exited early:"; cat "$work/host.err"; exit 1
  fi
  sleep 0.2
done
# a second scrape: counters have moved, histograms are populated
sleep 1
curl -fsS --max-time 5 "http://127.0.0.1:$port/metrics" -o "$work/metrics.txt"

echo "scraped $(wc -l <"$work/metrics.txt") lines, $(grep -c '^# TYPE' "$work/metrics.txt") families"
status=0
if ! "$PROMTOOL" check metrics <"$work/metrics.txt"; then
  echo "FAIL: promtool check metrics found problems (above)"
  status=1
fi
for family in tracehost_syscall_calls_total tracehost_syscall_latency_seconds_bucket \
              tracehost_events_published_total; do
  if ! grep -q "^$family" "$work/metrics.txt"; then
    echo "FAIL: no samples of $family"
    status=1
  fi
done
if (( status == 0 )); then echo "OK: exposition valid"; fi
exit $status
