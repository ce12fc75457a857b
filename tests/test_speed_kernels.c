/*
 * The fast kernels (lib/isa_*.c through gemm.c and conv_fast.c), on every
 * instruction set this CPU runs:
 *   - packed GEMM, Conv2D (direct, indirect and one-channel paths, groups,
 *     stride, dilation, padding), depthwise and separable convolutions
 *     against naive float64 loops written here (TF 'same' padding);
 *     tolerance max|diff| <= 1e-5 * max(|ref|, 1);
 *   - the fused epilogue (bias, activation, folded BatchNormalization,
 *     residual, activation) bit for bit equal to the unfused sequence the
 *     layers compute (cnnviz__act_forward, then cnnviz__epilogue_apply);
 *   - results bit-identical for 1, 2, 3 and 4 threads.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels.h"

#define TOL 1e-5

static const char *const isa_names[] = {"avx512", "avx2", "neon", "generic"};
#define N_ISA (sizeof isa_names / sizeof isa_names[0])

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *rnd(size_t n)
{
	float *a = malloc((n ? n : 1) * sizeof *a);
	assert_non_null(a);
	for (size_t i = 0; i < n; i++)
		a[i] = frand();
	return a;
}

static float *fcopy(const float *a, size_t n)
{
	float *b = malloc((n ? n : 1) * sizeof *b);
	assert_non_null(b);
	memcpy(b, a, n * sizeof *b);
	return b;
}

/* max|got - ref| / max(max|ref|, 1), NaN as infinite. */
static double rel_err(const float *got, const double *ref, size_t n)
{
	double m = 1.0, d = 0.0;
	for (size_t i = 0; i < n; i++)
		if (fabs(ref[i]) > m)
			m = fabs(ref[i]);
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)got[i] - ref[i]);
		if (!(e <= d))
			d = isnan(e) ? INFINITY : e;
	}
	return d / m;
}

static void check(const char *what, const float *got, const double *ref,
		  size_t n)
{
	double e = rel_err(got, ref, n);
	if (!(e <= TOL))
		fprintf(stderr, "%s: rel err %.3g\n", what, e);
	assert_true(e <= TOL);
}

/* Bit for bit, naming the first difference. */
static void same_bits(const char *what, const float *a, const float *b,
		      size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], sizeof a[i]) != 0) {
			fprintf(stderr, "%s: [%zu] %.9g != %.9g\n", what, i,
				(double)a[i], (double)b[i]);
			fail();
		}
}

/* A packed copy of b (k, n) for isa, in k pairs when the layers would
   (data freed by the caller). */
static struct cnnviz__packed pack(const struct cnnviz__isa *isa, int64_t k,
				  int64_t n, const float *b)
{
	size_t fl;
	int pairs = cnnviz__pairs_ok(isa, k, n);
	assert_int_equal(cnnviz__pack_floats(isa, k, n, &fl), 0);
	float *d = malloc((fl ? fl : 1) * sizeof *d);
	assert_non_null(d);
	if (pairs)
		cnnviz__pack_pairs(isa, k, n, b, n, d);
	else
		cnnviz__pack(isa, k, n, b, n, d);
	return (struct cnnviz__packed){isa, k, n, d, pairs};
}

/* ------------------------------------------------------------ epilogues */

/* Epilogue setups exercised everywhere: index 0 is none. */
#define N_EPI 6

struct epi {
	struct cnnviz__act act, *actp;
	struct cnnviz__epilogue post, *postp;
	int bias;
	float *scale, *shift, *res;
};

/* Setup e for output (rows, c); res is laid out like the output. */
static void epi_make(struct epi *e, int which, int64_t rows, int64_t c)
{
	memset(e, 0, sizeof *e);
	e->act.kind = CNNVIZ__ACT_LINEAR;
	e->act.max_value = -1.0f;
	e->post.act.kind = CNNVIZ__ACT_LINEAR;
	e->post.act.max_value = -1.0f;
	e->scale = rnd((size_t)c);
	e->shift = rnd((size_t)c);
	e->res = rnd((size_t)(rows * c));
	switch (which) {
	case 1: /* bias + relu6 (Keras ReLU(6.)) */
		e->bias = 1;
		e->act.kind = CNNVIZ__ACT_RELU;
		e->act.max_value = 6.0f;
		break;
	case 2: /* BN + relu6, as MobileNetV2 */
		e->post.scale = e->scale;
		e->post.shift = e->shift;
		e->post.act.kind = CNNVIZ__ACT_RELU6;
		break;
	case 3: /* bias, BN, residual Add (a projection block) */
		e->bias = 1;
		e->post.scale = e->scale;
		e->post.shift = e->shift;
		e->post.residual = e->res;
		break;
	case 4: /* a general activation on each side */
		e->bias = 1;
		e->act.kind = CNNVIZ__ACT_SIGMOID;
		e->post.residual = e->res;
		e->post.act.kind = CNNVIZ__ACT_TANH;
		break;
	case 5: /* relu, then BN, then a softmax over the channels */
		e->act.kind = CNNVIZ__ACT_RELU;
		e->post.scale = e->scale;
		e->post.shift = e->shift;
		e->post.act.kind = CNNVIZ__ACT_SOFTMAX;
		break;
	default:
		break;
	}
	e->actp = which ? &e->act : NULL;
	e->postp = which >= 2 ? &e->post : NULL;
}

static void epi_free(struct epi *e)
{
	free(e->scale);
	free(e->shift);
	free(e->res);
}

/* The op's own bias and activation on its bare output y (rows, c). */
static void own_epi(const struct epi *e, const float *bias, float *y,
		    int64_t rows, int64_t c)
{
	for (int64_t r = 0; bias && r < rows; r++)
		for (int64_t j = 0; j < c; j++)
			y[r * c + j] = y[r * c + j] + bias[j];
	if (e->actp)
		cnnviz__act_forward(e->actp, y, y, (size_t)rows, (size_t)c);
}

/* The layers the planner folds, as they compute unfused. */
static void post_unfused(const struct epi *e, float *y, int64_t rows,
			 int64_t c)
{
	if (e->postp)
		cnnviz__epilogue_apply(e->postp, y, e->postp->residual, rows, c);
}

/* own (the op with its bias and activation) against bare + those, within
   TOL: the kernels may add the bias first (depthwise). */
static void check_own(const char *what, const float *own, const float *bare,
		      const struct epi *e, const float *bias, int64_t rows,
		      int64_t c)
{
	size_t n = (size_t)(rows * c);
	float *want = fcopy(bare, n);
	double *wd = malloc(n * sizeof *wd);
	assert_non_null(wd);
	own_epi(e, bias, want, rows, c);
	for (size_t i = 0; i < n; i++)
		wd[i] = want[i];
	check(what, own, wd, n);
	free(wd);
	free(want);
}

/* ------------------------------------------------------------------ GEMM */

static void gemm_one(const struct cnnviz__isa *isa, int64_t m, int64_t n,
		     int64_t k)
{
	float *x = rnd((size_t)(m * k)), *b = rnd((size_t)(k * n));
	float *bias = rnd((size_t)n);
	double *ref = calloc((size_t)(m * n), sizeof *ref);
	char what[128];
	assert_non_null(ref);
	for (int64_t i = 0; i < m; i++)
		for (int64_t j = 0; j < n; j++)
			for (int64_t q = 0; q < k; q++)
				ref[i * n + j] +=
					(double)x[i * k + q] * b[q * n + j];
	struct cnnviz__packed w = pack(isa, k, n, b);
	float *plain = rnd((size_t)(m * n)); /* garbage to overwrite */
	cnnviz__gemm_packed(m, x, k, &w, NULL, NULL, NULL, plain, n, NULL);
	snprintf(what, sizeof what, "%s gemm %lldx%lldx%lld",
		 cnnviz__isa_name(isa), (long long)m, (long long)n,
		 (long long)k);
	check(what, plain, ref, (size_t)(m * n));
	for (int which = 1; which < N_EPI; which++) {
		struct epi e;
		epi_make(&e, which, m, n);
		const float *bp = e.bias ? bias : NULL;
		float *y = rnd((size_t)(m * n)), *own = rnd((size_t)(m * n));
		snprintf(what, sizeof what, "%s gemm %lldx%lldx%lld epilogue %d",
			 cnnviz__isa_name(isa), (long long)m, (long long)n,
			 (long long)k, which);
		cnnviz__gemm_packed(m, x, k, &w, bp, e.actp, NULL, own, n, NULL);
		check_own(what, own, plain, &e, bp, m, n);
		cnnviz__gemm_packed(m, x, k, &w, bp, e.actp, e.postp, y, n,
				    NULL);
		post_unfused(&e, own, m, n);
		same_bits(what, y, own, (size_t)(m * n));
		free(y);
		free(own);
		epi_free(&e);
	}
	free((void *)w.data);
	free(plain);
	free(ref);
	free(bias);
	free(x);
	free(b);
}

static void test_gemm_packed(void **state)
{
	(void)state;
	static const int64_t shapes[][3] = {
		{1, 1, 1},   {1, 7, 5},   {3, 8, 16},  {17, 16, 9},
		{9, 24, 33}, {20, 33, 7}, {64, 100, 40}, {5, 40, 300},
		{2, 130, 600}, {1, 1000, 64},
		/* narrow outputs with an even k: the k-pair kernels */
		{33, 12, 48}, {1, 16, 64}, {40, 5, 2}, {13, 8, 520},
	};
	int tested = 0;
	for (size_t i = 0; i < N_ISA; i++) {
		const struct cnnviz__isa *isa = cnnviz__isa_named(isa_names[i]);
		if (!isa)
			continue;
		tested++;
		for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
			gemm_one(isa, shapes[s][0], shapes[s][1], shapes[s][2]);
	}
	printf("  instruction sets tested: %d\n", tested);
	assert_true(tested >= 1);
	assert_null(cnnviz__isa_named("no-such-isa"));
	assert_non_null(cnnviz__isa_best());
}

/* ---------------------------------------------------------------- Conv2D */

struct cc {
	int64_t n, h, w, cin, cout, kh, kw, s, d, groups;
	int same;
};

static void geom(const struct cc *c, struct cnnviz__conv_geom *g)
{
	memset(g, 0, sizeof *g);
	g->h = c->h;
	g->w = c->w;
	g->cin = c->cin;
	g->cout = c->cout;
	g->kh = c->kh;
	g->kw = c->kw;
	g->sh = g->sw = c->s;
	g->dh = g->dw = c->d;
	g->groups = c->groups;
	g->mult = 1;
	assert_int_equal(cnnviz__conv_geometry(c->h, c->kh, c->s, c->d, c->same,
					       &g->oh, &g->pad_t), 0);
	assert_int_equal(cnnviz__conv_geometry(c->w, c->kw, c->s, c->d, c->same,
					       &g->ow, &g->pad_l), 0);
}

/* TF 'same': out = ceil(n/s), padding before = total / 2. */
static int64_t pad_before(int64_t n, int64_t k, int64_t s, int64_t d,
			  int same, int64_t *out)
{
	int64_t ke = (k - 1) * d + 1;
	if (!same) {
		*out = (n - ke) / s + 1;
		return 0;
	}
	*out = (n + s - 1) / s;
	int64_t t = (*out - 1) * s + ke - n;
	return t > 0 ? t / 2 : 0;
}

/* ref (n,oh,ow,cout) of x (n,h,w,cin), k (kh,kw,cin/groups,cout). A
   depthwise kernel (kh,kw,cin,mult) is groups = cin, cout = cin*mult. */
static double *ref_conv(const struct cc *c, const float *x, const float *k,
			int64_t *oh, int64_t *ow)
{
	int64_t pt = pad_before(c->h, c->kh, c->s, c->d, c->same, oh);
	int64_t pl = pad_before(c->w, c->kw, c->s, c->d, c->same, ow);
	int64_t cg = c->cin / c->groups, og = c->cout / c->groups;
	double *y = calloc((size_t)(c->n * *oh * *ow * c->cout), sizeof *y);
	assert_non_null(y);
	for (int64_t b = 0; b < c->n; b++)
		for (int64_t oy = 0; oy < *oh; oy++)
			for (int64_t ox = 0; ox < *ow; ox++)
				for (int64_t o = 0; o < c->cout; o++) {
					int64_t gi = o / og;
					double s = 0;
					for (int64_t i = 0; i < c->kh; i++)
						for (int64_t j = 0; j < c->kw; j++) {
							int64_t iy = oy * c->s - pt + i * c->d;
							int64_t ix = ox * c->s - pl + j * c->d;
							if (iy < 0 || iy >= c->h || ix < 0 ||
							    ix >= c->w)
								continue;
							for (int64_t q = 0; q < cg; q++)
								s += (double)x[((b * c->h + iy) * c->w + ix) * c->cin + gi * cg + q] *
								     k[((i * c->kw + j) * cg + q) * c->cout + o];
						}
					y[((b * *oh + oy) * *ow + ox) * c->cout + o] = s;
				}
	return y;
}

/* Runs plan cp; pool NULL or a pool. */
static void conv_run(const struct cnnviz__conv_plan *cp, size_t sc,
		     int64_t n, const float *x, const float *bias,
		     const struct epi *e, float *y, struct cnnviz__pool *pool)
{
	int workers = cnnviz__pool_size(pool);
	float *scratch = malloc((sc * (size_t)workers + 16) * sizeof *scratch);
	assert_non_null(scratch);
	cnnviz__conv_plan_run(cp, n, x, bias, e ? e->actp : NULL,
			      e ? e->postp : NULL, y, scratch, sc, pool);
	free(scratch);
}

static void conv_one(const struct cnnviz__isa *isa, const struct cc *c)
{
	struct cnnviz__conv_geom g;
	struct cnnviz__conv_plan cp;
	size_t sc, wf, zf;
	int64_t oh, ow;
	char what[160];

	geom(c, &g);
	assert_int_equal(cnnviz__conv_plan_init(&cp, &g, isa, &sc, &wf, &zf), 0);
	size_t nx = (size_t)(c->n * c->h * c->w * c->cin);
	size_t nk = (size_t)(c->kh * c->kw * (c->cin / c->groups) * c->cout);
	float *x = rnd(nx), *k = rnd(nk), *bias = rnd((size_t)c->cout);
	float *w = malloc(wf * sizeof *w), *z = calloc(zf + 1, sizeof *z);
	assert_non_null(w);
	cnnviz__conv_plan_pack(&cp, k, w, z);
	double *ref = ref_conv(c, x, k, &oh, &ow);
	assert_int_equal(oh, g.oh);
	assert_int_equal(ow, g.ow);
	size_t ny = (size_t)(c->n * oh * ow * c->cout);
	float *plain = rnd(ny);
	conv_run(&cp, sc, c->n, x, NULL, NULL, plain, NULL);
	snprintf(what, sizeof what,
		 "%s conv path %d %lldx%lldx%lld->%lld k%lldx%lld s%lld d%lld g%lld %s",
		 cnnviz__isa_name(isa), cp.path, (long long)c->h,
		 (long long)c->w, (long long)c->cin, (long long)c->cout,
		 (long long)c->kh, (long long)c->kw, (long long)c->s,
		 (long long)c->d, (long long)c->groups,
		 c->same ? "same" : "valid");
	check(what, plain, ref, ny);
	for (int which = 1; which < N_EPI; which++) {
		struct epi e;
		epi_make(&e, which, c->n * oh * ow, c->cout);
		const float *bp = e.bias ? bias : NULL;
		const int64_t px = c->n * oh * ow;
		float *y = rnd(ny), *own = rnd(ny);
		size_t l = strlen(what);
		snprintf(what + l, sizeof what - l, " epilogue %d", which);
		struct cnnviz__epilogue *post = e.postp;
		e.postp = NULL;
		conv_run(&cp, sc, c->n, x, bp, &e, own, NULL);
		check_own(what, own, plain, &e, bp, px, c->cout);
		e.postp = post;
		conv_run(&cp, sc, c->n, x, bp, &e, y, NULL);
		post_unfused(&e, own, px, c->cout);
		same_bits(what, y, own, ny);
		what[l] = 0;
		free(y);
		free(own);
		epi_free(&e);
	}
	free(plain);
	free(ref);
	free(w);
	free(z);
	free(x);
	free(k);
	free(bias);
}

static const struct cc conv_cases[] = {
	/* n h w cin cout kh kw s d groups same */
	{2, 5, 6, 4, 16, 1, 1, 1, 1, 1, 0},   /* direct */
	{1, 7, 7, 24, 40, 1, 1, 2, 1, 1, 1},  /* 1x1 stride 2: indirect */
	{2, 9, 8, 1, 8, 3, 3, 1, 1, 1, 0},    /* one input channel */
	{1, 7, 30, 1, 20, 5, 3, 1, 1, 1, 1},  /* ... 5x3, padded, 20 outputs */
	{2, 10, 17, 1, 3, 3, 3, 1, 1, 1, 1},  /* ... 17 wide: two pixel blocks */
	{1, 6, 20, 1, 40, 2, 2, 1, 1, 1, 1},  /* ... 2x2, 40 outputs */
	/* one input channel, outputs in whole vectors: channel-major */
	{2, 9, 11, 1, 64, 3, 3, 1, 1, 1, 0},  /* ... the FER stem, 9 wide */
	{1, 7, 30, 1, 48, 5, 3, 1, 1, 1, 1},  /* ... 5x3 padded, 32 + 16 */
	{1, 4, 130, 1, 32, 3, 3, 1, 1, 1, 1}, /* ... 130 wide: 2 px left */
	{1, 2, 600, 1, 16, 3, 3, 1, 1, 1, 1}, /* ... wider than its buffer */
	{1, 11, 10, 3, 32, 3, 3, 2, 1, 1, 1}, /* RGB stem (few channels) */
	{2, 9, 13, 3, 48, 3, 3, 2, 1, 1, 0},  /* ... valid, 32 + 16 outputs */
	{1, 12, 12, 4, 16, 5, 5, 1, 1, 1, 1}, /* ... 4 channels, 5x5 */
	{1, 9, 9, 2, 64, 7, 7, 2, 1, 1, 1},   /* ... 7x7 stride 2 */
	{1, 3, 700, 3, 16, 3, 3, 1, 1, 1, 1}, /* ... too wide: indirect */
	{2, 8, 9, 8, 8, 3, 3, 1, 1, 1, 0},    /* indirect, narrow */
	{1, 9, 9, 17, 33, 3, 3, 1, 1, 1, 1},  /* padding, odd widths */
	{1, 12, 11, 6, 20, 5, 3, 2, 1, 1, 1}, /* 5x3 stride 2 */
	{1, 10, 10, 8, 12, 3, 3, 1, 2, 1, 1}, /* dilated */
	{2, 6, 7, 8, 12, 3, 3, 1, 1, 4, 1},   /* groups */
	{1, 4, 4, 64, 7, 2, 2, 1, 1, 1, 0},   /* 7 outputs */
	{1, 3, 3, 300, 48, 3, 3, 1, 1, 1, 1}, /* K split in blocks */
	{1, 1, 1, 5, 3, 1, 1, 1, 1, 1, 0},    /* 1 pixel */
};

static void test_conv(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ISA; i++) {
		const struct cnnviz__isa *isa = cnnviz__isa_named(isa_names[i]);
		for (size_t c = 0; isa && c < sizeof conv_cases / sizeof conv_cases[0];
		     c++)
			conv_one(isa, &conv_cases[c]);
	}
}

/* ------------------------------------------------- depthwise, separable */

static const struct cc dw_cases[] = {
	/* n h w cin mult(in cout) kh kw s d - same */
	{2, 7, 9, 16, 1, 3, 3, 1, 1, 0, 1},
	{1, 8, 8, 40, 1, 3, 3, 2, 1, 0, 1},
	{1, 9, 10, 5, 1, 3, 3, 2, 1, 0, 0},
	{1, 12, 13, 24, 1, 3, 3, 1, 1, 0, 1},
	{1, 1, 1, 8, 1, 3, 3, 1, 1, 0, 1},
	{1, 2, 3, 17, 1, 3, 3, 1, 1, 0, 1},
	{1, 9, 9, 8, 1, 3, 3, 1, 2, 0, 1},
	{1, 9, 11, 12, 1, 5, 5, 1, 1, 0, 1},
	{1, 6, 6, 3, 2, 3, 3, 1, 1, 0, 1}, /* depth_multiplier 2 */
};

/* The depthwise kernel (kh,kw,cin,mult) as a grouped conv's HWIO. */
static struct cc dw_as_conv(const struct cc *c)
{
	struct cc r = *c;
	r.cout = c->cin * c->cout;
	r.groups = c->cin;
	return r;
}

static void dw_one(const struct cnnviz__isa *isa, const struct cc *c0,
		   int64_t sep_out)
{
	struct cc c = dw_as_conv(c0);
	struct cnnviz__conv_geom g;
	int64_t oh, ow, mult = c0->cout;
	char what[160];

	geom(&c, &g);
	g.groups = 1;
	g.mult = mult;
	g.cout = sep_out ? sep_out : c.cout;
	size_t nx = (size_t)(c.n * c.h * c.w * c.cin);
	size_t nk = (size_t)(c.kh * c.kw * c.cout);
	float *x = rnd(nx), *k = rnd(nk), *pk = rnd((size_t)(c.cout * sep_out));
	float *bias = rnd((size_t)g.cout);
	double *mid = ref_conv(&c, x, k, &oh, &ow);
	int64_t px = c.n * oh * ow;
	double *ref = mid;
	if (sep_out) {
		ref = calloc((size_t)(px * sep_out), sizeof *ref);
		assert_non_null(ref);
		for (int64_t p = 0; p < px; p++)
			for (int64_t o = 0; o < sep_out; o++)
				for (int64_t q = 0; q < c.cout; q++)
					ref[p * sep_out + o] += mid[p * c.cout + q] *
								pk[q * sep_out + o];
	}
	size_t ny = (size_t)(px * g.cout);
	struct cnnviz__packed pw = {isa, 0, 0, NULL, 0};
	if (sep_out)
		pw = pack(isa, c.cout, sep_out, pk);
	int64_t tile = cnnviz__separable_tile(&g);
	float *scratch = malloc((size_t)(tile * g.ow * c.cout) * sizeof *scratch);
	assert_non_null(scratch);
	snprintf(what, sizeof what, "%s %s %lldx%lldx%lld m%lld k%lld s%lld d%lld %s",
		 cnnviz__isa_name(isa), sep_out ? "separable" : "depthwise",
		 (long long)c.h, (long long)c.w, (long long)c.cin,
		 (long long)mult, (long long)c.kh, (long long)c.s,
		 (long long)c.d, c.same ? "same" : "valid");
	float *plain = rnd(ny);
	for (int which = 0; which < N_EPI; which++) {
		struct epi e;
		epi_make(&e, which, px, g.cout);
		const float *bp = e.bias ? bias : NULL;
		float *y = which ? rnd(ny) : plain, *own = rnd(ny);
		struct cnnviz__epilogue *post = e.postp;
		for (int pass = 0; pass < 2; pass++) {
			e.postp = pass ? post : NULL;
			float *out = pass ? y : own;
			if (sep_out)
				cnnviz__separable_run(&g, c.n, tile, x, k, &pw,
						      bp, e.actp, e.postp, out,
						      scratch, 0, NULL, NULL, NULL);
			else
				cnnviz__depthwise_run(isa, &g, c.n, x, k, bp,
						      e.actp, e.postp, out,
						      NULL);
		}
		if (!which) {
			check(what, y, ref, ny);
		} else {
			check_own(what, own, plain, &e, bp, px, g.cout);
			post_unfused(&e, own, px, g.cout);
			same_bits(what, y, own, ny);
			free(y);
		}
		free(own);
		epi_free(&e);
	}
	free(plain);
	free(scratch);
	free((void *)pw.data);
	if (ref != mid)
		free(ref);
	free(mid);
	free(x);
	free(k);
	free(pk);
	free(bias);
}

static void test_depthwise_separable(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ISA; i++) {
		const struct cnnviz__isa *isa = cnnviz__isa_named(isa_names[i]);
		for (size_t c = 0; isa && c < sizeof dw_cases / sizeof dw_cases[0];
		     c++) {
			dw_one(isa, &dw_cases[c], 0);
			dw_one(isa, &dw_cases[c], 1 + (int64_t)c * 5);
		}
	}
}

/* --------------------------------------------------------------- threads */

/* Every kernel on shapes that split into many tasks: the same bits with
   1, 2, 3 and 4 threads. */
static void test_thread_bits(void **state)
{
	(void)state;
	const struct cnnviz__isa *isa = cnnviz__isa_best();
	struct cnnviz__pool *pools[4] = {NULL};
	for (int t = 1; t < 4; t++)
		assert_int_equal(cnnviz__pool_new(t + 1, &pools[t]), 0);

	/* GEMM: many rows; one row and many columns (panels split). */
	static const int64_t gs[][3] = {{300, 72, 64}, {1, 2000, 512}};
	for (size_t s = 0; s < 2; s++) {
		int64_t m = gs[s][0], n = gs[s][1], k = gs[s][2];
		float *x = rnd((size_t)(m * k)), *b = rnd((size_t)(k * n));
		struct cnnviz__packed w = pack(isa, k, n, b);
		struct epi e;
		epi_make(&e, 3, m, n);
		float *y[4];
		for (int t = 0; t < 4; t++) {
			y[t] = rnd((size_t)(m * n));
			cnnviz__gemm_packed(m, x, k, &w, b, e.actp, e.postp,
					    y[t], n, pools[t]);
			if (t)
				same_bits("gemm threads", y[t], y[0],
					  (size_t)(m * n));
		}
		for (int t = 0; t < 4; t++)
			free(y[t]);
		epi_free(&e);
		free((void *)w.data);
		free(x);
		free(b);
	}

	/* Conv2D, depthwise and separable on a 2-image batch. */
	struct cc c = {2, 33, 31, 16, 48, 3, 3, 1, 1, 1, 1};
	struct cnnviz__conv_geom g;
	struct cnnviz__conv_plan cp;
	size_t sc, wf, zf;
	geom(&c, &g);
	assert_int_equal(cnnviz__conv_plan_init(&cp, &g, isa, &sc, &wf, &zf), 0);
	float *k = rnd((size_t)(9 * 16 * 48)), *w = malloc(wf * sizeof *w);
	float *z = calloc(zf + 1, sizeof *z), *x = rnd((size_t)(2 * 33 * 31 * 16));
	float *pk = rnd((size_t)(16 * 48));
	assert_non_null(w);
	cnnviz__conv_plan_pack(&cp, k, w, z);
	struct cnnviz__packed pw = pack(isa, 16, 48, pk);
	struct cnnviz__conv_geom gd = g;
	gd.cout = 16;
	int64_t tile = 2; /* many separable tiles */
	size_t ny = (size_t)(2 * g.oh * g.ow * 48), nd = ny / 3;
	float *sep_scr = malloc((size_t)(4 * tile * g.ow * 16) * sizeof *sep_scr);
	assert_non_null(sep_scr);
	float *yc[4], *yd[4], *ys[4];
	struct epi e;
	epi_make(&e, 2, 2 * g.oh * g.ow, 48);
	struct epi ed;
	epi_make(&ed, 3, 2 * g.oh * g.ow, 16);
	for (int t = 0; t < 4; t++) {
		yc[t] = rnd(ny);
		yd[t] = rnd(nd);
		ys[t] = rnd(ny);
		conv_run(&cp, sc, 2, x, k, &e, yc[t], pools[t]);
		cnnviz__depthwise_run(isa, &gd, 2, x, k, k, ed.actp, ed.postp,
				      yd[t], pools[t]);
		cnnviz__separable_run(&g, 2, tile, x, k, &pw, k, e.actp,
				      e.postp, ys[t], sep_scr,
				      (size_t)(tile * g.ow * 16), pools[t],
				      NULL, NULL);
		if (t) {
			same_bits("conv threads", yc[t], yc[0], ny);
			same_bits("depthwise threads", yd[t], yd[0], nd);
			same_bits("separable threads", ys[t], ys[0], ny);
		}
	}
	for (int t = 0; t < 4; t++) {
		free(yc[t]);
		free(yd[t]);
		free(ys[t]);
		cnnviz__pool_free(pools[t]);
	}
	epi_free(&e);
	epi_free(&ed);
	free(sep_scr);
	free((void *)pw.data);
	free(pk);
	free(k);
	free(w);
	free(z);
	free(x);
}

/* The checks above can fail. */
static void test_checks_fail(void **state)
{
	(void)state;
	float a[2] = {1.0f, 2.0f};
	double r[2] = {1.0, 2.0};
	assert_true(rel_err(a, r, 2) <= TOL);
	a[1] = 2.001f;
	assert_false(rel_err(a, r, 2) <= TOL);
	a[1] = NAN;
	assert_false(rel_err(a, r, 2) <= TOL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checks_fail),
		cmocka_unit_test(test_gemm_packed),
		cmocka_unit_test(test_conv),
		cmocka_unit_test(test_depthwise_separable),
		cmocka_unit_test(test_thread_bits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
