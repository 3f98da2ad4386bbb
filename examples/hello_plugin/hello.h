/* The record hello.bpf.c writes for every exec, shared with hello_plugin.cpp. */
#ifndef TRACEHOST_HELLO_H
#define TRACEHOST_HELLO_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "tracehost/event_header.h"

#ifndef HELLO_FILENAME_LEN
#define HELLO_FILENAME_LEN 128
#endif

struct hello_event {
  struct th_event_header hdr;
  char filename[HELLO_FILENAME_LEN];
}; /* 176 bytes */

#endif /* TRACEHOST_HELLO_H */
