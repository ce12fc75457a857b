/*
 * Input-space explanations for cnnviz_cam(): occlusion (forward only) and
 * the gradient attributions saliency, SmoothGrad, Integrated Gradients and
 * guided backprop. Every batch of the explainer carries several perturbed
 * copies of the sample, so n noisy samples or m path steps cost about
 * n / max_batch runs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"

struct geom {
	int slot;              /* model input number */
	int64_t h, w, c, sy, sx, sc;
	size_t n;              /* floats of one sample */
};

enum reduce { MAX_ABS, SUM_ABS, SUM, L2 };

static int geom_of(struct cnnviz__cam_call *c, struct geom *g)
{
	struct cnnviz_layer_info info;
	cnnviz_model_layer(c->ex->m, c->layer, &info);
	for (g->slot = 0; g->slot < cnnviz_model_input_count(c->ex->m); g->slot++)
		if (cnnviz_model_input_layer(c->ex->m, g->slot) == c->layer)
			break;
	cnnviz__ex_spatial(c->ex, c->layer, &g->h, &g->w, &g->c, &g->sy,
			   &g->sx, &g->sc);
	g->n = c->ex->in_count[g->slot];
	return CNNVIZ_OK;
}

static enum reduce reduce_mode(const cnnviz_options *o, enum reduce def)
{
	const char *v = cnnviz__opt_str(o, "input_reduce", NULL);
	if (!v)
		return def;
	if (!strcmp(v, "sum_abs"))
		return SUM_ABS;
	if (!strcmp(v, "sum"))
		return SUM;
	if (!strcmp(v, "l2"))
		return L2;
	return MAX_ABS;
}

/* map (h,w) = the channels of x (one sample, double) reduced. */
static void reduce(const struct geom *g, const double *x, enum reduce r,
		   float *map)
{
	for (int64_t i = 0; i < g->h; i++)
		for (int64_t j = 0; j < g->w; j++) {
			double s = 0.0;
			for (int64_t k = 0; k < g->c; k++) {
				double v = x[i * g->sy + j * g->sx + k * g->sc];
				switch (r) {
				case MAX_ABS:
					s = fabs(v) > s ? fabs(v) : s;
					break;
				case SUM_ABS:
					s += fabs(v);
					break;
				case SUM:
					s += v;
					break;
				case L2:
					s += v * v;
					break;
				}
			}
			map[i * g->w + j] = (float)(r == L2 ? sqrt(s) : s);
		}
}

/* f(x) of the caller's sample; also leaves it in sample 0. */
static int score_of_input(struct cnnviz__cam_call *c, double *f)
{
	int rc;
	cnnviz__ex_fill(c->ex, c->inputs, 1);
	if ((rc = cnnviz__ex_forward(c->ex, 1, c->err)))
		return rc;
	*f = c->ex->scores[0];
	c->info->score = *f;
	return CNNVIZ_OK;
}

/* --------------------------------------------------------------- occlusion */

static int occlusion(struct cnnviz__cam_call *c, const struct geom *g)
{
	cnnviz_explainer *ex = c->ex;
	int64_t side = g->h < g->w ? g->h : g->w;
	int64_t patch = cnnviz__opt_int(c->opts, "occlusion_patch", 0);
	if (patch <= 0)
		patch = side / 8 > 1 ? side / 8 : 1;
	int64_t stride = cnnviz__opt_int(c->opts, "occlusion_stride", 0);
	if (stride <= 0)
		stride = patch / 2 > 1 ? patch / 2 : 1;
	float base = (float)cnnviz__opt_float(c->opts, "occlusion_baseline", 0.0);
	double fx;
	int rc;
	if ((rc = score_of_input(c, &fx)))
		return rc;
	/* patch origins: 0, stride, ... until a patch reaches the far edge */
	int64_t ny = 1, nx = 1;
	while ((ny - 1) * stride + patch < g->h)
		ny++;
	while ((nx - 1) * stride + patch < g->w)
		nx++;
	double *sum = calloc((size_t)(2 * g->h * g->w), sizeof *sum);
	if (!sum)
		return cnnviz__fail(c->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	double *cnt = sum + g->h * g->w;
	int64_t total = ny * nx, runs = 1;
	for (int64_t p0 = 0; p0 < total; p0 += ex->max_batch) {
		int64_t nb = total - p0 < ex->max_batch ? total - p0 : ex->max_batch;
		cnnviz__ex_fill(ex, c->inputs, nb);
		for (int64_t b = 0; b < nb; b++) {
			int64_t y0 = (p0 + b) / nx * stride, x0 = (p0 + b) % nx * stride;
			float *x = ex->inputs[g->slot] + b * (int64_t)g->n;
			for (int64_t i = y0; i < y0 + patch && i < g->h; i++)
				for (int64_t j = x0; j < x0 + patch && j < g->w; j++)
					for (int64_t k = 0; k < g->c; k++)
						x[i * g->sy + j * g->sx + k * g->sc] = base;
		}
		if ((rc = cnnviz__ex_forward(ex, nb, c->err)))
			break;
		runs += nb;
		for (int64_t b = 0; b < nb; b++) {
			int64_t y0 = (p0 + b) / nx * stride, x0 = (p0 + b) % nx * stride;
			double drop = fx - ex->scores[b];
			for (int64_t i = y0; i < y0 + patch && i < g->h; i++)
				for (int64_t j = x0; j < x0 + patch && j < g->w; j++) {
					sum[i * g->w + j] += drop;
					cnt[i * g->w + j] += 1.0;
				}
		}
	}
	for (int64_t p = 0; !rc && p < g->h * g->w; p++)
		c->map[p] = cnt[p] > 0.0 ? (float)(sum[p] / cnt[p]) : 0.0f;
	c->info->forward_runs = runs;
	free(sum);
	return rc;
}

/* --------------------------------------------------------- gradient paths */

/* The perturbed copies of the sample a gradient method averages over. */
struct path {
	int64_t n_samples;
	/* smoothgrad */
	double sigma;
	struct cnnviz__rng rng;
	/* ig: the points baseline + (a0 + k * da) (x - baseline) */
	float baseline;
	double a0, da;
};

static void make_noisy(struct path *p, const float *x0, float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = x0[i] + (float)(p->sigma * cnnviz__rng_normal(&p->rng));
}

static void make_ig(const struct path *p, int64_t k, const float *x0,
		    float *x, size_t n)
{
	double a = p->a0 + (double)k * p->da;
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(p->baseline + a * ((double)x0[i] - p->baseline));
}

/* acc (n) += the input gradients of p's samples (the mean is the
   caller's: it divides by n_samples). */
static int accumulate(struct cnnviz__cam_call *c, const struct geom *g,
		      struct path *p, int ig, double *acc, int64_t *runs)
{
	cnnviz_explainer *ex = c->ex;
	const float *x0 = c->inputs[g->slot];
	int rc = CNNVIZ_OK;
	int in_layer = c->layer;
	for (int64_t k0 = 0; k0 < p->n_samples; k0 += ex->max_batch) {
		int64_t nb = p->n_samples - k0 < ex->max_batch ? p->n_samples - k0
							       : ex->max_batch;
		cnnviz__ex_fill(ex, c->inputs, nb);
		for (int64_t b = 0; b < nb; b++) {
			float *x = ex->inputs[g->slot] + b * (int64_t)g->n;
			if (ig)
				make_ig(p, k0 + b, x0, x, g->n);
			else
				make_noisy(p, x0, x, g->n);
		}
		if ((rc = cnnviz__ex_forward(ex, nb, c->err)) ||
		    (rc = cnnviz__ex_backward(ex, c->err)))
			return rc;
		*runs += nb;
		const float *gr = ex->grad[in_layer];
		for (int64_t b = 0; b < nb; b++)
			for (size_t i = 0; i < g->n; i++)
				acc[i] += gr[b * (int64_t)g->n + i];
	}
	return rc;
}

/* Completeness: |sum of attributions - (f(x) - f(x'))| / |f(x) - f(x')|. */
static double ig_attributions(const struct geom *g, const float *x0, float base,
			      const double *ends, const double *inner,
			      int64_t m, double delta, double *attr, double *sum)
{
	*sum = 0.0;
	for (size_t i = 0; i < g->n; i++) {
		attr[i] = ((double)x0[i] - base) * (0.5 * ends[i] + inner[i]) /
			  (double)m;
		*sum += attr[i];
	}
	return fabs(*sum - delta) / (fabs(delta) > 1e-12 ? fabs(delta) : 1e-12);
}

/*
 * Integrated Gradients by the trapezoid rule on m intervals of the
 * straight path from the baseline. "ig_steps" 0 (default) adapts: m = 16,
 * doubled (reusing every earlier point) until the completeness error is
 * at most 1% or m reaches IG_MAX_STEPS.
 */
#define IG_MAX_STEPS 256

static int integrated_gradients(struct cnnviz__cam_call *c, const struct geom *g,
				double fx, double *attr, int64_t *runs)
{
	cnnviz_explainer *ex = c->ex;
	const float *x0 = c->inputs[g->slot];
	int64_t fixed = cnnviz__opt_int(c->opts, "ig_steps", 0);
	int64_t m = fixed > 0 ? fixed : 16;
	struct path p = {0};
	double sum, err;
	int rc;
	p.baseline = (float)cnnviz__opt_float(c->opts, "ig_baseline", 0.0);
	double *ends = calloc(2 * g->n, sizeof *ends), *inner = ends + g->n;
	if (!ends)
		return cnnviz__fail(c->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	/* f(baseline) */
	cnnviz__ex_fill(ex, c->inputs, 1);
	for (size_t i = 0; i < g->n; i++)
		ex->inputs[g->slot][i] = p.baseline;
	if ((rc = cnnviz__ex_forward(ex, 1, c->err)))
		goto out;
	double delta = fx - ex->scores[0];
	(*runs)++;
	/* the two ends, then the m - 1 inner points */
	p.n_samples = 2, p.a0 = 0.0, p.da = 1.0;
	if ((rc = accumulate(c, g, &p, 1, ends, runs)))
		goto out;
	p.n_samples = m - 1, p.a0 = 1.0 / (double)m, p.da = 1.0 / (double)m;
	if (m > 1 && (rc = accumulate(c, g, &p, 1, inner, runs)))
		goto out;
	err = ig_attributions(g, x0, p.baseline, ends, inner, m, delta, attr, &sum);
	while (!fixed && err > 0.01 && m < IG_MAX_STEPS) {
		/* the midpoints of the current intervals */
		p.n_samples = m, p.a0 = 0.5 / (double)m, p.da = 1.0 / (double)m;
		if ((rc = accumulate(c, g, &p, 1, inner, runs)))
			goto out;
		m *= 2;
		err = ig_attributions(g, x0, p.baseline, ends, inner, m, delta, attr, &sum);
	}
	reduce(g, attr, reduce_mode(c->opts, SUM), c->map);
	c->info->ig_sum = sum;
	c->info->ig_delta = delta;
	c->info->ig_error = err;
	c->info->ig_steps = m;
out:
	free(ends);
	return rc;
}

static int gradients(struct cnnviz__cam_call *c, const struct geom *g,
		     const char *m)
{
	cnnviz_explainer *ex = c->ex;
	double fx;
	int64_t runs = 1;
	int rc;
	double *acc = calloc(g->n, sizeof *acc);
	if (!acc)
		return cnnviz__fail(c->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	const float *x0 = c->inputs[g->slot];

	if ((rc = score_of_input(c, &fx)))
		goto out;
	if (!strcmp(m, "saliency") || !strcmp(m, "guided_backprop")) {
		ex->guided = m[0] == 'g';
		if ((rc = cnnviz__ex_backward(ex, c->err)))
			goto out;
		for (size_t i = 0; i < g->n; i++)
			acc[i] = ex->grad[c->layer][i];
		reduce(g, acc, reduce_mode(c->opts, MAX_ABS), c->map);
	} else if (!strcmp(m, "smoothgrad")) {
		struct path p = {0};
		float lo = x0[0], hi = x0[0];
		for (size_t i = 1; i < g->n; i++) {
			lo = x0[i] < lo ? x0[i] : lo;
			hi = x0[i] > hi ? x0[i] : hi;
		}
		double frac = cnnviz__opt_float(c->opts, "smoothgrad_sigma", 0.15);
		p.n_samples = cnnviz__opt_int(c->opts, "smoothgrad_samples", 25);
		p.sigma = frac * (hi > lo ? (double)hi - lo : 1.0);
		p.rng.s = (uint64_t)cnnviz__opt_int(c->opts, "seed", 0);
		if ((rc = accumulate(c, g, &p, 0, acc, &runs)))
			goto out;
		for (size_t i = 0; i < g->n; i++)
			acc[i] /= (double)p.n_samples;
		reduce(g, acc, reduce_mode(c->opts, MAX_ABS), c->map);
	} else {
		rc = integrated_gradients(c, g, fx, acc, &runs);
	}
	c->info->forward_runs = runs;
out:
	ex->guided = 0;
	free(acc);
	return rc;
}

int cnnviz__attrib(struct cnnviz__cam_call *c)
{
	struct geom g;
	geom_of(c, &g);
	if (!strcmp(c->method, "occlusion"))
		return occlusion(c, &g);
	return gradients(c, &g, c->method);
}
