/*
 * Portable kernels: GCC/Clang vector extensions of 4 floats, which any
 * target lowers to its baseline SIMD (SSE2 on x86-64) or to scalars.
 * Multiply and add stay separate (ISO C mode does not contract them), so
 * results match across compilers' vectorisation choices.
 */
#include "isa.h"

#define MR 4
#define MR1 8
#define DW_PX 2
#define UNROLL _Pragma("GCC unroll 16")

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f ld(const float *p)
{
	v4f v;
	__builtin_memcpy(&v, p, sizeof v);
	return v;
}

/* Lanes one by one: n is between 1 and 3. */
static inline v4f ldn(const float *p, int n)
{
	v4f v = {0.0f, 0.0f, 0.0f, 0.0f};
	for (int i = 0; i < n && i < 4; i++)
		v[i] = p[i];
	return v;
}

static inline void stn(float *p, v4f v, int n)
{
	for (int i = 0; i < n && i < 4; i++)
		p[i] = v[i];
}

/* a where m is set, else b. */
static inline v4f pick(v4i m, v4f a, v4f b)
{
	return (v4f)((m & (v4i)a) | (~m & (v4i)b));
}

static inline v4f splat(float x)
{
	return (v4f){x, x, x, x};
}

#define SFX(x) x##_g
#define V v4f
#define VL 4
#define V_ZERO() splat(0.0f)
#define V_SET1(x) splat(x)
#define V_BCAST(p) splat(*(p))
#define V_LOAD(p) ld(p)
#define V_STORE(p, v) __builtin_memcpy(p, &(v), sizeof(v4f))
#define V_LOADN(p, n) ldn(p, n)
#define V_STOREN(p, v, n) stn(p, v, n)
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_ADD(a, b) ((a) + (b))
#define V_MUL(a, b) ((a) * (b))
#define V_MAX(x, lo) pick((x) > (lo), x, lo)
#define V_MIN(x, hi) pick((x) < (hi), x, hi)
#include "isa_body.h"

static void tile(const struct cnnviz__tile *t, const struct cnnviz__fuse *f)
{
	if (t->width == 8)
		tile_nv2_g(t, f);
	else
		tile_nv1_g(t, f);
}

static void dw_row(const struct cnnviz__dw_row *d,
		   const struct cnnviz__fuse *f)
{
	const int64_t c = d->g->cin;
	int64_t c0 = 0;
	for (; c0 + 4 <= c; c0 += 4)
		dw_full_g(d, f, c0);
	if (c > c0)
		dw_part_g(d, f, c0, (int)(c - c0));
}

static const struct cnnviz__isa isa = {
	.name = "generic",
	.mr = MR,
	.narrow = 4,
	.mr_narrow = MR1,
	.widths = {8, 4, 0},
	.tile = tile,
	.dw_row = dw_row,
	.pool_px = pool_px_g,
};

const struct cnnviz__isa *cnnviz__isa_generic_table(void)
{
	return &isa;
}
