/*
 * Sessions: the memory plan and the executor.
 *
 * Every layer output lives in one arena. Layers that only relabel their
 * input (InputLayer, Dropout, Reshape, nested-model entries ...) share the
 * buffer of the layer that produced the data; the remaining buffers are
 * placed by liveness so that peak memory is about the largest set of
 * tensors alive at once. A run allocates nothing.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuse.h"
#include "model.h"

#define ALIGN_FLOATS 16 /* 64 bytes */

struct cnnviz_session {
	const struct cnnviz_model *m;
	int64_t max_batch;
	int64_t batch;   /* of the last run, 0 before */
	float *arena;
	float *scratch;
	size_t scratch_floats;
	int *root;       /* layer owning the storage each layer's output is in */
	size_t *offset;  /* per root: arena offset in floats (unfused) */
	size_t *foffset; /* the same for the fused schedule, NULL if none */
	struct cnnviz__fusion fusion;
	float **buf;     /* per layer, during a run */
	const float **ins;
	int max_in;
	int retain;      /* keep every output after the run (backward pass) */
	struct cnnviz__pool *pool;
	double *step_ms; /* option "profile": per layer, the last run's */
	int fused_run;   /* the last run used the fused schedule */
};

static int is_alias(const struct cnnviz__layer *l)
{
	return l->alias_of >= 0 ||
	       (l->op && (l->op->flags & CNNVIZ__OP_ALIAS) && !l->p &&
		l->input_slot < 0);
}

static size_t cf_floats(const struct cnnviz__layer *l)
{
	if (!l->channels_first)
		return 0;
	size_t n = cnnviz__shape_count(&l->op_out);
	for (int i = 0; i < l->n_in; i++)
		n += cnnviz__shape_count(&l->op_in[i]);
	return n;
}

static size_t align_up(size_t n)
{
	return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

struct interval {
	int layer;
	int first, last;
	size_t size, offset;
};

static int by_size_desc(const void *a, const void *b)
{
	const struct interval *x = a, *y = b;
	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return x->layer - y->layer;
}

/* Greedy placement: biggest first, at the lowest offset that fits. */
static size_t place(struct interval *iv, int n)
{
	qsort(iv, (size_t)n, sizeof *iv, by_size_desc);
	size_t total = 0;
	for (int i = 0; i < n; i++) {
		size_t off = 0;
		for (int moved = 1; moved;) {
			moved = 0;
			for (int j = 0; j < i; j++) {
				if (iv[j].last < iv[i].first || iv[i].last < iv[j].first)
					continue;
				if (off < iv[j].offset + iv[j].size &&
				    iv[j].offset < off + iv[i].size) {
					off = iv[j].offset + iv[j].size;
					moved = 1;
				}
			}
		}
		iv[i].offset = off;
		if (off + iv[i].size > total)
			total = off + iv[i].size;
	}
	return total;
}

void cnnviz_session_free(cnnviz_session *s)
{
	if (!s)
		return;
	free(s->arena);
	free(s->scratch);
	free(s->root);
	free(s->offset);
	free(s->foffset);
	cnnviz__fusion_free(&s->fusion);
	free(s->buf);
	free(s->ins);
	free(s->step_ms);
	cnnviz__pool_free(s->pool);
	free(s);
}

static size_t value_floats(const struct cnnviz_session *s, int layer)
{
	size_t per;
	if (cnnviz__mul_size(cnnviz__shape_count(&s->m->layers[layer]->out),
			     (size_t)s->max_batch, &per) ||
	    per > SIZE_MAX / 8)
		return SIZE_MAX;
	return align_up(per);
}

/* The layer whose output is input k of layer i in schedule f. */
static int read_from(const struct cnnviz_session *s,
		     const struct cnnviz__fusion *f, int i, int k)
{
	int p = s->m->layers[i]->in[k];
	return f && k == 0 && f->pad_folded[i] ? s->m->layers[p]->in[0] : p;
}

/*
 * Arena offsets of every buffer for one schedule (f NULL: unfused, where
 * hooks may look at any layer, aliases included, right after it ran).
 * A buffer lives from the step that writes it to the last step reading it.
 */
static int plan_offsets(struct cnnviz_session *s, const struct cnnviz__fusion *f,
			size_t *offset, size_t *total, struct cnnviz_error *err)
{
	const struct cnnviz_model *m = s->m;
	int n = m->n_layers;
	struct interval *iv = calloc((size_t)n, sizeof *iv);
	int *slot = malloc((size_t)n * sizeof *slot);
	int rc = CNNVIZ_OK, n_iv = 0;
	if (!iv || !slot) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++)
		slot[i] = -1;
	for (int i = 0; i < n; i++) {
		const struct cnnviz__layer *l = m->layers[i];
		if (s->root[i] != i || l->input_slot >= 0 || (f && f->skip[i]))
			continue;
		int v = f ? f->dest[i] : i;
		size_t size = value_floats(s, v);
		if (size == SIZE_MAX) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_LIMIT, l->name,
					  "batch %lld is too large", (long long)s->max_batch);
			goto out;
		}
		slot[v] = n_iv;
		iv[n_iv++] = (struct interval){v, i, i, size, 0};
	}
	for (int i = 0; i < n; i++) {
		const struct cnnviz__layer *l = m->layers[i];
		int reads_at = i;
		if (f && f->skip[i])
			continue; /* folded: its reads happen at the chain's start */
		if (s->root[i] != i && f)
			continue; /* aliases read nothing without hooks */
		for (int k = 0; k < l->n_in; k++) {
			int r = slot[s->root[read_from(s, f, i, k)]];
			if (r >= 0 && iv[r].last < reads_at)
				iv[r].last = reads_at;
		}
		int r = slot[s->root[i]];
		if (!f && r >= 0 && iv[r].last < i)
			iv[r].last = i; /* a hook looks at an alias here */
		if (f && f->residual[i] >= 0 && (r = slot[f->residual[i]]) >= 0 &&
		    iv[r].last < i)
			iv[r].last = i;
		/* a depthwise conv computed here reads its input here, or the
		   expand conv computing that input reads its own */
		int pre = f && f->pre[i] >= 0 ? f->pre[i] : -1;
		if (pre >= 0 && f->expand[i] >= 0)
			pre = f->expand[i];
		if (pre >= 0 && (r = slot[s->root[read_from(s, f, pre, 0)]]) >= 0 &&
		    iv[r].last < i)
			iv[r].last = i;
	}
	for (int o = 0; o < m->n_outputs; o++) {
		int r = slot[s->root[m->outputs[o]]];
		if (r >= 0)
			iv[r].last = n;
	}
	for (int k = 0; s->retain && k < n_iv; k++)
		iv[k].last = n;
	*total = place(iv, n_iv);
	for (int k = 0; k < n_iv; k++)
		offset[iv[k].layer] = iv[k].offset;
out:
	free(iv);
	free(slot);
	return rc;
}

static int plan(struct cnnviz_session *s, struct cnnviz_error *err)
{
	const struct cnnviz_model *m = s->m;
	int n = m->n_layers, rc;
	size_t scratch = 0;
	for (int i = 0; i < n; i++) {
		const struct cnnviz__layer *l = m->layers[i];
		if (l->input_slot >= 0)
			s->root[i] = i;
		else if (l->alias_of >= 0)
			s->root[i] = s->root[l->alias_of];
		else if (is_alias(l))
			s->root[i] = s->root[l->in[0]];
		else
			s->root[i] = i;
		if (l->n_in > s->max_in)
			s->max_in = l->n_in;
		if (s->root[i] != i || l->input_slot >= 0)
			continue;
		size_t sc;
		if (cnnviz__mul_size(l->scratch_per_sample + cf_floats(l),
				     (size_t)s->max_batch, &sc) ||
		    cnnviz__add_size(sc, l->scratch_fixed, &sc))
			return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, l->name,
					    "batch %lld is too large", (long long)s->max_batch);
		if (sc > scratch)
			scratch = sc;
	}
	size_t total, ftotal = 0;
	if ((rc = plan_offsets(s, NULL, s->offset, &total, err)))
		return rc;
	/* Hook-less runs fold BN, residual adds and activations into convs. */
	if (!s->retain) {
		if (cnnviz__fusion_plan(m, s->root, &s->fusion))
			return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		if (s->fusion.any) {
			s->foffset = calloc((size_t)n, sizeof *s->foffset);
			if (!s->foffset)
				return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
			if ((rc = plan_offsets(s, &s->fusion, s->foffset, &ftotal, err)))
				return rc;
			/* a conv computing an expand conv's rows needs its ring */
			for (int i = 0; i < n; i++) {
				const struct cnnviz__layer *l = m->layers[i];
				size_t sc;
				if (s->fusion.expand[i] < 0)
					continue;
				if (cnnviz__mul_size(l->scratch_per_sample,
						     (size_t)s->max_batch, &sc) ||
				    cnnviz__add_size(sc, l->scratch_fixed, &sc) ||
				    cnnviz__add_size(sc, m->layers[s->fusion.pre[i]]->ring_floats,
						     &sc))
					return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, l->name,
							    "batch %lld is too large",
							    (long long)s->max_batch);
				if (sc > scratch)
					scratch = sc;
			}
		}
	}
	if (ftotal > total)
		total = ftotal;
	s->arena = total ? aligned_alloc(64, total * sizeof(float)) : NULL;
	/* Each worker gets its own copy of the largest scratch. */
	int workers = cnnviz__pool_size(s->pool);
	if (cnnviz__mul_size(align_up(scratch), (size_t)workers, &scratch))
		return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, NULL, "scratch too large");
	s->scratch_floats = scratch;
	s->scratch = scratch ? aligned_alloc(64, scratch * sizeof(float)) : NULL;
	s->ins = calloc((size_t)(s->max_in ? s->max_in : 1), sizeof *s->ins);
	if ((total && !s->arena) || (scratch && !s->scratch) || !s->ins)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				    "out of memory for %zu activation floats", total + scratch);
	return CNNVIZ_OK;
}

static int session_new(const cnnviz_model *m, int64_t max_batch,
		       const cnnviz_options *opts, int retain,
		       cnnviz_session **out, struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!m || !out || max_batch < 1)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "need a model, an output pointer and max_batch >= 1");
	*out = NULL;
	struct cnnviz_session *s = calloc(1, sizeof *s);
	if (!s)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	s->m = m;
	s->max_batch = max_batch;
	s->retain = retain;
	size_t n = (size_t)m->n_layers;
	s->root = malloc(n * sizeof *s->root);
	s->offset = calloc(n, sizeof *s->offset);
	s->buf = calloc(n, sizeof *s->buf);
	const int profile = (int)cnnviz__opt_int(opts, "profile", 0);
	if (profile)
		s->step_ms = calloc(n, sizeof *s->step_ms);
	int rc = (!s->root || !s->offset || !s->buf || (profile && !s->step_ms))
			 ? cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory")
			 : CNNVIZ_OK;
	if (!rc && cnnviz__pool_new((int)cnnviz__opt_int(opts, "threads", 0), &s->pool))
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, "threads", "cannot start worker threads");
	if (!rc)
		rc = plan(s, err);
	if (rc) {
		cnnviz_session_free(s);
		return rc;
	}
	*out = s;
	return CNNVIZ_OK;
}

int cnnviz_session_new(const cnnviz_model *m, int64_t max_batch,
		       const cnnviz_options *opts, cnnviz_session **out,
		       struct cnnviz_error *err)
{
	return session_new(m, max_batch, opts, 0, out, err);
}

int cnnviz__session_new_retaining(const cnnviz_model *m, int64_t max_batch,
				  const cnnviz_options *opts,
				  cnnviz_session **out, struct cnnviz_error *err)
{
	return session_new(m, max_batch, opts, 1, out, err);
}

const float *cnnviz__session_buffer(const cnnviz_session *s, int layer)
{
	if (!s || !s->retain || s->batch == 0 || layer < 0 ||
	    layer >= s->m->n_layers)
		return NULL;
	return s->buf[layer];
}

int cnnviz_session_step_time(const cnnviz_session *s, int layer, double *ms,
			     int *step)
{
	if (!s || !s->step_ms || s->batch == 0 || layer < 0 ||
	    layer >= s->m->n_layers || !ms || !step)
		return CNNVIZ_ERR_ARG;
	const struct cnnviz__layer *l = s->m->layers[layer];
	*step = layer;
	if (l->input_slot >= 0 || s->root[layer] != layer)
		*step = -1;
	else if (s->fused_run)
		*step = s->fusion.owner[layer];
	*ms = *step == layer ? s->step_ms[layer] : 0.0;
	return CNNVIZ_OK;
}

int cnnviz__session_folded(const cnnviz_session *s, int layer)
{
	return s->foffset && layer >= 0 && layer < s->m->n_layers &&
	       s->fusion.skip[layer];
}

int64_t cnnviz__session_batch(const cnnviz_session *s)
{
	return s ? s->batch : 0;
}

/* (B,C,H,W) -> (B,H,W,C), and back. */
void cnnviz__to_hwc(const float *x, float *y, int64_t b, int64_t c, int64_t hw)
{
	for (int64_t n = 0; n < b; n++, x += c * hw, y += c * hw)
		for (int64_t ch = 0; ch < c; ch++)
			for (int64_t p = 0; p < hw; p++)
				y[p * c + ch] = x[ch * hw + p];
}

static void to_chw(const float *x, float *y, int64_t b, int64_t c, int64_t hw)
{
	for (int64_t n = 0; n < b; n++, x += c * hw, y += c * hw)
		for (int64_t p = 0; p < hw; p++)
			for (int64_t ch = 0; ch < c; ch++)
				y[ch * hw + p] = x[p * c + ch];
}

static void run_channels_first(struct cnnviz_session *s,
			       const struct cnnviz__layer *l, float *out,
			       int64_t batch)
{
	/* The op's per-worker scratch first, then the transposed tensors. */
	size_t own = l->scratch_fixed + l->scratch_per_sample * (size_t)batch;
	float *t = s->scratch + own * (size_t)cnnviz__pool_size(s->pool);
	for (int i = 0; i < l->n_in; i++) {
		const struct cnnviz__shape *sh = &l->op_in[i];
		cnnviz__to_hwc(s->buf[l->in[i]], t, batch, sh->d[2], sh->d[0] * sh->d[1]);
		s->ins[i] = t;
		t += cnnviz__shape_count(sh) * (size_t)batch;
	}
	struct cnnviz__io io = {.batch = batch, .in = s->ins, .out = t,
				.scratch = s->scratch, .pool = s->pool};
	l->op->forward(l, &io);
	const struct cnnviz__shape *o = &l->op_out;
	if (o->rank == 3)
		to_chw(t, out, batch, o->d[2], o->d[0] * o->d[1]);
	else
		memcpy(out, t, cnnviz__shape_count(o) * (size_t)batch * sizeof *out);
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static void fill_info(const struct cnnviz_model *m, int i, int64_t batch,
		      struct cnnviz_layer_info *info, struct cnnviz_tensor *t,
		      const float *data)
{
	cnnviz_model_layer(m, i, info);
	info->shape[0] = batch;
	t->rank = info->rank;
	memcpy(t->shape, info->shape, sizeof t->shape);
	t->count = cnnviz__shape_count(&m->layers[i]->out) * (size_t)batch;
	t->data = data;
}

int cnnviz_session_run(cnnviz_session *s, const float *const *inputs,
		       int64_t batch, cnnviz_hook hook, void *user,
		       struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!s || !inputs || batch < 1 || batch > s->max_batch)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "need a session, inputs and 1 <= batch <= %lld",
				    (long long)(s ? s->max_batch : 0));
	const struct cnnviz_model *m = s->m;
	for (int i = 0; i < m->n_inputs; i++)
		if (!inputs[i])
			return cnnviz__fail(err, CNNVIZ_ERR_ARG, m->layers[m->inputs[i]]->name,
					    "input %d is NULL", i);
	s->batch = 0;
	/* Without a hook nobody sees the layers inside a fused chain. */
	const struct cnnviz__fusion *f = !hook && s->foffset ? &s->fusion : NULL;
	const size_t *offset = f ? s->foffset : s->offset;
	s->fused_run = f != NULL;
	for (int i = 0; i < m->n_layers; i++) {
		const struct cnnviz__layer *l = m->layers[i];
		double t0 = s->step_ms ? now_ms() : 0.0;
		if (l->input_slot >= 0) {
			/* Inputs are only ever read. */
			s->buf[i] = (float *)inputs[l->input_slot];
		} else if (s->root[i] != i) {
			s->buf[i] = s->buf[s->root[i]];
		} else if (f && f->skip[i]) {
			/* Computed by its chain's first layer (if it is the end). */
		} else {
			int v = f ? f->dest[i] : i;
			float *out = s->arena + offset[v];
			s->buf[v] = out;
			if (v != i)
				s->buf[i] = NULL;
			if (l->channels_first) {
				run_channels_first(s, l, out, batch);
			} else {
				/* The residual's buffer is only known per run. */
				struct cnnviz__epilogue fused;
				const struct cnnviz__epilogue *post = NULL;
				if (f && f->has_post[i]) {
					fused = f->post[i];
					fused.residual = f->residual[i] >= 0
								 ? s->buf[f->residual[i]]
								 : NULL;
					post = &fused;
				}
				for (int k = 0; k < l->n_in; k++)
					s->ins[k] = s->buf[read_from(s, f, i, k)];
				int native = post && (l->op->flags & CNNVIZ__OP_EPILOGUE);
				struct cnnviz__io io = {batch, s->ins, out, s->scratch,
							s->pool, native ? post : NULL,
							f && f->pad_folded[i], NULL};
				struct cnnviz__pre pre;
				if (f && f->pre[i] >= 0) {
					int j = f->pre[i];
					const int e = f->expand[i];
					pre = (struct cnnviz__pre){
						m->layers[j],
						e < 0 ? s->buf[read_from(s, f, j, 0)]
						      : NULL,
						f->pad_folded[j],
						f->has_post[j] ? &f->post[j] : NULL,
						e < 0 ? NULL : m->layers[e],
						e < 0 ? NULL : s->buf[read_from(s, f, e, 0)],
						e >= 0 && f->has_post[e] ? &f->post[e]
									 : NULL};
					io.pre = &pre;
				}
				l->op->forward(l, &io);
				if (post && !native) {
					const struct cnnviz__shape *o = &l->op_out;
					int64_t c = o->d[o->rank - 1];
					int64_t rows = (int64_t)cnnviz__shape_count(o) / c * batch;
					cnnviz__epilogue_apply(post, out, post->residual, rows, c);
				}
			}
		}
		if (s->step_ms)
			s->step_ms[i] = now_ms() - t0;
		if (hook) {
			struct cnnviz_layer_info info;
			struct cnnviz_tensor t;
			fill_info(m, i, batch, &info, &t, s->buf[i]);
			if (hook(&info, &t, user))
				return cnnviz__fail(err, CNNVIZ_ERR_STOPPED, l->name,
						    "the hook stopped the run");
		}
	}
	s->batch = batch;
	return CNNVIZ_OK;
}

int cnnviz_session_output(const cnnviz_session *s, int i,
			  struct cnnviz_tensor *out)
{
	if (!s || !out || i < 0 || i >= s->m->n_outputs || s->batch == 0)
		return CNNVIZ_ERR_ARG;
	struct cnnviz_layer_info info;
	int idx = s->m->outputs[i];
	fill_info(s->m, idx, s->batch, &info, out, s->buf[idx]);
	return CNNVIZ_OK;
}

int cnnviz_run(const cnnviz_model *m, const float *input, int64_t batch,
	       cnnviz_hook hook, void *user, float *output, size_t output_count,
	       struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!m || m->n_inputs != 1)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "cnnviz_run needs a model with exactly one input");
	cnnviz_session *s = NULL;
	int rc = cnnviz_session_new(m, batch, NULL, &s, err);
	if (!rc)
		rc = cnnviz_session_run(s, &input, batch, hook, user, err);
	struct cnnviz_tensor t;
	if (!rc && output) {
		cnnviz_session_output(s, 0, &t);
		if (output_count < t.count)
			rc = cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
					  "output buffer holds %zu floats, the output has %zu",
					  output_count, t.count);
		else
			memcpy(output, t.data, t.count * sizeof *output);
	}
	cnnviz_session_free(s);
	return rc;
}

/* ------------------------------------------- for the backward pass (grad.c) */

int cnnviz__session_root(const cnnviz_session *s, int layer)
{
	return s->root[layer];
}

float *cnnviz__session_buffer_mut(cnnviz_session *s, int layer)
{
	if (!s->retain || s->batch == 0)
		return NULL;
	int r = s->root[layer];
	if (s->m->layers[r]->input_slot >= 0)
		return NULL; /* the caller's input */
	return s->buf[r];
}

int cnnviz__session_rerun(cnnviz_session *s, int first)
{
	const struct cnnviz_model *m = s->m;
	int64_t batch = s->batch;
	if (!s->retain || batch == 0 || first < 0)
		return CNNVIZ_ERR_ARG;
	/* Retaining sessions never fuse: every layer has its own buffer. */
	for (int i = first; i < m->n_layers; i++) {
		const struct cnnviz__layer *l = m->layers[i];
		if (l->input_slot >= 0 || s->root[i] != i)
			continue;
		float *out = s->buf[i];
		if (l->channels_first) {
			run_channels_first(s, l, out, batch);
			continue;
		}
		for (int k = 0; k < l->n_in; k++)
			s->ins[k] = s->buf[l->in[k]];
		struct cnnviz__io io = {.batch = batch, .in = s->ins, .out = out,
					.scratch = s->scratch, .pool = s->pool};
		l->op->forward(l, &io);
	}
	return CNNVIZ_OK;
}
