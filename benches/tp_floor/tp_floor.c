/* The dispatch floor of BPF tracing: attaches an empty tp_btf program (tp_floor.bpf.c) to each
 * tracepoint named on the command line and waits for SIGINT/SIGTERM. A workload timed under it
 * shows what the kernel's tracepoint dispatch alone costs (the static-key branch, the BPF
 * trampoline into the program, the recursion check, RCU), which any tracer attached to the same
 * tracepoints pays before doing any work of its own. benches/network_overhead.sh runs it on the
 * network plugin's four tracepoints as the "floor" variant.
 *
 *   tp_floor TRACEPOINT...      e.g. tp_floor inet_sock_set_state tcp_probe
 *
 * Prints "attached N" on stderr when every program is attached. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "tp_floor.skel.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: %s TRACEPOINT...   (BTF tracepoint names, e.g. inet_sock_set_state)\n",
            argv[0]);
    return 2;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  struct tp_floor_bpf* skels[64];
  struct bpf_link* links[64];
  int count = 0;
  for (int i = 1; i < argc && count < 64; ++i) {
    struct tp_floor_bpf* skel = tp_floor_bpf__open();
    if (skel == NULL) {
      fprintf(stderr, "tp_floor: open: %s\n", strerror(errno));
      return 1;
    }
    int err = bpf_program__set_attach_target(skel->progs.empty, 0, argv[i]);
    if (err == 0) err = tp_floor_bpf__load(skel);
    struct bpf_link* link = err == 0 ? bpf_program__attach(skel->progs.empty) : NULL;
    if (link == NULL) {
      fprintf(stderr, "tp_floor: %s: cannot load or attach (%s); is it a BTF tracepoint name?\n",
              argv[i], strerror(err ? -err : errno));
      return 1;
    }
    skels[count] = skel;
    links[count] = link;
    ++count;
  }
  fprintf(stderr, "attached %d\n", count);
  while (!stop) pause();
  for (int i = 0; i < count; ++i) {
    bpf_link__destroy(links[i]);
    tp_floor_bpf__destroy(skels[i]);
  }
  return 0;
}
