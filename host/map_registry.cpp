#include "host/map_registry.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "host/bpf_object.hpp"

namespace tracehost::host {
namespace {

constexpr std::size_t round_up8(std::size_t n) { return (n + 7u) & ~std::size_t{7}; }

const void* key_ptr(std::span<const std::byte> key) {
  return key.empty() ? nullptr : static_cast<const void*>(key.data());
}

std::string sizes(std::size_t expected, std::size_t given) {
  return std::to_string(expected) + " bytes expected, " + std::to_string(given) + " given";
}

}  // namespace

bool is_per_cpu_map_type(std::uint32_t type) noexcept {
  switch (type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

void sum_per_cpu(std::span<const std::byte> raw, std::uint32_t value_size, std::uint32_t ncpus,
                 std::span<std::byte> out) {
  const std::size_t stride = round_up8(value_size);
  const std::size_t words = value_size / 8;
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t total = 0;
    for (std::uint32_t cpu = 0; cpu < ncpus; ++cpu) {
      const std::size_t at = cpu * stride + w * 8;
      if (at + 8 > raw.size()) break;
      std::uint64_t v = 0;
      std::memcpy(&v, raw.data() + at, sizeof(v));
      total += v;
    }
    if (w * 8 + 8 <= out.size()) std::memcpy(out.data() + w * 8, &total, sizeof(total));
  }
}

BpfMap::BpfMap(MapInfo info, UniqueFd fd) : info_(std::move(info)), fd_(std::move(fd)) {}

Status BpfMap::check_key(std::span<const std::byte> key, std::string_view op) const {
  if (key.size() == info_.key_size) return ok();
  return Error(ErrorKind::kMap,
               "map '" + info_.name + "' " + std::string(op) +
                   ": key size mismatch: " + sizes(info_.key_size, key.size()),
               EINVAL);
}

Status BpfMap::lookup(std::span<const std::byte> key, std::span<std::byte> value,
                      PerCpu mode) const {
  TH_TRY(check_key(key, "lookup"));
  auto fail = [&](int err) -> Status {
    if (err == ENOENT) {
      return Error(ErrorKind::kNotFound, "map '" + info_.name + "': no such key", err);
    }
    return Error(ErrorKind::kMap, "map '" + info_.name + "': lookup failed", err);
  };
  if (!info_.per_cpu) {
    if (value.size() != info_.value_size) {
      return Error(ErrorKind::kMap,
                   "map '" + info_.name +
                       "' lookup: value size mismatch: " + sizes(info_.value_size, value.size()),
                   EINVAL);
    }
    if (bpf_map_lookup_elem(fd(), key_ptr(key), value.data()) != 0) return fail(errno);
    return ok();
  }
  if (mode == PerCpu::kRaw) {
    if (value.size() != info_.raw_value_size()) {
      return Error(ErrorKind::kMap,
                   "map '" + info_.name + "' raw per-CPU lookup: value size mismatch: " +
                       sizes(info_.raw_value_size(), value.size()) + " (" +
                       std::to_string(info_.ncpus) + " CPUs × " +
                       std::to_string(round_up8(info_.value_size)) + ")",
                   EINVAL);
    }
    if (bpf_map_lookup_elem(fd(), key_ptr(key), value.data()) != 0) return fail(errno);
    return ok();
  }
  if (info_.value_size % 8 != 0) {
    return Error(ErrorKind::kMap,
                 "map '" + info_.name +
                     "': summing per-CPU values needs a value size that is a "
                     "multiple of 8 (u64 counters), this one is " +
                     std::to_string(info_.value_size) + " bytes: read it raw instead",
                 EINVAL);
  }
  if (value.size() != info_.value_size) {
    return Error(ErrorKind::kMap,
                 "map '" + info_.name + "' per-CPU sum lookup: value size mismatch: " +
                     sizes(info_.value_size, value.size()),
                 EINVAL);
  }
  std::vector<std::byte> raw(info_.raw_value_size());
  if (bpf_map_lookup_elem(fd(), key_ptr(key), raw.data()) != 0) return fail(errno);
  sum_per_cpu(raw, info_.value_size, info_.ncpus, value);
  return ok();
}

Status BpfMap::update(std::span<const std::byte> key, std::span<const std::byte> value,
                      std::uint64_t flags) const {
  TH_TRY(check_key(key, "update"));
  const void* data = value.data();
  std::vector<std::byte> replicated;
  if (!info_.per_cpu) {
    if (value.size() != info_.value_size) {
      return Error(ErrorKind::kMap,
                   "map '" + info_.name +
                       "' update: value size mismatch: " + sizes(info_.value_size, value.size()),
                   EINVAL);
    }
  } else if (value.size() != info_.raw_value_size()) {
    if (value.size() != info_.value_size) {
      return Error(ErrorKind::kMap,
                   "map '" + info_.name + "' per-CPU update: value size mismatch: " +
                       std::to_string(info_.value_size) + " bytes (one value for every CPU) or " +
                       std::to_string(info_.raw_value_size()) + " (" + std::to_string(info_.ncpus) +
                       " CPUs × " + std::to_string(round_up8(info_.value_size)) + ") expected, " +
                       std::to_string(value.size()) + " given",
                   EINVAL);
    }
    // One value: the same on every CPU, each slot padded to 8 bytes as the kernel expects.
    replicated.assign(info_.raw_value_size(), std::byte{0});
    const std::size_t stride = round_up8(info_.value_size);
    for (std::uint32_t cpu = 0; cpu < info_.ncpus; ++cpu) {
      std::memcpy(replicated.data() + cpu * stride, value.data(), value.size());
    }
    data = replicated.data();
  }
  if (bpf_map_update_elem(fd(), key_ptr(key), data, flags) != 0) {
    const int err = errno;
    std::string why;
    if (err == E2BIG) why = " (map is full: " + std::to_string(info_.max_entries) + " entries)";
    if (err == EEXIST) why = " (key exists and BPF_NOEXIST was given)";
    if (err == ENOENT) why = " (key absent and BPF_EXIST was given)";
    return Error(err == ENOENT ? ErrorKind::kNotFound : ErrorKind::kMap,
                 "map '" + info_.name + "': update failed" + why, err);
  }
  return ok();
}

Status BpfMap::remove(std::span<const std::byte> key) const {
  TH_TRY(check_key(key, "delete"));
  if (bpf_map_delete_elem(fd(), key_ptr(key)) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      return Error(ErrorKind::kNotFound, "map '" + info_.name + "': no such key", err);
    }
    std::string why;
    if (err == EINVAL &&
        (info_.type == BPF_MAP_TYPE_ARRAY || info_.type == BPF_MAP_TYPE_PERCPU_ARRAY)) {
      why = " (array map elements cannot be deleted; write zeros instead)";
    }
    return Error(ErrorKind::kMap, "map '" + info_.name + "': delete failed" + why, err);
  }
  return ok();
}

Status BpfMap::next_key(std::span<const std::byte> key, std::span<std::byte> next) const {
  if (!key.empty()) TH_TRY(check_key(key, "next_key"));
  if (next.size() != info_.key_size) {
    return Error(ErrorKind::kMap,
                 "map '" + info_.name +
                     "' next_key: key buffer size mismatch: " + sizes(info_.key_size, next.size()),
                 EINVAL);
  }
  if (bpf_map_get_next_key(fd(), key_ptr(key), next.data()) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      return Error(ErrorKind::kNotFound, "map '" + info_.name + "': no more keys", err);
    }
    return Error(ErrorKind::kMap, "map '" + info_.name + "': next_key failed", err);
  }
  return ok();
}

Status BpfMap::for_each(
    const std::function<bool(std::span<const std::byte>, std::span<const std::byte>)>& fn,
    PerCpu mode) const {
  std::vector<std::byte> key(info_.key_size);
  std::vector<std::byte> next(info_.key_size);
  const std::size_t value_bytes =
      info_.per_cpu && mode == PerCpu::kRaw ? info_.raw_value_size() : info_.value_size;
  std::vector<std::byte> value(value_bytes);
  bool first = true;
  // Deleting keys concurrently can make a hash map restart iteration from its first key;
  // the bound keeps a walk finite whatever other writers do.
  const std::size_t bound = 4 * static_cast<std::size_t>(info_.max_entries) + 16;
  for (std::size_t n = 0; n < bound; ++n) {
    auto st =
        next_key(first ? std::span<const std::byte>() : std::span<const std::byte>(key), next);
    if (!st.ok()) {
      if (st.error().kind() == ErrorKind::kNotFound) return ok();
      return st;
    }
    first = false;
    key.swap(next);
    auto got = lookup(key, value, mode);
    if (!got.ok()) {
      if (got.error().kind() == ErrorKind::kNotFound) continue;  // deleted meanwhile
      return got;
    }
    if (!fn(key, value)) return ok();
  }
  return ok();
}

Status MapRegistry::register_object(const BpfObject& object) {
  if (!object.loaded()) {
    return Error(ErrorKind::kInvalidArgument,
                 "BPF object '" + object.name() + "' of plugin " + object.owner() +
                     " is not loaded: its maps do not exist yet",
                 EINVAL);
  }
  const int possible = libbpf_num_possible_cpus();
  if (possible <= 0) {
    return Error(ErrorKind::kInternal, "cannot count the possible CPUs", -possible);
  }
  std::vector<MapRef> entries;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object.raw()) {
    if (bpf_map__is_internal(map)) continue;  // .rodata/.data/.bss/.kconfig: see header
    MapInfo info;
    info.map_name = bpf_map__name(map);
    info.owner = object.owner();
    info.name = info.owner + "/" + info.map_name;
    info.type = static_cast<std::uint32_t>(bpf_map__type(map));
    info.key_size = bpf_map__key_size(map);
    info.value_size = bpf_map__value_size(map);
    info.max_entries = bpf_map__max_entries(map);
    info.per_cpu = is_per_cpu_map_type(info.type);
    info.ncpus = static_cast<std::uint32_t>(possible);
    const int fd = bpf_map__fd(map);
    if (fd < 0) {
      return Error(ErrorKind::kInternal, "map '" + info.name + "' has no fd after load", EBADF);
    }
    UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!dup) {
      return Error(ErrorKind::kInternal, "cannot duplicate the fd of map '" + info.name + "'",
                   errno);
    }
    entries.push_back(std::make_shared<const BpfMap>(std::move(info), std::move(dup)));
  }
  std::unique_lock lock(mu_);
  for (const auto& e : entries) {
    if (maps_.count(e->name()) != 0) {
      return Error(ErrorKind::kInvalidArgument,
                   "map name '" + e->name() +
                       "' is already registered: give the map (or the "
                       "plugin) another name",
                   EEXIST);
    }
  }
  for (auto& e : entries) maps_.emplace(e->name(), std::move(e));
  return ok();
}

Result<MapRef> MapRegistry::find(std::string_view name) const {
  std::shared_lock lock(mu_);
  if (auto it = maps_.find(name); it != maps_.end()) return it->second;
  const auto slash = name.find('/');
  const std::string_view owner = slash == std::string_view::npos ? "" : name.substr(0, slash);
  std::string known;
  for (const auto& [key, ref] : maps_) {
    if (!owner.empty() && ref->info().owner != owner) continue;
    if (!known.empty()) known += ", ";
    known += key;
  }
  std::string msg = "no map named '" + std::string(name) + "'";
  if (slash == std::string_view::npos) msg += " (map names are \"plugin/map\")";
  msg += known.empty() ? std::string("; no maps are registered") +
                             (owner.empty() ? "" : " for plugin " + std::string(owner))
                       : "; known: " + known;
  return Error(ErrorKind::kNotFound, std::move(msg), ENOENT);
}

std::vector<MapRef> MapRegistry::list() const {
  std::shared_lock lock(mu_);
  std::vector<MapRef> out;
  out.reserve(maps_.size());
  for (const auto& [name, ref] : maps_) out.push_back(ref);
  return out;
}

std::vector<MapRef> MapRegistry::list_owner(std::string_view owner) const {
  std::shared_lock lock(mu_);
  std::vector<MapRef> out;
  for (const auto& [name, ref] : maps_) {
    if (ref->info().owner == owner) out.push_back(ref);
  }
  return out;
}

void MapRegistry::remove_owner(std::string_view owner) {
  std::unique_lock lock(mu_);
  std::erase_if(maps_, [&](const auto& entry) { return entry.second->info().owner == owner; });
}

}  // namespace tracehost::host
