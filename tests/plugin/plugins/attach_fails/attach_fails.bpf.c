// Programs that load fine and then have nowhere to attach: the plugin asks for a raw tracepoint
// that does not exist, or for a uprobe on a function that does not exist.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("raw_tp")
int attach_fails_raw_tp(void *ctx)
{
	return 0;
}

SEC("uprobe")
int attach_fails_uprobe(void *ctx)
{
	return 0;
}
