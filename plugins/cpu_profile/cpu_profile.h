/*
 * Structures shared by cpu_profile.bpf.c and cpu_profile_plugin.cpp. Plain C, fixed-width
 * types, explicit padding, no pointers; the C++ side static_asserts sizes and offsets.
 */
#ifndef TRACEHOST_CPU_PROFILE_H
#define TRACEHOST_CPU_PROFILE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "tracehost/event_header.h"

/* frames per stack: PERF_MAX_STACK_DEPTH, the most bpf_get_stackid() records */
#ifndef TH_CPU_PROFILE_MAX_DEPTH
#define TH_CPU_PROFILE_MAX_DEPTH 127
#endif

/* rodata `mode`: which stacks a sample records */
#define TH_CPU_PROFILE_MODE_BOTH 0
#define TH_CPU_PROFILE_MODE_USER 1
#define TH_CPU_PROFILE_MODE_KERNEL 2

/* indexes of the per-CPU `stats` array */
#define TH_CPU_PROFILE_STAT_SAMPLES 0         /* samples that passed the filters */
#define TH_CPU_PROFILE_STAT_STACK_COLLISION 1 /* lost: stack id hash collision (-EEXIST) */
#define TH_CPU_PROFILE_STAT_STACK_FULL 2      /* lost: stack trace map full (-ENOMEM) */
#define TH_CPU_PROFILE_STAT_COUNTS_FULL 3     /* lost: count map full (-E2BIG) */
#define TH_CPU_PROFILE_STAT_COUNT 4

/* a stack id that is no stack: the sample has none of this kind (kernel thread, mode) */
#define TH_CPU_PROFILE_NO_STACK (-1)

/* key of counts_0 / counts_1 (hash, value: __u64 samples) */
struct cpu_profile_key {
  __u32 pid;             /* tgid; 0 for the idle task */
  __u32 tid;             /* 0 unless per_thread */
  __s32 user_stack_id;   /* in the generation's stack map, or TH_CPU_PROFILE_NO_STACK */
  __s32 kernel_stack_id; /* same */
  char comm[TH_COMM_LEN];
}; /* 32 bytes */

/* record of the process_events ring (topic cpu_profile.process): a process's first sample in a
 * window */
struct cpu_profile_process_event {
  struct th_event_header hdr;
  __u32 window; /* the window number (control[0]) */
  __u32 pad;
}; /* 56 bytes */

#endif /* TRACEHOST_CPU_PROFILE_H */
