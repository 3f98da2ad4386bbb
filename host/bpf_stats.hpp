// Per-program run statistics (run count, total run time).
//
// The kernel only counts while someone holds a BPF_STATS_RUN_TIME fd (or the
// kernel.bpf_stats_enabled sysctl is on). BpfStatsGuard holds that fd for the host's lifetime;
// if the kernel refuses, statistics are reported unavailable and nothing else fails.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/unique_fd.hpp"
#include "tracehost/result.hpp"

namespace tracehost::host {

class BpfObject;

class BpfStatsGuard {
 public:
  // Calls bpf_enable_stats(BPF_STATS_RUN_TIME) when `enable`. Never fails: check available().
  // Off by default in the host: the kernel then times every program run, which costs a few
  // hundred ns per traced event on these machines ([host] bpf_stats = true turns it on).
  explicit BpfStatsGuard(bool enable = true);
  BpfStatsGuard(const BpfStatsGuard&) = delete;
  BpfStatsGuard& operator=(const BpfStatsGuard&) = delete;
  BpfStatsGuard(BpfStatsGuard&&) noexcept = default;
  BpfStatsGuard& operator=(BpfStatsGuard&&) noexcept = default;

  [[nodiscard]] bool available() const noexcept { return fd_.valid(); }
  // Why not (empty when available), e.g. "bpf_enable_stats: Operation not permitted".
  [[nodiscard]] const std::string& unavailable_reason() const noexcept { return reason_; }

 private:
  UniqueFd fd_;
  std::string reason_;
};

struct ProgramStats {
  std::string name;  // kernel's (truncated to 15 chars) program name
  std::uint32_t id = 0;
  std::uint64_t run_cnt = 0;
  std::uint64_t run_time_ns = 0;
};

// Reads one program's counters (bpf_obj_get_info_by_fd). Zero while stats are disabled.
Result<ProgramStats> read_program_stats(int prog_fd);

// Counters of every loaded program of an object; `name` is the full libbpf program name.
Result<std::vector<ProgramStats>> read_object_stats(const BpfObject& object);

}  // namespace tracehost::host
