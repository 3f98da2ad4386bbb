# Shared by the benchmark scripts: sourced, not executed.
# Provides: REPO, BUILD_DIR, TRACEHOST, GETPPID_LOOP, need_root, ensure_tracefs, wait_attached,
# proc_cpu_ticks, median, stop_pid.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${TRACEHOST_BUILD_DIR:-$REPO/build}
TRACEHOST=$BUILD_DIR/bin/tracehost
GETPPID_LOOP=$BUILD_DIR/bin/getppid_loop
BARE_CONSUMER=$BUILD_DIR/bin/bare_consumer
CLK_TCK=$(getconf CLK_TCK)

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "$(basename "$0"): needs root (it loads BPF programs and runs peer tracers)" >&2
    exit 3
  fi
}

# The bench binaries: built by CMake (target getppid_loop etc.); `bash scripts/run.sh` or
# `cmake --build build` builds them.
need_build() {
  local missing=()
  for f in "$@"; do [[ -x $f ]] || missing+=("$f"); done
  if (( ${#missing[@]} )); then
    echo "$(basename "$0"): missing ${missing[*]}" >&2
    echo "  build them: cmake --build $BUILD_DIR --target tracehost tracehost_plugins getppid_loop bare_consumer tcp_churn tp_floor cpu_burn tracehost_benches" >&2
    exit 2
  fi
}

# Classic tracepoints (syscount, bpftrace) need tracefs, which is not mounted on a fresh machine.
ensure_tracefs() {
  if [[ ! -d /sys/kernel/tracing/events ]]; then
    echo "mounting tracefs at /sys/kernel/tracing (syscount and bpftrace need it)" >&2
    mount -t tracefs tracefs /sys/kernel/tracing
  fi
}

# attachments PID: BPF programs PID has attached: bpf_link fds (tp_btf, raw_tp, perf links) plus
# perf-event attachments bpftool can see (tracepoints attached with PERF_EVENT_IOC_SET_BPF).
attachments() {
  local pid=$1 links=0 perf=0
  links=$(find "/proc/$pid/fd" -lname 'anon_inode:bpf_link' 2>/dev/null | wc -l)
  perf=$(bpftool perf show 2>/dev/null | grep -c "^pid $pid " || true)
  echo $(( links > perf ? links : perf ))
}

# wait_attached PID MIN [TIMEOUT_S]: waits until PID has at least MIN attachments, then lets it
# settle for a moment. Fails when PID dies or the timeout passes.
wait_attached() {
  local pid=$1 min=$2 timeout=${3:-60} waited=0
  while (( $(attachments "$pid") < min )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "process $pid exited before attaching" >&2
      return 1
    fi
    sleep 0.2
    waited=$((waited + 1))
    if (( waited > timeout * 5 )); then
      echo "process $pid did not attach $min programs within ${timeout}s" >&2
      return 1
    fi
  done
  sleep 1
}

# proc_cpu_ticks PID: utime + stime of the process (all threads), in clock ticks.
proc_cpu_ticks() {
  # fields after the parenthesised comm: utime is the 14th field overall, stime the 15th
  sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# median of the numbers given as arguments
median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'
}

# median_ci NUMBERS...: "LO HI", a distribution-free ~95 % confidence interval of the median: the
# k-th smallest and k-th largest of n values, k = n/2 - 0.98 sqrt(n) (normal approximation of
# the binomial; at least the smallest and largest). Needs no assumption about the noise.
median_ci() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {
    k = int(NR / 2 - 0.98 * sqrt(NR)); if (k < 1) k = 1
    print a[k], a[NR - k + 1] }'
}

# stop_pid PID: SIGINT, then SIGTERM/SIGKILL if it lingers; waits for it.
stop_pid() {
  local pid=$1
  kill -INT "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -TERM "$pid" 2>/dev/null; then sleep 1; fi
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
