// Rings the host must refuse to bind, one per mode of bad_rings_plugin.cpp: a staged ring
// (TH_STAGED_RINGBUF), a plain one (TH_RINGBUF), and a ring whose "<map>_muted" is a hash map
// instead of the array of one u32 that TH_RINGBUF defines.
#include "tracehost/common.bpf.h"
#include "tracehost/events.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct bad_rings_record {
	__u64 seq;
};

TH_STAGED_RINGBUF(staged_events, 4096, struct bad_rings_record, 8);
TH_RINGBUF(plain_events, 4096);

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} odd_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} odd_events_muted SEC(".maps");
