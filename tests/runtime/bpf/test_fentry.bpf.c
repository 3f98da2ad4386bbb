// An fentry program: refused by the kernels tracehost targets (EPERM).
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("fentry/do_nanosleep")
int BPF_PROG(tht_fentry, struct hrtimer_sleeper* t) {
  return 0;
}
