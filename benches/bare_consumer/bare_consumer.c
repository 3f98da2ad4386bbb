/* A bare libbpf ring-buffer consumer: the baseline tracehost's event path is compared with in
 * benches/event_throughput.sh. Loads bare_consumer.bpf.c (skeleton): one syscall.failed record
 * (struct syscall_event) per failing syscall, committed without a wakeup until the ring is
 * 1/2^wakeup_shift full; polls with a timeout, counts the records reading each one's fields
 * like a real consumer would, and prints totals when stopped.
 *
 *   bare_consumer [--duration S] [--ring-kb N] [--wakeup-shift N] [--poll-ms MS]
 *
 * Runs until SIGINT/SIGTERM (or the duration). Prints one line:
 *   "events=N drops=D bytes=B user_s=U sys_s=S"
 * Ready when it prints "attached" on stderr. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>

#include "bare_consumer.skel.h"
#include "syscall/syscall.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

struct totals {
  unsigned long long events;
  unsigned long long bytes;
  unsigned long long checksum; /* keeps the reads of each record from being optimized away */
};

static int on_event(void* ctx, void* data, size_t size) {
  struct totals* t = ctx;
  const struct syscall_event* e = data;
  if (size < sizeof(*e)) return 0;
  t->events++;
  t->bytes += size;
  t->checksum += e->latency_ns ^ (unsigned long long)e->ret ^ e->id ^ e->hdr.pid ^
                 (unsigned char)e->hdr.comm[0];
  return 0;
}

static int silent_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  return vfprintf(stderr, fmt, args);
}

int main(int argc, char** argv) {
  double duration = 0;
  unsigned ring_kb = 256;
  unsigned wakeup_shift = 2;
  int poll_ms = 10;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
      duration = atof(argv[++i]);
    } else if (strcmp(argv[i], "--ring-kb") == 0 && i + 1 < argc) {
      ring_kb = (unsigned)strtoul(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--wakeup-shift") == 0 && i + 1 < argc) {
      wakeup_shift = (unsigned)strtoul(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--poll-ms") == 0 && i + 1 < argc) {
      poll_ms = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: %s [--duration S] [--ring-kb N] [--wakeup-shift N] [--poll-ms MS]\n",
              argv[0]);
      return 2;
    }
  }
  libbpf_set_print(silent_print);

  struct bare_consumer_bpf* skel = bare_consumer_bpf__open();
  if (!skel) {
    fprintf(stderr, "bare_consumer: open failed: %s\n", strerror(errno));
    return 1;
  }
  skel->rodata->self_tgid = (__u32)getpid();
  skel->rodata->th_rb_wakeup_shift = wakeup_shift;
  /* a power of two number of pages */
  int err = bpf_map__set_max_entries(skel->maps.events, ring_kb * 1024);
  if (!err) err = bare_consumer_bpf__load(skel);
  if (!err) err = bare_consumer_bpf__attach(skel);
  if (err) {
    fprintf(stderr, "bare_consumer: load/attach failed: %s (run as root)\n", strerror(-err));
    bare_consumer_bpf__destroy(skel);
    return 1;
  }

  struct totals totals = {0, 0, 0};
  struct ring_buffer* rb =
      ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, &totals, NULL);
  if (!rb) {
    fprintf(stderr, "bare_consumer: ring_buffer__new failed: %s\n", strerror(errno));
    bare_consumer_bpf__destroy(skel);
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  fprintf(stderr, "attached\n");

  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (!stop) {
    /* the timeout bounds latency for records submitted without a wakeup */
    int n = ring_buffer__poll(rb, poll_ms);
    if (n < 0 && n != -EINTR) {
      fprintf(stderr, "bare_consumer: poll failed: %s\n", strerror(-n));
      break;
    }
    if (n == 0) ring_buffer__consume(rb);
    if (duration > 0) {
      clock_gettime(CLOCK_MONOTONIC, &t);
      if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 >= duration)
        break;
    }
  }
  ring_buffer__consume(rb);

  unsigned long long dropped = 0;
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus > 0) {
    __u64* per_cpu = calloc((size_t)ncpus, sizeof(__u64));
    __u32 zero = 0;
    if (per_cpu && bpf_map_lookup_elem(bpf_map__fd(skel->maps.events_drops), &zero, per_cpu) == 0) {
      for (int i = 0; i < ncpus; i++) dropped += per_cpu[i];
    }
    free(per_cpu);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("events=%llu drops=%llu bytes=%llu user_s=%.3f sys_s=%.3f checksum=%llu\n", totals.events,
         dropped, totals.bytes, (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, totals.checksum % 1000);
  ring_buffer__free(rb);
  bare_consumer_bpf__destroy(skel);
  return 0;
}
