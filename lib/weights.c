/*
 * Matching the weights in a file to the weights each layer declared.
 *
 * Weights are found through the file's own index -- the weight_names
 * attribute of each layer group (legacy HDF5), or the positional vars/<i>
 * of a Keras 3 .keras file -- never by guessing dataset names. A weight's
 * role (kernel, bias, gamma ...) comes from the last component of its name
 * when every name says it (Keras 1 "_W", Keras 2 "kernel:0", Keras 3
 * "kernel"), else from its position in the layer's variable order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

struct wfile {
	char *name; /* as in the file, e.g. "conv2d_1/kernel:0" */
	char *path; /* HDF5 dataset path */
	char *owner; /* layer the name says it belongs to (nested pools) */
	int taken;
	int slot;    /* the layer's weight it was matched to */
};

struct wlist {
	struct wfile *v;
	int n;
};

/* One pool per top-level container holding nested layers' weights. */
struct pool {
	char *top;
	struct wlist w;
};

struct loader {
	struct cnnviz_model *m;
	struct cnnviz__h5 *h;
	enum cnnviz__wformat fmt;
	const char *group;
	struct cnnviz_error *err;
	char **layer_names; /* legacy: groups that hold weights */
	int n_layer_names;
	char *consumed;     /* per layer_names entry */
	struct pool *pools;
	int n_pools;
};

static void wlist_free(struct wlist *w)
{
	for (int i = 0; i < w->n; i++) {
		free(w->v[i].name);
		free(w->v[i].path);
		free(w->v[i].owner);
	}
	free(w->v);
	w->v = NULL;
	w->n = 0;
}

static int wlist_add(struct loader *ld, struct wlist *w, const char *name,
		     const char *path, const char *owner)
{
	struct wfile *g = realloc(w->v, (size_t)(w->n + 1) * sizeof *g);
	if (!g)
		return cnnviz__fail(ld->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	w->v = g;
	struct wfile *f = &w->v[w->n];
	f->name = strdup(name);
	f->path = strdup(path);
	f->owner = owner ? strdup(owner) : NULL;
	f->taken = 0;
	if (!f->name || !f->path || (owner && !f->owner)) {
		free(f->name);
		free(f->path);
		free(f->owner);
		return cnnviz__fail(ld->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	}
	w->n++;
	return CNNVIZ_OK;
}

static char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s%s", a, (a[0] && strcmp(a, "/") != 0) ? "/" : "", b);
	return s;
}

/* ------------------------------------------------------- weight names */

static const char *const canon_names[] = {
	"depthwise_kernel", "pointwise_kernel", "moving_variance",
	"moving_mean", "kernel", "bias", "gamma", "beta", "alpha",
	"mean", "variance", "count", NULL};

static const struct {
	const char *from, *to;
} aliases[] = {{"running_mean", "moving_mean"},
	       {"running_std", "moving_variance"},
	       {"alphas", "alpha"},
	       {"W", "kernel"},
	       {"b", "bias"}};

static const char *canon_of(const char *s, size_t len)
{
	for (int i = 0; canon_names[i]; i++)
		if (strlen(canon_names[i]) == len && strncmp(s, canon_names[i], len) == 0)
			return canon_names[i];
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
		if (strlen(aliases[i].from) == len && strncmp(s, aliases[i].from, len) == 0)
			return aliases[i].to;
	return NULL;
}

/* Length of a ":<digits>" tail, 0 if none. */
static size_t colon_tail(const char *s, size_t len)
{
	size_t i = len;
	while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
		i--;
	if (i < len && i > 0 && s[i - 1] == ':')
		return len - i + 1;
	return 0;
}

/*
 * Canonical role of a weight name, or NULL when the name carries none
 * (e.g. "vars/0"). `owner_len` receives the length of the Keras 1 layer
 * prefix ("conv_1" in "conv_1_W:0") when that form is used, else 0.
 */
static const char *short_name(const char *wname, size_t *owner_len)
{
	const char *last = strrchr(wname, '/');
	last = last ? last + 1 : wname;
	size_t len = strlen(last);
	len -= colon_tail(last, len);
	*owner_len = 0;
	const char *c = canon_of(last, len);
	if (c)
		return c;
	/* Keras 1: "<layer>_<suffix>", longest suffix first. */
	const char *best = NULL;
	size_t best_len = 0;
	for (int pass = 0; pass < 2; pass++) {
		size_t count = pass ? sizeof aliases / sizeof aliases[0] : 0;
		for (size_t i = 0; pass ? i < count : canon_names[i] != NULL; i++) {
			const char *suf = pass ? aliases[i].from : canon_names[i];
			size_t sl = strlen(suf);
			if (len > sl + 1 && last[len - sl - 1] == '_' &&
			    strncmp(last + len - sl, suf, sl) == 0 && sl > best_len) {
				best = pass ? aliases[i].to : canon_names[i];
				best_len = sl;
				*owner_len = len - sl - 1;
			}
		}
	}
	return best;
}

/* Layer name a weight name belongs to ("a/conv/kernel:0" -> "conv"). */
static char *owner_of(const char *wname)
{
	const char *slash = strrchr(wname, '/');
	if (slash) {
		const char *start = slash;
		while (start > wname && start[-1] != '/')
			start--;
		return strndup(start, (size_t)(slash - start));
	}
	size_t ol;
	if (short_name(wname, &ol) && ol > 0)
		return strndup(wname, ol);
	return strdup(wname);
}

/* "conv2d_1_1" names "conv2d_1" (Keras 2.0.5 variable scopes). */
static int owner_matches(const char *owner, const char *lname)
{
	if (strcmp(owner, lname) == 0)
		return 1;
	size_t n = strlen(lname);
	if (strncmp(owner, lname, n) != 0 || owner[n] != '_' || !owner[n + 1])
		return 0;
	for (const char *p = owner + n + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

/* ----------------------------------------------------- weight sources */

static int legacy_group_list(struct loader *ld, const char *lname,
			     const char *owner_for_pool, struct wlist *out)
{
	char *g = path_join(ld->group, lname);
	char **names = NULL;
	int n = 0, rc;
	if (!g)
		return cnnviz__fail(ld->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	rc = cnnviz__h5_attr_strings(ld->h, g, "weight_names",
				     (size_t)ld->m->limits.max_json_bytes, &names,
				     &n, ld->err);
	if (rc == 1)
		rc = CNNVIZ_OK;
	for (int i = 0; !rc && i < n; i++) {
		char *p = path_join(g, names[i]);
		char *owner = owner_for_pool ? owner_of(names[i]) : NULL;
		if (!p || (owner_for_pool && !owner))
			rc = cnnviz__fail(ld->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		else
			rc = wlist_add(ld, out, names[i], p, owner);
		free(p);
		free(owner);
	}
	cnnviz__strings_free(names, n);
	free(g);
	for (int i = 0; i < ld->n_layer_names; i++)
		if (strcmp(ld->layer_names[i], lname) == 0)
			ld->consumed[i] = 1;
	return rc;
}

static struct pool *get_pool(struct loader *ld, const char *top)
{
	for (int i = 0; i < ld->n_pools; i++)
		if (strcmp(ld->pools[i].top, top) == 0)
			return &ld->pools[i];
	struct pool *p = realloc(ld->pools, (size_t)(ld->n_pools + 1) * sizeof *p);
	if (!p) {
		cnnviz__fail(ld->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		return NULL;
	}
	ld->pools = p;
	p = &ld->pools[ld->n_pools];
	memset(p, 0, sizeof *p);
	p->top = strdup(top);
	if (!p->top) {
		cnnviz__fail(ld->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		return NULL;
	}
	ld->n_pools++;
	if (legacy_group_list(ld, top, top, &p->w))
		return NULL;
	return p;
}

/* Numeric order of vars/<i>. */
static int cmp_numeric(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);
	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

static int zip_list(struct loader *ld, const char *wkey, struct wlist *out)
{
	/* "a/b/c" -> "layers/a/layers/b/layers/c/vars" */
	size_t n = strlen(wkey) * 2 + 64;
	for (const char *p = wkey; *p; p++)
		n += *p == '/' ? 8 : 0;
	char *path = malloc(n), *w = path;
	if (!path)
		return cnnviz__fail(ld->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	w += sprintf(w, "layers/");
	for (const char *p = wkey; *p; p++) {
		if (*p == '/')
			w += sprintf(w, "/layers/");
		else
			*w++ = *p;
	}
	strcpy(w, "/vars");
	char **names = NULL;
	int cnt = 0;
	int rc = cnnviz__h5_children(ld->h, path, 64, &names, &cnt, ld->err);
	if (rc == 1)
		rc = CNNVIZ_OK;
	if (!rc && cnt > 0)
		qsort(names, (size_t)cnt, sizeof *names, cmp_numeric);
	for (int i = 0; !rc && i < cnt; i++) {
		char nm[96];
		snprintf(nm, sizeof nm, "vars/%s", names[i]);
		char *p = path_join(path, names[i]);
		rc = p ? wlist_add(ld, out, nm, p, NULL)
		       : cnnviz__fail(ld->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		free(p);
	}
	cnnviz__strings_free(names, cnt);
	free(path);
	return rc;
}

/* The file's weights for one layer, in file order. */
static int layer_weights(struct loader *ld, const struct cnnviz__layer *l,
			 struct wlist *out)
{
	if (ld->fmt == WEIGHTS_ZIP)
		return zip_list(ld, l->wkey, out);
	const char *slash = strchr(l->wkey, '/');
	if (!slash)
		return legacy_group_list(ld, l->wkey, NULL, out);
	/* Nested: all inner weights sit in the top-level container's group. */
	char *top = strndup(l->wkey, (size_t)(slash - l->wkey));
	if (!top)
		return cnnviz__fail(ld->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	struct pool *p = get_pool(ld, top);
	free(top);
	if (!p)
		return ld->err ? ld->err->code : CNNVIZ_ERR_NOMEM;
	const char *lname = strrchr(l->wkey, '/') + 1;
	int rc = CNNVIZ_OK;
	for (int pass = 0; pass < 2; pass++) {
		int found = 0;
		for (int i = 0; !rc && i < p->w.n; i++) {
			struct wfile *f = &p->w.v[i];
			if (f->taken || !(pass ? owner_matches(f->owner, lname)
					       : strcmp(f->owner, lname) == 0))
				continue;
			f->taken = 1;
			found = 1;
			rc = wlist_add(ld, out, f->name, f->path, NULL);
		}
		if (found || rc)
			break;
	}
	return rc;
}

/* ------------------------------------------------------------ matching */

static int match_layer(struct loader *ld, struct cnnviz__layer *l,
		       struct wlist *files, int *slot_of_file)
{
	char where[320];
	snprintf(where, sizeof where, "layer '%s' (%s)", l->name, l->class_name);
	const char *roles[64];
	int informative = files->n <= 64;
	for (int i = 0; informative && i < files->n; i++) {
		size_t ol;
		roles[i] = short_name(files->v[i].name, &ol);
		if (!roles[i])
			informative = 0;
		for (int j = 0; informative && j < i; j++)
			if (roles[j] == roles[i])
				informative = 0;
	}
	for (int i = 0; i < files->n; i++) {
		slot_of_file[i] = -1;
		if (informative) {
			for (int s = 0; s < l->n_w; s++)
				if (strcmp(l->w[s].canon, roles[i]) == 0)
					slot_of_file[i] = s;
			/* Keras 3 calls DepthwiseConv2D's depthwise_kernel "kernel". */
			for (int s = 0; slot_of_file[i] < 0 && s < l->n_w; s++)
				if (strcmp(roles[i], "kernel") == 0 &&
				    strcmp(l->w[s].canon, "depthwise_kernel") == 0)
					slot_of_file[i] = s;
		} else if (i < l->n_w) {
			slot_of_file[i] = i; /* positional: Keras variable order */
		}
		if (slot_of_file[i] < 0)
			return cnnviz__fail(ld->err, CNNVIZ_ERR_WEIGHTS, where,
					    "the file holds weight '%s', which a %s layer with this config does not have",
					    files->v[i].name, l->class_name);
	}
	for (int s = 0; s < l->n_w; s++) {
		int found = -1;
		for (int i = 0; i < files->n; i++)
			if (slot_of_file[i] == s)
				found = i;
		if (found < 0) {
			if (l->w[s].optional)
				continue;
			return cnnviz__fail(ld->err, CNNVIZ_ERR_WEIGHTS, where,
					    "weight '%s' is missing from the file",
					    l->w[s].canon);
		}
		struct cnnviz__shape fs;
		int rc = cnnviz__h5_dataset_shape(ld->h, files->v[found].path, &fs, ld->err);
		if (rc)
			return rc;
		/* A scalar stored as shape (1,) or () is the same thing. */
		int scalar_ok = cnnviz__shape_count(&l->w[s].shape) == 1 &&
				cnnviz__shape_count(&fs) == 1 && fs.rank <= 1 &&
				l->w[s].shape.rank <= 1;
		if (!scalar_ok && !cnnviz__shape_equal(&fs, &l->w[s].shape)) {
			char a[96], b[96];
			return cnnviz__fail(ld->err, CNNVIZ_ERR_WEIGHTS, where,
					    "weight '%s' has shape %s in the file, the config implies %s",
					    files->v[found].name,
					    cnnviz__shape_str(&fs, a, sizeof a),
					    cnnviz__shape_str(&l->w[s].shape, b, sizeof b));
		}
		l->w[s].present = 1;
	}
	return CNNVIZ_OK;
}

static int check_leftovers(struct loader *ld)
{
	for (int i = 0; i < ld->n_pools; i++)
		for (int j = 0; j < ld->pools[i].w.n; j++)
			if (!ld->pools[i].w.v[j].taken)
				return cnnviz__fail(ld->err, CNNVIZ_ERR_WEIGHTS,
						    ld->pools[i].w.v[j].path,
						    "weight belongs to no layer of the nested model '%s'",
						    ld->pools[i].top);
	for (int i = 0; i < ld->n_layer_names; i++) {
		if (ld->consumed[i])
			continue;
		char *g = path_join(ld->group, ld->layer_names[i]);
		char **names = NULL;
		int n = 0;
		if (!g)
			return cnnviz__fail(ld->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		int rc = cnnviz__h5_attr_strings(ld->h, g, "weight_names",
						 (size_t)ld->m->limits.max_json_bytes,
						 &names, &n, ld->err);
		free(g);
		cnnviz__strings_free(names, n);
		if (rc < 0)
			return rc;
		if (n > 0) {
			char where[300];
			snprintf(where, sizeof where, "layer '%s'", ld->layer_names[i]);
			return cnnviz__fail(ld->err, CNNVIZ_ERR_WEIGHTS, where,
					    "the file has weights for a layer the model config does not contain");
		}
	}
	return CNNVIZ_OK;
}

static int share_weights(struct loader *ld, struct cnnviz__layer *l)
{
	struct cnnviz__layer *first = ld->m->layers[l->share_of];
	for (int s = 0; s < l->n_w; s++) {
		int found = 0;
		for (int t = 0; t < first->n_w; t++) {
			if (strcmp(first->w[t].canon, l->w[s].canon) != 0)
				continue;
			if (!cnnviz__shape_equal(&first->w[t].shape, &l->w[s].shape))
				return cnnviz__fail(ld->err, CNNVIZ_ERR_SHAPE, l->name,
						    "shared layer called on inputs that need other weight shapes");
			l->w[s] = first->w[t];
			found = 1;
		}
		if (!found && !l->w[s].optional)
			return cnnviz__fail(ld->err, CNNVIZ_ERR_WEIGHTS, l->name,
					    "shared layer weight '%s' not found", l->w[s].canon);
	}
	return CNNVIZ_OK;
}

static int loads_weights(const struct cnnviz__layer *l)
{
	return l->op && l->alias_of < 0 && l->input_slot < 0 && l->share_of < 0;
}

int cnnviz__load_weights(struct cnnviz_model *m, struct cnnviz__h5 *h,
			 enum cnnviz__wformat fmt, const char *group,
			 struct cnnviz_error *err)
{
	struct loader ld = {m, h, fmt, group, err, NULL, 0, NULL, NULL, 0};
	struct wlist *lists = calloc((size_t)m->n_layers, sizeof *lists);
	int rc = CNNVIZ_OK;
	if (!lists)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	if (fmt == WEIGHTS_LEGACY) {
		rc = cnnviz__h5_attr_strings(h, group, "layer_names",
					     (size_t)m->limits.max_json_bytes,
					     &ld.layer_names, &ld.n_layer_names, err);
		if (rc == 1)
			rc = CNNVIZ_OK;
		ld.consumed = calloc((size_t)ld.n_layer_names + 1, 1);
		if (!rc && !ld.consumed)
			rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	}
	/* Pass 1: find and check every layer's weights. */
	size_t total = 0;
	for (int i = 0; !rc && i < m->n_layers; i++) {
		struct cnnviz__layer *l = m->layers[i];
		if (!loads_weights(l))
			continue;
		int slot_of_file[64];
		rc = layer_weights(&ld, l, &lists[i]);
		if (!rc && lists[i].n > 64)
			rc = cnnviz__fail(err, CNNVIZ_ERR_WEIGHTS, l->name,
					  "too many weights for one layer");
		if (!rc)
			rc = match_layer(&ld, l, &lists[i], slot_of_file);
		for (int f = 0; !rc && f < lists[i].n; f++)
			lists[i].v[f].slot = slot_of_file[f];
		for (int s = 0; !rc && s < l->n_w; s++) {
			if (!l->w[s].present)
				continue;
			size_t c = cnnviz__shape_count(&l->w[s].shape);
			if (cnnviz__add_size(total, c, &total) ||
			    total > (size_t)m->limits.max_weight_bytes / sizeof(float))
				rc = cnnviz__fail(err, CNNVIZ_ERR_LIMIT, l->name,
						  "weights exceed the limit of %lld bytes",
						  (long long)m->limits.max_weight_bytes);
		}
	}
	if (!rc)
		rc = check_leftovers(&ld);
	/* Pass 2: one arena for all parameters, read in place. */
	if (!rc && total > 0) {
		m->weights = malloc(total * sizeof(float));
		if (!m->weights)
			rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
					  "out of memory for %zu weights", total);
	}
	size_t off = 0;
	for (int i = 0; !rc && i < m->n_layers; i++) {
		struct cnnviz__layer *l = m->layers[i];
		if (!loads_weights(l))
			continue;
		for (int f = 0; !rc && f < lists[i].n; f++) {
			struct cnnviz__weight *w = &l->w[lists[i].v[f].slot];
			size_t c = cnnviz__shape_count(&w->shape);
			w->data = m->weights + off;
			off += c;
			rc = cnnviz__h5_read_float(h, lists[i].v[f].path, w->data, c, err);
		}
	}
	for (int i = 0; !rc && i < m->n_layers; i++)
		if (m->layers[i]->share_of >= 0 && m->layers[i]->op)
			rc = share_weights(&ld, m->layers[i]);
	for (int i = 0; i < m->n_layers; i++)
		wlist_free(&lists[i]);
	free(lists);
	for (int i = 0; i < ld.n_pools; i++) {
		free(ld.pools[i].top);
		wlist_free(&ld.pools[i].w);
	}
	free(ld.pools);
	cnnviz__strings_free(ld.layer_names, ld.n_layer_names);
	free(ld.consumed);
	return rc;
}

int cnnviz__weights_look_theano(struct cnnviz__h5 *h, const char *group,
				const struct cnnviz__limits *lim)
{
	char **layers = NULL;
	int n = 0, seen = 0, tf = 0, oom = 0;
	int rc = cnnviz__h5_attr_strings(h, group, "layer_names",
					 (size_t)lim->max_json_bytes, &layers, &n,
					 NULL);
	if (rc)
		return rc == CNNVIZ_ERR_NOMEM ? rc : 0;
	for (int i = 0; i < n && !tf && !oom; i++) {
		char *g = path_join(group, layers[i]);
		char **names = NULL;
		int k = 0;
		rc = g ? cnnviz__h5_attr_strings(h, g, "weight_names",
						 (size_t)lim->max_json_bytes,
						 &names, &k, NULL)
		       : CNNVIZ_ERR_NOMEM;
		oom = rc == CNNVIZ_ERR_NOMEM;
		if (rc == CNNVIZ_OK) {
			for (int j = 0; j < k; j++) {
				seen = 1;
				if (colon_tail(names[j], strlen(names[j])))
					tf = 1;
			}
		}
		cnnviz__strings_free(names, k);
		free(g);
	}
	cnnviz__strings_free(layers, n);
	return oom ? CNNVIZ_ERR_NOMEM : seen && !tf;
}
