// A kprobe program. It loads (BPF_PROG_TYPE_KPROBE also serves uprobes), but a kernel built
// without CONFIG_KPROBES has nothing to attach it to.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("kprobe/do_sys_openat2")
int kprobe_only_prog(void *ctx)
{
	return 0;
}
