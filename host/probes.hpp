// ProbeSet: the probes (attached BPF programs) of one plugin. Every bpf_link and perf event fd
// it creates is owned here and nowhere else; detach_all() (or the destructor) leaves nothing
// attached, so a stopped or failed plugin cannot leak probes.
//
// Supported: tracepoint "category:name" (mounts tracefs when needed), raw_tp "name",
// tp_btf "name" (must equal the program's SEC("tp_btf/name")), uprobe/uretprobe (binary path +
// symbol or offset, pid or -1), perf_event (software cpu-clock on every online CPU, by frequency
// or period). kprobe/kretprobe fail with kKernelIncompatible when the kernel has no kprobes.
// fentry/fexit programs are refused with a clear message (this kernel returns EPERM for them).
//
// Thread-safe (one mutex per set).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tracehost/plugin_api.h"
#include "tracehost/result.hpp"

namespace tracehost::host {

class BpfObject;

enum class AttachKind : int {
  kTracepoint = TH_ATTACH_TRACEPOINT,
  kRawTp = TH_ATTACH_RAW_TP,
  kTpBtf = TH_ATTACH_TP_BTF,
  kUprobe = TH_ATTACH_UPROBE,
  kUretprobe = TH_ATTACH_URETPROBE,
  kPerfEvent = TH_ATTACH_PERF_EVENT,
  kKprobe = TH_ATTACH_KPROBE,
  kKretprobe = TH_ATTACH_KRETPROBE,
};

std::string_view to_string(AttachKind kind) noexcept;  // "tracepoint", "raw_tp", …

enum class ProbeState : int {
  kDeclared = TH_PROBE_DECLARED,  // deferred: waits for attach_deferred()
  kAttached = TH_PROBE_ATTACHED,
  kDetached = TH_PROBE_DETACHED,
  kFailed = TH_PROBE_FAILED,  // deferred attach failed; ProbeInfo::error says why
  kPaused = TH_PROBE_PAUSED,  // set_enabled(false): no links, resumable
};

std::string_view to_string(ProbeState state) noexcept;  // "declared", "attached", …

// The C++ form of th_attach_spec (see plugin_api.h for the meaning of each field).
struct AttachSpec {
  AttachKind kind = AttachKind::kRawTp;
  std::string target;           // tracepoint "cat:name"; raw_tp/tp_btf "name"; uprobe binary path;
                                // kprobe function; perf_event: unused
  std::string symbol;           // uprobe: function name (empty: `offset` is a file offset)
  std::uint64_t offset = 0;     // uprobe: file offset, or offset from `symbol`
  int pid = -1;                 // uprobe: -1 = every process
  std::uint64_t frequency = 0;  // perf_event: samples/s per CPU (0: use `period`)
  std::uint64_t period = 0;     // perf_event: cpu-clock period in ns
  bool deferred = false;        // declare now, attach in attach_deferred()

  static AttachSpec tracepoint(std::string category_and_name);
  static AttachSpec raw_tp(std::string name);
  static AttachSpec tp_btf(std::string name);
  static AttachSpec uprobe(std::string binary, std::string symbol, int pid = -1,
                           bool retprobe = false);
  static AttachSpec perf_event_frequency(std::uint64_t hz);
  static AttachSpec perf_event_period(std::uint64_t period_ns);
  static AttachSpec kprobe(std::string function, bool retprobe = false);
};

// Converts and validates a C spec (struct_size honoured: missing trailing fields read as 0).
// kInvalidArgument naming the bad field.
Result<AttachSpec> attach_spec_from_c(const th_attach_spec* spec);

// Checks a spec without touching the kernel: target shape per kind, perf_event frequency or
// period set, uprobe binary given, … kInvalidArgument naming the field and the fix.
Status validate_attach_spec(const AttachSpec& spec);

using ProbeId = th_probe_id;

struct ProbeInfo {
  ProbeId id = 0;
  std::string object;  // BpfObject name
  std::string program;
  AttachKind kind = AttachKind::kRawTp;
  std::string target;  // as in the spec ("sched:sched_switch", "/bin/bash:readline", "cpu-clock")
  ProbeState state = ProbeState::kDeclared;
  std::uint32_t link_count = 0;  // perf_event: one per online CPU
  std::string error;             // kFailed: why
  int prog_fd = -1;              // for statistics
};

class ProbeSet {
 public:
  explicit ProbeSet(std::string owner);
  ~ProbeSet();  // detach_all()
  ProbeSet(const ProbeSet&) = delete;
  ProbeSet& operator=(const ProbeSet&) = delete;
  ProbeSet(ProbeSet&&) = delete;
  ProbeSet& operator=(ProbeSet&&) = delete;

  [[nodiscard]] const std::string& owner() const noexcept { return owner_; }

  // Attaches `program` of the loaded `object` as `spec` says, or only declares it when
  // spec.deferred (state kDeclared; `object` must then stay alive until attach_deferred() or
  // detach_object()). Returns the new probe's id (never 0). On failure nothing stays attached.
  Result<ProbeId> attach(BpfObject& object, std::string_view program, const AttachSpec& spec);

  // Attaches every kDeclared probe, in declaration order. A probe that fails becomes kFailed
  // with its error; the others still attach. Returns the first failure (naming every failed
  // probe) or ok.
  Status attach_deferred();

  // Destroys the probe's links; it stays listed as kDetached. kNotFound for an unknown id.
  Status detach(ProbeId id);

  // Pauses an attached probe (its links destroyed, state kPaused) or resumes a paused one (its
  // links created again from the same spec; on failure kFailed with the reason, returned).
  // Either on a probe already in that state: ok, nothing done. kNotFound for an unknown id,
  // kInvalidArgument for a declared, detached or failed probe.
  Status set_enabled(ProbeId id, bool enabled);

  // Detaches every probe made from `object` (before destroying the object).
  void detach_object(const BpfObject& object);

  // Detaches everything. Idempotent.
  void detach_all();

  // Every probe in declaration order.
  [[nodiscard]] std::vector<ProbeInfo> list() const;

  // Links currently held (perf_event probes count one per CPU).
  [[nodiscard]] std::size_t link_count() const;

 private:
  struct Probe;
  Status attach_now(Probe& probe);

  std::string owner_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Probe>> probes_;
};

}  // namespace tracehost::host
