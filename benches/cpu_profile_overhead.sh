#!/usr/bin/env bash
# What a sampling CPU profiler costs: a CPU-bound workload (cpu_burn, one thread per CPU) runs
# DURATION seconds with no profiler, then under each profiler sampling every CPU at 99 Hz with
# user + kernel stacks, in one run, rounds interleaved:
#   baseline     nothing attached
#   tracehost    `tracehost run` with only the cpu_profile plugin (99 Hz, its default window_s,
#                output files in a temp dir, no console): whatever the plugin in this tree does
#                per window (draining, symbolising, writing) is in the figures
#   perf record  `perf record -F 99 -g -a -o <tmp>`
#   bpftrace     `profile:hz:99 { @[kstack, ustack, comm] = count(); }`
# Prints for each profiler its own CPU use (its process and threads, from /proc, as % of one
# core) and the ratio to perf record's, and the workload's slowdown (baseline work rate / work
# rate), then PASS/FAIL against the targets:
#   tracehost host CPU < 0.5 % of one core at 99 Hz; tracehost CPU <= 0.5x perf record's.
#
# Two CPU figures per profiler:
#   steady   CPU the profiler used while the workload ran (after it attached and settled;
#            per-thread sum_exec_runtime from /proc/PID/task/*/schedstat, ns resolution)
#   total    CPU of its whole life, start to exit (GNU time: user + sys), which adds start-up
#            (BPF load; bpftrace compiles its program with LLVM; perf synthesises every
#            process's mappings) and shut-down work (tracehost writes the last window, perf
#            record reads its data back for build-ids, bpftrace prints its map with every
#            stack symbolised). "total % core" spreads it over DURATION.
# The in-kernel sampling work (the BPF program or perf's sample copy, run in the timer
# interrupt) is charged to the interrupted task, i.e. to the workload: it shows up in the
# slowdown, not in the profiler's CPU.
#
#   sudo bash benches/cpu_profile_overhead.sh                 # 60 s rounds, 1 round
#   DURATION=10 sudo -E bash benches/cpu_profile_overhead.sh  # a smoke run
#   ROUNDS=3 sudo -E bash benches/cpu_profile_overhead.sh     # medians of 3 interleaved rounds
#   TRACEHOST_BUILD_DIR=build-x ...                           # another build tree (default: build)
# Also: PROFILERS (a subset of "tracehost perf bpftrace"), HZ (99), THREADS (online CPUs), SETTLE_S (2: wait after attach), KEEP=1 keeps the temp dir,
# POLL_MS sets tracehost's [host] poll_interval_ms (default: the host's), WINDOW_S the plugin's
# window_s (default: the plugin's).
# Needs: root, a build (tracehost, the cpu_profile plugin, cpu_burn), perf (linux-perf),
# bpftrace, GNU time (time); `bash scripts/deps.sh --bench` installs the peers.
# the result arrays are read through a nameref (med_of), which shellcheck does not follow
# shellcheck disable=SC2034
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DURATION=${DURATION:-60}
ROUNDS=${ROUNDS:-1}
HZ=${HZ:-99}
NCPU=$(nproc)
THREADS=${THREADS:-$NCPU}
SETTLE_S=${SETTLE_S:-2}
CPU_BURN=$BUILD_DIR/bin/cpu_burn
PLUGIN_DIR=$BUILD_DIR/lib/tracehost/plugins
GNU_TIME=${GNU_TIME:-/usr/bin/time}
PERF=${PERF:-$(command -v perf || true)}
BPFTRACE=${BPFTRACE:-$(command -v bpftrace || true)}

need_root
if [[ ! -x $TRACEHOST || ! -x $CPU_BURN || ! -f $PLUGIN_DIR/tracehost_cpu_profile.so ]]; then
  echo "$(basename "$0"): missing $TRACEHOST, $CPU_BURN or $PLUGIN_DIR/tracehost_cpu_profile.so" >&2
  echo "  build them: cmake --build $BUILD_DIR --target tracehost tracehost_plugin_cpu_profile cpu_burn" >&2
  exit 2
fi
if [[ -z $PERF ]] || ! "$PERF" --version >/dev/null 2>&1; then
  echo "$(basename "$0"): perf not found; it is the reference profiler here." >&2
  echo "  install it: bash scripts/deps.sh --bench (Debian package linux-perf)" >&2
  exit 2
fi
if [[ ! -x $GNU_TIME ]] || ! "$GNU_TIME" -f %e true >/dev/null 2>&1; then
  echo "$(basename "$0"): GNU time ($GNU_TIME) not found: apt-get install time" >&2
  exit 2
fi
if [[ -z $BPFTRACE ]]; then
  echo "[bpftrace] not found (bash scripts/deps.sh --bench, or apt-get install bpftrace); skipped" >&2
fi
if (( DURATION < 5 )); then echo "DURATION must be at least 5 seconds" >&2; exit 2; fi

WORK=$(mktemp -d /tmp/tracehost-cpu-profile-bench.XXXXXX)
prof_pid=""
wrapper_pid=""
cleanup() {
  if [[ -n $prof_pid ]]; then kill -KILL "$prof_pid" 2>/dev/null || true; fi
  if [[ -n $wrapper_pid ]]; then wait "$wrapper_pid" 2>/dev/null || true; fi
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# write_config FILE OUTPUT_DIR: only the cpu_profile plugin; window files into OUTPUT_DIR, every
# window kept; no sink (with every sink disabled the host has nothing to render and says so once)
write_config() {
  cat >"$1" <<TOML
[host]
log_level = "warn"
${POLL_MS:+poll_interval_ms = $POLL_MS}

[plugins.cpu_profile]
enabled = true
required = true
frequency_hz = $HZ
output_dir = "$2"
keep_windows = 0
${WINDOW_S:+window_s = $WINDOW_S}
$formats_line

[sinks.console]
enabled = false
TOML
}
# every output format the plugin has (pprof, folded stacks, SVG), when it has a choice: the
# window cost includes writing them all; the folded files are also where the samples are counted
formats_line=""
if "$TRACEHOST" plugins describe cpu_profile --plugin-dir "$PLUGIN_DIR" 2>/dev/null | grep -qw formats; then
  formats_line='formats = ["pprof", "folded", "svg"]'
fi
write_config "$WORK/check.toml" "$WORK/check-out"
if ! "$TRACEHOST" check-config --config "$WORK/check.toml" --plugin-dir "$PLUGIN_DIR" \
    >"$WORK/check.out" 2>&1; then
  echo "tracehost check-config rejected the generated config:" >&2
  cat "$WORK/check.out" >&2
  exit 2
fi

# perf_events PID: perf event fds PID holds (one per CPU for each of the three profilers)
perf_events() { find "/proc/$1/fd" -lname 'anon_inode:*perf_event*' 2>/dev/null | wc -l; }

# wait_sampling PID: until PID has a perf event open on every CPU, then SETTLE_S more seconds
wait_sampling() {
  local pid=$1 waited=0
  while (( $(perf_events "$pid") < NCPU )); do
    if ! kill -0 "$pid" 2>/dev/null; then echo "process $pid exited before sampling" >&2; return 1; fi
    sleep 0.1
    waited=$((waited + 1))
    if (( waited > 600 )); then echo "process $pid did not open $NCPU perf events in 60 s" >&2; return 1; fi
  done
  sleep "$SETTLE_S"
}

# tree_cpu_ns PID: CPU time (ns) of every thread of PID and of its descendants
tree_cpu_ns() {
  local pid=$1 total=0 t v c
  for t in /proc/"$pid"/task/*; do
    read -r v _ 2>/dev/null <"$t/schedstat" || continue
    total=$((total + v))
    for c in $(cat "$t/children" 2>/dev/null); do total=$((total + $(tree_cpu_ns "$c"))); done
  done
  echo "$total"
}

now_ns() { date +%s%N; }

# thread_snap PID: "tid cpu_ns wakeups comm" per thread of PID
thread_snap() {
  local t v w
  for t in /proc/"$1"/task/*; do
    read -r v _ w 2>/dev/null <"$t/schedstat" || continue
    echo "${t##*/} $v $w $(cat "$t/comm" 2>/dev/null)"
  done
}

# samples_of NAME ROUND: samples of the workload (comm cpu_burn) the profiler recorded
samples_of() {
  local name=$1 dir=$WORK/$1.$2 files
  case $name in
    tracehost)
      shopt -s nullglob
      files=("$dir"/tracehost-out/*.folded)
      shopt -u nullglob
      if (( ${#files[@]} == 0 )); then echo "n/a"; return; fi
      awk '$0 ~ /^cpu_burn[;[:space:]]/ {n += $NF} END {print n + 0}' "${files[@]}" ;;
    perf)
      "$PERF" script -i "$dir/perf.data" -F comm 2>/dev/null | awk '$1 == "cpu_burn" {n++} END {print n + 0}' ;;
    bpftrace)
      # map entries end in "..., cpu_burn]: COUNT"
      awk '/, cpu_burn\]: [0-9]+$/ {n += $NF} END {print n + 0}' "$dir/out" ;;
  esac
}

# results, by "NAME ROUND" (read through med_of's nameref)
declare -A rate eff burn_cpu steady_ns steady_wall total_s samples post_s

# round NAME R [PROFILER CMD...]: one workload run, under the profiler if one is given
round() {
  local name=$1 r=$2; shift 2
  local dir=$WORK/$name.$r c0=0 c1=0 t0=0 t1=0
  mkdir -p "$dir"
  if (( $# > 0 )); then
    echo "[${label[$name]:-$name}, round $r] $*" >&2
    (cd "$dir" && exec "$GNU_TIME" -f '%e %U %S' -o "$dir/time" "$@" >"$dir/out" 2>"$dir/err") &
    wrapper_pid=$!
    # the profiler is GNU time's only child
    for _ in $(seq 100); do
      prof_pid=$(awk '{print $1}' "/proc/$wrapper_pid/task/$wrapper_pid/children" 2>/dev/null || true)
      [[ -n $prof_pid ]] && break
      sleep 0.05
    done
    if [[ -z $prof_pid ]] || ! wait_sampling "$prof_pid"; then
      echo "[$name] did not start sampling; its output:" >&2
      tail -20 "$dir/err" "$dir/out" >&2
      if [[ -n $prof_pid ]]; then kill -KILL "$prof_pid" 2>/dev/null || true; fi
      wait "$wrapper_pid" 2>/dev/null || true
      prof_pid=""; wrapper_pid=""
      return
    fi
    thread_snap "$prof_pid" >"$dir/threads.0"
    c0=$(tree_cpu_ns "$prof_pid"); t0=$(now_ns)
  else
    echo "[$name, round $r] no profiler" >&2
  fi

  "$CPU_BURN" -t "$THREADS" -s "$DURATION" >"$dir/burn"
  rate["$name $r"]=$(sed -E 's/.*units_per_s=([0-9.]+).*/\1/' "$dir/burn")
  # work per CPU-second of the workload itself: what sampling in its own context (the
  # interrupt, the BPF program, cache pollution) costs it, without CPU taken by others
  eff["$name $r"]=$(awk '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}}
    END {printf "%.2f", v["units"] / (v["user_s"] + v["sys_s"])}' "$dir/burn")
  burn_cpu["$name $r"]=$(awk '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}}
    END {print v["user_s"] + v["sys_s"]}' "$dir/burn")

  if [[ -n $prof_pid ]]; then
    c1=$(tree_cpu_ns "$prof_pid"); t1=$(now_ns)
    thread_snap "$prof_pid" >"$dir/threads.1"
    # where the profiler's steady CPU went, per thread
    awk -v secs="$(( (t1 - t0) / 1000000 ))" 'NR == FNR {c[$1] = $2; w[$1] = $3; next}
      {printf "    thread %-8s %-16s %8.2f ms CPU  %7.1f wakeups/s\n", $1, $4, ($2 - c[$1]) / 1e6,
        ($3 - w[$1]) * 1000 / secs}' "$dir/threads.0" "$dir/threads.1" >&2
    steady_ns["$name $r"]=$((c1 - c0))
    steady_wall["$name $r"]=$((t1 - t0))
    # SIGINT: each profiler then finishes its output (last window, build-ids, map print); give
    # it time, it is part of its total
    # (bpftrace 0.17 now and then misses a SIGINT: it gets another, then SIGTERM, which it
    # also ends on normally)
    local i killed=0
    kill -INT "$prof_pid" 2>/dev/null || true
    for i in $(seq 1200); do
      kill -0 "$prof_pid" 2>/dev/null || break
      if (( i == 100 )); then
        echo "[$name] still running 10 s after SIGINT; SIGINT again" >&2
        kill -INT "$prof_pid" 2>/dev/null || true
      elif (( i == 200 )); then
        echo "[$name] still running 20 s after SIGINT; SIGTERM" >&2
        kill -TERM "$prof_pid" 2>/dev/null || true
      fi
      sleep 0.1
    done
    if kill -0 "$prof_pid" 2>/dev/null; then
      echo "[$name] still running 120 s after SIGINT; killed (its total CPU and samples are then missing)" >&2
      kill -KILL "$prof_pid" 2>/dev/null || true
      killed=1
    fi
    wait "$wrapper_pid" 2>/dev/null || true
    prof_pid=""; wrapper_pid=""
    if (( !killed )); then
      total_s["$name $r"]=$(awk '/^[0-9.]+ [0-9.]+ [0-9.]+$/ {print $2 + $3}' "$dir/time")
      samples["$name $r"]=$(samples_of "$name" "$r")
    fi
    if [[ $name == perf ]]; then
      # what naming perf record's stacks costs afterwards (tracehost and bpftrace do it live)
      "$GNU_TIME" -f '%U %S' -o "$dir/script.time" "$PERF" script -i "$dir/perf.data" \
        -F comm,tid,ip,sym,dso >/dev/null 2>&1 || true
      post_s["$name $r"]=$(awk '/^[0-9.]+ [0-9.]+$/ {print $1 + $2}' "$dir/script.time")
    fi
  fi
  echo "    $(cat "$dir/burn")" >&2
}

# PROFILERS: a subset, e.g. PROFILERS="tracehost perf" (perf record stays the reference)
names=()
for n in ${PROFILERS:-tracehost perf bpftrace}; do
  case $n in
    tracehost|perf) names+=("$n") ;;
    bpftrace) if [[ -n $BPFTRACE ]]; then names+=(bpftrace); fi ;;
    *) echo "PROFILERS: unknown '$n'; use tracehost, perf, bpftrace" >&2; exit 2 ;;
  esac
done
has() { [[ " ${names[*]} " == *" $1 "* ]]; }
declare -A label=([tracehost]=tracehost [perf]="perf record" [bpftrace]=bpftrace)
BT_PROG="profile:hz:$HZ { @[kstack, ustack, comm] = count(); }"

echo "cpu_burn x $THREADS threads, ${DURATION}s per run, $ROUNDS round(s), ${HZ} Hz on $NCPU CPUs: $(uname -r)" >&2
for r in $(seq "$ROUNDS"); do
  round baseline "$r"
  if has tracehost; then
    write_config "$WORK/tracehost.$r.toml" "$WORK/tracehost.$r/tracehost-out"
    # --duration only as a backstop: the script stops it with SIGINT when the workload ends
    round tracehost "$r" "$TRACEHOST" run --config "$WORK/tracehost.$r.toml" --plugin-dir "$PLUGIN_DIR" \
      --duration $((DURATION + SETTLE_S + 300))
  fi
  if has perf; then round perf "$r" "$PERF" record -F "$HZ" -g -a -o "$WORK/perf.$r/perf.data"; fi
  if has bpftrace; then round bpftrace "$r" "$BPFTRACE" -e "$BT_PROG"; fi
done
round baseline $((ROUNDS + 1))  # baselines on both sides of every profiled run

# med_of FIELD NAME: median over rounds of an associative array's entries for NAME
med_of() {
  local -n arr=$1
  local v=() k
  for k in "${!arr[@]}"; do [[ $k == "$2 "* && -n ${arr[$k]} ]] && v+=("${arr[$k]}"); done
  (( ${#v[@]} )) || { echo ""; return; }
  # full precision (common.sh's median rounds even counts to 2 decimals: 0.0132 % would be 0.01)
  printf '%s\n' "${v[@]}" | sort -g |
    awk '{a[NR] = $1} END {printf "%.6g\n", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
# steady % of one core per round, then its median
declare -A steady_pct total_pct
for k in "${!steady_ns[@]}"; do
  steady_pct[$k]=$(awk -v c="${steady_ns[$k]}" -v w="${steady_wall[$k]}" 'BEGIN {printf "%.5f", 100 * c / w}')
done
for k in "${!total_s[@]}"; do
  total_pct[$k]=$(awk -v c="${total_s[$k]}" -v d="$DURATION" 'BEGIN {printf "%.4f", 100 * c / d}')
done

base=$(med_of rate baseline)
baselines() { local k; for k in "${!rate[@]}"; do [[ $k == "baseline "* ]] && echo "${rate[$k]}"; done; true; }
base_min=$(baselines | sort -g | head -1)
base_max=$(baselines | sort -g | tail -1)
ref_steady=$(med_of steady_pct perf)
ref_total=$(med_of total_pct perf)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "" && b > 0) printf "%.2fx", a / b; else print "-"}'; }

base_eff=$(med_of eff baseline)
echo
echo "cpu_burn: $THREADS threads x ${DURATION}s; ${HZ} Hz on $NCPU CPUs; medians of $ROUNDS round(s)"
fmt='%-12s %11s %8s %11s %11s %8s %9s %9s %10s %9s %15s\n'
printf "$fmt" profiler "steady CPU" "vs perf" "total CPU" "total CPU" "vs perf" "work/s" slowdown "work/CPU-s" "in-task" "cpu_burn"
printf "$fmt" "" "% of core" "" "seconds" "% of core" "" "" "" "" "slowdown" "samples/expect"
printf "$fmt" baseline - - - - - "$base" "1.000x" "$base_eff" "1.000x" -
for name in "${names[@]}"; do
  st=$(med_of steady_pct "$name"); tt=$(med_of total_s "$name"); tp=$(med_of total_pct "$name")
  rt=$(med_of rate "$name"); ef=$(med_of eff "$name"); sm=$(med_of samples "$name" 2>/dev/null || true)
  bc=$(med_of burn_cpu "$name")
  if [[ -z $rt ]]; then printf '%-12s %s\n' "${label[$name]}" "n/a (did not run)"; continue; fi
  printf "$fmt" "${label[$name]}" "$(printf '%.3f%%' "${st:-0}")" "$(ratio "$st" "$ref_steady")" \
    "$(printf '%.2f' "${tt:-0}")" "$(printf '%.3f%%' "${tp:-0}")" "$(ratio "$tp" "$ref_total")" "$rt" \
    "$(awk -v b="$base" -v r="$rt" 'BEGIN {printf "%.3fx", b / r}')" "$ef" \
    "$(awk -v b="$base_eff" -v r="$ef" 'BEGIN {printf "%.3fx", b / r}')" \
    "$(awk -v s="$sm" 'BEGIN {if (s == "") print "n/a"; else printf "%d", s}')/$(awk -v h="$HZ" -v c="$bc" 'BEGIN {printf "%d", h * c}')"
done
echo "(slowdown: baseline work/s over work/s under the profiler. in-task slowdown: the same per CPU-second"
echo " of cpu_burn, i.e. without the CPU the profiler took from it. cpu_burn samples: what the profiler"
echo " recorded for cpu_burn / HZ x cpu_burn's CPU seconds. Baseline work/s ranged $base_min .. $base_max over" \
  "$((ROUNDS + 1)) runs: $(awk -v a="$base_min" -v b="$base_max" 'BEGIN {printf "%.1f%%", 100 * (b - a) / a}') spread, slowdowns below that are noise)"
perf_post=$(med_of post_s perf)
if [[ -n $perf_post && -n $(med_of total_s perf) ]]; then
  perf_all=$(awk -v a="$(med_of total_s perf)" -v b="$perf_post" 'BEGIN {printf "%.2f", a + b}')
  echo "perf record writes raw addresses; naming them afterwards (perf script -F comm,tid,ip,sym,dso)"
  echo " took $perf_post s CPU: perf record + perf script = $perf_all s;" \
    "tracehost total / that = $(ratio "$(med_of total_s tracehost)" "$perf_all")"
fi
echo
th_steady=$(med_of steady_pct tracehost)
th_total=$(med_of total_pct tracehost)
verdict() {  # LABEL VALUE LIMIT UNIT
  awk -v l="$1" -v v="$2" -v m="$3" -v u="$4" 'BEGIN {
    if (v == "") { printf "%-52s n/a\n", l; exit }
    printf "%-52s %s (%.3f%s, target %s %s%s)\n", l, (v + 0 < m + 0 || (u == "x" && v + 0 <= m + 0)) ? "PASS" : "FAIL", v, u, (u == "x" ? "<=" : "<"), m, u }'
}
th_vs_steady=$(awk -v a="$th_steady" -v b="$ref_steady" 'BEGIN {if (a != "" && b > 0) printf "%.4f", a / b}')
th_vs_total=$(awk -v a="$th_total" -v b="$ref_total" 'BEGIN {if (a != "" && b > 0) printf "%.4f", a / b}')
verdict "tracehost steady CPU < 0.5 % of one core:" "$th_steady" 0.5 "%"
verdict "tracehost total CPU < 0.5 % of one core:" "$th_total" 0.5 "%"
verdict "tracehost steady CPU <= 0.5x perf record's:" "$th_vs_steady" 0.5 "x"
verdict "tracehost total CPU <= 0.5x perf record's:" "$th_vs_total" 0.5 "x"
echo "(perf record sampled '$("$PERF" evlist -i "$WORK/perf.1/perf.data" 2>/dev/null | head -1 || echo -)';" \
  "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); figures from a busy machine are noise)"
