/*
 * AVX-512 kernels (F, VL; FMA): 8 x 32 micro-tiles in zmm, 16- and 8-wide
 * panels for narrow layers (8 lanes in ymm, which Zen 4 runs at the same
 * rate per lane). Built with -mavx512f -mavx512vl -mfma (see Makefile);
 * without those flags this file provides no table.
 */
#include "isa.h"

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__FMA__)
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define MR 8
#define MR1 16
#define DW_PX 4
#define UNROLL _Pragma("GCC unroll 16")

static inline __mmask16 mask16(int n)
{
	return (__mmask16)((1u << n) - 1u);
}

static inline __mmask8 mask8(int n)
{
	return (__mmask8)((1u << n) - 1u);
}

/* 16 lanes */
#define SFX(x) x##_z
#define V __m512
#define VL 16
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_LOADN(p, n) _mm512_maskz_loadu_ps(mask16(n), p)
#define V_STOREN(p, v, n) _mm512_mask_storeu_ps(p, mask16(n), v)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_MAX(x, lo) _mm512_max_ps(x, lo)
#define V_MIN(x, hi) _mm512_min_ps(x, hi)
#include "isa_body.h"
#undef SFX
#undef V
#undef VL
#undef V_ZERO
#undef V_SET1
#undef V_BCAST
#undef V_LOAD
#undef V_STORE
#undef V_LOADN
#undef V_STOREN
#undef V_FMA
#undef V_ADD
#undef V_MUL
#undef V_MAX
#undef V_MIN

/* 8 lanes, masked with AVX-512VL */
#define SFX(x) x##_y
#define V __m256
#define VL 8
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_BCAST(p) _mm256_set1_ps(*(p))
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_LOADN(p, n) _mm256_maskz_loadu_ps(mask8(n), p)
#define V_STOREN(p, v, n) _mm256_mask_storeu_ps(p, mask8(n), v)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_MAX(x, lo) _mm256_max_ps(x, lo)
#define V_MIN(x, hi) _mm256_min_ps(x, hi)
#include "isa_body.h"

/* ------------------------------------------------------------ k pairs */

/* [p[0], p[1]] in every pair of lanes. */
static inline __m512 bcast_pair(const float *p)
{
	double d;
	memcpy(&d, p, sizeof d);
	return _mm512_castpd_ps(_mm512_set1_pd(d));
}

/* Lane 2j + lane 2j+1 of each pair, the 8 sums of s in the low half (two
   vectors: 16 sums). */
static inline __m256 pair_sums8(__m512 s)
{
	const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0,
					       0, 0, 0, 0, 0, 0);
	s = _mm512_add_ps(s, _mm512_permute_ps(s, 0xb1));
	return _mm512_castps512_ps256(_mm512_permutexvar_ps(even, s));
}

static inline __m512 pair_sums16(__m512 s0, __m512 s1)
{
	const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16,
					       18, 20, 22, 24, 26, 28, 30);
	s0 = _mm512_add_ps(s0, _mm512_permute_ps(s0, 0xb1));
	s1 = _mm512_add_ps(s1, _mm512_permute_ps(s1, 0xb1));
	return _mm512_permutex2var_ps(s0, even, s1);
}

/*
 * A narrow panel (8 or 16 columns: NV = 1 or 2 vectors) packed in k pairs
 * (cnnviz__pack with pairs): each vector holds 8 columns for k and k+1
 * side by side, so one broadcast of a[k], a[k+1] feeds 16 lanes. The two
 * partial sums of a column are added at the end.
 */
static inline __attribute__((always_inline)) void
pair_body(const int R, const int NV, const struct cnnviz__tile *t,
	  const struct cnnviz__fuse *f)
{
	__m512 acc[16];
	const int64_t kc = t->kc, ntaps = t->ntaps, ldc = t->ldc;
	const float *b = t->b;
	const unsigned fl = f ? f->kflags : 0;
	const int n = t->cols;

	UNROLL for (int i = 0; i < R * NV; i++)
		acc[i] = _mm512_setzero_ps();
	for (int64_t tap = 0; tap < ntaps; tap++) {
		const float *ap[16];
		if (t->toff) {
			const int64_t o = t->toff[tap];
			UNROLL for (int r = 0; r < R; r++)
				ap[r] = t->a[r] + o;
		} else {
			UNROLL for (int r = 0; r < R; r++)
				ap[r] = t->a[tap * t->mr + r];
		}
		for (int64_t k = 0; k < kc; k += 2) {
			__m512 b0 = _mm512_loadu_ps(b), b1 = b0;
			if (NV == 2)
				b1 = _mm512_loadu_ps(b + 16);
			b += NV * 16;
			UNROLL for (int r = 0; r < R; r++) {
				__m512 av = bcast_pair(ap[r] + k);
				acc[r * NV] = _mm512_fmadd_ps(av, b0, acc[r * NV]);
				if (NV == 2)
					acc[r * NV + 1] = _mm512_fmadd_ps(
						av, b1, acc[r * NV + 1]);
			}
		}
	}
	if (NV == 1) {
		__m256 bias = _mm256_setzero_ps(), sc = bias, sh = bias;
		if (fl & CNNVIZ__FUSE_BIAS)
			bias = loadx_y(f->bias + t->col0, n);
		if (fl & CNNVIZ__FUSE_AFFINE) {
			sc = loadx_y(f->scale + t->col0, n);
			sh = loadx_y(f->shift + t->col0, n);
		}
		UNROLL for (int r = 0; r < R; r++) {
			__m256 y = pair_sums8(acc[r]);
			float *c = t->c + r * ldc;
			if (t->load_c)
				y = _mm256_add_ps(loadx_y(c, n), y);
			if (fl & CNNVIZ__FUSE_BIAS)
				y = _mm256_add_ps(y, bias);
			if (fl & ~CNNVIZ__FUSE_BIAS)
				y = post_y(y, fl, f, sc, sh,
					   fl & CNNVIZ__FUSE_RES ? t->res + r * ldc
								 : NULL,
					   n);
			storex_y(c, y, n);
		}
		return;
	}
	__m512 bias = _mm512_setzero_ps(), sc = bias, sh = bias;
	if (fl & CNNVIZ__FUSE_BIAS)
		bias = loadx_z(f->bias + t->col0, n);
	if (fl & CNNVIZ__FUSE_AFFINE) {
		sc = loadx_z(f->scale + t->col0, n);
		sh = loadx_z(f->shift + t->col0, n);
	}
	UNROLL for (int r = 0; r < R; r++) {
		__m512 y = pair_sums16(acc[2 * r], acc[2 * r + 1]);
		float *c = t->c + r * ldc;
		if (t->load_c)
			y = _mm512_add_ps(loadx_z(c, n), y);
		if (fl & CNNVIZ__FUSE_BIAS)
			y = _mm512_add_ps(y, bias);
		if (fl & ~CNNVIZ__FUSE_BIAS)
			y = post_z(y, fl, f, sc, sh,
				   fl & CNNVIZ__FUSE_RES ? t->res + r * ldc : NULL,
				   n);
		storex_z(c, y, n);
	}
}

#define PAIR_CASE(r, nv)                                                       \
	case r:                                                                \
		pair_body(r, nv, t, f);                                        \
		break;

static void tile_pairs(const struct cnnviz__tile *t,
		       const struct cnnviz__fuse *f);

/* A strip of rows (struct cnnviz__tile's nrows) in tiles of t->mr. */
static void strip_pairs(const struct cnnviz__tile *t,
			const struct cnnviz__fuse *f)
{
	struct cnnviz__tile u = *t;
	const float *ab[16];
	const int res = f && (f->kflags & CNNVIZ__FUSE_RES);

	u.a = ab;
	u.toff = NULL;
	u.nrows = 0;
	u.ntaps = 1;
	for (int64_t r0 = 0; r0 < t->nrows; r0 += t->mr) {
		u.rows = t->nrows - r0 < t->mr ? (int)(t->nrows - r0) : t->mr;
		for (int r = 0; r < u.rows; r++)
			ab[r] = t->pa + (r0 + r) * t->lda;
		u.c = t->c + r0 * t->ldc;
		u.res = res ? t->res + r0 * t->ldc : NULL;
		if (u.rows == 16 && t->width == 8)
			pair_body(16, 1, &u, f);
		else if (u.rows == 8 && t->width == 16)
			pair_body(8, 2, &u, f);
		else
			tile_pairs(&u, f);
	}
}

static void tile_pairs(const struct cnnviz__tile *t,
		       const struct cnnviz__fuse *f)
{
	if (t->nrows) {
		strip_pairs(t, f);
		return;
	}
	if (t->width == 8) {
		switch (t->rows) {
			PAIR_CASE(1, 1) PAIR_CASE(2, 1) PAIR_CASE(3, 1)
			PAIR_CASE(4, 1) PAIR_CASE(5, 1) PAIR_CASE(6, 1)
			PAIR_CASE(7, 1) PAIR_CASE(8, 1) PAIR_CASE(9, 1)
			PAIR_CASE(10, 1) PAIR_CASE(11, 1) PAIR_CASE(12, 1)
			PAIR_CASE(13, 1) PAIR_CASE(14, 1) PAIR_CASE(15, 1)
			PAIR_CASE(16, 1)
		default:
			break;
		}
		return;
	}
	switch (t->rows) {
		PAIR_CASE(1, 2) PAIR_CASE(2, 2) PAIR_CASE(3, 2)
		PAIR_CASE(4, 2) PAIR_CASE(5, 2) PAIR_CASE(6, 2)
		PAIR_CASE(7, 2) PAIR_CASE(8, 2)
	default:
		break;
	}
}
#undef PAIR_CASE

/* ------------------------------------------------------ one channel */

/* Rows r[0..7] (8 values each) become columns: r[p] = the p-th values. */
static inline __attribute__((always_inline)) void transpose8(__m256 r[8])
{
	__m256 t[8], u[8];
	UNROLL for (int i = 0; i < 4; i++) {
		t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	UNROLL for (int i = 0; i < 2; i++) {
		u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
		u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
		u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
		u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
	}
	UNROLL for (int i = 0; i < 4; i++) {
		r[i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
		r[4 + i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
	}
}

/*
 * A conv with one input channel has no channel loop to vectorise: the
 * vectors hold 16 neighbouring output pixels of a row instead. The taps'
 * input vectors are loaded once per 16 pixels (the padding's as zeros),
 * the weights of 8 output channels at a time are broadcast, and the 8 x 16
 * sums are transposed into pixels before the epilogue. Each output sums
 * its taps in (i, j) order.
 */
static inline __attribute__((always_inline)) void
c1_body(const int T, const struct cnnviz__c1_row *d,
	const struct cnnviz__fuse *f)
{
	const struct cnnviz__conv_geom *g = d->g;
	/* T: the tap count when a constant (3x3), else 0 */
	const int64_t co = g->cout, taps = T ? T : g->kh * g->kw;
	const int64_t co8 = (co + 7) / 8 * 8;
	const unsigned fl = f ? f->kflags : 0;
	const int64_t iy0 = d->oy * g->sh - g->pad_t;
	const float *wk = d->k;

	for (int64_t ox0 = 0; ox0 < g->ow; ox0 += 16) {
		__m512 xv[CNNVIZ__C1_TAPS];
		for (int64_t i = 0; i < g->kh; i++) {
			const int64_t iy = iy0 + i * g->dh;
			const int in_y = iy >= 0 && iy < g->h;
			for (int64_t j = 0; j < g->kw; j++) {
				/* lanes whose pixel is inside the row */
				const int64_t ix = ox0 - g->pad_l + j;
				const int64_t lo = ix < 0 ? -ix : 0;
				const int64_t hi = g->w - ix < 16 ? g->w - ix : 16;
				__m512 v = _mm512_setzero_ps();
				if (in_y && hi > lo)
					v = _mm512_maskz_loadu_ps(
						(__mmask16)(((1u << hi) - 1u) &
							    ~((1u << lo) - 1u)),
						/* may start before the row:
						   those lanes are masked */
						(const float *)((uintptr_t)(d->x + iy * g->w) +
								(uintptr_t)ix * sizeof(float)));
				xv[i * g->kw + j] = v;
			}
		}
		const int np = g->ow - ox0 < 16 ? (int)(g->ow - ox0) : 16;
		for (int64_t ob = 0; ob < co; ob += 8) {
			const int nb = co - ob < 8 ? (int)(co - ob) : 8;
			__m512 acc[8];
			UNROLL for (int o = 0; o < 8; o++)
				acc[o] = _mm512_setzero_ps();
			UNROLL for (int64_t q = 0; q < taps; q++) {
				const float *w = wk + q * co8 + ob;
				UNROLL for (int o = 0; o < 8; o++)
					acc[o] = _mm512_fmadd_ps(
						xv[q], _mm512_set1_ps(w[o]), acc[o]);
			}
			__m256 bias = _mm256_setzero_ps(), sc = bias, sh = bias;
			if (fl & CNNVIZ__FUSE_BIAS)
				bias = loadx_y(f->bias + ob, nb);
			if (fl & CNNVIZ__FUSE_AFFINE) {
				sc = loadx_y(f->scale + ob, nb);
				sh = loadx_y(f->shift + ob, nb);
			}
			UNROLL for (int half = 0; half < 2; half++) {
				__m256 px[8];
				if (half * 8 >= np)
					break;
				UNROLL for (int o = 0; o < 8; o++)
					px[o] = half ? _mm256_castpd_ps(_mm512_extractf64x4_pd(
							       _mm512_castps_pd(acc[o]), 1))
						     : _mm512_castps512_ps256(acc[o]);
				transpose8(px);
				UNROLL for (int p = 0; p < 8; p++) {
					if (half * 8 + p >= np)
						break;
					const int64_t ox = ox0 + half * 8 + p;
					__m256 y = px[p];
					if (fl & CNNVIZ__FUSE_BIAS)
						y = _mm256_add_ps(y, bias);
					if (fl & ~CNNVIZ__FUSE_BIAS)
						y = post_y(y, fl, f, sc, sh,
							   fl & CNNVIZ__FUSE_RES
								   ? d->res + ox * co + ob
								   : NULL,
							   nb);
					storex_y(d->y + ox * co + ob, y, nb);
				}
			}
		}
	}
}

/*
 * The same sums for cout a multiple of 16, vectors across output channels
 * instead: the taps' weights of NV x 16 channels stay in registers and
 * each input pixel is broadcast straight into the FMA, so no transposes.
 * The kh input rows are first copied into zero-padded rows, which makes
 * the padding's taps add fma(0, w) as c1_body's zeroed lanes do: every
 * output is bit for bit what c1_body gives. C1_PX pixels at a time.
 */
#define C1_PX 4
#define C1_ROW_MAX 512 /* padded row floats (ow + kw - 1) on the stack */

/*
 * The epilogue and store of acc[p * NV + v] = the sums of output pixel
 * ox0 + p (p < np), channels ob + 16v... The epilogue's vectors are loaded
 * here, not held: the weights and accumulators need the registers.
 */
static inline __attribute__((always_inline)) void
chan_store(const int NV, const struct cnnviz__c1_row *d,
	   const struct cnnviz__fuse *f, const __m512 *acc, const int PX,
	   int np, int64_t ox0, int64_t ob)
{
	const unsigned fl = f ? f->kflags : 0;
	UNROLL for (int p = 0; p < PX; p++) {
		if (p >= np)
			break;
		const int64_t at = (ox0 + p) * d->g->cout + ob;
		UNROLL for (int v = 0; v < NV; v++) {
			const int64_t o = ob + v * 16;
			const int aff = (fl & CNNVIZ__FUSE_AFFINE) != 0;
			__m512 y = acc[p * NV + v];
			if (fl & CNNVIZ__FUSE_BIAS)
				y = _mm512_add_ps(y, _mm512_loadu_ps(f->bias + o));
			if (fl & ~CNNVIZ__FUSE_BIAS)
				y = post_z(y, fl, f,
					   aff ? _mm512_loadu_ps(f->scale + o)
					       : _mm512_setzero_ps(),
					   aff ? _mm512_loadu_ps(f->shift + o)
					       : _mm512_setzero_ps(),
					   fl & CNNVIZ__FUSE_RES ? d->res + at + v * 16
								 : NULL,
					   16);
			_mm512_storeu_ps(d->y + at + v * 16, y);
		}
	}
}

static inline __attribute__((always_inline)) void
c1_chan_body(const int T, const int NV, const struct cnnviz__c1_row *d,
	     const struct cnnviz__fuse *f, const float (*rows)[C1_ROW_MAX],
	     int64_t ob)
{
	const struct cnnviz__conv_geom *g = d->g;
	const int64_t co = g->cout, co8 = (co + 7) / 8 * 8, kw = g->kw;
	const int64_t taps = T ? T : g->kh * g->kw;
	__m512 w[CNNVIZ__C1_TAPS * 2];

	if (!T) /* taps <= 9 is beyond what the compiler can see */
		UNROLL for (int k = 0; k < CNNVIZ__C1_TAPS * 2; k++)
			w[k] = _mm512_setzero_ps();
	UNROLL for (int64_t q = 0; q < taps; q++)
		UNROLL for (int v = 0; v < NV; v++)
			w[q * NV + v] = _mm512_loadu_ps(d->k + q * co8 + ob +
							v * 16);
	for (int64_t ox0 = 0; ox0 < g->ow; ox0 += C1_PX) {
		const int np = g->ow - ox0 < C1_PX ? (int)(g->ow - ox0) : C1_PX;
		__m512 acc[C1_PX * 2];
		UNROLL for (int k = 0; k < C1_PX * NV; k++)
			acc[k] = _mm512_setzero_ps();
		/* Pixels past the row read the padded row's tail: their sums
		   are computed and dropped. */
		UNROLL for (int64_t q = 0; q < taps; q++) {
			const float *x = rows[q / kw] + ox0 + q % kw;
			UNROLL for (int p = 0; p < C1_PX; p++) {
				const __m512 xv = _mm512_set1_ps(x[p]);
				UNROLL for (int v = 0; v < NV; v++)
					acc[p * NV + v] = _mm512_fmadd_ps(
						xv, w[q * NV + v],
						acc[p * NV + v]);
			}
		}
		chan_store(NV, d, f, acc, C1_PX, np, ox0, ob);
	}
}

/*
 * The kh input rows output row d->oy reads, zero-padded: row i at
 * rows + i * stride holds `pixels` pixels of cin floats, pixel t being
 * input column t - pad_l.
 */
static void fill_rows(const struct cnnviz__c1_row *d, float *rows,
		      int64_t stride, int64_t pixels)
{
	const struct cnnviz__conv_geom *g = d->g;
	const int64_t c = g->cin;
	const int64_t lo = g->pad_l < pixels ? g->pad_l : pixels;
	const int64_t hi = g->pad_l + g->w < pixels ? g->pad_l + g->w : pixels;

	for (int64_t i = 0; i < g->kh; i++) {
		const int64_t iy = d->oy * g->sh - g->pad_t + i * g->dh;
		float *r = rows + i * stride;
		if (iy < 0 || iy >= g->h || hi <= lo) {
			memset(r, 0, (size_t)(pixels * c) * sizeof *r);
			continue;
		}
		memset(r, 0, (size_t)(lo * c) * sizeof *r);
		memcpy(r + lo * c, d->x + (iy * g->w + lo - g->pad_l) * c,
		       (size_t)((hi - lo) * c) * sizeof *r);
		memset(r + hi * c, 0, (size_t)((pixels - hi) * c) * sizeof *r);
	}
}

static void c1_chan(const struct cnnviz__c1_row *d,
		    const struct cnnviz__fuse *f)
{
	const struct cnnviz__conv_geom *g = d->g;
	/* + C1_PX: the last group's pixels past the row read zeros */
	_Alignas(64) float rows[CNNVIZ__C1_TAPS][C1_ROW_MAX];

	fill_rows(d, rows[0], C1_ROW_MAX, g->ow + g->kw - 1 + C1_PX);
	const int nine = g->kh * g->kw == 9;
	int64_t ob = 0;
	for (; ob + 32 <= g->cout; ob += 32)
		if (nine)
			c1_chan_body(9, 2, d, f, rows, ob);
		else
			c1_chan_body(0, 2, d, f, rows, ob);
	if (ob < g->cout) {
		if (nine)
			c1_chan_body(9, 1, d, f, rows, ob);
		else
			c1_chan_body(0, 1, d, f, rows, ob);
	}
}

/*
 * FEWC: up to 4 input channels at any stride (RGB stems). As c1_chan, but
 * kh*kw*cin weight vectors are too many for the registers: each is loaded
 * once per step of CNNVIZ__FEWC_PX pixels and used for all of them.
 * Each output sums its taps in (i, j, c) order.
 */
static inline __attribute__((always_inline)) void
fewc_body(const int NV, const struct cnnviz__c1_row *d,
	  const struct cnnviz__fuse *f, const float (*rows)[CNNVIZ__FEWC_ROW],
	  int64_t ob)
{
	enum { PX = CNNVIZ__FEWC_PX };
	const struct cnnviz__conv_geom *g = d->g;
	const int64_t co = g->cout, co8 = (co + 7) / 8 * 8, cin = g->cin;
	const int64_t pstep = g->sw * cin; /* floats between output pixels */
	for (int64_t ox0 = 0; ox0 < g->ow; ox0 += PX) {
		const int np = g->ow - ox0 < PX ? (int)(g->ow - ox0) : PX;
		__m512 acc[PX * 2];
		UNROLL for (int k = 0; k < PX * NV; k++)
			acc[k] = _mm512_setzero_ps();
		const float *wq = d->k + ob;
		for (int64_t i = 0; i < g->kh; i++)
			for (int64_t j = 0; j < g->kw; j++) {
				const float *x = rows[i] + (ox0 * g->sw + j) * cin;
				for (int64_t c = 0; c < cin; c++, wq += co8) {
					/* two names, not an array: GCC spilled
					   the array to the stack */
					const __m512 w0 = _mm512_loadu_ps(wq);
					const __m512 w1 = NV > 1
						? _mm512_loadu_ps(wq + 16)
						: w0;
					UNROLL for (int p = 0; p < PX; p++) {
						const __m512 xv = _mm512_set1_ps(
							x[p * pstep + c]);
						acc[p * NV] = _mm512_fmadd_ps(
							xv, w0, acc[p * NV]);
						if (NV > 1)
							acc[p * NV + 1] = _mm512_fmadd_ps(
								xv, w1, acc[p * NV + 1]);
					}
				}
			}
		chan_store(NV, d, f, acc, PX, np, ox0, ob);
	}
}

static void conv_fewc(const struct cnnviz__c1_row *d,
		      const struct cnnviz__fuse *f)
{
	const struct cnnviz__conv_geom *g = d->g;
	_Alignas(64) float rows[CNNVIZ__FEWC_KH][CNNVIZ__FEWC_ROW];

	fill_rows(d, rows[0], CNNVIZ__FEWC_ROW,
		  cnnviz__fewc_row_floats(g) / g->cin);
	int64_t ob = 0;
	for (; ob + 32 <= g->cout; ob += 32)
		fewc_body(2, d, f, rows, ob);
	if (ob < g->cout)
		fewc_body(1, d, f, rows, ob);
}

static void conv_c1(const struct cnnviz__c1_row *d,
		    const struct cnnviz__fuse *f)
{
	const struct cnnviz__conv_geom *g = d->g;
	if (g->cout % 16 == 0 && g->ow + g->kw - 1 + C1_PX <= C1_ROW_MAX)
		c1_chan(d, f);
	else if (g->kh * g->kw == 9)
		c1_body(9, d, f);
	else
		c1_body(0, d, f);
}

static void tile(const struct cnnviz__tile *t, const struct cnnviz__fuse *f)
{
	if (t->width == 32)
		tile_nv2_z(t, f);
	else if (t->width == 16)
		tile_nv1_z(t, f);
	else
		tile_nv1_y(t, f);
}

static void dw_row(const struct cnnviz__dw_row *d,
		   const struct cnnviz__fuse *f)
{
	const int64_t c = d->g->cin;
	int64_t c0 = 0;
	for (; c0 + 16 <= c; c0 += 16)
		dw_full_z(d, f, c0);
	if (c - c0 > 8)
		dw_part_z(d, f, c0, (int)(c - c0));
	else if (c - c0 == 8)
		dw_full_y(d, f, c0);
	else if (c > c0)
		dw_part_y(d, f, c0, (int)(c - c0));
}

static const struct cnnviz__isa isa = {
	.name = "avx512",
	.mr = MR,
	.narrow = 16,
	.mr_narrow = MR1,
	.widths = {32, 16, 8},
	.tile = tile,
	.pairs = 1,
	.mr_pairs = {16, 8},
	.tile_pairs = tile_pairs,
	.dw_row = dw_row,
	.pool_px = pool_px_z,
	.conv_c1 = conv_c1,
	.conv_fewc = conv_fewc,
};

const struct cnnviz__isa *cnnviz__isa_avx512_table(void)
{
	return &isa;
}
#else
const struct cnnviz__isa *cnnviz__isa_avx512_table(void)
{
	return NULL;
}
#endif
