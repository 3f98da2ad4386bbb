/* The syscall workload of the overhead benchmarks: a tight loop of one cheap syscall, timed with
 * CLOCK_MONOTONIC around the whole loop.
 *
 *   getppid_loop [CALLS] [getppid|fail]
 *
 * getppid: getppid(2), about the cheapest syscall there is, so what a tracer adds dominates.
 * fail:    close(-1), which fails with EBADF every time: one syscall.failed event per call for
 *          tracers that report failures (benches/event_throughput.sh).
 * Prints one line: "calls=N ns_total=T ns_per_call=X". The raw syscall is used so libc caching
 * or wrappers cannot skip the kernel. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

int main(int argc, char** argv) {
  long long calls = argc > 1 ? atoll(argv[1]) : 3000000;
  const char* mode = argc > 2 ? argv[2] : "getppid";
  int fail = strcmp(mode, "fail") == 0;
  if (calls <= 0 || (!fail && strcmp(mode, "getppid") != 0)) {
    fprintf(stderr, "usage: %s [CALLS>0] [getppid|fail]\n", argv[0]);
    return 2;
  }
  unsigned long long start = now_ns();
  long sink = 0;
  for (long long i = 0; i < calls; i++) {
    /* the result feeds `sink` so the call cannot be hoisted or elided */
    sink += fail ? syscall(SYS_close, -1) : syscall(SYS_getppid);
  }
  unsigned long long elapsed = now_ns() - start;
  if (fail && sink != -calls) {
    fprintf(stderr, "close(-1) unexpectedly succeeded\n");
    return 1;
  }
  printf("calls=%lld ns_total=%llu ns_per_call=%.2f\n", calls, elapsed,
         (double)elapsed / (double)calls);
  return 0;
}
