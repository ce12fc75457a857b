/*
 * Dense, normalisation and pooling kernels against naive float64 loops
 * written independently here (direct transcriptions of the Keras formulas,
 * with padding handled by index tests instead of the kernels' clipping).
 * Tolerance: max|got - ref| <= 1e-5 * max(1, max|ref|) unless stated.
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

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Uniform in [lo, hi): a xorshift generator, so runs are reproducible. */
static float frand(float lo, float hi)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	double u = (double)(rng_state >> 11) / 9007199254740992.0;
	return (float)(lo + (hi - lo) * u);
}

static float *rand_array(size_t n, float lo, float hi)
{
	float *a = malloc((n ? n : 1) * sizeof *a);
	assert_non_null(a);
	for (size_t i = 0; i < n; i++)
		a[i] = frand(lo, hi);
	return a;
}

static double *dalloc(size_t n)
{
	double *a = calloc(n ? n : 1, sizeof *a);
	assert_non_null(a);
	return a;
}

/* Sweeps print one summary line: the worst relative difference seen. */
static int quiet;
static double worst_rel;

/*
 * Compares got against ref; prints the largest difference and the first
 * mismatches so a failure says where it is. Returns 1 if within tol.
 */
static int close_enough(const char *what, const float *got, const double *ref,
			size_t n, double tol)
{
	double maxref = 1.0, maxdiff = 0.0;
	size_t worst = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(ref[i]) > maxref)
			maxref = fabs(ref[i]);
	int shown = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - ref[i]);
		if (!(d <= maxdiff)) { /* NaN counts as the worst */
			maxdiff = isnan(d) ? INFINITY : d;
			worst = i;
		}
		if (!(d <= tol * maxref) && shown < 5) {
			printf("  %s[%zu]: got %.9g, want %.9g\n", what, i,
			       (double)got[i], ref[i]);
			shown++;
		}
	}
	int ok = maxdiff <= tol * maxref;
	if (maxdiff / maxref > worst_rel)
		worst_rel = maxdiff / maxref;
	if (!quiet || !ok)
		printf("  %-40s n=%-7zu max|diff| %.3g (max|ref| %.3g) at %zu\n",
		       what, n, maxdiff, maxref, worst);
	return ok;
}

/* -------------------------------------------------------------- dense */

/* x (rows,in) . k (in,units) + b, in double. */
static void ref_dense(int64_t rows, int64_t in, int64_t units, const float *x,
		      const float *k, const float *b, double *y)
{
	for (int64_t r = 0; r < rows; r++)
		for (int64_t u = 0; u < units; u++) {
			double acc = b ? b[u] : 0.0;
			for (int64_t i = 0; i < in; i++)
				acc += (double)x[r * in + i] * k[i * units + u];
			y[r * units + u] = acc;
		}
}

static void check_dense(const char *what, int64_t rows, int64_t in,
			int64_t units, int with_bias)
{
	float *x = rand_array((size_t)(rows * in), -1, 1);
	float *k = rand_array((size_t)(in * units), -0.5f, 0.5f);
	float *b = with_bias ? rand_array((size_t)units, -2, 2) : NULL;
	float *y = rand_array((size_t)(rows * units), 100, 200); /* garbage */
	double *ref = dalloc((size_t)(rows * units));

	cnnviz__dense_fwd(rows, in, units, x, k, b, y);
	ref_dense(rows, in, units, x, k, b, ref);
	assert_true(close_enough(what, y, ref, (size_t)(rows * units), TOL));
	free(x);
	free(k);
	free(b);
	free(y);
	free(ref);
}

/* Input of rank 1 per sample: rows = batch. */
static void test_dense_rank1(void **state)
{
	(void)state;
	check_dense("dense (3, 17) -> 13, bias", 3, 17, 13, 1);
	check_dense("dense (1, 300) -> 10, no bias", 1, 300, 10, 0);
	check_dense("dense (2, 1) -> 1", 2, 1, 1, 1);
}

/*
 * Per-sample (4, 5, 7), batch 2: Keras applies the kernel to the last
 * axis at each of the 2*4*5 positions. The reference walks the rank-3
 * index explicitly rather than reusing the rows view.
 */
static void test_dense_rank3(void **state)
{
	(void)state;
	const int64_t B = 2, D0 = 4, D1 = 5, IN = 7, U = 9;
	float *x = rand_array((size_t)(B * D0 * D1 * IN), -1, 1);
	float *k = rand_array((size_t)(IN * U), -1, 1);
	float *b = rand_array((size_t)U, -1, 1);
	float *y = malloc((size_t)(B * D0 * D1 * U) * sizeof *y);
	double *ref = dalloc((size_t)(B * D0 * D1 * U));
	assert_non_null(y);

	for (int64_t n = 0; n < B; n++)
		for (int64_t i = 0; i < D0; i++)
			for (int64_t j = 0; j < D1; j++)
				for (int64_t u = 0; u < U; u++) {
					double acc = b[u];
					for (int64_t c = 0; c < IN; c++)
						acc += (double)x[((n * D0 + i) * D1 + j) * IN + c] *
						       k[c * U + u];
					ref[((n * D0 + i) * D1 + j) * U + u] = acc;
				}
	cnnviz__dense_fwd(B * D0 * D1, IN, U, x, k, b, y);
	assert_true(close_enough("dense (2, 4, 5, 7) -> 9", y, ref,
				 (size_t)(B * D0 * D1 * U), TOL));
	free(x);
	free(k);
	free(b);
	free(y);
	free(ref);
}

/* --------------------------------------------------- batch norm etc. */

/*
 * BatchNormalization over per-sample axis `axis` of (d0, d1, d2), batch 2:
 * (x - mean) / sqrt(var + eps) * gamma + beta, as keras_ref.py does.
 */
static void check_bn(int axis, int with_gamma, int with_beta)
{
	const int64_t B = 2, d[3] = {5, 6, 11};
	const int64_t C = d[axis];
	const double eps = 1e-3;
	size_t n = (size_t)(B * d[0] * d[1] * d[2]);
	float *x = rand_array(n, -3, 3);
	float *g = rand_array((size_t)C, 0.5f, 2);
	float *be = rand_array((size_t)C, -1, 1);
	float *m = rand_array((size_t)C, -1, 1);
	float *v = rand_array((size_t)C, 0.01f, 4);
	float *sc = malloc((size_t)C * sizeof *sc);
	float *sh = malloc((size_t)C * sizeof *sh);
	float *y = malloc(n * sizeof *y);
	double *ref = dalloc(n);
	assert_non_null(sc);
	assert_non_null(sh);
	assert_non_null(y);
	v[0] = 0.0f; /* eps alone keeps it finite */

	for (int64_t b = 0; b < B; b++)
		for (int64_t i = 0; i < d[0]; i++)
			for (int64_t j = 0; j < d[1]; j++)
				for (int64_t k = 0; k < d[2]; k++) {
					int64_t idx[3] = {i, j, k};
					int64_t c = idx[axis];
					size_t o = (size_t)(((b * d[0] + i) * d[1] + j) * d[2] + k);
					double gg = with_gamma ? g[c] : 1.0;
					double bb = with_beta ? be[c] : 0.0;
					ref[o] = (x[o] - (double)m[c]) /
						 sqrt((double)v[c] + eps) * gg + bb;
				}

	int64_t outer = B, inner = 1;
	for (int i = 0; i < axis; i++)
		outer *= d[i];
	for (int i = axis + 1; i < 3; i++)
		inner *= d[i];
	cnnviz__norm_bn_fold(C, with_gamma ? g : NULL, with_beta ? be : NULL,
			     m, v, eps, sc, sh);
	cnnviz__norm_affine(outer, C, inner, x, sc, sh, y);
	char what[64];
	snprintf(what, sizeof what, "bn axis %d of (5, 6, 11)%s%s", axis,
		 with_gamma ? "" : " no gamma", with_beta ? "" : " no beta");
	assert_true(close_enough(what, y, ref, n, TOL));

	/* In place, as the executor may run it. */
	cnnviz__norm_affine(outer, C, inner, x, sc, sh, x);
	assert_true(close_enough("bn in place", x, ref, n, TOL));
	free(x);
	free(g);
	free(be);
	free(m);
	free(v);
	free(sc);
	free(sh);
	free(y);
	free(ref);
}

static void test_bn_last_axis(void **state)
{
	(void)state;
	check_bn(2, 1, 1);
	check_bn(2, 0, 1);
	check_bn(2, 1, 0);
}

/* Keras axis=1 / axis=2 on an (H, W, C) tensor: per image row / column. */
static void test_bn_inner_axes(void **state)
{
	(void)state;
	check_bn(0, 1, 1);
	check_bn(1, 1, 1);
}

/* Normalization layer: (x - mean) / max(sqrt(var), 1e-7), per channel. */
static void test_normalization(void **state)
{
	(void)state;
	const int64_t R = 37, C = 6;
	float *x = rand_array((size_t)(R * C), -5, 5);
	float *m = rand_array((size_t)C, -1, 1);
	float *v = rand_array((size_t)C, 0.1f, 9);
	float sc[6], sh[6];
	float *y = malloc((size_t)(R * C) * sizeof *y);
	double *ref = dalloc((size_t)(R * C));
	assert_non_null(y);
	for (int64_t r = 0; r < R; r++)
		for (int64_t c = 0; c < C; c++)
			ref[r * C + c] = (x[r * C + c] - (double)m[c]) /
					 sqrt((double)v[c]);
	cnnviz__norm_standardize_fold(C, m, v, sc, sh);
	cnnviz__norm_affine(R, C, 1, x, sc, sh, y);
	assert_true(close_enough("normalization (37, 6)", y, ref,
				 (size_t)(R * C), TOL));

	/* A zero variance divides by epsilon() = 1e-7, not by 0. */
	float xs[3] = {1.0f, 0.25f, -2.0f}, zm = 0.25f, zv = 0.0f, ys[3];
	double rs[3];
	for (int i = 0; i < 3; i++)
		rs[i] = (xs[i] - 0.25) / 1e-7;
	cnnviz__norm_standardize_fold(1, &zm, &zv, sc, sh);
	cnnviz__norm_affine(3, 1, 1, xs, sc, sh, ys);
	assert_true(close_enough("normalization var=0", ys, rs, 3, TOL));
	free(x);
	free(m);
	free(v);
	free(y);
	free(ref);
}

static void test_rescale(void **state)
{
	(void)state;
	const size_t n = 1003;
	float *x = rand_array(n, 0, 255);
	float *y = malloc(n * sizeof *y);
	double *ref = dalloc(n);
	assert_non_null(y);
	for (size_t i = 0; i < n; i++)
		ref[i] = x[i] * (1.0 / 127.5) - 1.0;
	cnnviz__norm_rescale((int64_t)n, x, (float)(1.0 / 127.5), -1.0f, y);
	assert_true(close_enough("rescaling 1/127.5 - 1", y, ref, n, TOL));
	free(x);
	free(y);
	free(ref);
}

/* ------------------------------------------------------------ pooling */

/* TF 'same': out = ceil(n/s), pad total = max((out-1)*s + k - n, 0). */
static void ref_geometry(int64_t n, int64_t k, int64_t s, int same,
			 int64_t *out, int64_t *before)
{
	if (same) {
		*out = (int64_t)ceil((double)n / (double)s);
		int64_t total = (*out - 1) * s + k - n;
		if (total < 0)
			total = 0;
		*before = total / 2;
	} else {
		*out = (int64_t)floor((double)(n - k) / (double)s) + 1;
		*before = 0;
	}
}

static void test_pool_geometry(void **state)
{
	(void)state;
	static const struct {
		int64_t n, k, s;
		int same;
		int64_t out, before;
	} cases[] = {
		{5, 2, 2, 1, 3, 0},   /* total 1: the extra row goes after */
		{7, 3, 1, 1, 7, 1},
		{6, 3, 2, 1, 3, 0},   /* total 1 */
		{8, 3, 2, 1, 4, 0},   /* total 1 */
		{9, 3, 2, 1, 5, 1},   /* total 2 */
		{224, 3, 2, 1, 112, 0},
		{2, 3, 1, 1, 2, 1},   /* pool larger than input */
		{5, 2, 3, 1, 2, 0},   /* stride > pool: total 0 */
		{5, 3, 2, 0, 2, 0},
		{6, 2, 2, 0, 3, 0},
		{7, 2, 2, 0, 3, 0},   /* last row dropped */
		{3, 3, 1, 0, 1, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t out = -1, before = -1;
		assert_int_equal(cnnviz__pool_geometry(cases[i].n, cases[i].k,
						       cases[i].s, cases[i].same,
						       &out, &before), 0);
		assert_int_equal(out, cases[i].out);
		assert_int_equal(before, cases[i].before);
	}
	int64_t out, before;
	assert_int_equal(cnnviz__pool_geometry(2, 3, 1, 0, &out, &before), -1);
	assert_int_equal(cnnviz__pool_geometry(5, 0, 1, 0, &out, &before), -1);
	assert_int_equal(cnnviz__pool_geometry(5, 2, 0, 1, &out, &before), -1);
	assert_int_equal(cnnviz__pool_geometry(5, INT64_C(1) << 40, 1, 1, &out,
					       &before), -1);
}

/*
 * Naive pooling over the zero/-inf padded input: every window position of
 * the padded map, with out-of-range taps skipped (max: -inf never wins;
 * avg: divided by the taps that were in range).
 */
static void ref_pool(int is_max, int64_t N, int64_t H, int64_t W, int64_t C,
		     int64_t kh, int64_t kw, int64_t sh, int64_t sw, int same,
		     const float *x, double *y, int64_t *oh, int64_t *ow)
{
	int64_t pt, pl;
	ref_geometry(H, kh, sh, same, oh, &pt);
	ref_geometry(W, kw, sw, same, ow, &pl);
	for (int64_t n = 0; n < N; n++)
		for (int64_t i = 0; i < *oh; i++)
			for (int64_t j = 0; j < *ow; j++)
				for (int64_t c = 0; c < C; c++) {
					double acc = is_max ? -INFINITY : 0.0;
					int cnt = 0;
					for (int64_t a = 0; a < kh; a++)
						for (int64_t b = 0; b < kw; b++) {
							int64_t r = i * sh + a - pt;
							int64_t q = j * sw + b - pl;
							if (r < 0 || r >= H || q < 0 || q >= W)
								continue;
							double v = x[((n * H + r) * W + q) * C + c];
							acc = is_max ? fmax(acc, v) : acc + v;
							cnt++;
						}
					y[((n * *oh + i) * *ow + j) * C + c] =
						is_max ? acc : acc / cnt;
				}
}

static void check_pool(int is_max, int64_t H, int64_t W, int64_t C,
		       int64_t kh, int64_t kw, int64_t sh, int64_t sw, int same)
{
	const int64_t N = 2;
	float *x = rand_array((size_t)(N * H * W * C), -10, 10);
	int64_t oh, ow;
	double *ref = dalloc((size_t)(N * H * W * C)); /* oh <= H, ow <= W */
	ref_pool(is_max, N, H, W, C, kh, kw, sh, sw, same, x, ref, &oh, &ow);

	struct cnnviz__pool2d p = {.h = H, .w = W, .c = C, .kh = kh,
				   .kw = kw, .sh = sh, .sw = sw};
	assert_int_equal(cnnviz__pool_geometry(H, kh, sh, same, &p.oh,
					       &p.pad_t), 0);
	assert_int_equal(cnnviz__pool_geometry(W, kw, sw, same, &p.ow,
					       &p.pad_l), 0);
	assert_int_equal(p.oh, oh);
	assert_int_equal(p.ow, ow);
	size_t n = (size_t)(N * oh * ow * C);
	float *y = malloc(n * sizeof *y);
	assert_non_null(y);
	if (is_max)
		cnnviz__pool_max2d(&p, N, x, y);
	else
		cnnviz__pool_avg2d(&p, N, x, y);
	char what[96];
	snprintf(what, sizeof what, "%s (%lld,%lld,%lld) k%lldx%lld s%lldx%lld %s",
		 is_max ? "max" : "avg", (long long)H, (long long)W,
		 (long long)C, (long long)kh, (long long)kw, (long long)sh,
		 (long long)sw, same ? "same" : "valid");
	assert_true(close_enough(what, y, ref, n, is_max ? 0.0 : TOL));
	free(x);
	free(y);
	free(ref);
}

static void pool_sweep(int is_max)
{
	static const int64_t shapes[][3] = {
		{7, 6, 3}, {5, 5, 8}, {8, 9, 19}, {6, 7, 1}, {4, 4, 16},
	};
	static const int64_t pools[][4] = {
		/* kh, kw, sh, sw */
		{2, 2, 2, 2}, {3, 3, 2, 2}, {3, 3, 1, 1}, {2, 2, 1, 1},
		{3, 2, 2, 1}, {2, 3, 3, 3}, {1, 1, 2, 2},
	};
	int cases = 0;
	quiet = 1;
	worst_rel = 0;
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		for (size_t j = 0; j < sizeof pools / sizeof pools[0]; j++)
			for (int same = 0; same < 2; same++, cases++)
				check_pool(is_max, shapes[i][0], shapes[i][1],
					   shapes[i][2], pools[j][0],
					   pools[j][1], pools[j][2],
					   pools[j][3], same);
	quiet = 0;
	printf("  %s pool sweep: %d cases (valid/same, odd/even sizes, "
	       "stride != pool), worst max|diff|/max|ref| %.3g\n",
	       is_max ? "max" : "avg", cases, worst_rel);
}

static void test_max_pool(void **state)
{
	(void)state;
	pool_sweep(1);
}

static void test_avg_pool(void **state)
{
	(void)state;
	pool_sweep(0);
}

/*
 * Average pooling divides by the real taps only: on a map of ones every
 * output is exactly 1; counting the padding would give 0.5 and 0.25 at
 * the bottom/right edge of a 3x3 map pooled 2x2/2 'same'.
 */
static void test_avg_pool_excludes_padding(void **state)
{
	(void)state;
	float x[3 * 3 * 2], y[2 * 2 * 2];
	for (int i = 0; i < 18; i++)
		x[i] = 1.0f;
	struct cnnviz__pool2d p = {.h = 3, .w = 3, .c = 2, .kh = 2, .kw = 2,
				   .sh = 2, .sw = 2};
	assert_int_equal(cnnviz__pool_geometry(3, 2, 2, 1, &p.oh, &p.pad_t), 0);
	assert_int_equal(cnnviz__pool_geometry(3, 2, 2, 1, &p.ow, &p.pad_l), 0);
	assert_int_equal(p.oh, 2);
	assert_int_equal(p.pad_t, 0);
	cnnviz__pool_avg2d(&p, 1, x, y);
	for (int i = 0; i < 8; i++)
		assert_true(y[i] == 1.0f);

	/* Max pooling pads with -inf, not 0: an all-negative map stays negative. */
	for (int i = 0; i < 18; i++)
		x[i] = -1.0f - (float)i;
	cnnviz__pool_max2d(&p, 1, x, y);
	/* bottom-right window holds only x[2][2] */
	assert_true(y[6] == x[16] && y[7] == x[17]);
	assert_true(y[0] == x[0] && y[1] == x[1]);
}

static void check_global(int64_t N, int64_t H, int64_t W, int64_t C,
			 float lo, float hi, double tol)
{
	size_t n = (size_t)(N * H * W * C);
	float *x = rand_array(n, lo, hi);
	float *ya = malloc((size_t)(N * C) * sizeof *ya);
	float *ym = malloc((size_t)(N * C) * sizeof *ym);
	double *ra = dalloc((size_t)(N * C));
	double *rm = dalloc((size_t)(N * C));
	assert_non_null(ya);
	assert_non_null(ym);
	for (int64_t b = 0; b < N; b++)
		for (int64_t c = 0; c < C; c++) {
			double s = 0, m = -INFINITY;
			for (int64_t i = 0; i < H; i++)
				for (int64_t j = 0; j < W; j++) {
					double v = x[((b * H + i) * W + j) * C + c];
					s += v;
					m = fmax(m, v);
				}
			ra[b * C + c] = s / (double)(H * W);
			rm[b * C + c] = m;
		}
	cnnviz__pool_global_avg(N, H * W, C, x, ya);
	cnnviz__pool_global_max(N, H * W, C, x, ym);
	char what[96];
	snprintf(what, sizeof what, "global avg (%lld,%lld,%lld)", (long long)H,
		 (long long)W, (long long)C);
	assert_true(close_enough(what, ya, ra, (size_t)(N * C), tol));
	snprintf(what, sizeof what, "global max (%lld,%lld,%lld)", (long long)H,
		 (long long)W, (long long)C);
	assert_true(close_enough(what, ym, rm, (size_t)(N * C), 0.0));
	free(x);
	free(ya);
	free(ym);
	free(ra);
	free(rm);
}

/*
 * Global pools; keepdims only changes the declared shape ((C) or
 * (1,1,C)), the data is the same, so one kernel check covers both.
 * The 224x224 map of values near 100 would lose ~1e-4 relative summed in
 * float; the kernel must stay within 1e-6.
 */
static void test_global_pools(void **state)
{
	(void)state;
	check_global(2, 7, 7, 130, -3, 3, TOL);    /* chunk + tail */
	check_global(3, 5, 4, 3, -1, 1, TOL);
	check_global(1, 1, 1, 64, -1, 1, 0.0);
	check_global(1, 224, 224, 64, 99.5f, 100.5f, 1e-6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dense_rank1),
		cmocka_unit_test(test_dense_rank3),
		cmocka_unit_test(test_bn_last_axis),
		cmocka_unit_test(test_bn_inner_axes),
		cmocka_unit_test(test_normalization),
		cmocka_unit_test(test_rescale),
		cmocka_unit_test(test_pool_geometry),
		cmocka_unit_test(test_max_pool),
		cmocka_unit_test(test_avg_pool),
		cmocka_unit_test(test_avg_pool_excludes_padding),
		cmocka_unit_test(test_global_pools),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
