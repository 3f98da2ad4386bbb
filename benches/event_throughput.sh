#!/usr/bin/env bash
# Event path throughput: one event per syscall through the host, beside a bare libbpf consumer.
#
# Workload: CALLS close(-1) calls (benches/getppid_loop fail), each failing with EBADF, so the
# syscall plugin (failed = true) emits one syscall.failed record per call. Variants:
#   bare               benches/bare_consumer: the same 72-byte records, same ring size and
#                      batched-wakeup policy, counted by a plain ring_buffer__poll loop
#   tracehost/count    the host with only a counting subscriber (console sink, summary to
#                      /dev/null at the end)
#   tracehost/json     the host with the JSON-lines sink writing every event to /dev/null
# For each: events delivered per second of workload, consumer CPU (user+system from
# /proc/PID/stat) per event, ns added to each syscall, and drops (kernel: ring full; bus: a
# subscriber's queue full). The host's counts come from its Prometheus self metrics.
#
#   sudo bash benches/event_throughput.sh
#   CALLS=4000000 RING_KB=1024 sudo -E bash benches/event_throughput.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CALLS=${CALLS:-2000000}
RING_KB=${RING_KB:-256}
PORT=${PORT:-19464}
BENCH_CPU=${BENCH_CPU:-1}

need_root
need_build "$TRACEHOST" "$GETPPID_LOOP" "$BARE_CONSUMER"

WORK=$(mktemp -d /tmp/tracehost-bench.XXXXXX)
tracer_pid=""
cleanup() { [[ -n $tracer_pid ]] && stop_pid "$tracer_pid"; rm -rf "$WORK"; }
trap cleanup EXIT

pin=()
if command -v taskset >/dev/null 2>&1 && (( $(nproc) > 1 )); then pin=(taskset -c "$BENCH_CPU"); fi

# run_loop: "ns_per_call ns_total" of one workload run
run_loop() {
  "${pin[@]}" "$GETPPID_LOOP" "$CALLS" fail |
    sed -E 's/.*ns_total=([0-9]+) ns_per_call=([0-9.]+).*/\2 \1/'
}

# scrape: the exposition, keeping only the first family of a name should one appear twice
scrape() {
  { curl -fsS --max-time 5 "http://127.0.0.1:$PORT/metrics" 2>/dev/null ||
      { exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3; }
  } | awk '/^# HELP/ {name = $3; seen[name]++} seen[name] <= 1'
}

# metric_sum FILE NAME [LABEL_REGEX]: sum of the samples of NAME for topic syscall.failed
metric_sum() {
  local file=$1 name=$2 filter=${3:-.}
  { grep -E "^$name\{[^}]*topic=\"syscall\.failed\"" "$file" || true; } |
    { grep -E -- "$filter" || true; } | awk '{s += $NF} END {printf "%.0f\n", s}'
}
# bus_drops FILE: subscriber-queue drops of syscall.failed (not the kernel's)
bus_drops() {
  { grep -E '^tracehost_events_dropped_total\{[^}]*topic="syscall\.failed"' "$1" || true; } |
    { grep -v 'where="kernel"' || true; } | awk '{s += $NF} END {printf "%.0f\n", s}'
}

cat >"$WORK/base.toml" <<TOML
[host]
log_level = "warn"

[plugins.syscall]
enabled = true
required = true
exec = false
failed = true
per_process = "off"
ringbuf_kb = $RING_KB

[sinks.prometheus]
listen = "127.0.0.1:$PORT"
TOML
{ cat "$WORK/base.toml"; cat <<TOML

[sinks.console]
output = "stdout"
interval_s = 3600
topics = ["syscall.failed"]
TOML
} >"$WORK/count.toml"
{ cat "$WORK/base.toml"; cat <<TOML

[sinks.console]
enabled = false

[sinks.json]
path = "/dev/null"
topics = ["syscall.failed"]
TOML
} >"$WORK/json.toml"

echo "close(-1) x $CALLS per run, ring $RING_KB KiB, loop pinned to CPU $BENCH_CPU: $(uname -r), $(nproc) CPUs" >&2
"${pin[@]}" "$GETPPID_LOOP" 200000 fail >/dev/null
read -r base_ns _ < <(run_loop)
echo "[baseline] $base_ns ns/call with nothing attached" >&2

declare -a rows
add_row() {  # name events wall_ns ticks ns_per_call kdrops bdrops
  local name=$1 events=$2 wall=$3 ticks=$4 ns=$5 kd=$6 bd=$7
  rows+=("$(awk -v n="$name" -v e="$events" -v w="$wall" -v t="$ticks" -v hz="$CLK_TCK" \
              -v ns="$ns" -v b="$base_ns" -v kd="$kd" -v bd="$bd" 'BEGIN {
      eps = w > 0 ? e / (w / 1e9) : 0
      cpu = e > 0 ? (t / hz) * 1e9 / e : 0
      printf "%-16s %12.0f %12d %14.0f %12.1f %10s %10s", n, eps, e, cpu, ns - b, kd, bd }')")
}

# bare libbpf consumer
echo "[bare] $BARE_CONSUMER --ring-kb $RING_KB" >&2
"$BARE_CONSUMER" --ring-kb "$RING_KB" >"$WORK/bare.out" 2>"$WORK/bare.err" &
tracer_pid=$!
wait_attached "$tracer_pid" 2 30
t0=$(proc_cpu_ticks "$tracer_pid")
read -r ns wall < <(run_loop)
sleep 0.5
t1=$(proc_cpu_ticks "$tracer_pid")
stop_pid "$tracer_pid"; tracer_pid=""
events=$(sed -nE 's/.*events=([0-9]+).*/\1/p' "$WORK/bare.out")
drops=$(sed -nE 's/.*drops=([0-9]+).*/\1/p' "$WORK/bare.out")
add_row bare "${events:-0}" "$wall" $((t1 - t0)) "$ns" "${drops:-?}" "-"

# the host, two subscriber setups
for variant in count json; do
  echo "[tracehost/$variant] $TRACEHOST run --config $variant.toml" >&2
  "$TRACEHOST" run --config "$WORK/$variant.toml" >/dev/null 2>"$WORK/$variant.err" &
  tracer_pid=$!
  if ! wait_attached "$tracer_pid" 2 60; then
    tail -20 "$WORK/$variant.err" >&2
    stop_pid "$tracer_pid"; tracer_pid=""
    continue
  fi
  scrape >"$WORK/before.prom" || { echo "cannot scrape 127.0.0.1:$PORT" >&2; }
  t0=$(proc_cpu_ticks "$tracer_pid")
  read -r ns wall < <(run_loop)
  sleep 0.5
  t1=$(proc_cpu_ticks "$tracer_pid")
  scrape >"$WORK/after.prom" || true
  stop_pid "$tracer_pid"; tracer_pid=""
  d0=$(metric_sum "$WORK/before.prom" tracehost_events_delivered_total)
  d1=$(metric_sum "$WORK/after.prom" tracehost_events_delivered_total)
  k0=$(metric_sum "$WORK/before.prom" tracehost_events_kernel_dropped_total)
  k1=$(metric_sum "$WORK/after.prom" tracehost_events_kernel_dropped_total)
  if (( k1 == 0 )); then  # the bus counters may carry kernel drops as where="kernel"
    k0=$(metric_sum "$WORK/before.prom" tracehost_events_dropped_total 'where="kernel"')
    k1=$(metric_sum "$WORK/after.prom" tracehost_events_dropped_total 'where="kernel"')
  fi
  b0=$(bus_drops "$WORK/before.prom")
  b1=$(bus_drops "$WORK/after.prom")
  add_row "tracehost/$variant" $((d1 - d0)) "$wall" $((t1 - t0)) "$ns" $((k1 - k0)) $((b1 - b0))
done

echo
printf '%-16s %12s %12s %14s %12s %10s %10s\n' consumer "events/s" events "CPU ns/event" "added ns" "k-drops" "bus-drops"
printf '%s\n' "${rows[@]}"
echo "(events/s: delivered events per second of workload; added ns: per close(-1) vs ${base_ns} ns unattached)"
