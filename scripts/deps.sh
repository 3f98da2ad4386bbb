#!/usr/bin/env bash
# Installs the Debian 12 packages tracehost needs to build, test and run, when they are missing.
#
#   bash scripts/deps.sh            build + test dependencies
#   bash scripts/deps.sh --bench    also the peer tools the benchmark scripts compare against
#                                   (bpftrace, libbpf-tools, linux-perf) and promtool
#
# Idempotent: packages are checked with dpkg-query and `apt-get update` runs at most once, only
# when something is missing. Needs root only when it has something to install.
set -euo pipefail

BUILD_PKGS=(
  cmake ninja-build g++ clang llvm pkg-config
  libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
  libboost-dev libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev
  prometheus-cpp-dev libcpp-httplib-dev libcurl4-openssl-dev nlohmann-json3-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  iproute2 clang-format clang-tidy
  # independent readers and network tools the tests use: `go tool pprof` reads the cpu_profile
  # plugin's pprof files, xmllint checks its SVGs, nft drops packets in the network tests
  golang-go libxml2-utils nftables
)
# Optional: each is installed only when apt knows it (checked with apt-cache policy).
BENCH_PKGS=(bpftrace libbpf-tools linux-perf prometheus)

want_bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) want_bench=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "deps.sh: unknown argument '$arg' (use --bench or --help)" >&2; exit 2 ;;
  esac
done

installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "deps.sh: this script installs Debian packages (dpkg/apt) and this system has none." >&2
  echo "         Install the equivalents of: ${BUILD_PKGS[*]}" >&2
  exit 3
fi

missing=()
for p in "${BUILD_PKGS[@]}"; do installed "$p" || missing+=("$p"); done

optional_missing=()
if (( want_bench )); then
  for p in "${BENCH_PKGS[@]}"; do installed "$p" || optional_missing+=("$p"); done
fi

if (( ${#missing[@]} == 0 && ${#optional_missing[@]} == 0 )); then
  echo "deps.sh: all required packages are installed"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deps.sh: missing packages: ${missing[*]} ${optional_missing[*]}" >&2
  echo "         installing them needs root: run 'sudo bash scripts/deps.sh$( ((want_bench)) && echo ' --bench')'" >&2
  exit 3
fi

export DEBIAN_FRONTEND=noninteractive
echo "deps.sh: installing: ${missing[*]} ${optional_missing[*]}"
apt-get update -qq

# Optional packages only when the configured archives carry them.
for p in "${optional_missing[@]}"; do
  candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [[ -n "$candidate" && "$candidate" != "(none)" ]]; then
    missing+=("$p")
  else
    echo "deps.sh: optional package '$p' is not available from apt; skipping it" >&2
  fi
done

# policy-rc.d keeps package scripts (prometheus) from starting services as a side effect.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
trap '((created_policy)) && rm -f "$policy"' EXIT

apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "deps.sh: done"
