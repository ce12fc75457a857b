/*
 * Checks on explanations: the cascading model-parameter randomisation
 * test and the deletion / insertion / average-drop faithfulness scores.
 *
 * The randomisation needs weights it may overwrite, and a loaded model is
 * immutable and may be shared: the test opens its own copy of the model
 * from the file (cheaper and safer than deep-copying a model whose layers
 * point into its arenas), shuffles that copy's weight arrays in place and
 * re-runs each layer's finish() so derived arrays (folded BN, converted
 * kernels) follow.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "kernels.h"
#include "model.h"

/* ------------------------------------------------------------- Spearman */

/* qsort has no context argument: the keys travel with the indices. */
struct keyed {
	float k;
	int64_t i;
};

static int cmp_asc(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	return x->i < y->i ? -1 : 1;
}

static int cmp_desc(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	if (x->k != y->k)
		return x->k > y->k ? -1 : 1;
	return x->i < y->i ? -1 : 1;
}

/* Ranks (1..n, ties averaged) of v into r; kv is n scratch. */
static void ranks(const float *v, int64_t n, struct keyed *kv, double *r)
{
	for (int64_t i = 0; i < n; i++)
		kv[i] = (struct keyed){v[i], i};
	qsort(kv, (size_t)n, sizeof *kv, cmp_asc);
	for (int64_t i = 0; i < n;) {
		int64_t j = i;
		while (j + 1 < n && kv[j + 1].k == kv[i].k)
			j++;
		double avg = 0.5 * (double)(i + j) + 1.0;
		for (int64_t k = i; k <= j; k++)
			r[kv[k].i] = avg;
		i = j + 1;
	}
}

/* Pearson correlation of the ranks; 0 when either side is constant. */
static double spearman(const float *a, const float *b, int64_t n,
		       struct keyed *idx, double *ra, double *rb)
{
	ranks(a, n, idx, ra);
	ranks(b, n, idx, rb);
	double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
	for (int64_t i = 0; i < n; i++) {
		ma += ra[i];
		mb += rb[i];
	}
	ma /= (double)n;
	mb /= (double)n;
	for (int64_t i = 0; i < n; i++) {
		sab += (ra[i] - ma) * (rb[i] - mb);
		saa += (ra[i] - ma) * (ra[i] - ma);
		sbb += (rb[i] - mb) * (rb[i] - mb);
	}
	return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0.0;
}

/* --------------------------------------------------- randomisation test */

static void shuffle(float *x, size_t n, struct cnnviz__rng *r)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(cnnviz__rng_uniform(r) * (double)i);
		float t = x[i - 1];
		x[i - 1] = x[j];
		x[j] = t;
	}
}

/* Shuffles layer i's weights, then re-finishes it and its shared calls. */
static int randomise(struct cnnviz_model *m, int i, struct cnnviz__rng *r,
		     struct cnnviz_error *err)
{
	struct cnnviz__layer *l = m->layers[i];
	for (int k = 0; k < l->n_w; k++)
		if (l->w[k].data)
			shuffle(l->w[k].data, cnnviz__shape_count(&l->w[k].shape), r);
	for (int j = i; j < m->n_layers; j++) {
		struct cnnviz__layer *c = m->layers[j];
		if ((j != i && c->share_of != i) || !c->op || !c->op->finish ||
		    c->alias_of >= 0)
			continue;
		struct cnnviz__setup s = {m, c, NULL, m->keras_major,
					  m->theano_kernels, err};
		int rc = c->op->finish(&s);
		if (rc)
			return rc;
	}
	return CNNVIZ_OK;
}

static int has_weights(const struct cnnviz__layer *l)
{
	if (l->share_of >= 0 || l->alias_of >= 0)
		return 0;
	for (int k = 0; k < l->n_w; k++)
		if (l->w[k].data)
			return 1;
	return 0;
}

int cnnviz_sanity_cascade(const char *path, const cnnviz_options *model_opts,
			  const char *method, int layer,
			  const float *const *inputs,
			  const struct cnnviz_target *target,
			  const cnnviz_options *opts,
			  struct cnnviz_sanity_step *steps, int max_steps,
			  int *n_steps, struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!path || !inputs || !steps || !n_steps || max_steps < 0)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "NULL argument");
	*n_steps = 0;
	cnnviz_model *m = NULL;
	cnnviz_explainer *ex = NULL;
	float *map0 = NULL, *map = NULL;
	struct keyed *idx = NULL;
	double *ra = NULL;
	int64_t h, w;
	int rc = cnnviz_model_open(path, model_opts, &m, err);
	if (!rc)
		rc = cnnviz_explainer_new(m, 4, opts, &ex, err);
	if (!rc)
		rc = cnnviz_cam_size(ex, method, layer, &h, &w, err);
	if (rc)
		goto out;
	size_t n = (size_t)(h * w);
	map0 = malloc(n * sizeof *map0);
	map = malloc(n * sizeof *map);
	idx = malloc(n * sizeof *idx);
	ra = malloc(2 * n * sizeof *ra);
	if (!map0 || !map || !idx || !ra) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if ((rc = cnnviz_cam(ex, method, layer, inputs, target, opts, map0, n,
			     NULL, err)))
		goto out;
	struct cnnviz__rng r = {(uint64_t)cnnviz__opt_int(opts, "seed", 0) ^
				0x5a17e5eedULL};
	for (int i = m->n_layers - 1; i >= 0 && *n_steps < max_steps; i--) {
		if (!has_weights(m->layers[i]))
			continue;
		if ((rc = randomise(m, i, &r, err)) ||
		    (rc = cnnviz_cam(ex, method, layer, inputs, target, opts, map,
				     n, NULL, err)))
			goto out;
		steps[*n_steps].layer = i;
		steps[*n_steps].spearman = spearman(map0, map, (int64_t)n, idx,
						    ra, ra + n);
		(*n_steps)++;
	}
out:
	free(map0);
	free(map);
	free(idx);
	free(ra);
	cnnviz_explainer_free(ex);
	cnnviz_model_free(m);
	return rc;
}

/* ---------------------------------------------------------- faithfulness */

struct curves {
	cnnviz_explainer *ex;
	const float *const *inputs;
	int slot;
	int64_t H, W, C, sy, sx, sc;
	int64_t steps;
	float baseline;
	int64_t *order; /* pixels by decreasing map value */
	struct keyed *kv;
	struct cnnviz_error *err;
};

/* Sets pixel p of sample x (all channels) to v or to the original. */
static void set_pixel(const struct curves *c, float *x, int64_t p,
		      const float *orig)
{
	int64_t i = p / c->W, j = p % c->W;
	for (int64_t k = 0; k < c->C; k++) {
		int64_t at = i * c->sy + j * c->sx + k * c->sc;
		x[at] = orig ? orig[at] : c->baseline;
	}
}

/* Area under f over steps 0..n of deleting (or inserting) by `order`. */
static int curve(struct curves *c, int insert, double *area)
{
	cnnviz_explainer *ex = c->ex;
	const int64_t hw = c->H * c->W, per = (hw + c->steps - 1) / c->steps;
	const float *orig = c->inputs[c->slot];
	double prev = 0.0, sum = 0.0;
	int rc;
	for (int64_t k0 = 0; k0 <= c->steps; k0 += ex->max_batch) {
		int64_t nb = c->steps + 1 - k0 < ex->max_batch ? c->steps + 1 - k0
							      : ex->max_batch;
		cnnviz__ex_fill(ex, c->inputs, nb);
		for (int64_t b = 0; b < nb; b++) {
			float *x = ex->inputs[c->slot] + b * (int64_t)ex->in_count[c->slot];
			int64_t done = (k0 + b) * per < hw ? (k0 + b) * per : hw;
			if (insert)
				for (int64_t p = 0; p < hw; p++)
					set_pixel(c, x, p, NULL);
			for (int64_t q = 0; q < done; q++)
				set_pixel(c, x, c->order[q], insert ? orig : NULL);
		}
		if ((rc = cnnviz__ex_forward(ex, nb, c->err)))
			return rc;
		for (int64_t b = 0; b < nb; b++) {
			double f = ex->scores[b];
			if (k0 + b > 0)
				sum += 0.5 * (prev + f);
			prev = f;
		}
	}
	*area = sum / (double)c->steps;
	return CNNVIZ_OK;
}

/* The three scores of one map already at input size (up: H*W). */
static int scores(struct curves *c, const float *up, double fx, double *del,
		  double *ins, double *drop)
{
	const int64_t hw = c->H * c->W;
	int rc;
	for (int64_t p = 0; p < hw; p++)
		c->kv[p] = (struct keyed){up[p], p};
	qsort(c->kv, (size_t)hw, sizeof *c->kv, cmp_desc);
	for (int64_t p = 0; p < hw; p++)
		c->order[p] = c->kv[p].i;
	if ((rc = curve(c, 0, del)) || (rc = curve(c, 1, ins)))
		return rc;
	/* average drop: the input times the map (ReLU, / max) */
	float mx = 0.0f;
	for (int64_t p = 0; p < hw; p++)
		mx = up[p] > mx ? up[p] : mx;
	cnnviz__ex_fill(c->ex, c->inputs, 1);
	float *x = c->ex->inputs[c->slot];
	for (int64_t p = 0; p < hw; p++) {
		float m = mx > 0.0f && up[p] > 0.0f ? up[p] / mx : 0.0f;
		for (int64_t k = 0; k < c->C; k++)
			x[(p / c->W) * c->sy + (p % c->W) * c->sx + k * c->sc] *= m;
	}
	if ((rc = cnnviz__ex_forward(c->ex, 1, c->err)))
		return rc;
	double o = c->ex->scores[0];
	*drop = fx > 0.0 ? 100.0 * (fx - o > 0.0 ? fx - o : 0.0) / fx : NAN;
	return CNNVIZ_OK;
}

int cnnviz_faithfulness(cnnviz_explainer *ex, const float *const *inputs,
			const struct cnnviz_target *target, const float *map,
			int64_t height, int64_t width,
			const cnnviz_options *opts,
			struct cnnviz_faithfulness *out,
			struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!ex || !inputs || !map || !out || height < 1 || width < 1)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "NULL argument or empty map");
	struct curves c = {ex, inputs, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, err};
	int li = cnnviz_model_input_layer(ex->m, 0), rc;
	if (cnnviz__ex_spatial(ex, li, &c.H, &c.W, &c.C, &c.sy, &c.sx, &c.sc))
		return cnnviz__fail(err, CNNVIZ_ERR_UNSUPPORTED, NULL,
				    "faithfulness needs an image-like first model input");
	c.steps = cnnviz__opt_int(opts, "eval_steps", 32);
	c.baseline = (float)cnnviz__opt_float(opts, "eval_baseline", 0.0);
	int n_random = (int)cnnviz__opt_int(opts, "eval_random", 5);
	const int64_t hw = c.H * c.W;
	float *up = malloc((size_t)(2 * hw) * sizeof *up);
	c.order = malloc((size_t)hw * sizeof *c.order);
	c.kv = malloc((size_t)hw * sizeof *c.kv);
	if (!up || !c.order || !c.kv) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if ((rc = cnnviz__ex_prepare(ex, target, err)))
		goto out;
	cnnviz__ex_fill(ex, inputs, 1);
	if ((rc = cnnviz__ex_forward(ex, 1, err)))
		goto out;
	double fx = ex->scores[0];
	out->score = fx;
	float *tmp = up + hw;
	memcpy(tmp, map, (size_t)(height * width) * sizeof *tmp);
	for (int64_t p = 0; p < height * width; p++)
		if (!isfinite(tmp[p]))
			tmp[p] = 0.0f;
	cnnviz__resize_bilinear(tmp, height, width, 1, up, c.H, c.W);
	if ((rc = scores(&c, up, fx, &out->deletion, &out->insertion,
			 &out->avg_drop)))
		goto out;
	struct cnnviz__rng r = {(uint64_t)cnnviz__opt_int(opts, "seed", 0) ^ 0xfa17ULL};
	double d = 0, in = 0, dr = 0;
	for (int k = 0; k < n_random; k++) {
		double a, b, e;
		for (int64_t p = 0; p < hw; p++)
			up[p] = (float)cnnviz__rng_uniform(&r);
		if ((rc = scores(&c, up, fx, &a, &b, &e)))
			goto out;
		d += a;
		in += b;
		dr += e;
	}
	out->random_deletion = n_random ? d / n_random : NAN;
	out->random_insertion = n_random ? in / n_random : NAN;
	out->random_avg_drop = n_random ? dr / n_random : NAN;
out:
	free(up);
	free(c.order);
	free(c.kv);
	return rc;
}
