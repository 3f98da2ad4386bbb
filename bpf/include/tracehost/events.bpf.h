/*
 * Ring buffers bound to event topics, and the event header.
 *
 * TH_RINGBUF(name, bytes) defines a BPF_MAP_TYPE_RINGBUF `name` and a per-CPU array
 * `name_drops` (one u64) counting records lost because the ring was full. The host reports that
 * counter as kernel-side drops of the topic the ring is bound to (event_bind_ringbuf).
 *
 * Wakeups: every record is committed with BPF_RB_NO_WAKEUP, so a busy producer does not pay
 * for a wakeup (an IPI and a context switch) per record. The host polls with a short timeout
 * ([host] poll_interval_ms) and then consumes, so latency at low rates stays bounded. Only when
 * the ring holds more than 1/2^th_rb_wakeup_shift of its size is a wakeup forced, so a burst
 * is drained before the ring overflows; and only once per position of the consumer: until the
 * consumer has moved it is awake already or about to be, and every further forced wakeup would
 * cost the producer an irq_work self-IPI and the consumer's CPU a reschedule IPI for nothing
 * (under the network plugin, 229-1053 such interrupts per 20 000 loopback connections; 24-40
 * with this rule).
 */
#ifndef TRACEHOST_EVENTS_BPF_H
#define TRACEHOST_EVENTS_BPF_H

#include "tracehost/common.bpf.h"
#include "tracehost/event_header.h"

/* fill level (1/2^shift of the ring) above which a commit wakes the host; set before load */
const volatile __u32 th_rb_wakeup_shift = 2;

#define TH_RINGBUF(name, bytes)                                \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_RINGBUF);            \
		__uint(max_entries, (bytes));                  \
	} name SEC(".maps");                                   \
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);       \
		__uint(max_entries, 1);                        \
		__type(key, __u32);                            \
		__type(value, __u64);                          \
	} name##_drops SEC(".maps");                           \
	/* consumer position + 1 at the last forced wakeup */ \
	__u64 name##_woken_at = 0

/* counts one lost record in a ring's "<name>_drops" map */
static __always_inline void th_count_drop(void *drops)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(drops, &zero);

	if (n)
		*n += 1;
}

/* BPF_RB_FORCE_WAKEUP when the ring is past the fill threshold and no wakeup was forced at the
 * consumer's current position yet (woken_at: the ring's "<name>_woken_at"), else
 * BPF_RB_NO_WAKEUP. Two CPUs may both force one: harmless. */
static __always_inline __u64 th_wakeup_flags(void *rb, __u64 *woken_at)
{
	__u64 avail = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);
	__u64 size = bpf_ringbuf_query(rb, BPF_RB_RING_SIZE);
	__u64 at;

	if (avail < (size >> th_rb_wakeup_shift))
		return BPF_RB_NO_WAKEUP;
	at = bpf_ringbuf_query(rb, BPF_RB_CONS_POS) + 1;
	if (*woken_at == at)
		return BPF_RB_NO_WAKEUP;
	*woken_at = at;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline void *th_reserve_(void *rb, void *drops, __u64 size)
{
	void *rec = bpf_ringbuf_reserve(rb, size, 0);

	if (!rec)
		th_count_drop(drops);
	return rec;
}

/* reserves a record of `type` in ring `name`; NULL (and a counted drop) when it is full */
#define TH_RESERVE(name, type) ((type *)th_reserve_(&name, &name##_drops, sizeof(type)))

/* commits a record obtained from TH_RESERVE(name, ...) */
#define TH_SUBMIT(name, rec) bpf_ringbuf_submit((rec), th_wakeup_flags(&name, &name##_woken_at))

/* copies `size` bytes at `data` into ring `name` as one record, counting a drop on failure */
#define TH_OUTPUT(name, data, size)                                                \
	do {                                                                       \
		if (bpf_ringbuf_output(&name, (data), (size),                      \
				       th_wakeup_flags(&name, &name##_woken_at)) != 0) \
			th_count_drop(&name##_drops);                              \
	} while (0)

/* fills the common header from the current task */
static __always_inline void th_fill_header(struct th_event_header *h, __u64 pid_tgid)
{
	__u64 uid_gid = bpf_get_current_uid_gid();

	h->timestamp_ns = bpf_ktime_get_ns();
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->uid = (__u32)uid_gid;
	h->gid = uid_gid >> 32;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

#endif /* TRACEHOST_EVENTS_BPF_H */
