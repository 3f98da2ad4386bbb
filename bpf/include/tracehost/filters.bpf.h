/*
 * Common in-kernel filters: process id, thread id, process name, cgroup v2 subtree, and the
 * host's own process. Include once per BPF object; call th_filter_pass() before touching any
 * map so that filtered-out tasks cost as little as possible.
 *
 * The plugin configures them before load:
 *  - rodata th_filter_self_tgid: tgid to skip (the host itself, so that its sinks writing
 *    files or sockets do not feed back into what is traced); 0 = none.
 *  - rodata th_filter_use_pids / th_filter_use_tids / th_filter_use_comms: non-zero enables
 *    the matching hash set below, which the plugin sizes (set_map_max_entries) and fills
 *    after load. Keys: tgid (u32), tid (u32), comm (char[16], NUL-padded).
 *  - rodata th_filter_cgroup_id / th_filter_cgroup_level: keep tasks whose cgroup is that
 *    cgroup or a descendant of it. The id is the inode number of the cgroup v2 directory and
 *    the level its depth below the cgroup2 root (root = 0).
 * Disabled filters are constant-folded away by the verifier (rodata is frozen before load).
 */
#ifndef TRACEHOST_FILTERS_BPF_H
#define TRACEHOST_FILTERS_BPF_H

#include "tracehost/common.bpf.h"
#include "tracehost/event_header.h"

const volatile __u32 th_filter_self_tgid = 0;
const volatile __u32 th_filter_use_pids = 0;
const volatile __u32 th_filter_use_tids = 0;
const volatile __u32 th_filter_use_comms = 0;
const volatile __u64 th_filter_cgroup_id = 0;
const volatile __u32 th_filter_cgroup_level = 0;

/* the name as written by th_task_comm(): NUL-padded bytes, as words for aligned stores */
struct th_comm_key {
	__u64 words[TH_COMM_LEN / 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8);
} th_filter_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8);
} th_filter_tids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct th_comm_key);
	__type(value, __u8);
} th_filter_comms SEC(".maps");

/*
 * The id of the cgroup v2 directory `level` levels below the root on the path to `task`'s cgroup
 * (its own id at its own depth), or 0 when its cgroup is shallower: what
 * bpf_get_current_ancestor_cgroup_id() answers for the current task, for any task.
 */
static __always_inline __u64 th_task_ancestor_cgroup_id(struct task_struct *task, __u32 level)
{
	struct cgroup *cgrp = BPF_CORE_READ(task, cgroups, dfl_cgrp);
	struct cgroup *ancestor = 0;

	if (!cgrp || BPF_CORE_READ(cgrp, level) < (int)level || level > 255)
		return 0;
	bpf_core_read(&ancestor, sizeof(ancestor), &cgrp->ancestors[level]);
	return ancestor ? BPF_CORE_READ(ancestor, kn, id) : 0;
}

/* th_filter_pass() and th_filter_pass_task(): current non-zero when task is the current task,
 * whose cgroup a helper answers for */
static __always_inline int th_filter_pass_any(struct task_struct *task, int current)
{
	__u32 tgid = task->tgid;
	__u32 tid = task->pid;

	/* skip the host itself */
	if (th_filter_self_tgid && tgid == th_filter_self_tgid)
		return 0;
	/* process and thread id sets */
	if (th_filter_use_pids && !bpf_map_lookup_elem(&th_filter_pids, &tgid))
		return 0;
	if (th_filter_use_tids && !bpf_map_lookup_elem(&th_filter_tids, &tid))
		return 0;
	/* cgroup subtree: the ancestor at the filter's depth must be the filter's cgroup */
	if (th_filter_cgroup_id) {
		__u64 id = current ? bpf_get_current_ancestor_cgroup_id(th_filter_cgroup_level)
				   : th_task_ancestor_cgroup_id(task, th_filter_cgroup_level);

		if (id != th_filter_cgroup_id)
			return 0;
	}
	/* process name set */
	if (th_filter_use_comms) {
		struct th_comm_key key;

		th_task_comm(task, key.words);
		if (!bpf_map_lookup_elem(&th_filter_comms, &key))
			return 0;
	}
	return 1;
}

/* non-zero when `task` (the current task, from bpf_get_current_task_btf()) passes every
 * configured filter; cheapest checks first, ids and name read straight from the task */
static __always_inline int th_filter_pass(struct task_struct *task)
{
	return th_filter_pass_any(task, 1);
}

/* th_filter_pass() for a task that is not the current one (e.g. an iterator's): the cgroup is
 * read from the task instead of asked of the helper, which only knows the current task */
static __always_inline int th_filter_pass_task(struct task_struct *task)
{
	return th_filter_pass_any(task, 0);
}

#endif /* TRACEHOST_FILTERS_BPF_H */
