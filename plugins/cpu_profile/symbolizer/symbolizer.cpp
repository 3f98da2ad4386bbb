#include "symbolizer/symbolizer.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>

#include <cxxabi.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tracehost::cpu_profile {
namespace {

constexpr std::string_view kUnknown = "[unknown]";

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool parse_hex(std::string_view s, std::uint64_t& out) {
  if (s.starts_with("0x") || s.starts_with("0X")) s.remove_prefix(2);
  if (s.empty()) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return false;
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  out = v;
  return true;
}

std::string basename_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// libelf wants its version negotiated once per process before elf_begin.
bool elf_ready() {
  static const bool ok = elf_version(EV_CURRENT) != EV_NONE;
  return ok;
}

// Owns the fd and the Elf* for the duration of one parse.
class ElfFile {
 public:
  explicit ElfFile(const std::filesystem::path& path) {
    if (!elf_ready()) return;
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return;
    elf_ = elf_begin(fd_, ELF_C_READ, nullptr);
    if (elf_ != nullptr && elf_kind(elf_) != ELF_K_ELF) {
      elf_end(elf_);
      elf_ = nullptr;
    }
  }
  ~ElfFile() {
    if (elf_ != nullptr) elf_end(elf_);
    if (fd_ >= 0) ::close(fd_);
  }
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;
  [[nodiscard]] Elf* get() const noexcept { return elf_; }

 private:
  int fd_ = -1;
  Elf* elf_ = nullptr;
};

std::string build_id_of(Elf* elf) {
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr || shdr.sh_type != SHT_NOTE) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (data == nullptr) continue;
    std::size_t off = 0;
    GElf_Nhdr nhdr;
    std::size_t name_off = 0;
    std::size_t desc_off = 0;
    while ((off = gelf_getnote(data, off, &nhdr, &name_off, &desc_off)) > 0) {
      const auto* base = static_cast<const char*>(data->d_buf);
      if (nhdr.n_type == NT_GNU_BUILD_ID && nhdr.n_namesz == 4 &&
          std::memcmp(base + name_off, "GNU", 4) == 0) {
        std::string id;
        for (std::size_t i = 0; i < nhdr.n_descsz; ++i) {
          char b[3];
          std::snprintf(b, sizeof b, "%02x",
                        static_cast<unsigned>(static_cast<unsigned char>(base[desc_off + i])));
          id += b;
        }
        return id;
      }
    }
  }
  return {};
}

}  // namespace

std::string SymbolizedFrame::to_string() const {
  if (known) return offset == 0 ? function : function + "+" + hex(offset);
  return std::string(kUnknown) + " (" + module + "+" + hex(offset) + ")";
}

std::string demangle(std::string_view name) {
  if (!name.starts_with("_Z")) return std::string(name);
  std::string input(name);
  int status = 0;
  char* out = abi::__cxa_demangle(input.c_str(), nullptr, nullptr, &status);
  if (status != 0 || out == nullptr) {
    std::free(out);
    return input;
  }
  std::string result(out);
  std::free(out);
  return result;
}

// ---------------------------------------------------------------- kernel

KernelSymbols KernelSymbols::parse(std::istream& in) {
  // /proc/kallsyms has ~100-200k lines: scan it as one buffer (no stream per line)
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  KernelSymbols table;
  table.symbols_.reserve(text.size() / 40);
  bool any_nonzero = false;
  std::string_view rest(text);
  // plain loops: find_first_of(" \t") calls memchr per character
  auto next_word = [](std::string_view& line) {
    std::size_t i = 0;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    std::string_view word = line.substr(i, j - i);
    line.remove_prefix(j);
    return word;
  };
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    // "ADDR TYPE NAME [MODULE]"
    const std::string_view addr_s = next_word(line);
    const std::string_view type = next_word(line);
    const std::string_view name = next_word(line);
    if (name.empty() || type.size() != 1) continue;
    const char t = type[0];
    if (t != 't' && t != 'T' && t != 'w' && t != 'W') continue;
    std::uint64_t addr = 0;
    if (!parse_hex(addr_s, addr)) continue;
    if (addr != 0) any_nonzero = true;
    const std::string_view module = next_word(line);  // optional "[ext4]"
    table.symbols_.push_back(
        {addr, std::string(name), module.empty() ? std::string("[kernel]") : std::string(module)});
  }
  // All-zero addresses mean kptr_restrict hid them: such a table would name every frame wrong.
  if (!any_nonzero) table.symbols_.clear();
  auto by_addr = [](const Symbol& a, const Symbol& b) { return a.addr < b.addr; };
  // the kernel's own symbols come sorted; module symbols follow: often nothing to do
  if (!std::is_sorted(table.symbols_.begin(), table.symbols_.end(), by_addr)) {
    std::stable_sort(table.symbols_.begin(), table.symbols_.end(), by_addr);
  }
  return table;
}

KernelSymbols KernelSymbols::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return {};
  return parse(in);
}

SymbolizedFrame KernelSymbols::lookup(std::uint64_t addr) const {
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), addr,
                             [](std::uint64_t a, const Symbol& s) { return a < s.addr; });
  if (it == symbols_.begin()) return SymbolizedFrame{std::string(kUnknown), "[kernel]", addr, false};
  --it;
  return SymbolizedFrame{it->name, it->module, addr - it->addr, true};
}

// ---------------------------------------------------------------- maps

std::vector<Mapping> parse_maps(std::istream& in) {
  std::vector<Mapping> out;
  std::string line;
  while (std::getline(in, line)) {
    // start-end perms offset major:minor inode [path]
    std::istringstream ls(line);
    std::string range, perms, offset, dev, inode;
    if (!(ls >> range >> perms >> offset >> dev >> inode)) continue;
    Mapping m;
    auto dash = range.find('-');
    auto colon = dev.find(':');
    if (dash == std::string::npos || colon == std::string::npos) continue;
    if (!parse_hex(std::string_view(range).substr(0, dash), m.start) ||
        !parse_hex(std::string_view(range).substr(dash + 1), m.end) ||
        !parse_hex(offset, m.offset) ||
        !parse_hex(std::string_view(dev).substr(0, colon), m.dev_major) ||
        !parse_hex(std::string_view(dev).substr(colon + 1), m.dev_minor)) {
      continue;
    }
    m.inode = std::strtoull(inode.c_str(), nullptr, 10);
    m.executable = perms.size() >= 3 && perms[2] == 'x';
    std::string rest;
    std::getline(ls, rest);
    auto first = rest.find_first_not_of(" \t");
    m.path = first == std::string::npos ? std::string() : rest.substr(first);
    out.push_back(std::move(m));
  }
  return out;
}

// ---------------------------------------------------------------- perf map

PerfMap PerfMap::parse(std::istream& in) {
  PerfMap map;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string start_s, size_s;
    if (!(ls >> start_s >> size_s)) continue;
    std::string name;
    std::getline(ls, name);
    auto first = name.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    Entry e{0, 0, name.substr(first)};
    if (!parse_hex(start_s, e.start) || !parse_hex(size_s, e.size)) continue;
    map.entries_.push_back(std::move(e));
  }
  std::stable_sort(map.entries_.begin(), map.entries_.end(),
                   [](const Entry& a, const Entry& b) { return a.start < b.start; });
  return map;
}

std::optional<PerfMap> PerfMap::load(pid_t pid) {
  std::ifstream in("/tmp/perf-" + std::to_string(pid) + ".map");
  if (!in) return std::nullopt;
  return parse(in);
}

std::optional<SymbolizedFrame> PerfMap::lookup(std::uint64_t addr) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), addr,
                             [](std::uint64_t a, const Entry& e) { return a < e.start; });
  // Entries may nest (a stub inside a larger region): the closest start that covers addr wins.
  for (int scanned = 0; it != entries_.begin() && scanned < 64; ++scanned) {
    --it;
    if (addr < it->start + it->size) return SymbolizedFrame{it->name, "[perf-map]", addr - it->start, true};
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- ELF

std::string ElfSymbols::read_build_id(const std::filesystem::path& path) {
  ElfFile file(path);
  return file.get() == nullptr ? std::string() : build_id_of(file.get());
}

namespace {

// Appends the function symbols of `elf`'s .symtab and .dynsym; true when it has a .symtab.
template <typename Symbol>
bool read_function_symbols(Elf* elf, std::vector<Symbol>& out) {
  bool has_symtab = false;
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) continue;
    if (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM) continue;
    // a separate debug file keeps the section headers of stripped sections, without data
    if (shdr.sh_type == SHT_SYMTAB && shdr.sh_size > 0) has_symtab = true;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (data == nullptr || shdr.sh_entsize == 0) continue;
    const std::size_t count = shdr.sh_size / shdr.sh_entsize;
    for (std::size_t i = 0; i < count; ++i) {
      GElf_Sym sym;
      if (gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) continue;
      const int type = GELF_ST_TYPE(sym.st_info);
      if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF ||
          sym.st_value == 0) {
        continue;
      }
      const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
      if (name == nullptr || *name == '\0') continue;
      out.push_back({sym.st_value, sym.st_size, demangle(name)});
    }
  }
  return has_symtab;
}

}  // namespace

std::shared_ptr<const ElfSymbols> ElfSymbols::load(const std::filesystem::path& path,
                                                   const std::filesystem::path& debug_root) {
  ElfFile file(path);
  Elf* elf = file.get();
  if (elf == nullptr) return nullptr;
  auto result = std::make_shared<ElfSymbols>();
  result->build_id_ = build_id_of(elf);

  std::size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) == 0) {
    for (std::size_t i = 0; i < phnum; ++i) {
      GElf_Phdr ph;
      if (gelf_getphdr(elf, static_cast<int>(i), &ph) == nullptr || ph.p_type != PT_LOAD) continue;
      result->segments_.push_back({ph.p_offset, ph.p_vaddr, ph.p_filesz});
    }
  }

  const bool has_symtab = read_function_symbols(elf, result->symbols_);
  // A stripped file (only .dynsym, as distributions ship libraries): its full symbol table may
  // be in a separate debug file named by build-id (Debian's *-dbg / *-dbgsym packages), with
  // the same virtual addresses.
  if (!has_symtab && !result->build_id_.empty() && result->build_id_.size() > 2 &&
      !debug_root.empty()) {
    const auto debug_file = debug_root / ".build-id" / result->build_id_.substr(0, 2) /
                            (result->build_id_.substr(2) + ".debug");
    ElfFile debug(debug_file);
    if (debug.get() != nullptr && build_id_of(debug.get()) == result->build_id_) {
      read_function_symbols(debug.get(), result->symbols_);
      result->debug_file_ = debug_file;
    }
  }
  // .symtab and .dynsym repeat exported functions: keep one per address, preferring sized ones.
  std::sort(result->symbols_.begin(), result->symbols_.end(), [](const Symbol& a, const Symbol& b) {
    return a.addr != b.addr ? a.addr < b.addr : a.size > b.size;
  });
  result->symbols_.erase(
      std::unique(result->symbols_.begin(), result->symbols_.end(),
                  [](const Symbol& a, const Symbol& b) { return a.addr == b.addr; }),
      result->symbols_.end());
  return result;
}

std::optional<std::uint64_t> ElfSymbols::file_offset_to_vaddr(std::uint64_t off) const {
  for (const auto& s : segments_) {
    if (off >= s.offset && off < s.offset + s.filesz) return off - s.offset + s.vaddr;
  }
  return std::nullopt;
}

std::optional<std::pair<std::string, std::uint64_t>> ElfSymbols::lookup(std::uint64_t vaddr) const {
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), vaddr,
                             [](std::uint64_t a, const Symbol& s) { return a < s.addr; });
  if (it == symbols_.begin()) return std::nullopt;
  --it;
  // A sized symbol must cover the address: otherwise it lies in padding or an unnamed stub.
  if (it->size != 0 && vaddr >= it->addr + it->size) return std::nullopt;
  return std::make_pair(it->name, vaddr - it->addr);
}

// ---------------------------------------------------------------- Symbolizer

Symbolizer::Symbolizer(std::filesystem::path proc_root, std::filesystem::path debug_root)
    : proc_root_(std::move(proc_root)), debug_root_(std::move(debug_root)) {}

std::size_t Symbolizer::load_kernel_symbols() {
  auto table = KernelSymbols::load(proc_root_ / "kallsyms");
  std::lock_guard lock(mutex_);
  kernel_ = std::move(table);
  return kernel_.size();
}

void Symbolizer::set_kernel_symbols(KernelSymbols symbols) {
  std::lock_guard lock(mutex_);
  kernel_ = std::move(symbols);
}

SymbolizedFrame Symbolizer::symbolize_kernel(std::uint64_t addr) const {
  std::lock_guard lock(mutex_);
  return kernel_.lookup(addr);
}

std::shared_ptr<const ElfSymbols> Symbolizer::open_elf(pid_t pid, const Mapping& m) {
  if (m.path.empty() || m.path.front() != '/') return nullptr;  // anon, [vdso], [heap]...
  // Inside another mount namespace the path is only valid under /proc/PID/root.
  std::filesystem::path path = m.path;
  std::error_code ec;
  const auto in_root = proc_root_ / std::to_string(pid) / "root" / m.path.substr(1);
  if (std::filesystem::exists(in_root, ec)) path = in_root;

  std::string file_id;
  if (m.inode != 0) {
    file_id = std::to_string(m.dev_major) + ":" + std::to_string(m.dev_minor) + ":" +
              std::to_string(m.inode);
  } else {
    struct stat st {};
    file_id = ::stat(path.c_str(), &st) == 0
                  ? std::to_string(st.st_dev) + "#" + std::to_string(st.st_ino)
                  : "path:" + m.path;
  }
  if (auto it = by_file_id_.find(file_id); it != by_file_id_.end()) {
    ++cache_hits_;
    return it->second;
  }
  // Same binary under another inode (container layers, copies): the build-id is cheap to read.
  const std::string build_id = ElfSymbols::read_build_id(path);
  if (!build_id.empty()) {
    if (auto it = by_build_id_.find(build_id); it != by_build_id_.end()) {
      ++cache_hits_;
      by_file_id_[file_id] = it->second;
      return it->second;
    }
  }
  auto elf = ElfSymbols::load(path, debug_root_);
  ++parse_count_;
  by_file_id_[file_id] = elf;
  if (elf != nullptr && !elf->build_id().empty()) by_build_id_[elf->build_id()] = elf;
  return elf;
}

Symbolizer::Process Symbolizer::build_process(pid_t pid, std::vector<Mapping> mappings) {
  Process p;
  p.taken = Clock::now();
  std::sort(mappings.begin(), mappings.end(),
            [](const Mapping& a, const Mapping& b) { return a.start < b.start; });
  for (auto& m : mappings) {
    if (!m.executable) continue;  // samples only land in executable mappings
    auto elf = open_elf(pid, m);
    p.objects.push_back({std::move(m), std::move(elf)});
  }
  p.perf_map = PerfMap::load(pid);
  return p;
}

bool Symbolizer::remember(pid_t pid) {
  std::ifstream in(proc_root_ / std::to_string(pid) / "maps");
  if (!in) return false;
  auto mappings = parse_maps(in);
  if (mappings.empty()) return false;  // kernel thread or exited between open and read
  std::lock_guard lock(mutex_);
  processes_[pid] = build_process(pid, std::move(mappings));
  return true;
}

void Symbolizer::remember(pid_t pid, std::vector<Mapping> mappings) {
  std::lock_guard lock(mutex_);
  processes_[pid] = build_process(pid, std::move(mappings));
}

void Symbolizer::forget(pid_t pid) {
  std::lock_guard lock(mutex_);
  processes_.erase(pid);
}

bool Symbolizer::knows(pid_t pid) const {
  std::lock_guard lock(mutex_);
  return processes_.contains(pid);
}

SymbolizedFrame Symbolizer::symbolize_user(pid_t pid, std::uint64_t addr) {
  const auto now = Clock::now();
  std::optional<SymbolizedFrame> previous;
  {
    std::lock_guard lock(mutex_);
    if (auto pit = processes_.find(pid); pit != processes_.end()) {
      bool covered = false;
      SymbolizedFrame f = resolve(pit->second, addr, covered);
      if (covered || now - pit->second.taken < kRefreshInterval) return f;
      previous = std::move(f);
    }
    // the process is gone (or unreadable) and was tried recently: no /proc read per frame
    if (auto fit = failed_.find(pid);
        fit != failed_.end() && now - fit->second < kRefreshInterval) {
      if (previous) return *previous;
      return SymbolizedFrame{std::string(kUnknown), std::string(kUnknown), addr, false};
    }
  }
  // First sight of the pid, or an address outside the snapshot: (re)read the live maps.
  const bool fresh = remember(pid);
  std::lock_guard lock(mutex_);
  if (!fresh) {
    if (failed_.size() > 4096) failed_.clear();  // bounded; entries only throttle re-reads
    failed_[pid] = now;
    if (previous) return *previous;
    return SymbolizedFrame{std::string(kUnknown), std::string(kUnknown), addr, false};
  }
  failed_.erase(pid);
  bool covered = false;
  return resolve(processes_.at(pid), addr, covered);
}

SymbolizedFrame Symbolizer::resolve(const Process& proc, std::uint64_t addr, bool& covered) const {
  covered = true;
  auto it =
      std::upper_bound(proc.objects.begin(), proc.objects.end(), addr,
                       [](std::uint64_t a, const MappedObject& o) { return a < o.mapping.start; });
  const Mapping* anon = nullptr;  // covering mapping without a file: [vdso], JIT arenas
  if (it != proc.objects.begin()) {
    --it;
    const Mapping& m = it->mapping;
    if (addr < m.end && (m.path.empty() || m.path.front() != '/')) anon = &m;
    if (addr < m.end && anon == nullptr) {
      const std::uint64_t file_off = addr - m.start + m.offset;
      if (it->elf != nullptr) {
        if (auto vaddr = it->elf->file_offset_to_vaddr(file_off)) {
          if (auto sym = it->elf->lookup(*vaddr)) {
            return SymbolizedFrame{std::move(sym->first), basename_of(m.path), sym->second, true};
          }
        }
      }
      return SymbolizedFrame{std::string(kUnknown), basename_of(m.path), file_off, false};
    }
  }
  // Anonymous executable memory: JIT code, named by the runtime's perf map if it writes one.
  if (proc.perf_map) {
    if (auto f = proc.perf_map->lookup(addr)) return *f;
  }
  if (anon != nullptr) {
    covered = false;  // the runtime may have written the perf map entry after the snapshot
    return SymbolizedFrame{std::string(kUnknown), anon->path.empty() ? "[anon]" : anon->path,
                 addr - anon->start, false};
  }
  covered = false;
  return SymbolizedFrame{std::string(kUnknown), std::string(kUnknown), addr, false};
}

std::size_t Symbolizer::elf_parse_count() const {
  std::lock_guard lock(mutex_);
  return parse_count_;
}

std::size_t Symbolizer::elf_cache_hits() const {
  std::lock_guard lock(mutex_);
  return cache_hits_;
}

std::size_t Symbolizer::cached_elf_files() const {
  std::lock_guard lock(mutex_);
  return by_file_id_.size();
}

}  // namespace tracehost::cpu_profile
