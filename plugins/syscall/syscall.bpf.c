// SPDX-License-Identifier: GPL-2.0
/*
 * syscall: per-syscall counts, errors and log2 latency; per-process counts; exec, open,
 * failed and slow syscall events.
 *
 * Attached with tp_btf to sys_enter / sys_exit: no tracefs, and the arguments arrive as typed
 * BTF pointers instead of a copied trace record. The per-thread state lives in task local
 * storage (no hash lookup keyed by tid), per-syscall stats in a per-CPU array indexed by the
 * syscall id (no hashing, no atomics: the programs run with preemption disabled and are not
 * re-entered on a CPU).
 */
#include "tracehost/common.bpf.h"
#include "tracehost/events.bpf.h"
#include "tracehost/filters.bpf.h"

#include "syscall.h"

char LICENSE[] SEC("license") = "GPL";

#define TH_NO_SYSCALL ((__u32)-1)

/* config, set by the plugin before load */
const volatile __u32 filter_syscalls = 0;               /* non-zero: only ids marked in traced */
const volatile __u8 traced[TH_SYSCALL_MAX_ID] = {};     /* 1 = trace this syscall id */
const volatile __u32 failed_only = 0;                   /* only syscalls returning -errno */
const volatile __u64 min_latency_ns = 0;                /* only syscalls at least this slow */
const volatile __u32 per_process = TH_SYSCALL_PER_PROCESS_COMM;
const volatile __u32 skip_compat = 1;                   /* 32-bit syscalls use another table */
const volatile __u32 emit_exec = 1;
const volatile __u32 emit_open = 0;
const volatile __u32 emit_failed = 0;
const volatile __u64 slow_threshold_ns = 0;             /* 0: no syscall.slow events */
/* ids of the syscalls events are about, from the plugin's table for the running arch */
const volatile __u32 id_execve = TH_NO_SYSCALL;
const volatile __u32 id_execveat = TH_NO_SYSCALL;
const volatile __u32 id_open = TH_NO_SYSCALL;
const volatile __u32 id_openat = TH_NO_SYSCALL;
const volatile __u32 id_openat2 = TH_NO_SYSCALL;
const volatile __u32 id_creat = TH_NO_SYSCALL;

/* the syscall a thread is in; args only for open syscalls when open events are on */
struct task_state {
	__u64 start_ns; /* 0: no traced syscall in flight */
	__u32 id;
	__u32 pad;
	__u64 args[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_state);
} task_state SEC(".maps");

/* execve arguments copied at entry (the caller's memory is gone after a successful exec);
 * created only for threads inside an exec, deleted when it returns, and tied to the task
 * rather than the tid because a multi-threaded exec changes the caller's tid */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct syscall_exec_event);
} exec_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TH_SYSCALL_MAX_ID);
	__type(key, __u32);
	__type(value, struct syscall_stats);
} syscall_stats SEC(".maps");

/* sized by the plugin (process_map_entries); LRU so exited processes make room */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct syscall_process_key);
	__type(value, struct syscall_process_stats);
} process_stats SEC(".maps");

/* one ring per topic; sized by the plugin (ringbuf_kb, one page when the topic is off) */
TH_RINGBUF(exec_events, 256 * 1024);
TH_RINGBUF(open_events, 256 * 1024);
TH_RINGBUF(failed_events, 256 * 1024);
TH_RINGBUF(slow_events, 256 * 1024);

static __always_inline int is_open_id(__u32 id)
{
	return id == id_openat || id == id_open || id == id_openat2 || id == id_creat;
}

static __always_inline int is_exec_id(__u32 id)
{
	return id == id_execve || id == id_execveat;
}

/* a 32-bit (compat) task: its syscall ids index a different table */
static __always_inline int in_compat_syscall(struct task_struct *task)
{
#if defined(__TARGET_ARCH_x86)
	/* TS_COMPAT in thread_info.status, set while an ia32 syscall runs */
	if (bpf_core_field_exists(task->thread_info.status))
		return (task->thread_info.status & 0x0002) != 0;
#elif defined(__TARGET_ARCH_arm64)
	/* TIF_32BIT in thread_info.flags */
	return (task->thread_info.flags & (1UL << 22)) != 0;
#endif
	return 0;
}

/* copies filename and the first arguments of an execve/execveat into exec_state */
static __always_inline void capture_exec(struct task_struct *task, struct pt_regs *regs,
					 __u32 id)
{
	struct syscall_exec_event *e;
	const char *filename;
	const char *const *argv;
	const char *arg = 0;
	__u32 i;

	e = bpf_task_storage_get(&exec_state, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!e)
		return;
	/* execveat(dirfd, filename, argv, ...) vs execve(filename, argv, ...) */
	if (id == id_execveat) {
		filename = (const char *)PT_REGS_PARM2_CORE_SYSCALL(regs);
		argv = (const char *const *)PT_REGS_PARM3_CORE_SYSCALL(regs);
	} else {
		filename = (const char *)PT_REGS_PARM1_CORE_SYSCALL(regs);
		argv = (const char *const *)PT_REGS_PARM2_CORE_SYSCALL(regs);
	}
	bpf_probe_read_user_str(e->filename, sizeof(e->filename), filename);
	/* the first arguments, stopping at argv's NULL terminator */
	e->argc = 0;
	for (i = 0; i < TH_SYSCALL_EXEC_ARGS; i++) {
		arg = 0;
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) != 0 || !arg)
			break;
		if (bpf_probe_read_user_str(e->args[i], TH_SYSCALL_ARG_LEN, arg) < 0)
			e->args[i][0] = '\0';
		e->argc = i + 1;
	}
	/* clear slots a previous, longer argv may have left */
	for (; i < TH_SYSCALL_EXEC_ARGS; i++)
		e->args[i][0] = '\0';
	/* one more non-NULL pointer means argv was cut */
	arg = 0;
	e->args_truncated = 0;
	if (e->argc == TH_SYSCALL_EXEC_ARGS &&
	    bpf_probe_read_user(&arg, sizeof(arg), &argv[TH_SYSCALL_EXEC_ARGS]) == 0 && arg)
		e->args_truncated = 1;
	e->id = id;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(handle_sys_enter, struct pt_regs *regs, long syscall_id)
{
	struct task_struct *task;
	struct task_state *st;
	__u32 id = (__u32)syscall_id;

	/* ids outside the tables (x32, -1 from ptrace) */
	if (syscall_id < 0 || id >= TH_SYSCALL_MAX_ID)
		return 0;
	/* syscall selection */
	if (filter_syscalls && !traced[id])
		return 0;
	/* pid, tid, cgroup, comm, self */
	task = bpf_get_current_task_btf();
	if (!th_filter_pass(task))
		return 0;
	/* 32-bit syscall numbers would be counted under the wrong names */
	if (skip_compat && in_compat_syscall(task))
		return 0;
	/* start time and id for the exit handler */
	st = bpf_task_storage_get(&task_state, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st)
		return 0;
	st->id = id;
	/* open syscalls: keep the arguments, the path is read at exit */
	if (emit_open && is_open_id(id)) {
		if (id == id_openat || id == id_openat2) {
			st->args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs); /* dirfd */
			st->args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs); /* path */
			st->args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs); /* flags, or open_how* */
			st->args[3] = PT_REGS_PARM4_CORE_SYSCALL(regs); /* mode, or sizeof(open_how) */
		} else {
			st->args[0] = (__u64)-100; /* AT_FDCWD */
			st->args[1] = PT_REGS_PARM1_CORE_SYSCALL(regs);
			if (id == id_creat) {
				st->args[2] = 01 | 0100 | 01000; /* O_WRONLY|O_CREAT|O_TRUNC */
				st->args[3] = PT_REGS_PARM2_CORE_SYSCALL(regs);
			} else {
				st->args[2] = PT_REGS_PARM2_CORE_SYSCALL(regs);
				st->args[3] = PT_REGS_PARM3_CORE_SYSCALL(regs);
			}
		}
	}
	/* exec: the arguments vanish with the old image, copy them now (unless nobody subscribes:
	 * then the exit finds no record and sends nothing) */
	if (emit_exec && is_exec_id(id) && TH_WANTED(exec_events))
		capture_exec(task, regs, id);
	/* timestamp last, so the latency excludes the work above */
	st->start_ns = bpf_ktime_get_ns();
	return 0;
}

/* room to measure an argument longer than TH_SYSCALL_ARG_LEN (its bytes are not kept) */
#define TH_EXEC_SCRATCH_LEN 4096
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[TH_EXEC_SCRATCH_LEN]);
} exec_scratch SEC(".maps");

/*
 * After a successful exec, re-reads the arguments from the new image: the kernel copied argv
 * onto the new stack (mm->arg_start..arg_end, NUL-separated), so those pages are present. The
 * copy taken at entry read the caller's memory, where a page that is not mapped in yet (e.g. a
 * string literal of a freshly forked child: fork does not copy file-backed page tables) makes
 * bpf_probe_read_user fail, as it cannot fault pages in. Keeps the entry copy when this fails.
 */
static __always_inline void reread_exec_args(struct task_struct *task,
					     struct syscall_exec_event *e)
{
	struct mm_struct *mm = task->mm;
	unsigned long p, end;
	long n;
	__u32 i;

	if (!mm)
		return;
	p = BPF_CORE_READ(mm, arg_start);
	end = BPF_CORE_READ(mm, arg_end);
	if (!p || p >= end)
		return;
	for (i = 0; i < TH_SYSCALL_EXEC_ARGS; i++) {
		if (p >= end)
			break;
		n = bpf_probe_read_user_str(e->args[i], TH_SYSCALL_ARG_LEN, (const void *)p);
		if (n <= 0)
			return; /* keep what the entry copy has from here on */
		/* a longer argument was cut at TH_SYSCALL_ARG_LEN: measure it in the scratch buffer */
		if (n == TH_SYSCALL_ARG_LEN) {
			__u32 zero = 0;
			char *scratch = bpf_map_lookup_elem(&exec_scratch, &zero);

			if (!scratch)
				return;
			n = bpf_probe_read_user_str(scratch, TH_EXEC_SCRATCH_LEN, (const void *)p);
			if (n <= 0 || n == TH_EXEC_SCRATCH_LEN) {
				/* longer still: the position of the next argument is unknown */
				e->argc = i + 1;
				for (i = i + 1; i < TH_SYSCALL_EXEC_ARGS; i++)
					e->args[i][0] = '\0';
				e->args_truncated = 1;
				return;
			}
		}
		p += n;
		e->argc = i + 1;
	}
	for (; i < TH_SYSCALL_EXEC_ARGS; i++)
		e->args[i][0] = '\0';
	e->args_truncated = p < end;
}

static __always_inline void emit_exec_event(struct task_struct *task, __u64 pid_tgid,
					    __u64 latency_ns, long ret, int record)
{
	struct syscall_exec_event *e;

	e = bpf_task_storage_get(&exec_state, task, 0, 0);
	if (!e)
		return;
	/* complete the record captured at entry and copy it into the ring */
	if (record) {
		if (ret == 0)
			reread_exec_args(task, e);
		th_fill_header(&e->hdr, pid_tgid);
		e->latency_ns = latency_ns;
		e->ret = ret;
		e->err = th_is_err(ret) ? (__s32)-ret : 0;
		e->ppid = BPF_CORE_READ(task, real_parent, tgid);
		TH_OUTPUT(exec_events, e, sizeof(*e));
	}
	/* the state lives only while the exec is in flight */
	bpf_task_storage_delete(&exec_state, task);
}

static __always_inline void emit_open_event(struct task_state *st, __u32 id, __u64 pid_tgid,
					    __u64 latency_ns, long ret)
{
	struct syscall_open_event *e;
	__u64 flags = st->args[2];
	__u64 mode = st->args[3];

	e = TH_RESERVE(open_events, struct syscall_open_event);
	if (!e)
		return;
	th_fill_header(&e->hdr, pid_tgid);
	e->latency_ns = latency_ns;
	e->ret = ret;
	e->err = th_is_err(ret) ? (__s32)-ret : 0;
	e->dirfd = (__s32)st->args[0];
	/* openat2: flags and mode are the first two u64 of struct open_how */
	if (id == id_openat2) {
		__u64 how[2] = {};

		bpf_probe_read_user(how, sizeof(how), (const void *)st->args[2]);
		flags = how[0];
		mode = how[1];
	}
	e->flags = (__u32)flags;
	e->mode = (__u32)mode;
	e->id = id;
	e->pad = 0;
	/* the path is still mapped: the kernel just read it */
	if (bpf_probe_read_user_str(e->path, sizeof(e->path), (const char *)st->args[1]) < 0)
		e->path[0] = '\0';
	TH_SUBMIT(open_events, e);
}

/* fills a syscall.failed / syscall.slow record */
static __always_inline void fill_event(struct syscall_event *e, __u32 id, __u64 pid_tgid,
				       __u64 latency_ns, long ret)
{
	th_fill_header(&e->hdr, pid_tgid);
	e->latency_ns = latency_ns;
	e->ret = ret;
	e->id = id;
	e->err = th_is_err(ret) ? (__s32)-ret : 0;
}

static __always_inline void count_process(struct task_struct *task, __u32 id, __u64 latency_ns,
					  int err)
{
	/* 8-byte aligned: th_task_comm() stores words */
	struct syscall_process_key key __attribute__((aligned(8)));
	struct syscall_process_stats *ps;

	th_task_comm(task, (__u64 *)key.comm);
	key.pid = per_process == TH_SYSCALL_PER_PROCESS_PID ? task->tgid : 0;
	key.id = id;
	ps = bpf_map_lookup_elem(&process_stats, &key);
	if (!ps) {
		/* first call of this key on any CPU: insert this CPU's value */
		struct syscall_process_stats init = {
			.calls = 1,
			.errors = err,
			.total_ns = latency_ns,
		};

		if (bpf_map_update_elem(&process_stats, &key, &init, BPF_NOEXIST) == 0)
			return;
		/* another CPU inserted it first */
		ps = bpf_map_lookup_elem(&process_stats, &key);
		if (!ps)
			return;
	}
	ps->calls += 1;
	ps->errors += err;
	ps->total_ns += latency_ns;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(handle_sys_exit, struct pt_regs *regs, long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct syscall_stats *stats;
	struct task_state *st;
	__u64 latency_ns, pid_tgid;
	__u32 id, slot;
	int err, record;

	/* only syscalls the entry handler started */
	st = bpf_task_storage_get(&task_state, task, 0, 0);
	if (!st || !st->start_ns)
		return 0;
	latency_ns = bpf_ktime_get_ns() - st->start_ns;
	st->start_ns = 0;
	id = st->id;
	if (id >= TH_SYSCALL_MAX_ID)
		return 0;
	err = th_is_err(ret);
	/* two loads instead of a helper call */
	pid_tgid = (__u64)task->tgid << 32 | (__u32)task->pid;
	/* result filters */
	record = (!failed_only || err) && latency_ns >= min_latency_ns;
	/* exec state is released even when the call is filtered out */
	if (emit_exec && is_exec_id(id))
		emit_exec_event(task, pid_tgid, latency_ns, ret, record);
	if (!record)
		return 0;
	/* per-syscall counters and latency histogram */
	stats = bpf_map_lookup_elem(&syscall_stats, &id);
	if (stats) {
		slot = th_log2_u64(latency_ns);
		if (slot >= TH_SYSCALL_LATENCY_SLOTS)
			slot = TH_SYSCALL_LATENCY_SLOTS - 1;
		stats->calls += 1;
		stats->errors += err;
		stats->total_ns += latency_ns;
		stats->slots[slot] += 1;
	}
	/* per-process counters */
	if (per_process != TH_SYSCALL_PER_PROCESS_OFF)
		count_process(task, id, latency_ns, err);
	/* events */
	if (emit_open && is_open_id(id))
		emit_open_event(st, id, pid_tgid, latency_ns, ret);
	if (emit_failed && err) {
		struct syscall_event *e = TH_RESERVE(failed_events, struct syscall_event);

		if (e) {
			fill_event(e, id, pid_tgid, latency_ns, ret);
			TH_SUBMIT(failed_events, e);
		}
	}
	if (slow_threshold_ns && latency_ns >= slow_threshold_ns) {
		struct syscall_event *e = TH_RESERVE(slow_events, struct syscall_event);

		if (e) {
			fill_event(e, id, pid_tgid, latency_ns, ret);
			TH_SUBMIT(slow_events, e);
		}
	}
	return 0;
}
