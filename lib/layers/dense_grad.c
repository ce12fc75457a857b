/*
 * Backward of Dense: dx (rows,in) += act'(dy) (rows,units) . kernel^T.
 * The kernel (in,units) is read row by row as stored (each dx element is
 * a dot product with one kernel row), so no transposed copy of what may
 * be the model's largest array is ever made.
 */
#include <math.h>

#include "grad.h"
#include "params.h"

void cnnviz__dense_grad_setup(struct cnnviz__layer *l)
{
	const struct dense *p = l->p;
	/* rows * units is the output size, within max_elements */
	size_t out = (size_t)(p->rows * p->units);
	l->bscratch_per_sample = cnnviz__act_needs_input(&p->act) ? 2 * out : out;
	l->bscratch_fixed = 0;
}

void cnnviz__dense_backward_impl(const struct cnnviz__layer *l,
				 const struct cnnviz__io *io, const float *dy,
				 float *const *dx, int skip_act)
{
	const struct dense *p = l->p;
	const int64_t rows = io->batch * p->rows;
	const float *k = l->w[p->w_kernel].data;
	const float *bias = p->w_bias >= 0 ? l->w[p->w_bias].data : NULL;
	const float *d = dy;

	if (!skip_act && p->act.kind != CNNVIZ__ACT_LINEAR) {
		float *buf = io->scratch, *pre = NULL;
		if (cnnviz__act_needs_input(&p->act)) {
			pre = buf + rows * p->units;
			cnnviz__dense_fwd(rows, p->in, p->units, io->in[0], k,
					  bias, pre);
		}
		cnnviz__act_backward(&p->act, pre, io->out, dy, buf,
				     (size_t)rows, (size_t)p->units, 0);
		d = buf;
	}
	for (int64_t r = 0; r < rows; r++) {
		const float *dr = d + r * p->units;
		float *o = dx[0] + r * p->in;
		for (int64_t i = 0; i < p->in; i++) {
			const float *kr = k + i * p->units;
			float acc = 0.0f;
			for (int64_t u = 0; u < p->units; u++)
				acc += dr[u] * kr[u];
			o[i] += acc;
		}
	}
}

void cnnviz__dense_backward(const struct cnnviz__layer *l,
			    const struct cnnviz__io *io, const float *dy,
			    float *const *dx)
{
	cnnviz__dense_backward_impl(l, io, dy, dx, 0);
}

double cnnviz__dense_preact_unit(const struct cnnviz__layer *l,
				 const float *x, int64_t unit)
{
	const struct dense *p = l->p;
	const float *k = l->w[p->w_kernel].data;
	int64_t r = unit / p->units, u = unit % p->units;
	double acc = p->w_bias >= 0 ? l->w[p->w_bias].data[u] : 0.0;
	for (int64_t i = 0; i < p->in; i++)
		acc += (double)x[r * p->in + i] * k[i * p->units + u];
	return acc;
}
