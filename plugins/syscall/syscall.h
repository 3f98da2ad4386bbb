/*
 * Structures shared by syscall.bpf.c and syscall_plugin.cpp: map keys and values read by the
 * host's metric bindings, and the records written to the plugin's ring buffers. Plain C,
 * fixed-width types, explicit padding, no pointers; the C++ side static_asserts sizes and the
 * offsets it binds to.
 */
#ifndef TRACEHOST_SYSCALL_H
#define TRACEHOST_SYSCALL_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "tracehost/event_header.h"

/* syscall ids at or above this are ignored (x32 ids carry bit 30; both tables end below 512) */
#ifndef TH_SYSCALL_MAX_ID
#define TH_SYSCALL_MAX_ID 512
#endif
/* log2 latency slots: slot i counts latencies in [2^i, 2^(i+1)) ns, the last one everything
 * from 2^31 ns (2.1 s) up */
#ifndef TH_SYSCALL_LATENCY_SLOTS
#define TH_SYSCALL_LATENCY_SLOTS 32
#endif
#ifndef TH_SYSCALL_PATH_LEN
#define TH_SYSCALL_PATH_LEN 256
#endif
/* exec events carry the first TH_SYSCALL_EXEC_ARGS arguments, TH_SYSCALL_ARG_LEN bytes each */
#ifndef TH_SYSCALL_EXEC_ARGS
#define TH_SYSCALL_EXEC_ARGS 4
#endif
#ifndef TH_SYSCALL_ARG_LEN
#define TH_SYSCALL_ARG_LEN 64
#endif

/* per_process modes (rodata per_process) */
#ifndef TH_SYSCALL_PER_PROCESS_OFF
#define TH_SYSCALL_PER_PROCESS_OFF 0
#define TH_SYSCALL_PER_PROCESS_COMM 1
#define TH_SYSCALL_PER_PROCESS_PID 2
#endif

/* value of syscall_stats (per-CPU array indexed by syscall id) */
struct syscall_stats {
  __u64 calls;
  __u64 errors; /* returned -errno */
  __u64 total_ns;
  __u64 slots[TH_SYSCALL_LATENCY_SLOTS];
}; /* 280 bytes */

/* key of process_stats (LRU per-CPU hash) */
struct syscall_process_key {
  char comm[TH_COMM_LEN];
  __u32 pid; /* per_process = "pid"; 0 otherwise */
  __u32 id;  /* syscall id */
}; /* 24 bytes */

struct syscall_process_stats {
  __u64 calls;
  __u64 errors;
  __u64 total_ns;
}; /* 24 bytes */

/* topic syscall.exec: execve/execveat, captured at entry, emitted at exit */
struct syscall_exec_event {
  struct th_event_header hdr;
  __u64 latency_ns;
  __s64 ret;            /* 0, or -errno */
  __s32 err;            /* errno, 0 on success */
  __u32 ppid;
  __u32 id;             /* execve or execveat */
  __u32 argc;           /* arguments captured, at most TH_SYSCALL_EXEC_ARGS */
  __u32 args_truncated; /* non-zero: argv had more than TH_SYSCALL_EXEC_ARGS entries */
  __u32 pad;
  char filename[TH_SYSCALL_PATH_LEN];
  char args[TH_SYSCALL_EXEC_ARGS][TH_SYSCALL_ARG_LEN];
}; /* 600 bytes */

/* topic syscall.open: open, openat, openat2, creat */
struct syscall_open_event {
  struct th_event_header hdr;
  __u64 latency_ns;
  __s64 ret;    /* file descriptor, or -errno */
  __s32 err;    /* errno, 0 on success */
  __s32 dirfd;  /* AT_FDCWD (-100) for open and creat */
  __u32 flags;  /* O_* flags (creat: O_CREAT|O_WRONLY|O_TRUNC) */
  __u32 mode;
  __u32 id;
  __u32 pad;
  char path[TH_SYSCALL_PATH_LEN];
}; /* 344 bytes */

/* topics syscall.failed (returned -errno) and syscall.slow (latency over the threshold) */
struct syscall_event {
  struct th_event_header hdr;
  __u64 latency_ns;
  __s64 ret;
  __u32 id;
  __s32 err; /* errno, 0 on success */
}; /* 72 bytes */

#endif /* TRACEHOST_SYSCALL_H */
