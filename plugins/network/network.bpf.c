// SPDX-License-Identifier: GPL-2.0
/*
 * network: TCP connection lifecycle (connect, accept, close, failed connect), connect latency,
 * accept-side handshake time, retransmits and sampled RTT, attributed to the owning process.
 *
 * Only tracepoints (tp_btf) and CO-RE reads. Most of these tracepoints fire in softirq context
 * where `current` is whoever the packet interrupted, so the owner is remembered when it is known:
 * at connect() (CLOSE -> SYN_SENT) and listen() (CLOSE -> LISTEN), both in the caller's context.
 * A connecting socket's owner goes into the socket table (below); a listener's into a hash keyed
 * by network namespace, family and port (listeners), where an accepted child finds it when it
 * reaches ESTABLISHED and copies it into the socket table. Entries are deleted when their socket
 * reaches CLOSE, which every TCP socket passes through before the kernel frees it.
 *
 * The socket table is a direct-mapped array (sock_slots) indexed by a hash of the socket's
 * cookie and tagged with it, so the common lookup is an inlined array access and a compare
 * rather than a hash map operation; a socket whose slot another socket holds goes to an overflow
 * hash (sock_state). All of it is preallocated: no allocation, no memory-cgroup charge and no
 * RCU free per connection, which socket local storage (create + BPF_F_CLONE copy into every
 * child + free) costs. A socket's events are serialized by the socket's lock (process context
 * holds it, softirq and timers take it or defer), so only claiming a free slot races, between
 * two sockets, and is a compare-and-swap.
 *
 * Task filters (pids, comms, cgroup, the host itself) are applied at those two process-context
 * points; a rejected socket gets an "excluded" entry so later softirq events skip it. Sockets
 * that were open before the plugin started get their entries from two iterators the plugin runs
 * once after attaching (end of this file): the process holding each one is its owner. Sockets
 * first seen later (no process holds them) are adopted: an accepted child with its listener's
 * owner, anything else under "[unknown]" unless a task filter is configured (then nobody can say
 * whether they pass).
 */
#include "tracehost/common.bpf.h"
#include "tracehost/events.bpf.h"
#include "tracehost/filters.bpf.h"

#include <bpf/bpf_endian.h>

#include "network.h"

char LICENSE[] SEC("license") = "GPL";

#define TH_NET_IPPROTO_TCP 6

/* label selection bits (rodata labels, rtt_labels) */
#define TH_NET_L_COMM 1
#define TH_NET_L_RADDR 2
#define TH_NET_L_RPORT 4
#define TH_NET_L_PORT 8
#define TH_NET_L_DIRECTION 16

/* config, set by the plugin before load */
const volatile __u32 family_filter = TH_NET_FAMILY_ALL;
const volatile __u32 use_ports = 0;       /* non-zero: only sockets with a port in port_filter */
const volatile __u32 task_filtered = 0;   /* pids/comms/cgroup set: skip sockets of unknown owner */
const volatile __u32 labels = TH_NET_L_COMM | TH_NET_L_DIRECTION;
const volatile __u32 rtt_labels = TH_NET_L_COMM;
const volatile __u64 rtt_interval_us = 1000000ULL;
const volatile __u64 rtt_window_budget = 0; /* samples per CPU per window; 0: no limit */
const volatile __u32 emit_connect = 1;
const volatile __u32 emit_accept = 1;
const volatile __u32 emit_close = 1;
const volatile __u32 emit_failed = 1;

/* the socket table: slot (cookie & slot_mask) holds the state of the socket with that cookie;
 * slot_mask + 1 slots, a power of two sized by the plugin */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct net_sock_slot);
} sock_slots SEC(".maps");
const volatile __u32 slot_mask = 8191;

/* overflow of the socket table: sockets whose slot another held, keyed by cookie; sized by the
 * plugin (max_connections). Allocated on use: most hosts never need it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct net_sock_state);
} sock_state SEC(".maps");

/* entries in sock_state: while 0 (the common case) a slot miss needs no hash lookup */
__u64 overflow_entries = 0;

/* sockets the start-up walk found, by address, until first seen (claim_walked()); sized by the
 * plugin (max_connections). Allocated on use. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct net_walked_sock);
} sock_walked SEC(".maps");

/* entries in sock_walked: while 0 (once every walked socket was seen) a miss costs no lookup */
__u64 walked_entries = 0;

/* listeners' owners, by (netns, family, port); sized by the plugin */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct net_listen_key);
	__type(value, struct net_listener);
} listeners SEC(".maps");

/* [0]: sockets not tracked because sock_state or listeners was full */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} untracked SEC(".maps");

/* ports filter: local or remote port (host order) in this set; sized by the plugin */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u16);
	__type(value, __u8);
} port_filter SEC(".maps");

/* metric maps, sized by the plugin (metric_map_entries); LRU so old label sets make room.
 * Shared across CPUs (atomic adds): per-CPU copies of 36-slot histograms would cost
 * entries x CPUs x 296 bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct net_key);
	__type(value, struct net_conn_stats);
} conn_stats SEC(".maps");

/* key.extra = errno */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct net_key);
	__type(value, __u64);
} fail_stats SEC(".maps");

/* key.extra = TH_NET_RETRANS_*; value = retransmitted segments */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct net_key);
	__type(value, __u64);
} retrans_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct net_key);
	__type(value, struct net_hist);
} rtt_hist SEC(".maps");

/* [0]: this CPU's RTT sample budget (rtt_window_budget) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct net_rtt_budget);
} rtt_budget SEC(".maps");

/* one ring per topic; sized by the plugin (ringbuf_kb, one page when the topic is off). The
 * frequent three are staged: up to 32 events (4 KiB) a ring record (events.bpf.h); 32 took
 * about 0.15 us a connection off 8 (docs/performance.md §5, run 16) */
TH_STAGED_RINGBUF(connect_events, 256 * 1024, struct net_tcp_event, 32);
TH_STAGED_RINGBUF(accept_events, 256 * 1024, struct net_tcp_event, 32);
TH_STAGED_RINGBUF(close_events, 256 * 1024, struct net_tcp_event, 32);
TH_RINGBUF(failed_events, 256 * 1024);

/* initial values for map inserts (read-only data, so no stack copies) */
const struct net_conn_stats zero_stats = {};
const struct net_hist zero_hist = {};
const __u64 zero_u64 = 0;

/* ---- socket facts ------------------------------------------------------------------------- */

static __always_inline int family_passes(__u16 family)
{
	if (family == TH_NET_AF_INET)
		return family_filter != TH_NET_FAMILY_IPV6;
	if (family == TH_NET_AF_INET6)
		return family_filter != TH_NET_FAMILY_IPV4;
	return 0;
}

static __always_inline int ports_pass(__u16 sport, __u16 dport)
{
	if (!use_ports)
		return 1;
	return bpf_map_lookup_elem(&port_filter, &sport) || bpf_map_lookup_elem(&port_filter, &dport);
}

static __always_inline int sk_ports_pass(const struct sock *sk)
{
	if (!use_ports)
		return 1;
	return ports_pass(sk->__sk_common.skc_num, bpf_ntohs(sk->__sk_common.skc_dport));
}

/* remote address as 16 bytes, IPv4 mapped into IPv6 (::ffff:a.b.c.d) */
static __always_inline void remote_mapped(const struct sock_common *skc, __u8 out[16])
{
	if (skc->skc_family == TH_NET_AF_INET) {
		__u32 *w = (__u32 *)out;

		w[0] = 0;
		w[1] = 0;
		w[2] = bpf_htonl(0x0000ffff);
		w[3] = skc->skc_daddr;
	} else {
		bpf_probe_read_kernel(out, 16, &skc->skc_v6_daddr);
	}
}

/* the metric key of a connection, with only the selected label fields set */
static __always_inline void fill_key(struct net_key *k, __u32 sel, const struct sock_common *skc,
				     __u16 sport, const char *comm, __u32 direction, __u32 extra)
{
	__builtin_memset(k, 0, sizeof(*k));
	if (sel & TH_NET_L_COMM)
		__builtin_memcpy(k->comm, comm, TH_COMM_LEN);
	if (sel & TH_NET_L_RADDR)
		remote_mapped(skc, k->raddr);
	if (sel & TH_NET_L_RPORT)
		k->rport = bpf_ntohs(skc->skc_dport);
	if (sel & TH_NET_L_PORT)
		k->port = direction == TH_NET_DIR_IN ? sport : bpf_ntohs(skc->skc_dport);
	if (sel & TH_NET_L_DIRECTION)
		k->direction = direction;
	k->extra = extra;
}

const char unknown_comm[TH_COMM_LEN] = "[unknown]";

/* ---- metric updates ----------------------------------------------------------------------- */

static __always_inline void *lookup_or_init(void *map, struct net_key *k, const void *init)
{
	void *v = bpf_map_lookup_elem(map, k);

	if (v)
		return v;
	bpf_map_update_elem(map, k, init, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, k);
}

static __always_inline void count(void *map, struct net_key *k, __u64 n)
{
	__u64 *v = lookup_or_init(map, k, &zero_u64);

	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline void hist_add(__u64 *slots, __u64 *sum, __u64 ns)
{
	__u32 slot = th_log2_u64(ns);

	if (slot >= TH_NET_SLOTS)
		slot = TH_NET_SLOTS - 1;
	__sync_fetch_and_add(&slots[slot], 1);
	__sync_fetch_and_add(sum, ns);
}

static __always_inline void observe(void *map, struct net_key *k, __u64 ns)
{
	struct net_hist *h = lookup_or_init(map, k, &zero_hist);

	if (h)
		hist_add(h->slots, &h->sum_ns, ns);
}

static __always_inline void count_untracked(void)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&untracked, &zero);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* ---- events ------------------------------------------------------------------------------- */

static __always_inline void fill_event(struct net_tcp_event *e, const struct sock_common *skc,
				       __u16 sport, const struct net_sock_state *st, __u64 now,
				       __u32 direction)
{
	__u16 family = skc->skc_family;

	e->hdr.timestamp_ns = now;
	e->hdr.cgroup_id = st->owner.cgroup_id;
	e->hdr.pid = st->owner.pid;
	e->hdr.tid = st->owner.tid;
	e->hdr.uid = st->owner.uid;
	e->hdr.gid = st->owner.gid;
	__builtin_memcpy(e->hdr.comm, st->owner.comm, TH_COMM_LEN);
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	if (family == TH_NET_AF_INET) {
		*(__u32 *)e->saddr = skc->skc_rcv_saddr;
		*(__u32 *)e->daddr = skc->skc_daddr;
	} else {
		bpf_probe_read_kernel(e->saddr, 16, &skc->skc_v6_rcv_saddr);
		bpf_probe_read_kernel(e->daddr, 16, &skc->skc_v6_daddr);
	}
	e->sport = sport;
	e->dport = bpf_ntohs(skc->skc_dport);
	e->family = family;
	e->direction = direction;
	e->duration_ns = 0;
	e->bytes_sent = 0;
	e->bytes_received = 0;
	e->retransmits = 0;
	e->srtt_us = 0;
	e->reason = 0;
	e->pad = 0;
}

/* ---- the socket table ------------------------------------------------------------------- */

/* the socket's cookie: a 64-bit id the kernel gives each socket once and never reuses (generated
 * on first use, reset in accepted children), so a slot's tag cannot match a later socket */
static __always_inline __u64 sock_id(const struct sock *sk)
{
	__u64 id = sk->__sk_common.skc_cookie.counter;

	return id ? id : bpf_get_socket_cookie((void *)sk);
}

static __always_inline struct net_sock_slot *sock_slot(__u64 id)
{
	/* cookies are handed out in sequence (per CPU), so consecutive sockets take consecutive
	 * slots and the slots of short-lived ones are reused while still in cache */
	__u32 i = id & slot_mask;

	return bpf_map_lookup_elem(&sock_slots, &i);
}

/* the state of the socket with cookie id, whose slot is s: in the slot, else in the overflow */
static __always_inline struct net_sock_state *sock_find(__u64 id, struct net_sock_slot *s)
{
	if (s && s->cookie == id)
		return &s->st;
	if (!overflow_entries)
		return 0;
	return bpf_map_lookup_elem(&sock_state, &id);
}

/* sk's state, or NULL when it has none */
static __always_inline struct net_sock_state *sock_lookup(const struct sock *sk)
{
	__u64 id = sock_id(sk);

	return sock_find(id, sock_slot(id));
}

/*
 * Whether a slot's holder has gone without its CLOSE being seen (no path is known to do that;
 * this keeps such a slot from staying taken for good): the socket at its address no longer
 * carries its cookie. TCP sockets are SLAB_TYPESAFE_BY_RCU, so that memory is a socket or a
 * free slab object; the read cannot fault either way.
 */
static __always_inline int slot_stale(const struct net_sock_slot *s, __u64 holder)
{
	const struct sock *sk = (const struct sock *)s->sk;

	return BPF_CORE_READ(sk, __sk_common.skc_cookie.counter) != holder;
}

/*
 * Stores st as sk's state and returns where it lives: sk's slot when that is free or sk's
 * already, else the overflow hash. replace == 0 keeps a state sk already has (two CPUs adopting
 * one socket: the first wins). NULL when both are full (counted as untracked).
 */
static __always_inline struct net_sock_state *sock_store(const struct sock *sk,
							 const struct net_sock_state *st, int replace)
{
	__u64 id = sock_id(sk);
	struct net_sock_slot *s = sock_slot(id);
	struct net_sock_state *old = sock_find(id, s);
	__u64 holder;
	long err;

	if (old) {
		if (replace)
			*old = *st;
		return old;
	}
	holder = s ? s->cookie : 0;
	if (s && (!holder || slot_stale(s, holder)) &&
	    __sync_val_compare_and_swap(&s->cookie, holder, id) == holder) {
		s->sk = (__u64)sk;
		s->st = *st;
		return &s->st;
	}
	err = bpf_map_update_elem(&sock_state, &id, st, BPF_NOEXIST);
	if (!err) {
		__sync_fetch_and_add(&overflow_entries, 1);
	} else if (err != -17 /* EEXIST: another CPU stored it first */) {
		count_untracked(); /* E2BIG: full */
		return 0;
	}
	return bpf_map_lookup_elem(&sock_state, &id);
}

static __always_inline void sock_forget(const struct sock *sk)
{
	__u64 id = sock_id(sk);
	struct net_sock_slot *s = sock_slot(id);

	if (s && s->cookie == id) {
		s->cookie = 0;
		return;
	}
	if (overflow_entries && bpf_map_delete_elem(&sock_state, &id) == 0)
		__sync_fetch_and_add(&overflow_entries, -1);
}

/* ---- the owner ---------------------------------------------------------------------------- */

static __always_inline void fill_owner(struct net_owner *o, struct task_struct *task)
{
	__u64 uid_gid = bpf_get_current_uid_gid();

	o->cgroup_id = bpf_get_current_cgroup_id();
	o->pid = task->tgid;
	o->tid = task->pid;
	o->uid = (__u32)uid_gid;
	o->gid = uid_gid >> 32;
	th_task_comm(task, (__u64 *)o->comm);
}

/* fill_owner() for a task that is not the current one (an iterator's): the same values, read
 * from the task where fill_owner() asks the helpers that only know the current task */
static __always_inline void fill_task_owner(struct net_owner *o, struct task_struct *task)
{
	o->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	o->pid = task->tgid;
	o->tid = task->pid;
	o->uid = BPF_CORE_READ(task, cred, uid.val);
	o->gid = BPF_CORE_READ(task, cred, gid.val);
	th_task_comm(task, (__u64 *)o->comm);
}

static __always_inline void fill_listen_key(struct net_listen_key *k, const struct sock *sk)
{
	k->net = (__u64)sk->__sk_common.skc_net.net;
	k->port = sk->__sk_common.skc_num;
	k->family = sk->__sk_common.skc_family;
	k->pad = 0;
}

/*
 * sk's owner when task opened it (or holds it), filled into o; 0 when the family or task filters
 * reject it. current: task is the current task (process context: the helpers answer for it),
 * else an iterator's task (read from the task). Constant at every call, so it folds away.
 */
static __always_inline int take_owner(struct net_owner *o, const struct sock *sk,
				      struct task_struct *task, int current)
{
	if (!family_passes(sk->__sk_common.skc_family) ||
	    !(current ? th_filter_pass(task) : th_filter_pass_task(task)))
		return 0;
	if (current)
		fill_owner(o, task);
	else
		fill_task_owner(o, task);
	return 1;
}

/* connect() (CLOSE -> SYN_SENT), process context: remember the caller, or mark the socket
 * excluded. A connect() after a failed one starts from scratch either way. */
static __always_inline void remember_connect(const struct sock *sk)
{
	struct net_sock_state st = {};

	if (take_owner(&st.owner, sk, bpf_get_current_task_btf(), 1)) {
		st.start_ns = bpf_ktime_get_ns();
		st.direction = TH_NET_DIR_OUT;
		st.kind = TH_NET_KIND_CONNECTING;
	} else {
		st.kind = TH_NET_KIND_EXCLUDED;
	}
	sock_store(sk, &st, 1);
}

/* Stores sk as a listener owned by task (current: as in take_owner()), with the map update's
 * flags. Returns its kind, or 0 when the map refused it. */
static __always_inline __u32 put_listener(const struct sock *sk, struct task_struct *task,
					  int current, __u64 flags)
{
	struct net_listener l = {};
	struct net_listen_key k;

	fill_listen_key(&k, sk);
	l.sk = (__u64)sk;
	l.kind = take_owner(&l.owner, sk, task, current) ? TH_NET_KIND_LISTENER
							   : TH_NET_KIND_EXCLUDED;
	return bpf_map_update_elem(&listeners, &k, &l, flags) ? 0 : l.kind;
}

/* listen() (CLOSE -> LISTEN), process context: the owner of every child this listener accepts */
static __always_inline void remember_listen(const struct sock *sk)
{
	if (!put_listener(sk, bpf_get_current_task_btf(), 1, BPF_ANY))
		count_untracked();
}

/* the listener that accepted sk: the one in sk's namespace on sk's local port, unless that is sk
 * itself; NULL for a socket that was not accepted or whose listener is not known */
static __always_inline struct net_listener *listener_of(const struct sock *sk)
{
	struct net_listen_key k;
	struct net_listener *l;

	if (!sk->__sk_common.skc_num)
		return 0;
	fill_listen_key(&k, sk);
	l = bpf_map_lookup_elem(&listeners, &k);
	return l && l->sk != (__u64)sk ? l : 0;
}

/* LISTEN -> CLOSE: forget the listener, unless a later listen() on the same key replaced it */
static __always_inline void forget_listen(const struct sock *sk)
{
	struct net_listen_key k;
	struct net_listener *l;

	fill_listen_key(&k, sk);
	l = bpf_map_lookup_elem(&listeners, &k);
	if (l && l->sk == (__u64)sk)
		bpf_map_delete_elem(&listeners, &k);
}

/*
 * The state of a socket seen for the first time after it opened (before the plugin started, or
 * while the tables were full), filled into st: an accepted child of a listener whose owner is
 * known (a local port with a listener in its namespace) gets that owner, inbound; anything else
 * the owner "[unknown]". NULL when it is not reported: the family filter rejects it, or a task
 * filter is set and no listener vouches for it (it may belong to a filtered-out process).
 */
static __always_inline struct net_sock_state *unseen_state(const struct sock *sk,
							   struct net_sock_state *st)
{
	struct net_listener *l;

	if (!family_passes(sk->__sk_common.skc_family))
		return 0;
	__builtin_memset(st, 0, sizeof(*st));
	st->sport = sk->__sk_common.skc_num;
	st->kind = TH_NET_KIND_UNKNOWN;
	l = listener_of(sk);
	if (l) {
		if (l->kind == TH_NET_KIND_EXCLUDED)
			st->kind = TH_NET_KIND_EXCLUDED;
		st->owner = l->owner;
		st->direction = TH_NET_DIR_IN;
		return st;
	}
	if (task_filtered)
		return 0;
	__builtin_memcpy(st->owner.comm, unknown_comm, TH_COMM_LEN);
	return st;
}

/*
 * The state the start-up walk gave sk, moved into the socket table now that sk's cookie can be
 * taken; NULL when the walk did not find sk. An entry whose addresses or remote port differ
 * belongs to a socket that closed while the walk ran and whose memory sk reuses: dropped.
 */
static __always_inline struct net_sock_state *claim_walked(const struct sock *sk)
{
	const struct sock_common *skc = &sk->__sk_common;
	struct net_sock_state *st = 0;
	struct net_walked_sock *w;
	__u64 addr = (__u64)sk;

	if (!walked_entries)
		return 0;
	w = bpf_map_lookup_elem(&sock_walked, &addr);
	if (!w)
		return 0;
	if (w->addrpair == skc->skc_addrpair && w->dport == skc->skc_dport &&
	    w->family == skc->skc_family)
		st = sock_store(sk, &w->st, 0);
	if (bpf_map_delete_elem(&sock_walked, &addr) == 0)
		__sync_fetch_and_add(&walked_entries, -1);
	return st;
}

/* sk's state on first sight: the walk's, else unseen_state() stored as sk's entry (deleted at
 * CLOSE like any other); NULL: not reported */
static __always_inline struct net_sock_state *adopt(const struct sock *sk)
{
	struct net_sock_state st, *walked = claim_walked(sk);

	if (walked)
		return walked;
	return unseen_state(sk, &st) ? sock_store(sk, &st, 0) : 0;
}

/* ---- state changes ------------------------------------------------------------------------ */

/*
 * SYN_RECV -> ESTABLISHED of an accepted child: its state is its listener's owner, inserted
 * with one map update; reported from here on (LISTENER becomes ESTABLISHED in on_established)
 * when that listener is known, else adopted. Returns the child's entry, or NULL when it is not
 * reported. A child adopted before (e.g. a retransmitted SYN-ACK of a Fast Open child) keeps its
 * entry.
 */
static __always_inline struct net_sock_state *child_state(const struct sock *sk)
{
	struct net_sock_state child;

	if (!unseen_state(sk, &child))
		return sock_lookup(sk);
	if (child.kind == TH_NET_KIND_UNKNOWN && child.direction == TH_NET_DIR_IN)
		child.kind = TH_NET_KIND_LISTENER;
	return sock_store(sk, &child, 0);
}

/*
 * When a socket reached ESTABLISHED, in CLOCK_MONOTONIC ns. Both ways there (the SYN-ACK of an
 * active open, the final ACK of a passive one) go through tcp_rcv_state_process(), which has just
 * refreshed tcp_sock.tcp_mstamp, the same clock in microseconds: reading it saves a clock read
 * (about 65 ns on our VMs, two per connection). A stamp from before connect() (start_ns) would
 * mean a path that did not refresh it: then the clock.
 */
static __always_inline __u64 established_at(const struct tcp_sock *tp, __u64 start_ns)
{
	__u64 now = tp ? tp->tcp_mstamp * 1000 : 0;

	return now && now >= start_ns ? now : bpf_ktime_get_ns();
}

/* SYN_SENT -> ESTABLISHED (active) or SYN_RECV -> ESTABLISHED (passive child) */
static __always_inline void on_established(const struct sock *sk, __u32 direction)
{
	const struct sock_common *skc = &sk->__sk_common;
	struct net_sock_state *st;
	struct net_conn_stats *cs;
	struct tcp_sock *tp;
	struct net_key key;
	__u64 now, took = 0;
	__u32 was;

	if (direction == TH_NET_DIR_OUT) {
		st = sock_lookup(sk);
		if (!st)
			st = adopt(sk);
	} else {
		st = child_state(sk);
	}
	if (!st)
		return;
	was = st->kind;
	if (was == TH_NET_KIND_EXCLUDED || was == TH_NET_KIND_ESTABLISHED)
		return;
	if (!sk_ports_pass(sk)) {
		st->kind = TH_NET_KIND_EXCLUDED;
		return;
	}
	tp = bpf_skc_to_tcp_sock((void *)sk);
	now = established_at(tp, st->start_ns);
	if (direction == TH_NET_DIR_OUT) {
		/* connect latency: connect() to the SYN-ACK's arrival */
		if (was == TH_NET_KIND_CONNECTING && now > st->start_ns)
			took = now - st->start_ns;
	} else if (tp) {
		/* handshake: the child's first RTT sample, SYN-ACK sent -> final ACK received */
		took = (__u64)(tp->srtt_us >> 3) * 1000;
	}
	st->kind = was == TH_NET_KIND_UNKNOWN ? TH_NET_KIND_UNKNOWN : TH_NET_KIND_ESTABLISHED;
	st->direction = direction;
	st->established_ns = now;
	st->last_rtt_us = 0;
	st->sport = skc->skc_num;

	/* counters and both handshake histograms share one value: one map lookup */
	fill_key(&key, labels, skc, st->sport, st->owner.comm, direction, 0);
	cs = lookup_or_init(&conn_stats, &key, &zero_stats);
	if (cs)
		__sync_fetch_and_add(&cs->opened, 1);
	if (was == TH_NET_KIND_UNKNOWN)
		return; /* no owner for an event; no start time for a latency */
	if (direction == TH_NET_DIR_OUT) {
		if (cs)
			hist_add(cs->connect_slots, &cs->connect_sum, took);
		if (emit_connect && TH_WANTED(connect_events)) {
			struct net_tcp_event e;

			fill_event(&e, skc, st->sport, st, now, direction);
			e.duration_ns = took;
			TH_STAGED_OUTPUT(connect_events, &e);
		}
	} else {
		if (took && cs)
			hist_add(cs->accept_slots, &cs->accept_sum, took);
		if (emit_accept && TH_WANTED(accept_events)) {
			struct net_tcp_event e;

			fill_event(&e, skc, st->sport, st, now, direction);
			e.duration_ns = took;
			if (tp)
				e.retransmits = tp->total_retrans;
			TH_STAGED_OUTPUT(accept_events, &e);
		}
	}
}

/*
 * Payload bytes from the kernel's counters, which also count sequence space: bytes_acked
 * includes our SYN (active open) and our FIN once acknowledged, bytes_received the peer's FIN
 * (SOCK_DONE is set exactly when it arrived).
 */
static __always_inline void payload_bytes(const struct sock *sk, struct tcp_sock *tp, int oldstate,
					  __u32 direction, int own_syn, __u64 *sent, __u64 *received)
{
	__u64 acked = tp->bytes_acked;
	__u64 in = tp->bytes_received;
	int fin_sent = oldstate == TCP_FIN_WAIT1 || oldstate == TCP_FIN_WAIT2 ||
		       oldstate == TCP_CLOSING || oldstate == TCP_LAST_ACK;

	if (own_syn && direction == TH_NET_DIR_OUT && acked)
		acked -= 1;
	/* write_seq counts the FIN once queued: all acked up to it means the FIN was too */
	if (fin_sent && tp->snd_una == tp->write_seq && acked)
		acked -= 1;
	if ((sk->__sk_common.skc_flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE))) && in)
		in -= 1;
	*sent = acked;
	*received = in;
}

/* an established connection reached CLOSE; st is its entry (NULL: never seen open) */
static __always_inline void on_close(const struct sock *sk, struct net_sock_state *st,
				     int oldstate)
{
	const struct sock_common *skc = &sk->__sk_common;
	struct net_sock_state unseen;
	struct net_conn_stats *cs;
	struct tcp_sock *tp;
	struct net_key key;
	__u64 sent, received;
	__u32 direction;
	__u16 sport;

	/* never seen open (e.g. waiting in an accept queue when the plugin started): counted,
	 * without an event; unless a listener owns it, its direction is unknown and counted as out
	 * (the kernel usually released its port before this state change: then no listener) */
	if (!st && !(st = unseen_state(sk, &unseen)))
		return;
	if (st->kind != TH_NET_KIND_ESTABLISHED && st->kind != TH_NET_KIND_UNKNOWN)
		return;
	sport = st->sport;
	if (st->kind == TH_NET_KIND_UNKNOWN && !ports_pass(sport, bpf_ntohs(skc->skc_dport)))
		return;
	direction = st->direction ? st->direction : TH_NET_DIR_OUT;
	fill_key(&key, labels, skc, sport, st->owner.comm, direction, 0);
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return;
	/* only a connection seen from its SYN on is known to have our SYN in bytes_acked */
	payload_bytes(sk, tp, oldstate, direction, st->kind == TH_NET_KIND_ESTABLISHED, &sent,
		      &received);
	cs = lookup_or_init(&conn_stats, &key, &zero_stats);
	if (cs) {
		__sync_fetch_and_add(&cs->closed, 1);
		__sync_fetch_and_add(&cs->bytes_sent, sent);
		__sync_fetch_and_add(&cs->bytes_received, received);
	}
	if (emit_close && st->kind == TH_NET_KIND_ESTABLISHED && TH_WANTED(close_events)) {
		struct net_tcp_event e;
		__u64 now = bpf_ktime_get_ns();

		fill_event(&e, skc, sport, st, now, direction);
		e.duration_ns = st->established_ns ? now - st->established_ns : 0;
		e.bytes_sent = sent;
		e.bytes_received = received;
		e.retransmits = tp->total_retrans;
		e.srtt_us = tp->srtt_us >> 3;
		TH_STAGED_OUTPUT(close_events, &e);
	}
}

/* SYN_SENT -> CLOSE: refused, timed out, unreachable, or closed by the caller */
static __always_inline void on_failed(const struct sock *sk, struct net_sock_state *st)
{
	const struct sock_common *skc = &sk->__sk_common;
	struct net_key key;
	__s32 err;

	if (!st)
		st = adopt(sk);
	if (!st)
		return;
	if (st->kind != TH_NET_KIND_CONNECTING && st->kind != TH_NET_KIND_UNKNOWN)
		return;
	if (!sk_ports_pass(sk))
		return;
	/* tcp_done_with_error() stores the error before the state changes; a timeout after an
	 * ICMP error reports that error, which the kernel keeps in sk_err_soft */
	err = sk->sk_err;
	if (!err)
		err = sk->sk_err_soft;
	fill_key(&key, labels, skc, 0, st->owner.comm, TH_NET_DIR_OUT, (__u32)err);
	count(&fail_stats, &key, 1);
	if (emit_failed && st->kind == TH_NET_KIND_CONNECTING) {
		struct net_tcp_event *e = TH_RESERVE(failed_events, struct net_tcp_event);

		if (e) {
			__u64 now = bpf_ktime_get_ns();
			struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);

			fill_event(e, skc, 0, st, now, TH_NET_DIR_OUT);
			e->duration_ns = now - st->start_ns;
			e->reason = err;
			if (tp)
				e->retransmits = tp->total_retrans;
			TH_SUBMIT(failed_events, e);
		}
	}
}

/* -> CLOSE from any state: report, then delete the socket's entry */
static __always_inline void on_closed(const struct sock *sk, int oldstate)
{
	struct net_sock_state *st;

	if (oldstate == TCP_LISTEN) {
		forget_listen(sk);
		return;
	}
	st = sock_lookup(sk);
	if (!st)
		st = claim_walked(sk); /* open before the start, not seen since */
	if (oldstate == TCP_SYN_SENT)
		on_failed(sk, st);
	else if (oldstate != TCP_SYN_RECV)
		on_close(sk, st, oldstate);
	if (st)
		sock_forget(sk);
	else if (oldstate == TCP_SYN_SENT)
		sock_forget(sk); /* on_failed may have adopted it */
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	/* most transitions (FIN_WAIT*, CLOSE_WAIT, ...) are of no interest: decide on ints first */
	switch (newstate) {
	case TCP_SYN_SENT:
	case TCP_LISTEN:
	case TCP_ESTABLISHED:
	case TCP_CLOSE:
		break;
	default:
		return 0;
	}
	/* the tracepoint also serves other inet protocols (DCCP, MPTCP's parent socket) */
	if (sk->sk_protocol != TH_NET_IPPROTO_TCP)
		return 0;

	switch (newstate) {
	case TCP_SYN_SENT:
		if (oldstate == TCP_CLOSE)
			remember_connect(sk);
		break;
	case TCP_LISTEN:
		remember_listen(sk);
		break;
	case TCP_ESTABLISHED:
		if (oldstate == TCP_SYN_SENT)
			on_established(sk, TH_NET_DIR_OUT);
		else if (oldstate == TCP_SYN_RECV)
			on_established(sk, TH_NET_DIR_IN);
		break;
	case TCP_CLOSE:
		if (oldstate != TCP_CLOSE)
			on_closed(sk, oldstate);
		break;
	}
	return 0;
}

/* ---- retransmits -------------------------------------------------------------------------- */

/* tcp_skb_pcount(): segments in this (possibly TSO) buffer, as RetransSegs counts them */
static __always_inline __u64 skb_segs(const struct sk_buff *skb)
{
	struct skb_shared_info *shinfo;
	__u16 segs = 0;

	shinfo = (struct skb_shared_info *)(BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, end));
	bpf_probe_read_kernel(&segs, sizeof(segs), &shinfo->gso_segs);
	return segs ? segs : 1;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(handle_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	const struct sock_common *skc = &sk->__sk_common;
	struct net_sock_state *st;
	struct net_key key;
	__u32 kind, direction;

	/* only segments that went out (RetransSegs counts the same). Since 6.x the tracepoint
	 * also fires for failed attempts and has a third argument, err; older kernels fire on
	 * success only and have no third argument, which the verifier must not see read */
	if (bpf_core_field_exists(struct trace_event_raw_tcp_retransmit_skb, err) && (int)ctx[2])
		return 0;
	st = sock_lookup(sk);
	if (!st)
		st = adopt(sk);
	if (!st)
		return 0;
	if (st->kind == TH_NET_KIND_EXCLUDED)
		return 0;
	/* ports were checked when it was established; not yet for SYNs and adopted sockets */
	if (st->kind != TH_NET_KIND_ESTABLISHED && !sk_ports_pass(sk))
		return 0;
	if (skc->skc_state == TCP_SYN_SENT) {
		kind = TH_NET_RETRANS_SYN;
		direction = TH_NET_DIR_OUT;
	} else {
		kind = TH_NET_RETRANS_DATA;
		direction = st->direction ? st->direction : TH_NET_DIR_OUT;
	}
	fill_key(&key, labels, skc, skc->skc_num, st->owner.comm, direction, kind);
	count(&retrans_stats, &key, skb_segs(skb));
	return 0;
}

/* SYN-ACK retransmits of a passive open: the request socket has no state, its listener has */
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(handle_retransmit_synack, const struct sock *sk, const struct request_sock *req)
{
	const struct sock_common *rc = &req->__req_common;
	struct net_listen_key k;
	struct net_listener *l;
	struct net_key key;
	const char *comm;

	fill_listen_key(&k, sk);
	l = bpf_map_lookup_elem(&listeners, &k);
	if (l) {
		if (l->kind == TH_NET_KIND_EXCLUDED)
			return 0;
		comm = l->owner.comm;
	} else {
		/* a listener that opened before the plugin started */
		if (task_filtered || !family_passes(sk->__sk_common.skc_family))
			return 0;
		comm = unknown_comm;
	}
	if (use_ports && !ports_pass(rc->skc_num, bpf_ntohs(rc->skc_dport)))
		return 0;
	fill_key(&key, labels, rc, rc->skc_num, comm, TH_NET_DIR_IN, TH_NET_RETRANS_SYNACK);
	count(&retrans_stats, &key, 1);
	return 0;
}

/* ---- RTT ---------------------------------------------------------------------------------- */

/*
 * Whether this CPU may take one more RTT sample in the window now_us falls in. A socket's stamp
 * can lag (it is refreshed as the socket sends and receives), so a window earlier than the
 * current one counts as the current one. No atomics: a program does not nest on its CPU.
 */
static __always_inline int rtt_budget_take(__u64 now_us)
{
	struct net_rtt_budget *b;
	__u32 zero = 0;
	__u64 window;

	if (!rtt_window_budget)
		return 1;
	b = bpf_map_lookup_elem(&rtt_budget, &zero);
	if (!b)
		return 1;
	window = now_us >> TH_NET_RTT_WINDOW_SHIFT;
	if (window > b->window) {
		b->window = window;
		b->taken = 0;
	}
	if (b->taken >= rtt_window_budget) {
		b->skipped += 1;
		return 0;
	}
	b->taken += 1;
	return 1;
}

/*
 * Every segment received on an established socket: one sample per socket per interval, and at
 * most rtt_window_budget per CPU per window (a host opening thousands of short connections a
 * second would otherwise pay a histogram update for each). Both are measured on the socket's
 * own microsecond clock (tcp_sock.tcp_mstamp, refreshed by the kernel as the socket sends and
 * receives), which costs a field read where bpf_ktime_get_ns() costs a clock read.
 */
SEC("tp_btf/tcp_probe")
int BPF_PROG(handle_tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
	struct net_sock_state *st;
	struct tcp_sock *tp;
	struct net_key key;
	__u64 now_us;
	__u32 srtt;

	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	srtt = tp->srtt_us >> 3;
	if (!srtt)
		return 0;
	st = sock_lookup(sk);
	if (!st)
		st = adopt(sk);
	if (!st)
		return 0;
	if (st->kind != TH_NET_KIND_ESTABLISHED && st->kind != TH_NET_KIND_UNKNOWN)
		return 0;
	now_us = tp->tcp_mstamp;
	if (st->last_rtt_us && now_us - st->last_rtt_us < rtt_interval_us)
		return 0;
	st->last_rtt_us = now_us ? now_us : 1;
	if (st->kind == TH_NET_KIND_UNKNOWN && !sk_ports_pass(sk))
		return 0;
	/* a sample the budget refuses is skipped, not retried: the socket's turn comes again
	 * after the interval */
	if (!rtt_budget_take(now_us))
		return 0;
	fill_key(&key, rtt_labels, &sk->__sk_common, sk->__sk_common.skc_num, st->owner.comm,
		 st->direction ? st->direction : TH_NET_DIR_OUT, 0);
	observe(&rtt_hist, &key, (__u64)srtt * 1000);
	return 0;
}

/* ---- sockets that opened before the start ------------------------------------------------- */

/*
 * The plugin runs these two iterators once, right after attaching the programs above, over every
 * open file of every process: listeners first, so that the connections they accepted are known
 * as inbound. Each gives a socket that has no entry yet the owner a state change would have given
 * it: the process holding it (of several, the first by pid, usually the parent that opened it),
 * or excluded when the task filters reject that process. What the programs above stored since
 * they were attached is newer and kept. Each socket given an owner writes one byte of output,
 * which the plugin counts.
 */

/* the TCP socket behind an open file that the family filter lets through, or NULL */
static __always_inline struct sock *file_tcp_sock(struct file *file)
{
	struct socket *sock;
	struct sock *sk;

	/* bpf_sock_from_file() is Linux 5.11+: on older kernels CO-RE makes this branch constant
	 * and the verifier never sees the call; the walk then finds nothing */
	if (!file || !bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_sock_from_file))
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	if (!sk || sk->sk_protocol != TH_NET_IPPROTO_TCP ||
	    !family_passes(sk->__sk_common.skc_family))
		return 0;
	return sk;
}

/*
 * Keeps st for sk in sock_walked until the programs above first see sk (claim_walked()): an
 * iterator's socket pointer is one the cookie helper refuses, so the table's key cannot be taken
 * here. 0 when sk is there already (held by an earlier process too: the first keeps it) or the
 * map is full (counted as untracked).
 */
static __always_inline int put_walked(const struct sock *sk, const struct net_sock_state *st)
{
	const struct sock_common *skc = &sk->__sk_common;
	struct net_walked_sock w = {};
	__u64 addr = (__u64)sk;
	long err;

	w.st = *st;
	w.addrpair = skc->skc_addrpair;
	w.dport = skc->skc_dport;
	w.family = skc->skc_family;
	err = bpf_map_update_elem(&sock_walked, &addr, &w, BPF_NOEXIST);
	if (err) {
		if (err != -17 /* EEXIST */)
			count_untracked();
		return 0;
	}
	__sync_fetch_and_add(&walked_entries, 1);
	return 1;
}

SEC("iter/task_file")
int seed_listeners(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct sock *sk = file_tcp_sock(ctx->file);
	char mark = 'L';

	if (!task || !sk || sk->__sk_common.skc_state != TCP_LISTEN)
		return 0;
	/* NOEXIST: a listen() since the start, or an earlier process holding this listener */
	if (put_listener(sk, task, 0, BPF_NOEXIST) == TH_NET_KIND_LISTENER)
		bpf_seq_write(ctx->meta->seq, &mark, 1);
	return 0;
}

SEC("iter/task_file")
int seed_sockets(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct sock *sk = file_tcp_sock(ctx->file);
	struct net_sock_state st = {}, *old;
	char mark = 'S';
	__u64 id;

	if (!task || !sk)
		return 0;
	switch (sk->__sk_common.skc_state) {
	case TCP_SYN_SENT:
	case TCP_ESTABLISHED:
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
	case TCP_CLOSE_WAIT:
	case TCP_CLOSING:
	case TCP_LAST_ACK:
		break;
	default: /* LISTEN (above), CLOSE (not connected): nothing to attribute */
		return 0;
	}
	if (!sk_ports_pass(sk))
		return 0;
	/* no start time: metrics, no events */
	st.kind = take_owner(&st.owner, sk, task, 0) ? TH_NET_KIND_UNKNOWN : TH_NET_KIND_EXCLUDED;
	st.sport = sk->__sk_common.skc_num;
	st.direction = listener_of(sk) ? TH_NET_DIR_IN : TH_NET_DIR_OUT;
	/* a socket with an entry has a cookie: the programs above took it */
	id = sk->__sk_common.skc_cookie.counter;
	old = id ? sock_find(id, sock_slot(id)) : 0;
	if (old) {
		/* adopted since the start without an owner (an RTT sample, a retransmit): now it
		 * has one */
		if (old->kind == TH_NET_KIND_UNKNOWN && !old->owner.pid) {
			old->owner = st.owner;
			old->direction = st.direction;
			old->kind = st.kind;
			if (st.kind == TH_NET_KIND_UNKNOWN)
				bpf_seq_write(ctx->meta->seq, &mark, 1);
		}
		return 0;
	}
	if (put_walked(sk, &st) && st.kind == TH_NET_KIND_UNKNOWN)
		bpf_seq_write(ctx->meta->seq, &mark, 1);
	return 0;
}
