/*
 * Ring buffers bound to event topics, and the event header.
 *
 * TH_RINGBUF(name, bytes) defines a BPF_MAP_TYPE_RINGBUF `name` and a per-CPU array
 * `name_drops` (one u64) counting records lost because the ring was full. The host reports that
 * counter as kernel-side drops of the topic the ring is bound to (event_bind_ringbuf).
 *
 * Demand: it also defines `name_muted` (an array of one u32), which the host sets while no sink
 * or plugin subscribes to the ring's topic and clears when one does. While it is set the output
 * macros below write nothing, and TH_WANTED(name) lets a program skip building the event at
 * all: an event stream nobody reads costs one array lookup. A host that does not manage the map
 * leaves it 0: every event is produced.
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
	struct {                                               \
		__uint(type, BPF_MAP_TYPE_ARRAY);              \
		__uint(max_entries, 1);                        \
		__type(key, __u32);                            \
		__type(value, __u32);                          \
	} name##_muted SEC(".maps");                           \
	/* consumer position + 1 at the last forced wakeup */ \
	__u64 name##_woken_at = 0

/* non-zero while the host has muted the ring ("<name>_muted": no subscriber wants its topic) */
static __always_inline int th_muted_(void *muted)
{
	__u32 zero = 0;
	__u32 *m = bpf_map_lookup_elem(muted, &zero);

	return m && *m;
}

/* Does anybody want the events of ring `name`? False while the host has muted it, so a program
 * can skip building an event nobody will read. TH_RESERVE, TH_OUTPUT and TH_STAGED_OUTPUT check
 * it themselves. */
#define TH_WANTED(name) (!th_muted_(&name##_muted))

/* counts `n` lost events in a ring's "<name>_drops" map */
static __always_inline void th_count_drops_(void *drops, __u64 n)
{
	__u32 zero = 0;
	__u64 *d = bpf_map_lookup_elem(drops, &zero);

	if (d)
		*d += n;
}

/* counts one lost record in a ring's "<name>_drops" map */
static __always_inline void th_count_drop(void *drops)
{
	th_count_drops_(drops, 1);
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

/* reserves a record of `type` in ring `name`; NULL when it is full (a counted drop) or muted */
#define TH_RESERVE(name, type) \
	((type *)(TH_WANTED(name) ? th_reserve_(&name, &name##_drops, sizeof(type)) : NULL))

/* commits a record obtained from TH_RESERVE(name, ...) */
#define TH_SUBMIT(name, rec) bpf_ringbuf_submit((rec), th_wakeup_flags(&name, &name##_woken_at))

/* copies `size` bytes at `data` into ring `name` as one record, counting a drop on failure;
 * nothing while the ring is muted */
#define TH_OUTPUT(name, data, size)                                                 \
	do {                                                                        \
		if (TH_WANTED(name) &&                                              \
		    bpf_ringbuf_output(&name, (data), (size),                       \
				       th_wakeup_flags(&name, &name##_woken_at)) != 0) \
			th_count_drop(&name##_drops);                               \
	} while (0)

/*
 * Staged rings: TH_STAGED_RINGBUF(name, bytes, type, slots) is TH_RINGBUF(name, bytes) plus a
 * per-CPU stage of `slots` events of `ev_type` (a power of two). TH_STAGED_OUTPUT(name, &ev)
 * copies one event into the stage of the current CPU; a full stage goes into the ring as ONE
 * record of `slots` events back to back. Committing a ring record costs far more than the
 * copy: its locked instructions wait for the cache lines the consumer on another CPU read a
 * lap earlier, so one record of 8 events costs about what one event did, and 32 a little less
 * again per event (docs/performance.md §5, runs 14 and 16). The host splits the records (bind
 * the ring with TH_RINGBUF_STAGED) and, before each poll round, runs the program `<name>_flush`
 * on every CPU whose stage has held events for half a poll interval or more (at stop, on every
 * CPU whose stage holds any), so events still reach the bus within about 1.5 poll intervals at
 * any rate. A stage that fills on its own sooner costs no flush: a flush is an interrupt to
 * that CPU, which the host waits for (run 16).
 *
 * The stage of a CPU is busy while an event is copied in or flushed: an event that finds it
 * busy (a program interrupted by another using the same ring on the same CPU) goes into the
 * ring directly as a record of one event, and the flush of a busy stage waits for the next
 * round. Events of one CPU keep their order; events of different CPUs may reach the bus up to
 * about 1.5 poll intervals apart from the order they happened in (each carries its time stamp).
 */

/* value of "<name>_staged": the stage of one CPU (the host reads it) */
struct th_stage_state {
	__u32 count;    /* events waiting */
	__u32 busy;
	__u64 first_ns; /* bpf_ktime_get_ns() when the first of them came in */
};

#define TH_STAGED_RINGBUF(name, bytes, ev_type, slots)                                      \
	_Static_assert(((slots) & ((slots) - 1)) == 0 && (slots) >= 2 && (slots) <= 64,  \
		       "TH_STAGED_RINGBUF: slots must be a power of two in 2..64");      \
	TH_RINGBUF(name, bytes);                                                         \
	struct {                                                                         \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                 \
		__uint(max_entries, 1);                                                  \
		__type(key, __u32);                                                      \
		__type(value, struct th_stage_state);                                    \
	} name##_staged SEC(".maps");                                                    \
	struct {                                                                         \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                 \
		__uint(max_entries, 1);                                                  \
		__type(key, __u32);                                                      \
		__type(value, ev_type[slots]);                                              \
	} name##_stage SEC(".maps");                                                     \
	enum { name##_slots_ = (slots), name##_size_ = sizeof(ev_type) };                  \
	SEC("raw_tp")                                                                    \
	int name##_flush(void *ctx)                                                      \
	{                                                                                \
		th_stage_flush_(&name, &name##_drops, &name##_woken_at, &name##_staged,  \
				&name##_stage, sizeof(ev_type), (slots), 0);                \
		return 0;                                                                \
	}

static __always_inline void th_stage_busy_(struct th_stage_state *s, __u32 busy)
{
	/* seen by an interrupt on this CPU: only the compiler may not reorder it */
	asm volatile("" ::: "memory");
	*(volatile __u32 *)&s->busy = busy;
	asm volatile("" ::: "memory");
}

/* Writes the stage's events into the ring as one record. `held`: the caller set busy already. */
static __always_inline void th_stage_flush_(void *rb, void *drops, __u64 *woken_at,
					    void *state_map, void *stage_map, __u32 size,
					    __u32 slots, int held)
{
	__u32 zero = 0;
	struct th_stage_state *s = bpf_map_lookup_elem(state_map, &zero);
	void *stage = bpf_map_lookup_elem(stage_map, &zero);
	__u32 n;

	if (!s || !stage || (!held && s->busy))
		return;
	n = s->count;
	if (n == 0)
		return;
	if (n > slots)
		n = slots;
	if (!held)
		th_stage_busy_(s, 1);
	if (bpf_ringbuf_output(rb, stage, (__u64)n * size, th_wakeup_flags(rb, woken_at)) != 0)
		th_count_drops_(drops, n);
	s->count = 0;
	if (!held)
		th_stage_busy_(s, 0);
}

static __always_inline void th_stage_output_(void *rb, void *drops, __u64 *woken_at,
					     void *state_map, void *stage_map, const void *ev,
					     __u32 size, __u32 slots)
{
	__u32 zero = 0;
	struct th_stage_state *s = bpf_map_lookup_elem(state_map, &zero);
	__u8 *stage = bpf_map_lookup_elem(stage_map, &zero);
	__u32 i;

	if (!s || !stage || s->busy) {
		if (bpf_ringbuf_output(rb, (void *)ev, size, th_wakeup_flags(rb, woken_at)) != 0)
			th_count_drop(drops);
		return;
	}
	th_stage_busy_(s, 1);
	i = s->count & (slots - 1);
	if (i == 0)
		s->first_ns = bpf_ktime_get_ns();
	__builtin_memcpy(stage + (__u64)i * size, ev, size);
	s->count = i + 1;
	if (i + 1 == slots)
		th_stage_flush_(rb, drops, woken_at, state_map, stage_map, size, slots, 1);
	th_stage_busy_(s, 0);
}

/* copies the event at `ev` (of the ring's type) into the stage of ring `name` (see above);
 * nothing while the ring is muted */
#define TH_STAGED_OUTPUT(name, ev)                                                        \
	do {                                                                              \
		if (TH_WANTED(name))                                                      \
			th_stage_output_(&name, &name##_drops, &name##_woken_at,          \
					 &name##_staged, &name##_stage, (ev), name##_size_, \
					 name##_slots_);                                  \
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
