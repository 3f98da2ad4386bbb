/*
 * Records and map layouts shared by good.bpf.c and good_plugin.cpp: plain C, fixed-width types,
 * explicit padding, no pointers.
 */
#ifndef TRACEHOST_TEST_GOOD_H
#define TRACEHOST_TEST_GOOD_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#ifndef GOOD_COMM_LEN
#define GOOD_COMM_LEN 16
#endif

/* one syscall entry of the target process, on topic "good.sys_enter" */
struct good_event {
  __u64 timestamp_ns; /* bpf_ktime_get_ns() */
  __u32 pid;
  __u32 tid;
  __s64 nr; /* syscall number */
  char comm[GOOD_COMM_LEN];
}; /* 40 bytes */

/* published from user space on "good.hello" when start() succeeds */
struct good_hello {
  __u32 value;
  __u32 pad;
};

#endif /* TRACEHOST_TEST_GOOD_H */
