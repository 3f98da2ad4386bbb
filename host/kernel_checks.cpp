#include "host/kernel_checks.hpp"

#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include <spdlog/spdlog.h>

namespace tracehost::host {
namespace {

constexpr std::string_view kPrivilegeFix = "run as root or grant CAP_BPF,CAP_PERFMON";

bool path_exists(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0;
}

bool has_cap(std::uint64_t effective, int cap) { return ((effective >> cap) & 1u) != 0; }

// Parses a leading decimal number; advances `s` past it.
std::optional<int> take_number(std::string_view& s) {
  int value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr == s.data()) return std::nullopt;
  s.remove_prefix(static_cast<std::size_t>(ptr - s.data()));
  return value;
}

}  // namespace

Status check_bpf_capabilities(std::uint64_t effective) {
  if (has_cap(effective, CAP_SYS_ADMIN)) return ok();
  const bool bpf = has_cap(effective, CAP_BPF);
  const bool perfmon = has_cap(effective, CAP_PERFMON);
  if (bpf && perfmon) return ok();
  std::string missing;
  if (!bpf) missing = "CAP_BPF";
  if (!perfmon) missing += missing.empty() ? "CAP_PERFMON" : " and CAP_PERFMON";
  return Error(ErrorKind::kPermission,
               "loading BPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); this "
               "process lacks " +
                   missing + ": " + std::string(kPrivilegeFix),
               EPERM);
}

Status check_bpf_privileges() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0) {
    const int err = errno;
    if (::geteuid() == 0) return ok();
    return Error(ErrorKind::kPermission,
                 "cannot read this process's capabilities (capget failed) and it is not root: " +
                     std::string(kPrivilegeFix),
                 err);
  }
  const std::uint64_t effective = static_cast<std::uint64_t>(data[0].effective) |
                                  (static_cast<std::uint64_t>(data[1].effective) << 32);
  return check_bpf_capabilities(effective);
}

Status check_btf() {
  if (path_exists("/sys/kernel/btf/vmlinux")) return ok();
  return Error(ErrorKind::kKernelIncompatible,
               "this kernel exposes no BTF type information (/sys/kernel/btf/vmlinux is "
               "missing): CO-RE BPF objects need a kernel built with CONFIG_DEBUG_INFO_BTF=y",
               ENOENT);
}

std::optional<KernelVersion> parse_kernel_release(std::string_view release) {
  KernelVersion v;
  v.release = std::string(release);
  std::string_view s = release;
  auto major = take_number(s);
  if (!major || s.empty() || s.front() != '.') return std::nullopt;
  s.remove_prefix(1);
  auto minor = take_number(s);
  if (!minor) return std::nullopt;
  v.major = *major;
  v.minor = *minor;
  if (!s.empty() && s.front() == '.') {
    s.remove_prefix(1);
    if (auto patch = take_number(s)) v.patch = *patch;
  }
  return v;
}

Result<KernelVersion> kernel_version() {
  struct utsname uts {};
  if (::uname(&uts) != 0) {
    return Error(ErrorKind::kInternal, "uname failed", errno);
  }
  auto v = parse_kernel_release(uts.release);
  if (!v) {
    return Error(ErrorKind::kKernelIncompatible,
                 "cannot parse the kernel release '" + std::string(uts.release) + "'");
  }
  return *v;
}

Status check_ringbuf_support() {
  TH_ASSIGN_OR_RETURN(KernelVersion v, kernel_version());
  if (v.at_least(5, 8)) return ok();
  return Error(ErrorKind::kKernelIncompatible,
               "BPF ring buffers need Linux 5.8 or newer; this kernel is " + v.release +
                   ": upgrade the kernel");
}

Status check_bpf_environment() {
  TH_TRY(check_bpf_privileges());
  TH_TRY(check_btf());
  return ok();
}

Status ensure_tracefs() {
  // Serialised so two plugins attaching tracepoints at once don't both mount.
  static std::mutex mu;
  std::lock_guard lock(mu);
  const std::string events = std::string(kTracefsPath) + "/events";
  if (path_exists(events.c_str())) return ok();
  const std::string path(kTracefsPath);
  if (!path_exists(path.c_str())) {
    return Error(ErrorKind::kKernelIncompatible,
                 "tracepoint probes need tracefs, but " + path +
                     " does not exist (kernel built without CONFIG_TRACING?); attach to a "
                     "raw_tp or tp_btf instead",
                 ENOENT);
  }
  if (::mount("tracefs", path.c_str(), "tracefs", 0, nullptr) != 0) {
    const int err = errno;
    const ErrorKind kind =
        (err == EPERM || err == EACCES) ? ErrorKind::kPermission : ErrorKind::kKernelIncompatible;
    return Error(kind,
                 "tracepoint probes need tracefs and mounting it at " + path + " failed: " +
                     std::strerror(err) + "; mount it yourself (mount -t tracefs tracefs " + path +
                     "), run as root, or use raw_tp / tp_btf probes",
                 err);
  }
  if (!path_exists(events.c_str())) {
    return Error(ErrorKind::kKernelIncompatible,
                 "mounted tracefs at " + path +
                     " but it has no events/ directory (kernel "
                     "built without CONFIG_EVENT_TRACING?); use raw_tp or tp_btf probes",
                 ENOENT);
  }
  spdlog::info("mounted tracefs at {} (needed by tracepoint probes)", path);
  return ok();
}

bool kprobes_available() { return path_exists("/sys/bus/event_source/devices/kprobe"); }

std::optional<std::vector<int>> parse_cpu_list(std::string_view text) {
  std::vector<int> cpus;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  if (text.empty()) return cpus;
  std::string_view s = text;
  while (true) {
    auto first = take_number(s);
    if (!first || *first < 0) return std::nullopt;
    int last = *first;
    if (!s.empty() && s.front() == '-') {
      s.remove_prefix(1);
      auto end = take_number(s);
      if (!end || *end < *first) return std::nullopt;
      last = *end;
    }
    for (int c = *first; c <= last; ++c) cpus.push_back(c);
    if (s.empty()) break;
    if (s.front() != ',') return std::nullopt;
    s.remove_prefix(1);
  }
  return cpus;
}

Result<std::vector<int>> online_cpus() {
  constexpr const char* kPath = "/sys/devices/system/cpu/online";
  std::ifstream in(kPath);
  if (!in) return Error(ErrorKind::kInternal, std::string("cannot read ") + kPath, errno);
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto cpus = parse_cpu_list(buffer.str());
  if (!cpus || cpus->empty()) {
    return Error(ErrorKind::kInternal,
                 std::string("cannot parse ") + kPath + ": '" + buffer.str() + "'");
  }
  return *cpus;
}

}  // namespace tracehost::host
