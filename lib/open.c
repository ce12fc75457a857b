/*
 * Opening a model file: recognise the container by its first bytes
 * (legacy Keras HDF5, Keras 3 .keras zip, architecture JSON + weights),
 * read the config and the weights source, then build, set up and load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zip.h>

#include "model.h"

struct source {
	const char *name;
	const void *mem; /* in-memory image, or NULL for a path */
	size_t size;
};

static void parse_version(struct cnnviz_model *m, const char *v)
{
	if (v && *v)
		snprintf(m->keras_version, sizeof m->keras_version, "%s", v);
}

static int finish_version(struct cnnviz_model *m, json_t *root)
{
	json_t *kv = json_object_get(root, "keras_version");
	if (!m->keras_version[0] && json_is_string(kv))
		parse_version(m, json_string_value(kv));
	m->keras1_config = cnnviz__config_is_keras1(root);
	if (m->keras_version[0])
		m->keras_major = atoi(m->keras_version);
	if (m->keras_major < 1 || m->keras_major > 9)
		m->keras_major = m->keras1_config ? 1 : 2;
	return CNNVIZ_OK;
}

/* Config text is built; now graph, shapes, weights. */
static int load_graph(struct cnnviz_model *m, const char *text, size_t len,
		      struct cnnviz__h5 *h, enum cnnviz__wformat fmt,
		      const char *group, struct cnnviz_error *err)
{
	json_t *root = NULL;
	int rc = cnnviz__parse_config(text, len, &m->limits, &root, err);
	if (rc)
		return rc;
	finish_version(m, root);
	if (m->keras1_config && fmt == WEIGHTS_LEGACY) {
		m->theano_kernels = cnnviz__weights_look_theano(h, group, &m->limits);
		if (m->theano_kernels < 0)
			rc = cnnviz__fail(err, m->theano_kernels, NULL, "out of memory");
	}
	if (!rc)
		rc = cnnviz__build_graph(m, root, err);
	if (!rc)
		rc = cnnviz__model_setup(m, err);
	if (!rc)
		rc = cnnviz__load_weights(m, h, fmt, group, err);
	if (!rc)
		rc = cnnviz__model_finish(m, err);
	for (int i = 0; i < m->n_layers; i++)
		m->layers[i]->cfg = NULL;
	json_decref(root);
	return rc;
}

static int read_file(const char *path, size_t max, char **out, size_t *len,
		     struct cnnviz_error *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return cnnviz__fail(err, CNNVIZ_ERR_IO, NULL, "cannot open: %m");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int rc = CNNVIZ_OK;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > max + 1)
				cap = max + 1;
			char *g = realloc(buf, cap + 1);
			if (!g) {
				rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
				break;
			}
			buf = g;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n > max) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_LIMIT, NULL,
					  "larger than the limit of %zu bytes", max);
			break;
		}
		if (got == 0) {
			if (ferror(f))
				rc = cnnviz__fail(err, CNNVIZ_ERR_IO, NULL, "read error");
			break;
		}
	}
	fclose(f);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return CNNVIZ_OK;
}

static int open_hdf5(struct cnnviz_model *m, const struct source *src,
		     struct cnnviz__h5 **h, struct cnnviz_error *err)
{
	if (src->mem)
		return cnnviz__h5_open_image(src->mem, src->size, src->name, h, err);
	return cnnviz__h5_open(src->name, h, err);
}

/* Legacy HDF5: model_config attribute + model_weights group. */
static int load_legacy(struct cnnviz_model *m, const struct source *src,
		       struct cnnviz_error *err)
{
	struct cnnviz__h5 *h = NULL;
	char *cfg = NULL, *ver = NULL;
	int rc = open_hdf5(m, src, &h, err);
	if (rc)
		return rc;
	rc = cnnviz__h5_attr_string(h, "/", "model_config",
				    (size_t)m->limits.max_json_bytes, &cfg, err);
	if (rc == 1) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_FORMAT, "model_config",
				  "the file has no model_config: it holds weights only; "
				  "open the architecture JSON and pass this file as its weights");
		goto out;
	}
	if (rc)
		goto out;
	const char *group = cnnviz__h5_is_group(h, "model_weights") ? "model_weights" : "/";
	/* An unreadable version is no version; running out of memory is not. */
	rc = cnnviz__h5_attr_string(h, "/", "keras_version", 256, &ver, NULL);
	if (rc != CNNVIZ_OK && rc != CNNVIZ_ERR_NOMEM)
		rc = cnnviz__h5_attr_string(h, group, "keras_version", 256, &ver, NULL);
	if (rc == CNNVIZ_ERR_NOMEM) {
		rc = cnnviz__fail(err, rc, "keras_version", "out of memory");
		goto out;
	}
	parse_version(m, ver);
	rc = load_graph(m, cfg, strlen(cfg), h, WEIGHTS_LEGACY, group, err);
out:
	free(ver);
	free(cfg);
	cnnviz__h5_close(h);
	return rc;
}

static int zip_read(zip_t *z, const char *entry, size_t max, char **out,
		    size_t *len, struct cnnviz_error *err)
{
	zip_stat_t st;
	if (zip_stat(z, entry, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
		return cnnviz__fail(err, CNNVIZ_ERR_FORMAT, entry,
				    "the .keras archive has no %s", entry);
	if (st.size > max)
		return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, entry,
				    "archive member is larger than the limit of %zu bytes", max);
	char *buf = malloc((size_t)st.size + 1);
	zip_file_t *f = buf ? zip_fopen(z, entry, 0) : NULL;
	int rc = CNNVIZ_OK;
	if (!buf)
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, entry, "out of memory");
	else if (!f || zip_fread(f, buf, st.size) != (zip_int64_t)st.size)
		rc = cnnviz__fail(err, CNNVIZ_ERR_FORMAT, entry,
				  "cannot read archive member (corrupt archive?)");
	if (f)
		zip_fclose(f);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[st.size] = '\0';
	*out = buf;
	*len = (size_t)st.size;
	return CNNVIZ_OK;
}

/* Keras 3 .keras: config.json + metadata.json + model.weights.h5. */
static int load_zip(struct cnnviz_model *m, const struct source *src,
		    struct cnnviz_error *err)
{
	zip_error_t ze;
	zip_error_init(&ze);
	zip_source_t *zs = src->mem ? zip_source_buffer_create(src->mem, src->size, 0, &ze)
				    : zip_source_file_create(src->name, 0, -1, &ze);
	zip_t *z = zs ? zip_open_from_source(zs, ZIP_RDONLY, &ze) : NULL;
	char *cfg = NULL, *meta = NULL, *wbuf = NULL;
	size_t cfg_len = 0, meta_len = 0, wlen = 0;
	struct cnnviz__h5 *h = NULL;
	int rc;
	if (!z) {
		if (zs)
			zip_source_free(zs);
		rc = cnnviz__fail(err, CNNVIZ_ERR_FORMAT, NULL,
				  "not a readable .keras archive: %s", zip_error_strerror(&ze));
		zip_error_fini(&ze);
		return rc;
	}
	rc = zip_read(z, "config.json", (size_t)m->limits.max_json_bytes, &cfg,
		      &cfg_len, err);
	/* metadata.json is optional, but not when reading it ran out of memory. */
	int mrc = rc ? rc : zip_read(z, "metadata.json", 1 << 16, &meta, &meta_len, NULL);
	if (mrc == CNNVIZ_OK) {
		json_t *mj = json_loadb(meta, meta_len, 0, NULL);
		json_t *v = mj ? json_object_get(mj, "keras_version") : NULL;
		parse_version(m, json_is_string(v) ? json_string_value(v) : NULL);
		json_decref(mj);
	} else if (!rc && mrc == CNNVIZ_ERR_NOMEM) {
		rc = cnnviz__fail(err, mrc, "metadata.json", "out of memory");
	}
	if (!rc)
		rc = zip_read(z, "model.weights.h5",
			      (size_t)m->limits.max_weight_bytes + (64u << 20), &wbuf,
			      &wlen, err);
	if (!rc)
		rc = cnnviz__h5_open_image(wbuf, wlen, "model.weights.h5", &h, err);
	free(wbuf); /* the HDF5 core driver keeps its own copy */
	if (!rc)
		rc = load_graph(m, cfg, cfg_len, h, WEIGHTS_ZIP, "/", err);
	cnnviz__h5_close(h);
	free(cfg);
	free(meta);
	zip_close(z);
	zip_error_fini(&ze);
	return rc;
}

/* Architecture JSON + weights-only HDF5. */
static int load_json(struct cnnviz_model *m, const char *path,
		     const cnnviz_options *opts, struct cnnviz_error *err)
{
	char *text = NULL, *guess = NULL;
	size_t len = 0;
	struct cnnviz__h5 *h = NULL;
	int rc = read_file(path, (size_t)m->limits.max_json_bytes, &text, &len, err);
	if (rc)
		return rc;
	const char *wpath = cnnviz__opt_str(opts, "weights", NULL);
	if (!wpath) {
		/* <stem>.weights.h5, then <stem>.h5, next to the JSON. */
		static const char *const tails[] = {".weights.h5", ".h5"};
		size_t n = strlen(path);
		size_t stem = n > 5 && strcmp(path + n - 5, ".json") == 0 ? n - 5 : n;
		guess = malloc(stem + 16);
		for (int i = 0; guess && i < 2 && !wpath; i++) {
			memcpy(guess, path, stem);
			strcpy(guess + stem, tails[i]);
			FILE *f = fopen(guess, "rb");
			if (f) {
				fclose(f);
				wpath = guess;
			}
		}
		if (!wpath) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
					  "an architecture JSON needs its weights file (--weights / option \"weights\")");
			goto out;
		}
	}
	rc = cnnviz__h5_open(wpath, &h, err);
	if (rc) {
		cnnviz__error_file(err, wpath);
		goto out;
	}
	const char *group = cnnviz__h5_is_group(h, "model_weights") ? "model_weights" : "/";
	char *ver = NULL;
	rc = cnnviz__h5_attr_string(h, group, "keras_version", 256, &ver, NULL);
	if (rc == CNNVIZ_OK)
		parse_version(m, ver);
	free(ver);
	if (rc == CNNVIZ_ERR_NOMEM) {
		rc = cnnviz__fail(err, rc, "keras_version", "out of memory");
		goto out;
	}
	rc = load_graph(m, text, len, h, WEIGHTS_LEGACY, group, err);
out:
	cnnviz__h5_close(h);
	free(guess);
	free(text);
	return rc;
}

static int sniff(const struct source *src, unsigned char head[8], size_t *n,
		 struct cnnviz_error *err)
{
	if (src->mem) {
		*n = src->size < 8 ? src->size : 8;
		memcpy(head, src->mem, *n);
		return CNNVIZ_OK;
	}
	FILE *f = fopen(src->name, "rb");
	if (!f)
		return cnnviz__fail(err, CNNVIZ_ERR_IO, NULL, "cannot open: %m");
	*n = fread(head, 1, 8, f);
	fclose(f);
	return CNNVIZ_OK;
}

static int open_any(const struct source *src, const cnnviz_options *opts,
		    cnnviz_model **out, struct cnnviz_error *err)
{
	/* Inner steps read a failure's status back from the record. */
	struct cnnviz_error local;
	if (!err)
		err = &local;
	cnnviz__error_clear(err);
	if (!out || !src->name)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "NULL argument");
	*out = NULL;
	struct cnnviz_model *m = calloc(1, sizeof *m);
	if (!m)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	cnnviz__limits_get(opts, &m->limits);
	m->source = strdup(src->name);
	unsigned char head[8];
	size_t n = 0;
	int rc = m->source ? sniff(src, head, &n, err)
			   : cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	if (rc)
		goto out;
	size_t ws = 0;
	while (ws < n && (head[ws] == ' ' || head[ws] == '\n' || head[ws] == '\r' ||
			  head[ws] == '\t'))
		ws++;
	if (cnnviz__h5_is_hdf5(head, n))
		rc = load_legacy(m, src, err);
	else if (n >= 4 && memcmp(head, "PK\x03\x04", 4) == 0)
		rc = load_zip(m, src, err);
	else if (!src->mem && ws < n && (head[ws] == '{' || head[ws] == '"'))
		rc = load_json(m, src->name, opts, err);
	else if (n == 0)
		rc = cnnviz__fail(err, CNNVIZ_ERR_FORMAT, NULL, "the file is empty");
	else
		rc = cnnviz__fail(err, CNNVIZ_ERR_FORMAT, NULL,
				  "not a Keras model (neither HDF5, .keras zip nor JSON)");
out:
	if (rc) {
		cnnviz__error_file(err, src->name);
		cnnviz_model_free(m);
		return rc;
	}
	*out = m;
	return CNNVIZ_OK;
}

int cnnviz_model_open(const char *path, const cnnviz_options *opts,
		      cnnviz_model **out, struct cnnviz_error *err)
{
	struct source src = {path, NULL, 0};
	return open_any(&src, opts, out, err);
}

int cnnviz_model_open_memory(const void *data, size_t size, const char *name,
			     const cnnviz_options *opts, cnnviz_model **out,
			     struct cnnviz_error *err)
{
	if (!data && size)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "NULL data");
	struct source src = {name ? name : "(memory)", data ? data : "", size};
	return open_any(&src, opts, out, err);
}

/* Every declared weight present and zero; shared calls share them. */
static int zero_weights(struct cnnviz_model *m, struct cnnviz_error *err)
{
	size_t total = 0, off = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < m->n_layers; i++) {
			struct cnnviz__layer *l = m->layers[i];
			if (!l->op || l->alias_of >= 0 || l->share_of >= 0)
				continue;
			for (int s = 0; s < l->n_w; s++) {
				size_t c = cnnviz__shape_count(&l->w[s].shape);
				if (pass == 0 && (cnnviz__add_size(total, c, &total) ||
						  total > (size_t)m->limits.max_weight_bytes / 4))
					return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, l->name,
							    "weights exceed max_weight_bytes");
				if (pass == 1) {
					l->w[s].present = 1;
					l->w[s].data = m->weights + off;
					off += c;
				}
			}
		}
		if (pass == 0 && !(m->weights = calloc(total + 1, sizeof(float))))
			return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	}
	for (int i = 0; i < m->n_layers; i++) {
		struct cnnviz__layer *l = m->layers[i];
		for (int s = 0; l->op && l->share_of >= 0 && s < l->n_w; s++) {
			const struct cnnviz__layer *f = m->layers[l->share_of];
			for (int t = 0; t < f->n_w; t++)
				if (strcmp(f->w[t].canon, l->w[s].canon) == 0 &&
				    cnnviz__shape_equal(&f->w[t].shape, &l->w[s].shape))
					l->w[s] = f->w[t];
			if (!l->w[s].data)
				return cnnviz__fail(err, CNNVIZ_ERR_SHAPE, l->name,
						    "shared layer needs other weights");
		}
	}
	return CNNVIZ_OK;
}

int cnnviz__model_from_config(const char *text, size_t len,
			      const cnnviz_options *opts, cnnviz_model **out,
			      struct cnnviz_error *err)
{
	struct cnnviz_error local;
	json_t *root = NULL;
	if (!err)
		err = &local;
	cnnviz__error_clear(err);
	*out = NULL;
	struct cnnviz_model *m = calloc(1, sizeof *m);
	if (!m)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	cnnviz__limits_get(opts, &m->limits);
	int rc = cnnviz__parse_config(text, len, &m->limits, &root, err);
	if (!rc) {
		finish_version(m, root);
		rc = cnnviz__build_graph(m, root, err);
	}
	if (!rc)
		rc = cnnviz__model_setup(m, err);
	if (!rc)
		rc = zero_weights(m, err);
	if (!rc)
		rc = cnnviz__model_finish(m, err);
	for (int i = 0; i < m->n_layers; i++)
		m->layers[i]->cfg = NULL;
	json_decref(root);
	if (rc) {
		cnnviz_model_free(m);
		return rc;
	}
	*out = m;
	return CNNVIZ_OK;
}

