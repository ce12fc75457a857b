/*
 * IMAGE... -o DIR: for each photo, run the model once and write a report
 * folder: predictions, feature-map grids, overlays, statistics, the exact
 * input tensor and picture, manifest.json and index.html. Each folder is
 * built in a staging folder and renamed into place when complete.
 */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"

static const char *const fer2013[] = {"angry", "disgust", "fear", "happy",
				      "sad", "surprise", "neutral"};

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ------------------------------------------------------------ labels */

static int add_label(struct report *r, const char *s, size_t n)
{
	char **g = realloc(r->labels, (size_t)(r->n_labels + 1) * sizeof *g);
	if (!g)
		return -1;
	r->labels = g;
	r->labels[r->n_labels] = strndup(s, n);
	return r->labels[r->n_labels++] ? 0 : -1;
}

static int load_labels(struct report *r, const char *spec)
{
	if (!spec)
		return 0;
	if (strcmp(spec, "fer2013") == 0) {
		for (size_t i = 0; i < sizeof fer2013 / sizeof fer2013[0]; i++)
			if (add_label(r, fer2013[i], strlen(fer2013[i])))
				return cli_fail("out of memory");
		return 0;
	}
	struct stat st;
	if (stat(spec, &st) == 0 && S_ISREG(st.st_mode)) {
		FILE *f = fopen(spec, "r");
		char line[1024];
		if (!f)
			return cli_fail("%s: cannot read labels: %s", spec, strerror(errno));
		while (fgets(line, sizeof line, f)) {
			size_t n = strcspn(line, "\r\n");
			if (n && add_label(r, line, n)) {
				fclose(f);
				return cli_fail("out of memory");
			}
		}
		fclose(f);
		if (r->n_labels == 0)
			return cli_fail("%s: the labels file is empty", spec);
		return 0;
	}
	if (!strchr(spec, ','))
		return cli_fail("--labels '%s': not a file, not fer2013, and not a comma list",
				spec);
	for (const char *p = spec;;) {
		size_t n = strcspn(p, ",");
		if (add_label(r, p, n))
			return cli_fail("out of memory");
		if (!p[n])
			break;
		p += n + 1;
	}
	return 0;
}

/* ------------------------------------------------------- input paths */

static int is_image_name(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
		       strcasecmp(dot, ".png") == 0);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_path(char ***v, int *n, const char *p)
{
	char **g = realloc(*v, (size_t)(*n + 1) * sizeof *g);
	if (!g)
		return -1;
	*v = g;
	g[*n] = strdup(p);
	return g[(*n)++] ? 0 : -1;
}

/* Files as given; folders: their JPEG/PNG files, sorted; globs expanded. */
static int expand_paths(const struct args *a, char ***out, int *n)
{
	*out = NULL;
	*n = 0;
	for (int i = 0; i < a->n_paths; i++) {
		const char *p = a->paths[i];
		struct stat st;
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			DIR *d = opendir(p);
			if (!d)
				return cli_fail("%s: cannot list folder: %s", p, strerror(errno));
			int first = *n;
			struct dirent *e;
			while ((e = readdir(d))) {
				char full[4200];
				if (e->d_name[0] == '.' || !is_image_name(e->d_name))
					continue;
				snprintf(full, sizeof full, "%s/%s", p, e->d_name);
				if (add_path(out, n, full)) {
					closedir(d);
					return cli_fail("out of memory");
				}
			}
			closedir(d);
			if (*n == first)
				return cli_fail("%s: no .jpg, .jpeg or .png files in this folder", p);
			qsort(*out + first, (size_t)(*n - first), sizeof **out, cmp_str);
		} else if (stat(p, &st) != 0 && strpbrk(p, "*?[")) {
			glob_t g;
			if (glob(p, 0, NULL, &g) != 0)
				return cli_fail("%s: no file matches this pattern", p);
			for (size_t k = 0; k < g.gl_pathc; k++)
				if (add_path(out, n, g.gl_pathv[k])) {
					globfree(&g);
					return cli_fail("out of memory");
				}
			globfree(&g);
		} else if (add_path(out, n, p)) {
			return cli_fail("out of memory");
		}
	}
	return 0;
}

/* "photos/face.jpg" -> "face"; repeated stems get -2, -3 ... */
static void stem_of(const char *path, char **used, int n_used, char *buf,
		    size_t size)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t len = strcspn(base, ".");
	if (len == 0)
		len = strlen(base);
	char stem[256];
	snprintf(stem, sizeof stem, "%.*s", (int)(len < 200 ? len : 200), base);
	snprintf(buf, size, "%s", stem);
	for (int k = 2;; k++) {
		int clash = 0;
		for (int i = 0; i < n_used; i++)
			if (strcmp(used[i], buf) == 0)
				clash = 1;
		if (!clash)
			return;
		snprintf(buf, size, "%s-%d", stem, k);
	}
}

/* ------------------------------------------------------ the input */

/* The model input as an image: height, width, channels, layout. */
static int input_geometry(struct report *r)
{
	const cnnviz_model *m = r->m;
	if (cnnviz_model_input_count(m) != 1)
		return cli_fail("%s: the model has %d inputs; images can feed one-input "
				"models only (use --input-npy)", r->a->model,
				cnnviz_model_input_count(m));
	struct cnnviz_layer_info li;
	cnnviz_model_layer(m, cnnviz_model_input_layer(m, 0), &li);
	r->in_cf = (li.flags & CNNVIZ_LAYER_CHANNELS_FIRST) != 0;
	if (li.rank == 3) { /* (H, W): gray without a channel axis */
		r->in_rank2 = 1;
		r->in_cf = 0;
		r->in_h = li.shape[1];
		r->in_w = li.shape[2];
		r->in_c = 1;
	} else if (li.rank == 4) {
		r->in_h = li.shape[r->in_cf ? 2 : 1];
		r->in_w = li.shape[r->in_cf ? 3 : 2];
		r->in_c = li.shape[r->in_cf ? 1 : 3];
	} else {
		r->in_c = 0;
	}
	if (r->in_c != 1 && r->in_c != 3) {
		char s[128];
		cli_shape_text(li.shape, li.rank, 1, s, sizeof s);
		return cli_fail("%s: the model input %s is not a gray or RGB image; "
				"feed it with --input-npy", r->a->model, s);
	}
	r->in_count = (size_t)(r->in_h * r->in_w * r->in_c);
	return 0;
}

/* ------------------------------------------------------------- hook */

static void stats_of(const struct cnnviz_layer_info *li, const float *x,
		     size_t count, json_t *entry)
{
	double mn = INFINITY, mx = -INFINITY, sum = 0, sq = 0;
	size_t zeros = 0, nonfinite = 0;
	for (size_t i = 0; i < count; i++) {
		double v = x[i];
		if (!isfinite(v)) {
			nonfinite++;
			continue;
		}
		mn = v < mn ? v : mn;
		mx = v > mx ? v : mx;
		sum += v;
		zeros += v == 0;
	}
	size_t finite = count - nonfinite;
	double mean = finite ? sum / (double)finite : 0;
	for (size_t i = 0; i < count; i++)
		if (isfinite(x[i]))
			sq += (x[i] - mean) * (x[i] - mean);
	/* Channels: axis 1 of (C,H,W), else the last axis. */
	int cf = (li->flags & CNNVIZ_LAYER_CHANNELS_FIRST) != 0;
	int64_t ch = cf ? li->shape[1] : li->shape[li->rank - 1];
	int64_t inner = cf ? (int64_t)(count / (size_t)ch) : 1;
	int64_t stride = cf ? 1 : ch;
	int64_t dead = 0, flat = 0;
	for (int64_t c = 0; c < ch && ch > 0; c++) {
		float lo = INFINITY, hi = -INFINITY;
		size_t n = count / (size_t)ch;
		for (size_t k = 0; k < n; k++) {
			float v = cf ? x[c * inner + (int64_t)k] : x[(int64_t)k * stride + c];
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
		if (lo == 0 && hi == 0)
			dead++;
		else if (lo == hi)
			flat++;
	}
	json_object_set_new(entry, "stats",
			    json_pack("{s:f,s:f,s:f,s:f,s:f,s:I,s:I,s:I,s:I}", "min",
				      finite ? mn : 0.0, "max", finite ? mx : 0.0,
				      "mean", mean,
				      "std", finite ? sqrt(sq / (double)finite) : 0.0,
				      "zero_fraction", count ? (double)zeros / (double)count : 0.0,
				      "channels", (json_int_t)ch, "dead_channels",
				      (json_int_t)dead, "flat_channels", (json_int_t)flat,
				      "nonfinite", (json_int_t)nonfinite));
}

/* Sample 0 of a spatial layer as (H, W, C), transposed when needed. */
static const float *as_hwc(struct report *r, const struct cnnviz_layer_info *li,
			   const float *x, int64_t *h, int64_t *w, int64_t *c)
{
	int cf = (li->flags & CNNVIZ_LAYER_CHANNELS_FIRST) != 0;
	*h = li->shape[cf ? 2 : 1];
	*w = li->shape[cf ? 3 : 2];
	*c = li->shape[cf ? 1 : 3];
	if (!cf)
		return x;
	size_t n = (size_t)(*h * *w * *c);
	if (n > r->tmp_cap) {
		float *g = realloc(r->tmp, n * sizeof *g);
		if (!g)
			return NULL;
		r->tmp = g;
		r->tmp_cap = n;
	}
	for (int64_t ch = 0; ch < *c; ch++)
		for (int64_t p = 0; p < *h * *w; p++)
			r->tmp[p * *c + ch] = x[ch * *h * *w + p];
	return r->tmp;
}

static int hook_fail(struct report *r, const struct cnnviz_error *e,
		     const char *msg)
{
	if (e)
		r->err = *e;
	else
		snprintf(r->err.message, sizeof r->err.message, "%s", msg);
	r->failed = 1;
	return 1;
}

static int draw_grid(struct report *r, const struct cnnviz_layer_info *li,
		     const struct cnnviz_tensor *t, json_t *entry)
{
	int64_t h, w, c;
	const float *x;
	if (li->flags & CNNVIZ_LAYER_SPATIAL) {
		x = as_hwc(r, li, t->data, &h, &w, &c);
		if (!x)
			return hook_fail(r, NULL, "out of memory");
	} else if (li->rank == 2) { /* a vector: one strip */
		x = t->data;
		h = 1;
		w = li->shape[1];
		c = 1;
	} else {
		return 0;
	}
	char label[512], fname[600], path[4200];
	snprintf(label, sizeof label, "%s (%s)", li->name, li->class_name);
	uint8_t *flags = calloc((size_t)c, 1);
	cnnviz_image *img = NULL;
	struct cnnviz_error e;
	if (!flags)
		return hook_fail(r, NULL, "out of memory");
	int rc = cnnviz_render_grid(x, h, w, c, label, r->a->opts, &img, flags, &e);
	if (!rc) {
		cli_file_name(li->name, ".png", fname, sizeof fname);
		snprintf(path, sizeof path, "%s/grids/%s", r->stage, fname);
		rc = cnnviz_image_write_png(img, path, &e);
	}
	if (!rc) {
		json_t *flagged = json_array();
		for (int64_t k = 0; k < c; k++)
			if (flags[k])
				json_array_append_new(flagged, json_integer(k));
		char rel[700];
		snprintf(rel, sizeof rel, "grids/%s", fname);
		json_object_set_new(entry, "grid", json_string(rel));
		json_object_set_new(entry, "flat_channels_drawn", flagged);
	}
	cnnviz_image_free(img);
	free(flags);
	return rc ? hook_fail(r, &e, NULL) : 0;
}

static int draw_overlay(struct report *r, const struct cnnviz_layer_info *li,
			const struct cnnviz_tensor *t, json_t *entry)
{
	if (!(li->flags & CNNVIZ_LAYER_SPATIAL))
		return 0;
	int64_t h, w, c;
	const float *x = as_hwc(r, li, t->data, &h, &w, &c);
	float *map = malloc((size_t)(h * w) * sizeof *map);
	if (!x || !map) {
		free(map);
		return hook_fail(r, NULL, "out of memory");
	}
	int64_t chan = -1;
	if (r->a->overlay_channel && strcmp(r->a->overlay_channel, "mean") != 0) {
		chan = atoll(r->a->overlay_channel);
		if (chan >= c) {
			free(map);
			char msg[300];
			snprintf(msg, sizeof msg, "--overlay-channel %lld: layer '%s' has %lld channels",
				 (long long)chan, li->name, (long long)c);
			return hook_fail(r, NULL, msg);
		}
	}
	for (int64_t p = 0; p < h * w; p++) {
		double s = 0;
		if (chan >= 0) {
			s = x[p * c + chan];
		} else {
			for (int64_t k = 0; k < c; k++)
				s += x[p * c + k];
			s /= (double)c;
		}
		map[p] = (float)s;
	}
	cnnviz_image *img = NULL;
	struct cnnviz_error e;
	char fname[600], path[4200], rel[700];
	int rc = cnnviz_render_overlay(r->backdrop, map, h, w, r->a->opts, &img, &e);
	if (!rc) {
		cli_file_name(li->name, ".png", fname, sizeof fname);
		snprintf(path, sizeof path, "%s/overlays/%s", r->stage, fname);
		rc = cnnviz_image_write_png(img, path, &e);
	}
	if (!rc) {
		snprintf(rel, sizeof rel, "overlays/%s", fname);
		json_object_set_new(entry, "overlay", json_string(rel));
		json_object_set_new(entry, "overlay_of",
				    chan >= 0 ? json_integer(chan) : json_string("mean"));
	}
	cnnviz_image_free(img);
	free(map);
	return rc ? hook_fail(r, &e, NULL) : 0;
}

static int report_hook(const struct cnnviz_layer_info *li,
		       const struct cnnviz_tensor *t, void *user)
{
	struct report *r = user;
	if (r->range_pass) {
		if (!r->grid_sel[li->index])
			return 0;
		for (size_t i = 0; i < t->count; i++)
			if (isfinite(t->data[i])) {
				r->gmin = fmin(r->gmin, t->data[i]);
				r->gmax = fmax(r->gmax, t->data[i]);
			}
		return 0;
	}
	char shape[128];
	cli_shape_text(li->shape, li->rank, 1, shape, sizeof shape);
	json_t *entry = json_pack("{s:i,s:s,s:s,s:s}", "index", li->index, "name",
				  li->name, "class", li->class_name, "shape", shape);
	json_array_append_new(r->layers, entry);
	stats_of(li, t->data, t->count, entry);
	if (r->grid_sel[li->index] && draw_grid(r, li, t, entry))
		return 1;
	if (r->overlay_sel[li->index] && draw_overlay(r, li, t, entry))
		return 1;
	if (r->npy_sel[li->index]) {
		char fname[600], path[4200], rel[700];
		struct cnnviz_error e;
		cli_file_name(li->name, ".npy", fname, sizeof fname);
		snprintf(path, sizeof path, "%s/npy/%s", r->stage, fname);
		if (cnnviz_npy_write(path, t->data, t->rank, t->shape, &e))
			return hook_fail(r, &e, NULL);
		snprintf(rel, sizeof rel, "npy/%s", fname);
		json_object_set_new(entry, "npy", json_string(rel));
	}
	return 0;
}

/* ------------------------------------------------------ predictions */

static json_t *predictions(struct report *r, json_t **top_out, char *line,
			   size_t size)
{
	struct cnnviz_tensor t;
	cnnviz_session_output(r->s, 0, &t);
	size_t n = t.count;
	json_t *pred = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(pred, json_real(t.data[i]));
	json_t *top = json_array();
	size_t o = 0;
	int k = r->a->top < (int)n ? r->a->top : (int)n;
	char *used = calloc(n ? n : 1, 1);
	for (int j = 0; used && j < k && (n > 1); j++) {
		size_t best = 0;
		int found = 0;
		for (size_t i = 0; i < n; i++)
			if (!used[i] && (!found || t.data[i] > t.data[best])) {
				best = i;
				found = 1;
			}
		used[best] = 1;
		const char *lab = (int)best < r->n_labels ? r->labels[best] : NULL;
		json_array_append_new(top, json_pack("{s:I,s:s?,s:f}", "index",
						     (json_int_t)best, "label", lab,
						     "value", (double)t.data[best]));
		if (o < size)
			o += (size_t)snprintf(line + o, size - o, "%s%s%s%zu %.4f",
					      j ? " | " : "", lab ? lab : "",
					      lab ? " #" : "#", best, t.data[best]);
	}
	free(used);
	if (n == 1 && size)
		snprintf(line, size, "value %.6g", t.data[0]);
	*top_out = top;
	return pred;
}

/* ------------------------------------------------------ one image */

static int report_one(struct report *r, const char *path, const char *stem)
{
	const struct args *a = r->a;
	struct cnnviz_error e = {0};
	double t0 = now_ms(), t_run = 0, t_pre;
	int rc = 1;
	cnnviz_image *photo = NULL, *seen = NULL, *big = NULL;
	float *x = malloc(r->in_count * sizeof *x), *xt = NULL;
	char dir[4200], file[4400], stage[4200] = "";
	r->layers = json_array();
	r->failed = 0;
	if (!x)
		goto out;
	if (cnnviz_image_load(path, a->opts, &photo, &e) ||
	    cnnviz_image_to_tensor(photo, r->in_h, r->in_w, r->in_c, a->opts, x,
				   r->in_count, &seen, &e)) {
		cli_report(&e);
		goto out;
	}
	if (r->in_cf && r->in_c > 1) { /* (H,W,C) -> (C,H,W) */
		xt = malloc(r->in_count * sizeof *xt);
		if (!xt)
			goto out;
		size_t hw = (size_t)(r->in_h * r->in_w);
		for (size_t p = 0; p < hw; p++)
			for (int c = 0; c < r->in_c; c++)
				xt[(size_t)c * hw + p] = x[p * (size_t)r->in_c + (size_t)c];
		memcpy(x, xt, r->in_count * sizeof *x);
	}
	t_pre = now_ms() - t0;
	/* The picture the network saw, enlarged so small inputs are visible. */
	int side = (int)(r->in_w > r->in_h ? r->in_w : r->in_h);
	int f = (512 + side - 1) / side;
	if (cnnviz_image_upscale(seen, f > 64 ? 64 : f, &big, &e)) {
		cli_report(&e);
		goto out;
	}
	/* Overlays go over the photo, or over what the net saw if cropped. */
	r->backdrop = r->cropped ? big : photo;
	snprintf(dir, sizeof dir, "%s/%s", a->out_dir, stem);
	if (cli_stage_dir(a->out_dir, stage, sizeof stage) != 0) {
		cli_fail("%s: cannot write in the output folder: %s", a->out_dir,
			 strerror(errno));
		goto out;
	}
	r->stage = stage;
	const char *subs[] = {"grids", "overlays", "npy"};
	for (int i = 0; i < 3; i++) {
		snprintf(file, sizeof file, "%s/%s", stage, subs[i]);
		mkdir(file, 0777);
	}
	const float *in = x;
	if (r->norm_global) {
		r->range_pass = 1;
		r->gmin = INFINITY;
		r->gmax = -INFINITY;
		if (cnnviz_session_run(r->s, &in, 1, report_hook, r, &e)) {
			cli_report(&e);
			goto out;
		}
		char range[96];
		if (!(r->gmax > r->gmin))
			r->gmax = r->gmin + 1;
		snprintf(range, sizeof range, "%.9g,%.9g", r->gmin, r->gmax);
		cnnviz_options_set(a->opts, "global_range", range, NULL);
		r->range_pass = 0;
	}
	/* Inference alone (fused, no hook), then the run that draws. */
	double t1 = now_ms();
	if (cnnviz_session_run(r->s, &in, 1, NULL, NULL, &e)) {
		cli_report(&e);
		goto out;
	}
	t_run = now_ms() - t1;
	t1 = now_ms();
	if (cnnviz_session_run(r->s, &in, 1, report_hook, r, &e)) {
		if (r->failed) {
			if (!r->err.file[0])
				snprintf(r->err.file, sizeof r->err.file, "%s", path);
			cli_report(&r->err);
		} else {
			cli_report(&e);
		}
		goto out;
	}
	double t_draw = now_ms() - t1;
	/* The exact tensor and the picture the network saw. */
	int64_t shape[4] = {1, r->in_h, r->in_w, r->in_c};
	if (r->in_cf) {
		shape[1] = r->in_c;
		shape[2] = r->in_h;
		shape[3] = r->in_w;
	}
	int in_rank = r->in_rank2 ? 3 : 4;
	if (r->in_rank2) { /* (1, H, W) */
		shape[1] = r->in_h;
		shape[2] = r->in_w;
	}
	snprintf(file, sizeof file, "%s/input.npy", stage);
	if (cnnviz_npy_write(file, x, in_rank, shape, &e)) {
		cli_report(&e);
		goto out;
	}
	snprintf(file, sizeof file, "%s/input.png", stage);
	if (cnnviz_image_write_png(big, file, &e)) {
		cli_report(&e);
		goto out;
	}
	json_decref(r->cams);
	r->cams = json_array();
	if (a->cams && report_cams(r, x, r->cams))
		goto out;
	char line[2048] = "";
	json_t *top;
	json_t *pred = predictions(r, &top, line, sizeof line);
	struct report_image info = {path, stem, photo, t_pre, t_run, t_draw, now_ms() - t0};
	if (report_write_manifest(r, &info, pred, top, stage) ||
	    report_write_stats(r, stage) || report_write_html(r, &info, pred, top, stage)) {
		json_decref(pred);
		json_decref(top);
		cli_fail("%s: cannot write the report files", dir);
		goto out;
	}
	json_decref(pred);
	json_decref(top);
	if (cli_publish_dir(stage, dir) != 0) {
		cli_fail("%s: cannot move the report into place: %s", dir, strerror(errno));
		goto out;
	}
	stage[0] = '\0';
	if (!a->quiet)
		printf("%s: %s\n", path, line);
	rc = 0;
out:
	if (stage[0])
		cli_remove_tree(stage);
	json_decref(r->layers);
	r->layers = NULL;
	cnnviz_image_free(photo);
	cnnviz_image_free(seen);
	cnnviz_image_free(big);
	free(x);
	free(xt);
	return rc;
}

int cli_report_images(const struct args *a)
{
	struct report r = {0};
	char **paths = NULL, **stems = NULL;
	int n = 0, failures = 0, rc = 1;
	r.a = a;
	if (load_labels(&r, a->labels) || expand_paths(a, &paths, &n))
		goto out;
	if (n == 0) {
		cli_fail("no images given");
		goto out;
	}
	if (cli_open_model(a, (cnnviz_model **)&r.m) || input_geometry(&r))
		goto out;
	int nl = cnnviz_model_layer_count(r.m);
	r.grid_sel = calloc((size_t)nl, 1);
	r.overlay_sel = calloc((size_t)nl, 1);
	r.npy_sel = calloc((size_t)nl, 1);
	stems = calloc((size_t)n, sizeof *stems);
	if (!r.grid_sel || !r.overlay_sel || !r.npy_sel || !stems) {
		cli_fail("out of memory");
		goto out;
	}
	if (cli_select_layers(r.m, a->layers ? a->layers : "conv", "--layers", r.grid_sel) ||
	    cli_select_layers(r.m, a->overlay ? a->overlay : "last-conv", "--overlay",
			      r.overlay_sel) ||
	    cli_select_layers(r.m, a->save_npy ? a->save_npy : "none", "--save-npy",
			      r.npy_sel))
		goto out;
	struct cnnviz_layer_info out0;
	cnnviz_model_layer(r.m, cnnviz_model_output_layer(r.m, 0), &out0);
	int64_t n_out = 1;
	for (int i = 1; i < out0.rank; i++)
		n_out *= out0.shape[i];
	if (r.n_labels && r.n_labels != n_out) {
		cli_fail("--labels: %d labels, but the model's output has %lld values",
			 r.n_labels, (long long)n_out);
		goto out;
	}
	/* Check option values that are only read later, before any work. */
	double sc[3], of[3];
	int bgr;
	struct cnnviz_error e;
	if (cnnviz_image_preprocessing(a->opts, r.in_c, sc, of, &bgr, &e)) {
		cli_report(&e);
		goto out;
	}
	r.norm_global = report_option_is(a, "norm", "global");
	r.cropped = report_option_is(a, "crop", "center");
	if (cli_mkdir_p(a->out_dir) != 0) {
		cli_fail("%s: cannot create the output folder: %s", a->out_dir, strerror(errno));
		goto out;
	}
	if (!a->cams && (a->cam_class || a->cam_output || a->cam_layer || a->cam_sanity ||
			 a->cam_eval)) {
		cli_fail("--class, --output, --cam-layer, --sanity and --eval need --cam");
		goto out;
	}
	if (a->cams && report_cams_setup(&r))
		goto out;
	if (cnnviz_session_new(r.m, 1, a->opts, &r.s, &e)) {
		cli_report(&e);
		goto out;
	}
	cli_sha256_file(a->model, r.model_sha);
	int tty = isatty(2);
	for (int i = 0; i < n; i++) {
		char stem[300];
		stem_of(paths[i], stems, i, stem, sizeof stem);
		stems[i] = strdup(stem);
		if (!a->quiet && n > 1) {
			if (tty)
				fprintf(stderr, "\r[%d/%d] %-60.60s", i + 1, n, paths[i]);
			else
				fprintf(stderr, "[%d/%d] %s\n", i + 1, n, paths[i]);
		}
		if (!stems[i] || report_one(&r, paths[i], stems[i]))
			failures++;
	}
	if (!a->quiet && n > 1 && tty)
		fputc('\n', stderr);
	if (!a->quiet)
		fprintf(stderr, "%d report%s in %s/%s\n", n - failures,
			n - failures == 1 ? "" : "s", a->out_dir,
			failures ? " (some images failed, see above)" : "");
	rc = failures ? 1 : 0;
out:
	for (int i = 0; i < n; i++) {
		free(paths[i]);
		if (stems)
			free(stems[i]);
	}
	free(paths);
	free(stems);
	for (int i = 0; i < r.n_labels; i++)
		free(r.labels[i]);
	free(r.labels);
	free(r.grid_sel);
	free(r.overlay_sel);
	free(r.npy_sel);
	free(r.tmp);
	free(r.cam_sel);
	json_decref(r.cams);
	cnnviz_explainer_free(r.ex);
	cnnviz_options_free(r.cam_opts);
	cnnviz_session_free(r.s);
	cnnviz_model_free((cnnviz_model *)r.m);
	return rc;
}
