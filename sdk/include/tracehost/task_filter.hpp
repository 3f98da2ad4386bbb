// The host-side half of bpf/include/tracehost/filters.bpf.h: the config keys that select tasks
// (pids, tids, comms, cgroup, exclude_self), their validation, and the rodata and filter maps a
// BPF object including filters.bpf.h needs. Plugins that filter by task use it like this:
//
//   config_keys():  add_task_filter_keys(keys, kFilterPids | kFilterComms | ...);
//   start():        TH_ASSIGN_OR_RETURN(TaskFilter f, read_task_filter(host.config(), "name",
//   keys));
//                   TH_TRY(configure_task_filter(obj, f));   // before obj.load()
//                   TH_TRY(obj.load());
//                   TH_TRY(fill_task_filter(obj, f));        // after load, before attach
#pragma once

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tracehost/cgroup.hpp"
#include "tracehost/config.hpp"
#include "tracehost/detail.hpp"
#include "tracehost/host.hpp"
#include "tracehost/result.hpp"

namespace tracehost {

// Which of the task filter keys a plugin offers (bit set).
enum TaskFilterKey : unsigned {
  kFilterPids = 1u << 0,
  kFilterTids = 1u << 1,
  kFilterComms = 1u << 2,
  kFilterCgroup = 1u << 3,
  kFilterExcludeSelf = 1u << 4,
  kFilterAll = 0x1fu,
};

// The validated filter, in the units filters.bpf.h wants.
struct TaskFilter {
  std::vector<std::uint32_t> pids;
  std::vector<std::uint32_t> tids;
  std::vector<std::string> comms;
  std::optional<CgroupTarget> cgroup;
  std::uint32_t self_tgid = 0;  // 0: the host is not skipped

  // True when every task passes (exclude_self aside).
  [[nodiscard]] bool selects_all() const noexcept {
    return pids.empty() && tids.empty() && comms.empty() && !cgroup.has_value();
  }
};

namespace detail {
constexpr std::int64_t kPidMax = 4194304;      // PID_MAX_LIMIT
constexpr std::size_t kTaskCommMax = 15;       // TASK_COMM_LEN - 1
constexpr std::size_t kTaskCommKeyBytes = 16;  // th_comm_key in filters.bpf.h

inline Result<std::vector<std::uint32_t>> read_task_ids(const Config& cfg, std::string_view plugin,
                                                        std::string_view key) {
  TH_ASSIGN_OR_RETURN(std::vector<std::int64_t> values, cfg.ints(key));
  std::vector<std::uint32_t> out;
  for (std::int64_t v : values) {
    if (v <= 0 || v > kPidMax) {
      return plugin_config_error(plugin, key, concat(v, " is not a valid id (1 to ", kPidMax, ")"));
    }
    out.push_back(static_cast<std::uint32_t>(v));
  }
  return out;
}
}  // namespace detail

// Appends the config keys selected by `keys` (a TaskFilterKey bit set) with their docs.
inline void add_task_filter_keys(std::vector<ConfigKey>& out, unsigned keys) {
  if ((keys & kFilterPids) != 0) {
    out.push_back(ConfigKey::ints("pids", "only these process ids (filtered in the kernel)")
                      .range(1, detail::kPidMax));
  }
  if ((keys & kFilterTids) != 0) {
    out.push_back(ConfigKey::ints("tids", "only these thread ids (filtered in the kernel)")
                      .range(1, detail::kPidMax));
  }
  if ((keys & kFilterComms) != 0) {
    out.push_back(ConfigKey::strings("comms",
                                     "only these process names, at most 15 characters "
                                     "(filtered in the kernel)"));
  }
  if ((keys & kFilterCgroup) != 0) {
    out.push_back(ConfigKey::str("cgroup", "",
                                 "only tasks in this cgroup v2 directory or below it (absolute "
                                 "or relative to the cgroup2 mount); empty = all"));
  }
  if ((keys & kFilterExcludeSelf) != 0) {
    out.push_back(ConfigKey::boolean("exclude_self", true,
                                     "skip the host's own process (avoids feedback from sinks)"));
  }
}

// Reads and validates the keys selected by `keys`. exclude_self is on unless the plugin's key or
// [host] exclude_self turns it off.
inline Result<TaskFilter> read_task_filter(const Config& cfg, std::string_view plugin,
                                           unsigned keys) {
  TaskFilter f;
  if ((keys & kFilterPids) != 0) {
    TH_ASSIGN_OR_RETURN(f.pids, detail::read_task_ids(cfg, plugin, "pids"));
  }
  if ((keys & kFilterTids) != 0) {
    TH_ASSIGN_OR_RETURN(f.tids, detail::read_task_ids(cfg, plugin, "tids"));
  }
  if ((keys & kFilterComms) != 0) {
    TH_ASSIGN_OR_RETURN(f.comms, cfg.strings("comms"));
    for (const auto& comm : f.comms) {
      if (comm.empty()) return plugin_config_error(plugin, "comms", "empty process name");
      if (comm.size() > detail::kTaskCommMax) {
        return plugin_config_error(
            plugin, "comms",
            detail::concat("'", comm, "' has ", comm.size(),
                           " characters but the kernel keeps only the first ", detail::kTaskCommMax,
                           " of a process name, so it never matches; use '",
                           comm.substr(0, detail::kTaskCommMax), "'"));
      }
    }
  }
  if ((keys & kFilterCgroup) != 0) {
    TH_ASSIGN_OR_RETURN(std::string cgroup, cfg.str("cgroup"));
    if (!cgroup.empty()) {
      TH_ASSIGN_OR_RETURN(CgroupTarget target, resolve_cgroup(plugin, cgroup));
      f.cgroup = target;
    }
  }
  if ((keys & kFilterExcludeSelf) != 0) {
    TH_ASSIGN_OR_RETURN(bool exclude_self, cfg.boolean("exclude_self"));
    if (exclude_self && cfg.host_exclude_self()) {
      f.self_tgid = static_cast<std::uint32_t>(::getpid());
    }
  }
  return f;
}

// Before load: the filters.bpf.h rodata switches and the filter maps' sizes.
[[nodiscard]] inline Status configure_task_filter(const BpfObject& obj, const TaskFilter& f) {
  auto u32 = [](bool b) { return static_cast<std::uint32_t>(b ? 1 : 0); };
  TH_TRY(obj.set_rodata("th_filter_self_tgid", f.self_tgid));
  TH_TRY(obj.set_rodata("th_filter_use_pids", u32(!f.pids.empty())));
  TH_TRY(obj.set_rodata("th_filter_use_tids", u32(!f.tids.empty())));
  TH_TRY(obj.set_rodata("th_filter_use_comms", u32(!f.comms.empty())));
  TH_TRY(obj.set_rodata("th_filter_cgroup_id", f.cgroup ? f.cgroup->id : std::uint64_t{0}));
  TH_TRY(obj.set_rodata("th_filter_cgroup_level", f.cgroup ? f.cgroup->level : 0u));
  auto set_size = [&](std::string_view map, std::size_t n) {
    return obj.set_max_entries(map, static_cast<std::uint32_t>(std::max<std::size_t>(n, 1)));
  };
  TH_TRY(set_size("th_filter_pids", f.pids.size()));
  TH_TRY(set_size("th_filter_tids", f.tids.size()));
  TH_TRY(set_size("th_filter_comms", f.comms.size()));
  return ok();
}

// After load: fills the filter maps.
[[nodiscard]] inline Status fill_task_filter(const BpfObject& obj, const TaskFilter& f) {
  const std::uint8_t one = 1;
  if (!f.pids.empty()) {
    TH_ASSIGN_OR_RETURN(Map pids, obj.map("th_filter_pids"));
    for (std::uint32_t pid : f.pids) TH_TRY(pids.update(pid, one));
  }
  if (!f.tids.empty()) {
    TH_ASSIGN_OR_RETURN(Map tids, obj.map("th_filter_tids"));
    for (std::uint32_t tid : f.tids) TH_TRY(tids.update(tid, one));
  }
  if (!f.comms.empty()) {
    TH_ASSIGN_OR_RETURN(Map comms, obj.map("th_filter_comms"));
    for (const auto& comm : f.comms) {
      std::array<char, detail::kTaskCommKeyBytes> key{};  // NUL-padded, as th_task_comm() writes
      std::memcpy(key.data(), comm.data(), std::min(comm.size(), detail::kTaskCommMax));
      TH_TRY(comms.update(key, one));
    }
  }
  return ok();
}

}  // namespace tracehost
