# Shared by run.sh and test.sh: sourced, not executed.
# Sets REPO (the repository root, whatever the caller's cwd) and provides configure/build helpers.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${TRACEHOST_JOBS:-$(nproc 2>/dev/null || echo 2)}

log() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# configure_build DIR [cmake args...]: configures DIR with Ninja (or Makefiles without ninja).
configure_build() {
  local dir=$1; shift
  local gen=()
  if [[ ! -f "$dir/CMakeCache.txt" ]]; then
    if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
  fi
  cmake -S "$REPO" -B "$dir" "${gen[@]}" "$@"
}

# build DIR [targets...]: builds the given targets (default: all).
build() {
  local dir=$1; shift
  local targets=()
  if (( $# > 0 )); then targets=(--target "$@"); fi
  cmake --build "$dir" --parallel "$JOBS" "${targets[@]}"
}
