/*
 * model_config JSON -> layer list. The one place that knows the Keras 1, 2
 * and 3 dialects: key names are normalised to Keras 2 here so that layer
 * families only ever see one vocabulary.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* ------------------------------------------------------------ parsing */

/* Deepest nesting of the JSON text, counted outside strings. */
static int64_t json_depth(const char *t, size_t len)
{
	int64_t depth = 0, max = 0;
	int in_str = 0;
	for (size_t i = 0; i < len; i++) {
		char c = t[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				max = depth;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return max;
}

int cnnviz__parse_config(const char *text, size_t len,
			 const struct cnnviz__limits *lim, json_t **out,
			 struct cnnviz_error *err)
{
	json_t *j = NULL;
	*out = NULL;
	/* A model saved with json.dump(model.to_json()) is encoded twice. */
	for (int pass = 0; pass < 3; pass++) {
		if ((int64_t)len > lim->max_json_bytes)
			return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, "model_config",
					    "JSON text of %zu bytes exceeds the limit of %lld",
					    len, (long long)lim->max_json_bytes);
		if (json_depth(text, len) > lim->max_json_depth)
			return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, "model_config",
					    "JSON nesting deeper than the limit of %lld",
					    (long long)lim->max_json_depth);
		json_error_t jerr;
		json_t *next = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		json_decref(j);
		j = next;
		if (!j)
			return cnnviz__fail(err, CNNVIZ_ERR_FORMAT, "model_config",
					    "JSON syntax error at line %d, column %d: %s",
					    jerr.line, jerr.column, jerr.text);
		if (!json_is_string(j))
			break;
		text = json_string_value(j);
		len = json_string_length(j);
	}
	if (json_is_object(j) && !json_object_get(j, "class_name")) {
		json_t *mc = json_object_get(j, "model_config");
		if (mc) {
			json_incref(mc);
			json_decref(j);
			j = mc;
		}
	}
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "class_name"))) {
		json_decref(j);
		return cnnviz__fail(err, CNNVIZ_ERR_FORMAT, "model_config",
				    "not a Keras model configuration (no class_name)");
	}
	*out = j;
	return CNNVIZ_OK;
}

static int has_keras1_key(const json_t *j, int depth)
{
	static const char *const k1[] = {"nb_filter", "output_dim",
					 "border_mode", "dim_ordering"};
	if (depth > 512)
		return 0;
	if (json_is_object(j)) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)j, k, v) {
			for (size_t i = 0; i < sizeof k1 / sizeof k1[0]; i++)
				if (strcmp(k, k1[i]) == 0)
					return 1;
			if (has_keras1_key(v, depth + 1))
				return 1;
		}
	} else if (json_is_array(j)) {
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v)
			if (has_keras1_key(v, depth + 1))
				return 1;
	}
	return 0;
}

int cnnviz__config_is_keras1(const json_t *root)
{
	return has_keras1_key(root, 0);
}

/* --------------------------------------------------- normalisation */

/* Moves Keras 1 key `from` to Keras 2 key `to` unless `to` is set. */
static void rename_key(json_t *cfg, const char *from, const char *to)
{
	json_t *v = json_object_get(cfg, from);
	if (v && !json_object_get(cfg, to))
		json_object_set(cfg, to, v);
}

static int class_is(const char *cls, const char *const *names)
{
	for (; *names; names++)
		if (strcmp(cls, *names) == 0)
			return 1;
	return 0;
}

/* Keras 1 -> Keras 2 config keys, in place. */
static void normalize_config(const char *cls, json_t *cfg)
{
	static const char *const convs[] = {
		"Convolution2D", "AtrousConvolution2D", "Deconvolution2D",
		"SeparableConvolution2D", "Conv2D", "Conv2DTranspose",
		"SeparableConv2D", "DepthwiseConv2D", NULL};
	static const char *const dense[] = {"Dense", NULL};
	json_t *dim = json_object_get(cfg, "dim_ordering");
	if (json_is_string(dim) && !json_object_get(cfg, "data_format"))
		json_object_set_new(cfg, "data_format",
				    json_string(strcmp(json_string_value(dim), "th") == 0
							? "channels_first"
							: "channels_last"));
	rename_key(cfg, "border_mode", "padding");
	if (class_is(cls, convs)) {
		json_t *nr = json_object_get(cfg, "nb_row");
		json_t *nc = json_object_get(cfg, "nb_col");
		rename_key(cfg, "nb_filter", "filters");
		if (nr && nc && !json_object_get(cfg, "kernel_size"))
			json_object_set_new(cfg, "kernel_size",
					    json_pack("[OO]", nr, nc));
		rename_key(cfg, "subsample", "strides");
		rename_key(cfg, "atrous_rate", "dilation_rate");
		rename_key(cfg, "bias", "use_bias");
	}
	if (class_is(cls, dense)) {
		rename_key(cfg, "output_dim", "units");
		rename_key(cfg, "bias", "use_bias");
	}
}

/* ------------------------------------------------------ graph building */

struct tensor_ref {
	const char *lname; /* layer name within its container */
	int64_t node, tensor;
	int layer;
};

struct scope {
	struct tensor_ref *refs;
	int n, cap;
};

struct builder {
	struct cnnviz_model *m;
	struct cnnviz_error *err;
	int depth;
};

static int scope_put(struct builder *b, struct scope *sc, const char *lname,
		     int64_t node, int64_t tensor, int layer)
{
	if (sc->n == sc->cap) {
		int cap = sc->cap ? sc->cap * 2 : 64;
		struct tensor_ref *r = realloc(sc->refs, (size_t)cap * sizeof *r);
		if (!r)
			return cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		sc->refs = r;
		sc->cap = cap;
	}
	sc->refs[sc->n++] = (struct tensor_ref){lname, node, tensor, layer};
	return CNNVIZ_OK;
}

static int scope_get(const struct scope *sc, const char *lname, int64_t node,
		     int64_t tensor)
{
	for (int i = 0; i < sc->n; i++)
		if (sc->refs[i].node == node && sc->refs[i].tensor == tensor &&
		    strcmp(sc->refs[i].lname, lname) == 0)
			return sc->refs[i].layer;
	return -1;
}

static const char *layer_name(const json_t *l)
{
	json_t *c = json_object_get(l, "config");
	json_t *n = json_is_object(c) ? json_object_get(c, "name") : NULL;
	if (!json_is_string(n))
		n = json_object_get(l, "name");
	return json_is_string(n) ? json_string_value(n) : NULL;
}

static const char *class_of(const json_t *l)
{
	json_t *c = json_object_get(l, "class_name");
	return json_is_string(c) ? json_string_value(c) : NULL;
}

static int is_container(const char *cls)
{
	return cls && (strcmp(cls, "Sequential") == 0 ||
		       strcmp(cls, "Model") == 0 ||
		       strcmp(cls, "Functional") == 0);
}

static char *join(struct builder *b, const char *a, const char *c,
		  const char *d)
{
	size_t n = strlen(a) + strlen(c) + strlen(d) + 1;
	char *s = cnnviz__model_alloc(b->m, n);
	if (s)
		snprintf(s, n, "%s%s%s", a, c, d);
	return s;
}

static struct cnnviz__layer *add_layer(struct builder *b, const char *name,
				       const char *cls, const int *in, int n_in)
{
	struct cnnviz__layer *l = cnnviz__layer_new(b->m, b->err);
	if (!l)
		return NULL;
	l->name = cnnviz__model_strdup(b->m, name);
	l->class_name = cnnviz__model_strdup(b->m, cls);
	l->in = cnnviz__model_alloc(b->m, (size_t)(n_in ? n_in : 1) * sizeof *l->in);
	if (!l->name || !l->class_name || !l->in) {
		cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		return NULL;
	}
	for (int i = 0; i < n_in; i++)
		l->in[i] = in[i];
	l->n_in = n_in;
	for (int i = 0; i < b->m->n_layers - 1; i++) {
		if (strcmp(b->m->layers[i]->name, l->name) == 0) {
			cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, name,
				     "two layers have this name");
			return NULL;
		}
	}
	return l;
}

/* An input layer; shape from its batch_input_shape or the first layer's. */
static int add_input(struct builder *b, const char *name, json_t *cfg,
		     json_t *first_cfg, int *out)
{
	json_t *shape = cfg ? json_object_get(cfg, "batch_input_shape") : NULL;
	if (!shape && cfg)
		shape = json_object_get(cfg, "batch_shape");
	if (!shape && first_cfg) {
		json_t *is = json_object_get(first_cfg, "batch_input_shape");
		if (!is)
			is = json_object_get(first_cfg, "batch_shape");
		json_t *ish = json_object_get(first_cfg, "input_shape");
		json_t *idim = json_object_get(first_cfg, "input_dim");
		if (json_is_array(is)) {
			shape = is;
		} else if (json_is_array(ish) || json_is_integer(idim)) {
			json_t *s = json_array();
			json_array_append_new(s, json_null());
			if (json_is_array(ish))
				json_array_extend(s, ish);
			else
				json_array_append(s, idim);
			/* Keep it alive with the config that owns the layer. */
			json_object_set_new(first_cfg, "batch_input_shape", s);
			shape = s;
		}
	}
	if (!json_is_array(shape) || json_array_size(shape) < 2)
		return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, name,
				    "the model input has no known shape");
	size_t rank = json_array_size(shape) - 1;
	if (rank > CNNVIZ__MAX_SRANK)
		return cnnviz__fail(b->err, CNNVIZ_ERR_UNSUPPORTED, name,
				    "inputs of rank %zu are not supported", rank + 1);
	struct cnnviz__shape s = {.rank = (int)rank};
	for (size_t i = 0; i < rank; i++) {
		json_t *d = json_array_get(shape, i + 1);
		if (json_is_null(d))
			return cnnviz__fail(b->err, CNNVIZ_ERR_UNSUPPORTED, name,
					    "input dimension %zu is not fixed (None)", i + 1);
		if (cnnviz__json_int(d, &s.d[i]) || s.d[i] < 1)
			return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, name,
					    "input dimension %zu is not a positive integer", i + 1);
	}
	struct cnnviz__layer *l = add_layer(b, name, "InputLayer", NULL, 0);
	if (!l)
		return b->err ? b->err->code : CNNVIZ_ERR_NOMEM;
	l->out = s;
	l->flags |= CNNVIZ_LAYER_INPUT;
	l->input_slot = b->m->n_inputs;
	int *ins = realloc(b->m->inputs, (size_t)(b->m->n_inputs + 1) * sizeof *ins);
	if (!ins)
		return cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	b->m->inputs = ins;
	ins[b->m->n_inputs++] = l->index;
	*out = l->index;
	return CNNVIZ_OK;
}

static int build_container(struct builder *b, json_t *c, const char *prefix,
			   const char *wpath, const int *in, int n_in,
			   int *out, int *n_out, int max_out);

static int add_leaf(struct builder *b, json_t *lj, const char *prefix,
		    const char *wpath, const int *in, int n_in, int64_t call,
		    int *out)
{
	const char *cls = class_of(lj);
	const char *lname = layer_name(lj);
	json_t *cfg = json_object_get(lj, "config");
	if (!cls || !lname)
		return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix,
				    "a layer without class_name or name");
	if (cfg && !json_is_object(cfg))
		return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, lname,
				    "layer config is not an object");
	char suffix[32] = "";
	if (call > 0)
		snprintf(suffix, sizeof suffix, "#%lld", (long long)call);
	char *name = join(b, prefix, lname, suffix);
	if (!name)
		return cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	struct cnnviz__layer *l = add_layer(b, name, cls, in, n_in);
	if (!l)
		return b->err ? b->err->code : CNNVIZ_ERR_NOMEM;
	if (cfg)
		normalize_config(cls, cfg);
	l->cfg = cfg;
	l->wkey = join(b, wpath, wpath[0] ? "/" : "", lname);
	if (!l->wkey)
		return cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	if (call > 0) {
		char *first = join(b, prefix, lname, "");
		for (int i = 0; first && i < l->index; i++)
			if (strcmp(b->m->layers[i]->name, first) == 0)
				l->share_of = i;
		if (l->share_of < 0)
			return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, name,
					    "call %lld of a layer that was never called first",
					    (long long)call);
	}
	*out = l->index;
	return CNNVIZ_OK;
}

/* A nested container: its layers, then an alias entry for the container. */
static int add_nested(struct builder *b, json_t *lj, const char *prefix,
		      const char *wpath, const int *in, int n_in, int64_t call,
		      int *out, int *n_out, int max_out)
{
	const char *lname = layer_name(lj);
	if (!lname)
		return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix,
				    "a nested model without a name");
	char suffix[32] = "";
	if (call > 0)
		snprintf(suffix, sizeof suffix, "#%lld", (long long)call);
	char *name = join(b, prefix, lname, suffix);
	char *sub = name ? join(b, name, "/", "") : NULL;
	char *subw = join(b, wpath, wpath[0] ? "/" : "", lname);
	if (!sub || !subw)
		return cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	int first_new = b->m->n_layers;
	int rc = build_container(b, lj, sub, subw, in, n_in, out, n_out, max_out);
	if (rc)
		return rc;
	/*
	 * A nested model called again reuses its weights: each inner layer of
	 * call k shares with the same layer of call 0 ("m#1/x" -> "m/x").
	 */
	if (call > 0) {
		size_t plen = strlen(sub);
		char *first = join(b, prefix, lname, "/");
		if (!first)
			return cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		for (int i = first_new; i < b->m->n_layers; i++) {
			struct cnnviz__layer *l = b->m->layers[i];
			if (!l->wkey || l->share_of >= 0 || strncmp(l->name, sub, plen) != 0)
				continue;
			char *twin = join(b, first, l->name + plen, "");
			if (!twin)
				return cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
			for (int j = 0; j < first_new; j++)
				if (strcmp(b->m->layers[j]->name, twin) == 0)
					l->share_of = j;
		}
	}
	struct cnnviz__layer *l = add_layer(b, name, class_of(lj), out, *n_out);
	if (!l)
		return b->err ? b->err->code : CNNVIZ_ERR_NOMEM;
	l->alias_of = out[0];
	l->flags |= CNNVIZ_LAYER_CONTAINER;
	return CNNVIZ_OK;
}

static int build_sequential(struct builder *b, json_t *c, const char *prefix,
			    const char *wpath, const int *in, int n_in,
			    int *out, int *n_out, int max_out)
{
	json_t *cfg = json_object_get(c, "config");
	json_t *layers = json_is_array(cfg) ? cfg : json_object_get(cfg, "layers");
	if (!json_is_array(layers))
		return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix,
				    "Sequential config has no layer list");
	int cur[64], n_cur = 0, rc;
	if (in) {
		if (n_in > 64)
			return cnnviz__fail(b->err, CNNVIZ_ERR_LIMIT, prefix, "too many inputs");
		memcpy(cur, in, (size_t)n_in * sizeof *in);
		n_cur = n_in;
	}
	size_t i;
	json_t *lj;
	json_array_foreach(layers, i, lj) {
		const char *cls = class_of(lj);
		const char *lname = layer_name(lj);
		json_t *lcfg = json_object_get(lj, "config");
		if (!cls || !lname)
			return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix,
					    "layer %zu has no class_name or name", i);
		if (strcmp(cls, "InputLayer") == 0) {
			if (n_cur == 0) {
				char *name = join(b, prefix, lname, "");
				if (!name)
					return cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
				if ((rc = add_input(b, name, lcfg, NULL, &cur[0])))
					return rc;
				n_cur = 1;
			}
			continue; /* a nested InputLayer aliases the container input */
		}
		if (n_cur == 0) {
			char *name = join(b, prefix, lname, "_input");
			if (!name)
				return cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
			if ((rc = add_input(b, name, NULL, json_is_object(lcfg) ? lcfg : NULL,
					    &cur[0])))
				return rc;
			n_cur = 1;
		}
		if (is_container(cls)) {
			int outs[64], n_outs = 0;
			if ((rc = add_nested(b, lj, prefix, wpath, cur, n_cur, 0, outs,
					     &n_outs, 64)))
				return rc;
			memcpy(cur, outs, (size_t)n_outs * sizeof *outs);
			n_cur = n_outs;
		} else {
			int idx;
			if ((rc = add_leaf(b, lj, prefix, wpath, cur, n_cur, 0, &idx)))
				return rc;
			cur[0] = idx;
			n_cur = 1;
		}
	}
	if (n_cur == 0)
		return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix, "an empty Sequential model");
	if (n_cur > max_out)
		return cnnviz__fail(b->err, CNNVIZ_ERR_LIMIT, prefix, "too many outputs");
	memcpy(out, cur, (size_t)n_cur * sizeof *cur);
	*n_out = n_cur;
	return CNNVIZ_OK;
}

/* Collects the (layer, node, tensor) references of one inbound node. */
static int node_refs(struct builder *b, json_t *nd, json_t *refs, int depth)
{
	if (depth > 64)
		return cnnviz__fail(b->err, CNNVIZ_ERR_LIMIT, NULL, "inbound node nested too deeply");
	if (json_is_object(nd)) {
		/* Keras 3: {"args": [...], "kwargs": {...}} with __keras_tensor__ */
		json_t *cls = json_object_get(nd, "class_name");
		if (json_is_string(cls) &&
		    strcmp(json_string_value(cls), "__keras_tensor__") == 0) {
			json_t *h = json_object_get(json_object_get(nd, "config"),
						    "keras_history");
			if (!json_is_array(h) || json_array_size(h) < 3 ||
			    !json_is_string(json_array_get(h, 0)))
				return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, NULL,
						    "malformed keras_history");
			return json_array_append(refs, h) ? CNNVIZ_ERR_NOMEM : CNNVIZ_OK;
		}
		json_t *args = json_object_get(nd, "args");
		if (args && depth == 0)
			return node_refs(b, args, refs, depth + 1);
		const char *k;
		json_t *v;
		json_object_foreach(nd, k, v) {
			int rc = node_refs(b, v, refs, depth + 1);
			if (rc)
				return rc;
		}
		return CNNVIZ_OK;
	}
	if (!json_is_array(nd))
		return CNNVIZ_OK;
	/* Keras 1/2: [[name, node, tensor, kwargs], ...] */
	if (depth == 0) {
		size_t i;
		json_t *e;
		json_array_foreach(nd, i, e) {
			if (json_is_array(e) && json_is_string(json_array_get(e, 0))) {
				if (json_array_append(refs, e))
					return CNNVIZ_ERR_NOMEM;
			} else {
				int rc = node_refs(b, e, refs, depth + 1);
				if (rc)
					return rc;
			}
		}
		return CNNVIZ_OK;
	}
	size_t i;
	json_t *e;
	json_array_foreach(nd, i, e) {
		int rc = node_refs(b, e, refs, depth + 1);
		if (rc)
			return rc;
	}
	return CNNVIZ_OK;
}

static int ref_parts(json_t *r, const char **name, int64_t *node,
		     int64_t *tensor)
{
	*name = json_string_value(json_array_get(r, 0));
	*node = 0;
	*tensor = 0;
	json_t *n = json_array_get(r, 1), *t = json_array_get(r, 2);
	if (!*name || (n && !json_is_integer(n)) || (t && !json_is_integer(t)))
		return -1;
	if (n)
		*node = json_integer_value(n);
	if (t)
		*tensor = json_integer_value(t);
	return 0;
}

static json_t *find_layer_json(json_t *layers, const char *name)
{
	size_t i;
	json_t *lj;
	json_array_foreach(layers, i, lj) {
		const char *n = layer_name(lj);
		if (n && strcmp(n, name) == 0)
			return lj;
	}
	return NULL;
}

/* Node indices of a nested container count its own creation node. */
static int64_t node_offset(json_t *layers, const char *name)
{
	json_t *lj = find_layer_json(layers, name);
	return lj && is_container(class_of(lj)) ? 1 : 0;
}

/* input_layers / output_layers: [name, node, tensor] or a list of them. */
static json_t *ref_list(json_t *v)
{
	if (json_is_array(v) && json_is_string(json_array_get(v, 0))) {
		json_t *l = json_array();
		json_array_append(l, v);
		return l;
	}
	return json_incref(v);
}

struct call {
	json_t *lj;
	int64_t k;
	json_t *refs;
};

static int build_functional(struct builder *b, json_t *c, const char *prefix,
			    const char *wpath, const int *in, int n_in,
			    int *out, int *n_out, int max_out)
{
	json_t *cfg = json_object_get(c, "config");
	json_t *layers = json_object_get(cfg, "layers");
	if (!json_is_array(layers))
		return cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix,
				    "functional model config has no layer list");
	json_t *in_refs = ref_list(json_object_get(cfg, "input_layers"));
	json_t *out_refs = ref_list(json_object_get(cfg, "output_layers"));
	struct scope sc = {0};
	struct call *calls = NULL;
	size_t n_calls = 0;
	int rc = CNNVIZ_OK;
	if (!json_is_array(in_refs) || !json_is_array(out_refs)) {
		rc = cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix,
				  "functional model without input_layers/output_layers");
		goto out;
	}
	if (in) {
		if ((size_t)n_in != json_array_size(in_refs)) {
			rc = cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix,
					  "nested model called with %d inputs, it has %zu",
					  n_in, json_array_size(in_refs));
			goto out;
		}
		for (int i = 0; i < n_in; i++) {
			const char *nm;
			int64_t nd, t;
			if (ref_parts(json_array_get(in_refs, (size_t)i), &nm, &nd, &t)) {
				rc = cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix,
						  "malformed input_layers");
				goto out;
			}
			if ((rc = scope_put(b, &sc, nm, 0, 0, in[i])))
				goto out;
		}
	}
	size_t i;
	json_t *lj;
	json_array_foreach(layers, i, lj) {
		const char *cls = class_of(lj);
		const char *lname = layer_name(lj);
		if (!cls || !lname) {
			rc = cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix,
					  "layer %zu has no class_name or name", i);
			goto out;
		}
		if (strcmp(cls, "InputLayer") == 0) {
			if (!in) {
				int idx;
				char *name = join(b, prefix, lname, "");
				if (!name) {
					rc = cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
					goto out;
				}
				if ((rc = add_input(b, name, json_object_get(lj, "config"),
						    NULL, &idx)) ||
				    (rc = scope_put(b, &sc, lname, 0, 0, idx)))
					goto out;
			}
			continue;
		}
		json_t *nodes = json_object_get(lj, "inbound_nodes");
		size_t k;
		json_t *nd;
		json_array_foreach(nodes, k, nd) {
			struct call *grown = realloc(calls, (n_calls + 1) * sizeof *grown);
			json_t *refs = json_array();
			if (!grown || !refs) {
				if (grown)
					calls = grown;
				json_decref(refs);
				rc = cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
				goto out;
			}
			calls = grown;
			calls[n_calls++] = (struct call){lj, (int64_t)k, refs};
			if ((rc = node_refs(b, nd, refs, 0)))
				goto out;
		}
	}
	/*
	 * Keras orders layers so that one pass usually suffices; passes repeat
	 * while any call became ready, in list order, as Keras' own loader does.
	 */
	size_t done = 0;
	char *ready = calloc(n_calls ? n_calls : 1, 1);
	if (!ready) {
		rc = cnnviz__fail(b->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	while (done < n_calls) {
		int progress = 0;
		for (size_t ci = 0; ci < n_calls; ci++) {
			if (ready[ci])
				continue;
			struct call *cl = &calls[ci];
			size_t nr = json_array_size(cl->refs);
			int ins[256], ok = 1;
			if (nr == 0 || nr > 256) {
				rc = cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT,
						  layer_name(cl->lj),
						  nr ? "too many inputs" : "a layer call without inputs");
				free(ready);
				goto out;
			}
			for (size_t r = 0; r < nr && ok; r++) {
				const char *nm;
				int64_t nd, t;
				if (ref_parts(json_array_get(cl->refs, r), &nm, &nd, &t)) {
					rc = cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT,
							  layer_name(cl->lj),
							  "malformed inbound node");
					free(ready);
					goto out;
				}
				ins[r] = scope_get(&sc, nm, nd - node_offset(layers, nm), t);
				ok = ins[r] >= 0;
			}
			if (!ok)
				continue;
			const char *lname = layer_name(cl->lj);
			if (is_container(class_of(cl->lj))) {
				int outs[64], n_outs = 0;
				rc = add_nested(b, cl->lj, prefix, wpath, ins, (int)nr,
						cl->k, outs, &n_outs, 64);
				for (int t = 0; !rc && t < n_outs; t++)
					rc = scope_put(b, &sc, lname, cl->k, t, outs[t]);
			} else {
				int idx;
				rc = add_leaf(b, cl->lj, prefix, wpath, ins, (int)nr,
					      cl->k, &idx);
				if (!rc)
					rc = scope_put(b, &sc, lname, cl->k, 0, idx);
			}
			if (rc) {
				free(ready);
				goto out;
			}
			ready[ci] = 1;
			done++;
			progress = 1;
		}
		if (!progress) {
			for (size_t ci = 0; ci < n_calls; ci++)
				if (!ready[ci]) {
					rc = cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT,
							  layer_name(calls[ci].lj),
							  "inbound node refers to a layer that does not exist or to a cycle");
					break;
				}
			free(ready);
			goto out;
		}
	}
	free(ready);
	*n_out = 0;
	json_t *r;
	json_array_foreach(out_refs, i, r) {
		const char *nm;
		int64_t nd, t;
		if (ref_parts(r, &nm, &nd, &t)) {
			rc = cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix, "malformed output_layers");
			goto out;
		}
		int idx = scope_get(&sc, nm, nd - node_offset(layers, nm), t);
		if (idx < 0) {
			rc = cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, nm,
					  "model output refers to a missing layer");
			goto out;
		}
		if (*n_out >= max_out) {
			rc = cnnviz__fail(b->err, CNNVIZ_ERR_LIMIT, prefix, "too many outputs");
			goto out;
		}
		out[(*n_out)++] = idx;
	}
	if (*n_out == 0)
		rc = cnnviz__fail(b->err, CNNVIZ_ERR_FORMAT, prefix, "model without outputs");
out:
	for (size_t ci = 0; ci < n_calls; ci++)
		json_decref(calls[ci].refs);
	free(calls);
	free(sc.refs);
	json_decref(in_refs);
	json_decref(out_refs);
	return rc;
}

static int build_container(struct builder *b, json_t *c, const char *prefix,
			   const char *wpath, const int *in, int n_in,
			   int *out, int *n_out, int max_out)
{
	if (++b->depth > 32)
		return cnnviz__fail(b->err, CNNVIZ_ERR_LIMIT, prefix,
				    "models nested more than 32 deep");
	const char *cls = class_of(c);
	int rc;
	if (cls && strcmp(cls, "Sequential") == 0)
		rc = build_sequential(b, c, prefix, wpath, in, n_in, out, n_out, max_out);
	else
		rc = build_functional(b, c, prefix, wpath, in, n_in, out, n_out, max_out);
	b->depth--;
	return rc;
}

int cnnviz__build_graph(struct cnnviz_model *m, json_t *root,
			struct cnnviz_error *err)
{
	struct builder b = {m, err, 0};
	const char *cls = class_of(root);
	if (!is_container(cls))
		return cnnviz__fail(err, CNNVIZ_ERR_UNSUPPORTED, cls,
				    "the top level is not a Sequential or functional model");
	int outs[64], n_outs = 0;
	int rc = build_container(&b, root, "", "", NULL, 0, outs, &n_outs, 64);
	if (rc)
		return rc;
	m->outputs = malloc((size_t)n_outs * sizeof *m->outputs);
	if (!m->outputs)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	memcpy(m->outputs, outs, (size_t)n_outs * sizeof *outs);
	m->n_outputs = n_outs;
	return CNNVIZ_OK;
}
