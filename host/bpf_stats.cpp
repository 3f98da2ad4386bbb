#include "host/bpf_stats.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "host/bpf_object.hpp"

namespace tracehost::host {

BpfStatsGuard::BpfStatsGuard(bool enable) {
  if (!enable) {
    reason_ = "disabled; set [host] bpf_stats = true to count program runs and time";
    return;
  }
  const int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd >= 0) {
    fd_.reset(fd);
  } else {
    const int err = errno;
    reason_ = std::string("bpf_enable_stats(BPF_STATS_RUN_TIME) failed: ") + std::strerror(err) +
              " (per-program run counts and times will read 0)";
  }
}

Result<ProgramStats> read_program_stats(int prog_fd) {
  bpf_prog_info info;
  std::memset(&info, 0, sizeof(info));
  __u32 len = sizeof(info);
  // libbpf 1.1 has the generic bpf_obj_get_info_by_fd (bpf_prog_get_info_by_fd came in 1.2).
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) {
    return Error(ErrorKind::kInternal, "cannot read BPF program info", errno);
  }
  ProgramStats out;
  out.name = info.name;
  out.id = info.id;
  out.run_cnt = info.run_cnt;
  out.run_time_ns = info.run_time_ns;
  return out;
}

Result<std::vector<ProgramStats>> read_object_stats(const BpfObject& object) {
  std::vector<ProgramStats> out;
  for (const auto& prog : object.programs()) {
    if (prog.fd < 0) continue;
    TH_ASSIGN_OR_RETURN(ProgramStats stats, read_program_stats(prog.fd));
    stats.name = prog.name;
    out.push_back(std::move(stats));
  }
  return out;
}

}  // namespace tracehost::host
