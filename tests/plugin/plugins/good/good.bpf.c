// A well-behaved test plugin: counts the syscalls of one process per syscall number and sends
// one ring buffer record per syscall entry.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "good.h"

char LICENSE[] SEC("license") = "GPL";

// set before load: the process whose syscalls are traced (0: none)
const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

// records lost to a full ring, read by the host as kernel-side drops
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events_drops SEC(".maps");

// syscall number -> calls, per CPU
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(good_sys_enter, struct pt_regs *regs, long id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 nr = (__u32)id;
	__u64 one = 1, *count;
	struct good_event *e;

	// only the target process
	if (target_tgid == 0 || (__u32)(pid_tgid >> 32) != target_tgid)
		return 0;

	// count per syscall number
	count = bpf_map_lookup_elem(&counts, &nr);
	if (count)
		*count += 1;
	else
		bpf_map_update_elem(&counts, &nr, &one, BPF_NOEXIST);

	// one record per entry; a full ring counts a drop
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *drops = bpf_map_lookup_elem(&events_drops, &zero);

		if (drops)
			*drops += 1;
		return 0;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->nr = id;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
