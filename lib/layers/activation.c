/*
 * Activations: the Keras activation functions (used by Dense, Conv2D ...
 * through cnnviz__act_apply) and the layers that are activations:
 * Activation, ReLU, LeakyReLU, PReLU, ELU, ThresholdedReLU, Softmax.
 * None is spatial: they work on tensors of any rank as Keras holds them.
 *
 * Formulas follow ../shared/reference/keras_ref.py. Where the obvious
 * formula overflows for large |x| (sigmoid, softplus, gelu) an equivalent
 * stable form is used, so no NaN or inf appears where the true value is
 * finite.
 */
#include <math.h>
#include <string.h>

#include "../internal.h"
#include "../kernels.h"
#include "params.h"
#include "grad.h"

/*
 * GCC's -O2 does not vectorise loops of unknown trip count, and its default
 * -ftrapping-math keeps it from if-converting `x > 0 ? x : a * x`. The
 * element-wise loops below are the hot path of every network, so they ask
 * for both locally. Results are unchanged: no code here looks at FP flags.
 */
#if defined(__GNUC__) && !defined(__clang__)
#define VEC_LOOP                                                               \
	__attribute__((optimize("tree-loop-vectorize", "vect-cost-model=cheap", \
				"no-trapping-math")))
#else
#define VEC_LOOP
#endif

/* ------------------------------------------------------------ names */

static const char *const act_names[] = {
#define CNNVIZ__ACT_NAME(id, name) name,
	CNNVIZ__ACT_LIST(CNNVIZ__ACT_NAME)
#undef CNNVIZ__ACT_NAME
};

_Static_assert(sizeof act_names / sizeof act_names[0] == CNNVIZ__ACT_COUNT,
	       "act_names must list every CNNVIZ__ACT_* kind");

/* ASCII only: the result must not depend on the C locale. */
static int same_name(const char *a, const char *b)
{
	for (;; a++, b++) {
		char ca = *a, cb = *b;
		if (ca >= 'A' && ca <= 'Z')
			ca = (char)(ca - 'A' + 'a');
		if (ca != cb)
			return 0;
		if (!ca)
			return 1;
	}
}

/* Case-insensitive like keras_ref.py (which lower()s the name). */
int cnnviz__act_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < CNNVIZ__ACT_COUNT; i++)
		if (same_name(name, act_names[i]))
			return i;
	return -1;
}

const char *cnnviz__act_name(int kind)
{
	if (kind < 0 || kind >= CNNVIZ__ACT_COUNT)
		return "unknown";
	return act_names[kind];
}

/* ------------------------------------------------ element-wise kernels
 * Each takes x (n) and writes y (n); y may equal x (GCC checks the overlap
 * at run time and keeps the vector loop for y == x).
 */

static VEC_LOOP void relu_plain(size_t n, const float *x, float *y)
{
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		y[i] = v > 0.0f ? v : 0.0f;
	}
}

static VEC_LOOP void relu6(size_t n, const float *x, float *y)
{
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		v = v > 0.0f ? v : 0.0f;
		y[i] = v < 6.0f ? v : 6.0f;
	}
}

/*
 * The ReLU layer: x >= th ? x : slope * (x - th), then min(., max_value).
 * + 0.0f turns -0.0 (slope * negative zero) into +0.0 like keras_ref.py.
 */
static VEC_LOOP void relu_general(size_t n, const float *x, float *y,
				  float th, float slope, float max_value)
{
	if (max_value < 0.0f) {
		for (size_t i = 0; i < n; i++) {
			float v = x[i], neg = slope * (v - th);
			y[i] = (v >= th ? v : neg) + 0.0f;
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		float v = x[i], neg = slope * (v - th);
		v = (v >= th ? v : neg) + 0.0f;
		y[i] = v < max_value ? v : max_value;
	}
}

static VEC_LOOP void leaky_relu(size_t n, const float *x, float *y,
				float alpha)
{
	for (size_t i = 0; i < n; i++) {
		float v = x[i], neg = alpha * v;
		y[i] = (v > 0.0f ? v : neg) + 0.0f;
	}
}

static VEC_LOOP void hard_sigmoid(size_t n, const float *x, float *y,
				  float a, float b)
{
	for (size_t i = 0; i < n; i++) {
		float v = a * x[i] + b;
		v = v > 0.0f ? v : 0.0f;
		y[i] = v < 1.0f ? v : 1.0f;
	}
}

static VEC_LOOP void softsign(size_t n, const float *x, float *y)
{
	for (size_t i = 0; i < n; i++)
		y[i] = x[i] / (1.0f + fabsf(x[i]));
}

/* 1 / (1 + e^-x) without overflow: e^-|x| is always in (0, 1]. */
static inline float sigmoid1(float v)
{
	float e = expf(-fabsf(v));
	float r = 1.0f / (1.0f + e);
	return v >= 0.0f ? r : e * r;
}

static void sigmoid(size_t n, const float *x, float *y)
{
	for (size_t i = 0; i < n; i++)
		y[i] = sigmoid1(x[i]);
}

static void swish(size_t n, const float *x, float *y)
{
	for (size_t i = 0; i < n; i++)
		y[i] = x[i] * sigmoid1(x[i]);
}

static void tanh_act(size_t n, const float *x, float *y)
{
	for (size_t i = 0; i < n; i++)
		y[i] = tanhf(x[i]);
}

/* alpha * expm1(x) below 0; selu scales both branches. */
static void elu(size_t n, const float *x, float *y, float alpha, float scale)
{
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		y[i] = scale * (v > 0.0f ? v : alpha * expm1f(v));
	}
}

/* log(1 + e^x) = log1p(e^-|x|) + max(x, 0): no overflow for large x. */
static void softplus(size_t n, const float *x, float *y)
{
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		y[i] = log1pf(expf(-fabsf(v))) + (v > 0.0f ? v : 0.0f);
	}
}

/*
 * Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), written with erfc so that the
 * tail x << 0 keeps its relative precision instead of cancelling to 0.
 */
static void gelu(size_t n, const float *x, float *y)
{
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		y[i] = 0.5f * v * erfcf(-v * 0.70710678118654752f);
	}
}

static void exponential(size_t n, const float *x, float *y)
{
	for (size_t i = 0; i < n; i++)
		y[i] = expf(x[i]);
}

/* Each row of cols values: max-subtracted, the sum accumulated in double. */
static void softmax_rows(size_t rows, size_t cols, const float *x, float *y)
{
	for (size_t r = 0; r < rows; r++) {
		const float *xr = x + r * cols;
		float *yr = y + r * cols;
		float m = xr[0];
		for (size_t j = 1; j < cols; j++)
			m = xr[j] > m ? xr[j] : m;
		double sum = 0.0;
		for (size_t j = 0; j < cols; j++) {
			float e = expf(xr[j] - m);
			yr[j] = e;
			sum += e;
		}
		float inv = (float)(1.0 / sum);
		for (size_t j = 0; j < cols; j++)
			yr[j] *= inv;
	}
}

void cnnviz__act_forward(const struct cnnviz__act *a, const float *x,
			 float *y, size_t rows, size_t cols)
{
	size_t n = rows * cols;
	switch (a->kind) {
	case CNNVIZ__ACT_LINEAR:
		if (x != y)
			memcpy(y, x, n * sizeof *y);
		break;
	case CNNVIZ__ACT_RELU:
		if (a->threshold == 0.0f && a->slope == 0.0f &&
		    a->max_value < 0.0f)
			relu_plain(n, x, y);
		else
			relu_general(n, x, y, a->threshold, a->slope,
				     a->max_value);
		break;
	case CNNVIZ__ACT_RELU6:
		relu6(n, x, y);
		break;
	case CNNVIZ__ACT_SIGMOID:
		sigmoid(n, x, y);
		break;
	case CNNVIZ__ACT_HARD_SIGMOID:
		if (a->keras3)
			hard_sigmoid(n, x, y, 1.0f / 6.0f, 0.5f);
		else
			hard_sigmoid(n, x, y, 0.2f, 0.5f);
		break;
	case CNNVIZ__ACT_TANH:
		tanh_act(n, x, y);
		break;
	case CNNVIZ__ACT_SOFTMAX:
		softmax_rows(rows, cols, x, y);
		break;
	case CNNVIZ__ACT_ELU:
		elu(n, x, y, a->alpha, 1.0f);
		break;
	case CNNVIZ__ACT_SELU:
		elu(n, x, y, 1.6732632423543772f, 1.0507009873554805f);
		break;
	case CNNVIZ__ACT_SOFTPLUS:
		softplus(n, x, y);
		break;
	case CNNVIZ__ACT_SOFTSIGN:
		softsign(n, x, y);
		break;
	case CNNVIZ__ACT_SWISH:
	case CNNVIZ__ACT_SILU:
		swish(n, x, y);
		break;
	case CNNVIZ__ACT_GELU:
		gelu(n, x, y);
		break;
	case CNNVIZ__ACT_EXPONENTIAL:
		exponential(n, x, y);
		break;
	case CNNVIZ__ACT_LEAKY_RELU:
		leaky_relu(n, x, y, a->alpha);
		break;
	default: /* unreachable: kinds come from cnnviz__act_from_name */
		if (x != y)
			memcpy(y, x, n * sizeof *y);
		break;
	}
}

void cnnviz__act_apply(const struct cnnviz__act *a, float *x, size_t rows,
		       size_t cols)
{
	cnnviz__act_forward(a, x, x, rows, cols);
}

void cnnviz__act_softmax_axis(int64_t outer, int64_t n, int64_t inner,
			      const float *x, float *y)
{
	if (inner == 1) {
		softmax_rows((size_t)outer, (size_t)n, x, y);
		return;
	}
	/* Strided: a Softmax over a non-last axis is rare and small. */
	for (int64_t o = 0; o < outer; o++) {
		const float *xo = x + o * n * inner;
		float *yo = y + o * n * inner;
		for (int64_t j = 0; j < inner; j++) {
			float m = xo[j];
			for (int64_t k = 1; k < n; k++)
				m = xo[k * inner + j] > m ? xo[k * inner + j] : m;
			double sum = 0.0;
			for (int64_t k = 0; k < n; k++) {
				float e = expf(xo[k * inner + j] - m);
				yo[k * inner + j] = e;
				sum += e;
			}
			float inv = (float)(1.0 / sum);
			for (int64_t k = 0; k < n; k++)
				yo[k * inner + j] *= inv;
		}
	}
}

VEC_LOOP void cnnviz__act_prelu(int64_t batch, int64_t count,
				const float *alpha, const float *x, float *y)
{
	for (int64_t b = 0; b < batch; b++) {
		const float *xb = x + b * count;
		float *yb = y + b * count;
		for (int64_t i = 0; i < count; i++) {
			float v = xb[i], neg = alpha[i] * v;
			yb[i] = v > 0.0f ? v : neg;
		}
	}
}

VEC_LOOP void cnnviz__act_thresholded_relu(size_t n, float theta,
					   const float *x, float *y)
{
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		y[i] = v > theta ? v : 0.0f;
	}
}

/* --------------------------------------------------------------- layers */

static int one_input(struct cnnviz__setup *s)
{
	if (s->l->n_in != 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "takes 1 input, got %d", s->l->n_in);
	return CNNVIZ_OK;
}

/* Shared tail: output = input shape, rows x cols from the last axis. */
static int act_layer_finish_setup(struct cnnviz__setup *s,
				  const struct cnnviz__act *a)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	struct act_layer *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	p->act = *a;
	p->cols = in->rank ? (size_t)in->d[in->rank - 1] : 1;
	p->rows = cnnviz__shape_count(in) / p->cols;
	l->p = p;
	return cnnviz__set_out(s, in->rank, in->d);
}

static void act_layer_forward(const struct cnnviz__layer *l,
			      const struct cnnviz__io *io)
{
	const struct act_layer *p = l->p;
	cnnviz__act_forward(&p->act, io->in[0], io->out,
			    (size_t)io->batch * p->rows, p->cols);
}

static int activation_setup(struct cnnviz__setup *s)
{
	struct cnnviz__act a;
	int rc;
	if ((rc = one_input(s)) ||
	    (rc = cnnviz__cfg_activation(s, "activation", &a)))
		return rc;
	return act_layer_finish_setup(s, &a);
}

/* A parameter Keras requires to be >= 0 (its layers raise otherwise). */
static int nonneg(struct cnnviz__setup *s, const char *key, double v)
{
	if (!(v >= 0.0) || !isfinite(v))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "%s = %g: Keras requires a value >= 0",
					  key, v);
	return CNNVIZ_OK;
}

static int relu_setup(struct cnnviz__setup *s)
{
	struct cnnviz__act a = {.kind = CNNVIZ__ACT_RELU, .max_value = -1.0f};
	double mv, slope, th;
	int rc;
	if ((rc = one_input(s)) ||
	    (rc = cnnviz__cfg_float(s, "max_value", -1.0, &mv)) ||
	    (rc = cnnviz__cfg_float(s, "negative_slope", 0.0, &slope)) ||
	    (rc = cnnviz__cfg_float(s, "threshold", 0.0, &th)))
		return rc;
	/* max_value null (or absent) is "none", stored as -1. */
	json_t *jmv = json_object_get(s->cfg, "max_value");
	if (jmv && !json_is_null(jmv) && (rc = nonneg(s, "max_value", mv)))
		return rc;
	/*
	 * Keras' constructor refuses negative slopes and thresholds, but the
	 * formula is well defined and such configs exist in hand-edited
	 * files; only max_value must be >= 0 (negative means "none" here).
	 */
	if (!isfinite(slope) || !isfinite(th))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "negative_slope and threshold must be finite numbers");
	a.max_value = (float)mv;
	a.slope = (float)slope;
	a.threshold = (float)th;
	return act_layer_finish_setup(s, &a);
}

static int leaky_relu_setup(struct cnnviz__setup *s)
{
	struct cnnviz__act a = {.kind = CNNVIZ__ACT_LEAKY_RELU,
				.max_value = -1.0f};
	double alpha;
	int rc;
	if ((rc = one_input(s)))
		return rc;
	/* Keras 2 calls it alpha, Keras 3 negative_slope; alpha wins if set. */
	const char *key = json_object_get(s->cfg, "alpha") ? "alpha"
							  : "negative_slope";
	if ((rc = cnnviz__cfg_float(s, key, 0.3, &alpha)))
		return rc;
	a.alpha = (float)alpha;
	return act_layer_finish_setup(s, &a);
}

static int elu_setup(struct cnnviz__setup *s)
{
	struct cnnviz__act a = {.kind = CNNVIZ__ACT_ELU, .max_value = -1.0f};
	double alpha;
	int rc;
	if ((rc = one_input(s)) ||
	    (rc = cnnviz__cfg_float(s, "alpha", 1.0, &alpha)))
		return rc;
	a.alpha = (float)alpha;
	return act_layer_finish_setup(s, &a);
}

const struct cnnviz__op cnnviz__op_activation = {
	.name = "activation",
	.setup = activation_setup,
	.forward = act_layer_forward,
	.backward = cnnviz__act_layer_backward,
};

const struct cnnviz__op cnnviz__op_relu = {
	.name = "relu",
	.setup = relu_setup,
	.forward = act_layer_forward,
	.backward = cnnviz__act_layer_backward,
};

const struct cnnviz__op cnnviz__op_leaky_relu = {
	.name = "leaky_relu",
	.setup = leaky_relu_setup,
	.forward = act_layer_forward,
	.backward = cnnviz__act_layer_backward,
};

const struct cnnviz__op cnnviz__op_elu = {
	.name = "elu",
	.setup = elu_setup,
	.forward = act_layer_forward,
	.backward = cnnviz__act_layer_backward,
};

/* ---------------------------------------------------- ThresholdedReLU */

static int thresholded_relu_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	double theta;
	int rc;
	if ((rc = one_input(s)) ||
	    (rc = cnnviz__cfg_float(s, "theta", 1.0, &theta)))
		return rc;
	struct thresholded *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	p->theta = (float)theta;
	p->count = cnnviz__shape_count(&l->op_in[0]);
	l->p = p;
	return cnnviz__set_out(s, l->op_in[0].rank, l->op_in[0].d);
}

static void thresholded_relu_forward(const struct cnnviz__layer *l,
				     const struct cnnviz__io *io)
{
	const struct thresholded *p = l->p;
	cnnviz__act_thresholded_relu((size_t)io->batch * p->count, p->theta,
				     io->in[0], io->out);
}

const struct cnnviz__op cnnviz__op_thresholded_relu = {
	.name = "thresholded_relu",
	.setup = thresholded_relu_setup,
	.forward = thresholded_relu_forward,
	.backward = cnnviz__thresholded_relu_backward,
};

/* ------------------------------------------------------------ Softmax */

static int softmax_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	int axis, rc;
	if ((rc = one_input(s)) ||
	    (rc = cnnviz__cfg_axis(s, "axis", -1, in->rank, &axis)))
		return rc;
	struct softmax_layer *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	p->outer = p->inner = 1;
	for (int i = 0; i < axis; i++)
		p->outer *= in->d[i]; /* within max_elements: no overflow */
	for (int i = axis + 1; i < in->rank; i++)
		p->inner *= in->d[i];
	p->n = in->d[axis];
	l->p = p;
	return cnnviz__set_out(s, in->rank, in->d);
}

static void softmax_forward(const struct cnnviz__layer *l,
			    const struct cnnviz__io *io)
{
	const struct softmax_layer *p = l->p;
	cnnviz__act_softmax_axis(io->batch * p->outer, p->n, p->inner,
				 io->in[0], io->out);
}

const struct cnnviz__op cnnviz__op_softmax = {
	.name = "softmax",
	.setup = softmax_setup,
	.forward = softmax_forward,
	.backward = cnnviz__softmax_backward,
};

/* -------------------------------------------------------------- PReLU */

static int prelu_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	char buf[96];
	int rc;
	if ((rc = one_input(s)))
		return rc;
	if (in->rank < 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "needs an input of rank >= 2, got %s",
					  cnnviz__shape_str(in, buf, sizeof buf));
	struct prelu *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	p->ashape = *in;
	/* shared_axes: null, an int or a list; Keras numbering (batch = 0). */
	json_t *sa = json_object_get(s->cfg, "shared_axes");
	if (sa && !json_is_null(sa)) {
		size_t n = json_is_array(sa) ? json_array_size(sa) : 1;
		for (size_t i = 0; i < n; i++) {
			json_t *v = json_is_array(sa) ? json_array_get(sa, i) : sa;
			if (!json_is_integer(v))
				return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
							  "config key 'shared_axes' should be a list of integers");
			json_int_t ax = json_integer_value(v);
			if (ax < 1 || ax > in->rank)
				return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
							  "shared axis %lld is out of range for input %s",
							  (long long)ax,
							  cnnviz__shape_str(in, buf, sizeof buf));
			p->ashape.d[ax - 1] = 1;
		}
	}
	rc = cnnviz__weight_decl(s, "alpha", p->ashape.rank, p->ashape.d, 0);
	if (rc < 0)
		return rc;
	p->slot = rc;
	p->count = (int64_t)cnnviz__shape_count(in);
	l->p = p;
	return cnnviz__set_out(s, in->rank, in->d);
}

/* Broadcasts alpha over the shared axes once, so forward is one loop. */
static int prelu_finish(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	struct prelu *p = l->p;
	const struct cnnviz__shape *in = &l->op_in[0];
	const float *w = l->w[p->slot].data;
	size_t bytes;
	if (!w)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_WEIGHTS,
					  "weight 'alpha' is missing");
	if (cnnviz__mul_size((size_t)p->count, sizeof(float), &bytes) ||
	    !(p->alpha = cnnviz__model_alloc(s->m, bytes)))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	int64_t idx[CNNVIZ__MAX_SRANK] = {0};
	for (int64_t i = 0; i < p->count; i++) {
		int64_t src = 0;
		for (int k = 0; k < in->rank; k++)
			src = src * p->ashape.d[k] +
			      (p->ashape.d[k] == 1 ? 0 : idx[k]);
		p->alpha[i] = w[src];
		for (int k = in->rank - 1; k >= 0; k--) {
			if (++idx[k] < in->d[k])
				break;
			idx[k] = 0;
		}
	}
	return CNNVIZ_OK;
}

static void prelu_forward(const struct cnnviz__layer *l,
			  const struct cnnviz__io *io)
{
	const struct prelu *p = l->p;
	cnnviz__act_prelu(io->batch, p->count, p->alpha, io->in[0], io->out);
}

const struct cnnviz__op cnnviz__op_prelu = {
	.name = "prelu",
	.setup = prelu_setup,
	.finish = prelu_finish,
	.forward = prelu_forward,
	.backward = cnnviz__prelu_backward,
};
