#!/usr/bin/env bash
# Style checks: clang-format on C/C++ sources, clang-tidy on the host and the SDK.
#
#   bash scripts/lint.sh            clang-format --dry-run --Werror + clang-tidy (needs build/)
#   bash scripts/lint.sh --fix      rewrites files with clang-format instead of checking them
#   bash scripts/lint.sh --format   clang-format only
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO"

mode=check
tidy=1
for arg in "$@"; do
  case "$arg" in
    --fix) mode=fix; tidy=0 ;;
    --format) tidy=0 ;;
    *) echo "lint.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

# BPF C (*.bpf.c, bpf/include) may follow kernel style (tabs), as libbpf-tools do: not checked.
mapfile -t files < <(find host sdk plugins tests benches examples \
  \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.c' \) \
  ! -name '*.bpf.c' ! -name '*.bpf.h' -print 2>/dev/null | sort)

log "clang-format (${#files[@]} files)"
if [[ $mode == fix ]]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run --Werror "${files[@]}"
fi

if (( tidy )); then
  BUILD_DIR=${TRACEHOST_BUILD_DIR:-$REPO/build}
  [[ -f $BUILD_DIR/compile_commands.json ]] || {
    echo "lint.sh: $BUILD_DIR/compile_commands.json missing: run scripts/test.sh or configure first" >&2
    exit 2
  }
  mapfile -t tidy_files < <(find host sdk -name '*.cpp' | sort)
  log "clang-tidy (${#tidy_files[@]} files)"
  printf '%s\n' "${tidy_files[@]}" | xargs -P "$JOBS" -n 4 clang-tidy -p "$BUILD_DIR" --quiet
fi
echo "lint.sh: ok"
