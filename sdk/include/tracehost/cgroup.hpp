// Resolving a cgroup v2 directory to the id the in-kernel cgroup filter compares against
// (bpf/include/tracehost/filters.bpf.h: th_filter_cgroup_id / th_filter_cgroup_level).
// Shared by plugins that offer a `cgroup` config key.
#pragma once

#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "tracehost/config.hpp"
#include "tracehost/detail.hpp"
#include "tracehost/result.hpp"

namespace tracehost {

struct CgroupTarget {
  std::string path;
  std::uint64_t id = 0;     // inode of the cgroup v2 directory
  std::uint32_t level = 0;  // depth below the cgroup2 root
};

namespace detail {
constexpr std::uint64_t kCgroup2SuperMagic = 0x63677270;  // CGROUP2_SUPER_MAGIC

}  // namespace detail

// The mount point of the cgroup v2 hierarchy, from /proc/self/mountinfo.
inline Result<std::filesystem::path> cgroup2_mount(std::string_view plugin) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "id parent maj:min root mount-point options [optional...] - fstype source super-options"
    auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream tail(line.substr(sep + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream head(line.substr(0, sep));
    std::string id, parent, dev, root, mount_point;
    head >> id >> parent >> dev >> root >> mount_point;
    // mountinfo escapes space, tab, newline and backslash as \ooo
    std::string decoded;
    for (std::size_t i = 0; i < mount_point.size(); ++i) {
      if (mount_point[i] == '\\' && i + 3 < mount_point.size()) {
        decoded += static_cast<char>(std::stoi(mount_point.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        decoded += mount_point[i];
      }
    }
    return std::filesystem::path(decoded);
  }
  return Error(ErrorKind::kKernelIncompatible,
               detail::concat("[plugins.", plugin,
                              "] cgroup: no cgroup v2 hierarchy is mounted (none in "
                              "/proc/self/mountinfo); mount one (mount -t cgroup2 none "
                              "/sys/fs/cgroup) or remove the 'cgroup' key"));
}

// `plugin` names the config table in errors. A cgroup v2 path, absolute ("/sys/fs/cgroup/system.slice") or relative to the cgroup2 root
// ("system.slice/ssh.service"), to the id and depth the BPF filter compares against.
inline Result<CgroupTarget> resolve_cgroup(std::string_view plugin, const std::string& spec) {
  namespace fs = std::filesystem;
  TH_ASSIGN_OR_RETURN(fs::path mount, cgroup2_mount(plugin));
  std::error_code ec;
  fs::path root = fs::canonical(mount, ec);
  if (ec) root = mount;
  fs::path wanted(spec);
  fs::path candidate = wanted.is_absolute() ? wanted : root / wanted;
  fs::path dir = fs::canonical(candidate, ec);
  if (ec && wanted.is_absolute()) {
    // "/system.slice" meant relative to the cgroup2 root
    candidate = root / wanted.relative_path();
    dir = fs::canonical(candidate, ec);
  }
  if (ec) {
    return plugin_config_error(plugin, "cgroup", detail::concat("'", spec, "' does not exist (",
                                                 candidate.string(), ": ", ec.message(),
                                                 "); give a directory of the "
                                                 "cgroup v2 hierarchy mounted at ",
                                                 root.string()));
  }
  struct statfs sfs {};
  struct stat st {};
  if (::statfs(dir.c_str(), &sfs) != 0 || ::stat(dir.c_str(), &st) != 0) {
    return plugin_config_error(plugin, "cgroup",
                        detail::concat("cannot stat '", dir.string(), "': ", std::strerror(errno)));
  }
  if (static_cast<std::uint64_t>(sfs.f_type) != detail::kCgroup2SuperMagic || !S_ISDIR(st.st_mode)) {
    return plugin_config_error(plugin, "cgroup", detail::concat("'", dir.string(),
                                                 "' is not a cgroup v2 "
                                                 "directory; give one under ",
                                                 root.string()));
  }
  fs::path rel = dir.lexically_relative(root);
  if (rel.empty() || *rel.begin() == "..") {
    return plugin_config_error(plugin, "cgroup", detail::concat("'", dir.string(),
                                                 "' is not under the cgroup v2 "
                                                 "root ",
                                                 root.string()));
  }
  CgroupTarget t;
  t.path = dir.string();
  t.id = static_cast<std::uint64_t>(st.st_ino);
  for (const auto& part : rel) {
    if (part != ".") ++t.level;
  }
  return t;
}

}  // namespace tracehost
