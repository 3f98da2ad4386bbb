/*
 * Structures shared by network.bpf.c and network_plugin.cpp: the per-socket state, the metric
 * map keys and values read by the host's bindings, and the record
 * written to the plugin's ring buffers. Plain C, fixed-width types, explicit padding, no
 * pointers; the C++ side static_asserts sizes and the offsets it binds to.
 */
#ifndef TRACEHOST_NETWORK_H
#define TRACEHOST_NETWORK_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "tracehost/event_header.h"

/* log2 slots of every histogram: slot i counts values in [2^i, 2^(i+1)) ns, the last one
 * everything from 2^35 ns (34 s) up */
#ifndef TH_NET_SLOTS
#define TH_NET_SLOTS 36
#endif

#ifndef TH_NET_MAX_PORTS
#define TH_NET_MAX_PORTS 64 /* entries of the ports filter */
#endif

/* address families as the kernel numbers them */
#ifndef TH_NET_AF_INET
#define TH_NET_AF_INET 2
#define TH_NET_AF_INET6 10
#endif

/* family filter (rodata family_filter) */
#ifndef TH_NET_FAMILY_ALL
#define TH_NET_FAMILY_ALL 0
#define TH_NET_FAMILY_IPV4 1
#define TH_NET_FAMILY_IPV6 2
#endif

/* connection direction: label value and event field */
#ifndef TH_NET_DIR_OUT
#define TH_NET_DIR_OUT 1 /* active open: this host called connect() */
#define TH_NET_DIR_IN 2  /* passive open: accepted from a listener */
#endif

/* what a socket's storage describes (net_sock_state.kind) */
#ifndef TH_NET_KIND_EXCLUDED
#define TH_NET_KIND_EXCLUDED 1 /* opened by a task the filters reject: never reported */
#define TH_NET_KIND_CONNECTING 2 /* connect() called, handshake in flight */
#define TH_NET_KIND_LISTENER 3 /* listen() called (listener map); children copy its owner */
#define TH_NET_KIND_ESTABLISHED 4 /* an established connection this plugin saw open */
#define TH_NET_KIND_UNKNOWN 5 /* adopted after it opened (before the plugin started) */
#endif

/* retransmit kinds (label `kind`) */
#ifndef TH_NET_RETRANS_DATA
#define TH_NET_RETRANS_DATA 1   /* segment of an established (or closing) connection */
#define TH_NET_RETRANS_SYN 2    /* SYN of an active open */
#define TH_NET_RETRANS_SYNACK 3 /* SYN-ACK of a passive open (attributed to the listener) */
#endif

/* rtt_by modes (rodata rtt_by) */
#ifndef TH_NET_RTT_BY_PROCESS
#define TH_NET_RTT_BY_PROCESS 1
#define TH_NET_RTT_BY_REMOTE 2
#endif

/* the process a socket belongs to: the caller of connect() or listen() */
struct net_owner {
  __u64 cgroup_id; /* owner's cgroup v2 id */
  __u32 pid;       /* owner: process that called connect() or listen() */
  __u32 tid;
  __u32 uid;
  __u32 gid;
  char comm[TH_COMM_LEN];
}; /* 40 bytes */

/* per-socket state: in the socket table (keyed by the socket's cookie), inserted at connect() /
 * the accepted child's ESTABLISHED (or on first sight), deleted when the socket reaches CLOSE */
struct net_sock_state {
  __u64 start_ns;       /* connect() (CLOSE -> SYN_SENT) */
  __u64 established_ns; /* -> ESTABLISHED */
  __u64 last_rtt_us;    /* tcp_sock.tcp_mstamp of the last tcp_probe sample taken */
  struct net_owner owner;
  __u32 kind;      /* TH_NET_KIND_* */
  __u32 direction; /* TH_NET_DIR_* once established */
  __u16 sport;     /* local port, kept at ESTABLISHED: the kernel clears it before CLOSE */
  __u16 pad16;
  __u32 pad32;
}; /* 80 bytes */

/* one entry of the direct-mapped socket table: the state of the socket whose cookie is `cookie`
 * and whose address is `sk`, or free (cookie == 0) */
struct net_sock_slot {
  __u64 cookie;
  __u64 sk;
  struct net_sock_state st;
}; /* 96 bytes */

/* a socket the start-up walk found (open before the plugin started), kept by the socket's
 * address until the programs first see it and can take its cookie (the walk cannot: the kernel
 * hands iterators a socket pointer the cookie helper refuses); the address pair and the remote
 * port tell it from a later socket at the same address */
struct net_walked_sock {
  struct net_sock_state st;
  __u64 addrpair; /* sock_common.skc_addrpair: IPv4 remote and local address */
  __u16 dport;    /* sock_common.skc_dport, network order */
  __u16 family;
  __u32 pad;
}; /* 96 bytes */

/* listeners: keyed by network namespace, family and local port; children look their owner
 * up here when they reach ESTABLISHED */
struct net_listen_key {
  __u64 net; /* struct net * of the listener */
  __u16 port; /* local port, host order */
  __u16 family;
  __u32 pad;
}; /* 16 bytes */

struct net_listener {
  struct net_owner owner;
  __u64 sk;   /* the listening socket (a later listen() on the same key replaces it) */
  __u32 kind; /* TH_NET_KIND_LISTENER or TH_NET_KIND_EXCLUDED */
  __u32 pad;
}; /* 56 bytes */

/*
 * Key of every metric map. The plugin selects the labels; fields of labels that are off are
 * zeroed in the kernel (rodata switches), so cardinality is bounded before the host sees it.
 */
struct net_key {
  char comm[TH_COMM_LEN]; /* owner's name, "[unknown]" for sockets opened before the start */
  __u8 raddr[16];         /* remote address; IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d) */
  __u16 rport;            /* remote port, host order */
  __u16 port;             /* the server's port: remote for outbound, local for inbound */
  __u32 direction;        /* TH_NET_DIR_* */
  __u32 extra;            /* failed: errno; retransmits: TH_NET_RETRANS_*; else 0 */
  __u32 pad;
}; /* 48 bytes */

/* RTT samples are budgeted per CPU per window of 2^TH_NET_RTT_WINDOW_SHIFT us (131 ms), on the
 * sockets' own microsecond clock (tcp_sock.tcp_mstamp) */
#ifndef TH_NET_RTT_WINDOW_SHIFT
#define TH_NET_RTT_WINDOW_SHIFT 17
#endif

/* value of the per-CPU array rtt_budget (one entry) */
struct net_rtt_budget {
  __u64 window;  /* tcp_mstamp >> TH_NET_RTT_WINDOW_SHIFT of the window being counted */
  __u64 taken;   /* samples taken in that window */
  __u64 skipped; /* samples due but not taken because a window's budget was spent (total) */
}; /* 24 bytes */

/* value of histogram maps (rtt) and histograms in conn_stats, in ns */
struct net_hist {
  __u64 slots[TH_NET_SLOTS];
  __u64 sum_ns;
}; /* 296 bytes */

/* value of conn_stats: one map update per state change for counters and histograms */
struct net_conn_stats {
  __u64 opened;
  __u64 closed;
  __u64 bytes_sent;      /* tcp_sock.bytes_acked at close */
  __u64 bytes_received;  /* tcp_sock.bytes_received at close */
  __u64 connect_slots[TH_NET_SLOTS]; /* connect latency (outbound), as net_hist */
  __u64 connect_sum;
  __u64 accept_slots[TH_NET_SLOTS]; /* accept handshake (inbound), as net_hist */
  __u64 accept_sum;
}; /* 624 bytes */

/*
 * The record of all four topics (tcp.connect, tcp.accept, tcp.close, tcp.connect_failed); each
 * topic's schema names the fields that mean something for it.
 */
struct net_tcp_event {
  struct th_event_header hdr; /* owner's ids and name; timestamp of the state change */
  __u8 saddr[16];             /* IPv4 in the first 4 bytes when family == AF_INET */
  __u8 daddr[16];
  __u16 sport; /* host order */
  __u16 dport;
  __u16 family;    /* AF_INET / AF_INET6 */
  __u16 direction; /* TH_NET_DIR_* */
  __u64 duration_ns; /* connect: SYN_SENT -> ESTABLISHED; accept: handshake RTT;
                        close: ESTABLISHED -> CLOSE; connect_failed: SYN_SENT -> CLOSE */
  __u64 bytes_sent;
  __u64 bytes_received;
  __u32 retransmits; /* tcp_sock.total_retrans */
  __u32 srtt_us;
  __s32 reason; /* connect_failed: sk_err (errno) */
  __u32 pad;
}; /* 128 bytes */

#endif /* TRACEHOST_NETWORK_H */
