// SPDX-License-Identifier: GPL-2.0
/* An empty tp_btf program: benches/tp_floor attaches one to each tracepoint it is given, so the
 * benchmarks can measure what the kernel's tracepoint dispatch costs before any program code. The
 * attach target is set at load time (bpf_program__set_attach_target). */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/inet_sock_set_state")
int empty(void *ctx)
{
	return 0;
}
