/*
 * The loaded model: its arena, each layer's setup (shape inference, weight
 * declarations, unsupported-layer report) and the public queries.
 * Everything is validated at load so that a model that opens can always
 * run; open.c reads the files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

struct cnnviz__block {
	struct cnnviz__block *next;
	max_align_t data[];
};

void *cnnviz__model_alloc(struct cnnviz_model *m, size_t size)
{
	size_t total;
	if (cnnviz__add_size(sizeof(struct cnnviz__block), size, &total))
		return NULL;
	struct cnnviz__block *b = calloc(1, total);
	if (!b)
		return NULL;
	b->next = m->blocks;
	m->blocks = b;
	return b->data;
}

char *cnnviz__model_strdup(struct cnnviz_model *m, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = cnnviz__model_alloc(m, n);
	if (d)
		memcpy(d, s, n);
	return d;
}

struct cnnviz__layer *cnnviz__layer_new(struct cnnviz_model *m,
					struct cnnviz_error *err)
{
	if (m->n_layers >= m->limits.max_layers) {
		cnnviz__fail(err, CNNVIZ_ERR_LIMIT, NULL,
			     "the model has more than %lld layers (option max_layers)",
			     (long long)m->limits.max_layers);
		return NULL;
	}
	if (m->n_layers == m->cap_layers) {
		int cap = m->cap_layers ? m->cap_layers * 2 : 32;
		struct cnnviz__layer **g = realloc(m->layers, (size_t)cap * sizeof *g);
		if (!g) {
			cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
			return NULL;
		}
		m->layers = g;
		m->cap_layers = cap;
	}
	struct cnnviz__layer *l = cnnviz__model_alloc(m, sizeof *l);
	if (!l) {
		cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		return NULL;
	}
	l->index = m->n_layers;
	l->alias_of = l->input_slot = l->share_of = -1;
	m->layers[m->n_layers++] = l;
	return l;
}

void cnnviz_model_free(cnnviz_model *m)
{
	if (!m)
		return;
	struct cnnviz__block *b = m->blocks;
	while (b) {
		struct cnnviz__block *next = b->next;
		free(b);
		b = next;
	}
	free(m->layers);
	free(m->inputs);
	free(m->outputs);
	free(m->weights);
	free(m->source);
	free(m);
}

/* ------------------------------------------------------------- setup */

int cnnviz__set_out(struct cnnviz__setup *s, int rank, const int64_t *dims)
{
	const struct cnnviz__limits *lim = &s->m->limits;
	if (rank < 0 || rank > CNNVIZ__MAX_SRANK)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "output rank %d is not supported", rank + 1);
	size_t count = 1;
	for (int i = 0; i < rank; i++) {
		if (dims[i] < 1)
			return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
						  "output dimension %d would be %lld",
						  i + 1, (long long)dims[i]);
		if (dims[i] > lim->max_dim ||
		    cnnviz__mul_size(count, (size_t)dims[i], &count) ||
		    count > (size_t)lim->max_elements)
			return cnnviz__setup_fail(s, CNNVIZ_ERR_LIMIT,
						  "output is larger than the limits (max_dim %lld, max_elements %lld)",
						  (long long)lim->max_dim,
						  (long long)lim->max_elements);
		s->l->op_out.d[i] = dims[i];
	}
	s->l->op_out.rank = rank;
	return CNNVIZ_OK;
}

int cnnviz__weight_decl(struct cnnviz__setup *s, const char *canon, int rank,
			const int64_t *dims, int optional)
{
	struct cnnviz__layer *l = s->l;
	if (l->n_w >= CNNVIZ__MAX_WEIGHTS || rank > CNNVIZ__MAX_SRANK)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_INTERNAL, "too many weights");
	size_t count = 1;
	for (int i = 0; i < rank; i++) {
		if (dims[i] < 1 || dims[i] > s->m->limits.max_dim ||
		    cnnviz__mul_size(count, (size_t)dims[i], &count) ||
		    count > (size_t)s->m->limits.max_weight_bytes / sizeof(float))
			return cnnviz__setup_fail(s, CNNVIZ_ERR_LIMIT,
						  "weight '%s' would be larger than the limits",
						  canon);
	}
	struct cnnviz__weight *w = &l->w[l->n_w];
	w->canon = canon;
	w->shape.rank = rank;
	for (int i = 0; i < rank; i++)
		w->shape.d[i] = dims[i];
	w->optional = optional;
	return l->n_w++;
}

static int check_input_shape(struct cnnviz_model *m, struct cnnviz__layer *l,
			     struct cnnviz_error *err)
{
	size_t count = 1;
	for (int i = 0; i < l->out.rank; i++)
		if (l->out.d[i] > m->limits.max_dim ||
		    cnnviz__mul_size(count, (size_t)l->out.d[i], &count) ||
		    count > (size_t)m->limits.max_elements)
			return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, l->name,
					    "input shape is larger than the limits (max_dim %lld, max_elements %lld)",
					    (long long)m->limits.max_dim,
					    (long long)m->limits.max_elements);
	return CNNVIZ_OK;
}

/* (C,H,W) <-> (H,W,C) for channels_first spatial layers. */
static struct cnnviz__shape chw_to_hwc(const struct cnnviz__shape *s)
{
	struct cnnviz__shape r = *s;
	if (s->rank == 3) {
		r.d[0] = s->d[1];
		r.d[1] = s->d[2];
		r.d[2] = s->d[0];
	}
	return r;
}

static struct cnnviz__shape hwc_to_chw(const struct cnnviz__shape *s)
{
	struct cnnviz__shape r = *s;
	if (s->rank == 3) {
		r.d[0] = s->d[2];
		r.d[1] = s->d[0];
		r.d[2] = s->d[1];
	}
	return r;
}

/*
 * Every layer computes in float32: float dtypes and policies of any width
 * ("float16", "mixed_float16", "bfloat16") run so; integer, bool, string
 * and complex ones cannot.
 */
static int check_dtype(struct cnnviz__setup *s)
{
	json_t *v = s->cfg ? json_object_get(s->cfg, "dtype") : NULL;
	if (json_is_object(v)) { /* DTypePolicy (Keras 3), Policy (tf.keras) */
		json_t *c = json_object_get(v, "config");
		v = json_is_object(c) ? json_object_get(c, "name") : NULL;
	}
	if (!json_is_string(v) || strstr(json_string_value(v), "float"))
		return CNNVIZ_OK;
	return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
				  "dtype '%s' is not supported (float types only)",
				  json_string_value(v));
}

/*
 * 2 x multiply-adds: every kernel (a weight of rank >= 2) is applied once
 * per output position (per input position for a transposed convolution),
 * a position being one vector along the last axis.
 */
static void count_flops(struct cnnviz__layer *l)
{
	const struct cnnviz__shape *pos = &l->op_out;
	if (strcmp(l->op->name, "conv2d_transpose") == 0 && l->n_in > 0)
		pos = &l->op_in[0];
	if (pos->rank < 1)
		return;
	int64_t positions = (int64_t)cnnviz__shape_count(pos) / pos->d[pos->rank - 1];
	for (int i = 0; i < l->n_w; i++)
		if (l->w[i].shape.rank >= 2)
			l->flops += 2 * positions *
				    (int64_t)cnnviz__shape_count(&l->w[i].shape);
}

static int setup_leaf(struct cnnviz_model *m, struct cnnviz__layer *l,
		      struct cnnviz_error *err)
{
	struct cnnviz__setup s = {m, l, l->cfg, m->keras_major,
				  m->theano_kernels, err};
	const struct cnnviz__op *op = l->op;
	if (l->n_in > 1 && !(op->flags & CNNVIZ__OP_MULTI))
		return cnnviz__setup_fail(&s, CNNVIZ_ERR_SHAPE,
					  "takes one input, is given %d", l->n_in);
	l->op_in = cnnviz__model_alloc(m, (size_t)l->n_in * sizeof *l->op_in);
	if (!l->op_in)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	int drc = check_dtype(&s);
	if (drc)
		return drc;
	if (op->flags & CNNVIZ__OP_SPATIAL) {
		const char *df;
		int rc = cnnviz__cfg_str(&s, "data_format", "channels_last", &df);
		if (rc)
			return rc;
		if (strcmp(df, "channels_first") == 0)
			l->channels_first = 1;
		else if (strcmp(df, "channels_last") != 0)
			return cnnviz__setup_fail(&s, CNNVIZ_ERR_UNSUPPORTED,
						  "data_format '%s'", df);
	}
	for (int i = 0; i < l->n_in; i++) {
		const struct cnnviz__shape *in = &m->layers[l->in[i]]->out;
		if (l->channels_first && in->rank != 3)
			return cnnviz__setup_fail(&s, CNNVIZ_ERR_SHAPE,
						  "channels_first layer on a rank-%d input",
						  in->rank + 1);
		l->op_in[i] = l->channels_first ? chw_to_hwc(in) : *in;
	}
	int rc = op->setup(&s);
	if (rc)
		return rc;
	/* For channels_first the executor transposes around the op. */
	l->out = l->channels_first ? hwc_to_chw(&l->op_out) : l->op_out;
	l->flags |= op->layer_flags & ~(unsigned)CNNVIZ_LAYER_SPATIAL;
	if (l->share_of < 0)
		for (int i = 0; i < l->n_w; i++)
			l->params += (int64_t)cnnviz__shape_count(&l->w[i].shape);
	count_flops(l);
	return CNNVIZ_OK;
}

static const char *refusal_reason(const char *cls)
{
	if (strcmp(cls, "Lambda") == 0)
		return "holds Python code, which cannot run outside Python";
	if (strcmp(cls, "TFOpLambda") == 0 || strcmp(cls, "SlicingOpLambda") == 0)
		return "is a TensorFlow operation recorded from Python";
	return "is not a layer class libcnnviz knows (custom layer?)";
}

/* All unsupported layers in one report, not only the first. */
static int resolve_ops(struct cnnviz_model *m, struct cnnviz_error *err)
{
	char list[sizeof err->message] = "";
	size_t used = 0;
	int bad = 0, first = -1;
	for (int i = 0; i < m->n_layers; i++) {
		struct cnnviz__layer *l = m->layers[i];
		if (l->alias_of >= 0)
			continue;
		l->op = cnnviz__op_find(l->class_name);
		if (l->op)
			continue;
		if (bad++ == 0)
			first = i;
		if (used < sizeof list - 1)
			used += (size_t)snprintf(list + used, sizeof list - used,
						 "%slayer '%s' of class %s %s",
						 bad > 1 ? "; " : "", l->name,
						 l->class_name,
						 refusal_reason(l->class_name));
	}
	if (!bad)
		return CNNVIZ_OK;
	char where[300];
	snprintf(where, sizeof where, "layer '%s' (%s)", m->layers[first]->name,
		 m->layers[first]->class_name);
	if (bad == 1)
		return cnnviz__fail(err, CNNVIZ_ERR_UNSUPPORTED, where, "the layer %s",
				    refusal_reason(m->layers[first]->class_name));
	return cnnviz__fail(err, CNNVIZ_ERR_UNSUPPORTED, where,
			    "%d unsupported layers: %s", bad, list);
}

/*
 * Spatial means an image-like map, whichever op made it. A map is held
 * channels_first when a channels_first spatial layer made it, or when it
 * passed unchanged in rank through layers that do not care (activations,
 * merges); an input is when its first spatial consumer says so.
 */
static void mark_layout(struct cnnviz_model *m, struct cnnviz__layer *l)
{
	if (l->out.rank != 3)
		return;
	l->flags |= CNNVIZ_LAYER_SPATIAL;
	int cf;
	if (l->alias_of >= 0)
		cf = (m->layers[l->alias_of]->flags & CNNVIZ_LAYER_CHANNELS_FIRST) != 0;
	else if (l->op && (l->op->flags & CNNVIZ__OP_SPATIAL))
		cf = l->channels_first;
	else if (l->n_in > 0)
		cf = (m->layers[l->in[0]]->flags & CNNVIZ_LAYER_CHANNELS_FIRST) != 0;
	else
		cf = 0;
	for (int j = l->index + 1; l->input_slot >= 0 && j < m->n_layers; j++) {
		const struct cnnviz__layer *c = m->layers[j];
		if (c->n_in > 0 && c->in[0] == l->index && c->op &&
		    (c->op->flags & CNNVIZ__OP_SPATIAL)) {
			cf = c->channels_first;
			break;
		}
	}
	if (cf)
		l->flags |= CNNVIZ_LAYER_CHANNELS_FIRST;
}

int cnnviz__model_setup(struct cnnviz_model *m, struct cnnviz_error *err)
{
	int rc = resolve_ops(m, err);
	for (int i = 0; !rc && i < m->n_layers; i++) {
		struct cnnviz__layer *l = m->layers[i];
		if (l->alias_of >= 0)
			l->out = m->layers[l->alias_of]->out;
		else if (l->input_slot >= 0)
			rc = check_input_shape(m, l, err);
		else
			rc = setup_leaf(m, l, err);
	}
	for (int i = 0; !rc && i < m->n_layers; i++)
		mark_layout(m, m->layers[i]);
	for (int i = 0; !rc && i < m->n_outputs; i++)
		m->layers[m->outputs[i]]->flags |= CNNVIZ_LAYER_OUTPUT;
	return rc;
}

/*
 * Keeps a warning (text copied into the model arena). Past the limit the
 * last slot is replaced by the count of the weights it no longer names.
 */
static int add_warning(struct cnnviz_model *m, struct cnnviz_error *err,
		       const char *text)
{
	char buf[160];
	if (m->n_warnings == CNNVIZ__MAX_WARNINGS) {
		m->warnings_dropped++;
		snprintf(buf, sizeof buf,
			 "... and %lld more weights hold NaN or infinite values",
			 (long long)m->warnings_dropped + 1);
		text = buf;
		m->n_warnings--;
	}
	const char *copy = cnnviz__model_strdup(m, text);
	if (!copy)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	m->warnings[m->n_warnings++] = copy;
	return CNNVIZ_OK;
}

/*
 * Weights holding NaN or infinite values load and run, as in Keras, but
 * everything that depends on them comes out NaN or infinite: say so, per
 * weight, before finish() reorders them.
 */
static int check_finite(struct cnnviz_model *m, const struct cnnviz__layer *l,
			struct cnnviz_error *err)
{
	if (l->share_of >= 0)
		return CNNVIZ_OK; /* the first call's weights */
	for (int k = 0; k < l->n_w; k++) {
		const struct cnnviz__weight *w = &l->w[k];
		size_t nan, inf;
		if (!w->data)
			continue;
		cnnviz__count_nonfinite(w->data, cnnviz__shape_count(&w->shape),
					&nan, &inf);
		if (!nan && !inf)
			continue;
		char text[600];
		snprintf(text, sizeof text,
			 "layer '%.200s': weight '%.60s' holds %zu NaN and %zu "
			 "infinite values; outputs that depend on it will be "
			 "NaN or infinite", l->name, w->canon, nan, inf);
		int rc = add_warning(m, err, text);
		if (rc)
			return rc;
	}
	return CNNVIZ_OK;
}

int cnnviz__model_finish(struct cnnviz_model *m, struct cnnviz_error *err)
{
	for (int i = 0; i < m->n_layers; i++) {
		struct cnnviz__layer *l = m->layers[i];
		m->total_params += l->params;
		if (l->alias_of < 0) {
			int rc = check_finite(m, l, err);
			if (rc)
				return rc;
		}
		if (!l->op || !l->op->finish || l->alias_of >= 0)
			continue;
		struct cnnviz__setup s = {m, l, l->cfg, m->keras_major,
					  m->theano_kernels, err};
		int rc = l->op->finish(&s);
		if (rc)
			return rc;
	}
	for (int i = 0; i < m->n_layers; i++)
		m->layers[i]->cfg = NULL; /* the JSON is freed after loading */
	return CNNVIZ_OK;
}

/* ----------------------------------------------------------- queries */

int cnnviz_model_layer_count(const cnnviz_model *m)
{
	return m ? m->n_layers : 0;
}

int cnnviz_model_layer(const cnnviz_model *m, int index,
		       struct cnnviz_layer_info *info)
{
	if (!m || !info || index < 0 || index >= m->n_layers)
		return CNNVIZ_ERR_ARG;
	const struct cnnviz__layer *l = m->layers[index];
	memset(info, 0, sizeof *info);
	info->index = index;
	info->name = l->name;
	info->class_name = l->class_name;
	info->flags = l->flags;
	info->rank = l->out.rank + 1;
	info->shape[0] = -1;
	for (int i = 0; i < l->out.rank; i++)
		info->shape[i + 1] = l->out.d[i];
	info->params = l->params;
	info->flops = l->flops;
	info->n_inputs = l->n_in;
	info->inputs = l->in;
	info->alias_of = l->alias_of;
	return CNNVIZ_OK;
}

const struct cnnviz__layer *cnnviz__model_layer(const cnnviz_model *m,
						int index)
{
	return m && index >= 0 && index < m->n_layers ? m->layers[index] : NULL;
}

int cnnviz_model_find_layer(const cnnviz_model *m, const char *name)
{
	for (int i = 0; m && name && i < m->n_layers; i++)
		if (strcmp(m->layers[i]->name, name) == 0)
			return i;
	return -1;
}

int cnnviz_model_input_count(const cnnviz_model *m)
{
	return m ? m->n_inputs : 0;
}

int cnnviz_model_output_count(const cnnviz_model *m)
{
	return m ? m->n_outputs : 0;
}

int cnnviz_model_input_layer(const cnnviz_model *m, int i)
{
	return m && i >= 0 && i < m->n_inputs ? m->inputs[i] : -1;
}

int cnnviz_model_output_layer(const cnnviz_model *m, int i)
{
	return m && i >= 0 && i < m->n_outputs ? m->outputs[i] : -1;
}

const char *cnnviz_model_warning(const cnnviz_model *m, int i)
{
	return m && i >= 0 && i < m->n_warnings ? m->warnings[i] : NULL;
}

const char *cnnviz_model_keras_version(const cnnviz_model *m)
{
	return m ? m->keras_version : "";
}

int64_t cnnviz_model_param_count(const cnnviz_model *m)
{
	return m ? m->total_params : 0;
}
