/* Layer-by-layer comparison with stored reference outputs. */
#include "refcheck.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include <cnnviz.h>

const char *refcheck_shared_dir(void)
{
	static char dir[1024];
	const char *env = getenv("CNNVIZ_SHARED");
	snprintf(dir, sizeof dir, "%s", env && *env ? env : "../shared");
	char probe[1100];
	snprintf(probe, sizeof probe, "%s/models/models.tsv", dir);
	struct stat st;
	return stat(probe, &st) == 0 ? dir : NULL;
}

struct ctx {
	const struct refcase *c;
	json_t *layers;
	struct refresult *r;
	int mismatches;
};

static double max_abs(const float *x, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(x[i]) > m || isnan(x[i]))
			m = isnan(x[i]) ? INFINITY : fabs(x[i]);
	return m;
}

/* max|a-b| / max|ref| (floor 1e-7); NaN anywhere gives +inf. */
static double rel_diff(const float *got, const float *ref, size_t n,
		       size_t *worst)
{
	double scale = max_abs(ref, n), d = 0;
	if (scale < 1e-7)
		scale = 1e-7;
	*worst = 0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)got[i] - (double)ref[i]);
		if (isnan(e))
			e = INFINITY;
		if (e > d) {
			d = e;
			*worst = i;
		}
	}
	return d / scale;
}

static void note(struct ctx *x, const char *layer, double rel)
{
	if (rel > x->r->worst_layer || x->r->worst_name[0] == '\0') {
		x->r->worst_layer = rel;
		snprintf(x->r->worst_name, sizeof x->r->worst_name, "%s", layer);
	}
}

/* Counts every mismatch, prints the first few; the run goes on. */
static void fail_layer(struct ctx *x, const char *layer, const char *what)
{
	if (x->mismatches++ < 5)
		printf("  MISMATCH %s: layer '%s': %s\n", x->c->name, layer, what);
}

static int check_stats(struct ctx *x, json_t *e, const struct cnnviz_tensor *t,
		       const char *name)
{
	double mn = INFINITY, mx = -INFINITY, sum = 0, sq = 0;
	for (size_t i = 0; i < t->count; i++) {
		double v = t->data[i];
		mn = v < mn ? v : mn;
		mx = v > mx ? v : mx;
		sum += v;
	}
	double mean = sum / (double)t->count;
	for (size_t i = 0; i < t->count; i++)
		sq += (t->data[i] - mean) * (t->data[i] - mean);
	double std = sqrt(sq / (double)t->count);
	double rmin = json_number_value(json_object_get(e, "min"));
	double rmax = json_number_value(json_object_get(e, "max"));
	double rmean = json_number_value(json_object_get(e, "mean"));
	double rstd = json_number_value(json_object_get(e, "std"));
	double scale = fmax(fmax(fabs(rmin), fabs(rmax)), 1e-7);
	double rel = fmax(fmax(fabs(mn - rmin), fabs(mx - rmax)),
			  fmax(fabs(mean - rmean), fabs(std - rstd))) / scale;
	if (isnan(rel))
		rel = INFINITY;
	note(x, name, rel);
	x->r->stats_checked++;
	if (rel > REFCHECK_TOL) {
		char msg[160];
		snprintf(msg, sizeof msg,
			 "statistics differ by %.3g of max|ref| (tolerance %.0e)",
			 rel, REFCHECK_TOL);
		fail_layer(x, name, msg);
	}
	return 0;
}

static int hook(const struct cnnviz_layer_info *li, const struct cnnviz_tensor *t,
		void *user)
{
	struct ctx *x = user;
	json_t *e = json_array_get(x->layers, (size_t)li->index);
	const char *rname = json_string_value(json_object_get(e, "name"));
	if (!rname || strcmp(rname, li->name) != 0) {
		char msg[400];
		snprintf(msg, sizeof msg, "the reference has '%s' at index %d",
			 rname ? rname : "nothing", li->index);
		fail_layer(x, li->name, msg);
		return 1;
	}
	json_t *shape = json_object_get(e, "output_shape");
	int ok = json_array_size(shape) == (size_t)t->rank;
	for (int i = 0; ok && i < t->rank; i++)
		ok = json_integer_value(json_array_get(shape, (size_t)i)) == t->shape[i];
	if (!ok) {
		char *s = json_dumps(shape, JSON_COMPACT);
		printf("  MISMATCH %s: layer '%s': shape differs from reference %s\n",
		       x->c->name, li->name, s ? s : "?");
		free(s);
		x->mismatches++;
		return 0;
	}
	const char *file = json_string_value(json_object_get(e, "file"));
	if (!file)
		return check_stats(x, e, t, li->name);
	char path[2400];
	snprintf(path, sizeof path, "%s/%s", x->c->expected, file);
	float *ref;
	int rank;
	int64_t rshape[CNNVIZ_MAX_RANK];
	struct cnnviz_error err;
	if (cnnviz_npy_read(path, &ref, &rank, rshape, &err)) {
		char buf[1200];
		printf("  cannot read %s: %s\n", path, cnnviz_error_format(&err, buf, sizeof buf));
		x->mismatches++;
		return 0;
	}
	size_t worst;
	double rel = rel_diff(t->data, ref, t->count, &worst);
	note(x, li->name, rel);
	x->r->layers_checked++;
	if (rel > REFCHECK_TOL) {
		char msg[240];
		snprintf(msg, sizeof msg,
			 "max|diff|/max|ref| = %.3g (tolerance %.0e); worst element %zu: got %.9g, reference %.9g",
			 rel, REFCHECK_TOL, worst, t->data[worst], ref[worst]);
		fail_layer(x, li->name, msg);
	}
	free(ref);
	return 0;
}

static void argmax_check(struct ctx *x, const struct cnnviz_tensor *t,
			 const float *ref)
{
	int64_t rows = t->shape[0];
	size_t cols = t->count / (size_t)rows;
	x->r->argmax_ok = 1;
	for (int64_t b = 0; b < rows; b++) {
		size_t ga = 0, ra = 0;
		for (size_t i = 1; i < cols; i++) {
			if (t->data[b * cols + i] > t->data[b * cols + ga])
				ga = i;
			if (ref[b * cols + i] > ref[b * cols + ra])
				ra = i;
		}
		if (ga != ra)
			x->r->argmax_ok = 0;
	}
}

static int expect_refusal(const struct refcase *c, const cnnviz_options *o)
{
	cnnviz_model *m = NULL;
	struct cnnviz_error err;
	int rc = cnnviz_model_open(c->model, o, &m, &err);
	cnnviz_model_free(m);
	char buf[1200];
	cnnviz_error_format(&err, buf, sizeof buf);
	if (rc == CNNVIZ_OK) {
		printf("  %s: opened, but should be refused\n", c->name);
		return 1;
	}
	char quoted[300];
	snprintf(quoted, sizeof quoted, "'%s'", c->error_layer);
	if (c->error_layer[0] && !strstr(buf, quoted)) {
		printf("  %s: refused, but the message does not name layer %s: %s\n",
		       c->name, quoted, buf);
		return 1;
	}
	if (c->error_code[0] && strcmp(cnnviz_status_name(rc), c->error_code) != 0) {
		printf("  %s: refused with %s, expected %s: %s\n", c->name,
		       cnnviz_status_name(rc), c->error_code, buf);
		return 1;
	}
	if (!strstr(buf, c->model) && !(c->weights[0] && strstr(buf, c->weights))) {
		printf("  %s: the message does not name the file: %s\n", c->name, buf);
		return 1;
	}
	printf("  %s: refused as expected (%s): %s\n", c->name, cnnviz_status_name(rc), buf);
	return 0;
}

int refcheck_run(const struct refcase *c, struct refresult *r)
{
	memset(r, 0, sizeof *r);
	r->argmax_ok = -1;
	cnnviz_options *o = NULL;
	cnnviz_model *m = NULL;
	cnnviz_session *s = NULL;
	float *in = NULL, *out_ref = NULL;
	json_t *summary = NULL;
	struct cnnviz_error err;
	char buf[1200], path[2400];
	int rc = 1;
	cnnviz_options_new(&o);
	if (c->weights[0])
		cnnviz_options_set(o, "weights", c->weights, NULL);
	if (c->expect_error) {
		rc = expect_refusal(c, o);
		cnnviz_options_free(o);
		return rc;
	}
	snprintf(path, sizeof path, "%s/summary.json", c->expected);
	summary = json_load_file(path, 0, NULL);
	if (!summary) {
		printf("  %s: cannot read %s\n", c->name, path);
		goto out;
	}
	if (cnnviz_model_open(c->model, o, &m, &err)) {
		printf("  %s: cannot open: %s\n", c->name, cnnviz_error_format(&err, buf, sizeof buf));
		goto out;
	}
	/* every reference model has finite weights: no warning is due */
	if (cnnviz_model_warning(m, 0)) {
		printf("  %s: unexpected warning: %s\n", c->name,
		       cnnviz_model_warning(m, 0));
		goto out;
	}
	int rank;
	int64_t shape[CNNVIZ_MAX_RANK];
	snprintf(path, sizeof path, "%s/input.npy", c->expected);
	if (cnnviz_npy_read(path, &in, &rank, shape, &err)) {
		printf("  %s: %s\n", c->name, cnnviz_error_format(&err, buf, sizeof buf));
		goto out;
	}
	struct ctx x = {c, json_object_get(summary, "layers"), r, 0};
	if (cnnviz_session_new(m, shape[0], NULL, &s, &err) ||
	    cnnviz_session_run(s, (const float *const *)&in, shape[0], hook, &x, &err)) {
		printf("  %s: run failed: %s\n", c->name, cnnviz_error_format(&err, buf, sizeof buf));
		goto out;
	}
	if ((size_t)cnnviz_model_layer_count(m) != json_array_size(x.layers)) {
		printf("  %s: %d layers, the reference has %zu\n", c->name,
		       cnnviz_model_layer_count(m), json_array_size(x.layers));
		x.mismatches++;
	}
	struct cnnviz_tensor t;
	snprintf(path, sizeof path, "%s/output.npy", c->expected);
	if (cnnviz_session_output(s, 0, &t) ||
	    cnnviz_npy_read(path, &out_ref, &rank, shape, &err)) {
		printf("  %s: no final output to compare\n", c->name);
		goto out;
	}
	size_t worst;
	r->final_rel = rel_diff(t.data, out_ref, t.count, &worst);
	argmax_check(&x, &t, out_ref);
	if (r->final_rel > REFCHECK_TOL) {
		printf("  MISMATCH %s: final output differs by %.3g\n", c->name, r->final_rel);
		x.mismatches++;
	}
	rc = x.mismatches ? 1 : 0;
out:
	json_decref(summary);
	free(in);
	free(out_ref);
	cnnviz_session_free(s);
	cnnviz_model_free(m);
	cnnviz_options_free(o);
	return rc;
}

static int add_case(struct refcase **v, int *n, const struct refcase *c)
{
	struct refcase *g = realloc(*v, (size_t)(*n + 1) * sizeof *g);
	if (!g)
		return -1;
	*v = g;
	g[(*n)++] = *c;
	return 0;
}

/*
 * CNNVIZ_QUICK=1 (make valgrind) leaves out real models whose input has
 * more than 64k values per sample: under valgrind they take minutes, and
 * the smaller models exercise the same code.
 */
static int quick_skips(const struct refcase *c)
{
	const char *quick = getenv("CNNVIZ_QUICK");
	if (!quick || !atoi(quick) || c->expect_error)
		return 0;
	char path[1100];
	snprintf(path, sizeof path, "%s/summary.json", c->expected);
	json_t *s = json_load_file(path, 0, NULL);
	json_t *shape = json_object_get(s, "input_shape");
	long long per = 1;
	for (size_t i = 1; i < json_array_size(shape); i++)
		per *= json_integer_value(json_array_get(shape, i));
	json_decref(s);
	return per > 65536;
}

int refcheck_shared_cases(const char *shared, struct refcase **out, int *n)
{
	char path[1200], line[4096];
	snprintf(path, sizeof path, "%s/models/models.tsv", shared);
	FILE *f = fopen(path, "r");
	*out = NULL;
	*n = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\r\n")] = '\0';
		char *stem = strtok(line, "\t"), *model = strtok(NULL, "\t");
		char *weights = strtok(NULL, "\t"), *error = strtok(NULL, "\t");
		if (!stem || !model || !weights || !error)
			continue;
		struct refcase c = {0};
		snprintf(c.name, sizeof c.name, "%s", stem);
		snprintf(c.model, sizeof c.model, "%s/models/%s", shared, model);
		if (strcmp(weights, "-") != 0)
			snprintf(c.weights, sizeof c.weights, "%s/models/%s", shared, weights);
		snprintf(c.expected, sizeof c.expected, "%s/models/expected/%s", shared, stem);
		if (strcmp(error, "-") != 0) {
			c.expect_error = 1;
			snprintf(c.error_layer, sizeof c.error_layer, "%s", error);
		}
		if (quick_skips(&c))
			continue;
		if (add_case(out, n, &c)) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	/* The benchmark models have references too (not with CNNVIZ_QUICK=1,
	   which make valgrind sets: they are slow there). */
	static const char *const bench[] = {"fer_cnn_48", "fer_mini_xception",
					    "mobilenetv2_224_head"};
	const char *quick = getenv("CNNVIZ_QUICK");
	for (size_t i = 0; i < sizeof bench / sizeof bench[0] &&
			   !(quick && atoi(quick)); i++) {
		struct refcase c = {0};
		struct stat st;
		snprintf(c.name, sizeof c.name, "bench/%s", bench[i]);
		snprintf(c.expected, sizeof c.expected, "%s/models/bench/expected_%s",
			 shared, bench[i]);
		snprintf(path, sizeof path, "%s/summary.json", c.expected);
		if (stat(path, &st) != 0)
			continue;
		snprintf(c.model, sizeof c.model, "%s/models/bench/%s.h5", shared, bench[i]);
		if (stat(c.model, &st) != 0)
			snprintf(c.model, sizeof c.model, "%s/models/bench/%s.hdf5", shared, bench[i]);
		if (add_case(out, n, &c))
			return -1;
	}
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct refcase *)a)->name, ((const struct refcase *)b)->name);
}

int refcheck_fixture_cases(const char *root, struct refcase **out, int *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(root);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[1200];
		snprintf(path, sizeof path, "%s/%s/summary.json", root, e->d_name);
		json_t *s = json_load_file(path, 0, NULL);
		if (!s)
			continue;
		struct refcase c = {0};
		const char *src = json_string_value(json_object_get(s, "source_file"));
		const char *cfg = json_string_value(json_object_get(s, "config_file"));
		json_t *ee = json_object_get(s, "expected_error");
		snprintf(c.name, sizeof c.name, "%s", e->d_name);
		snprintf(c.expected, sizeof c.expected, "%s/%s", root, e->d_name);
		if (cfg) {
			snprintf(c.model, sizeof c.model, "%s/%s/%s", root, e->d_name, cfg);
			snprintf(c.weights, sizeof c.weights, "%s/%s/%s", root, e->d_name,
				 src ? src : "");
		} else {
			snprintf(c.model, sizeof c.model, "%s/%s/%s", root, e->d_name,
				 src ? src : "");
		}
		if (json_is_object(ee)) {
			const char *layer = json_string_value(json_object_get(ee, "layer"));
			const char *code = json_string_value(json_object_get(ee, "code"));
			c.expect_error = 1;
			snprintf(c.error_layer, sizeof c.error_layer, "%s", layer ? layer : "");
			snprintf(c.error_code, sizeof c.error_code, "%s", code ? code : "");
		}
		json_decref(s);
		if (add_case(out, n, &c)) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	qsort(*out, (size_t)*n, sizeof **out, by_name);
	return 0;
}
