#include "host/probes.hpp"

#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>
#include <utility>

#include "host/bpf_object.hpp"
#include "host/kernel_checks.hpp"
#include "host/unique_fd.hpp"

namespace tracehost::host {
namespace {

struct LinkDeleter {
  void operator()(bpf_link* link) const noexcept { bpf_link__destroy(link); }
};
// The one owner of an attachment. For perf_event links it also owns the perf event fd
// (libbpf closes it when the link is destroyed).
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

// Ids are unique across plugins so a log line naming a probe id is unambiguous.
std::atomic<ProbeId> g_next_probe_id{1};

constexpr std::string_view kNoKprobes =
    "this kernel has no kprobes (CONFIG_KPROBES is off: /sys/bus/event_source/devices/kprobe "
    "is missing); attach to a tracepoint, raw_tp or tp_btf instead";

bool is_fentry_like(const bpf_program* prog) {
  if (bpf_program__type(prog) != BPF_PROG_TYPE_TRACING) return false;
  const auto type = bpf_program__expected_attach_type(prog);
  return type == BPF_TRACE_FENTRY || type == BPF_TRACE_FEXIT || type == BPF_MODIFY_RETURN;
}

std::string describe_target(const AttachSpec& spec) {
  switch (spec.kind) {
    case AttachKind::kUprobe:
    case AttachKind::kUretprobe:
      if (!spec.symbol.empty()) {
        return spec.target + ":" + spec.symbol +
               (spec.offset != 0 ? "+" + std::to_string(spec.offset) : std::string());
      }
      return spec.target + ":" + std::to_string(spec.offset);
    case AttachKind::kPerfEvent:
      return spec.frequency != 0 ? "cpu-clock@" + std::to_string(spec.frequency) + "Hz"
                                 : "cpu-clock/" + std::to_string(spec.period) + "ns";
    default:
      return spec.target;
  }
}

}  // namespace

std::string_view to_string(AttachKind kind) noexcept {
  switch (kind) {
    case AttachKind::kTracepoint:
      return "tracepoint";
    case AttachKind::kRawTp:
      return "raw_tp";
    case AttachKind::kTpBtf:
      return "tp_btf";
    case AttachKind::kUprobe:
      return "uprobe";
    case AttachKind::kUretprobe:
      return "uretprobe";
    case AttachKind::kPerfEvent:
      return "perf_event";
    case AttachKind::kKprobe:
      return "kprobe";
    case AttachKind::kKretprobe:
      return "kretprobe";
  }
  return "unknown";
}

std::string_view to_string(ProbeState state) noexcept {
  switch (state) {
    case ProbeState::kDeclared:
      return "declared";
    case ProbeState::kAttached:
      return "attached";
    case ProbeState::kDetached:
      return "detached";
    case ProbeState::kFailed:
      return "failed";
    case ProbeState::kPaused:
      return "paused";
  }
  return "unknown";
}

AttachSpec AttachSpec::tracepoint(std::string category_and_name) {
  AttachSpec s;
  s.kind = AttachKind::kTracepoint;
  s.target = std::move(category_and_name);
  return s;
}
AttachSpec AttachSpec::raw_tp(std::string name) {
  AttachSpec s;
  s.kind = AttachKind::kRawTp;
  s.target = std::move(name);
  return s;
}
AttachSpec AttachSpec::tp_btf(std::string name) {
  AttachSpec s;
  s.kind = AttachKind::kTpBtf;
  s.target = std::move(name);
  return s;
}
AttachSpec AttachSpec::uprobe(std::string binary, std::string symbol, int pid, bool retprobe) {
  AttachSpec s;
  s.kind = retprobe ? AttachKind::kUretprobe : AttachKind::kUprobe;
  s.target = std::move(binary);
  s.symbol = std::move(symbol);
  s.pid = pid;
  return s;
}
AttachSpec AttachSpec::perf_event_frequency(std::uint64_t hz) {
  AttachSpec s;
  s.kind = AttachKind::kPerfEvent;
  s.frequency = hz;
  return s;
}
AttachSpec AttachSpec::perf_event_period(std::uint64_t period_ns) {
  AttachSpec s;
  s.kind = AttachKind::kPerfEvent;
  s.period = period_ns;
  return s;
}
AttachSpec AttachSpec::kprobe(std::string function, bool retprobe) {
  AttachSpec s;
  s.kind = retprobe ? AttachKind::kKretprobe : AttachKind::kKprobe;
  s.target = std::move(function);
  return s;
}

Result<AttachSpec> attach_spec_from_c(const th_attach_spec* spec) {
  if (spec == nullptr) {
    return Error(ErrorKind::kInvalidArgument, "attach spec is NULL", EINVAL);
  }
  // Fields beyond what the caller compiled read as zero (plugin_api.h rule).
  th_attach_spec c{};
  const std::size_t n = spec->struct_size < sizeof(c) ? spec->struct_size : sizeof(c);
  if (n < offsetof(th_attach_spec, kind) + sizeof(c.kind)) {
    return Error(ErrorKind::kInvalidArgument,
                 "attach spec struct_size " + std::to_string(spec->struct_size) +
                     " is too small (set struct_size = sizeof(th_attach_spec))",
                 EINVAL);
  }
  std::memcpy(&c, spec, n);
  AttachSpec out;
  switch (c.kind) {
    case TH_ATTACH_TRACEPOINT:
    case TH_ATTACH_RAW_TP:
    case TH_ATTACH_TP_BTF:
    case TH_ATTACH_UPROBE:
    case TH_ATTACH_URETPROBE:
    case TH_ATTACH_PERF_EVENT:
    case TH_ATTACH_KPROBE:
    case TH_ATTACH_KRETPROBE:
      out.kind = static_cast<AttachKind>(c.kind);
      break;
    default:
      return Error(ErrorKind::kInvalidArgument,
                   "attach spec kind " + std::to_string(c.kind) + " is not a th_attach_kind (1..8)",
                   EINVAL);
  }
  if (c.target != nullptr) out.target = c.target;
  if (c.symbol != nullptr) out.symbol = c.symbol;
  out.offset = c.offset;
  out.pid = c.pid;
  out.frequency = c.frequency;
  out.period = c.period;
  out.deferred = c.deferred != 0;
  TH_TRY(validate_attach_spec(out));
  return out;
}

Status validate_attach_spec(const AttachSpec& spec) {
  auto bad = [&](std::string msg) {
    return Error(ErrorKind::kInvalidArgument,
                 std::string(to_string(spec.kind)) + " attach spec: " + std::move(msg), EINVAL);
  };
  switch (spec.kind) {
    case AttachKind::kTracepoint: {
      const auto colon = spec.target.find(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == spec.target.size() ||
          spec.target.find(':', colon + 1) != std::string::npos ||
          spec.target.find('/') != std::string::npos) {
        return bad("target '" + spec.target +
                   "' must be \"category:name\" (e.g. \"sched:sched_switch\")");
      }
      return ok();
    }
    case AttachKind::kRawTp:
    case AttachKind::kTpBtf:
      if (spec.target.empty() || spec.target.find_first_of(":/ ") != std::string::npos) {
        return bad("target '" + spec.target +
                   "' must be a tracepoint name without category (e.g. \"sys_enter\")");
      }
      return ok();
    case AttachKind::kUprobe:
    case AttachKind::kUretprobe:
      if (spec.target.empty()) return bad("target must be the path of a binary or library");
      if (spec.pid < -1) return bad("pid must be -1 (every process) or a process id");
      return ok();
    case AttachKind::kPerfEvent:
      if (spec.frequency == 0 && spec.period == 0) {
        return bad("set a sampling frequency (Hz) or a period (ns of cpu-clock)");
      }
      return ok();
    case AttachKind::kKprobe:
    case AttachKind::kKretprobe:
      if (spec.target.empty()) return bad("target must be a kernel function name");
      return ok();
  }
  return bad("unknown kind");
}

struct ProbeSet::Probe {
  ProbeId id = 0;
  BpfObject* object = nullptr;  // valid while declared/attached (detach_object clears it)
  std::string object_name;
  std::string program;
  AttachSpec spec;
  ProbeState state = ProbeState::kDeclared;
  std::vector<LinkPtr> links;
  std::string error;
  int prog_fd = -1;

  [[nodiscard]] std::string where(const std::string& owner) const {
    return "plugin " + owner + ": probe " + program + " -> " + std::string(to_string(spec.kind)) +
           " " + describe_target(spec);
  }
  void release() {
    links.clear();  // destroys links (and perf event fds) in order
    state = ProbeState::kDetached;
    object = nullptr;
  }
};

ProbeSet::ProbeSet(std::string owner) : owner_(std::move(owner)) {}

ProbeSet::~ProbeSet() { detach_all(); }

Result<ProbeId> ProbeSet::attach(BpfObject& object, std::string_view program,
                                 const AttachSpec& spec) {
  auto probe = std::make_unique<Probe>();
  probe->object = &object;
  probe->object_name = object.name();
  probe->program = std::string(program);
  probe->spec = spec;
  const std::string where = probe->where(owner_);
  if (auto st = validate_attach_spec(spec); !st.ok()) return st.error().with_context(where);
  // Fail at declaration for what is already knowable: unknown program, kprobes, fentry.
  TH_ASSIGN_OR_RETURN(bpf_program * prog, object.program(program));
  if (is_fentry_like(prog)) {
    return Error(ErrorKind::kKernelIncompatible,
                 "program '" + probe->program + "' is an fentry/fexit program (SEC(\"" +
                     bpf_program__section_name(prog) +
                     "\")): this kernel refuses fentry/fexit (EPERM); use a tp_btf or raw_tp "
                     "program instead",
                 EPERM, where);
  }
  if ((spec.kind == AttachKind::kKprobe || spec.kind == AttachKind::kKretprobe) &&
      !kprobes_available()) {
    return Error(ErrorKind::kKernelIncompatible, std::string(kNoKprobes), EOPNOTSUPP, where);
  }

  std::lock_guard lock(mu_);
  probe->id = g_next_probe_id.fetch_add(1);
  if (!spec.deferred) TH_TRY(attach_now(*probe));
  const ProbeId id = probe->id;
  probes_.push_back(std::move(probe));
  return id;
}

Status ProbeSet::attach_now(Probe& probe) {
  const std::string where = probe.where(owner_);
  if (probe.object == nullptr) {
    return Error(ErrorKind::kInvalidArgument, "its BPF object was closed", EINVAL, where);
  }
  if (!probe.object->loaded()) {
    return Error(ErrorKind::kInvalidArgument,
                 "the BPF object '" + probe.object_name + "' is not loaded: load it first", EINVAL,
                 where);
  }
  TH_ASSIGN_OR_RETURN(bpf_program * prog, probe.object->program(probe.program));
  const int prog_fd = bpf_program__fd(prog);
  if (prog_fd < 0) {
    return Error(ErrorKind::kInvalidArgument,
                 "program '" + probe.program + "' was not loaded (autoload disabled?)", EINVAL,
                 where);
  }
  const AttachSpec& spec = probe.spec;
  const std::string section = bpf_program__section_name(prog);
  const auto prog_type = bpf_program__type(prog);
  auto wrong_type = [&](std::string_view expected) {
    return Error(ErrorKind::kInvalidArgument,
                 "program '" + probe.program + "' is SEC(\"" + section + "\"), not " +
                     std::string(expected) + " program: attach it with the kind its section names",
                 EINVAL, where);
  };
  auto failed = [&](int err, std::string msg) {
    return Error(attach_error_kind(err), std::move(msg), err, where);
  };

  std::vector<LinkPtr> links;
  switch (spec.kind) {
    case AttachKind::kTracepoint: {
      if (prog_type != BPF_PROG_TYPE_TRACEPOINT) return wrong_type("a SEC(\"tracepoint/...\")");
      TH_TRY(ensure_tracefs());
      const auto colon = spec.target.find(':');
      const std::string category = spec.target.substr(0, colon);
      const std::string name = spec.target.substr(colon + 1);
      bpf_link* link = bpf_program__attach_tracepoint(prog, category.c_str(), name.c_str());
      if (link == nullptr) {
        const int err = errno;
        if (err == ENOENT) {
          return Error(ErrorKind::kKernelIncompatible,
                       "this kernel has no tracepoint " + spec.target + " (no " +
                           std::string(kTracefsPath) + "/events/" + category + "/" + name + ")",
                       err, where);
        }
        return failed(err, "attaching the tracepoint failed");
      }
      links.emplace_back(link);
      break;
    }
    case AttachKind::kRawTp: {
      if (prog_type != BPF_PROG_TYPE_RAW_TRACEPOINT &&
          prog_type != BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE) {
        return wrong_type("a SEC(\"raw_tp/...\")");
      }
      bpf_link* link = bpf_program__attach_raw_tracepoint(prog, spec.target.c_str());
      if (link == nullptr) {
        const int err = errno;
        if (err == ENOENT) {
          return Error(ErrorKind::kKernelIncompatible,
                       "this kernel has no raw tracepoint '" + spec.target + "'", err, where);
        }
        return failed(err, "attaching the raw tracepoint failed");
      }
      links.emplace_back(link);
      break;
    }
    case AttachKind::kTpBtf: {
      if (prog_type != BPF_PROG_TYPE_TRACING ||
          bpf_program__expected_attach_type(prog) != BPF_TRACE_RAW_TP) {
        return wrong_type("a SEC(\"tp_btf/...\")");
      }
      // The kernel resolved the target from the section at load time; a different target in
      // the spec would silently attach elsewhere.
      const auto slash = section.find('/');
      const std::string sec_target = slash == std::string::npos ? "" : section.substr(slash + 1);
      if (sec_target != spec.target) {
        return Error(ErrorKind::kInvalidArgument,
                     "tp_btf target '" + spec.target + "' differs from the program's SEC(\"" +
                         section +
                         "\"): a tp_btf program attaches to the tracepoint named in "
                         "its section",
                     EINVAL, where);
      }
      bpf_link* link = bpf_program__attach(prog);
      if (link == nullptr) return failed(errno, "attaching the tp_btf program failed");
      links.emplace_back(link);
      break;
    }
    case AttachKind::kUprobe:
    case AttachKind::kUretprobe: {
      if (prog_type != BPF_PROG_TYPE_KPROBE)
        return wrong_type("a SEC(\"uprobe\")/SEC(\"uretprobe\")");
      if (spec.target.find('/') != std::string::npos) {
        struct stat st {};
        if (::stat(spec.target.c_str(), &st) != 0) {
          return Error(ErrorKind::kAttachFailed,
                       "binary '" + spec.target + "' does not exist or is not readable", errno,
                       where);
        }
      }
      bpf_uprobe_opts opts;
      std::memset(&opts, 0, sizeof(opts));
      opts.sz = sizeof(opts);
      opts.retprobe = spec.kind == AttachKind::kUretprobe;
      opts.func_name = spec.symbol.empty() ? nullptr : spec.symbol.c_str();
      bpf_link* link =
          bpf_program__attach_uprobe_opts(prog, spec.pid, spec.target.c_str(), spec.offset, &opts);
      if (link == nullptr) {
        const int err = errno;
        if (err == ENOENT && !spec.symbol.empty()) {
          return Error(ErrorKind::kAttachFailed,
                       "symbol '" + spec.symbol + "' not found in " + spec.target +
                           " (stripped binary, or a name that is not a function?)",
                       err, where);
        }
        return failed(err, "attaching the uprobe failed");
      }
      links.emplace_back(link);
      break;
    }
    case AttachKind::kPerfEvent: {
      if (prog_type != BPF_PROG_TYPE_PERF_EVENT) return wrong_type("a SEC(\"perf_event\")");
      TH_ASSIGN_OR_RETURN(std::vector<int> cpus, online_cpus());
      perf_event_attr attr{};
      attr.size = sizeof(attr);
      attr.type = PERF_TYPE_SOFTWARE;
      attr.config = PERF_COUNT_SW_CPU_CLOCK;
      if (spec.frequency != 0) {
        attr.freq = 1;
        attr.sample_freq = spec.frequency;
      } else {
        attr.sample_period = spec.period;
      }
      for (int cpu : cpus) {
        UniqueFd pfd(static_cast<int>(
            ::syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)));
        if (!pfd) {
          const int err = errno;
          if (err == ENODEV) continue;  // went offline since we read the list
          std::string msg = "perf_event_open(cpu-clock) on CPU " + std::to_string(cpu) +
                            " failed: " + std::strerror(err);
          if (err == EINVAL && spec.frequency != 0) {
            msg += " (is the frequency above kernel.perf_event_max_sample_rate?)";
          } else if (err == EACCES || err == EPERM) {
            msg +=
                " (needs CAP_PERFMON or CAP_SYS_ADMIN; run as root or grant CAP_BPF,"
                "CAP_PERFMON)";
          }
          return Error(attach_error_kind(err), std::move(msg), err, where);
        }
        bpf_link* link = bpf_program__attach_perf_event(prog, pfd.get());
        if (link == nullptr) {
          const int err = errno;
          return failed(err,
                        "attaching to the perf event on CPU " + std::to_string(cpu) + " failed");
        }
        (void)pfd.release();  // the link closes it on destroy
        links.emplace_back(link);
      }
      if (links.empty()) {
        return Error(ErrorKind::kAttachFailed, "no online CPU accepted a cpu-clock event", ENODEV,
                     where);
      }
      break;
    }
    case AttachKind::kKprobe:
    case AttachKind::kKretprobe: {
      if (!kprobes_available()) {
        return Error(ErrorKind::kKernelIncompatible, std::string(kNoKprobes), EOPNOTSUPP, where);
      }
      if (prog_type != BPF_PROG_TYPE_KPROBE) return wrong_type("a SEC(\"kprobe/...\")");
      bpf_link* link = bpf_program__attach_kprobe(prog, spec.kind == AttachKind::kKretprobe,
                                                  spec.target.c_str());
      if (link == nullptr) return failed(errno, "attaching the kprobe failed");
      links.emplace_back(link);
      break;
    }
  }
  probe.links = std::move(links);
  probe.state = ProbeState::kAttached;
  probe.error.clear();
  probe.prog_fd = prog_fd;
  return ok();
}

Status ProbeSet::attach_deferred() {
  std::lock_guard lock(mu_);
  std::optional<Error> first;
  std::string failures;
  for (auto& probe : probes_) {
    if (probe->state != ProbeState::kDeclared) continue;
    if (auto st = attach_now(*probe); !st.ok()) {
      probe->state = ProbeState::kFailed;
      probe->error = st.error().describe();
      if (!failures.empty()) failures += "; ";
      failures += probe->error;
      if (!first) first = st.error();
    }
  }
  if (!first) return ok();
  return Error(first->kind(), "deferred probes failed: " + failures, first->sys_errno());
}

Status ProbeSet::detach(ProbeId id) {
  std::lock_guard lock(mu_);
  for (auto& probe : probes_) {
    if (probe->id == id) {
      probe->release();
      return ok();
    }
  }
  return Error(ErrorKind::kNotFound,
               "plugin " + owner_ + " has no probe with id " + std::to_string(id), ENOENT);
}

Status ProbeSet::set_enabled(ProbeId id, bool enabled) {
  std::lock_guard lock(mu_);
  for (auto& probe : probes_) {
    if (probe->id != id) continue;
    const ProbeState want = enabled ? ProbeState::kAttached : ProbeState::kPaused;
    if (probe->state == want) return ok();
    if (probe->state != ProbeState::kAttached && probe->state != ProbeState::kPaused) {
      return Error(ErrorKind::kInvalidArgument,
                   std::string("only an attached probe can be paused and only a paused one "
                               "resumed; this one is ") +
                       std::string(to_string(probe->state)),
                   EINVAL, probe->where(owner_));
    }
    if (!enabled) {
      probe->links.clear();
      probe->state = ProbeState::kPaused;
      return ok();
    }
    if (auto st = attach_now(*probe); !st.ok()) {
      probe->state = ProbeState::kFailed;
      probe->error = st.error().describe();
      return st;
    }
    return ok();
  }
  return Error(ErrorKind::kNotFound,
               "plugin " + owner_ + " has no probe with id " + std::to_string(id), ENOENT);
}

void ProbeSet::detach_object(const BpfObject& object) {
  std::lock_guard lock(mu_);
  for (auto& probe : probes_) {
    if (probe->object == &object) probe->release();
  }
}

void ProbeSet::detach_all() {
  std::lock_guard lock(mu_);
  for (auto& probe : probes_) {
    if (probe->state == ProbeState::kAttached || probe->state == ProbeState::kDeclared ||
        probe->state == ProbeState::kPaused) {
      probe->release();
    }
    probe->object = nullptr;
  }
}

std::vector<ProbeInfo> ProbeSet::list() const {
  std::lock_guard lock(mu_);
  std::vector<ProbeInfo> out;
  out.reserve(probes_.size());
  for (const auto& probe : probes_) {
    out.push_back({probe->id, probe->object_name, probe->program, probe->spec.kind,
                   describe_target(probe->spec), probe->state,
                   static_cast<std::uint32_t>(probe->links.size()), probe->error,
                   probe->state == ProbeState::kAttached || probe->state == ProbeState::kPaused
                       ? probe->prog_fd
                       : -1});
  }
  return out;
}

std::size_t ProbeSet::link_count() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& probe : probes_) n += probe->links.size();
  return n;
}

}  // namespace tracehost::host
