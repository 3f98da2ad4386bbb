// SPDX-License-Identifier: GPL-2.0
/* The kernel half of the bare ring-buffer consumer (benches/event_throughput.sh): the same
 * syscall.failed records as the syscall plugin (struct syscall_event, plugins/syscall/syscall.h),
 * produced the same way (task storage for the start time, the shared header and ring helpers
 * with their batched wakeups), but nothing else: no counters, no histograms, no filters beyond
 * skipping the consumer itself. */
#include "tracehost/events.bpf.h"

#include "syscall/syscall.h"

const volatile __u32 self_tgid = 0;

struct start {
  __u64 ns;
};

struct {
  __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct start);
} starts SEC(".maps");

/* sized from user space (--ring-kb) */
TH_RINGBUF(events, 256 * 1024);

SEC("tp_btf/sys_enter")
int BPF_PROG(on_enter, struct pt_regs* regs, long id) {
  struct start* s;

  /* skip the consumer itself */
  if ((bpf_get_current_pid_tgid() >> 32) == self_tgid) return 0;
  s = bpf_task_storage_get(&starts, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
  if (s) s->ns = bpf_ktime_get_ns();
  return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_exit, struct pt_regs* regs, long ret) {
  struct start* s = bpf_task_storage_get(&starts, bpf_get_current_task_btf(), 0, 0);
  struct syscall_event* e;
  __u64 latency;

  /* only syscalls seen entering, and only failures */
  if (!s || !s->ns) return 0;
  latency = bpf_ktime_get_ns() - s->ns;
  s->ns = 0;
  if (!th_is_err(ret)) return 0;

  e = TH_RESERVE(events, struct syscall_event);
  if (!e) return 0;
  th_fill_header(&e->hdr, bpf_get_current_pid_tgid());
  e->latency_ns = latency;
  e->ret = ret;
#if defined(__TARGET_ARCH_x86)
  e->id = (__u32)BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
  e->id = (__u32)BPF_CORE_READ(regs, syscallno);
#endif
  e->err = (__s32)-ret;
  TH_SUBMIT(events, e);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
