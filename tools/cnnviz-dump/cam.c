/*
 * --cam: explanation maps for one report folder. For each method, layer
 * and target it writes (the contract other tools read):
 *   cam/<method>/<layer, "/" as "__">/<target>.raw.npy  the raw map at the
 *        layer's resolution, before ReLU and upsampling
 *   cam/<method>/<layer>/<target>.npy  after ReLU and division by the max
 *        (or min-max), upsampled bilinear to the network input
 *   cam/<method>/<layer>/<target>.png  that map over the photo
 * <target> is the class index, "out<K>" for --output, "<a>-vs-<b>" for a
 * contrast. A map without positive evidence is written as zeros and
 * flagged with a warning instead of being stretched into noise.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"

struct target_spec {
	struct cnnviz_target t;
	char name[64];
	char label[160];
};

static int find_label(const struct report *r, const char *s, int64_t *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (end != s && !*end && v >= 0) {
		*out = v;
		return 0;
	}
	for (int i = 0; i < r->n_labels; i++)
		if (strcmp(r->labels[i], s) == 0) {
			*out = i;
			return 0;
		}
	return -1;
}

/* --class / --output into targets; `pred` are the model's outputs. */
static int parse_targets(struct report *r, const float *pred, int64_t n,
			 struct target_spec *out, int max, int *count)
{
	const struct args *a = r->a;
	*count = 0;
	if (a->cam_output) {
		char *end;
		long long k = strtoll(a->cam_output, &end, 10);
		if (end == a->cam_output || *end || k < 0 || k >= n)
			return cli_fail("--output %s: the model output has %lld values",
					a->cam_output, (long long)n);
		out[0].t = (struct cnnviz_target){-1, k, -1};
		snprintf(out[0].name, sizeof out[0].name, "out%lld", k);
		out[0].label[0] = '\0';
		*count = 1;
		return 0;
	}
	char *spec = strdup(a->cam_class ? a->cam_class : "top1"), *save = NULL;
	if (!spec)
		return cli_fail("out of memory");
	int rc = 0;
	for (char *item = strtok_r(spec, ",", &save); item && !rc && *count < max;
	     item = strtok_r(NULL, ",", &save)) {
		int k;
		char *vs = strstr(item, "-vs-");
		if (strncmp(item, "top", 3) == 0 && sscanf(item + 3, "%d", &k) == 1 && k >= 1) {
			char *used = calloc((size_t)n, 1);
			for (int j = 0; used && j < k && j < n && *count < max; j++) {
				int64_t best = -1;
				for (int64_t i = 0; i < n; i++)
					if (!used[i] && (best < 0 || pred[i] > pred[best]))
						best = i;
				used[best] = 1;
				struct target_spec *t = &out[(*count)++];
				t->t = (struct cnnviz_target){-1, best, -1};
				snprintf(t->name, sizeof t->name, "%lld", (long long)best);
				snprintf(t->label, sizeof t->label, "%s",
					 best < r->n_labels ? r->labels[best] : "");
			}
			free(used);
			continue;
		}
		int64_t x, y = -1;
		if (vs) {
			*vs = '\0';
			if (find_label(r, vs + 4, &y))
				rc = cli_fail("--class: unknown class '%s'", vs + 4);
		}
		if (!rc && find_label(r, item, &x))
			rc = cli_fail("--class: '%s' is not top<K>, a class index or a label%s",
				      item, r->n_labels ? "" : " (no --labels given)");
		if (!rc && (x >= n || y >= n))
			rc = cli_fail("--class: class %lld is outside the model's %lld outputs",
				      (long long)(x >= n ? x : y), (long long)n);
		if (rc)
			break;
		struct target_spec *t = &out[(*count)++];
		t->t = (struct cnnviz_target){-1, x, y};
		if (y >= 0) {
			snprintf(t->name, sizeof t->name, "%lld-vs-%lld", (long long)x, (long long)y);
			snprintf(t->label, sizeof t->label, "%s vs %s",
				 x < r->n_labels ? r->labels[x] : "?",
				 y < r->n_labels ? r->labels[y] : "?");
		} else {
			snprintf(t->name, sizeof t->name, "%lld", (long long)x);
			snprintf(t->label, sizeof t->label, "%s", x < r->n_labels ? r->labels[x] : "");
		}
	}
	free(spec);
	if (!rc && *count == 0)
		rc = cli_fail("--class: no target");
	return rc;
}

/* JSON has no NaN: undefined scores are null. */
static json_t *num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* ReLU then / max (or min-max); 0 everywhere without positive values. */
static void normalise(float *m, size_t n, int minmax)
{
	float lo = INFINITY, hi = -INFINITY;
	for (size_t i = 0; i < n; i++) {
		if (!minmax && m[i] < 0)
			m[i] = 0;
		lo = fminf(lo, m[i]);
		hi = fmaxf(hi, m[i]);
	}
	if (minmax) {
		for (size_t i = 0; i < n; i++)
			m[i] = hi > lo ? (m[i] - lo) / (hi - lo) : 0;
	} else {
		for (size_t i = 0; i < n; i++)
			m[i] = hi > 0 ? m[i] / hi : 0;
	}
}

static int write_map(struct report *r, const char *dir, const char *name,
		     const char *ext, const float *map, int64_t h, int64_t w,
		     struct cnnviz_error *e)
{
	char path[4600];
	int64_t shape[2] = {h, w};
	snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
	(void)r;
	return cnnviz_npy_write(path, map, 2, shape, e);
}

/* One method at one layer for one target: files + a manifest entry. */
static int one_map(struct report *r, const char *method, int layer,
		   const float *in, const struct target_spec *tg, json_t *list)
{
	const struct args *a = r->a;
	struct cnnviz_error e;
	int64_t h, w;
	const float *ins[1] = {in};
	if (cnnviz_cam_size(r->ex, method, layer, &h, &w, &e))
		return cli_report(&e);
	size_t n = (size_t)(h * w), up_n = (size_t)(r->in_h * r->in_w);
	float *raw = malloc(n * sizeof *raw), *norm = malloc(n * sizeof *norm);
	float *up = malloc(up_n * sizeof *up);
	int rc = 1;
	cnnviz_image *img = NULL;
	struct cnnviz_cam_info info;
	if (!raw || !norm || !up) {
		cli_fail("out of memory");
		goto out;
	}
	int crc = cnnviz_cam(r->ex, method, layer, ins, &tg->t, a->opts, raw, n, &info, &e);
	if (crc == CNNVIZ_ERR_UNSUPPORTED) {
		/* This method does not apply here (e.g. CAM without a GAP head):
		   say so and go on with the other maps. */
		char msg[1200];
		cnnviz_error_format(&e, msg, sizeof msg);
		fprintf(stderr, "cnnviz-dump: warning: %s: %s\n", method, msg);
		json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "method", method,
						      "target", tg->name, "error", msg));
		rc = 0;
		goto out;
	}
	if (crc) {
		cli_report(&e);
		goto out;
	}
	/* Input-space maps belong to the input layer. */
	int shown = layer;
	if (cnnviz_cam_method_is_input(method))
		shown = cnnviz_model_input_layer(r->m, 0);
	struct cnnviz_layer_info li;
	cnnviz_model_layer(r->m, shown, &li);
	char lname[600], dir[4200];
	cli_file_name(li.name, "", lname, sizeof lname);
	snprintf(dir, sizeof dir, "%s/cam/%s/%s", r->stage, method, lname);
	if (cli_mkdir_p(dir)) {
		cli_fail("%s: cannot create: %s", dir, strerror(errno));
		goto out;
	}
	memcpy(norm, raw, n * sizeof *norm);
	normalise(norm, n, a->cam_minmax);
	if (cnnviz_resize_map(norm, h, w, up, r->in_h, r->in_w, &e) ||
	    write_map(r, dir, tg->name, ".raw.npy", raw, h, w, &e) ||
	    write_map(r, dir, tg->name, ".npy", up, r->in_h, r->in_w, &e)) {
		cli_report(&e);
		goto out;
	}
	char png[4600];
	snprintf(png, sizeof png, "%s/%s.png", dir, tg->name);
	if (cnnviz_render_overlay(r->backdrop, norm, h, w, r->cam_opts, &img, &e) ||
	    cnnviz_image_write_png(img, png, &e)) {
		cli_report(&e);
		goto out;
	}
	char rel[900];
	snprintf(rel, sizeof rel, "cam/%s/%s/%s", method, lname, tg->name);
	json_t *warnings = json_array();
	if (info.flags & CNNVIZ_CAM_NO_POSITIVE)
		json_array_append_new(warnings, json_string(
			"no positive evidence: the map has no value above 0; drawn blank"));
	if (info.flags & CNNVIZ_CAM_FLAT)
		json_array_append_new(warnings, json_string("the map is constant"));
	if (info.flags & CNNVIZ_CAM_NONFINITE)
		json_array_append_new(warnings, json_string(
			"NaN or infinite values were set to 0"));
	if (strcmp(method, "guided_backprop") == 0)
		json_array_append_new(warnings, json_string(
			"guided backprop fails the model-randomisation sanity check "
			"(Adebayo et al. 2018): it shows edges, not what the model uses"));
	json_t *entry = json_pack("{s:s,s:s,s:i,s:s,s:s,s:I,s:I,s:o,s:s,s:o,s:I}",
				  "method", method, "layer", li.name, "layer_index", shown,
				  "target", tg->name, "label", tg->label,
				  "height", (json_int_t)h, "width", (json_int_t)w,
				  "score", num(info.score), "files", rel, "warnings", warnings,
				  "forward_runs", (json_int_t)info.forward_runs);
	if (strcmp(method, "ig") == 0)
		json_object_set_new(entry, "ig_completeness",
				    json_pack("{s:o,s:o,s:o,s:I}", "sum", num(info.ig_sum), "delta",
					      num(info.ig_delta), "relative_error", num(info.ig_error),
					      "steps", (json_int_t)info.ig_steps));
	if (strcmp(method, "ig") == 0 && !(info.ig_error <= 0.01))
		json_array_append_new(warnings, json_string(
			"integrated gradients: attributions miss f(x) - f(baseline) by more "
			"than 1% (see ig_completeness; raise --set ig_steps=N)"));
	if (a->cam_eval) {
		struct cnnviz_faithfulness fa;
		if (cnnviz_faithfulness(r->ex, ins, &tg->t, raw, h, w, a->opts, &fa, &e)) {
			json_decref(entry);
			cli_report(&e);
			goto out;
		}
		json_object_set_new(entry, "faithfulness",
				    json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "deletion", num(fa.deletion),
					      "insertion", num(fa.insertion), "avg_drop", num(fa.avg_drop),
					      "random_deletion", num(fa.random_deletion),
					      "random_insertion", num(fa.random_insertion),
					      "random_avg_drop", num(fa.random_avg_drop)));
	}
	if (a->cam_sanity) {
		struct cnnviz_sanity_step steps[64];
		int n_steps = 0;
		cnnviz_options *mo = NULL;
		cnnviz_options_new(&mo);
		if (a->weights)
			cnnviz_options_set(mo, "weights", a->weights, NULL);
		int src = cnnviz_sanity_cascade(a->model, mo, method, layer, ins, &tg->t,
						a->opts, steps, 64, &n_steps, &e);
		cnnviz_options_free(mo);
		if (src) {
			json_decref(entry);
			cli_report(&e);
			goto out;
		}
		json_t *js = json_array();
		for (int k = 0; k < n_steps; k++) {
			struct cnnviz_layer_info sl;
			cnnviz_model_layer(r->m, steps[k].layer, &sl);
			json_array_append_new(js, json_pack("{s:s,s:o}", "randomised", sl.name,
							    "spearman", num(steps[k].spearman)));
		}
		json_object_set_new(entry, "sanity", js);
	}
	json_array_append_new(list, entry);
	rc = 0;
out:
	cnnviz_image_free(img);
	free(raw);
	free(norm);
	free(up);
	return rc;
}

int report_cams(struct report *r, const float *in, json_t *list)
{
	const struct args *a = r->a;
	struct cnnviz_tensor t;
	cnnviz_session_output(r->s, 0, &t);
	struct target_spec targets[32];
	int n_targets;
	if (parse_targets(r, t.data, (int64_t)t.count, targets, 32, &n_targets))
		return 1;
	char *methods = strdup(a->cams), *save = NULL;
	int rc = methods ? 0 : cli_fail("out of memory");
	for (char *m = methods ? strtok_r(methods, ",", &save) : NULL; m && !rc;
	     m = strtok_r(NULL, ",", &save)) {
		int input_space = cnnviz_cam_method_is_input(m);
		for (int L = 0; L < cnnviz_model_layer_count(r->m) && !rc; L++) {
			if (input_space ? L != r->cam_layers_first : !r->cam_sel[L])
				continue;
			for (int k = 0; k < n_targets && !rc; k++)
				rc = one_map(r, m, input_space ? -1 : L, in, &targets[k], list);
		}
	}
	free(methods);
	return rc;
}
/*
 * The explainer keeps every layer's output and its gradient for max_batch
 * samples. Batches speed up the methods that run many perturbed copies
 * (Score-CAM, occlusion, SmoothGrad, IG ...), but a fixed batch of 8 made
 * MobileNetV2-224 take 0.8 GB and 0.6 s for one Grad-CAM, most of it
 * touching memory: the batch is what a budget allows, at most 8.
 */
#define CAM_BATCH_MAX 8
#define CAM_MEM_BUDGET (256.0 * 1024 * 1024)

static int64_t cam_batch(const cnnviz_model *m)
{
	double per = 0; /* bytes per sample: outputs and gradients */
	for (int i = 0; i < cnnviz_model_layer_count(m); i++) {
		struct cnnviz_layer_info li;
		cnnviz_model_layer(m, i, &li);
		double n = 1;
		for (int d = 1; d < li.rank; d++)
			n *= (double)li.shape[d];
		per += n * 2 * sizeof(float);
	}
	double b = per > 0 ? CAM_MEM_BUDGET / per : CAM_BATCH_MAX;
	return b < 1 ? 1 : b > CAM_BATCH_MAX ? CAM_BATCH_MAX : (int64_t)b;
}


/* Checks --cam names and resolves --cam-layer once per run. */
int report_cams_setup(struct report *r)
{
	const struct args *a = r->a;
	int n = cnnviz_model_layer_count(r->m);
	char *methods = strdup(a->cams), *save = NULL;
	if (!methods)
		return cli_fail("out of memory");
	int rc = 0;
	for (char *m = strtok_r(methods, ",", &save); m && !rc; m = strtok_r(NULL, ",", &save)) {
		int known = 0;
		for (int i = 0; cnnviz_cam_method(i); i++)
			known |= strcmp(cnnviz_cam_method(i), m) == 0;
		if (!known) {
			char list[512] = "";
			size_t o = 0;
			for (int i = 0; cnnviz_cam_method(i) && o < sizeof list; i++)
				o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "",
						      cnnviz_cam_method(i));
			rc = cli_fail("--cam: unknown method '%s' (known: %s)", m, list);
		}
	}
	free(methods);
	if (rc)
		return rc;
	r->cam_sel = calloc((size_t)n, 1);
	if (!r->cam_sel)
		return cli_fail("out of memory");
	r->cam_layers_first = 0;
	const char *spec = a->cam_layer ? a->cam_layer : "default";
	if (strcmp(spec, "default") == 0) {
		int d = cnnviz_cam_default_layer(r->m);
		if (d < 0)
			return cli_fail("%s: no layer with a spatial map leads to the output; "
					"give --cam-layer", a->model);
		r->cam_sel[d] = 1;
	} else if (cli_select_layers(r->m, spec, "--cam-layer", r->cam_sel)) {
		return 1;
	}
	for (int i = 0; i < n; i++) {
		struct cnnviz_layer_info li;
		cnnviz_model_layer(r->m, i, &li);
		if (r->cam_sel[i] && !(li.flags & CNNVIZ_LAYER_SPATIAL))
			return cli_fail("--cam-layer: layer '%s' has no spatial map (shape rank %d)",
					li.name, li.rank);
	}
	/*
	 * CAM overlays span 0..1 whatever the map (a blank map stays blank);
	 * they get their own copy of the options so that the activation
	 * overlays of later images keep their own ranges.
	 */
	if (cli_options_copy(a->opts, &r->cam_opts) ||
	    cnnviz_options_set(r->cam_opts, "overlay_range", "0,1", NULL))
		return cli_fail("out of memory");
	struct cnnviz_error e;
	if (cnnviz_explainer_new(r->m, cam_batch(r->m), a->opts, &r->ex, &e))
		return cli_report(&e);
	return 0;
}
