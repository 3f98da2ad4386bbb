/* The CPU-bound workload of benches/cpu_profile_overhead.sh: THREADS threads (default: one per
 * online CPU) each repeat one batch of work until SECONDS have passed (or until each has done
 * UNITS batches), with a fixed call structure a profile should show:
 *
 *   start_thread (libc) → worker → run_batch → burn_hash  ~35 % (integer hashing of a buffer)
 *                                            → burn_sort  ~40 % (qsort() in libc, calling
 *                                                                compare_u32 back)
 *                                            → burn_math  ~25 % (a floating-point recurrence)
 *
 * Every function on the path is noinline and the program is built with frame pointers, so
 * frame-pointer unwinders (bpf_get_stackid, perf -g, bpftrace ustack) see the chain, with the
 * usual gaps: GCC sets up no frame in the leaf functions burn_hash and burn_math, so a sample
 * in them skips run_batch (the unwinder starts from the caller's frame), and libc is built
 * without frame pointers, so stacks through qsort() end at libc.
 *
 *   cpu_burn [-t THREADS] [-s SECONDS | -n UNITS]
 *
 * Prints one line:
 *   "threads=N units=U elapsed_s=E units_per_s=R user_s=X sys_s=Y"
 * A profiler slows the workload down by (baseline units_per_s) / (units_per_s) for a fixed time,
 * or by the ratio of elapsed_s for a fixed amount of work (-n). user_s/sys_s are the process's
 * own CPU time (getrusage). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* noclone (GCC): no "burn_hash.constprop.0" copies under other names in the profiles */
#if defined(__GNUC__) && !defined(__clang__)
#define NOINLINE __attribute__((noinline, noclone))
#else
#define NOINLINE __attribute__((noinline))
#endif

enum { kHashWords = 4096, kSortWords = 512 };

struct worker_arg {
  unsigned id;
  double seconds;          /* > 0: run until this much time has passed */
  unsigned long long units; /* > 0: run exactly this many batches */
  unsigned long long done;  /* out: batches completed */
  double sink;              /* out: keeps results alive */
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift: cheap, deterministic per thread */
static uint32_t next_rand(uint32_t* s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *s = x;
  return x;
}

NOINLINE static uint64_t burn_hash(const uint32_t* buf, unsigned rounds) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned r = 0; r < rounds; r++) {
    for (unsigned i = 0; i < kHashWords; i++) {
      h ^= buf[i] + r;
      h *= 1099511628211ull;
    }
  }
  return h;
}

NOINLINE static int compare_u32(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a;
  uint32_t y = *(const uint32_t*)b;
  return (x > y) - (x < y);
}

NOINLINE static uint32_t burn_sort(uint32_t* scratch, uint32_t* seed, unsigned rounds) {
  uint32_t acc = 0;
  for (unsigned r = 0; r < rounds; r++) {
    for (unsigned i = 0; i < kSortWords; i++) scratch[i] = next_rand(seed);
    qsort(scratch, kSortWords, sizeof(scratch[0]), compare_u32);
    acc += scratch[kSortWords / 2];
  }
  return acc;
}

NOINLINE static double burn_math(double x, unsigned steps) {
  for (unsigned i = 0; i < steps; i++) x = x * 0.999999 + 1.0 / (x + 1.5);
  return x;
}

/* round counts of one unit of work, which set the proportions above */
static volatile unsigned hash_rounds = 15;
static volatile unsigned sort_rounds = 3;
static volatile unsigned math_steps = 8000;

/* one unit of work (about 0.2 ms) */
NOINLINE static double run_batch(const uint32_t* buf, uint32_t* scratch, uint32_t* seed) {
  double v = (double)burn_hash(buf, hash_rounds);
  v += burn_sort(scratch, seed, sort_rounds);
  v += burn_math(v > 0 ? 1.0 : 2.0, math_steps);
  return v;
}

NOINLINE static void* worker(void* p) {
  struct worker_arg* a = p;
  static __thread uint32_t buf[kHashWords];
  static __thread uint32_t scratch[kSortWords];
  uint32_t seed = 2463534242u + a->id;
  for (unsigned i = 0; i < kHashWords; i++) buf[i] = next_rand(&seed);
  const double deadline = now_s() + a->seconds;
  double sink = 0;
  unsigned long long n = 0;
  for (;;) {
    if (a->units > 0) {
      if (n >= a->units) break;
    } else if ((n & 7) == 0 && now_s() >= deadline) {
      break;  /* a batch is ~0.2 ms: checking every 8 overshoots by 2 ms at most */
    }
    sink += run_batch(buf, scratch, &seed);
    n++;
  }
  a->done = n;
  a->sink = sink;
  return NULL;
}

static void usage(const char* argv0) {
  fprintf(stderr, "usage: %s [-t THREADS] [-s SECONDS | -n UNITS]\n", argv0);
  exit(2);
}

int main(int argc, char** argv) {
  long threads = sysconf(_SC_NPROCESSORS_ONLN);
  double seconds = 10;
  unsigned long long units = 0;
  int opt;
  while ((opt = getopt(argc, argv, "t:s:n:")) != -1) {
    switch (opt) {
      case 't': threads = atol(optarg); break;
      case 's': seconds = atof(optarg); break;
      case 'n': units = strtoull(optarg, NULL, 10); break;
      default: usage(argv[0]);
    }
  }
  if (threads <= 0 || threads > 4096 || (units == 0 && seconds <= 0)) usage(argv[0]);

  pthread_t* tids = calloc((size_t)threads, sizeof(*tids));
  struct worker_arg* args = calloc((size_t)threads, sizeof(*args));
  if (tids == NULL || args == NULL) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  const double start = now_s();
  for (long i = 0; i < threads; i++) {
    args[i] = (struct worker_arg){.id = (unsigned)i, .seconds = seconds, .units = units};
    int err = pthread_create(&tids[i], NULL, worker, &args[i]);
    if (err != 0) {
      fprintf(stderr, "pthread_create: %s\n", strerror(err));
      return 1;
    }
  }
  unsigned long long total = 0;
  double sink = 0;
  for (long i = 0; i < threads; i++) {
    pthread_join(tids[i], NULL);
    total += args[i].done;
    sink += args[i].sink;
  }
  const double elapsed = now_s() - start;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("threads=%ld units=%llu elapsed_s=%.3f units_per_s=%.2f user_s=%.3f sys_s=%.3f%s\n",
         threads, total, elapsed, (double)total / elapsed,
         (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
         sink == 0.12345 ? " " : "");  /* the comparison keeps `sink` observable */
  free(tids);
  free(args);
  return 0;
}
