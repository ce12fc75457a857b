/*
 * Activation, merge and shape layers against float64 (or long double)
 * formulas written independently here, index by index. The layers are set
 * up through the registry from JSON configs, as the loader does, so the
 * config handling (defaults, Keras 1/2/3 key names, refusals) is tested
 * with the numbers.
 * Tolerance: |got - ref| <= ABS_TOL + REL_TOL * |ref| per element.
 */
#include <float.h>
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
#include "model.h"

#define ABS_TOL 1e-6
#define REL_TOL 4e-6

/* ------------------------------------------------------------ helpers */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float frand(float lo, float hi)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)(lo + (hi - lo) * ((double)(rng >> 11) / 9007199254740992.0));
}

static float *rand_array(size_t n, float lo, float hi)
{
	float *a = malloc(n * sizeof *a);
	assert_non_null(a);
	for (size_t i = 0; i < n; i++)
		a[i] = frand(lo, hi);
	return a;
}

/*
 * got vs ref; prints the first mismatches and the largest difference.
 * A reference beyond float range must come out as the same infinity; a
 * finite one must come out finite.
 */
static int check(const char *what, const float *got, const double *ref,
		 size_t n)
{
	double worst = 0.0, ratio = 0.0;
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		double g = got[i], r = ref[i], d;
		int ok;
		if (fabs(r) > FLT_MAX) {
			ok = isinf(g) && (g > 0) == (r > 0);
			d = ok ? 0.0 : INFINITY;
		} else {
			d = fabs(g - r);
			ok = isfinite(g) && d <= ABS_TOL + REL_TOL * fabs(r);
			if (!isfinite(g))
				d = INFINITY;
		}
		if (d > worst)
			worst = d;
		if (d / (ABS_TOL + REL_TOL * fabs(r)) > ratio)
			ratio = d / (ABS_TOL + REL_TOL * fabs(r));
		if (!ok && bad++ < 5)
			printf("  %s[%zu]: got %.9g, want %.9g\n", what, i, g, r);
	}
	printf("  %-44s n=%-6zu max|diff| %.3g, worst diff/tol %.3g\n", what,
	       n, worst, ratio);
	return bad == 0;
}

/* Exact comparison for data movement (no arithmetic at all). */
static int check_exact(const char *what, const float *got, const double *ref,
		       size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((double)got[i] != ref[i]) {
			printf("  %s[%zu]: got %.9g, want %.9g\n", what, i,
			       (double)got[i], ref[i]);
			return 0;
		}
	printf("  %-44s n=%-6zu exact\n", what, n);
	return 1;
}

static struct cnnviz__shape shp(int rank, ...)
{
	struct cnnviz__shape s = {.rank = rank};
	va_list ap;
	va_start(ap, rank);
	for (int i = 0; i < rank; i++)
		s.d[i] = va_arg(ap, int);
	va_end(ap);
	return s;
}

/* ------------------------------------------------ one layer, set up */

struct tl {
	cnnviz_model *m;
	struct cnnviz__layer *l;
	json_t *cfg;
	struct cnnviz_error err;
};

/* Sets up a layer of class cls as the loader would; returns the status. */
static int tl_setup(struct tl *t, const char *cls, const char *cfg,
		    int keras_major, const char *version, int n_in,
		    const struct cnnviz__shape *ins)
{
	json_error_t je;
	memset(t, 0, sizeof *t);
	t->m = calloc(1, sizeof *t->m);
	assert_non_null(t->m);
	cnnviz__limits_get(NULL, &t->m->limits);
	t->m->keras_major = keras_major;
	snprintf(t->m->keras_version, sizeof t->m->keras_version, "%s", version);
	t->l = cnnviz__layer_new(t->m, &t->err);
	assert_non_null(t->l);
	t->l->name = cnnviz__model_strdup(t->m, "under_test");
	t->l->class_name = cnnviz__model_strdup(t->m, cls);
	t->l->op = cnnviz__op_find(cls);
	assert_non_null(t->l->op);
	t->l->n_in = n_in;
	t->l->op_in = cnnviz__model_alloc(t->m, (size_t)(n_in ? n_in : 1) *
						  sizeof *t->l->op_in);
	assert_non_null(t->l->op_in);
	memcpy(t->l->op_in, ins, (size_t)n_in * sizeof *ins);
	t->cfg = json_loads(cfg, 0, &je);
	assert_non_null(t->cfg);
	t->l->cfg = t->cfg;
	struct cnnviz__setup s = {t->m, t->l, t->cfg, keras_major, 0, &t->err};
	int rc = t->l->op->setup(&s);
	if (rc)
		printf("  setup %s %s: %s\n", cls, cfg, t->err.message);
	return rc;
}

static int tl_finish(struct tl *t)
{
	struct cnnviz__setup s = {t->m, t->l, t->cfg, t->m->keras_major, 0,
				  &t->err};
	return t->l->op->finish ? t->l->op->finish(&s) : CNNVIZ_OK;
}

static void tl_forward(struct tl *t, int64_t batch, const float *const *in,
		       float *out)
{
	size_t ns = t->l->scratch_fixed + t->l->scratch_per_sample * (size_t)batch;
	float *scratch = ns ? malloc(ns * sizeof *scratch) : NULL;
	struct cnnviz__io io = {batch, in, out, scratch, NULL, NULL};
	t->l->op->forward(t->l, &io);
	free(scratch);
}

static void tl_free(struct tl *t)
{
	json_decref(t->cfg);
	cnnviz_model_free(t->m);
}

/* Set-up must fail with code and a message containing `needle`. */
static void expect_refusal(const char *cls, const char *cfg, int keras_major,
			   const char *version, int n_in,
			   const struct cnnviz__shape *ins, int code,
			   const char *needle)
{
	struct tl t;
	int rc = tl_setup(&t, cls, cfg, keras_major, version, n_in, ins);
	assert_int_equal(rc, code);
	assert_int_equal(t.err.code, code);
	if (needle && !strstr(t.err.message, needle)) {
		printf("  message lacks '%s': %s\n", needle, t.err.message);
		fail();
	}
	tl_free(&t);
}

/* Runs a one-input layer on x (batch, in) and returns new output. */
static float *run1(struct tl *t, int64_t batch, const float *x)
{
	size_t n = (size_t)batch * cnnviz__shape_count(&t->l->op_out);
	float *y = malloc(n * sizeof *y);
	assert_non_null(y);
	for (size_t i = 0; i < n; i++)
		y[i] = NAN; /* every element must be written */
	const float *in[1] = {x};
	tl_forward(t, batch, in, y);
	return y;
}

/* -------------------------------------------- activation functions */

static const float spread[] = {
	-1000.0f, -100.0f, -88.0f, -50.0f, -20.0f, -10.0f, -5.0f, -3.0f,
	-1.0f,    -0.5f,   -1e-3f, -0.0f,  0.0f,   1e-3f,  0.5f,  1.0f,
	3.0f,     5.0f,    6.0f,   10.0f,  20.0f,  50.0f,  88.0f, 100.0f,
	1000.0f,  -6.0f,   2.5f,   0.25f,  -2.5f,  7.0f,   -7.0f,
};
#define NSPREAD (sizeof spread / sizeof spread[0])

/* Keras formulas in long double: no overflow for |x| <= 1000. */
static double ref_act(int kind, int keras3, double alpha, long double x)
{
	switch (kind) {
	case CNNVIZ__ACT_LINEAR: return (double)x;
	case CNNVIZ__ACT_RELU: return x > 0 ? (double)x : 0.0;
	case CNNVIZ__ACT_RELU6: return x < 0 ? 0.0 : x > 6 ? 6.0 : (double)x;
	case CNNVIZ__ACT_SIGMOID: return (double)(1.0L / (1.0L + expl(-x)));
	case CNNVIZ__ACT_HARD_SIGMOID: {
		long double v = keras3 ? x / 6.0L + 0.5L : 0.2L * x + 0.5L;
		return v < 0 ? 0.0 : v > 1 ? 1.0 : (double)v;
	}
	case CNNVIZ__ACT_TANH: return (double)tanhl(x);
	case CNNVIZ__ACT_ELU: return x > 0 ? (double)x : alpha * (double)expm1l(x);
	case CNNVIZ__ACT_SELU:
		return 1.0507009873554805 *
		       (x > 0 ? (double)x : 1.6732632423543772 * (double)expm1l(x));
	/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow even where
	   long double is only double (valgrind emulates it so). */
	case CNNVIZ__ACT_SOFTPLUS:
		return (double)(fmaxl(x, 0) + log1pl(expl(-fabsl((long double)x))));
	case CNNVIZ__ACT_SOFTSIGN: return (double)(x / (1.0L + fabsl(x)));
	case CNNVIZ__ACT_SWISH:
	case CNNVIZ__ACT_SILU: return (double)(x / (1.0L + expl(-x)));
	case CNNVIZ__ACT_GELU:
		return (double)(0.5L * x * (1.0L + erfl(x / sqrtl(2.0L))));
	case CNNVIZ__ACT_EXPONENTIAL: return (double)expl(x);
	case CNNVIZ__ACT_LEAKY_RELU: return x > 0 ? (double)x : alpha * (double)x;
	}
	return NAN;
}

static void check_act(int kind, int keras3, float alpha)
{
	/* The spread, then random values; odd length for loop tails. */
	const size_t n = NSPREAD + 203;
	float *x = rand_array(n, -12, 12), *y = malloc(n * sizeof *y);
	float *z = malloc(n * sizeof *z);
	double *ref = malloc(n * sizeof *ref);
	assert_non_null(y);
	assert_non_null(z);
	assert_non_null(ref);
	memcpy(x, spread, sizeof spread);
	struct cnnviz__act a = {.kind = kind, .keras3 = keras3,
				.alpha = alpha, .max_value = -1.0f};
	for (size_t i = 0; i < n; i++)
		ref[i] = ref_act(kind, keras3, alpha, x[i]);
	cnnviz__act_forward(&a, x, y, 1, n);
	char what[64];
	snprintf(what, sizeof what, "%s%s alpha %g", cnnviz__act_name(kind),
		 keras3 ? " (Keras 3)" : "", (double)alpha);
	assert_true(check(what, y, ref, n));
	/* In place gives the same bits. */
	memcpy(z, x, n * sizeof *z);
	cnnviz__act_apply(&a, z, 1, n);
	assert_memory_equal(y, z, n * sizeof *z);
	free(x);
	free(y);
	free(z);
	free(ref);
}

static void test_act_functions(void **state)
{
	(void)state;
	for (int k = 0; k < CNNVIZ__ACT_COUNT; k++)
		if (k != CNNVIZ__ACT_SOFTMAX)
			check_act(k, 0, k == CNNVIZ__ACT_ELU ? 1.0f : 0.2f);
	check_act(CNNVIZ__ACT_HARD_SIGMOID, 1, 0.2f);
	check_act(CNNVIZ__ACT_ELU, 0, 0.7f);
	check_act(CNNVIZ__ACT_LEAKY_RELU, 0, 0.01f);
}

static void test_act_names(void **state)
{
	(void)state;
	for (int k = 0; k < CNNVIZ__ACT_COUNT; k++)
		assert_int_equal(cnnviz__act_from_name(cnnviz__act_name(k)), k);
	assert_int_equal(cnnviz__act_from_name("ReLU"), CNNVIZ__ACT_RELU);
	assert_int_equal(cnnviz__act_from_name("Softmax"), CNNVIZ__ACT_SOFTMAX);
	assert_int_equal(cnnviz__act_from_name("relu7"), -1);
	assert_int_equal(cnnviz__act_from_name("rel"), -1);
	assert_int_equal(cnnviz__act_from_name(NULL), -1);
	assert_non_null(cnnviz__act_name(-1));
	assert_non_null(cnnviz__act_name(CNNVIZ__ACT_COUNT));
}

/* The ReLU layer's general form, max_value 0 included; never -0.0. */
static void test_relu_general(void **state)
{
	(void)state;
	static const float p[][3] = {/* threshold, slope, max_value */
				     {0.0f, 0.0f, 6.0f}, {0.5f, 0.1f, -1.0f},
				     {1.0f, 0.3f, 4.0f}, {0.0f, 0.2f, 0.0f},
				     {2.0f, 0.0f, -1.0f}};
	const size_t n = NSPREAD;
	float y[NSPREAD];
	double ref[NSPREAD];
	for (size_t c = 0; c < sizeof p / sizeof p[0]; c++) {
		struct cnnviz__act a = {.kind = CNNVIZ__ACT_RELU,
					.threshold = p[c][0], .slope = p[c][1],
					.max_value = p[c][2]};
		for (size_t i = 0; i < n; i++) {
			double x = spread[i];
			double v = x >= p[c][0] ? x : p[c][1] * (x - p[c][0]);
			ref[i] = p[c][2] >= 0 && v > p[c][2] ? p[c][2] : v;
		}
		cnnviz__act_forward(&a, spread, y, 1, n);
		assert_true(check("relu general", y, ref, n));
		for (size_t i = 0; i < n; i++)
			assert_false(y[i] == 0.0f && signbit(y[i]));
	}
	/* LeakyReLU of -0.0 is +0.0 too. */
	struct cnnviz__act lk = {.kind = CNNVIZ__ACT_LEAKY_RELU, .alpha = 0.3f};
	float z = -0.0f;
	cnnviz__act_apply(&lk, &z, 1, 1);
	assert_false(signbit(z));
}

/* Softmax rows (rows, cols): reference in long double. */
static void ref_softmax(const float *x, double *ref, size_t rows, size_t cols,
			size_t inner)
{
	/* Along the middle axis of (rows, cols, inner). */
	for (size_t r = 0; r < rows; r++)
		for (size_t j = 0; j < inner; j++) {
			long double m = -INFINITY, s = 0;
			for (size_t k = 0; k < cols; k++)
				if (x[(r * cols + k) * inner + j] > m)
					m = x[(r * cols + k) * inner + j];
			for (size_t k = 0; k < cols; k++)
				s += expl(x[(r * cols + k) * inner + j] - m);
			for (size_t k = 0; k < cols; k++)
				ref[(r * cols + k) * inner + j] =
					(double)(expl(x[(r * cols + k) * inner + j] - m) / s);
		}
}

static void test_softmax_rows(void **state)
{
	(void)state;
	const size_t rows = 7, cols = 13;
	float *x = rand_array(rows * cols, -30, 30), *y = malloc(rows * cols * 4);
	double *ref = malloc(rows * cols * sizeof *ref);
	assert_non_null(y);
	assert_non_null(ref);
	for (size_t j = 0; j < cols; j++) /* exp would overflow unshifted */
		x[j] = 1000.0f - (float)j;
	x[cols] = -1000.0f;
	struct cnnviz__act a = {.kind = CNNVIZ__ACT_SOFTMAX, .max_value = -1};
	cnnviz__act_forward(&a, x, y, rows, cols);
	ref_softmax(x, ref, rows, cols, 1);
	assert_true(check("softmax rows", y, ref, rows * cols));
	for (size_t r = 0; r < rows; r++) {
		double s = 0;
		for (size_t j = 0; j < cols; j++)
			s += y[r * cols + j];
		assert_true(fabs(s - 1.0) < 1e-6);
	}
	free(x);
	free(y);
	free(ref);
}

/* ------------------------------------------------ activation layers */

/* Layer on (3, 4, 5), batch 2, against ref_act-like formulas given. */
static void test_softmax_layer(void **state)
{
	(void)state;
	static const struct {
		const char *cfg;
		size_t outer, n, inner; /* for one sample of (3, 4, 5) */
	} c[] = {
		{"{}", 12, 5, 1},
		{"{\"axis\": -1}", 12, 5, 1},
		{"{\"axis\": 1}", 1, 3, 20},
		{"{\"axis\": [2]}", 3, 4, 5},
		{"{\"axis\": -2}", 3, 4, 5},
	};
	struct cnnviz__shape in = shp(3, 3, 4, 5);
	const size_t n = 2 * 60;
	for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
		struct tl t;
		assert_int_equal(tl_setup(&t, "Softmax", c[k].cfg, 2, "2.4.0", 1, &in), 0);
		assert_true(cnnviz__shape_equal(&t.l->op_out, &in));
		float *x = rand_array(n, -5, 5);
		double *ref = malloc(n * sizeof *ref);
		assert_non_null(ref);
		ref_softmax(x, ref, 2 * c[k].outer, c[k].n, c[k].inner);
		float *y = run1(&t, 2, x);
		assert_true(check(c[k].cfg, y, ref, n));
		free(x);
		free(y);
		free(ref);
		tl_free(&t);
	}
	expect_refusal("Softmax", "{\"axis\": [1, 2]}", 2, "2.4.0", 1, &in,
		       CNNVIZ_ERR_UNSUPPORTED, "single axis");
	expect_refusal("Softmax", "{\"axis\": 4}", 2, "2.4.0", 1, &in,
		       CNNVIZ_ERR_SHAPE, "axis");
}

/* Each case: class, config, Keras major, and the expected y(x). */
static double f_relu_layer(double x)
{
	double v = x >= 0.5 ? x : 0.1 * (x - 0.5);
	return v > 6 ? 6 : v;
}
static double f_relu_default(double x) { return x > 0 ? x : 0; }
static double f_leaky_01(double x) { return x > 0 ? x : 0.1 * x; }
static double f_leaky_005(double x) { return x > 0 ? x : 0.05 * x; }
static double f_leaky_03(double x) { return x > 0 ? x : 0.3 * x; }
static double f_elu_1(double x) { return x > 0 ? x : expm1(x); }
static double f_elu_05(double x) { return x > 0 ? x : 0.5 * expm1(x); }
static double f_thr_05(double x) { return x > 0.5 ? x : 0; }
static double f_thr_1(double x) { return x > 1 ? x : 0; }
static double f_sigmoid(double x) { return 1 / (1 + exp(-x)); }

static void test_activation_layers(void **state)
{
	(void)state;
	static const struct {
		const char *cls, *cfg;
		int major;
		double (*f)(double);
	} c[] = {
		{"ReLU", "{\"max_value\": 6.0, \"negative_slope\": 0.1, \"threshold\": 0.5}", 2, f_relu_layer},
		{"ReLU", "{\"max_value\": null, \"negative_slope\": null}", 2, f_relu_default},
		{"LeakyReLU", "{\"alpha\": 0.1}", 2, f_leaky_01},
		{"LeakyReLU", "{\"negative_slope\": 0.05}", 3, f_leaky_005},
		{"LeakyReLU", "{}", 2, f_leaky_03},
		{"ELU", "{}", 2, f_elu_1},
		{"ELU", "{\"alpha\": 0.5}", 2, f_elu_05},
		{"ThresholdedReLU", "{\"theta\": 0.5}", 2, f_thr_05},
		{"ThresholdedReLU", "{}", 1, f_thr_1},
		{"Activation", "{\"activation\": \"sigmoid\"}", 2, f_sigmoid},
		{"Activation", "{\"activation\": {\"class_name\": \"LeakyReLU\", \"config\": {\"name\": \"leaky_relu\"}}}", 2, NULL},
	};
	struct cnnviz__shape in = shp(2, 6, 7);
	const size_t n = 3 * 42;
	for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
		struct tl t;
		assert_int_equal(tl_setup(&t, c[k].cls, c[k].cfg, c[k].major, "", 1, &in), 0);
		assert_true(cnnviz__shape_equal(&t.l->op_out, &in));
		float *x = rand_array(n, -8, 8);
		x[0] = 0.5f; /* the thresholds themselves */
		x[1] = 1.0f;
		double *ref = malloc(n * sizeof *ref);
		assert_non_null(ref);
		for (size_t i = 0; i < n; i++)
			ref[i] = c[k].f ? c[k].f(x[i]) : ref_act(CNNVIZ__ACT_LEAKY_RELU, 0, 0.2, x[i]);
		float *y = run1(&t, 3, x);
		char what[160];
		snprintf(what, sizeof what, "%s %s", c[k].cls, c[k].cfg);
		assert_true(check(what, y, ref, n));
		free(x);
		free(y);
		free(ref);
		tl_free(&t);
	}
	/* Activation softmax: over the last axis of a rank-3 tensor. */
	struct cnnviz__shape in3 = shp(3, 2, 3, 9);
	struct tl t;
	assert_int_equal(tl_setup(&t, "Activation", "{\"activation\": \"softmax\"}", 2, "", 1, &in3), 0);
	float *x = rand_array(2 * 54, -4, 4);
	double ref[2 * 54];
	ref_softmax(x, ref, 12, 9, 1);
	float *y = run1(&t, 2, x);
	assert_true(check("Activation softmax (2,3,9)", y, ref, 2 * 54));
	free(x);
	free(y);
	tl_free(&t);

	expect_refusal("Activation", "{\"activation\": \"mish\"}", 2, "", 1, &in,
		       CNNVIZ_ERR_UNSUPPORTED, "mish");
	expect_refusal("ReLU", "{\"max_value\": -1.0}", 2, "", 1, &in,
		       CNNVIZ_ERR_FORMAT, "max_value");
}

/* PReLU: alpha of the input shape with the shared axes set to 1. */
static void check_prelu(const char *cfg, const struct cnnviz__shape *want_w)
{
	struct cnnviz__shape in = shp(3, 4, 5, 3);
	struct tl t;
	assert_int_equal(tl_setup(&t, "PReLU", cfg, 2, "", 1, &in), 0);
	assert_int_equal(t.l->n_w, 1);
	assert_string_equal(t.l->w[0].canon, "alpha");
	assert_true(cnnviz__shape_equal(&t.l->w[0].shape, want_w));
	size_t nw = cnnviz__shape_count(want_w), n = 2 * 60;
	float *alpha = rand_array(nw, -1, 1);
	t.l->w[0].data = alpha;
	assert_int_equal(tl_finish(&t), 0);
	float *x = rand_array(n, -3, 3);
	double *ref = malloc(n * sizeof *ref);
	assert_non_null(ref);
	for (size_t b = 0; b < 2; b++)
		for (int64_t i = 0; i < 4; i++)
			for (int64_t j = 0; j < 5; j++)
				for (int64_t c = 0; c < 3; c++) {
					int64_t ai = want_w->d[0] == 1 ? 0 : i;
					int64_t aj = want_w->d[1] == 1 ? 0 : j;
					int64_t ac = want_w->d[2] == 1 ? 0 : c;
					double a = alpha[(ai * want_w->d[1] + aj) *
							 want_w->d[2] + ac];
					size_t o = (size_t)(((int64_t)b * 4 + i) * 5 + j) * 3 + (size_t)c;
					ref[o] = x[o] > 0 ? x[o] : a * x[o];
				}
	float *y = run1(&t, 2, x);
	char what[96];
	snprintf(what, sizeof what, "PReLU (4,5,3) %s", cfg);
	assert_true(check(what, y, ref, n));
	free(alpha);
	free(x);
	free(y);
	free(ref);
	tl_free(&t);
}

static void test_prelu(void **state)
{
	(void)state;
	struct cnnviz__shape w0 = shp(3, 4, 5, 3), w12 = shp(3, 1, 1, 3),
			     w3 = shp(3, 4, 5, 1), w2 = shp(3, 4, 1, 3);
	check_prelu("{}", &w0);
	check_prelu("{\"shared_axes\": null}", &w0);
	check_prelu("{\"shared_axes\": [1, 2]}", &w12);
	check_prelu("{\"shared_axes\": [3]}", &w3);
	check_prelu("{\"shared_axes\": 2}", &w2);
	struct cnnviz__shape in = shp(3, 4, 5, 3);
	expect_refusal("PReLU", "{\"shared_axes\": [0]}", 2, "", 1, &in,
		       CNNVIZ_ERR_SHAPE, "shared axis 0");
	expect_refusal("PReLU", "{\"shared_axes\": [4]}", 2, "", 1, &in,
		       CNNVIZ_ERR_SHAPE, "shared axis 4");
}

/* ------------------------------------------------------------ merges */

static void check_merge(const char *cls, const char *cfg, int n_in,
			double (*op)(double, double), int average)
{
	struct cnnviz__shape in[3] = {shp(3, 3, 4, 5), shp(3, 3, 4, 5),
				      shp(3, 3, 4, 5)};
	const size_t n = 2 * 60;
	struct tl t;
	assert_int_equal(tl_setup(&t, cls, cfg, 1, "", n_in, in), 0);
	assert_true(t.l->op->flags & CNNVIZ__OP_MULTI);
	assert_true(cnnviz__shape_equal(&t.l->op_out, &in[0]));
	float *x[3];
	double *ref = malloc(n * sizeof *ref);
	float *y = malloc(n * sizeof *y);
	assert_non_null(ref);
	assert_non_null(y);
	for (int k = 0; k < n_in; k++)
		x[k] = rand_array(n, -3, 3);
	for (size_t i = 0; i < n; i++) {
		double v = x[0][i];
		for (int k = 1; k < n_in; k++)
			v = op(v, x[k][i]);
		ref[i] = average ? v / n_in : v;
	}
	tl_forward(&t, 2, (const float *const *)x, y);
	char what[96];
	snprintf(what, sizeof what, "%s %s x%d", cls, cfg, n_in);
	assert_true(check(what, y, ref, n));
	for (int k = 0; k < n_in; k++)
		free(x[k]);
	free(ref);
	free(y);
	tl_free(&t);
}

static double op_add(double a, double b) { return a + b; }
static double op_sub(double a, double b) { return a - b; }
static double op_mul(double a, double b) { return a * b; }
static double op_max(double a, double b) { return a > b ? a : b; }
static double op_min(double a, double b) { return a < b ? a : b; }

static void test_merges(void **state)
{
	(void)state;
	check_merge("Add", "{}", 3, op_add, 0);
	check_merge("Add", "{}", 2, op_add, 0);
	check_merge("Subtract", "{}", 2, op_sub, 0);
	check_merge("Multiply", "{}", 3, op_mul, 0);
	check_merge("Average", "{}", 3, op_add, 1);
	check_merge("Maximum", "{}", 3, op_max, 0);
	check_merge("Minimum", "{}", 3, op_min, 0);
	check_merge("Merge", "{\"mode\": \"sum\"}", 3, op_add, 0);
	check_merge("Merge", "{}", 2, op_add, 0);
	check_merge("Merge", "{\"mode\": \"mul\"}", 2, op_mul, 0);
	check_merge("Merge", "{\"mode\": \"ave\"}", 3, op_add, 1);
	check_merge("Merge", "{\"mode\": \"max\"}", 3, op_max, 0);

	struct cnnviz__shape bad[3] = {shp(3, 3, 4, 5), shp(3, 3, 5, 4),
				       shp(3, 3, 4, 5)};
	expect_refusal("Add", "{}", 2, "", 2, bad, CNNVIZ_ERR_SHAPE,
		       "(3, 4, 5) and (3, 5, 4)");
	expect_refusal("Subtract", "{}", 2, "", 3, (struct cnnviz__shape[3]){
		       bad[0], bad[0], bad[0]}, CNNVIZ_ERR_SHAPE, "exactly 2");
	expect_refusal("Merge", "{\"mode\": \"dot\"}", 1, "", 2, bad,
		       CNNVIZ_ERR_UNSUPPORTED, "'dot'");
	expect_refusal("Merge", "{\"mode\": \"cos\"}", 1, "", 2, bad,
		       CNNVIZ_ERR_UNSUPPORTED, "'cos'");
	expect_refusal("Merge", "{\"mode\": [\"lambda code\"]}", 1, "", 2, bad,
		       CNNVIZ_ERR_UNSUPPORTED, "Python function");
}

/* Concatenation of (2, a_k, 3) along per-sample axis `ax` of 3. */
static void check_concat(const char *cls, const char *cfg, int ax)
{
	static const int len[3] = {2, 4, 1};
	struct cnnviz__shape in[3];
	for (int k = 0; k < 3; k++) {
		in[k] = shp(3, 2, 3, 5);
		in[k].d[ax] = len[k];
	}
	struct tl t;
	assert_int_equal(tl_setup(&t, cls, cfg, 2, "", 3, in), 0);
	struct cnnviz__shape want = in[0];
	want.d[ax] = 7;
	assert_true(cnnviz__shape_equal(&t.l->op_out, &want));
	float *x[3];
	size_t n = 2 * cnnviz__shape_count(&want);
	for (int k = 0; k < 3; k++)
		x[k] = rand_array(2 * cnnviz__shape_count(&in[k]), -1, 1);
	double *ref = malloc(n * sizeof *ref);
	float *y = malloc(n * sizeof *y);
	assert_non_null(ref);
	assert_non_null(y);
	/* Walk the output index; find which input and where. */
	int64_t D0 = want.d[0], D1 = want.d[1], D2 = want.d[2];
	for (int64_t b = 0; b < 2; b++)
		for (int64_t i = 0; i < D0; i++)
			for (int64_t j = 0; j < D1; j++)
				for (int64_t c = 0; c < D2; c++) {
					int64_t idx[3] = {i, j, c}, k = 0;
					while (idx[ax] >= in[k].d[ax])
						idx[ax] -= in[k++].d[ax];
					const struct cnnviz__shape *s = &in[k];
					size_t src = (size_t)(((b * s->d[0] + idx[0]) * s->d[1] +
							       idx[1]) * s->d[2] + idx[2]);
					ref[((b * D0 + i) * D1 + j) * D2 + c] = x[k][src];
				}
	tl_forward(&t, 2, (const float *const *)x, y);
	char what[96];
	snprintf(what, sizeof what, "%s %s", cls, cfg);
	assert_true(check_exact(what, y, ref, n));
	for (int k = 0; k < 3; k++)
		free(x[k]);
	free(ref);
	free(y);
	tl_free(&t);
}

static void test_concatenate(void **state)
{
	(void)state;
	check_concat("Concatenate", "{\"axis\": 2}", 1);
	check_concat("Concatenate", "{\"axis\": -2}", 1);
	check_concat("Concatenate", "{}", 2);
	check_concat("Concatenate", "{\"axis\": 1}", 0);
	check_concat("Merge", "{\"mode\": \"concat\", \"concat_axis\": 1}", 0);
	check_concat("Merge", "{\"mode\": \"concat\"}", 2);
	struct cnnviz__shape bad[2] = {shp(3, 2, 3, 5), shp(3, 2, 4, 6)};
	expect_refusal("Concatenate", "{\"axis\": -1}", 2, "", 2, bad,
		       CNNVIZ_ERR_SHAPE, "(2, 3, 5) and (2, 4, 6)");
}

/* ------------------------------------------------------------ shapes */

/* y (d[p0], d[p1], d[p2]) = x (d0, d1, d2) transposed, one sample. */
static void ref_permute3(const float *x, const int64_t *d, const int *p,
			 double *ref)
{
	int64_t od[3] = {d[p[0]], d[p[1]], d[p[2]]};
	for (int64_t i = 0; i < od[0]; i++)
		for (int64_t j = 0; j < od[1]; j++)
			for (int64_t k = 0; k < od[2]; k++) {
				int64_t src[3];
				src[p[0]] = i;
				src[p[1]] = j;
				src[p[2]] = k;
				ref[(i * od[1] + j) * od[2] + k] =
					x[(src[0] * d[1] + src[1]) * d[2] + src[2]];
			}
}

static void test_permute(void **state)
{
	(void)state;
	static const struct {
		const char *cfg;
		int p[3];
	} c[] = {
		{"{\"dims\": [3, 1, 2]}", {2, 0, 1}},
		{"{\"dims\": [2, 1, 3]}", {1, 0, 2}},
		{"{\"dims\": [1, 3, 2]}", {0, 2, 1}},
		{"{\"dims\": [1, 2, 3]}", {0, 1, 2}},
	};
	const int64_t d[3] = {3, 4, 5};
	struct cnnviz__shape in = shp(3, 3, 4, 5);
	for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
		struct tl t;
		assert_int_equal(tl_setup(&t, "Permute", c[k].cfg, 2, "", 1, &in), 0);
		assert_int_equal(t.l->op_out.d[0], d[c[k].p[0]]);
		assert_int_equal(t.l->op_out.d[2], d[c[k].p[2]]);
		float *x = rand_array(120, -1, 1);
		double ref[120];
		ref_permute3(x, d, c[k].p, ref);
		ref_permute3(x + 60, d, c[k].p, ref + 60);
		float *y = run1(&t, 2, x);
		assert_true(check_exact(c[k].cfg, y, ref, 120));
		free(x);
		free(y);
		tl_free(&t);
	}
	expect_refusal("Permute", "{\"dims\": [1, 1, 2]}", 2, "", 1, &in,
		       CNNVIZ_ERR_FORMAT, "permutation");
	expect_refusal("Permute", "{\"dims\": [0, 1, 2]}", 2, "", 1, &in,
		       CNNVIZ_ERR_FORMAT, "permutation");
	expect_refusal("Permute", "{\"dims\": [2, 1]}", 2, "", 1, &in,
		       CNNVIZ_ERR_FORMAT, "dims");
}

/* Flatten: alias unless Keras 2+ channels_first (then C moves last). */
static void test_flatten(void **state)
{
	(void)state;
	struct cnnviz__shape in = shp(3, 3, 4, 5), in1 = shp(1, 7);
	const int64_t d[3] = {3, 4, 5};
	const int p[3] = {1, 2, 0};
	struct tl t;

	assert_int_equal(tl_setup(&t, "Flatten", "{\"data_format\": \"channels_last\"}", 2, "", 1, &in), 0);
	assert_true(t.l->op->flags & CNNVIZ__OP_ALIAS);
	assert_null(t.l->p);
	assert_int_equal(t.l->op_out.rank, 1);
	assert_int_equal(t.l->op_out.d[0], 60);
	float *x = rand_array(120, -1, 1);
	double ref[120];
	for (int i = 0; i < 120; i++)
		ref[i] = x[i];
	float *y = run1(&t, 2, x);
	assert_true(check_exact("Flatten channels_last (copy)", y, ref, 120));
	free(y);
	tl_free(&t);

	assert_int_equal(tl_setup(&t, "Flatten", "{\"data_format\": \"channels_first\"}", 2, "", 1, &in), 0);
	assert_non_null(t.l->p); /* a real copy: not zero-copy */
	assert_int_equal(t.l->op_out.d[0], 60);
	ref_permute3(x, d, p, ref);
	ref_permute3(x + 60, d, p, ref + 60);
	y = run1(&t, 2, x);
	assert_true(check_exact("Flatten channels_first (C last)", y, ref, 120));
	free(y);
	tl_free(&t);

	/* Keras 1 (dim_ordering kept beside data_format): row-major. */
	assert_int_equal(tl_setup(&t, "Flatten", "{\"data_format\": \"channels_first\", \"dim_ordering\": \"th\"}", 1, "", 1, &in), 0);
	assert_null(t.l->p);
	tl_free(&t);
	assert_int_equal(tl_setup(&t, "Flatten", "{\"data_format\": \"channels_first\"}", 2, "", 1, &in1), 0);
	assert_null(t.l->p);
	tl_free(&t);
	free(x);
}

static void test_reshape_identity(void **state)
{
	(void)state;
	struct cnnviz__shape in = shp(3, 3, 4, 5);
	struct tl t;
	assert_int_equal(tl_setup(&t, "Reshape", "{\"target_shape\": [6, -1, 2]}", 2, "", 1, &in), 0);
	assert_true(t.l->op->flags & CNNVIZ__OP_ALIAS);
	assert_null(t.l->p);
	struct cnnviz__shape want = shp(3, 6, 5, 2);
	assert_true(cnnviz__shape_equal(&t.l->op_out, &want));
	float *x = rand_array(120, -1, 1);
	double ref[120];
	for (int i = 0; i < 120; i++)
		ref[i] = x[i];
	float *y = run1(&t, 2, x);
	assert_true(check_exact("Reshape forward copies", y, ref, 120));
	free(y);
	tl_free(&t);

	assert_int_equal(tl_setup(&t, "Reshape", "{\"target_shape\": [60]}", 2, "", 1, &in), 0);
	assert_int_equal(t.l->op_out.rank, 1);
	tl_free(&t);

	assert_int_equal(tl_setup(&t, "Dropout", "{\"rate\": 0.5}", 2, "", 1, &in), 0);
	assert_true(t.l->op->flags & CNNVIZ__OP_ALIAS);
	assert_null(t.l->p);
	assert_true(cnnviz__shape_equal(&t.l->op_out, &in));
	y = run1(&t, 2, x);
	assert_true(check_exact("Dropout forward copies", y, ref, 120));
	free(y);
	tl_free(&t);
	free(x);

	expect_refusal("Reshape", "{\"target_shape\": [7, -1]}", 2, "", 1, &in,
		       CNNVIZ_ERR_SHAPE, "(3, 4, 5)");
	expect_refusal("Reshape", "{\"target_shape\": [6, 11]}", 2, "", 1, &in,
		       CNNVIZ_ERR_SHAPE, "(6, 11)");
	expect_refusal("Reshape", "{\"target_shape\": [-1, -1]}", 2, "", 1, &in,
		       CNNVIZ_ERR_FORMAT, "more than one");
	expect_refusal("Reshape", "{\"target_shape\": [4611686018427387904, 4611686018427387904]}",
		       2, "", 1, &in, CNNVIZ_ERR_SHAPE, "cannot reshape");
}

/* ZeroPadding2D and Cropping2D on (5, 6, 3), batch 2. */
static void check_frame(const char *cls, const char *cfg, int t0, int b0,
			int l0, int r0)
{
	const int crop = strcmp(cls, "Cropping2D") == 0;
	const int64_t H = 5, W = 6, C = 3;
	struct cnnviz__shape in = shp(3, 5, 6, 3);
	struct tl t;
	assert_int_equal(tl_setup(&t, cls, cfg, 2, "", 1, &in), 0);
	int64_t OH = crop ? H - t0 - b0 : H + t0 + b0;
	int64_t OW = crop ? W - l0 - r0 : W + l0 + r0;
	struct cnnviz__shape want = shp(3, (int)OH, (int)OW, 3);
	assert_true(cnnviz__shape_equal(&t.l->op_out, &want));
	float *x = rand_array((size_t)(2 * H * W * C), 1, 2);
	size_t n = (size_t)(2 * OH * OW * C);
	double *ref = malloc(n * sizeof *ref);
	assert_non_null(ref);
	for (int64_t b = 0; b < 2; b++)
		for (int64_t i = 0; i < OH; i++)
			for (int64_t j = 0; j < OW; j++)
				for (int64_t c = 0; c < C; c++) {
					int64_t si = crop ? i + t0 : i - t0;
					int64_t sj = crop ? j + l0 : j - l0;
					int inside = si >= 0 && si < H && sj >= 0 && sj < W;
					ref[((b * OH + i) * OW + j) * C + c] =
						inside ? x[((b * H + si) * W + sj) * C + c] : 0.0;
				}
	float *y = run1(&t, 2, x);
	char what[96];
	snprintf(what, sizeof what, "%s %s", cls, cfg);
	assert_true(check_exact(what, y, ref, n));
	free(x);
	free(y);
	free(ref);
	tl_free(&t);
}

static void test_padding_cropping(void **state)
{
	(void)state;
	check_frame("ZeroPadding2D", "{}", 1, 1, 1, 1);
	check_frame("ZeroPadding2D", "{\"padding\": 2}", 2, 2, 2, 2);
	check_frame("ZeroPadding2D", "{\"padding\": [1, 3]}", 1, 1, 3, 3);
	check_frame("ZeroPadding2D", "{\"padding\": [[1, 2], [3, 0]]}", 1, 2, 3, 0);
	check_frame("ZeroPadding2D", "{\"padding\": [0, 2, 1, 0]}", 0, 2, 1, 0);
	check_frame("ZeroPadding2D", "{\"padding\": {\"top_pad\": 2, \"right_pad\": 1}}", 2, 0, 0, 1);
	check_frame("Cropping2D", "{}", 0, 0, 0, 0);
	check_frame("Cropping2D", "{\"cropping\": 1}", 1, 1, 1, 1);
	check_frame("Cropping2D", "{\"cropping\": [2, 1]}", 2, 2, 1, 1);
	check_frame("Cropping2D", "{\"cropping\": [[0, 3], [2, 1]]}", 0, 3, 2, 1);
	struct cnnviz__shape in = shp(3, 5, 6, 3), in2 = shp(2, 5, 6);
	expect_refusal("Cropping2D", "{\"cropping\": [[2, 3], [0, 0]]}", 2, "", 1,
		       &in, CNNVIZ_ERR_SHAPE, "leaves nothing");
	expect_refusal("ZeroPadding2D", "{\"padding\": -1}", 2, "", 1, &in,
		       CNNVIZ_ERR_FORMAT, "padding");
	expect_refusal("ZeroPadding2D", "{\"padding\": [1, 2, 3]}", 2, "", 1, &in,
		       CNNVIZ_ERR_FORMAT, "padding");
	expect_refusal("ZeroPadding2D", "{}", 2, "", 1, &in2, CNNVIZ_ERR_SHAPE,
		       "rank-3");
}

/*
 * Bilinear reference: TF's half-pixel rule as written in its kernel,
 * in = (o + 0.5) * in_size / out_size - 0.5, lower = max(floor(in), 0),
 * upper = min(ceil(in), n - 1), weight in - floor(in).
 */
static void taps(int64_t o, int64_t n, int64_t s, int64_t *lo, int64_t *hi,
		 double *f)
{
	double in = (o + 0.5) / (double)s - 0.5, fl = floor(in);
	*lo = fl < 0 ? 0 : (int64_t)fl;
	*hi = (int64_t)ceil(in) > n - 1 ? n - 1 : (int64_t)ceil(in);
	*f = in - fl;
}

static void check_upsample(const char *cfg, int major, const char *version,
			   int sh, int sw, int bilinear)
{
	const int64_t H = 3, W = 4, C = 2, OH = H * sh, OW = W * sw;
	struct cnnviz__shape in = shp(3, 3, 4, 2);
	struct tl t;
	assert_int_equal(tl_setup(&t, "UpSampling2D", cfg, major, version, 1, &in), 0);
	struct cnnviz__shape want = shp(3, (int)OH, (int)OW, 2);
	assert_true(cnnviz__shape_equal(&t.l->op_out, &want));
	float *x = rand_array((size_t)(2 * H * W * C), -1, 1);
	size_t n = (size_t)(2 * OH * OW * C);
	double *ref = malloc(n * sizeof *ref);
	assert_non_null(ref);
	for (int64_t b = 0; b < 2; b++)
		for (int64_t i = 0; i < OH; i++)
			for (int64_t j = 0; j < OW; j++)
				for (int64_t c = 0; c < C; c++) {
					const float *xb = x + b * H * W * C;
					double v;
					if (!bilinear) {
						v = xb[((i / sh) * W + j / sw) * C + c];
					} else {
						int64_t y0, y1, x0, x1;
						double fy, fx;
						taps(i, H, sh, &y0, &y1, &fy);
						taps(j, W, sw, &x0, &x1, &fx);
						double tl = xb[(y0 * W + x0) * C + c];
						double tr = xb[(y0 * W + x1) * C + c];
						double bl = xb[(y1 * W + x0) * C + c];
						double br = xb[(y1 * W + x1) * C + c];
						double top = tl + (tr - tl) * fx;
						double bot = bl + (br - bl) * fx;
						v = top + (bot - top) * fy;
					}
					ref[((b * OH + i) * OW + j) * C + c] = v;
				}
	float *y = run1(&t, 2, x);
	char what[96];
	snprintf(what, sizeof what, "UpSampling2D %s", cfg);
	if (bilinear)
		assert_true(check(what, y, ref, n));
	else
		assert_true(check_exact(what, y, ref, n));
	free(x);
	free(y);
	free(ref);
	tl_free(&t);
}

static void test_upsampling(void **state)
{
	(void)state;
	check_upsample("{}", 2, "2.2.4", 2, 2, 0);
	check_upsample("{\"size\": [2, 3]}", 2, "2.2.4", 2, 3, 0);
	check_upsample("{\"size\": 3, \"interpolation\": \"nearest\"}", 3, "3.3.3", 3, 3, 0);
	check_upsample("{\"size\": [2, 3], \"interpolation\": \"bilinear\"}", 3, "3.3.3", 2, 3, 1);
	check_upsample("{\"size\": [4, 1], \"interpolation\": \"bilinear\"}", 2, "2.9.0", 4, 1, 1);
	struct cnnviz__shape in = shp(3, 3, 4, 2);
	expect_refusal("UpSampling2D", "{\"interpolation\": \"bilinear\"}", 2,
		       "2.2.4", 1, &in, CNNVIZ_ERR_UNSUPPORTED, "bilinear");
	expect_refusal("UpSampling2D", "{\"interpolation\": \"bicubic\"}", 3,
		       "3.1.0", 1, &in, CNNVIZ_ERR_UNSUPPORTED, "bicubic");
	expect_refusal("UpSampling2D", "{\"size\": 0}", 2, "2.4.0", 1, &in,
		       CNNVIZ_ERR_FORMAT, "size");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_act_names),
		cmocka_unit_test(test_act_functions),
		cmocka_unit_test(test_relu_general),
		cmocka_unit_test(test_softmax_rows),
		cmocka_unit_test(test_softmax_layer),
		cmocka_unit_test(test_activation_layers),
		cmocka_unit_test(test_prelu),
		cmocka_unit_test(test_merges),
		cmocka_unit_test(test_concatenate),
		cmocka_unit_test(test_permute),
		cmocka_unit_test(test_flatten),
		cmocka_unit_test(test_reshape_identity),
		cmocka_unit_test(test_padding_cropping),
		cmocka_unit_test(test_upsampling),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
