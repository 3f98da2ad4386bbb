#!/usr/bin/env bash
# Builds everything and runs the whole test suite, then the unit and plugin tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Exits non-zero if anything fails.
#
#   bash scripts/test.sh
#   TRACEHOST_REQUIRE_BPF=1 bash scripts/test.sh   runtime tests fail instead of skipping without
#                                                  BPF privileges (what CI does: .ci/run)
#   TRACEHOST_BUILD_DIR, TRACEHOST_ASAN_BUILD_DIR  build directories (default: build, build-asan)
#   TRACEHOST_SKIP_ASAN=1                          only the first phase
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO"

BUILD_DIR=${TRACEHOST_BUILD_DIR:-$REPO/build}
ASAN_DIR=${TRACEHOST_ASAN_BUILD_DIR:-$REPO/build-asan}
LOG_DIR=$(mktemp -d /tmp/tracehost-test.XXXXXX)
start=$(date +%s)

die() { echo "test.sh: $*" >&2; exit 1; }

summaries=()
failed=0
# print_summary: the last lines of the run, whatever happened before
print_summary() {
  local elapsed=$(( $(date +%s) - start ))
  log "summary (logs in $LOG_DIR, ${elapsed}s)"
  printf '%s\n' "${summaries[@]}"
  if (( failed )); then
    echo "test.sh: FAILED"
    exit 1
  fi
  echo "test.sh: all tests passed"
  exit 0
}
# phase_failed WHAT: records a failure that stops the run, then prints the summary
phase_failed() {
  summaries+=("$(printf '%-28s %s' "$1:" "FAILED (see the output above)")")
  failed=1
  print_summary
}

log "dependencies"
bash "$REPO/scripts/deps.sh" || die "installing dependencies failed"

if [[ $(id -u) -ne 0 ]]; then
  echo "test.sh: not root: runtime tests that load BPF will SKIP (TRACEHOST_REQUIRE_BPF=1 makes them fail)" >&2
fi

# run_ctest NAME DIR [ctest args...]: runs ctest, keeps its output, records its summary line.
run_ctest() {
  local name=$1 dir=$2; shift 2
  local out="$LOG_DIR/${name//[^a-z0-9]/_}.log"
  ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$JOBS" "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E 'tests passed|No tests were found' "$out" | tail -1)
  summaries+=("$(printf '%-28s %s' "$name:" "${line:-ctest produced no summary (exit $rc)}")")
  if (( rc != 0 )); then
    failed=1
    local failures
    failures=$(sed -n '/The following tests FAILED:/,$p' "$out" | sed 1d | grep -v '^Errors while' || true)
    [[ -n "$failures" ]] && summaries+=("$failures")
  fi
}

log "configure + build ($BUILD_DIR)"
configure_build "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${TRACEHOST_BUILD_TYPE:-RelWithDebInfo}" \
  || phase_failed "configure ($BUILD_DIR)"
build "$BUILD_DIR" || phase_failed "build ($BUILD_DIR)"

log "tests: unit, plugin, runtime ($BUILD_DIR)"
run_ctest "tests (all labels)" "$BUILD_DIR"

if [[ "${TRACEHOST_SKIP_ASAN:-0}" != 1 ]]; then
  log "configure + build with ASan+UBSan ($ASAN_DIR)"
  configure_build "$ASAN_DIR" -DCMAKE_BUILD_TYPE=Debug -DTRACEHOST_SANITIZE=ON \
    -DTRACEHOST_BUILD_BENCHES=OFF || phase_failed "configure ($ASAN_DIR)"
  # only what the unit and plugin tests need
  build "$ASAN_DIR" tracehost_unit_plugin_tests || phase_failed "sanitizer build ($ASAN_DIR)"

  log "tests under ASan+UBSan: unit, plugin ($ASAN_DIR)"
  # halt on the first UBSan report so it fails the test instead of scrolling by
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_ctest "tests (asan+ubsan)" "$ASAN_DIR" -L 'unit|plugin'
fi

print_summary
