/* --summary and --input-npy/--npy-dir: the core contract. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* Thousands separators, as Keras prints parameter counts. */
static const char *grouped(int64_t v, char *buf, size_t size)
{
	char raw[32];
	snprintf(raw, sizeof raw, "%lld", (long long)v);
	size_t len = strlen(raw), o = 0;
	for (size_t i = 0; i < len && o + 2 < size; i++) {
		if (i && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = raw[i];
	}
	buf[o] = '\0';
	return buf;
}

int cli_summary(const struct args *a)
{
	cnnviz_model *m;
	if (cli_open_model(a, &m))
		return 1;
	const char *kv = cnnviz_model_keras_version(m);
	const char *rule = "_______________________________________________________"
			   "______________________________________";
	const char *dbl = "======================================================="
			  "======================================";
	printf("Model: \"%s\"%s%s%s\n", a->model, *kv ? " (Keras " : "", kv,
	       *kv ? ")" : "");
	printf("%s\n %-50s %-26s %12s\n%s\n", rule, "Layer (type)", "Output Shape",
	       "Param #", dbl);
	for (int i = 0; i < cnnviz_model_layer_count(m); i++) {
		struct cnnviz_layer_info li;
		char who[300], shape[128], params[32];
		cnnviz_model_layer(m, i, &li);
		snprintf(who, sizeof who, "%s (%s)", li.name, li.class_name);
		cli_shape_text(li.shape, li.rank, 1, shape, sizeof shape);
		printf(" %-50s %-26s %12s\n", who, shape,
		       grouped(li.params, params, sizeof params));
	}
	char total[32];
	printf("%s\nTotal params: %s\n%s\n", dbl,
	       grouped(cnnviz_model_param_count(m), total, sizeof total), rule);
	cnnviz_model_free(m);
	return 0;
}

struct dump {
	const char *stage;
	json_t *layers;
	int failed;
	struct cnnviz_error err;
};

static int dump_hook(const struct cnnviz_layer_info *li,
		     const struct cnnviz_tensor *t, void *user)
{
	struct dump *d = user;
	char fname[600], path[4200];
	cli_file_name(li->name, ".npy", fname, sizeof fname);
	snprintf(path, sizeof path, "%s/%s", d->stage, fname);
	if (cnnviz_npy_write(path, t->data, t->rank, t->shape, &d->err)) {
		d->failed = 1;
		return 1;
	}
	json_t *shape = json_array();
	for (int i = 0; i < t->rank; i++)
		json_array_append_new(shape, json_integer(t->shape[i]));
	json_array_append_new(d->layers,
			      json_pack("{s:i,s:s,s:s,s:o,s:s}", "index", li->index,
					"name", li->name, "class", li->class_name,
					"output_shape", shape, "file", fname));
	return 0;
}

/* Reads the --input-npy files and checks them against the model. */
static int read_inputs(const struct args *a, const cnnviz_model *m,
		       float **data, int64_t *batch)
{
	int n = cnnviz_model_input_count(m);
	if (a->n_inputs != n)
		return cli_fail("%s: the model has %d input%s, %d --input-npy given",
				a->model, n, n == 1 ? "" : "s", a->n_inputs);
	*batch = -1;
	for (int i = 0; i < n; i++) {
		struct cnnviz_error e;
		struct cnnviz_layer_info li;
		int rank;
		int64_t shape[CNNVIZ_MAX_RANK];
		if (cnnviz_npy_read(a->inputs[i], &data[i], &rank, shape, &e))
			return cli_report(&e);
		cnnviz_model_layer(m, cnnviz_model_input_layer(m, i), &li);
		int ok = rank == li.rank && (*batch < 0 || shape[0] == *batch) &&
			 shape[0] >= 1;
		for (int k = 1; ok && k < rank; k++)
			ok = shape[k] == li.shape[k];
		if (!ok) {
			char want[128], got[128];
			cli_shape_text(li.shape, li.rank, 1, want, sizeof want);
			cli_shape_text(shape, rank, 0, got, sizeof got);
			return cli_fail("%s: input '%s' has shape %s, the model wants %s",
					a->inputs[i], li.name, got, want);
		}
		*batch = shape[0];
	}
	return 0;
}

int cli_dump_npy(const struct args *a)
{
	cnnviz_model *m = NULL;
	cnnviz_session *s = NULL;
	float *in[MAX_INPUTS] = {0};
	int64_t batch = 0;
	int rc = 1;
	char stage[4200] = "";
	struct dump d = {0};
	struct cnnviz_error e;
	if (cli_open_model(a, &m) || read_inputs(a, m, in, &batch))
		goto out;
	if (cli_mkdir_p(a->npy_dir) != 0) {
		cli_fail("%s: cannot create folder: %s", a->npy_dir, strerror(errno));
		goto out;
	}
	if (cli_stage_dir(a->npy_dir, stage, sizeof stage) != 0) {
		cli_fail("%s: cannot write in folder: %s", a->npy_dir, strerror(errno));
		goto out;
	}
	if (cnnviz_session_new(m, batch, a->opts, &s, &e)) {
		cli_report(&e);
		goto out;
	}
	d.stage = stage;
	d.layers = json_array();
	if (cnnviz_session_run(s, (const float *const *)in, batch, dump_hook, &d, &e)) {
		cli_report(d.failed ? &d.err : &e);
		goto out;
	}
	char path[4200];
	snprintf(path, sizeof path, "%s/layers.json", stage);
	json_t *doc = json_pack("{s:s,s:s,s:I,s:O}", "model", a->model,
				"keras_version", cnnviz_model_keras_version(m),
				"batch", (json_int_t)batch, "layers", d.layers);
	int wrc = cli_write_json(doc, path);
	json_decref(doc);
	if (wrc != 0) {
		cli_fail("%s: cannot write layers.json", a->npy_dir);
		goto out;
	}
	if (cli_publish_files(stage, a->npy_dir) != 0) {
		cli_fail("%s: cannot move results into place: %s", a->npy_dir,
			 strerror(errno));
		goto out;
	}
	stage[0] = '\0';
	if (!a->quiet)
		printf("wrote %zu layer outputs and layers.json to %s\n",
		       json_array_size(d.layers), a->npy_dir);
	rc = 0;
out:
	if (stage[0])
		cli_remove_tree(stage);
	json_decref(d.layers);
	for (int i = 0; i < MAX_INPUTS; i++)
		cnnviz_free(in[i]);
	cnnviz_session_free(s);
	cnnviz_model_free(m);
	return rc;
}
