/* Hot functions in a shared library, for the cpu_profile runtime tests (see profile_target.c). */
#include <stdint.h>

/* `units` units of pure CPU work; the result keeps the compiler from dropping the loop */
static uint64_t spin(uint64_t units, uint64_t seed)
{
	volatile uint64_t x = seed;

	for (uint64_t i = 0; i < units * 100000u; ++i)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return x;
}

__attribute__((noinline, visibility("default"))) uint64_t th_lib_hot_three(uint64_t seed)
{
	return spin(3, seed);
}

__attribute__((noinline, visibility("default"))) uint64_t th_lib_hot_one(uint64_t seed)
{
	return spin(1, seed);
}
