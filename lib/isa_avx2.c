/*
 * AVX2 + FMA kernels: 6 x 16 micro-tiles (12 accumulators of the 16 ymm
 * registers). Built with -mavx2 -mfma (see Makefile); without those flags
 * this file provides no table.
 */
#include "isa.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define MR 6
#define MR1 12
#define DW_PX 2
#define UNROLL _Pragma("GCC unroll 16")

/* Lanes below n have their sign bit set: the maskload/maskstore mask. */
static inline __m256i lanes(int n)
{
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
				  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define SFX(x) x##_y
#define V __m256
#define VL 8
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_LOADN(p, n) _mm256_maskload_ps(p, lanes(n))
#define V_STOREN(p, v, n) _mm256_maskstore_ps(p, lanes(n), v)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_MAX(x, lo) _mm256_max_ps(x, lo)
#define V_MIN(x, hi) _mm256_min_ps(x, hi)
#include "isa_body.h"

static void tile(const struct cnnviz__tile *t, const struct cnnviz__fuse *f)
{
	if (t->width == 16)
		tile_nv2_y(t, f);
	else
		tile_nv1_y(t, f);
}

static void dw_row(const struct cnnviz__dw_row *d,
		   const struct cnnviz__fuse *f)
{
	const int64_t c = d->g->cin;
	int64_t c0 = 0;
	for (; c0 + 8 <= c; c0 += 8)
		dw_full_y(d, f, c0);
	if (c > c0)
		dw_part_y(d, f, c0, (int)(c - c0));
}

static const struct cnnviz__isa isa = {
	.name = "avx2",
	.mr = MR,
	.narrow = 8,
	.mr_narrow = MR1,
	.widths = {16, 8, 0},
	.tile = tile,
	.dw_row = dw_row,
	.pool_px = pool_px_y,
};

const struct cnnviz__isa *cnnviz__isa_avx2_table(void)
{
	return &isa;
}
#else
const struct cnnviz__isa *cnnviz__isa_avx2_table(void)
{
	return NULL;
}
#endif
