// A producer built from bpf/include/tracehost/events.bpf.h, as every plugin's rings are: each
// run (BPF_PROG_TEST_RUN, repeat = N runs it N times) commits one record with TH_RESERVE and
// TH_SUBMIT, so the wakeup policy under test is the one plugins get.
#include "tracehost/common.bpf.h"
#include "tracehost/events.bpf.h"

char LICENSE[] SEC("license") = "GPL";

// 56 bytes + the ring's 8-byte header: 64 bytes a record, 256 records to the default fill
// threshold (1/4) of the 64 KiB ring
struct tht_record {
  __u64 seq;
  __u8 pad[48];
};

TH_RINGBUF(events, 64 * 1024);

__u64 next_seq = 0;

SEC("socket")
int tht_produce(struct __sk_buff *skb)
{
  struct tht_record *r = TH_RESERVE(events, struct tht_record);

  if (!r)
    return 0;
  r->seq = next_seq++;
  __builtin_memset(r->pad, 0, sizeof(r->pad));
  TH_SUBMIT(events, r);
  return 0;
}

// A staged ring of the same records (TH_STAGED_RINGBUF, 8 to a ring record): each run of
// tht_produce_staged stages one record; the host splits the records and flushes the stages.
TH_STAGED_RINGBUF(staged, 64 * 1024, struct tht_record, 8);

__u64 next_staged_seq = 0;

SEC("socket")
int tht_produce_staged(struct __sk_buff *skb)
{
  struct tht_record r = {};

  r.seq = next_staged_seq++;
  TH_STAGED_OUTPUT(staged, &r);
  return 0;
}
