/*
 * The header every tracehost event record starts with. Shared by BPF programs (built against
 * vmlinux.h) and plugin C++ code (built against <linux/types.h>): plain C, fixed-width types,
 * explicit padding, no pointers.
 */
#ifndef TRACEHOST_EVENT_HEADER_H
#define TRACEHOST_EVENT_HEADER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#ifndef TH_COMM_LEN
#define TH_COMM_LEN 16 /* TASK_COMM_LEN */
#endif

struct th_event_header {
  __u64 timestamp_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC, converted to wall time by the host */
  __u64 cgroup_id;    /* cgroup v2 id (inode of the cgroup directory) */
  __u32 pid;          /* thread group id */
  __u32 tid;
  __u32 uid;
  __u32 gid;
  char comm[TH_COMM_LEN];
}; /* 48 bytes */

#endif /* TRACEHOST_EVENT_HEADER_H */
