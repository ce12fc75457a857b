/*
 * The backward executor and the explainer handle.
 *
 * A retaining session keeps every layer's forward output; the explainer
 * adds one gradient buffer per stored buffer (aliases -- containers,
 * Dropout, Reshape, InputLayer entries -- share their root's, as they
 * share its data) and the scratch the largest layer's backward needs, all
 * allocated at creation. A backward seeds the target unit(s), then walks
 * the layers from the target down, skipping those that do not lead to it;
 * each op ADDS its input gradients, so a tensor read by several layers
 * collects the sum. channels_first layers are transposed around the op
 * exactly as the forward executor does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "layers/grad.h"

static const struct cnnviz__layer *layer(const cnnviz_explainer *ex, int i)
{
	return cnnviz__model_layer(ex->m, i);
}

const struct cnnviz__shape *cnnviz__ex_shape(const cnnviz_explainer *ex,
					     int i)
{
	return &layer(ex, i)->out;
}

static size_t count_of(const cnnviz_explainer *ex, int i)
{
	return cnnviz__shape_count(&layer(ex, i)->out);
}

int cnnviz__ex_spatial(const cnnviz_explainer *ex, int i, int64_t *h,
		       int64_t *w, int64_t *c, int64_t *sy, int64_t *sx,
		       int64_t *sc)
{
	struct cnnviz_layer_info info;
	const struct cnnviz__shape *s = cnnviz__ex_shape(ex, i);
	if (s->rank != 3 || cnnviz_model_layer(ex->m, i, &info))
		return -1;
	if (info.flags & CNNVIZ_LAYER_CHANNELS_FIRST) {
		*c = s->d[0], *h = s->d[1], *w = s->d[2];
		*sc = *h * *w, *sy = *w, *sx = 1;
	} else {
		*h = s->d[0], *w = s->d[1], *c = s->d[2];
		*sy = *w * *c, *sx = *c, *sc = 1;
	}
	return 0;
}

/* -------------------------------------------------------------- creation */

void cnnviz_explainer_free(cnnviz_explainer *ex)
{
	if (!ex)
		return;
	cnnviz_session_free(ex->s);
	free(ex->root);
	free(ex->grad);
	free(ex->garena);
	free(ex->need);
	free(ex->scratch);
	free(ex->ins);
	free(ex->dx);
	if (ex->inputs)
		for (int i = 0; i < cnnviz_model_input_count(ex->m); i++)
			free(ex->inputs[i]);
	free(ex->inputs);
	free(ex->in_ptrs);
	free(ex->in_count);
	free(ex->scores);
	free(ex);
}

/* Backward scratch of one layer for max_batch, transposes included. */
static int layer_scratch(const struct cnnviz__layer *l, int64_t batch,
			 size_t *out)
{
	size_t n, cf = 0;
	if (cnnviz__mul_size(l->bscratch_per_sample, (size_t)batch, &n) ||
	    cnnviz__add_size(n, l->bscratch_fixed, &n))
		return -1;
	if (l->channels_first) {
		/* x and dx per input, y and dy */
		for (int k = 0; k < l->n_in; k++)
			cf += 2 * cnnviz__shape_count(&l->op_in[k]);
		cf += 2 * cnnviz__shape_count(&l->op_out);
		if (cnnviz__mul_size(cf, (size_t)batch, &cf) ||
		    cnnviz__add_size(n, cf, &n))
			return -1;
	}
	*out = n;
	return 0;
}

static int alloc_buffers(cnnviz_explainer *ex, struct cnnviz_error *err)
{
	int n = ex->n_layers, max_in = 1;
	size_t total = 0, scratch = 0;
	ex->root = malloc((size_t)n * sizeof *ex->root);
	ex->grad = calloc((size_t)n, sizeof *ex->grad);
	ex->need = calloc((size_t)n, 1);
	size_t *off = calloc((size_t)n, sizeof *off);
	if (!ex->root || !ex->grad || !ex->need || !off) {
		free(off);
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	}
	for (int i = 0; i < n; i++) {
		const struct cnnviz__layer *l = layer(ex, i);
		ex->root[i] = cnnviz__session_root(ex->s, i);
		if (l->n_in > max_in)
			max_in = l->n_in;
		if (ex->root[i] != i)
			continue;
		size_t c, sc;
		if (cnnviz__mul_size(count_of(ex, i), (size_t)ex->max_batch, &c) ||
		    cnnviz__add_size(total, (c + 15) / 16 * 16, &total) ||
		    layer_scratch(l, ex->max_batch, &sc)) {
			free(off);
			return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, l->name,
					    "gradient buffers for batch %lld are too large",
					    (long long)ex->max_batch);
		}
		off[i] = total - (c + 15) / 16 * 16;
		if (sc > scratch)
			scratch = sc;
	}
	ex->garena_floats = total;
	ex->garena = malloc((total ? total : 1) * sizeof(float));
	ex->scratch_floats = scratch;
	ex->scratch = malloc((scratch ? scratch : 1) * sizeof(float));
	ex->ins = calloc((size_t)max_in, sizeof *ex->ins);
	ex->dx = calloc((size_t)max_in, sizeof *ex->dx);
	ex->scores = calloc((size_t)ex->max_batch, sizeof *ex->scores);
	if (!ex->garena || !ex->scratch || !ex->ins || !ex->dx || !ex->scores) {
		free(off);
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				    "out of memory for %zu gradient floats",
				    total + scratch);
	}
	for (int i = 0; i < n; i++)
		ex->grad[i] = ex->garena + off[ex->root[i]];
	free(off);
	return CNNVIZ_OK;
}

static int alloc_inputs(cnnviz_explainer *ex, struct cnnviz_error *err)
{
	int n = cnnviz_model_input_count(ex->m);
	ex->inputs = calloc((size_t)n, sizeof *ex->inputs);
	ex->in_ptrs = calloc((size_t)n, sizeof *ex->in_ptrs);
	ex->in_count = calloc((size_t)n, sizeof *ex->in_count);
	if (!ex->inputs || !ex->in_ptrs || !ex->in_count)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	for (int i = 0; i < n; i++) {
		int li = cnnviz_model_input_layer(ex->m, i);
		size_t c;
		ex->in_count[i] = count_of(ex, li);
		if (cnnviz__mul_size(ex->in_count[i], (size_t)ex->max_batch, &c))
			return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, NULL, "input too large");
		ex->inputs[i] = malloc(c * sizeof(float));
		if (!ex->inputs[i])
			return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		ex->in_ptrs[i] = ex->inputs[i];
	}
	return CNNVIZ_OK;
}

int cnnviz_explainer_new(const cnnviz_model *model, int64_t max_batch,
			 const cnnviz_options *opts, cnnviz_explainer **out,
			 struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!model || !out || max_batch < 1)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "need a model, an output pointer and max_batch >= 1");
	*out = NULL;
	cnnviz_explainer *ex = calloc(1, sizeof *ex);
	if (!ex)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	ex->m = model;
	ex->max_batch = max_batch;
	ex->n_layers = cnnviz_model_layer_count(model);
	ex->logit = (int)cnnviz__opt_int(opts, "target_logit", 0);
	int rc = cnnviz__session_new_retaining(model, max_batch, opts, &ex->s, err);
	if (!rc)
		rc = alloc_buffers(ex, err);
	if (!rc)
		rc = alloc_inputs(ex, err);
	if (rc) {
		cnnviz_explainer_free(ex);
		return rc;
	}
	*out = ex;
	return CNNVIZ_OK;
}

/* ---------------------------------------------------------------- target */

static int is_softmax(const struct cnnviz__layer *l, int *fused)
{
	extern const struct cnnviz__op cnnviz__op_softmax;
	*fused = 0;
	if (l->op == &cnnviz__op_softmax)
		return 1;
	const struct cnnviz__act *a = cnnviz__grad_layer_act(l, fused);
	return a && a->kind == CNNVIZ__ACT_SOFTMAX;
}

int cnnviz__ex_prepare(cnnviz_explainer *ex, const struct cnnviz_target *t,
		       struct cnnviz_error *err)
{
	if (!t)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "no target");
	int li = t->layer < 0 ? cnnviz_model_output_layer(ex->m, 0) : t->layer;
	if (li < 0 || li >= ex->n_layers)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "target layer %d is not a layer index", t->layer);
	int64_t n = (int64_t)count_of(ex, li);
	const struct cnnviz__layer *l = layer(ex, li);
	if (t->unit < 0 || t->unit >= n || t->minus >= n ||
	    (t->minus >= 0 && t->minus == t->unit))
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, l->name,
				    "target unit %lld (minus %lld): the output has %lld units",
				    (long long)t->unit, (long long)t->minus,
				    (long long)n);
	ex->t = (struct cnnviz__rtarget){ex->root[li], t->unit,
					  t->minus >= 0 ? t->minus : -1, 0, li};
	int fused;
	const struct cnnviz__layer *r = layer(ex, ex->t.layer);
	if (ex->logit && r->input_slot < 0 && is_softmax(r, &fused)) {
		if (fused)
			ex->t.preact = 1;
		else
			ex->t.layer = ex->root[r->in[0]];
	}
	return CNNVIZ_OK;
}

void cnnviz__ex_scores(cnnviz_explainer *ex)
{
	const struct cnnviz__rtarget *t = &ex->t;
	const struct cnnviz__layer *l = layer(ex, t->layer);
	const float *y = cnnviz__session_buffer(ex->s, t->layer);
	size_t n = count_of(ex, t->layer);
	for (int64_t b = 0; b < ex->batch; b++) {
		double v, w = 0.0;
		if (t->preact && !l->channels_first) {
			const float *x = cnnviz__session_buffer(ex->s, l->in[0]);
			size_t nin = cnnviz__shape_count(&l->op_in[0]);
			v = cnnviz__grad_preact_unit(l, x + b * nin, t->unit);
			if (t->minus >= 0)
				w = cnnviz__grad_preact_unit(l, x + b * nin, t->minus);
		} else if (t->preact) {
			v = NAN;
		} else {
			v = y[b * n + t->unit];
			if (t->minus >= 0)
				w = y[b * n + t->minus];
		}
		ex->scores[b] = v - w;
	}
}

int cnnviz__ex_forward(cnnviz_explainer *ex, int64_t batch,
		       struct cnnviz_error *err)
{
	ex->batch = 0;
	ex->backward_done = 0;
	int rc = cnnviz_session_run(ex->s, ex->in_ptrs, batch, NULL, NULL, err);
	if (rc)
		return rc;
	ex->batch = batch;
	cnnviz__ex_scores(ex);
	return CNNVIZ_OK;
}

int cnnviz__ex_rerun_after(cnnviz_explainer *ex, int li)
{
	int rc = cnnviz__session_rerun(ex->s, li + 1);
	if (!rc)
		cnnviz__ex_scores(ex);
	ex->backward_done = 0;
	return rc;
}

/* -------------------------------------------------------------- backward */

/* (B,H,W,C) added into (B,C,H,W): cnnviz__to_hwc's way back. */
static void add_chw(const float *x, float *y, int64_t b, int64_t c, int64_t hw)
{
	for (int64_t n = 0; n < b; n++, x += c * hw, y += c * hw)
		for (int64_t p = 0; p < hw; p++)
			for (int64_t ch = 0; ch < c; ch++)
				y[ch * hw + p] += x[p * c + ch];
}

static void call_backward(cnnviz_explainer *ex, const struct cnnviz__layer *l,
			  const struct cnnviz__io *io, const float *dy,
			  float *const *dx, int preact)
{
	if (preact)
		cnnviz__grad_backward_preact(l, io, dy, dx);
	else
		l->op->backward(l, io, dy, dx);
}

static void backward_channels_first(cnnviz_explainer *ex,
				    const struct cnnviz__layer *l, int preact)
{
	const int64_t B = ex->batch;
	size_t own = l->bscratch_fixed + l->bscratch_per_sample * (size_t)B;
	float *t = ex->scratch + own;
	const struct cnnviz__shape *o = &l->op_out;
	size_t on = cnnviz__shape_count(o) * (size_t)B;
	const float *y = cnnviz__session_buffer(ex->s, l->index);
	const float *dy = ex->grad[l->index];
	float **dxp = ex->dx;

	for (int k = 0; k < l->n_in; k++) {
		const struct cnnviz__shape *sh = &l->op_in[k];
		size_t n = cnnviz__shape_count(sh) * (size_t)B;
		cnnviz__to_hwc(cnnviz__session_buffer(ex->s, l->in[k]), t, B, sh->d[2],
		       sh->d[0] * sh->d[1]);
		ex->ins[k] = t;
		t += n;
		dxp[k] = t;
		memset(t, 0, n * sizeof *t);
		t += n;
	}
	if (o->rank == 3) {
		cnnviz__to_hwc(y, t, B, o->d[2], o->d[0] * o->d[1]);
		y = t;
		t += on;
		cnnviz__to_hwc(dy, t, B, o->d[2], o->d[0] * o->d[1]);
		dy = t;
	}
	struct cnnviz__io io = {.batch = B, .in = ex->ins, .out = (float *)y,
				.scratch = ex->scratch};
	call_backward(ex, l, &io, dy, dxp, preact);
	for (int k = 0; k < l->n_in; k++) {
		const struct cnnviz__shape *sh = &l->op_in[k];
		add_chw(dxp[k], ex->grad[l->in[k]], B, sh->d[2], sh->d[0] * sh->d[1]);
	}
}

static int relu_like(const struct cnnviz__layer *l)
{
	int fused;
	const struct cnnviz__act *a = cnnviz__grad_layer_act(l, &fused);
	return a && (a->kind == CNNVIZ__ACT_RELU || a->kind == CNNVIZ__ACT_RELU6);
}

int cnnviz__ex_backward(cnnviz_explainer *ex, struct cnnviz_error *err)
{
	const struct cnnviz__rtarget *t = &ex->t;
	const int64_t B = ex->batch;
	if (B == 0)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "no forward run yet");
	memset(ex->need, 0, (size_t)ex->n_layers);
	ex->need[t->layer] = 1;
	for (int i = t->layer; i >= 0; i--) {
		const struct cnnviz__layer *l = layer(ex, i);
		if (!ex->need[i] || l->input_slot >= 0)
			continue;
		if (ex->root[i] != i) {
			ex->need[ex->root[i]] = 1;
			continue;
		}
		if (!l->op->backward)
			return cnnviz__fail(err, CNNVIZ_ERR_UNSUPPORTED, l->name,
					    "no backward pass for %s layers",
					    l->class_name);
		for (int k = 0; k < l->n_in; k++)
			ex->need[l->in[k]] = 1;
	}
	memset(ex->garena, 0, ex->garena_floats * sizeof *ex->garena);
	size_t n = count_of(ex, t->layer);
	for (int64_t b = 0; b < B; b++) {
		ex->grad[t->layer][b * (int64_t)n + t->unit] += 1.0f;
		if (t->minus >= 0)
			ex->grad[t->layer][b * (int64_t)n + t->minus] -= 1.0f;
	}
	for (int i = t->layer; i >= 0; i--) {
		const struct cnnviz__layer *l = layer(ex, i);
		if (!ex->need[i] || l->input_slot >= 0 || ex->root[i] != i)
			continue;
		int preact = t->preact && i == t->layer;
		float *dy = ex->grad[i];
		if (ex->guided && relu_like(l)) {
			size_t m = count_of(ex, i) * (size_t)B;
			for (size_t j = 0; j < m; j++)
				dy[j] = dy[j] > 0.0f ? dy[j] : 0.0f;
		}
		if (l->channels_first) {
			backward_channels_first(ex, l, preact);
			continue;
		}
		for (int k = 0; k < l->n_in; k++) {
			ex->ins[k] = cnnviz__session_buffer(ex->s, l->in[k]);
			ex->dx[k] = ex->grad[l->in[k]];
		}
		struct cnnviz__io io = {
			.batch = B,
			.in = ex->ins,
			.out = (float *)cnnviz__session_buffer(ex->s, i),
			.scratch = ex->scratch,
		};
		call_backward(ex, l, &io, dy, ex->dx, preact);
	}
	ex->backward_done = 1;
	return CNNVIZ_OK;
}

/* ------------------------------------------------------------ public API */

int cnnviz_explainer_run(cnnviz_explainer *ex, const float *const *inputs,
			 int64_t batch, const struct cnnviz_target *target,
			 struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!ex || !inputs || batch < 1 || batch > ex->max_batch)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "need an explainer, inputs and 1 <= batch <= %lld",
				    (long long)(ex ? ex->max_batch : 0));
	int rc = cnnviz__ex_prepare(ex, target, err);
	if (rc)
		return rc;
	for (int i = 0; i < cnnviz_model_input_count(ex->m); i++) {
		if (!inputs[i])
			return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "input %d is NULL", i);
		if (inputs[i] != ex->inputs[i])
			memcpy(ex->inputs[i], inputs[i],
			       ex->in_count[i] * (size_t)batch * sizeof(float));
	}
	rc = cnnviz__ex_forward(ex, batch, err);
	if (!rc)
		rc = cnnviz__ex_backward(ex, err);
	return rc;
}

static int tensor_of(const cnnviz_explainer *ex, int li, const float *data,
		     struct cnnviz_tensor *out)
{
	struct cnnviz_layer_info info;
	if (cnnviz_model_layer(ex->m, li, &info))
		return CNNVIZ_ERR_ARG;
	out->rank = info.rank;
	memcpy(out->shape, info.shape, sizeof out->shape);
	out->shape[0] = ex->batch;
	out->count = count_of(ex, li) * (size_t)ex->batch;
	out->data = data;
	return CNNVIZ_OK;
}

int cnnviz_explainer_activation(const cnnviz_explainer *ex, int li,
				struct cnnviz_tensor *out)
{
	if (!ex || !out || li < 0 || li >= ex->n_layers || !ex->batch)
		return CNNVIZ_ERR_ARG;
	return tensor_of(ex, li, cnnviz__session_buffer(ex->s, li), out);
}

int cnnviz_explainer_gradient(const cnnviz_explainer *ex, int li,
			      struct cnnviz_tensor *out)
{
	if (!ex || !out || li < 0 || li >= ex->n_layers || !ex->backward_done)
		return CNNVIZ_ERR_ARG;
	return tensor_of(ex, li, ex->grad[li], out);
}

double cnnviz_explainer_score(const cnnviz_explainer *ex, int64_t sample)
{
	if (!ex || sample < 0 || sample >= ex->batch)
		return NAN;
	return ex->scores[sample];
}

int cnnviz_gradient(const cnnviz_model *model, const float *input,
		    const struct cnnviz_target *target, int li,
		    const cnnviz_options *opts, float *out, size_t out_count,
		    struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!model || !input || !out || cnnviz_model_input_count(model) != 1)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "cnnviz_gradient needs a single-input model, an input and an output");
	if (li < 0)
		li = cnnviz_model_input_layer(model, 0);
	if (li >= cnnviz_model_layer_count(model))
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "layer %d out of range", li);
	cnnviz_explainer *ex = NULL;
	struct cnnviz_tensor g;
	int rc = cnnviz_explainer_new(model, 1, opts, &ex, err);
	if (!rc)
		rc = cnnviz_explainer_run(ex, &input, 1, target, err);
	if (!rc && cnnviz_explainer_gradient(ex, li, &g) == CNNVIZ_OK) {
		if (out_count < g.count)
			rc = cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
					  "output buffer holds %zu floats, the gradient has %zu",
					  out_count, g.count);
		else
			memcpy(out, g.data, g.count * sizeof *out);
	}
	cnnviz_explainer_free(ex);
	return rc;
}

/* ---------------------------------------------------------------- random */

static uint64_t next(struct cnnviz__rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double cnnviz__rng_uniform(struct cnnviz__rng *r)
{
	return (double)(next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double cnnviz__rng_normal(struct cnnviz__rng *r)
{
	/* Box-Muller; u1 in (0, 1] */
	double u1 = 1.0 - cnnviz__rng_uniform(r), u2 = cnnviz__rng_uniform(r);
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
