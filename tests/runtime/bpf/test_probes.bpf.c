// Probes of every attach kind the host supports, each counting into one slot of `counts`.
// Program names start with "tht_" so tests can find leftovers in the kernel by name.
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "test_probes.h"

char LICENSE[] SEC("license") = "GPL";

// set by the test before load: only this process and this syscall count
const volatile __u32 target_tgid = 0;
const volatile __s64 target_syscall = -1;

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, THT_SLOT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} counts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} perf_samples SEC(".maps");

static __always_inline bool is_target(void) {
  return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline void bump(__u32 slot) {
  __u64* v = bpf_map_lookup_elem(&counts, &slot);
  // array slots always exist; the check satisfies the verifier
  if (v) __sync_fetch_and_add(v, 1);
}

SEC("raw_tp/sys_enter")
int tht_raw_enter(struct bpf_raw_tracepoint_args* ctx) {
  // args[1] of sys_enter is the syscall number
  if (is_target() && (__s64)ctx->args[1] == target_syscall) bump(THT_SLOT_RAW_TP);
  return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(tht_btf_enter, struct pt_regs* regs, long id) {
  if (is_target() && id == target_syscall) bump(THT_SLOT_TP_BTF);
  return 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int tht_tp_enter(struct trace_event_raw_sys_enter* ctx) {
  if (is_target() && ctx->id == target_syscall) bump(THT_SLOT_TRACEPOINT);
  return 0;
}

SEC("uprobe")
int tht_uprobe(struct pt_regs* ctx) {
  if (is_target()) bump(THT_SLOT_UPROBE);
  return 0;
}

SEC("uretprobe")
int tht_uretprobe(struct pt_regs* ctx) {
  if (is_target()) bump(THT_SLOT_URETPROBE);
  return 0;
}

SEC("perf_event")
int tht_perf(struct bpf_perf_event_data* ctx) {
  __u32 zero = 0;
  __u64* v = bpf_map_lookup_elem(&perf_samples, &zero);
  // per-CPU slot: no atomics needed
  if (v) *v += 1;
  return 0;
}

SEC("kprobe/do_nanosleep")
int tht_kprobe(struct pt_regs* ctx) {
  if (is_target()) bump(THT_SLOT_KPROBE);
  return 0;
}

// every thread of the target process, as its thread id (4 bytes each)
SEC("iter/task")
int tht_iter_threads(struct bpf_iter__task* ctx) {
  struct task_struct* task = ctx->task;
  if (!task || task->tgid != target_tgid) return 0;
  __u32 tid = task->pid;
  bpf_seq_write(ctx->meta->seq, &tid, sizeof(tid));
  return 0;
}
