/*
 * What every tracehost BPF program includes first: kernel types (CO-RE) and libbpf's helpers.
 */
#ifndef TRACEHOST_COMMON_BPF_H
#define TRACEHOST_COMMON_BPF_H

#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#ifndef TH_ERRNO_MAX
#define TH_ERRNO_MAX 4095 /* MAX_ERRNO: return values in [-4095, -1] are errors */
#endif

/* a syscall return value that encodes -errno */
static __always_inline int th_is_err(long ret)
{
	return ret < 0 && ret >= -TH_ERRNO_MAX;
}

/* floor(log2(v)) for v > 0, and 0 for v == 0; branch-light so the verifier stays happy */
static __always_inline __u32 th_log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 th_log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? th_log2_u32(hi) + 32 : th_log2_u32((__u32)v);
}

/* bytes of a little-endian word from its first NUL on set to zero */
static __always_inline __u64 th_clear_after_nul(__u64 w)
{
	/* high bit set in each zero byte (and maybe above the first one, which is harmless) */
	__u64 zero = (w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL;

	/* keep the bytes below the first zero byte; all of them when there is none */
	return w & ((zero & -zero) - 1);
}

/*
 * The task's name as 16 NUL-padded bytes, e.g. for a map key: two direct loads through the BTF
 * task pointer instead of bpf_get_current_comm() (a helper call plus strscpy, strnlen and
 * memset), which matters on a path that runs for every syscall. The bytes after the NUL are
 * cleared so the key does not depend on what an older, longer name left there.
 */
static __always_inline void th_task_comm(struct task_struct *task, __u64 out[2])
{
	__u64 w0 = th_clear_after_nul(*(__u64 *)&task->comm[0]);
	__u64 w1 = th_clear_after_nul(*(__u64 *)&task->comm[8]);

	out[0] = w0;
	/* the name ended in the first word: the second is padding */
	out[1] = (w0 >> 56) ? w1 : 0;
}

#endif /* TRACEHOST_COMMON_BPF_H */
