/*
 * Typed access to a layer's config for the layer families: a missing key
 * or JSON null gives the default, a value of the wrong type is an error
 * naming the layer and the key.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

int cnnviz__setup_fail(struct cnnviz__setup *s, int code, const char *fmt,
		       ...)
{
	if (!s->err)
		return code;
	char msg[sizeof s->err->message];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char where[sizeof s->err->where];
	snprintf(where, sizeof where, "layer '%s' (%s)", s->l->name,
		 s->l->class_name);
	return cnnviz__fail(s->err, code, where, "%s", msg);
}

static json_t *cfg_get(struct cnnviz__setup *s, const char *key)
{
	json_t *v = s->cfg ? json_object_get(s->cfg, key) : NULL;
	return json_is_null(v) ? NULL : v;
}

static int bad_type(struct cnnviz__setup *s, const char *key, const char *want)
{
	return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
				  "config key '%s' should be %s", key, want);
}

int cnnviz__json_int(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	/* Some writers store whole numbers as reals (e.g. 3.0). */
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= -9e15 && d <= 9e15 && d == (double)(int64_t)d) {
			*out = (int64_t)d;
			return 0;
		}
	}
	return -1;
}

int cnnviz__cfg_int(struct cnnviz__setup *s, const char *key, int64_t def,
		    int64_t *out)
{
	json_t *v = cfg_get(s, key);
	*out = def;
	if (!v)
		return CNNVIZ_OK;
	if (json_is_array(v) && json_array_size(v) == 1)
		v = json_array_get(v, 0);
	if (cnnviz__json_int(v, out))
		return bad_type(s, key, "an integer");
	return CNNVIZ_OK;
}

int cnnviz__cfg_ints(struct cnnviz__setup *s, const char *key, int n,
		     int64_t def, int64_t *out)
{
	json_t *v = cfg_get(s, key);
	for (int i = 0; i < n; i++)
		out[i] = def;
	if (!v)
		return CNNVIZ_OK;
	if (json_is_array(v)) {
		if (json_array_size(v) != (size_t)n)
			return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
						  "config key '%s' has %zu values, expected %d",
						  key, json_array_size(v), n);
		for (int i = 0; i < n; i++)
			if (cnnviz__json_int(json_array_get(v, (size_t)i), &out[i]))
				return bad_type(s, key, "a list of integers");
		return CNNVIZ_OK;
	}
	int64_t x;
	if (cnnviz__json_int(v, &x))
		return bad_type(s, key, "an integer or a list of integers");
	for (int i = 0; i < n; i++)
		out[i] = x;
	return CNNVIZ_OK;
}

int cnnviz__cfg_float(struct cnnviz__setup *s, const char *key, double def,
		      double *out)
{
	json_t *v = cfg_get(s, key);
	*out = def;
	if (!v)
		return CNNVIZ_OK;
	if (json_is_array(v) && json_array_size(v) == 1)
		v = json_array_get(v, 0);
	if (!json_is_number(v))
		return bad_type(s, key, "a number");
	*out = json_number_value(v);
	return CNNVIZ_OK;
}

int cnnviz__cfg_bool(struct cnnviz__setup *s, const char *key, int def,
		     int *out)
{
	json_t *v = cfg_get(s, key);
	*out = def;
	if (!v)
		return CNNVIZ_OK;
	if (json_is_boolean(v))
		*out = json_is_true(v);
	else if (json_is_integer(v)) /* Keras 1 wrote bias: 1 */
		*out = json_integer_value(v) != 0;
	else
		return bad_type(s, key, "true or false");
	return CNNVIZ_OK;
}

int cnnviz__cfg_str(struct cnnviz__setup *s, const char *key,
		    const char *def, const char **out)
{
	json_t *v = cfg_get(s, key);
	*out = def;
	if (!v)
		return CNNVIZ_OK;
	if (!json_is_string(v))
		return bad_type(s, key, "a string");
	*out = json_string_value(v);
	return CNNVIZ_OK;
}

int cnnviz__cfg_padding(struct cnnviz__setup *s, int *same)
{
	const char *p;
	int rc = cnnviz__cfg_str(s, "padding", "valid", &p);
	if (rc)
		return rc;
	if (strcmp(p, "valid") == 0)
		*same = 0;
	else if (strcmp(p, "same") == 0)
		*same = 1;
	else
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "padding '%s' is not supported (valid, same)", p);
	return CNNVIZ_OK;
}

int cnnviz__cfg_activation(struct cnnviz__setup *s, const char *key,
			   struct cnnviz__act *out)
{
	json_t *v = cfg_get(s, key);
	const char *name = "linear";
	memset(out, 0, sizeof *out);
	if (v && json_is_object(v)) {
		/* Serialized function: {"class_name": ..., "config": {"name"}} */
		json_t *c = json_object_get(v, "config");
		json_t *n = c ? json_object_get(c, "name") : NULL;
		if (!json_is_string(n))
			n = json_object_get(v, "class_name");
		if (!json_is_string(n))
			return bad_type(s, key, "an activation name");
		name = json_string_value(n);
	} else if (v) {
		if (!json_is_string(v))
			return bad_type(s, key, "an activation name");
		name = json_string_value(v);
	}
	int kind = cnnviz__act_from_name(name);
	if (kind < 0)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "activation '%s' is not supported", name);
	out->kind = kind;
	out->keras3 = s->keras_major >= 3;
	out->alpha = kind == CNNVIZ__ACT_ELU ? 1.0f : 0.2f;
	out->max_value = -1.0f;
	return CNNVIZ_OK;
}

int cnnviz__cfg_axis(struct cnnviz__setup *s, const char *key, int64_t def,
		     int rank, int *axis)
{
	int64_t a;
	json_t *v = cfg_get(s, key);
	if (v && json_is_array(v) && json_array_size(v) != 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "config key '%s': only a single axis is supported",
					  key);
	int rc = cnnviz__cfg_int(s, key, def, &a);
	if (rc)
		return rc;
	/* Keras counts the batch axis: axis k > 0 is per-sample axis k-1. */
	if (a < 0)
		a += rank;
	else
		a -= 1;
	if (a < 0 || a >= rank)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "axis %lld is out of range for a rank-%d input",
					  (long long)(a < 0 ? a - rank : a + 1), rank + 1);
	*axis = (int)a;
	return CNNVIZ_OK;
}

