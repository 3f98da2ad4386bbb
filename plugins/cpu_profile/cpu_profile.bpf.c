// SPDX-License-Identifier: GPL-2.0
/*
 * cpu_profile: sampled stacks. One SEC("perf_event") program runs on the software cpu-clock
 * event of every online CPU (the host opens one event per CPU at frequency_hz) and counts
 * (process, user stack, kernel stack) in a hash map. Stacks are raw addresses; the plugin
 * symbolises them in user space.
 *
 * Double buffering: there are two generations of (count map, stack map). The program writes to
 * the generation selected by `control[0]`; at the end of a window the plugin flips it, waits
 * for programs still running on the old generation to finish (they run for microseconds with
 * preemption disabled), then reads and clears the old generation at leisure while new samples
 * go to the other one. Keeping stacks per generation means clearing a drained stack map can never
 * remove a stack the live window still refers to.
 *
 * Processes to symbolise: the first sample of a process in each window is announced on the
 * `process_events` ring (topic cpu_profile.process), so the plugin reads its memory map while it
 * lives instead of at the end of the window, when a short-lived process may be gone.
 */
#include "tracehost/common.bpf.h"
#include "tracehost/events.bpf.h"
#include "tracehost/filters.bpf.h"

#include "cpu_profile.h"

char LICENSE[] SEC("license") = "GPL";

/* config, set by the plugin before load */
const volatile __u32 mode = TH_CPU_PROFILE_MODE_BOTH;
const volatile __u32 include_idle = 0; /* count the idle task (pid 0) */
const volatile __u32 per_thread = 0;   /* key by thread id too */

/* [0]: the window number, written by the plugin; samples go to generation (number & 1) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} control SEC(".maps");

/* samples per key; sized by the plugin (max_keys) */
#define TH_COUNTS_MAP(name)                                    \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_HASH);               \
		__uint(max_entries, 16384);                    \
		__type(key, struct cpu_profile_key);           \
		__type(value, __u64);                          \
	} name SEC(".maps")

/* stack id -> up to TH_CPU_PROFILE_MAX_DEPTH addresses, leaf first; sized by the plugin */
#define TH_STACK_MAP(name)                                                             \
	struct {                                                                       \
		__uint(type, BPF_MAP_TYPE_STACK_TRACE);                                \
		__uint(max_entries, 16384);                                            \
		__uint(key_size, sizeof(__u32));                                       \
		__uint(value_size, TH_CPU_PROFILE_MAX_DEPTH * sizeof(__u64));          \
	} name SEC(".maps")

TH_COUNTS_MAP(counts_0);
TH_COUNTS_MAP(counts_1);
TH_STACK_MAP(stacks_0);
TH_STACK_MAP(stacks_1);

/* tgid -> number of the window it was last announced in; sized by the plugin */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} announced SEC(".maps");

TH_RINGBUF(process_events, 64 * 1024);

/* samples and losses by TH_CPU_PROFILE_STAT_* */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TH_CPU_PROFILE_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count_stat(__u32 index)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &index);

	if (n)
		*n += 1;
}

/* a stack id, TH_CPU_PROFILE_NO_STACK when the sample has no such stack, or 1 after counting
 * a loss (the caller then drops the sample: its stack is unknown) */
static __always_inline int stack_error(long id)
{
	/* -EEXIST: another stack hashes to the same bucket (no BPF_F_REUSE_STACKID: the stored
	 * stack of the live window must stay valid); -ENOMEM: the map is full */
	if (id == -17) {
		count_stat(TH_CPU_PROFILE_STAT_STACK_COLLISION);
		return 1;
	}
	if (id == -12) {
		count_stat(TH_CPU_PROFILE_STAT_STACK_FULL);
		return 1;
	}
	return 0;
}

static __always_inline long get_stack(void *ctx, __u32 gen, __u64 flags)
{
	/* separate calls: the helper needs the map as a constant pointer */
	if (gen)
		return bpf_get_stackid(ctx, &stacks_1, flags);
	return bpf_get_stackid(ctx, &stacks_0, flags);
}

SEC("perf_event")
int cpu_profile_sample(struct bpf_perf_event_data *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	/* 8-byte aligned: th_task_comm() stores words */
	struct cpu_profile_key key __attribute__((aligned(8)));
	__u32 zero = 0, gen, window;
	__u32 *genp;
	__u64 one = 1, *count;
	long id;
	void *counts;
	int err;

	/* the idle task: pid 0 on every CPU */
	if (!include_idle && task->pid == 0)
		return 0;
	/* pid, cgroup, comm, self */
	if (!th_filter_pass(task))
		return 0;
	count_stat(TH_CPU_PROFILE_STAT_SAMPLES);

	genp = bpf_map_lookup_elem(&control, &zero);
	window = genp ? *genp : 0;
	gen = window & 1;

	/* user stacks are symbolised on the host: announce the process once per window (kernel
	 * threads have no user memory to read) */
	if (mode != TH_CPU_PROFILE_MODE_KERNEL && task->mm) {
		__u32 tgid = task->tgid;
		__u32 *last = bpf_map_lookup_elem(&announced, &tgid);

		if (!last || *last != window) {
			struct cpu_profile_process_event *ev;

			bpf_map_update_elem(&announced, &tgid, &window, BPF_ANY);
			ev = TH_RESERVE(process_events, struct cpu_profile_process_event);
			if (ev) {
				th_fill_header(&ev->hdr, bpf_get_current_pid_tgid());
				ev->window = window;
				ev->pad = 0;
				/* rare (once per process and window): wake the host, which then
				 * need not poll this ring (TH_RINGBUF_PRODUCER_WAKES) */
				bpf_ringbuf_submit(ev, BPF_RB_FORCE_WAKEUP);
			}
		}
	}

	key.pid = task->tgid;
	key.tid = per_thread ? task->pid : 0;
	key.user_stack_id = TH_CPU_PROFILE_NO_STACK;
	key.kernel_stack_id = TH_CPU_PROFILE_NO_STACK;
	th_task_comm(task, (__u64 *)key.comm);

	if (mode != TH_CPU_PROFILE_MODE_KERNEL) {
		/* -EFAULT: no user stack (a kernel thread, or nothing unwound) */
		id = get_stack(ctx, gen, BPF_F_USER_STACK);
		if (stack_error(id))
			return 0;
		if (id >= 0)
			key.user_stack_id = (__s32)id;
	}
	if (mode != TH_CPU_PROFILE_MODE_USER) {
		id = get_stack(ctx, gen, 0);
		if (stack_error(id))
			return 0;
		if (id >= 0)
			key.kernel_stack_id = (__s32)id;
	}

	counts = gen ? (void *)&counts_1 : (void *)&counts_0;
	count = bpf_map_lookup_elem(counts, &key);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return 0;
	}
	err = bpf_map_update_elem(counts, &key, &one, BPF_NOEXIST);
	if (err == -17) {
		/* another CPU inserted the key first */
		count = bpf_map_lookup_elem(counts, &key);
		if (count)
			__sync_fetch_and_add(count, 1);
	} else if (err) {
		count_stat(TH_CPU_PROFILE_STAT_COUNTS_FULL);
	}
	return 0;
}
