// Maps of the kinds the registry handles, plus .rodata variables for set_rodata checks.
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 knob_u32 = 0;
const volatile __u64 knob_u64 = 0;

struct pair {
  __u64 a;
  __u64 b;
};

// 12 bytes: not a whole number of u64 words, so it cannot be summed
struct odd {
  __u32 a;
  __u32 b;
  __u32 c;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16);
  __type(key, __u32);
  __type(value, __u64);
} hash_map SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} array_map SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, struct pair);
} pcpu_array SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 8);
  __type(key, __u32);
  __type(value, __u64);
} pcpu_hash SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct odd);
} pcpu_odd SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 4096);
} events SEC(".maps");

SEC("raw_tp/sys_enter")
int tht_maps_touch(void* ctx) {
  // reads the knobs so they stay in .rodata; never attached by the tests
  __u32 key = knob_u32;
  __u64* v = bpf_map_lookup_elem(&array_map, &key);
  if (v) *v += knob_u64;
  return 0;
}
