/*
 * Which kernels run: the best instruction set both compiled in and
 * supported by this CPU (and its OS), chosen once per process. The
 * environment variable CNNVIZ_ISA=avx512|avx2|neon|generic asks for one
 * (tests and benchmarks compare them); an unknown or unsupported request
 * falls back to the best available.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "isa.h"

static int supported(const struct cnnviz__isa *isa)
{
	if (!isa)
		return 0;
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	if (strcmp(isa->name, "avx512") == 0)
		return __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("avx512vl") &&
		       __builtin_cpu_supports("fma");
	if (strcmp(isa->name, "avx2") == 0)
		return __builtin_cpu_supports("avx2") &&
		       __builtin_cpu_supports("fma");
#endif
	return 1;
}

/* Best first. */
static const struct cnnviz__isa *candidate(int i)
{
	switch (i) {
	case 0:
		return cnnviz__isa_avx512_table();
	case 1:
		return cnnviz__isa_avx2_table();
	case 2:
		return cnnviz__isa_neon_table();
	case 3:
		return cnnviz__isa_generic_table();
	default:
		return NULL;
	}
}
#define N_CANDIDATES 4

const struct cnnviz__isa *cnnviz__isa_named(const char *name)
{
	for (int i = 0; i < N_CANDIDATES; i++) {
		const struct cnnviz__isa *isa = candidate(i);
		if (isa && name && strcmp(isa->name, name) == 0)
			return supported(isa) ? isa : NULL;
	}
	return NULL;
}

static const struct cnnviz__isa *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
	const char *want = getenv("CNNVIZ_ISA");
	chosen = want ? cnnviz__isa_named(want) : NULL;
	for (int i = 0; !chosen && i < N_CANDIDATES; i++)
		if (supported(candidate(i)))
			chosen = candidate(i);
}

const struct cnnviz__isa *cnnviz__isa_best(void)
{
	pthread_once(&chosen_once, choose);
	return chosen;
}

const char *cnnviz__isa_name(const struct cnnviz__isa *isa)
{
	return isa ? isa->name : "none";
}
