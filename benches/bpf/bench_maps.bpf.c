// SPDX-License-Identifier: GPL-2.0
/* Maps for benches/bench_map_registry.cpp: the shapes plugins use most (a hash keyed by a small
 * struct, a per-CPU array of counters), filled and read from user space only. The program is
 * never attached; it keeps the maps referenced the way a real object does. */
#include "tracehost/common.bpf.h"

struct bench_key {
  __u32 pid;
  __u32 nr;
};

struct bench_hist {
  __u64 slots[32];
  __u64 sum;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, struct bench_key);
  __type(value, __u64);
} counts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 512);
  __type(key, __u32);
  __type(value, struct bench_hist);
} latency SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(bench_touch, struct pt_regs* regs, long id) {
  struct bench_key key = {.pid = bpf_get_current_pid_tgid() >> 32, .nr = (__u32)id};
  __u32 slot = (__u32)id & 511;
  __u64 one = 1;
  struct bench_hist* h;

  /* count per (pid, nr) and bump a per-CPU slot, as the syscall plugin does */
  bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST);
  h = bpf_map_lookup_elem(&latency, &slot);
  if (h) h->sum += 1;
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
