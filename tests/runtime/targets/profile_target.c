/*
 * A process with known CPU shares, for the cpu_profile runtime tests.
 *
 *   th_profile_target MODE COMM SECONDS
 *
 * MODE exe:     th_exe_hot_three() and th_exe_hot_one() in this (PIE) executable do 3 and 1 units
 *               of identical work per round: 75 % / 25 % of the process's CPU time
 * MODE lib:     the same split between th_lib_hot_three() and th_lib_hot_one() in a shared library
 * MODE syscall: getppid() in a loop: the time is in the kernel
 * COMM names the process (prctl PR_SET_NAME), so the test can filter on it; it runs for SECONDS
 * seconds of wall time, then exits 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t th_lib_hot_three(uint64_t seed);
uint64_t th_lib_hot_one(uint64_t seed);

static uint64_t spin(uint64_t units, uint64_t seed)
{
	volatile uint64_t x = seed;

	for (uint64_t i = 0; i < units * 100000u; ++i)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return x;
}

__attribute__((noinline)) uint64_t th_exe_hot_three(uint64_t seed)
{
	return spin(3, seed);
}

__attribute__((noinline)) uint64_t th_exe_hot_one(uint64_t seed)
{
	return spin(1, seed);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s exe|lib|syscall COMM SECONDS\n", argv[0]);
		return 2;
	}
	const char *mode = argv[1];
	const double end = now_s() + atof(argv[3]);
	uint64_t acc = 0;

	prctl(PR_SET_NAME, argv[2], 0, 0, 0);
	if (strcmp(mode, "exe") == 0) {
		while (now_s() < end)
			acc += th_exe_hot_three(acc) + th_exe_hot_one(acc);
	} else if (strcmp(mode, "lib") == 0) {
		while (now_s() < end)
			acc += th_lib_hot_three(acc) + th_lib_hot_one(acc);
	} else if (strcmp(mode, "syscall") == 0) {
		while (now_s() < end) {
			for (int i = 0; i < 1000; ++i)
				acc += (uint64_t)syscall(SYS_getppid);
		}
	} else {
		fprintf(stderr, "unknown mode '%s'\n", mode);
		return 2;
	}
	return acc == 42 ? 1 : 0; /* uses acc */
}
