// Valid C that the verifier must refuse: the index into an 8-byte map value is only bounded to
// [0, 255], so the write can land up to 2 KiB past the value.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} slot SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(verifier_rejects_prog, struct pt_regs *regs, long id)
{
	__u32 zero = 0;
	__u64 *value = bpf_map_lookup_elem(&slot, &zero);

	if (!value)
		return 0;
	// out of bounds for any id & 0xff > 0
	value[id & 0xff] = 1;
	return 0;
}
