// Turns sampled instruction pointers into function names for cpu_profile.
// Kernel addresses resolve through /proc/kallsyms; user addresses through /proc/PID/maps and the
// .symtab/.dynsym of each mapped ELF file (or /tmp/perf-PID.map for JIT code). Parsed ELF files
// are shared across processes, keyed by GNU build-id or (device, inode), so a busy machine does
// not re-parse libc every window. A frame that cannot be named is still returned, as
// "[unknown]" with its module and offset: samples are never dropped.
#pragma once

#include <sys/types.h>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tracehost::cpu_profile {

// One symbolised frame. `function` is "[unknown]" when no symbol covers the address; `offset`
// is then relative to the module (file offset for user code, the raw address for the kernel).
struct SymbolizedFrame {
  std::string function;
  std::string module;  // "[kernel]", "[ext4]", "libc.so.6", "[perf-map]", "[unknown]"
  std::uint64_t offset = 0;
  bool known = false;

  // "function+0x12" or "[unknown] (module+0x1234)"
  [[nodiscard]] std::string to_string() const;
};

// C++ demangling (abi::__cxa_demangle); returns the input unchanged when it is not mangled.
std::string demangle(std::string_view name);

// Address-sorted table of text symbols from /proc/kallsyms.
class KernelSymbols {
 public:
  // Reads "ADDR TYPE NAME [MODULE]" lines; keeps text symbols (t/T/w/W). Addresses that are all
  // zero (kptr_restrict without CAP_SYSLOG) leave the table empty.
  static KernelSymbols parse(std::istream& in);
  // Empty table when the file cannot be read.
  static KernelSymbols load(const std::filesystem::path& path = "/proc/kallsyms");

  [[nodiscard]] SymbolizedFrame lookup(std::uint64_t addr) const;
  [[nodiscard]] std::size_t size() const noexcept { return symbols_.size(); }
  [[nodiscard]] bool empty() const noexcept { return symbols_.empty(); }

 private:
  struct Symbol {
    std::uint64_t addr;
    std::string name;
    std::string module;  // "[kernel]" or "[ext4]"
  };
  std::vector<Symbol> symbols_;
};

// One line of /proc/PID/maps.
struct Mapping {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::uint64_t offset = 0;
  std::uint64_t dev_major = 0;
  std::uint64_t dev_minor = 0;
  std::uint64_t inode = 0;
  bool executable = false;
  std::string path;  // may be empty or "[vdso]", "[anon:...]"
};

std::vector<Mapping> parse_maps(std::istream& in);

// /tmp/perf-PID.map: "START SIZE name" with hex START and SIZE, one symbol per line.
class PerfMap {
 public:
  static PerfMap parse(std::istream& in);
  static std::optional<PerfMap> load(pid_t pid);

  [[nodiscard]] std::optional<SymbolizedFrame> lookup(std::uint64_t addr) const;
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

 private:
  struct Entry {
    std::uint64_t start;
    std::uint64_t size;
    std::string name;
  };
  std::vector<Entry> entries_;
};

// Function symbols of one ELF file plus its PT_LOAD layout, immutable once loaded.
class ElfSymbols {
 public:
  // nullptr when the file is missing or not an ELF file. A file without .symtab (stripped) also
  // takes the symbols of its separate debug file, <debug_root>/.build-id/xx/yyyy.debug, when
  // one with the same build-id exists (empty debug_root: don't look).
  static std::shared_ptr<const ElfSymbols> load(
      const std::filesystem::path& path,
      const std::filesystem::path& debug_root = kDefaultDebugRoot);
  static constexpr const char* kDefaultDebugRoot = "/usr/lib/debug";
  // Only the NT_GNU_BUILD_ID note, hex; empty when absent or unreadable.
  static std::string read_build_id(const std::filesystem::path& path);

  // File offset → link-time virtual address through the PT_LOAD segments.
  [[nodiscard]] std::optional<std::uint64_t> file_offset_to_vaddr(std::uint64_t off) const;
  // Nearest function symbol at or below vaddr (within its size when it has one);
  // the name is already demangled.
  [[nodiscard]] std::optional<std::pair<std::string, std::uint64_t>> lookup(
      std::uint64_t vaddr) const;

  [[nodiscard]] const std::string& build_id() const noexcept { return build_id_; }
  // The separate debug file whose symbols were added; empty when none was used.
  [[nodiscard]] const std::filesystem::path& debug_file() const noexcept { return debug_file_; }
  [[nodiscard]] std::size_t symbol_count() const noexcept { return symbols_.size(); }

 private:
  struct Symbol {
    std::uint64_t addr;
    std::uint64_t size;
    std::string name;
  };
  struct Segment {
    std::uint64_t offset;
    std::uint64_t vaddr;
    std::uint64_t filesz;
  };
  std::vector<Symbol> symbols_;
  std::vector<Segment> segments_;
  std::string build_id_;
  std::filesystem::path debug_file_;
};

// Thread-safe. Keeps per-pid snapshots (mappings + their ELF tables + perf map) so processes
// that exit before their samples are drained still get named frames.
class Symbolizer {
 public:
  explicit Symbolizer(std::filesystem::path proc_root = "/proc",
                      std::filesystem::path debug_root = ElfSymbols::kDefaultDebugRoot);

  // Loads /proc/kallsyms (again); returns the number of kernel symbols.
  std::size_t load_kernel_symbols();
  void set_kernel_symbols(KernelSymbols symbols);

  // Snapshots pid's maps and opens the ELF files they name. Returns false when the process is
  // gone (an earlier snapshot, if any, is kept). Call while the process lives; calling again
  // refreshes the snapshot (already-parsed files come from the cache).
  bool remember(pid_t pid);
  // Installs a snapshot built from given mappings (tests, or maps read elsewhere).
  void remember(pid_t pid, std::vector<Mapping> mappings);
  void forget(pid_t pid);
  [[nodiscard]] bool knows(pid_t pid) const;

  [[nodiscard]] SymbolizedFrame symbolize_kernel(std::uint64_t addr) const;
  // Unknown pids are snapshotted on first use; an address no mapping covers re-reads the maps
  // of a live process (dlopen, JIT) at most once per kRefreshInterval. Never fails: falls back
  // to "[unknown]" with the module and offset.
  SymbolizedFrame symbolize_user(pid_t pid, std::uint64_t addr);
  static constexpr std::chrono::milliseconds kRefreshInterval{1000};

  // Number of ELF files whose symbol tables were actually parsed (cache misses).
  [[nodiscard]] std::size_t elf_parse_count() const;
  // Number of times a mapping was served from the cache (by inode or build-id).
  [[nodiscard]] std::size_t elf_cache_hits() const;
  [[nodiscard]] std::size_t cached_elf_files() const;

 private:
  struct MappedObject {
    Mapping mapping;
    std::shared_ptr<const ElfSymbols> elf;  // nullptr: not an ELF file / unreadable
  };
  struct Process {
    std::vector<MappedObject> objects;  // sorted by start
    std::optional<PerfMap> perf_map;
    std::chrono::steady_clock::time_point taken;
  };
  using Clock = std::chrono::steady_clock;

  // Caller holds mutex_. `covered`: some mapping (or the perf map) contains addr.
  SymbolizedFrame resolve(const Process& proc, std::uint64_t addr, bool& covered) const;

  Process build_process(pid_t pid, std::vector<Mapping> mappings);
  std::shared_ptr<const ElfSymbols> open_elf(pid_t pid, const Mapping& m);

  std::filesystem::path proc_root_;
  std::filesystem::path debug_root_;
  mutable std::mutex mutex_;
  KernelSymbols kernel_;
  std::map<pid_t, Process> processes_;
  std::map<pid_t, Clock::time_point> failed_;  // pids whose maps could not be read, and when
  std::map<std::string, std::shared_ptr<const ElfSymbols>> by_file_id_;  // "dev:inode" or path
  std::map<std::string, std::shared_ptr<const ElfSymbols>> by_build_id_;
  std::size_t parse_count_ = 0;
  std::size_t cache_hits_ = 0;
};

}  // namespace tracehost::cpu_profile
