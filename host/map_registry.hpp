// MapRegistry: every map of every loaded BPF object, by name "plugin/map".
//
// Naming: "<owner>/<map name>" where owner is the plugin name. libbpf's internal maps for
// global variables (.rodata, .data, .bss, .kconfig) are NOT registered: their names are
// per object, not per plugin, and plugins set .rodata through BpfObject::set_rodata. Put
// values you want to read from user space into a named map.
//
// Lifetime: a registered map holds its own duplicate of the map fd, so a MapRef stays valid
// (and safe to read) even after its object is closed or remove_owner() ran; the kernel frees
// the map when the last reference goes. Thread-safe: the name table is under a shared_mutex,
// map operations are plain syscalls on the owned fd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "host/unique_fd.hpp"
#include "tracehost/result.hpp"

namespace tracehost::host {

class BpfObject;

// How a per-CPU value is read.
enum class PerCpu {
  kSum,  // value_size bytes: u64 words summed over CPUs (value_size % 8 == 0 required)
  kRaw,  // ncpus × round_up(value_size, 8) bytes, CPU 0 first
};

struct MapInfo {
  std::string name;  // "plugin/map"
  std::string owner;
  std::string map_name;
  std::uint32_t type = 0;  // enum bpf_map_type
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;  // per CPU for per-CPU maps
  std::uint32_t max_entries = 0;
  bool per_cpu = false;
  std::uint32_t ncpus = 1;  // libbpf_num_possible_cpus(); 1 for other maps' purposes

  // Bytes of a kRaw per-CPU value buffer: ncpus × round_up(value_size, 8).
  [[nodiscard]] std::size_t raw_value_size() const noexcept {
    return static_cast<std::size_t>(ncpus) * ((value_size + 7u) & ~7u);
  }
};

// Is this bpf_map_type per-CPU (PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH,
// PERCPU_CGROUP_STORAGE)?
bool is_per_cpu_map_type(std::uint32_t type) noexcept;

// Sums `ncpus` 8-byte-aligned slots of `value_size` bytes (u64 words) into `out`
// (value_size bytes). Exposed for unit tests and metric readers.
void sum_per_cpu(std::span<const std::byte> raw, std::uint32_t value_size, std::uint32_t ncpus,
                 std::span<std::byte> out);

// One registered map. Obtained from MapRegistry::find(); shared, immutable info.
class BpfMap {
 public:
  BpfMap(MapInfo info, UniqueFd fd);

  [[nodiscard]] const MapInfo& info() const noexcept { return info_; }
  [[nodiscard]] const std::string& name() const noexcept { return info_.name; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

  // kNotFound when the key is absent. Sizes are checked: kMap naming map, expected and given.
  Status lookup(std::span<const std::byte> key, std::span<std::byte> value,
                PerCpu mode = PerCpu::kSum) const;
  // flags: BPF_ANY / BPF_NOEXIST / BPF_EXIST. Per-CPU maps take raw_value_size() bytes, or
  // value_size bytes which are written to every CPU.
  Status update(std::span<const std::byte> key, std::span<const std::byte> value,
                std::uint64_t flags = 0) const;
  // kNotFound when the key is absent.
  Status remove(std::span<const std::byte> key) const;
  // key empty: first key. kNotFound after the last key (or for an empty map).
  Status next_key(std::span<const std::byte> key, std::span<std::byte> next) const;

  // Calls fn(key, value) for every entry (keys removed concurrently are skipped); fn returns
  // false to stop. Values are read as `mode` says.
  Status for_each(const std::function<bool(std::span<const std::byte> key,
                                           std::span<const std::byte> value)>& fn,
                  PerCpu mode = PerCpu::kSum) const;

  // Typed convenience: key and value of exact sizes.
  template <typename K, typename V>
  Status lookup_value(const K& key, V& value, PerCpu mode = PerCpu::kSum) const {
    return lookup(std::as_bytes(std::span<const K, 1>(&key, 1)),
                  std::as_writable_bytes(std::span<V, 1>(&value, 1)), mode);
  }
  template <typename K, typename V>
  Status update_value(const K& key, const V& value, std::uint64_t flags = 0) const {
    return update(std::as_bytes(std::span<const K, 1>(&key, 1)),
                  std::as_bytes(std::span<const V, 1>(&value, 1)), flags);
  }

 private:
  Status check_key(std::span<const std::byte> key, std::string_view op) const;

  MapInfo info_;
  UniqueFd fd_;
};

using MapRef = std::shared_ptr<const BpfMap>;

class MapRegistry {
 public:
  MapRegistry() = default;
  MapRegistry(const MapRegistry&) = delete;
  MapRegistry& operator=(const MapRegistry&) = delete;

  // Registers every non-internal map of a loaded object as "<owner>/<map>". A name already
  // taken is kInvalidArgument and nothing of this object is registered.
  Status register_object(const BpfObject& object);

  // "plugin/map". kNotFound lists the maps of that plugin (or all owners) that exist.
  [[nodiscard]] Result<MapRef> find(std::string_view name) const;

  // All maps, sorted by name; or those of one owner.
  [[nodiscard]] std::vector<MapRef> list() const;
  [[nodiscard]] std::vector<MapRef> list_owner(std::string_view owner) const;

  // Unregisters every map of a plugin. Outstanding MapRefs stay usable.
  void remove_owner(std::string_view owner);

 private:
  mutable std::shared_mutex mu_;
  std::map<std::string, MapRef, std::less<>> maps_;
};

}  // namespace tracehost::host
