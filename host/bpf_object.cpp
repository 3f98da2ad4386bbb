#include "host/bpf_object.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>

#include <spdlog/spdlog.h>

#include "host/kernel_checks.hpp"
#include "host/unique_fd.hpp"

namespace tracehost::host {
namespace {

// While a load runs on this thread, libbpf's messages are also appended here so a failure can
// carry the verifier log. Thread-local: loads of different plugins may run concurrently.
thread_local std::string* t_capture = nullptr;

// Lines of the verifier log kept in a load error: enough for the rejected instruction and the
// register state leading to it, short enough to read in a terminal. The byte budget keeps the
// excerpt, with the context the error collects on its way, within a th_error's message
// (TH_ERROR_MESSAGE_MAX): verifier lines with register states run to hundreds of bytes.
constexpr std::size_t kLogTailLines = 60;
constexpr std::size_t kLogTailBytes = 3000;

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  const bool capture = t_capture != nullptr && level != LIBBPF_DEBUG;
  const bool log = spdlog::should_log(spdlog::level::debug);
  if (!capture && !log) return 0;

  va_list copy;
  va_copy(copy, args);
  char small[512];
  const int n = std::vsnprintf(small, sizeof(small), format, copy);
  va_end(copy);
  if (n < 0) return 0;
  std::string text;
  if (static_cast<std::size_t>(n) < sizeof(small)) {
    text.assign(small, static_cast<std::size_t>(n));
  } else {
    // The verifier log arrives as one message: format again into a buffer that fits it.
    text.resize(static_cast<std::size_t>(n) + 1);
    std::vsnprintf(text.data(), text.size(), format, args);
    text.resize(static_cast<std::size_t>(n));
  }
  if (capture) *t_capture += text;
  if (log) {
    std::string_view line = text;
    while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    spdlog::debug("{}", line);
  }
  return n;
}

// Sets t_capture for the scope of a load.
class LogCapture {
 public:
  LogCapture() : previous_(std::exchange(t_capture, &buffer_)) {}
  ~LogCapture() { t_capture = previous_; }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  [[nodiscard]] const std::string& text() const noexcept { return buffer_; }

 private:
  std::string buffer_;
  std::string* previous_;
};

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

// lines[from..] if they fit in max_lines and max_bytes, else (with keep_first, lines[from] and)
// "... (N lines omitted)" and as many of the last lines as fit, at least one
std::string join_tail(const std::vector<std::string_view>& lines, std::size_t from,
                      std::size_t max_lines, std::size_t max_bytes, bool keep_first) {
  std::string out;
  if (from >= lines.size()) return out;
  const std::size_t first_tail = keep_first ? from + 1 : from;
  std::size_t start = lines.size();
  std::size_t bytes = keep_first ? lines[from].size() + 1 : 0;
  while (start > first_tail && lines.size() - start < max_lines &&
         (start == lines.size() || bytes + lines[start - 1].size() + 1 <= max_bytes)) {
    bytes += lines[--start].size() + 1;
  }
  if (keep_first) {
    out += lines[from];
    out += '\n';
  }
  if (start > first_tail) {
    out += "... (" + std::to_string(start - first_tail) + " lines omitted)\n";
  }
  for (std::size_t i = start; i < lines.size(); ++i) {
    out += lines[i];
    out += '\n';
  }
  return out;
}

}  // namespace

std::string verifier_log_tail(std::string_view captured) {
  auto lines = split_lines(captured);
  // libbpf 1.1 suggests raising RLIMIT_MEMLOCK on any EPERM; on kernels >= 5.11 that is never
  // the cause and the host never touches the limit, so the hint only misleads.
  std::erase_if(lines, [](std::string_view l) { return l.find("ulimit -l") != l.npos; });
  for (std::size_t i = lines.size(); i-- > 0;) {
    if (lines[i].find("-- BEGIN PROG LOAD LOG --") != std::string_view::npos) {
      return join_tail(lines, i, kLogTailLines, kLogTailBytes, /*keep_first=*/true);
    }
  }
  return join_tail(lines, 0, 20, kLogTailBytes, /*keep_first=*/false);
}

void install_libbpf_logging() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(libbpf_print); });
}

BpfObject::BpfObject(std::string owner, std::string name, std::vector<std::byte> elf,
                     bpf_object* obj)
    : owner_(std::move(owner)), name_(std::move(name)), elf_(std::move(elf)), obj_(obj) {}

BpfObject::~BpfObject() {
  if (obj_ != nullptr) bpf_object__close(obj_);
}

BpfObject::BpfObject(BpfObject&& other) noexcept
    : owner_(std::move(other.owner_)),
      name_(std::move(other.name_)),
      elf_(std::move(other.elf_)),
      obj_(std::exchange(other.obj_, nullptr)),
      loaded_(std::exchange(other.loaded_, false)) {}

BpfObject& BpfObject::operator=(BpfObject&& other) noexcept {
  if (this != &other) {
    if (obj_ != nullptr) bpf_object__close(obj_);
    owner_ = std::move(other.owner_);
    name_ = std::move(other.name_);
    elf_ = std::move(other.elf_);
    obj_ = std::exchange(other.obj_, nullptr);
    loaded_ = std::exchange(other.loaded_, false);
  }
  return *this;
}

std::string BpfObject::where() const { return "plugin " + owner_ + ": BPF object " + name_; }

Result<std::unique_ptr<BpfObject>> BpfObject::make(std::string owner, std::string name,
                                                   std::span<const std::byte> elf) {
  install_libbpf_logging();
  const std::string where = "plugin " + owner + ": BPF object " + name;
  if (elf.empty()) {
    return Error(ErrorKind::kInvalidArgument, "no ELF bytes given", EINVAL, where);
  }
  std::vector<std::byte> bytes(elf.begin(), elf.end());
  bpf_object_open_opts opts;
  std::memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.object_name = name.c_str();
  LogCapture capture;
  bpf_object* obj = bpf_object__open_mem(bytes.data(), bytes.size(), &opts);
  if (obj == nullptr) {
    const int err = errno;
    std::string msg = "cannot open the BPF object (not a valid BPF ELF file?)";
    std::string tail = verifier_log_tail(capture.text());
    if (!tail.empty()) msg += ":\n" + tail;
    return Error(ErrorKind::kLoadFailed, std::move(msg), err, where);
  }
  return std::unique_ptr<BpfObject>(
      new BpfObject(std::move(owner), std::move(name), std::move(bytes), obj));
}

Status BpfObject::set_rodata(std::string_view variable, std::span<const std::byte> value) {
  const std::string var(variable);
  if (loaded_) {
    return Error(ErrorKind::kInvalidArgument,
                 "cannot set read-only variable '" + var +
                     "' after load: set .rodata variables between open and load",
                 EINVAL, where());
  }
  const btf* btf = bpf_object__btf(obj_);
  bpf_map* rodata = nullptr;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, obj_) {
    std::string_view map_name = bpf_map__name(map);
    if (bpf_map__is_internal(map) && map_name.ends_with(".rodata")) rodata = map;
  }
  const int sec_id = btf != nullptr ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
  if (rodata == nullptr || sec_id < 0) {
    return Error(ErrorKind::kInvalidArgument,
                 "cannot set '" + var +
                     "': the object has no .rodata section (declare it in the BPF source as "
                     "`const volatile <type> " +
                     var + " = <default>;`)",
                 ENOENT, where());
  }
  const btf_type* sec = btf__type_by_id(btf, static_cast<__u32>(sec_id));
  const btf_var_secinfo* info = btf_var_secinfos(sec);
  std::string known;
  for (int i = 0; i < btf_vlen(sec); ++i, ++info) {
    const btf_type* var_type = btf__type_by_id(btf, info->type);
    std::string_view var_name = btf__name_by_offset(btf, var_type->name_off);
    if (var_name != variable) {
      if (!known.empty()) known += ", ";
      known += var_name;
      continue;
    }
    if (info->size != value.size()) {
      return Error(ErrorKind::kInvalidArgument,
                   "read-only variable '" + var + "' is " + std::to_string(info->size) +
                       " bytes but " + std::to_string(value.size()) +
                       " bytes were given: pass a value of the variable's type",
                   EINVAL, where());
    }
    std::size_t size = 0;
    const void* initial = bpf_map__initial_value(rodata, &size);
    if (initial == nullptr || info->offset + info->size > size) {
      return Error(ErrorKind::kInternal,
                   "the .rodata map's initial value does not cover variable '" + var + "'", EINVAL,
                   where());
    }
    // set_initial_value copies a whole image; patch our variable into a copy of the current one.
    std::vector<std::byte> image(size);
    std::memcpy(image.data(), initial, size);
    std::memcpy(image.data() + info->offset, value.data(), value.size());
    if (int err = bpf_map__set_initial_value(rodata, image.data(), image.size()); err != 0) {
      return Error(ErrorKind::kInternal, "cannot set the .rodata initial value", -err, where());
    }
    return ok();
  }
  return Error(ErrorKind::kInvalidArgument,
               "no read-only variable '" + var +
                   "' in .rodata (known: " + (known.empty() ? std::string("none") : known) + ")",
               ENOENT, where());
}

Status BpfObject::set_map_max_entries(std::string_view map_name, std::uint32_t max_entries) {
  if (loaded_) {
    return Error(ErrorKind::kInvalidArgument,
                 "cannot resize map '" + std::string(map_name) + "' after load", EINVAL, where());
  }
  TH_ASSIGN_OR_RETURN(bpf_map * m, map(map_name));
  if (bpf_map__type(m) == BPF_MAP_TYPE_RINGBUF) {
    // the kernel wants a power-of-two multiple of the page size; say so before load does
    const auto page = static_cast<std::uint32_t>(::sysconf(_SC_PAGESIZE));
    if (max_entries < page || (max_entries & (max_entries - 1)) != 0) {
      return Error(ErrorKind::kInvalidArgument,
                   "ring buffer '" + std::string(map_name) + "' size " +
                       std::to_string(max_entries) + " must be a power of two and at least the " +
                       "page size (" + std::to_string(page) + " bytes)",
                   EINVAL, where());
    }
  }
  if (int err = bpf_map__set_max_entries(m, max_entries); err != 0) {
    return Error(ErrorKind::kInvalidArgument,
                 "cannot set max_entries of map '" + std::string(map_name) + "' to " +
                     std::to_string(max_entries),
                 -err, where());
  }
  return ok();
}

Status BpfObject::set_autoload(std::string_view program_name, bool autoload) {
  if (loaded_) {
    return Error(ErrorKind::kInvalidArgument,
                 "cannot change autoload of program '" + std::string(program_name) + "' after load",
                 EINVAL, where());
  }
  TH_ASSIGN_OR_RETURN(bpf_program * prog, program(program_name));
  if (int err = bpf_program__set_autoload(prog, autoload); err != 0) {
    return Error(ErrorKind::kInvalidArgument,
                 "cannot change autoload of program '" + std::string(program_name) + "'", -err,
                 where());
  }
  return ok();
}

Status BpfObject::load() {
  if (loaded_) {
    return Error(ErrorKind::kInvalidArgument, "already loaded", EINVAL, where());
  }
  int err = 0;
  std::string log;
  {
    LogCapture capture;
    err = bpf_object__load(obj_);
    if (err != 0) log = verifier_log_tail(capture.text());
  }
  if (err == 0) {
    loaded_ = true;
    return ok();
  }
  const int sys_errno = -err;
  std::string msg;
  ErrorKind kind = ErrorKind::kLoadFailed;
  if (sys_errno == EPERM) {
    // EPERM is the kernel's answer both to missing capabilities and to program types it
    // refuses (fentry/fexit here, lockdown); say which it is.
    bool tracing_fentry = false;
    bpf_program* prog = nullptr;
    bpf_object__for_each_program(prog, obj_) {
      if (!bpf_program__autoload(prog)) continue;
      const auto type = bpf_program__expected_attach_type(prog);
      if (bpf_program__type(prog) == BPF_PROG_TYPE_TRACING &&
          (type == BPF_TRACE_FENTRY || type == BPF_TRACE_FEXIT || type == BPF_MODIFY_RETURN)) {
        tracing_fentry = true;
      }
    }
    if (auto priv = check_bpf_privileges(); !priv.ok()) {
      kind = ErrorKind::kPermission;
      msg = "the kernel refused to load the object (EPERM): " + priv.error().message();
    } else if (tracing_fentry) {
      kind = ErrorKind::kKernelIncompatible;
      msg =
          "the kernel refused an fentry/fexit program (EPERM): this kernel does not allow "
          "fentry/fexit; use tp_btf or raw_tp programs instead";
    } else {
      kind = ErrorKind::kPermission;
      msg =
          "the kernel refused to load the object (EPERM) although this process has "
          "CAP_BPF/CAP_PERFMON or CAP_SYS_ADMIN (kernel lockdown or an LSM policy?)";
    }
  } else {
    msg = std::string("loading failed (") + std::strerror(sys_errno) + ")";
    const auto begin = log.find("-- BEGIN PROG LOAD LOG --");
    const auto quote = log.rfind("prog '", begin);
    if (begin != std::string::npos && quote != std::string::npos) {
      const auto end = log.find('\'', quote + 6);
      msg +=
          ": the kernel verifier rejected program '" + log.substr(quote + 6, end - quote - 6) + "'";
    }
  }
  while (!log.empty() && log.back() == '\n') log.pop_back();
  if (!log.empty()) msg += "; libbpf/verifier log:\n" + log;
  return Error(kind, std::move(msg), sys_errno, where());
}

Status BpfObject::run_iterator(
    std::string_view program_name,
    const std::function<void(std::span<const std::byte>)>& output) const {
  const std::string what = "iterator '" + std::string(program_name) + "'";
  if (!loaded_) {
    return Error(ErrorKind::kInvalidArgument, "cannot run " + what + " before load", EINVAL,
                 where());
  }
  TH_ASSIGN_OR_RETURN(bpf_program * prog, program(program_name));
  if (bpf_program__type(prog) != BPF_PROG_TYPE_TRACING ||
      bpf_program__expected_attach_type(prog) != BPF_TRACE_ITER) {
    return Error(ErrorKind::kInvalidArgument,
                 "program '" + std::string(program_name) + "' (section '" +
                     bpf_program__section_name(prog) +
                     "') is not an iterator; iterators are SEC(\"iter/<target>\")",
                 EINVAL, where());
  }
  if (bpf_program__fd(prog) < 0) {
    return Error(ErrorKind::kInvalidArgument,
                 "cannot run " + what + ": it was not loaded (autoload is off)", EINVAL, where());
  }
  auto refused = [&](std::string step, int err) {
    return Error(attach_error_kind(err),
                 "cannot run " + what + ": " + step + " failed: " + std::strerror(err), err,
                 where());
  };
  std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)> link(
      bpf_program__attach_iter(prog, nullptr), &bpf_link__destroy);
  if (!link) return refused("attaching it", errno);
  UniqueFd iter(bpf_iter_create(bpf_link__fd(link.get())));
  if (!iter) return refused("creating it", errno);
  std::array<std::byte, 16384> buf{};
  for (;;) {
    const ssize_t n = ::read(iter.get(), buf.data(), buf.size());
    if (n == 0) return ok();
    if (n < 0) {
      if (errno == EINTR) continue;
      // EAGAIN: the program asked for a restart (it never does for us); anything else is the
      // program's or the kernel's error
      return refused("reading it", errno);
    }
    if (output) output(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n)));
  }
}

Result<bpf_program*> BpfObject::program(std::string_view name) const {
  bpf_program* prog = nullptr;
  std::string known;
  bpf_object__for_each_program(prog, obj_) {
    if (bpf_program__name(prog) == name) return prog;
    if (!known.empty()) known += ", ";
    known += bpf_program__name(prog);
  }
  return Error(ErrorKind::kNotFound,
               "no program named '" + std::string(name) +
                   "' (programs: " + (known.empty() ? std::string("none") : known) + ")",
               ENOENT, where());
}

Result<bpf_map*> BpfObject::map(std::string_view name) const {
  bpf_map* m = nullptr;
  std::string known;
  bpf_object__for_each_map(m, obj_) {
    if (bpf_map__name(m) == name) return m;
    if (bpf_map__is_internal(m)) continue;
    if (!known.empty()) known += ", ";
    known += bpf_map__name(m);
  }
  return Error(ErrorKind::kNotFound,
               "no map named '" + std::string(name) +
                   "' (maps: " + (known.empty() ? std::string("none") : known) + ")",
               ENOENT, where());
}

std::vector<ProgramRef> BpfObject::programs() const {
  std::vector<ProgramRef> out;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, obj_) {
    const int fd = loaded_ ? bpf_program__fd(prog) : -1;
    out.push_back({bpf_program__name(prog), bpf_program__section_name(prog), fd < 0 ? -1 : fd});
  }
  return out;
}

std::vector<std::string> BpfObject::map_names() const {
  std::vector<std::string> out;
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, obj_) { out.emplace_back(bpf_map__name(m)); }
  return out;
}

}  // namespace tracehost::host
