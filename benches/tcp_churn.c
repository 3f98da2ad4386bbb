/* The TCP workload of benches/network_overhead.sh: short loopback connections, one after the
 * other, each the life of a tiny request/response exchange:
 *
 *   client: socket, connect, send PAYLOAD bytes, read PAYLOAD bytes back, read EOF, close
 *   server: accept, read PAYLOAD bytes, send them back, close
 *
 *   tcp_churn [CONNS] [PAYLOAD] [4|6]
 *
 * The server is a second thread of this process listening on 127.0.0.1 (or ::1) at a port the
 * kernel picks. The server closes first, so TIME_WAIT lands on the server side and the client's
 * ephemeral ports are free again at once (rounds of 20 000 connections back to back would
 * otherwise run out of them).
 * Prints one line: "conns=N elapsed_ns=T ns_per_conn=X cpu_ns=C cpu_ns_per_conn=Y
 * block_median_ns=B" with the wall time of the whole loop, the CPU time (user + system, both
 * threads, getrusage) spent in it, which includes what BPF programs attached to the connection's
 * tracepoints cost, and the median over blocks of BLOCK consecutive connections of the wall time
 * per connection. On a shared machine interference comes in bursts (a block of 500 connections
 * takes 57 us each, the next 70 us); the mean takes every burst in, the median of blocks is the
 * typical connection's time and shows what a tracer adds with far less noise. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAYLOAD 65536
#define BLOCK 500 /* connections per block of block_median_ns */

static int family = AF_INET;
static size_t payload = 64;
static int listen_fd = -1;

static unsigned long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static unsigned long long cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((unsigned long long)ru.ru_utime.tv_sec + (unsigned long long)ru.ru_stime.tv_sec) *
             1000000000ull +
         ((unsigned long long)ru.ru_utime.tv_usec + (unsigned long long)ru.ru_stime.tv_usec) *
             1000ull;
}

static void die(const char* what) {
  fprintf(stderr, "tcp_churn: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int cmp_ull(const void* a, const void* b) {
  unsigned long long x = *(const unsigned long long*)a, y = *(const unsigned long long*)b;
  return (x > y) - (x < y);
}

/* n bytes, or die: a short exchange that fails means the benchmark is meaningless */
static void read_exactly(int fd, char* buf, size_t n, const char* who) {
  while (n > 0) {
    ssize_t r = recv(fd, buf, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die(who);
    buf += r;
    n -= (size_t)r;
  }
}

static void write_all(int fd, const char* buf, size_t n, const char* who) {
  while (n > 0) {
    ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die(who);
    buf += w;
    n -= (size_t)w;
  }
}

static void* server(void* arg) {
  long long conns = *(long long*)arg;
  static char buf[MAX_PAYLOAD];
  for (long long i = 0; i < conns; i++) {
    int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) die("accept");
    read_exactly(c, buf, payload, "server recv");
    write_all(c, buf, payload, "server send");
    close(c);
  }
  return NULL;
}

int main(int argc, char** argv) {
  long long conns = argc > 1 ? atoll(argv[1]) : 20000;
  long long size = argc > 2 ? atoll(argv[2]) : 64;
  int fam = argc > 3 ? atoi(argv[3]) : 4;
  if (conns <= 0 || size <= 0 || size > MAX_PAYLOAD || (fam != 4 && fam != 6)) {
    fprintf(stderr, "usage: %s [CONNS>0] [PAYLOAD 1..%d] [4|6]\n", argv[0], MAX_PAYLOAD);
    return 2;
  }
  payload = (size_t)size;
  family = fam == 6 ? AF_INET6 : AF_INET;

  struct sockaddr_storage addr;
  socklen_t addr_len;
  memset(&addr, 0, sizeof(addr));
  if (family == AF_INET) {
    struct sockaddr_in* a = (struct sockaddr_in*)&addr;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr_len = sizeof(*a);
  } else {
    struct sockaddr_in6* a = (struct sockaddr_in6*)&addr;
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    addr_len = sizeof(*a);
  }
  listen_fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) die("socket");
  if (bind(listen_fd, (struct sockaddr*)&addr, addr_len) != 0) die("bind");
  if (listen(listen_fd, 1024) != 0) die("listen");
  if (getsockname(listen_fd, (struct sockaddr*)&addr, &addr_len) != 0) die("getsockname");

  pthread_t tid;
  if (pthread_create(&tid, NULL, server, &conns) != 0) die("pthread_create");

  static char out[MAX_PAYLOAD];
  static char in[MAX_PAYLOAD];
  memset(out, 'x', payload);
  /* wall time of each whole block of BLOCK connections (a run shorter than one block: the run) */
  long long nblocks = conns / BLOCK > 0 ? conns / BLOCK : 1;
  long long per_block = conns / BLOCK > 0 ? BLOCK : conns;
  unsigned long long* blocks = calloc((size_t)nblocks, sizeof(*blocks));
  if (blocks == NULL) die("calloc");
  unsigned long long cpu0 = cpu_ns();
  unsigned long long t0 = now_ns();
  unsigned long long tb = t0;
  for (long long i = 0; i < conns; i++) {
    if (i > 0 && i % per_block == 0 && i / per_block <= nblocks) {
      unsigned long long t = now_ns();
      blocks[i / per_block - 1] = t - tb;
      tb = t;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr*)&addr, addr_len) != 0) die("connect");
    write_all(fd, out, payload, "client send");
    read_exactly(fd, in, payload, "client recv");
    char c;
    if (recv(fd, &c, 1, 0) != 0) die("client expected EOF");
    close(fd);
  }
  unsigned long long t_end = now_ns();
  if (conns % per_block == 0) blocks[nblocks - 1] = t_end - tb; /* the last block ends here */
  pthread_join(tid, NULL);
  unsigned long long elapsed = now_ns() - t0;
  unsigned long long cpu = cpu_ns() - cpu0;
  qsort(blocks, (size_t)nblocks, sizeof(*blocks), cmp_ull);
  double block_median = nblocks % 2 ? (double)blocks[nblocks / 2]
                                    : ((double)blocks[nblocks / 2 - 1] + (double)blocks[nblocks / 2]) / 2;
  printf("conns=%lld elapsed_ns=%llu ns_per_conn=%.1f cpu_ns=%llu cpu_ns_per_conn=%.1f "
         "block_median_ns=%.1f\n",
         conns, elapsed, (double)elapsed / (double)conns, cpu, (double)cpu / (double)conns,
         block_median / (double)per_block);
  free(blocks);
  return 0;
}
