/* manifest.json, stats.csv/json and index.html of one report folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

int report_option_is(const struct args *a, const char *key, const char *value)
{
	const char *v = cnnviz_options_get(a->opts, key);
	return v && strcmp(v, value) == 0;
}

int report_write_manifest(struct report *r, const struct report_image *im,
			  json_t *pred, json_t *top, const char *stage)
{
	const struct args *a = r->a;
	char sha[65], path[4200];
	cli_sha256_file(im->path, sha);
	double scale[3], offset[3];
	int bgr = 0;
	cnnviz_image_preprocessing(a->opts, r->in_c, scale, offset, &bgr, NULL);
	json_t *sc = json_array(), *of = json_array();
	for (int c = 0; c < r->in_c; c++) {
		json_array_append_new(sc, json_real(scale[c]));
		json_array_append_new(of, json_real(offset[c]));
	}
	const char *v;
	json_t *options = json_object();
	for (int i = 0; (v = cnnviz_options_key(a->opts, i)); i++)
		json_object_set_new(options, v, json_string(cnnviz_options_get(a->opts, v)));
	json_object_set_new(options, "layers", json_string(a->layers ? a->layers : "conv"));
	json_object_set_new(options, "overlay",
			    json_string(a->overlay ? a->overlay : "last-conv"));
	json_object_set_new(options, "overlay_channel",
			    json_string(a->overlay_channel ? a->overlay_channel : "mean"));
	json_object_set_new(options, "save_npy", json_string(a->save_npy ? a->save_npy : "none"));
	json_object_set_new(options, "top", json_integer(a->top));
	if (a->labels)
		json_object_set_new(options, "labels", json_string(a->labels));
	json_t *labels = json_array();
	for (int i = 0; i < r->n_labels; i++)
		json_array_append_new(labels, json_string(r->labels[i]));
	const char *opt = cnnviz_options_get(a->opts, "resize");
	const char *crop = cnnviz_options_get(a->opts, "crop");
	const char *pre = cnnviz_options_get(a->opts, "preprocess");
	json_t *doc = json_pack(
		"{s:s,s:s,s:{s:s,s:s,s:s,s:I},s:{s:s,s:s,s:I,s:I,s:s},"
		"s:{s:I,s:I,s:i,s:s,s:s,s:s,s:o,s:o,s:s,s:b},"
		"s:O,s:o,s:O,s:o,s:{s:f,s:f,s:f,s:f},s:O}",
		"tool", "cnnviz-dump", "version", CNNVIZ_VERSION_STRING,
		"model", "path", a->model, "sha256", r->model_sha, "keras_version",
		cnnviz_model_keras_version(r->m), "params",
		(json_int_t)cnnviz_model_param_count(r->m),
		"input", "path", im->path, "sha256", sha, "width",
		(json_int_t)cnnviz_image_width(im->photo), "height",
		(json_int_t)cnnviz_image_height(im->photo), "format",
		cnnviz_image_format(im->photo),
		"preprocessing", "height", (json_int_t)r->in_h, "width", (json_int_t)r->in_w,
		"channels", r->in_c, "resize", opt ? opt : "bilinear", "crop",
		crop ? crop : "none", "preset", pre ? pre : "unit", "scale", sc, "offset", of,
		"layout", r->in_cf ? "channels_first" : "channels_last", "bgr", bgr,
		"predictions", pred, "labels", labels, "top", top, "options", options,
		"timings_ms", "preprocess", im->preprocess_ms, "run", im->run_ms,
		"run_and_draw", im->draw_ms, "total", im->total_ms, "layers", r->layers);
	if (!doc)
		return -1;
	if (r->cams)
		json_object_set(doc, "cam", r->cams);
	/* model warnings (non-finite weights): [] when there are none */
	json_t *warn = json_array();
	const char *w;
	for (int i = 0; warn && (w = cnnviz_model_warning(r->m, i)); i++)
		json_array_append_new(warn, json_string(w));
	if (warn)
		json_object_set_new(json_object_get(doc, "model"), "warnings",
				    warn);
	snprintf(path, sizeof path, "%s/manifest.json", stage);
	int rc = cli_write_json(doc, path);
	json_decref(doc);
	return rc;
}

int report_write_stats(struct report *r, const char *stage)
{
	char path[4200];
	size_t cap = 1 << 16, len = 0;
	char *csv = malloc(cap);
	if (!csv)
		return -1;
	len += (size_t)snprintf(csv, cap, "index,name,class,shape,min,max,mean,std,"
					  "zero_fraction,channels,dead_channels,flat_channels\n");
	size_t i;
	json_t *e;
	json_t *stats = json_array();
	json_array_foreach(r->layers, i, e) {
		json_t *s = json_object_get(e, "stats");
		char row[1024];
		/* Layer names are Keras identifiers; quote the shape for its commas. */
		int n = snprintf(row, sizeof row, "%lld,%s,%s,\"%s\",%.9g,%.9g,%.9g,%.9g,%.6f,%lld,%lld,%lld\n",
				 (long long)json_integer_value(json_object_get(e, "index")),
				 json_string_value(json_object_get(e, "name")),
				 json_string_value(json_object_get(e, "class")),
				 json_string_value(json_object_get(e, "shape")),
				 json_real_value(json_object_get(s, "min")),
				 json_real_value(json_object_get(s, "max")),
				 json_real_value(json_object_get(s, "mean")),
				 json_real_value(json_object_get(s, "std")),
				 json_real_value(json_object_get(s, "zero_fraction")),
				 (long long)json_integer_value(json_object_get(s, "channels")),
				 (long long)json_integer_value(json_object_get(s, "dead_channels")),
				 (long long)json_integer_value(json_object_get(s, "flat_channels")));
		if (n < 0)
			continue;
		if (len + (size_t)n + 1 > cap) {
			cap = (cap + (size_t)n) * 2;
			char *g = realloc(csv, cap);
			if (!g) {
				free(csv);
				json_decref(stats);
				return -1;
			}
			csv = g;
		}
		memcpy(csv + len, row, (size_t)n);
		len += (size_t)n;
		json_t *o = json_deep_copy(s);
		json_object_set(o, "name", json_object_get(e, "name"));
		json_object_set(o, "index", json_object_get(e, "index"));
		json_array_append_new(stats, o);
	}
	snprintf(path, sizeof path, "%s/stats.csv", stage);
	int rc = cli_write_text(path, csv, len);
	free(csv);
	snprintf(path, sizeof path, "%s/stats.json", stage);
	if (!rc)
		rc = cli_write_json(stats, path);
	json_decref(stats);
	return rc;
}

/* ------------------------------------------------------------ HTML */

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->cap + n) * 2 + 4096;
		char *g = realloc(b->p, cap);
		if (!g) {
			b->oom = 1;
			return;
		}
		b->p = g;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void puts_raw(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* Text into HTML: &, <, >, " escaped. */
static void puts_esc(struct buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': puts_raw(b, "&amp;"); break;
		case '<': puts_raw(b, "&lt;"); break;
		case '>': puts_raw(b, "&gt;"); break;
		case '"': puts_raw(b, "&quot;"); break;
		default: put(b, s, 1);
		}
	}
}

static void printf_esc(struct buf *b, const char *fmt, const char *arg)
{
	const char *pct = strstr(fmt, "%s");
	if (!pct) {
		puts_raw(b, fmt);
		return;
	}
	put(b, fmt, (size_t)(pct - fmt));
	puts_esc(b, arg);
	puts_raw(b, pct + 2);
}

static const char *const style =
	"body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}"
	"h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ccc}"
	".row{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}"
	"figure{margin:0 0 16px 0;background:#fff;border:1px solid #ddd;padding:8px}"
	"figcaption{font-size:12px;color:#555;margin-top:4px;max-width:900px}"
	"img{image-rendering:pixelated;max-width:100%}"
	"table{border-collapse:collapse;font-size:12px}"
	"td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}"
	"td.l,th.l{text-align:left}.bar{background:#3b82c4;height:10px}"
	".warn{color:#a40}";

int report_write_html(struct report *r, const struct report_image *im,
		      json_t *pred, json_t *top, const char *stage)
{
	struct buf b = {0};
	char num[512];
	puts_raw(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		      "<meta name=\"viewport\" content=\"width=device-width\"><title>");
	printf_esc(&b, "cnnviz: %s", im->stem);
	puts_raw(&b, "</title><style>");
	puts_raw(&b, style);
	puts_raw(&b, "</style></head><body>\n");
	printf_esc(&b, "<h1>%s</h1>\n", im->path);
	printf_esc(&b, "<p>Model <code>%s</code>", r->a->model);
	snprintf(num, sizeof num, " (Keras %s, %lld parameters), input %lldx%lldx%d, "
				  "inference %.2f ms.</p>\n",
		 *cnnviz_model_keras_version(r->m) ? cnnviz_model_keras_version(r->m) : "?",
		 (long long)cnnviz_model_param_count(r->m), (long long)r->in_h,
		 (long long)r->in_w, r->in_c, im->run_ms);
	puts_raw(&b, num);
	puts_raw(&b, "<div class=\"row\"><figure><img id=\"input\" src=\"input.png\" "
		      "alt=\"network input\"><figcaption>What the network saw</figcaption>"
		      "</figure>\n<div><h2>Predictions</h2><table><tr><th class=\"l\">class</th>"
		      "<th>value</th><th class=\"l\"></th></tr>\n");
	size_t i;
	json_t *t;
	json_array_foreach(top, i, t) {
		const char *lab = json_string_value(json_object_get(t, "label"));
		double v = json_real_value(json_object_get(t, "value"));
		snprintf(num, sizeof num, "#%lld ",
			 (long long)json_integer_value(json_object_get(t, "index")));
		puts_raw(&b, "<tr><td class=\"l\">");
		puts_raw(&b, num);
		puts_esc(&b, lab ? lab : "");
		snprintf(num, sizeof num, "</td><td>%.4f</td><td class=\"l\"><div class=\"bar\" "
					  "style=\"width:%dpx\"></div></td></tr>\n",
			 v, v >= 0 && v <= 1 ? (int)(v * 200) : 0);
		puts_raw(&b, num);
	}
	if (json_array_size(top) == 0) {
		puts_raw(&b, "<tr><td class=\"l\">output</td><td>");
		json_array_foreach(pred, i, t) {
			snprintf(num, sizeof num, "%s%.6g", i ? ", " : "", json_real_value(t));
			puts_raw(&b, num);
		}
		puts_raw(&b, "</td><td></td></tr>\n");
	}
	puts_raw(&b, "</table></div></div>\n");
	json_t *e;
	int any = 0;
	json_array_foreach(r->layers, i, e) {
		const char *ov = json_string_value(json_object_get(e, "overlay"));
		if (!ov)
			continue;
		if (!any++)
			puts_raw(&b, "<h2>Overlays</h2><div class=\"row\">\n");
		printf_esc(&b, "<figure><img class=\"overlay\" src=\"%s\" alt=\"overlay\">", ov);
		printf_esc(&b, "<figcaption>%s", json_string_value(json_object_get(e, "name")));
		puts_raw(&b, ": mean activation over the photo</figcaption></figure>\n");
	}
	if (any)
		puts_raw(&b, "</div>\n");
	any = 0;
	json_array_foreach(r->cams, i, e) {
		const char *failed = json_string_value(json_object_get(e, "error"));
		if (failed) {
			printf_esc(&b, "<p class=\"warn\">%s</p>\n", failed);
			continue;
		}
		if (!any++)
			puts_raw(&b, "<h2>Explanations</h2><div class=\"row\">\n");
		char src[1000];
		snprintf(src, sizeof src, "%s.png", json_string_value(json_object_get(e, "files")));
		printf_esc(&b, "<figure><img class=\"cam\" src=\"%s\" alt=\"explanation\">", src);
		printf_esc(&b, "<figcaption><b>%s</b>", json_string_value(json_object_get(e, "method")));
		printf_esc(&b, " at %s", json_string_value(json_object_get(e, "layer")));
		printf_esc(&b, ", class %s", json_string_value(json_object_get(e, "target")));
		printf_esc(&b, " %s", json_string_value(json_object_get(e, "label")));
		snprintf(num, sizeof num, ", score %.4g", json_real_value(json_object_get(e, "score")));
		puts_raw(&b, num);
		size_t k;
		json_t *w;
		json_array_foreach(json_object_get(e, "warnings"), k, w)
			printf_esc(&b, "<br><span class=\"warn\">%s</span>", json_string_value(w));
		json_t *fa = json_object_get(e, "faithfulness");
		if (fa) {
			snprintf(num, sizeof num, "<br>deletion %.4g (random %.4g), insertion %.4g "
						  "(random %.4g), avg drop %.3g%% (random %.3g%%)",
				 json_real_value(json_object_get(fa, "deletion")),
				 json_real_value(json_object_get(fa, "random_deletion")),
				 json_real_value(json_object_get(fa, "insertion")),
				 json_real_value(json_object_get(fa, "random_insertion")),
				 json_real_value(json_object_get(fa, "avg_drop")),
				 json_real_value(json_object_get(fa, "random_avg_drop")));
			puts_raw(&b, num);
		}
		json_t *sa = json_object_get(e, "sanity");
		if (sa) {
			puts_raw(&b, "<br>sanity (Spearman after randomising down to):");
			json_array_foreach(sa, k, w) {
				printf_esc(&b, " %s", json_string_value(json_object_get(w, "randomised")));
				snprintf(num, sizeof num, " %.2f;", json_real_value(json_object_get(w, "spearman")));
				puts_raw(&b, num);
			}
		}
		puts_raw(&b, "</figcaption></figure>\n");
	}
	if (any)
		puts_raw(&b, "</div>\n");
	puts_raw(&b, "<h2>Feature maps</h2>\n");
	json_array_foreach(r->layers, i, e) {
		const char *g = json_string_value(json_object_get(e, "grid"));
		if (!g)
			continue;
		json_t *s = json_object_get(e, "stats");
		printf_esc(&b, "<figure><img class=\"grid\" src=\"%s\" alt=\"feature maps\">", g);
		printf_esc(&b, "<figcaption><b>%s</b>", json_string_value(json_object_get(e, "name")));
		printf_esc(&b, " %s", json_string_value(json_object_get(e, "class")));
		printf_esc(&b, " %s", json_string_value(json_object_get(e, "shape")));
		snprintf(num, sizeof num, " &middot; range %.4g..%.4g", json_real_value(json_object_get(s, "min")),
			 json_real_value(json_object_get(s, "max")));
		puts_raw(&b, num);
		json_int_t dead = json_integer_value(json_object_get(s, "dead_channels"));
		json_int_t flat = json_array_size(json_object_get(e, "flat_channels_drawn"));
		if (dead || flat) {
			snprintf(num, sizeof num, " <span class=\"warn\">&middot; %lld dead, %lld drawn flat</span>",
				 (long long)dead, (long long)flat);
			puts_raw(&b, num);
		}
		puts_raw(&b, "</figcaption></figure>\n");
	}
	puts_raw(&b, "<h2>Layer statistics</h2><table><tr><th>#</th><th class=\"l\">layer</th>"
		      "<th class=\"l\">class</th><th class=\"l\">shape</th><th>min</th><th>max</th>"
		      "<th>mean</th><th>std</th><th>zeros</th><th>dead ch.</th></tr>\n");
	json_array_foreach(r->layers, i, e) {
		json_t *s = json_object_get(e, "stats");
		snprintf(num, sizeof num, "<tr><td>%lld</td><td class=\"l\">",
			 (long long)json_integer_value(json_object_get(e, "index")));
		puts_raw(&b, num);
		puts_esc(&b, json_string_value(json_object_get(e, "name")));
		puts_raw(&b, "</td><td class=\"l\">");
		puts_esc(&b, json_string_value(json_object_get(e, "class")));
		puts_raw(&b, "</td><td class=\"l\">");
		puts_esc(&b, json_string_value(json_object_get(e, "shape")));
		snprintf(num, sizeof num, "</td><td>%.4g</td><td>%.4g</td><td>%.4g</td><td>%.4g</td>"
					  "<td>%.1f%%</td><td>%lld</td></tr>\n",
			 json_real_value(json_object_get(s, "min")),
			 json_real_value(json_object_get(s, "max")),
			 json_real_value(json_object_get(s, "mean")),
			 json_real_value(json_object_get(s, "std")),
			 100 * json_real_value(json_object_get(s, "zero_fraction")),
			 (long long)json_integer_value(json_object_get(s, "dead_channels")));
		puts_raw(&b, num);
	}
	puts_raw(&b, "</table>\n<p>Made by cnnviz-dump " CNNVIZ_VERSION_STRING
		      "; details in <a href=\"manifest.json\">manifest.json</a>, "
		      "<a href=\"stats.csv\">stats.csv</a>.</p>\n</body></html>\n");
	char path[4200];
	snprintf(path, sizeof path, "%s/index.html", stage);
	int rc = b.oom ? -1 : cli_write_text(path, b.p, b.len);
	free(b.p);
	return rc;
}
