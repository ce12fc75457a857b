/*
 * Counting NaN and infinite floats (weights at load). Integer tests on
 * the bit patterns, so that the compiler vectorises the loop without any
 * floating-point licence (see VEC_FLAGS in the Makefile).
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

void cnnviz__count_nonfinite(const float *x, size_t n, size_t *nan,
			     size_t *inf)
{
	size_t n_nan = 0, n_inf = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t b;
		memcpy(&b, &x[i], sizeof b);
		const uint32_t mag = b & 0x7fffffffu;
		n_nan += mag > 0x7f800000u;
		n_inf += mag == 0x7f800000u;
	}
	*nan = n_nan;
	*inf = n_inf;
}
