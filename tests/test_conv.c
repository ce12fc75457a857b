/*
 * Convolution kernels and the GEMM against naive float64 loops written
 * here from the Keras/TensorFlow definitions (keras_ref.py semantics:
 * TF 'same' padding, Keras deconv_length), independently of lib/.
 * Tolerance: max|diff| <= 1e-5 * max(|ref|, 1), float32 vs float64.
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

static uint64_t rng_state = 88172645463325252ull;

/* Uniform in [-1, 1). */
static float frand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 -
		       1.0);
}

static float *rand_array(size_t n)
{
	float *a = malloc((n ? n : 1) * sizeof *a);
	assert_non_null(a);
	for (size_t i = 0; i < n; i++)
		a[i] = frand();
	return a;
}

static double *zeros_d(size_t n)
{
	double *a = calloc(n ? n : 1, sizeof *a);
	assert_non_null(a);
	return a;
}

/*
 * Largest |got - ref| relative to max(max|ref|, 1); prints the first
 * mismatches so a failure says where.
 */
static double rel_err(const char *what, const float *got, const double *ref,
		      size_t n)
{
	double maxref = 1.0, maxdiff = 0.0;
	for (size_t i = 0; i < n; i++)
		if (fabs(ref[i]) > maxref)
			maxref = fabs(ref[i]);
	int shown = 0, nan = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - ref[i]);
		nan |= isnan(d);
		if (d > maxdiff)
			maxdiff = d;
		if (!(d <= TOL * maxref) && shown++ < 5)
			fprintf(stderr, "%s: [%zu] got %.7g want %.7g\n", what,
				i, (double)got[i], ref[i]);
	}
	return nan ? INFINITY : maxdiff / maxref;
}

#define CHECK(what, got, ref, n) \
	assert_true(rel_err(what, got, ref, n) <= TOL)

/* ------------------------------------------------- independent geometry */

/* TensorFlow: out = ceil(n/s) for same, (n - ke)/s + 1 for valid. */
static void ref_len(int64_t n, int64_t k, int64_t s, int64_t d, int same,
		    int64_t *out, int64_t *before)
{
	int64_t ke = (k - 1) * d + 1;
	if (same) {
		*out = (n + s - 1) / s;
		int64_t tot = (*out - 1) * s + ke - n;
		*before = tot > 0 ? tot / 2 : 0;
	} else {
		*out = n >= ke ? (n - ke) / s + 1 : 0;
		*before = 0;
	}
}

/* Keras deconv_length; op < 0 means output_padding None. */
static int64_t ref_deconv_len(int64_t n, int64_t k, int64_t s, int64_t d,
			      int same, int64_t op)
{
	k = k + (k - 1) * (d - 1);
	if (op < 0)
		return same ? n * s : n * s + (k - s > 0 ? k - s : 0);
	return (n - 1) * s + k - 2 * (same ? k / 2 : 0) + op;
}

/* ---------------------------------------------------------------- GEMM */

static void gemm_case(int64_t M, int64_t N, int64_t K, int64_t pad,
		      int accumulate)
{
	int64_t lda = K + pad, ldb = N + pad + 1, ldc = N + 2 * pad;
	size_t na = (size_t)(M * lda), nb = (size_t)(K * ldb);
	size_t nc = (size_t)(M * ldc);
	float *A = rand_array(na), *B = rand_array(nb), *C = rand_array(nc);
	float *C0 = malloc((nc ? nc : 1) * sizeof *C0);
	double *ref = zeros_d(nc);
	char what[64];

	assert_non_null(C0);
	memcpy(C0, C, nc * sizeof *C);
	for (int64_t i = 0; i < M; i++)
		for (int64_t j = 0; j < ldc; j++) {
			double s = accumulate || j >= N ? C[i * ldc + j] : 0.0;
			for (int64_t k = 0; j < N && k < K; k++)
				s += (double)A[i * lda + k] * B[k * ldb + j];
			ref[i * ldc + j] = s;
		}
	cnnviz__gemm(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
	snprintf(what, sizeof what, "gemm %lldx%lldx%lld pad %lld acc %d",
		 (long long)M, (long long)N, (long long)K, (long long)pad,
		 accumulate);
	CHECK(what, C, ref, nc);
	/* Columns past N are the caller's: untouched, bit for bit. */
	for (int64_t i = 0; i < M; i++)
		for (int64_t j = N; j < ldc; j++)
			assert_memory_equal(&C[i * ldc + j], &C0[i * ldc + j],
					    sizeof *C);
	free(A);
	free(B);
	free(C);
	free(C0);
	free(ref);
}

static void test_gemm_sizes(void **state)
{
	(void)state;
	static const int64_t dims[][3] = {
		{1, 1, 1},    {1, 37, 300},  {7, 1, 5},      {5, 9, 3},
		{13, 33, 17}, {8, 32, 256},  {9, 33, 257},   {67, 129, 513},
		{130, 70, 40}, {200, 5, 600}, {3, 1000, 64}, {129, 17, 1},
	};
	for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
		for (int pad = 0; pad <= 3; pad += 3)
			for (int acc = 0; acc <= 1; acc++)
				gemm_case(dims[i][0], dims[i][1], dims[i][2],
					  pad, acc);
}

static void test_gemm_empty(void **state)
{
	(void)state;
	float c[6] = {1, 2, 3, 4, 5, 6}, a = 7, b = 8;
	const float keep[6] = {1, 2, 3, 4, 5, 6};

	cnnviz__gemm(0, 3, 2, &a, 2, &b, 3, c, 3, 0);
	cnnviz__gemm(2, 0, 2, &a, 2, &b, 3, c, 3, 0);
	assert_memory_equal(c, keep, sizeof c);
	/* K = 0: C = 0, or unchanged when accumulating; padding kept. */
	cnnviz__gemm(2, 2, 0, &a, 0, &b, 2, c, 3, 1);
	assert_memory_equal(c, keep, sizeof c);
	cnnviz__gemm(2, 2, 0, &a, 0, &b, 2, c, 3, 0);
	const float want[6] = {0, 0, 3, 0, 0, 6};
	assert_memory_equal(c, want, sizeof c);
}

/* The checker itself must be able to fail. */
static void test_checker_detects(void **state)
{
	(void)state;
	float got[3] = {1.0f, 2.0f, 3.0f};
	double ref[3] = {1.0, 2.0, 3.0};
	assert_true(rel_err("same", got, ref, 3) <= TOL);
	got[1] = 2.001f;
	assert_false(rel_err("perturbed (expected mismatch)", got, ref, 3) <=
		     TOL);
	got[1] = NAN;
	assert_false(rel_err("NaN (expected mismatch)", got, ref, 3) <= TOL);
}

/* ------------------------------------------------------------ geometry */

static void test_geometry(void **state)
{
	(void)state;
	int64_t o, p, ro, rp;

	for (int64_t n = 1; n <= 12; n++)
		for (int64_t k = 1; k <= 5; k++)
			for (int64_t s = 1; s <= 3; s++)
				for (int64_t d = 1; d <= 3; d++)
					for (int same = 0; same <= 1; same++) {
						int rc = cnnviz__conv_geometry(
							n, k, s, d, same, &o, &p);
						ref_len(n, k, s, d, same, &ro, &rp);
						if (ro < 1) {
							assert_int_equal(rc, -1);
							continue;
						}
						assert_int_equal(rc, 0);
						assert_int_equal(o, ro);
						assert_int_equal(p, rp);
					}
	/* Stride 2 'same' on an even size pads only after: 6 -> 3, 0 before. */
	assert_int_equal(cnnviz__conv_geometry(6, 3, 2, 1, 1, &o, &p), 0);
	assert_int_equal(o, 3);
	assert_int_equal(p, 0);
	assert_int_equal(cnnviz__conv_geometry(7, 3, 2, 1, 1, &o, &p), 0);
	assert_int_equal(o, 4);
	assert_int_equal(p, 1);
	assert_int_equal(cnnviz__conv_geometry(4, 0, 1, 1, 0, &o, &p), -1);
	assert_int_equal(cnnviz__conv_geometry(4, 3, 0, 1, 0, &o, &p), -1);
	assert_int_equal(cnnviz__conv_geometry(4, 3, 1, 1 << 21, 1, &o, &p),
			 -1);

	/* Keras deconv_length: valid n*s + max(k - s, 0), same n*s. */
	assert_int_equal(cnnviz__deconv_geometry(7, 5, 2, 1, 1, -1, &o, &p), 0);
	assert_int_equal(o, 14);
	assert_int_equal(p, 1); /* (6*2 + 5 - 14) / 2 */
	assert_int_equal(cnnviz__deconv_geometry(7, 3, 2, 1, 0, -1, &o, &p), 0);
	assert_int_equal(o, 15);
	assert_int_equal(p, 0);
	assert_int_equal(cnnviz__deconv_geometry(7, 3, 2, 1, 1, 1, &o, &p), 0);
	assert_int_equal(o, 14); /* 6*2 + 3 - 2 + 1 */
	assert_int_equal(cnnviz__deconv_geometry(1, 2, 1, 1, 1, 0, &o, &p),
			 -1); /* 0 + 2 - 2 + 0: empty */
}

/* -------------------------------------------------------------- Conv2D */

struct conv_case {
	int64_t n, h, w, cin, cout, kh, kw, sh, sw, dh, dw, groups;
	int same, bias;
};

/* Naive float64 Conv2D over NHWC with HWIO kernel (kh,kw,cin/g,cout). */
static void ref_conv2d(const struct conv_case *c, int64_t oh, int64_t ow,
		       int64_t pt, int64_t pl, const float *x, const float *k,
		       const float *b, double *y)
{
	int64_t cg = c->cin / c->groups, og = c->cout / c->groups;
	for (int64_t n = 0; n < c->n; n++)
		for (int64_t oy = 0; oy < oh; oy++)
			for (int64_t ox = 0; ox < ow; ox++)
				for (int64_t o = 0; o < c->cout; o++) {
					int64_t g = o / og;
					double s = b ? b[o] : 0.0;
					for (int64_t i = 0; i < c->kh; i++)
						for (int64_t j = 0; j < c->kw; j++) {
							int64_t iy = oy * c->sh - pt + i * c->dh;
							int64_t ix = ox * c->sw - pl + j * c->dw;
							if (iy < 0 || iy >= c->h || ix < 0 ||
							    ix >= c->w)
								continue;
							for (int64_t ci = 0; ci < cg; ci++)
								s += (double)x[((n * c->h + iy) * c->w + ix) * c->cin + g * cg + ci] *
								     k[((i * c->kw + j) * cg + ci) * c->cout + o];
						}
					y[((n * oh + oy) * ow + ox) * c->cout + o] = s;
				}
}

static void fill_geom(const struct conv_case *c, struct cnnviz__conv_geom *g)
{
	memset(g, 0, sizeof *g);
	g->h = c->h;
	g->w = c->w;
	g->cin = c->cin;
	g->cout = c->cout;
	g->kh = c->kh;
	g->kw = c->kw;
	g->sh = c->sh;
	g->sw = c->sw;
	g->dh = c->dh;
	g->dw = c->dw;
	g->groups = c->groups ? c->groups : 1;
	g->mult = 1;
	assert_int_equal(cnnviz__conv_geometry(c->h, c->kh, c->sh, c->dh,
					       c->same, &g->oh, &g->pad_t), 0);
	assert_int_equal(cnnviz__conv_geometry(c->w, c->kw, c->sw, c->dw,
					       c->same, &g->ow, &g->pad_l), 0);
}

/* tile 0: the library's own choice. */
static void conv_case_run(struct conv_case c, int64_t tile)
{
	struct cnnviz__conv_geom g;
	int64_t oh, ow, pt, pl;
	char what[128];

	if (!c.groups)
		c.groups = 1;
	fill_geom(&c, &g);
	ref_len(c.h, c.kh, c.sh, c.dh, c.same, &oh, &pt);
	ref_len(c.w, c.kw, c.sw, c.dw, c.same, &ow, &pl);
	assert_int_equal(g.oh, oh);
	assert_int_equal(g.ow, ow);
	size_t nx = (size_t)(c.n * c.h * c.w * c.cin);
	size_t nk = (size_t)(c.kh * c.kw * (c.cin / c.groups) * c.cout);
	size_t ny = (size_t)(c.n * oh * ow * c.cout);
	float *x = rand_array(nx), *k = rand_array(nk);
	float *b = c.bias ? rand_array((size_t)c.cout) : NULL;
	float *y = rand_array(ny); /* garbage: must be overwritten */
	double *ref = zeros_d(ny);
	size_t sc;
	if (!tile)
		tile = cnnviz__conv2d_tile(&g);
	assert_int_equal(cnnviz__conv2d_scratch(&g, tile, &sc), 0);
	float *scratch = rand_array(sc);

	ref_conv2d(&c, oh, ow, pt, pl, x, k, b, ref);
	cnnviz__conv2d(&g, c.n, tile, x, k, b, NULL, y, scratch);
	snprintf(what, sizeof what,
		 "conv %lldx%lldx%lld k%lldx%lld s%lld,%lld d%lld,%lld g%lld %s tile %lld",
		 (long long)c.h, (long long)c.w, (long long)c.cin,
		 (long long)c.kh, (long long)c.kw, (long long)c.sh,
		 (long long)c.sw, (long long)c.dh, (long long)c.dw,
		 (long long)c.groups, c.same ? "same" : "valid",
		 (long long)tile);
	CHECK(what, y, ref, ny);
	free(x);
	free(k);
	free(b);
	free(y);
	free(ref);
	free(scratch);
}

static void test_conv2d(void **state)
{
	(void)state;
	static const struct conv_case cases[] = {
		/* n  h   w  cin cout kh kw sh sw dh dw g same bias */
		{1, 7, 9, 3, 5, 3, 3, 1, 1, 1, 1, 1, 0, 1},
		{2, 7, 9, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1},
		{2, 8, 8, 4, 6, 3, 3, 2, 2, 1, 1, 1, 1, 0}, /* even, s2 same */
		{1, 10, 6, 2, 3, 4, 4, 2, 2, 1, 1, 1, 1, 1}, /* even kernel */
		{1, 9, 7, 3, 4, 3, 2, 2, 3, 1, 1, 1, 1, 1},
		{1, 11, 12, 3, 4, 3, 3, 1, 1, 2, 2, 1, 1, 1}, /* dilated */
		{1, 11, 12, 3, 4, 3, 3, 1, 1, 3, 2, 1, 0, 0},
		{2, 6, 5, 8, 6, 3, 3, 1, 1, 1, 1, 2, 1, 1}, /* groups */
		{1, 6, 5, 12, 8, 3, 1, 1, 1, 1, 1, 4, 0, 1},
		{3, 5, 7, 16, 24, 1, 1, 1, 1, 1, 1, 1, 0, 1}, /* 1x1 direct */
		{2, 5, 7, 16, 24, 1, 1, 1, 1, 1, 1, 4, 1, 0},
		{2, 8, 7, 16, 24, 1, 1, 2, 2, 1, 1, 1, 1, 1}, /* 1x1 s2 */
		{1, 20, 20, 3, 17, 7, 7, 2, 2, 1, 1, 1, 1, 1}, /* stem */
		{1, 12, 12, 64, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* K > KC */
		{1, 5, 5, 2, 3, 5, 5, 1, 1, 1, 1, 1, 0, 1}, /* 1x1 output */
		{1, 3, 3, 2, 3, 5, 5, 1, 1, 1, 1, 1, 1, 1}, /* k > n, same */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		conv_case_run(cases[i], 0);
	/* Tiles that straddle rows and samples. */
	conv_case_run(cases[1], 5);
	conv_case_run(cases[7], 7);
	conv_case_run(cases[9], 13);
	conv_case_run(cases[11], 1);
}

/* Fused activation goes through cnnviz__act_apply (relu here). */
static void test_conv2d_relu(void **state)
{
	(void)state;
	struct conv_case c = {2, 6, 6, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1};
	struct cnnviz__conv_geom g;
	struct cnnviz__act act;
	size_t sc;

	memset(&act, 0, sizeof act);
	act.kind = CNNVIZ__ACT_RELU;
	act.max_value = -1.0f;
	fill_geom(&c, &g);
	size_t nx = 2 * 6 * 6 * 3, nk = 3 * 3 * 3 * 5, ny = 2 * 6 * 6 * 5;
	float *x = rand_array(nx), *k = rand_array(nk), *b = rand_array(5);
	float *y = rand_array(ny);
	double *ref = zeros_d(ny);
	int64_t tile = cnnviz__conv2d_tile(&g);
	assert_int_equal(cnnviz__conv2d_scratch(&g, tile, &sc), 0);
	float *scratch = rand_array(sc);
	ref_conv2d(&c, 6, 6, 1, 1, x, k, b, ref);
	int neg = 0;
	for (size_t i = 0; i < ny; i++) {
		neg += ref[i] < 0;
		ref[i] = ref[i] > 0 ? ref[i] : 0.0;
	}
	assert_true(neg > 0);
	cnnviz__conv2d(&g, 2, tile, x, k, b, &act, y, scratch);
	CHECK("conv relu", y, ref, ny);
	free(x);
	free(k);
	free(b);
	free(y);
	free(ref);
	free(scratch);
}

/* ----------------------------------------------------------- depthwise */

struct dw_case {
	int64_t n, h, w, c, mult, kh, kw, sh, sw, dh, dw;
	int same, bias;
};

static void ref_depthwise(const struct dw_case *c, int64_t oh, int64_t ow,
			  int64_t pt, int64_t pl, const float *x,
			  const float *k, const float *b, double *y)
{
	int64_t co = c->c * c->mult;
	for (int64_t n = 0; n < c->n; n++)
		for (int64_t oy = 0; oy < oh; oy++)
			for (int64_t ox = 0; ox < ow; ox++)
				for (int64_t ci = 0; ci < c->c; ci++)
					for (int64_t m = 0; m < c->mult; m++) {
						double s = b ? b[ci * c->mult + m] : 0.0;
						for (int64_t i = 0; i < c->kh; i++)
							for (int64_t j = 0; j < c->kw; j++) {
								int64_t iy = oy * c->sh - pt + i * c->dh;
								int64_t ix = ox * c->sw - pl + j * c->dw;
								if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w)
									continue;
								s += (double)x[((n * c->h + iy) * c->w + ix) * c->c + ci] *
								     k[((i * c->kw + j) * c->c + ci) * c->mult + m];
							}
						y[((n * oh + oy) * ow + ox) * co + ci * c->mult + m] = s;
					}
}

static void dw_geom(const struct dw_case *c, struct cnnviz__conv_geom *g)
{
	struct conv_case cc = {c->n, c->h, c->w, c->c, c->c * c->mult, c->kh,
			       c->kw, c->sh, c->sw, c->dh, c->dw, 1, c->same,
			       c->bias};
	fill_geom(&cc, g);
	g->mult = c->mult;
}

static void test_depthwise(void **state)
{
	(void)state;
	static const struct dw_case cases[] = {
		/* n h  w  c  m kh kw sh sw dh dw same bias */
		{2, 9, 8, 13, 1, 3, 3, 1, 1, 1, 1, 1, 1}, /* fast s1 */
		{1, 9, 8, 32, 1, 3, 3, 1, 1, 1, 1, 0, 1},
		{1, 10, 10, 35, 1, 3, 3, 2, 2, 1, 1, 1, 1}, /* fast s2 even */
		{2, 11, 9, 16, 1, 3, 3, 2, 2, 1, 1, 1, 0}, /* s2 odd */
		{1, 11, 9, 17, 1, 3, 3, 2, 2, 1, 1, 0, 1},
		{1, 2, 2, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1}, /* all border */
		{1, 3, 3, 5, 1, 3, 3, 1, 1, 1, 1, 0, 0}, /* all interior */
		{2, 9, 8, 7, 2, 3, 3, 1, 1, 1, 1, 1, 1}, /* mult 2 */
		{1, 10, 10, 6, 2, 3, 3, 2, 2, 1, 1, 1, 0},
		{1, 12, 11, 9, 1, 5, 5, 2, 1, 1, 1, 1, 1}, /* 5x5 */
		{1, 12, 11, 9, 3, 3, 3, 1, 1, 2, 2, 1, 1}, /* dilated */
		{1, 7, 7, 24, 1, 3, 1, 1, 1, 1, 1, 1, 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct dw_case *c = &cases[i];
		struct cnnviz__conv_geom g;
		int64_t oh, ow, pt, pl;
		char what[96];

		dw_geom(c, &g);
		ref_len(c->h, c->kh, c->sh, c->dh, c->same, &oh, &pt);
		ref_len(c->w, c->kw, c->sw, c->dw, c->same, &ow, &pl);
		int64_t co = c->c * c->mult;
		size_t nx = (size_t)(c->n * c->h * c->w * c->c);
		size_t nk = (size_t)(c->kh * c->kw * co);
		size_t ny = (size_t)(c->n * oh * ow * co);
		float *x = rand_array(nx), *k = rand_array(nk);
		float *b = c->bias ? rand_array((size_t)co) : NULL;
		float *y = rand_array(ny);
		double *ref = zeros_d(ny);

		ref_depthwise(c, oh, ow, pt, pl, x, k, b, ref);
		cnnviz__depthwise_conv2d(&g, c->n, x, k, b, NULL, y);
		snprintf(what, sizeof what,
			 "depthwise %lldx%lldx%lld m%lld k%lld s%lld %s",
			 (long long)c->h, (long long)c->w, (long long)c->c,
			 (long long)c->mult, (long long)c->kh,
			 (long long)c->sh, c->same ? "same" : "valid");
		CHECK(what, y, ref, ny);
		free(x);
		free(k);
		free(b);
		free(y);
		free(ref);
	}
}

/* ----------------------------------------------------------- separable */

static void test_separable(void **state)
{
	(void)state;
	static const struct dw_case cases[] = {
		{2, 9, 8, 13, 1, 3, 3, 1, 1, 1, 1, 1, 1},
		{1, 10, 10, 6, 2, 3, 3, 2, 2, 1, 1, 1, 0},
		{2, 7, 9, 5, 3, 5, 3, 1, 1, 1, 1, 0, 1},
	};
	static const int64_t filters[] = {17, 8, 33};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct dw_case *c = &cases[i];
		struct cnnviz__conv_geom g;
		int64_t oh, ow, pt, pl, f = filters[i];

		dw_geom(c, &g);
		g.cout = f;
		ref_len(c->h, c->kh, c->sh, c->dh, c->same, &oh, &pt);
		ref_len(c->w, c->kw, c->sw, c->dw, c->same, &ow, &pl);
		int64_t cm = c->c * c->mult;
		size_t nx = (size_t)(c->n * c->h * c->w * c->c);
		size_t nmid = (size_t)(c->n * oh * ow * cm);
		size_t ny = (size_t)(c->n * oh * ow * f);
		float *x = rand_array(nx);
		float *dk = rand_array((size_t)(c->kh * c->kw * cm));
		float *pk = rand_array((size_t)(cm * f));
		float *b = c->bias ? rand_array((size_t)f) : NULL;
		double *mid = zeros_d(nmid), *ref = zeros_d(ny);

		ref_depthwise(c, oh, ow, pt, pl, x, dk, NULL, mid);
		for (size_t p = 0; p < (size_t)(c->n * oh * ow); p++)
			for (int64_t o = 0; o < f; o++) {
				double s = b ? b[o] : 0.0;
				for (int64_t q = 0; q < cm; q++)
					s += mid[p * (size_t)cm + (size_t)q] *
					     pk[q * f + o];
				ref[p * (size_t)f + (size_t)o] = s;
			}
		/* The library's tile, and one row at a time. */
		int64_t tiles[2] = {cnnviz__separable_tile(&g), 1};
		for (int t = 0; t < 2; t++) {
			size_t sc = (size_t)(tiles[t] * ow * cm);
			float *scratch = rand_array(sc);
			float *y = rand_array(ny);
			cnnviz__separable_conv2d(&g, c->n, tiles[t], x, dk, pk,
						 b, NULL, y, scratch);
			CHECK("separable", y, ref, ny);
			free(scratch);
			free(y);
		}
		free(x);
		free(dk);
		free(pk);
		free(b);
		free(mid);
		free(ref);
	}
}

/* ----------------------------------------------------------- transpose */

struct tr_case {
	int64_t n, h, w, cin, cout, kh, kw, sh, sw, dh, dw;
	int same, bias;
	int64_t oph, opw; /* -1: output_padding None */
};

/* keras_ref conv2d_transpose: scatter into the full output, then crop. */
static void ref_transpose(const struct tr_case *c, int64_t oh, int64_t ow,
			  const float *x, const float *k, const float *b,
			  double *y)
{
	int64_t keh = (c->kh - 1) * c->dh + 1, kew = (c->kw - 1) * c->dw + 1;
	int64_t pt = 0, pl = 0;
	if (c->same) {
		int64_t th = (c->h - 1) * c->sh + keh - oh;
		int64_t tw = (c->w - 1) * c->sw + kew - ow;
		pt = th > 0 ? th / 2 : 0;
		pl = tw > 0 ? tw / 2 : 0;
	}
	int64_t fh = (c->h - 1) * c->sh + keh, fw = (c->w - 1) * c->sw + kew;
	fh = fh > pt + oh ? fh : pt + oh;
	fw = fw > pl + ow ? fw : pl + ow;
	double *full = zeros_d((size_t)(fh * fw * c->cout));
	for (int64_t n = 0; n < c->n; n++) {
		memset(full, 0, (size_t)(fh * fw * c->cout) * sizeof *full);
		for (int64_t iy = 0; iy < c->h; iy++)
			for (int64_t ix = 0; ix < c->w; ix++)
				for (int64_t i = 0; i < c->kh; i++)
					for (int64_t j = 0; j < c->kw; j++)
						for (int64_t o = 0; o < c->cout; o++) {
							double s = 0.0;
							for (int64_t ci = 0; ci < c->cin; ci++)
								s += (double)x[((n * c->h + iy) * c->w + ix) * c->cin + ci] *
								     k[((i * c->kw + j) * c->cout + o) * c->cin + ci];
							full[((iy * c->sh + i * c->dh) * fw + ix * c->sw + j * c->dw) * c->cout + o] += s;
						}
		for (int64_t oy = 0; oy < oh; oy++)
			for (int64_t ox = 0; ox < ow; ox++)
				for (int64_t o = 0; o < c->cout; o++)
					y[((n * oh + oy) * ow + ox) * c->cout + o] =
						full[((oy + pt) * fw + ox + pl) * c->cout + o] +
						(b ? b[o] : 0.0);
	}
	free(full);
}

static void test_transpose(void **state)
{
	(void)state;
	static const struct tr_case cases[] = {
		/* n h w cin cout kh kw sh sw dh dw same bias oph opw */
		{1, 4, 5, 3, 2, 3, 3, 1, 1, 1, 1, 0, 1, -1, -1},
		{2, 4, 5, 3, 2, 3, 3, 2, 2, 1, 1, 0, 1, -1, -1},
		{2, 4, 5, 3, 2, 3, 3, 2, 2, 1, 1, 1, 1, -1, -1},
		{1, 7, 7, 8, 6, 5, 5, 2, 2, 1, 1, 1, 1, -1, -1}, /* DCGAN */
		{1, 4, 3, 4, 5, 4, 4, 2, 2, 1, 1, 1, 0, -1, -1}, /* even k */
		{1, 4, 3, 4, 5, 2, 2, 3, 3, 1, 1, 0, 1, -1, -1}, /* k < s */
		{1, 5, 4, 3, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0}, /* out pad */
		{1, 5, 4, 3, 2, 3, 3, 2, 2, 1, 1, 0, 1, 1, 1},
		{1, 5, 4, 3, 2, 4, 3, 3, 2, 1, 1, 1, 0, 2, 1},
		{1, 5, 6, 3, 2, 3, 3, 1, 1, 2, 2, 1, 1, -1, -1}, /* dilated */
		{1, 5, 6, 3, 2, 3, 2, 1, 1, 2, 1, 0, 1, -1, -1},
		{3, 6, 5, 7, 9, 1, 1, 1, 1, 1, 1, 0, 1, -1, -1}, /* 1x1 */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct tr_case *c = &cases[i];
		struct cnnviz__conv_geom g;
		char what[96];

		memset(&g, 0, sizeof g);
		g.h = c->h;
		g.w = c->w;
		g.cin = c->cin;
		g.cout = c->cout;
		g.kh = c->kh;
		g.kw = c->kw;
		g.sh = c->sh;
		g.sw = c->sw;
		g.dh = c->dh;
		g.dw = c->dw;
		g.groups = g.mult = 1;
		assert_int_equal(cnnviz__deconv_geometry(c->h, c->kh, c->sh,
							 c->dh, c->same, c->oph,
							 &g.oh, &g.pad_t), 0);
		assert_int_equal(cnnviz__deconv_geometry(c->w, c->kw, c->sw,
							 c->dw, c->same, c->opw,
							 &g.ow, &g.pad_l), 0);
		int64_t oh = ref_deconv_len(c->h, c->kh, c->sh, c->dh, c->same,
					    c->oph);
		int64_t ow = ref_deconv_len(c->w, c->kw, c->sw, c->dw, c->same,
					    c->opw);
		assert_int_equal(g.oh, oh);
		assert_int_equal(g.ow, ow);
		size_t nx = (size_t)(c->n * c->h * c->w * c->cin);
		size_t nk = (size_t)(c->kh * c->kw * c->cout * c->cin);
		size_t ny = (size_t)(c->n * oh * ow * c->cout);
		float *x = rand_array(nx), *k = rand_array(nk);
		float *kt = rand_array(nk);
		float *b = c->bias ? rand_array((size_t)c->cout) : NULL;
		double *ref = zeros_d(ny);

		ref_transpose(c, oh, ow, x, k, b, ref);
		cnnviz__conv2d_transpose_pack(&g, k, 0, kt);
		int64_t tiles[2] = {cnnviz__conv2d_transpose_tile(&g), 3};
		for (int t = 0; t < 2; t++) {
			size_t sc = (size_t)(tiles[t] * c->kh * c->kw * c->cout);
			float *scratch = rand_array(sc), *y = rand_array(ny);
			cnnviz__conv2d_transpose(&g, c->n, tiles[t], x, kt, b,
						 NULL, y, scratch);
			snprintf(what, sizeof what,
				 "transpose case %zu %s tile %lld", i,
				 c->same ? "same" : "valid", (long long)tiles[t]);
			CHECK(what, y, ref, ny);
			free(scratch);
			free(y);
		}
		/* A flipped kernel packed with flip=1 gives the same result. */
		float *kf = rand_array(nk), *y = rand_array(ny);
		for (int64_t a = 0; a < c->kh; a++)
			for (int64_t e = 0; e < c->kw; e++)
				memcpy(kf + (a * c->kw + e) * c->cout * c->cin,
				       k + ((c->kh - 1 - a) * c->kw + c->kw - 1 -
					    e) * c->cout * c->cin,
				       (size_t)(c->cout * c->cin) * sizeof *k);
		cnnviz__conv2d_transpose_pack(&g, kf, 1, kt);
		size_t sc = (size_t)(tiles[0] * c->kh * c->kw * c->cout);
		float *scratch = rand_array(sc);
		cnnviz__conv2d_transpose(&g, c->n, tiles[0], x, kt, b, NULL, y,
					 scratch);
		CHECK("transpose flipped", y, ref, ny);
		free(scratch);
		free(y);
		free(kf);
		free(x);
		free(k);
		free(kt);
		free(b);
		free(ref);
	}
}

/* ---------------------------------------------------------- weight prep */

static void test_kernel_to_hwio(void **state)
{
	(void)state;
	const int64_t kh = 3, kw = 2, ci = 4, co = 5;
	size_t n = (size_t)(kh * kw * ci * co);
	float *src = rand_array(n), *dst = rand_array(n);

	/* Keras 1 'th': (out, in, rows, cols), flipped (Theano). */
	cnnviz__conv_kernel_to_hwio(kh, kw, ci, co, src, 1, 1, dst);
	for (int64_t i = 0; i < kh; i++)
		for (int64_t j = 0; j < kw; j++)
			for (int64_t c = 0; c < ci; c++)
				for (int64_t o = 0; o < co; o++)
					assert_true(dst[((i * kw + j) * ci + c) * co + o] ==
						    src[((o * ci + c) * kh + kh - 1 - i) * kw + kw - 1 - j]);
	cnnviz__conv_kernel_to_hwio(kh, kw, ci, co, src, 1, 0, dst);
	for (int64_t i = 0; i < kh; i++)
		for (int64_t j = 0; j < kw; j++)
			for (int64_t c = 0; c < ci; c++)
				for (int64_t o = 0; o < co; o++)
					assert_true(dst[((i * kw + j) * ci + c) * co + o] ==
						    src[((o * ci + c) * kh + i) * kw + j]);
	cnnviz__conv_kernel_to_hwio(kh, kw, ci, co, src, 0, 1, dst);
	for (int64_t i = 0; i < kh; i++)
		for (int64_t j = 0; j < kw; j++)
			assert_memory_equal(dst + (i * kw + j) * ci * co,
					    src + ((kh - 1 - i) * kw + kw - 1 - j) * ci * co,
					    (size_t)(ci * co) * sizeof *src);
	free(src);
	free(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checker_detects),
		cmocka_unit_test(test_gemm_sizes),
		cmocka_unit_test(test_gemm_empty),
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_conv2d),
		cmocka_unit_test(test_conv2d_relu),
		cmocka_unit_test(test_depthwise),
		cmocka_unit_test(test_separable),
		cmocka_unit_test(test_transpose),
		cmocka_unit_test(test_kernel_to_hwio),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
