// BpfObject: the one owner of a libbpf bpf_object opened from ELF bytes a plugin ships.
//
// Lifecycle: make() (opened, not loaded) → set_rodata / set_map_max_entries / set_autoload →
// load() → programs and maps usable (attach through ProbeSet, register with MapRegistry).
// Destroying the object closes its programs and maps; links made from its programs must be
// destroyed first (ProbeSet::detach_object / detach_all) — the host's shutdown order does so.
//
// Not thread-safe: one thread at a time per object (the host serialises calls per plugin).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tracehost/result.hpp"

struct bpf_object;
struct bpf_program;
struct bpf_map;

namespace tracehost::host {

// Routes libbpf's print callback to spdlog (debug level, prefixed "libbpf: ") and, during
// BpfObject::load() on the calling thread, into a capture buffer for the verifier log.
// Idempotent; BpfObject::make() calls it. Call it early if other code uses libbpf first.
void install_libbpf_logging();

// The excerpt of captured libbpf output a load error carries: from the last
// "-- BEGIN PROG LOAD LOG --" (the rejected program's verifier log) to the end, at most ~60
// lines; without a verifier log, libbpf's last 20 lines. Exposed for unit tests.
std::string verifier_log_tail(std::string_view captured);

// The kind of error for a kernel refusal (errno) to attach or run a program: kPermission for
// EPERM/EACCES, else kAttachFailed.
inline ErrorKind attach_error_kind(int err) {
  return (err == EPERM || err == EACCES) ? ErrorKind::kPermission : ErrorKind::kAttachFailed;
}

// A program of a loaded object: what attach and statistics need.
struct ProgramRef {
  std::string name;
  std::string section;  // e.g. "tp_btf/sys_enter"
  int fd = -1;          // -1 until loaded, or when autoload was off
};

class BpfObject {
 public:
  // Opens (does not load) the object: the bytes are copied, `name` becomes the object name
  // (libbpf's object_name) and `owner` (the plugin name) prefixes registry names and errors.
  // kLoadFailed for malformed ELF.
  static Result<std::unique_ptr<BpfObject>> make(std::string owner, std::string name,
                                                 std::span<const std::byte> elf);

  ~BpfObject();
  BpfObject(const BpfObject&) = delete;
  BpfObject& operator=(const BpfObject&) = delete;
  BpfObject(BpfObject&& other) noexcept;
  BpfObject& operator=(BpfObject&& other) noexcept;

  [[nodiscard]] const std::string& owner() const noexcept { return owner_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] bool loaded() const noexcept { return loaded_; }

  // Sets a `const volatile` global of .rodata before load. The variable is found through the
  // BTF DATASEC ".rodata"; `value.size()` must equal the variable's size.
  // kInvalidArgument: unknown variable (lists the known ones), size mismatch, already loaded.
  Status set_rodata(std::string_view variable, std::span<const std::byte> value);

  template <typename T>
  Status set_rodata_value(std::string_view variable, const T& value) {
    return set_rodata(variable, std::as_bytes(std::span<const T, 1>(&value, 1)));
  }

  // Before load only. kNotFound for an unknown map, kInvalidArgument after load.
  Status set_map_max_entries(std::string_view map, std::uint32_t max_entries);
  // Before load only. kNotFound for an unknown program.
  Status set_autoload(std::string_view program, bool autoload);

  // Loads every autoload program and creates the maps. On failure: kLoadFailed with the tail
  // of the verifier log (last ~60 lines) in the message, kPermission for EPERM/EACCES not
  // caused by the verifier. Once only.
  Status load();

  // Runs the iterator program `program_name` (SEC("iter/...")) once, start to end: creates a
  // link and an iterator, reads it to the end passing each chunk to `output` (may be empty),
  // closes both. After load only. kInvalidArgument for a program that is not an iterator,
  // kAttachFailed / kPermission when the kernel refuses the iterator or a read fails.
  Status run_iterator(std::string_view program_name,
                      const std::function<void(std::span<const std::byte>)>& output) const;

  // Lookups by name (programs by function name, maps by map name). kNotFound lists the names
  // that exist. The pointers are owned by this object.
  [[nodiscard]] Result<bpf_program*> program(std::string_view name) const;
  [[nodiscard]] Result<bpf_map*> map(std::string_view name) const;

  [[nodiscard]] std::vector<ProgramRef> programs() const;
  [[nodiscard]] std::vector<std::string> map_names() const;  // includes internal maps

  // The libbpf object, for code that needs libbpf directly (ring_buffer, attach). Owned here.
  [[nodiscard]] bpf_object* raw() const noexcept { return obj_; }

 private:
  BpfObject(std::string owner, std::string name, std::vector<std::byte> elf, bpf_object* obj);
  [[nodiscard]] std::string where() const;  // "plugin P: BPF object N"

  std::string owner_;
  std::string name_;
  // libbpf keeps referring to the ELF buffer until load (and re-reads it on failure paths), so
  // the object owns its copy; moving the vector keeps its heap buffer in place.
  std::vector<std::byte> elf_;
  bpf_object* obj_ = nullptr;
  bool loaded_ = false;
};

}  // namespace tracehost::host
