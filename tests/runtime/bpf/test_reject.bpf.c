// A program the verifier must reject: it dereferences a hash map value without a NULL check.
// (A hash map: recent kernels prove constant-key array lookups non-NULL.)
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} values SEC(".maps");

SEC("raw_tp/sys_enter")
int tht_reject(void* ctx) {
  __u32 key = 0;
  __u64* v = bpf_map_lookup_elem(&values, &key);
  // deliberately unchecked: "R0 invalid mem access 'map_value_or_null'"
  return (int)*v;
}
