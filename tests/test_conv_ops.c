/*
 * The convolution ops (lib/layers/conv.c) driven the way the loader
 * drives them: config JSON -> setup (shapes, weights, errors) -> weights
 * filled in -> finish -> forward. Expected numbers come from naive float64
 * loops written here; Keras 1 kernel layouts follow keras_ref.py
 * _fix_weights. Tolerance: max|diff| <= 1e-5 * max(|ref|, 1).
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
#include "model.h"

#define TOL 1e-5

struct fix {
	cnnviz_model *m;
	struct cnnviz__layer *l;
	json_t *cfg;
	struct cnnviz__setup s;
	struct cnnviz_error err;
};

/* A one-layer model holding class cls with config json on an (h,w,c)
   input (already HWC, as the loader hands channels_first layers over). */
static int op_setup(struct fix *f, const char *cls, const char *json,
		    int64_t h, int64_t w, int64_t c, int channels_first,
		    int theano)
{
	memset(f, 0, sizeof *f);
	f->m = calloc(1, sizeof *f->m);
	assert_non_null(f->m);
	cnnviz__limits_get(NULL, &f->m->limits);
	f->l = cnnviz__layer_new(f->m, &f->err);
	assert_non_null(f->l);
	f->l->name = cnnviz__model_strdup(f->m, "layer");
	f->l->class_name = cnnviz__model_strdup(f->m, cls);
	f->l->op = cnnviz__op_find(cls);
	assert_non_null(f->l->op);
	f->cfg = json_loads(json, 0, NULL);
	assert_non_null(f->cfg);
	f->l->cfg = f->cfg;
	f->l->n_in = 1;
	f->l->op_in = cnnviz__model_alloc(f->m, sizeof *f->l->op_in);
	f->l->op_in->rank = c > 0 ? 3 : 2;
	f->l->op_in->d[0] = h;
	f->l->op_in->d[1] = w;
	f->l->op_in->d[2] = c;
	f->l->channels_first = channels_first;
	f->s = (struct cnnviz__setup){f->m, f->l, f->cfg, 2, theano, &f->err};
	return f->l->op->setup(&f->s);
}

static void fix_free(struct fix *f)
{
	json_decref(f->cfg);
	cnnviz_model_free(f->m);
}

/* Fills every declared weight with random numbers (model arena). */
static void fill_weights(struct fix *f)
{
	static uint64_t st = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < f->l->n_w; i++) {
		size_t n = cnnviz__shape_count(&f->l->w[i].shape);
		float *d = cnnviz__model_alloc(f->m, n * sizeof *d);
		assert_non_null(d);
		for (size_t k = 0; k < n; k++) {
			st ^= st << 13;
			st ^= st >> 7;
			st ^= st << 17;
			d[k] = (float)((double)(st >> 11) / 9007199254740992.0 *
					       2.0 - 1.0);
		}
		f->l->w[i].data = d;
		f->l->w[i].present = 1;
	}
}

/* finish + forward on batch x (input shape), returns new output array. */
static float *op_run(struct fix *f, const float *x, int64_t batch)
{
	struct cnnviz__layer *l = f->l;
	if (l->op->finish)
		assert_int_equal(l->op->finish(&f->s), 0);
	size_t ny = cnnviz__shape_count(&l->op_out) * (size_t)batch;
	size_t ns = l->scratch_fixed + l->scratch_per_sample * (size_t)batch;
	float *y = calloc(ny, sizeof *y), *scratch = calloc(ns + 1, sizeof *y);
	assert_non_null(y);
	assert_non_null(scratch);
	const float *ins[1] = {x};
	struct cnnviz__io io = {.batch = batch, .in = ins, .out = y,
			       .scratch = scratch};
	l->op->forward(l, &io);
	free(scratch);
	return y;
}

static float *rand_input(size_t n)
{
	float *x = malloc(n * sizeof *x);
	assert_non_null(x);
	for (size_t i = 0; i < n; i++)
		x[i] = (float)((double)rand() / RAND_MAX * 2.0 - 1.0);
	return x;
}

static void check_close(const float *got, const double *ref, size_t n)
{
	double maxref = 1.0, maxdiff = 0.0;
	for (size_t i = 0; i < n; i++)
		maxref = fmax(maxref, fabs(ref[i]));
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - ref[i]);
		if (!(d <= TOL * maxref))
			fprintf(stderr, "[%zu] got %.7g want %.7g\n", i,
				(double)got[i], ref[i]);
		maxdiff = isnan(d) ? INFINITY : fmax(maxdiff, d);
	}
	assert_true(maxdiff <= TOL * maxref);
}

static void assert_shape(const struct cnnviz__shape *s, int rank,
			 int64_t a, int64_t b, int64_t c, int64_t d)
{
	const int64_t want[4] = {a, b, c, d};
	assert_int_equal(s->rank, rank);
	for (int i = 0; i < rank; i++)
		assert_int_equal(s->d[i], want[i]);
}

/* ------------------------------------------------------- shapes, weights */

static void test_conv2d_shapes(void **state)
{
	(void)state;
	struct fix f;

	/* Stride 2 'same' on 7x8: ceil -> 4x4; kernel HWIO, then bias. */
	assert_int_equal(op_setup(&f, "Conv2D",
				  "{\"filters\": 5, \"kernel_size\": [3, 3], \"strides\": 2,"
				  " \"padding\": \"same\", \"activation\": \"relu\"}",
				  7, 8, 3, 0, 0), 0);
	assert_shape(&f.l->op_out, 3, 4, 4, 5, 0);
	assert_int_equal(f.l->n_w, 2);
	assert_string_equal(f.l->w[0].canon, "kernel");
	assert_shape(&f.l->w[0].shape, 4, 3, 3, 3, 5);
	assert_string_equal(f.l->w[1].canon, "bias");
	assert_shape(&f.l->w[1].shape, 1, 5, 0, 0, 0);
	assert_true(f.l->scratch_fixed > 0);
	/* Conv2D applies the planner's fused epilogue itself. */
	assert_int_equal(f.l->op->flags,
			 CNNVIZ__OP_SPATIAL | CNNVIZ__OP_EPILOGUE);
	assert_int_equal(f.l->op->layer_flags,
			 CNNVIZ_LAYER_CONV | CNNVIZ_LAYER_SPATIAL);
	fix_free(&f);

	/* 1x1 stride 1 reads its input in place; groups split the kernel. */
	assert_int_equal(op_setup(&f, "Conv2D",
				  "{\"filters\": 8, \"kernel_size\": 1, \"groups\": 4,"
				  " \"use_bias\": false}", 5, 6, 12, 0, 0), 0);
	assert_shape(&f.l->op_out, 3, 5, 6, 8, 0);
	assert_int_equal(f.l->n_w, 1);
	assert_shape(&f.l->w[0].shape, 4, 1, 1, 3, 8);
	assert_int_equal(f.l->scratch_fixed, 0);
	fix_free(&f);

	/* Dilation 2 'valid': 3x3 spans 5. */
	assert_int_equal(op_setup(&f, "Conv2D",
				  "{\"filters\": 2, \"kernel_size\": 3, \"dilation_rate\": 2}",
				  9, 5, 1, 0, 0), 0);
	assert_shape(&f.l->op_out, 3, 5, 1, 2, 0);
	fix_free(&f);

	/* Keras 1 'th': kernel declared (out, in, rows, cols). */
	assert_int_equal(op_setup(&f, "Convolution2D",
				  "{\"filters\": 4, \"kernel_size\": [3, 2]}", 6, 6, 2, 1, 0),
			 0);
	assert_shape(&f.l->w[0].shape, 4, 4, 2, 3, 2);
	fix_free(&f);
	/* ... but not a Keras 2 Conv2D on channels_first data. */
	assert_int_equal(op_setup(&f, "Conv2D",
				  "{\"filters\": 4, \"kernel_size\": [3, 2]}", 6, 6, 2, 1, 0),
			 0);
	assert_shape(&f.l->w[0].shape, 4, 3, 2, 2, 4);
	fix_free(&f);
}

static void test_other_shapes(void **state)
{
	(void)state;
	struct fix f;

	assert_int_equal(op_setup(&f, "DepthwiseConv2D",
				  "{\"kernel_size\": 3, \"strides\": 2, \"padding\": \"same\","
				  " \"depth_multiplier\": 2}", 8, 7, 5, 0, 0), 0);
	assert_shape(&f.l->op_out, 3, 4, 4, 10, 0);
	assert_string_equal(f.l->w[0].canon, "depthwise_kernel");
	assert_shape(&f.l->w[0].shape, 4, 3, 3, 5, 2);
	assert_shape(&f.l->w[1].shape, 1, 10, 0, 0, 0);
	fix_free(&f);

	assert_int_equal(op_setup(&f, "SeparableConv2D",
				  "{\"filters\": 7, \"kernel_size\": 3, \"depth_multiplier\": 2}",
				  8, 7, 5, 0, 0), 0);
	assert_shape(&f.l->op_out, 3, 6, 5, 7, 0);
	assert_int_equal(f.l->n_w, 3);
	assert_string_equal(f.l->w[0].canon, "depthwise_kernel");
	assert_shape(&f.l->w[0].shape, 4, 3, 3, 5, 2);
	assert_string_equal(f.l->w[1].canon, "pointwise_kernel");
	assert_shape(&f.l->w[1].shape, 4, 1, 1, 10, 7);
	assert_string_equal(f.l->w[2].canon, "bias");
	fix_free(&f);

	/* Transposed: valid n*s + max(k-s, 0); same n*s; output_padding. */
	assert_int_equal(op_setup(&f, "Conv2DTranspose",
				  "{\"filters\": 3, \"kernel_size\": 5, \"strides\": 2,"
				  " \"padding\": \"same\"}", 7, 7, 8, 0, 0), 0);
	assert_shape(&f.l->op_out, 3, 14, 14, 3, 0);
	assert_shape(&f.l->w[0].shape, 4, 5, 5, 3, 8);
	fix_free(&f);
	assert_int_equal(op_setup(&f, "Conv2DTranspose",
				  "{\"filters\": 3, \"kernel_size\": [3, 2], \"strides\": [2, 3]}",
				  4, 5, 2, 0, 0), 0);
	assert_shape(&f.l->op_out, 3, 9, 15, 3, 0);
	fix_free(&f);
	assert_int_equal(op_setup(&f, "Conv2DTranspose",
				  "{\"filters\": 3, \"kernel_size\": 3, \"strides\": 2,"
				  " \"padding\": \"same\", \"output_padding\": [0, 1]}",
				  4, 5, 2, 0, 0), 0);
	assert_shape(&f.l->op_out, 3, 7, 10, 3, 0);
	fix_free(&f);
}

/* ------------------------------------------------------------ refusals */

static void expect_error(const char *cls, const char *json, int64_t h,
			 int64_t w, int64_t c, int channels_first, int code,
			 const char *in_message)
{
	struct fix f;
	int rc = op_setup(&f, cls, json, h, w, c, channels_first, 0);
	if (rc != code || !strstr(f.err.message, in_message))
		fprintf(stderr, "%s %s: got %d '%s'\n", cls, json, rc,
			f.err.message);
	assert_int_equal(rc, code);
	assert_non_null(strstr(f.err.message, in_message));
	assert_non_null(strstr(f.err.where, "layer"));
	fix_free(&f);
}

static void test_refusals(void **state)
{
	(void)state;
	expect_error("Conv2D", "{\"filters\": 2, \"kernel_size\": 3}", 8, 8, 0,
		     0, CNNVIZ_ERR_SHAPE, "rank-3");
	expect_error("Conv2D", "{\"filters\": 2}", 8, 8, 1, 0,
		     CNNVIZ_ERR_FORMAT, "kernel_size");
	expect_error("Conv2D", "{\"kernel_size\": 3}", 8, 8, 1, 0,
		     CNNVIZ_ERR_FORMAT, "filters");
	expect_error("Conv2D", "{\"filters\": 2, \"kernel_size\": 0}", 8, 8, 1,
		     0, CNNVIZ_ERR_FORMAT, "kernel_size");
	expect_error("Conv2D", "{\"filters\": 2, \"kernel_size\": 3, \"strides\": [1, 0]}",
		     8, 8, 1, 0, CNNVIZ_ERR_FORMAT, "strides");
	expect_error("Conv2D",
		     "{\"filters\": 2, \"kernel_size\": 3, \"strides\": 2, \"dilation_rate\": 2}",
		     8, 8, 1, 0, CNNVIZ_ERR_UNSUPPORTED, "dilation_rate");
	expect_error("Conv2D", "{\"filters\": 2, \"kernel_size\": 3, \"groups\": 2}",
		     8, 8, 3, 0, CNNVIZ_ERR_SHAPE, "groups");
	expect_error("Conv2D", "{\"filters\": 2, \"kernel_size\": 5}", 4, 8, 1,
		     0, CNNVIZ_ERR_SHAPE, "does not fit");
	expect_error("Conv2D", "{\"filters\": 2, \"kernel_size\": 3, \"padding\": \"causal\"}",
		     8, 8, 1, 0, CNNVIZ_ERR_UNSUPPORTED, "causal");
	expect_error("Conv2D", "{\"filters\": 2, \"kernel_size\": 3, \"activation\": \"nope\"}",
		     8, 8, 1, 0, CNNVIZ_ERR_UNSUPPORTED, "nope");
	expect_error("DepthwiseConv2D", "{\"kernel_size\": 3, \"depth_multiplier\": 0}",
		     8, 8, 1, 0, CNNVIZ_ERR_FORMAT, "depth_multiplier");
	expect_error("SeparableConvolution2D", "{\"filters\": 2, \"kernel_size\": 3}",
		     8, 8, 2, 1, CNNVIZ_ERR_UNSUPPORTED, "'th'");
	expect_error("Deconvolution2D", "{\"filters\": 2, \"kernel_size\": 3}",
		     8, 8, 2, 1, CNNVIZ_ERR_UNSUPPORTED, "'th'");
	expect_error("Conv2DTranspose",
		     "{\"filters\": 2, \"kernel_size\": 3, \"strides\": 2, \"output_padding\": 2}",
		     8, 8, 2, 0, CNNVIZ_ERR_FORMAT, "output_padding");
	expect_error("Conv2DTranspose", "{\"filters\": 2, \"kernel_size\": 3, \"groups\": 2}",
		     8, 8, 2, 0, CNNVIZ_ERR_UNSUPPORTED, "groups");
	expect_error("Conv2DTranspose",
		     "{\"filters\": 2, \"kernel_size\": 2, \"padding\": \"same\", \"output_padding\": 0}",
		     1, 8, 2, 0, CNNVIZ_ERR_SHAPE, "empty output");
	expect_error("Deconvolution2D",
		     "{\"filters\": 2, \"kernel_size\": 3, \"strides\": 2, \"padding\": \"same\","
		     " \"output_shape\": [null, 9, 16, 2]}",
		     4, 8, 2, 0, CNNVIZ_ERR_UNSUPPORTED, "output_shape");
}

/* ------------------------------------------------- forward through ops */

/*
 * Naive single-kernel conv, x (n,h,w,ci), 'same' or 'valid', stride 1,
 * w(i, j, c, o) given by a callback-free index function below.
 */
enum klayout { HWIO, OIHW_FLIPPED, HWIO_FLIPPED };

static double kval(const float *k, enum klayout lay, int64_t kh, int64_t kw,
		   int64_t ci, int64_t co, int64_t i, int64_t j, int64_t c,
		   int64_t o)
{
	switch (lay) {
	case OIHW_FLIPPED:
		return k[((o * ci + c) * kh + kh - 1 - i) * kw + kw - 1 - j];
	case HWIO_FLIPPED:
		return k[(((kh - 1 - i) * kw + kw - 1 - j) * ci + c) * co + o];
	default:
		return k[((i * kw + j) * ci + c) * co + o];
	}
}

static void ref_conv_s1(const float *x, int64_t n, int64_t h, int64_t w,
			int64_t ci, const float *k, enum klayout lay,
			int64_t kh, int64_t kw, int64_t co, const float *b,
			int same, int relu, double *y, int64_t *oh,
			int64_t *ow)
{
	int64_t pt = same ? (kh - 1) / 2 : 0, pl = same ? (kw - 1) / 2 : 0;
	*oh = same ? h : h - kh + 1;
	*ow = same ? w : w - kw + 1;
	for (int64_t s = 0; s < n; s++)
		for (int64_t oy = 0; oy < *oh; oy++)
			for (int64_t ox = 0; ox < *ow; ox++)
				for (int64_t o = 0; o < co; o++) {
					double acc = b ? b[o] : 0.0;
					for (int64_t i = 0; i < kh; i++)
						for (int64_t j = 0; j < kw; j++) {
							int64_t iy = oy + i - pt, ix = ox + j - pl;
							if (iy < 0 || iy >= h || ix < 0 || ix >= w)
								continue;
							for (int64_t c = 0; c < ci; c++)
								acc += x[((s * h + iy) * w + ix) * ci + c] *
								       kval(k, lay, kh, kw, ci, co, i, j, c, o);
						}
					if (relu && acc < 0)
						acc = 0;
					y[((s * *oh + oy) * *ow + ox) * co + o] = acc;
				}
}

static void run_conv(const char *cls, int channels_first, int theano,
		     enum klayout lay, int same, int relu)
{
	struct fix f;
	char json[200];
	const int64_t n = 2, h = 7, w = 6, ci = 3, co = 4, kh = 3, kw = 2;
	int64_t oh, ow;

	snprintf(json, sizeof json,
		 "{\"filters\": 4, \"kernel_size\": [3, 2], \"padding\": \"%s\","
		 " \"activation\": \"%s\"}", same ? "same" : "valid",
		 relu ? "relu" : "linear");
	assert_int_equal(op_setup(&f, cls, json, h, w, ci, channels_first,
				  theano), 0);
	fill_weights(&f);
	float *x = rand_input((size_t)(n * h * w * ci));
	double *ref = calloc((size_t)(n * h * w * co), sizeof *ref);
	assert_non_null(ref);
	ref_conv_s1(x, n, h, w, ci, f.l->w[0].data, lay, kh, kw, co,
		    f.l->w[1].data, same, relu, ref, &oh, &ow);
	assert_shape(&f.l->op_out, 3, oh, ow, co, 0);
	float *y = op_run(&f, x, n);
	check_close(y, ref, (size_t)(n * oh * ow * co));
	free(x);
	free(ref);
	free(y);
	fix_free(&f);
}

static void test_conv_forward(void **state)
{
	(void)state;
	run_conv("Conv2D", 0, 0, HWIO, 1, 1);
	run_conv("Conv2D", 0, 0, HWIO, 0, 0);
	/* Keras 1 Theano files: true convolution, 'th' layout or not. */
	run_conv("Convolution2D", 1, 1, OIHW_FLIPPED, 1, 0);
	run_conv("Convolution2D", 0, 1, HWIO_FLIPPED, 0, 1);
	run_conv("AtrousConvolution2D", 0, 1, HWIO_FLIPPED, 1, 0);
	/* A Keras 1 TensorFlow file: stored as is. */
	run_conv("Convolution2D", 0, 0, HWIO, 1, 0);
}

/* Separable: depthwise (no bias) then pointwise + bias, weights in order. */
static void test_separable_forward(void **state)
{
	(void)state;
	struct fix f;
	const int64_t n = 2, h = 6, w = 5, c = 3, m = 2, fl = 4;

	assert_int_equal(op_setup(&f, "SeparableConv2D",
				  "{\"filters\": 4, \"kernel_size\": 3, \"padding\": \"same\","
				  " \"depth_multiplier\": 2}", h, w, c, 0, 0), 0);
	fill_weights(&f);
	const float *dk = f.l->w[0].data, *pk = f.l->w[1].data;
	const float *b = f.l->w[2].data;
	float *x = rand_input((size_t)(n * h * w * c));
	size_t np = (size_t)(n * h * w);
	double *mid = calloc(np * (size_t)(c * m), sizeof *mid);
	double *ref = calloc(np * (size_t)fl, sizeof *ref);
	assert_non_null(mid);
	assert_non_null(ref);
	for (int64_t s = 0; s < n; s++)
		for (int64_t oy = 0; oy < h; oy++)
			for (int64_t ox = 0; ox < w; ox++)
				for (int64_t ci = 0; ci < c; ci++)
					for (int64_t mi = 0; mi < m; mi++) {
						double acc = 0.0;
						for (int64_t i = 0; i < 3; i++)
							for (int64_t j = 0; j < 3; j++) {
								int64_t iy = oy + i - 1, ix = ox + j - 1;
								if (iy < 0 || iy >= h || ix < 0 || ix >= w)
									continue;
								acc += x[((s * h + iy) * w + ix) * c + ci] *
								       dk[((i * 3 + j) * c + ci) * m + mi];
							}
						mid[((s * h + oy) * w + ox) * c * m + ci * m + mi] = acc;
					}
	for (size_t p = 0; p < np; p++)
		for (int64_t o = 0; o < fl; o++) {
			double acc = b[o];
			for (int64_t q = 0; q < c * m; q++)
				acc += mid[p * (size_t)(c * m) + (size_t)q] * pk[q * fl + o];
			ref[p * (size_t)fl + (size_t)o] = acc;
		}
	float *y = op_run(&f, x, n);
	check_close(y, ref, np * (size_t)fl);
	free(x);
	free(mid);
	free(ref);
	free(y);
	fix_free(&f);
}

/* Transposed conv through the op (kernel regrouped in finish()). */
static void test_transpose_forward(void **state)
{
	(void)state;
	struct fix f;
	const int64_t n = 2, h = 3, w = 4, ci = 3, co = 2, k = 3, s = 2;

	/* valid: 2*n + 1 */
	assert_int_equal(op_setup(&f, "Conv2DTranspose",
				  "{\"filters\": 2, \"kernel_size\": 3, \"strides\": 2}",
				  h, w, ci, 0, 0), 0);
	fill_weights(&f);
	const float *kern = f.l->w[0].data, *b = f.l->w[1].data;
	int64_t oh = h * s + 1, ow = w * s + 1;
	assert_shape(&f.l->op_out, 3, oh, ow, co, 0);
	float *x = rand_input((size_t)(n * h * w * ci));
	double *ref = calloc((size_t)(n * oh * ow * co), sizeof *ref);
	assert_non_null(ref);
	for (int64_t sm = 0; sm < n; sm++)
		for (int64_t iy = 0; iy < h; iy++)
			for (int64_t ix = 0; ix < w; ix++)
				for (int64_t i = 0; i < k; i++)
					for (int64_t j = 0; j < k; j++)
						for (int64_t o = 0; o < co; o++)
							for (int64_t c = 0; c < ci; c++)
								ref[((sm * oh + iy * s + i) * ow + ix * s + j) * co + o] +=
									(double)x[((sm * h + iy) * w + ix) * ci + c] *
									kern[((i * k + j) * co + o) * ci + c];
	for (size_t p = 0; p < (size_t)(n * oh * ow); p++)
		for (int64_t o = 0; o < co; o++)
			ref[p * (size_t)co + (size_t)o] += b[o];
	float *y = op_run(&f, x, n);
	check_close(y, ref, (size_t)(n * oh * ow * co));
	free(x);
	free(ref);
	free(y);
	fix_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conv2d_shapes),
		cmocka_unit_test(test_other_shapes),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_conv_forward),
		cmocka_unit_test(test_separable_forward),
		cmocka_unit_test(test_transpose_forward),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
