/*
 * Key/value options. Every key is declared once here, with its type and
 * range; values are checked when set so readers never see a bad value.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum opt_type { OPT_STR, OPT_INT, OPT_FLOAT, OPT_ENUM };

static const struct opt_def {
	const char *key;
	enum opt_type type;
	double min, max;     /* OPT_INT / OPT_FLOAT */
	const char *choices; /* OPT_ENUM: "a|b|c" */
} opt_defs[] = {
	/* loading */
	{"weights", OPT_STR, 0, 0, NULL},
	{"max_layers", OPT_INT, 1, 1e6, NULL},
	{"max_dim", OPT_INT, 1, 1LL << 40, NULL},
	{"max_elements", OPT_INT, 1, 1LL << 40, NULL},
	{"max_weight_bytes", OPT_INT, 0, 1LL << 42, NULL},
	{"max_json_bytes", OPT_INT, 2, 1LL << 32, NULL},
	{"max_json_depth", OPT_INT, 2, 100000, NULL},
	/* running */
	{"threads", OPT_INT, 0, 1024, NULL},
	{"profile", OPT_INT, 0, 1, NULL},
	/* images in (image.c, resize.c) */
	{"max_pixels", OPT_INT, 1, 1LL << 40, NULL},
	{"png_alpha", OPT_ENUM, 0, 0, "drop|black|white"},
	{"crop", OPT_ENUM, 0, 0, "none|center"},
	{"resize", OPT_ENUM, 0, 0, "bilinear|nearest|area"},
	{"preprocess", OPT_ENUM, 0, 0, "unit|mobilenet|caffe|torch|raw"},
	{"scale", OPT_STR, 0, 0, NULL},  /* "v" or "v1,v2,v3", checked on use */
	{"offset", OPT_STR, 0, 0, NULL},
	/* pictures out (render.c) */
	{"cmap", OPT_ENUM, 0, 0, "viridis|magma|turbo|jet|gray"},
	{"cols", OPT_INT, 1, 256, NULL},
	{"norm", OPT_STR, 0, 0, NULL},   /* channel|layer|global|fixed:a,b */
	{"global_range", OPT_STR, 0, 0, NULL},
	{"upscale", OPT_INT, 0, 64, NULL},
	{"separator", OPT_INT, 0, 16, NULL},
	{"legend", OPT_INT, 0, 1, NULL},
	{"alpha", OPT_FLOAT, 0, 1, NULL},
	{"overlay_cmap", OPT_ENUM, 0, 0, "viridis|magma|turbo|jet|gray"},
	{"overlay_range", OPT_STR, 0, 0, NULL},
	/* explanations (grad.c, cam.c, sanity.c) */
	{"target_logit", OPT_INT, 0, 1, NULL},
	{"scorecam_top", OPT_INT, 0, 1 << 20, NULL},
	{"occlusion_patch", OPT_INT, 0, 1 << 20, NULL},
	{"occlusion_stride", OPT_INT, 0, 1 << 20, NULL},
	{"occlusion_baseline", OPT_FLOAT, -1e30, 1e30, NULL},
	{"smoothgrad_samples", OPT_INT, 1, 100000, NULL},
	{"smoothgrad_sigma", OPT_FLOAT, 0, 100, NULL},
	{"ig_steps", OPT_INT, 0, 100000, NULL},
	{"ig_baseline", OPT_FLOAT, -1e30, 1e30, NULL},
	{"seed", OPT_INT, 0, 1LL << 53, NULL},
	{"input_reduce", OPT_ENUM, 0, 0, "max_abs|sum_abs|sum|l2"},
	{"eval_steps", OPT_INT, 1, 100000, NULL},
	{"eval_baseline", OPT_FLOAT, -1e30, 1e30, NULL},
	{"eval_random", OPT_INT, 0, 1000, NULL},
};

#define OPT_COUNT (sizeof opt_defs / sizeof opt_defs[0])

static const struct opt_def *find_def(const char *key)
{
	for (size_t i = 0; i < OPT_COUNT; i++)
		if (strcmp(opt_defs[i].key, key) == 0)
			return &opt_defs[i];
	return NULL;
}

static int enum_has(const char *choices, const char *v)
{
	size_t n = strlen(v);
	for (const char *c = choices; *c;) {
		const char *bar = strchr(c, '|');
		size_t len = bar ? (size_t)(bar - c) : strlen(c);
		if (len == n && strncmp(c, v, n) == 0)
			return 1;
		if (!bar)
			break;
		c = bar + 1;
	}
	return 0;
}

static int check_value(const struct opt_def *d, const char *v,
		       struct cnnviz_error *err)
{
	char *end;
	switch (d->type) {
	case OPT_STR:
		return CNNVIZ_OK;
	case OPT_ENUM:
		if (enum_has(d->choices, v))
			return CNNVIZ_OK;
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, d->key,
				    "'%s' is not one of %s", v, d->choices);
	case OPT_INT: {
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (errno || end == v || *end || x < d->min || x > d->max)
			return cnnviz__fail(err, CNNVIZ_ERR_ARG, d->key,
					    "'%s' is not an integer in [%.0f, %.0f]",
					    v, d->min, d->max);
		return CNNVIZ_OK;
	}
	case OPT_FLOAT: {
		errno = 0;
		double x = strtod(v, &end);
		if (errno || end == v || *end || !isfinite(x) || x < d->min ||
		    x > d->max)
			return cnnviz__fail(err, CNNVIZ_ERR_ARG, d->key,
					    "'%s' is not a number in [%g, %g]",
					    v, d->min, d->max);
		return CNNVIZ_OK;
	}
	}
	return CNNVIZ_ERR_INTERNAL;
}

int cnnviz_options_new(cnnviz_options **out)
{
	if (!out)
		return CNNVIZ_ERR_ARG;
	*out = calloc(1, sizeof **out);
	return *out ? CNNVIZ_OK : CNNVIZ_ERR_NOMEM;
}

void cnnviz_options_free(cnnviz_options *o)
{
	if (!o)
		return;
	for (int i = 0; i < o->n; i++) {
		free(o->kv[i].key);
		free(o->kv[i].value);
	}
	free(o->kv);
	free(o);
}

int cnnviz_options_set(cnnviz_options *o, const char *key, const char *value,
		       struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!o || !key || !value)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, key, "NULL argument");
	const struct opt_def *d = find_def(key);
	if (!d)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, key, "unknown option");
	int rc = check_value(d, value, err);
	if (rc)
		return rc;
	char *v = strdup(value);
	if (!v)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, key, "out of memory");
	for (int i = 0; i < o->n; i++) {
		if (strcmp(o->kv[i].key, key) == 0) {
			free(o->kv[i].value);
			o->kv[i].value = v;
			return CNNVIZ_OK;
		}
	}
	struct cnnviz__kv *kv = realloc(o->kv, (size_t)(o->n + 1) * sizeof *kv);
	char *k = strdup(key);
	if (!kv || !k) {
		if (kv)
			o->kv = kv;
		free(k);
		free(v);
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, key, "out of memory");
	}
	o->kv = kv;
	o->kv[o->n].key = k;
	o->kv[o->n].value = v;
	o->n++;
	return CNNVIZ_OK;
}

const char *cnnviz__opt_str(const cnnviz_options *o, const char *key,
			    const char *def)
{
	if (!o)
		return def;
	for (int i = 0; i < o->n; i++)
		if (strcmp(o->kv[i].key, key) == 0)
			return o->kv[i].value;
	return def;
}

int64_t cnnviz__opt_int(const cnnviz_options *o, const char *key, int64_t def)
{
	const char *v = cnnviz__opt_str(o, key, NULL);
	return v ? (int64_t)strtoll(v, NULL, 10) : def;
}

double cnnviz__opt_float(const cnnviz_options *o, const char *key, double def)
{
	const char *v = cnnviz__opt_str(o, key, NULL);
	return v ? strtod(v, NULL) : def;
}

void cnnviz__limits_get(const cnnviz_options *o, struct cnnviz__limits *l)
{
	l->max_layers = cnnviz__opt_int(o, "max_layers", 10000);
	l->max_dim = cnnviz__opt_int(o, "max_dim", 1 << 20);
	l->max_elements = cnnviz__opt_int(o, "max_elements", 1 << 28);
	l->max_weight_bytes =
		cnnviz__opt_int(o, "max_weight_bytes", (int64_t)4 << 30);
	l->max_json_bytes = cnnviz__opt_int(o, "max_json_bytes", 64 << 20);
	l->max_json_depth = cnnviz__opt_int(o, "max_json_depth", 256);
}

const char *cnnviz_options_get(const cnnviz_options *o, const char *key)
{
	return key ? cnnviz__opt_str(o, key, NULL) : NULL;
}

const char *cnnviz_options_key(const cnnviz_options *o, int i)
{
	return o && i >= 0 && i < o->n ? o->kv[i].key : NULL;
}
