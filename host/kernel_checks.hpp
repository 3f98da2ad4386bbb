// Checks of what the running kernel and this process can do, with errors that name the missing
// capability or kernel feature and the fix. Nothing here touches RLIMIT_MEMLOCK: kernels >= 5.11
// account BPF memory to the memory cgroup, and libbpf 1.1 probes that itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tracehost/result.hpp"

namespace tracehost::host {

// CAP_SYS_ADMIN, or CAP_BPF + CAP_PERFMON, in the effective set (capget(2)).
// kPermission naming the missing capability and "run as root or grant CAP_BPF,CAP_PERFMON".
Status check_bpf_privileges();

// Same decision on a raw effective capability mask (bit n = capability n); for unit tests.
Status check_bpf_capabilities(std::uint64_t effective);

// /sys/kernel/btf/vmlinux is present: CO-RE objects need the kernel's BTF.
// kKernelIncompatible naming CONFIG_DEBUG_INFO_BTF.
Status check_btf();

struct KernelVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  std::string release;  // uname -r, e.g. "6.18.44-fc-v669"

  [[nodiscard]] bool at_least(int maj, int min) const noexcept {
    return major > maj || (major == maj && minor >= min);
  }
};

// Parses a `uname -r` string ("6.1.0-18-amd64", "5.15.0", "6.18"); nullopt when unparsable.
std::optional<KernelVersion> parse_kernel_release(std::string_view release);

// The running kernel's version (uname(2)).
Result<KernelVersion> kernel_version();

// BPF ring buffers need Linux >= 5.8: kKernelIncompatible naming the release otherwise.
Status check_ringbuf_support();

// check_bpf_privileges() and check_btf(): what opening any BPF object of ours needs.
Status check_bpf_environment();

inline constexpr std::string_view kTracefsPath = "/sys/kernel/tracing";

// Classic tracepoints need tracefs. If /sys/kernel/tracing/events is missing, mounts tracefs at
// /sys/kernel/tracing and logs it at info. Idempotent and thread-safe; kKernelIncompatible /
// kPermission with the reason when it cannot.
Status ensure_tracefs();

// /sys/bus/event_source/devices/kprobe exists (CONFIG_KPROBES=y).
bool kprobes_available();

// Parses a CPU list as in /sys/devices/system/cpu/online ("0-3,5,7-8"); nullopt when malformed.
std::optional<std::vector<int>> parse_cpu_list(std::string_view text);

// The online CPUs, from /sys/devices/system/cpu/online.
Result<std::vector<int>> online_cpus();

}  // namespace tracehost::host
