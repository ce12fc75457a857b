/*
 * Backward of the activations: the derivative of every Keras activation
 * function (used by the fused "activation" of Conv/Dense too) and of the
 * Activation, ReLU, LeakyReLU, ELU, ThresholdedReLU, Softmax and PReLU
 * layers.
 *
 * At kinks (ReLU at 0, clip edges) the derivative is TensorFlow's: ReLU
 * passes the gradient where the output is > 0, relu6 where 0 < y < 6,
 * LeakyReLU takes alpha at x <= 0. Most derivatives are taken from the
 * output y, which the executor keeps; only swish/silu/gelu (and ELU or
 * LeakyReLU with a negative alpha) need the input x.
 */
#include <math.h>
#include <string.h>

#include "grad.h"
#include "params.h"

int cnnviz__act_needs_input(const struct cnnviz__act *a)
{
	switch (a->kind) {
	case CNNVIZ__ACT_SWISH:
	case CNNVIZ__ACT_SILU:
	case CNNVIZ__ACT_GELU:
		return 1;
	case CNNVIZ__ACT_ELU:
	case CNNVIZ__ACT_LEAKY_RELU:
		/* With alpha < 0 the output's sign no longer tells the side. */
		return a->alpha < 0.0f;
	default:
		return 0;
	}
}

static inline double sigmoid_d(double v)
{
	double e = exp(-fabs(v)), r = 1.0 / (1.0 + e);
	return v >= 0 ? r : e * r;
}

/* f'(x) for one element; x is only read where needs_input() says. */
static double act_deriv(const struct cnnviz__act *a, float x, float y)
{
	switch (a->kind) {
	case CNNVIZ__ACT_LINEAR:
		return 1.0;
	case CNNVIZ__ACT_RELU:
		if (a->max_value >= 0.0f && y >= a->max_value)
			return 0.0;
		return y > 0.0f ? 1.0 : y < 0.0f ? a->slope : 0.0;
	case CNNVIZ__ACT_RELU6:
		return y > 0.0f && y < 6.0f ? 1.0 : 0.0;
	case CNNVIZ__ACT_SIGMOID:
		return (double)y * (1.0 - (double)y);
	case CNNVIZ__ACT_HARD_SIGMOID:
		if (!(y > 0.0f && y < 1.0f))
			return 0.0;
		return a->keras3 ? 1.0 / 6.0 : 0.2;
	case CNNVIZ__ACT_TANH:
		return 1.0 - (double)y * y;
	case CNNVIZ__ACT_ELU:
		if (a->alpha < 0.0f)
			return x > 0.0f ? 1.0 : a->alpha * exp(x);
		return y > 0.0f ? 1.0 : (double)y + a->alpha;
	case CNNVIZ__ACT_SELU: {
		const double scale = 1.0507009873554805,
			     sa = 1.0507009873554805 * 1.6732632423543772;
		return y > 0.0f ? scale : (double)y + sa;
	}
	case CNNVIZ__ACT_SOFTPLUS:
		/* sigmoid(x) = 1 - e^-y, y = softplus(x) */
		return -expm1(-(double)y);
	case CNNVIZ__ACT_SOFTSIGN: {
		double t = 1.0 - fabs((double)y);
		return t * t;
	}
	case CNNVIZ__ACT_SWISH:
	case CNNVIZ__ACT_SILU: {
		double s = sigmoid_d(x);
		return s * (1.0 + (double)x * (1.0 - s));
	}
	case CNNVIZ__ACT_GELU: {
		/* Phi(x) + x phi(x) */
		double v = x;
		return 0.5 * erfc(-v * 0.70710678118654752) +
		       v * exp(-0.5 * v * v) * 0.39894228040143268;
	}
	case CNNVIZ__ACT_EXPONENTIAL:
		return y;
	case CNNVIZ__ACT_LEAKY_RELU:
		if (a->alpha < 0.0f)
			return x > 0.0f ? 1.0 : a->alpha;
		return y > 0.0f ? 1.0 : a->alpha;
	default:
		return 1.0;
	}
}

/*
 * The ReLU family, from the output alone: the derivative is 1, 0 or a
 * float slope, and a float product is exactly what act_deriv's double
 * product rounds to, so this loop (which the compiler vectorises) gives
 * the same bits as the general one, many times faster.
 */
static int relu_like(const struct cnnviz__act *a, float *slope, float *max)
{
	switch (a->kind) {
	case CNNVIZ__ACT_RELU:
		*slope = a->slope;
		*max = a->max_value; /* < 0: none */
		return 1;
	case CNNVIZ__ACT_RELU6:
		*slope = 0.0f;
		*max = 6.0f;
		return 1;
	case CNNVIZ__ACT_LEAKY_RELU:
		if (a->alpha < 0.0f)
			return 0;
		*slope = a->alpha;
		*max = -1.0f;
		return 1;
	default:
		return 0;
	}
}

static void relu_backward(const struct cnnviz__act *a, float slope,
			  float max, const float *y, const float *dy,
			  float *dx, size_t n, int accumulate)
{
	/* at 0: ReLU's derivative is 0, LeakyReLU's alpha (act_deriv) */
	const float at0 = a->kind == CNNVIZ__ACT_LEAKY_RELU ? slope : 0.0f;
	const float cap = max >= 0.0f ? max : INFINITY;
	/* selects, not branches, and no conditional load: vectorisable */
#define RELU_D(v)                                                              \
	((v) >= cap ? 0.0f : (v) > 0.0f ? 1.0f : (v) < 0.0f ? slope : at0)
	if (accumulate)
		for (size_t i = 0; i < n; i++)
			dx[i] += dy[i] * RELU_D(y[i]);
	else
		for (size_t i = 0; i < n; i++)
			dx[i] = dy[i] * RELU_D(y[i]);
#undef RELU_D
}

void cnnviz__act_backward(const struct cnnviz__act *a, const float *x,
			  const float *y, const float *dy, float *dx,
			  size_t rows, size_t cols, int accumulate)
{
	size_t n = rows * cols;
	float slope, max;
	if (relu_like(a, &slope, &max)) {
		relu_backward(a, slope, max, y, dy, dx, n, accumulate);
		return;
	}
	if (a->kind == CNNVIZ__ACT_SOFTMAX) {
		/* dx = y (dy - sum(dy y)) per row */
		for (size_t r = 0; r < rows; r++) {
			const float *yr = y + r * cols, *gr = dy + r * cols;
			float *xr = dx + r * cols;
			double dot = 0.0;
			for (size_t j = 0; j < cols; j++)
				dot += (double)gr[j] * yr[j];
			for (size_t j = 0; j < cols; j++) {
				float v = (float)((double)yr[j] * ((double)gr[j] - dot));
				xr[j] = accumulate ? xr[j] + v : v;
			}
		}
		return;
	}
	if (a->kind == CNNVIZ__ACT_LINEAR) {
		for (size_t i = 0; i < n; i++)
			dx[i] = accumulate ? dx[i] + dy[i] : dy[i];
		return;
	}
	for (size_t i = 0; i < n; i++) {
		float v = (float)((double)dy[i] *
				  act_deriv(a, x ? x[i] : 0.0f, y[i]));
		dx[i] = accumulate ? dx[i] + v : v;
	}
}

void cnnviz__act_softmax_axis_backward(int64_t outer, int64_t n,
				       int64_t inner, const float *y,
				       const float *dy, float *dx)
{
	for (int64_t o = 0; o < outer; o++) {
		const float *yo = y + o * n * inner, *go = dy + o * n * inner;
		float *xo = dx + o * n * inner;
		for (int64_t j = 0; j < inner; j++) {
			double dot = 0.0;
			for (int64_t k = 0; k < n; k++)
				dot += (double)go[k * inner + j] * yo[k * inner + j];
			for (int64_t k = 0; k < n; k++)
				xo[k * inner + j] += (float)((double)yo[k * inner + j] *
							     ((double)go[k * inner + j] - dot));
		}
	}
}

/* ------------------------------------------------------------- layers */

void cnnviz__act_layer_backward(const struct cnnviz__layer *l,
				const struct cnnviz__io *io, const float *dy,
				float *const *dx)
{
	const struct act_layer *p = l->p;
	cnnviz__act_backward(&p->act, io->in[0], io->out, dy, dx[0],
			     (size_t)io->batch * p->rows, p->cols, 1);
}

void cnnviz__thresholded_relu_backward(const struct cnnviz__layer *l,
				       const struct cnnviz__io *io,
				       const float *dy, float *const *dx)
{
	const struct thresholded *p = l->p;
	const float *x = io->in[0];
	float *g = dx[0];
	for (size_t i = 0; i < (size_t)io->batch * p->count; i++)
		if (x[i] > p->theta)
			g[i] += dy[i];
}

void cnnviz__softmax_backward(const struct cnnviz__layer *l,
			      const struct cnnviz__io *io, const float *dy,
			      float *const *dx)
{
	const struct softmax_layer *p = l->p;
	cnnviz__act_softmax_axis_backward(io->batch * p->outer, p->n, p->inner,
					  io->out, dy, dx[0]);
}

void cnnviz__prelu_backward(const struct cnnviz__layer *l,
			    const struct cnnviz__io *io, const float *dy,
			    float *const *dx)
{
	const struct prelu *p = l->p;
	for (int64_t b = 0; b < io->batch; b++) {
		const float *x = io->in[0] + b * p->count, *g = dy + b * p->count;
		float *d = dx[0] + b * p->count;
		for (int64_t i = 0; i < p->count; i++)
			d[i] += x[i] > 0.0f ? g[i] : p->alpha[i] * g[i];
	}
}

/* --------------------------------------------------- for the explainers */

extern const struct cnnviz__op cnnviz__op_activation, cnnviz__op_relu,
	cnnviz__op_leaky_relu, cnnviz__op_elu, cnnviz__op_dense,
	cnnviz__op_conv2d, cnnviz__op_depthwise_conv2d,
	cnnviz__op_separable_conv2d, cnnviz__op_conv2d_transpose;

static int is_conv(const struct cnnviz__layer *l)
{
	return l->op == &cnnviz__op_conv2d ||
	       l->op == &cnnviz__op_depthwise_conv2d ||
	       l->op == &cnnviz__op_separable_conv2d ||
	       l->op == &cnnviz__op_conv2d_transpose;
}

const struct cnnviz__act *cnnviz__grad_layer_act(const struct cnnviz__layer *l,
						 int *fused)
{
	*fused = 0;
	if (!l->op || !l->p)
		return NULL;
	if (l->op == &cnnviz__op_activation || l->op == &cnnviz__op_relu ||
	    l->op == &cnnviz__op_leaky_relu || l->op == &cnnviz__op_elu)
		return &((const struct act_layer *)l->p)->act;
	*fused = 1;
	if (l->op == &cnnviz__op_dense)
		return &((const struct dense *)l->p)->act;
	if (is_conv(l)) {
		struct cnnviz__conv_view v;
		cnnviz__conv_view(l, &v);
		return v.act;
	}
	*fused = 0;
	return NULL;
}

void cnnviz__grad_backward_preact(const struct cnnviz__layer *l,
				  const struct cnnviz__io *io,
				  const float *dy, float *const *dx)
{
	if (l->op == &cnnviz__op_dense)
		cnnviz__dense_backward_impl(l, io, dy, dx, 1);
	else if (is_conv(l))
		cnnviz__conv_backward_impl(l, io, dy, dx, 1);
}

double cnnviz__grad_preact_unit(const struct cnnviz__layer *l,
				const float *x, int64_t unit)
{
	if (l->op == &cnnviz__op_dense)
		return cnnviz__dense_preact_unit(l, x, unit);
	if (is_conv(l))
		return cnnviz__conv_preact_unit(l, x, unit);
	return NAN;
}
