/* Slots of the `counts` map of test_probes.bpf.c; shared with the C++ tests. */
#ifndef TRACEHOST_TEST_PROBES_H
#define TRACEHOST_TEST_PROBES_H

#define THT_SLOT_RAW_TP 0
#define THT_SLOT_TP_BTF 1
#define THT_SLOT_TRACEPOINT 2
#define THT_SLOT_UPROBE 3
#define THT_SLOT_URETPROBE 4
#define THT_SLOT_KPROBE 5
#define THT_SLOT_COUNT 8

#endif /* TRACEHOST_TEST_PROBES_H */
