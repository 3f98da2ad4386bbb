// SPDX-License-Identifier: GPL-2.0
/* hello: counts exec calls and emits one hello.exec event per exec. */
#include "tracehost/events.bpf.h"

#include "hello.h"

const volatile __u32 emit_events = 1;

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} execs SEC(".maps");

TH_RINGBUF(events, 64 * 1024);

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct* p, pid_t old_pid, struct linux_binprm* bprm) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  __u32 zero = 0;
  __u64* n;
  struct hello_event* e;

  /* count */
  n = bpf_map_lookup_elem(&execs, &zero);
  if (n) *n += 1;
  if (!emit_events) return 0;
  /* event */
  e = TH_RESERVE(events, struct hello_event);
  if (!e) return 0;
  th_fill_header(&e->hdr, pid_tgid);
  bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
  TH_SUBMIT(events, e);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
