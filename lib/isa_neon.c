/*
 * AArch64 NEON kernels: 8 x 8 micro-tiles (16 accumulators of the 32
 * q registers) with fused multiply-adds. NEON is part of the AArch64 base,
 * so no flags are needed; elsewhere this file provides no table.
 * (Not exercised on the x86-64 machines the project is tested on.)
 */
#include "isa.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#define MR 8
#define MR1 16
#define DW_PX 4
#define UNROLL _Pragma("GCC unroll 16")

static inline float32x4_t ldn(const float *p, int n)
{
	float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
	for (int i = 0; i < n; i++)
		buf[i] = p[i];
	return vld1q_f32(buf);
}

static inline void stn(float *p, float32x4_t v, int n)
{
	float buf[4];
	vst1q_f32(buf, v);
	for (int i = 0; i < n; i++)
		p[i] = buf[i];
}

#define SFX(x) x##_n
#define V float32x4_t
#define VL 4
#define V_ZERO() vdupq_n_f32(0.0f)
#define V_SET1(x) vdupq_n_f32(x)
#define V_BCAST(p) vld1q_dup_f32(p)
#define V_LOAD(p) vld1q_f32(p)
#define V_STORE(p, v) vst1q_f32(p, v)
#define V_LOADN(p, n) ldn(p, n)
#define V_STOREN(p, v, n) stn(p, v, n)
#define V_FMA(a, b, c) vfmaq_f32(c, a, b)
#define V_ADD(a, b) vaddq_f32(a, b)
#define V_MUL(a, b) vmulq_f32(a, b)
#define V_MAX(x, lo) vbslq_f32(vcgtq_f32(x, lo), x, lo)
#define V_MIN(x, hi) vbslq_f32(vcltq_f32(x, hi), x, hi)
#include "isa_body.h"

static void tile(const struct cnnviz__tile *t, const struct cnnviz__fuse *f)
{
	if (t->width == 8)
		tile_nv2_n(t, f);
	else
		tile_nv1_n(t, f);
}

static void dw_row(const struct cnnviz__dw_row *d,
		   const struct cnnviz__fuse *f)
{
	const int64_t c = d->g->cin;
	int64_t c0 = 0;
	for (; c0 + 4 <= c; c0 += 4)
		dw_full_n(d, f, c0);
	if (c > c0)
		dw_part_n(d, f, c0, (int)(c - c0));
}

static const struct cnnviz__isa isa = {
	.name = "neon",
	.mr = MR,
	.narrow = 4,
	.mr_narrow = MR1,
	.widths = {8, 4, 0},
	.tile = tile,
	.dw_row = dw_row,
	.pool_px = pool_px_n,
};

const struct cnnviz__isa *cnnviz__isa_neon_table(void)
{
	return &isa;
}
#else
const struct cnnviz__isa *cnnviz__isa_neon_table(void)
{
	return NULL;
}
#endif
