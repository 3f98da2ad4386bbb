#!/usr/bin/env bash
# What a syscall tracer adds to every syscall: a getppid() loop timed with nothing attached, then
# under each tracer, counting syscalls with their latency:
#   tracehost      the syscall plugin: per-syscall counts + latency histograms in maps, no event
#                  streams (per_process = "off": the same work as syscount -L)
#   tracehost+proc the same with the plugin's default per-process counters (per_process = "comm")
#   syscount -L    libbpf-tools (/usr/sbin/syscount), counts + latency
#   bpftrace       sys_enter/sys_exit one-liner building a latency histogram per syscall
# Prints the median ns per call over REPS runs, what each tracer adds, and the ratios.
# Target: tracehost adds at most 0.8x what `syscount -L` adds.
#
#   sudo bash benches/syscall_overhead.sh
#   CALLS=5000000 REPS=7 BENCH_CPU=1 sudo -E bash benches/syscall_overhead.sh
#   TRACEHOST_BUILD_DIR=build-h6 ...        another build tree (default: build)
# Needs: root, a Release-ish build (scripts/run.sh builds one), bpftrace, libbpf-tools.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CALLS=${CALLS:-3000000}
REPS=${REPS:-5}
BENCH_CPU=${BENCH_CPU:-1}

need_root
need_build "$TRACEHOST" "$GETPPID_LOOP"
ensure_tracefs
SYSCOUNT=${SYSCOUNT:-/usr/sbin/syscount}
BPFTRACE=${BPFTRACE:-$(command -v bpftrace || true)}

WORK=$(mktemp -d /tmp/tracehost-bench.XXXXXX)
tracer_pid=""
cleanup() { [[ -n $tracer_pid ]] && stop_pid "$tracer_pid"; rm -rf "$WORK"; }
trap cleanup EXIT

pin=()
if command -v taskset >/dev/null 2>&1 && (( $(nproc) > 1 )); then pin=(taskset -c "$BENCH_CPU"); fi

# one_run: ns per getppid() call of one loop
one_run() { "${pin[@]}" "$GETPPID_LOOP" "$CALLS" getppid | sed -E 's/.*ns_per_call=([0-9.]+).*/\1/'; }

# measure: median ns/call over REPS runs (after one warm-up run)
measure() {
  local v=()
  one_run >/dev/null
  for _ in $(seq "$REPS"); do v+=("$(one_run)"); done
  echo "    runs: ${v[*]}" >&2
  median "${v[@]}"
}

# with_tracer NAME MIN_ATTACHMENTS CMD...: starts the tracer, waits for its programs, measures.
# Each tracer gets its own baseline measured right before it starts, so drift in the machine's
# load between tracers does not end up in the differences.
declare -A result base_of
with_tracer() {
  local name=$1 min=$2; shift 2
  echo "[$name] baseline, nothing attached" >&2
  base_of[$name]=$(measure)
  echo "[$name] $*" >&2
  "$@" >"$WORK/$name.out" 2>&1 &
  tracer_pid=$!
  if ! wait_attached "$tracer_pid" "$min" 60; then
    echo "[$name] did not start; its output:" >&2
    tail -20 "$WORK/$name.out" >&2
    stop_pid "$tracer_pid"; tracer_pid=""
    result[$name]=""
    return
  fi
  result[$name]=$(measure)
  stop_pid "$tracer_pid"; tracer_pid=""
}

# only the syscall plugin, aggregating in maps; no event streams, no sinks. Two setups:
# per-syscall counts + latency (what syscount -L does), and the plugin's default which adds
# per-process counters.
write_config() {  # FILE PER_PROCESS
  cat >"$1" <<TOML
[host]
log_level = "warn"

[plugins.syscall]
enabled = true
required = true
exec = false
per_process = "$2"

[sinks.console]
enabled = false
TOML
}
write_config "$WORK/syscalls.toml" off
write_config "$WORK/per-process.toml" comm

echo "getppid() x $CALLS, $REPS runs each (median), loop pinned to CPU ${BENCH_CPU}: $(uname -r), $(nproc) CPUs" >&2
with_tracer tracehost 2 "$TRACEHOST" run --config "$WORK/syscalls.toml"
with_tracer "tracehost+proc" 2 "$TRACEHOST" run --config "$WORK/per-process.toml"
if [[ -x $SYSCOUNT ]]; then
  with_tracer "syscount -L" 2 "$SYSCOUNT" -L
else
  echo "[syscount -L] $SYSCOUNT not found (apt-get install libbpf-tools); skipped" >&2
fi
if [[ -n $BPFTRACE ]]; then
  with_tracer bpftrace 2 "$BPFTRACE" -e 'tracepoint:raw_syscalls:sys_enter { @s[tid] = nsecs; }
    tracepoint:raw_syscalls:sys_exit /@s[tid]/ { @l[args->id] = hist(nsecs - @s[tid]); delete(@s[tid]); }'
else
  echo "[bpftrace] not found (apt-get install bpftrace); skipped" >&2
fi

# added ns: tracer median minus its own baseline median
added_of() { awk -v a="${result[$1]}" -v b="${base_of[$1]}" 'BEGIN {printf "%.2f", a - b}'; }
ref=""
if [[ -n ${result["syscount -L"]:-} ]]; then ref=$(added_of "syscount -L"); fi
echo
printf '%-16s %12s %12s %12s %16s\n' tracer "baseline ns" "ns/call" "added ns" "vs syscount -L"
for name in tracehost "tracehost+proc" "syscount -L" bpftrace; do
  v=${result[$name]:-}
  if [[ -z $v ]]; then printf '%-16s %12s\n' "$name" "n/a"; continue; fi
  added=$(added_of "$name")
  ratio="-"
  if [[ -n $ref ]]; then ratio=$(awk -v a="$added" -v r="$ref" 'BEGIN {if (r > 0) printf "%.2fx", a / r; else print "-"}'); fi
  printf '%-16s %12s %12s %12s %16s\n' "$name" "${base_of[$name]}" "$v" "$added" "$ratio"
done
if [[ -n $ref && -n ${result[tracehost]:-} ]]; then
  verdict=$(awk -v a="$(added_of tracehost)" -v r="$ref" \
    'BEGIN {x = a / r; printf "%s (%.2fx, target <= 0.80x)", (x <= 0.8 ? "MET" : "MISSED"), x}')
  echo "target tracehost <= 0.8x syscount -L: $verdict"
fi
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); figures from a busy machine are noise)"
