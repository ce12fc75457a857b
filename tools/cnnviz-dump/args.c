/*
 * cnnviz-dump's command line: one option table drives parsing and --help,
 * so the help cannot drift from what is accepted. The parser only fills
 * struct args (and its options) and never exits, so it can be fuzzed
 * (tests/fuzz/fuzz_args.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum kind { FLAG, VALUE, MULTI };

/*
 * key: the library option the value is checked by and stored under, or
 * NULL when the CLI keeps it itself.
 */
static const struct opt {
	const char *name;
	const char *alias;
	enum kind kind;
	const char *metavar;
	const char *key;
	const char *help;
} opts[] = {
	{"--weights", NULL, VALUE, "W.h5", NULL,
	 "weights file when MODEL is an architecture .json (default: "
	 "<stem>.weights.h5 or <stem>.h5 beside it)"},
	{"--out", "-o", VALUE, "DIR", NULL,
	 "write one report folder per image: DIR/<image stem>/ with index.html, "
	 "manifest.json, input.npy, input.png, grids/, overlays/, stats.csv, stats.json"},
	{"--labels", NULL, VALUE, "FILE|a,b,..|fer2013", NULL,
	 "class names: a file with one per line, a comma list, or the built-in "
	 "FER2013 set (angry,disgust,fear,happy,sad,surprise,neutral)"},
	{"--top", NULL, VALUE, "K", NULL, "predictions to print and list (default 5)"},
	{"--layers", NULL, VALUE, "SPEC", NULL,
	 "layers drawn as feature-map grids: names, globs, index ranges (3-7), all, "
	 "conv (every convolution), last-conv, none; comma-separated (default conv)"},
	{"--overlay", NULL, VALUE, "SPEC", NULL,
	 "layers whose activation is laid over the photo, same forms (default last-conv)"},
	{"--overlay-channel", NULL, VALUE, "mean|N", NULL,
	 "what is laid over the photo: the mean over channels or channel N (default mean)"},
	{"--save-npy", NULL, VALUE, "SPEC", NULL,
	 "also save these layers' outputs as npy/<layer>.npy (default none)"},
	{"--cam", NULL, VALUE, "METHOD[,..]", NULL,
	 "explanation maps: gradcam, gradcam++, layercam, hirescam, cam, scorecam, "
	 "ablationcam, eigencam, occlusion, saliency, smoothgrad, ig, guided_backprop; "
	 "written as cam/<method>/<layer>/<target>.{raw.npy,npy,png}"},
	{"--class", NULL, VALUE, "SPEC", NULL,
	 "explained classes: top1, topK, an index, a label, a contrast A-vs-B; "
	 "comma-separated (default top1)"},
	{"--output", NULL, VALUE, "K", NULL,
	 "explain output value K of a regression head instead (target name out<K>)"},
	{"--cam-layer", NULL, VALUE, "SPEC", NULL,
	 "layers of the layer-space methods: names, globs, last-conv, ... (default: "
	 "the last layer with a spatial map that leads to the output)"},
	{"--cam-norm", NULL, VALUE, "relu-max|minmax", NULL,
	 "map scaling before upsampling: ReLU then divide by the max, or min-max "
	 "(default relu-max)"},
	{"--sanity", NULL, FLAG, NULL, NULL,
	 "cascading weight randomisation (top layer down) with the Spearman rank "
	 "correlation of each map before/after, into manifest.json and the page"},
	{"--eval", NULL, VALUE, "deletion,insertion,avgdrop", NULL,
	 "faithfulness scores of each map beside random maps (all three are computed)"},
	{"--target-logit", NULL, FLAG, NULL, NULL,
	 "explain the logit before a final softmax instead of the probability"},
	{"--set", NULL, MULTI, "KEY=VALUE", NULL,
	 "any library option by key, e.g. ig_steps=1024, scorecam_top=64, "
	 "smoothgrad_samples=50, occlusion_patch=8, seed=1 (see cnnviz.h)"},
	{"--cols", NULL, VALUE, "N", "cols", "tiles per grid row, 1-256 (default 8)"},
	{"--cmap", NULL, VALUE, "NAME", "cmap",
	 "grid colour map: viridis, magma, turbo, jet, gray (default viridis)"},
	{"--norm", NULL, VALUE, "MODE", "norm",
	 "grid value range: channel (each tile its own), layer, global (all grids "
	 "of the image), fixed:a,b (default channel)"},
	{"--alpha", NULL, VALUE, "A", "alpha", "overlay opacity, 0-1 (default 0.4)"},
	{"--overlay-cmap", NULL, VALUE, "NAME", "overlay_cmap",
	 "overlay colour map, as --cmap (default jet)"},
	{"--resize", NULL, VALUE, "MODE", "resize",
	 "resizing the photo to the model input: bilinear (half-pixel centres, as "
	 "OpenCV and tf.image.resize), nearest, area (default bilinear)"},
	{"--crop", NULL, VALUE, "none|center", "crop",
	 "cut the largest centred region of the input's aspect ratio first (default none)"},
	{"--preprocess", NULL, VALUE, "NAME", "preprocess",
	 "pixel scaling: unit (x/255), mobilenet (x/127.5-1), caffe (BGR, ImageNet "
	 "means), torch (ImageNet mean/std), raw (0-255) (default unit)"},
	{"--scale", NULL, VALUE, "S[,S,S]", "scale",
	 "replace the preset's scale (per channel if three values)"},
	{"--offset", NULL, VALUE, "O[,O,O]", "offset",
	 "replace the preset's offset: y = x*scale + offset on 0-255 pixels"},
	{"--max-pixels", NULL, VALUE, "N", "max_pixels",
	 "refuse images with more pixels, checked before decoding (default 100000000)"},
	{"--threads", NULL, VALUE, "N", "threads",
	 "threads for running the model; 0 = all cores (default 0)"},
	{"--input-npy", NULL, MULTI, "IN.npy", NULL,
	 "input tensor (batch first, the model's layout); repeat per model input"},
	{"--npy-dir", NULL, VALUE, "DIR", NULL,
	 "with --input-npy: write every layer's output as DIR/<layer>.npy ('/' in "
	 "names becomes '__', call k of a shared layer '_call<k>') and DIR/layers.json"},
	{"--summary", NULL, FLAG, NULL, NULL,
	 "print layers, output shapes and parameter counts like Keras' model.summary()"},
	{"--list-layers", NULL, FLAG, NULL, NULL,
	 "print the supported Keras layer classes and what each runs as"},
	{"--bench", NULL, VALUE, "N", NULL,
	 "time N runs after warm-up; print one JSON object per line (load ms, "
	 "latency median/p10/p90, batch throughput, GFLOP/s, % of peak, peak RSS)"},
	{"--batch", NULL, VALUE, "B", NULL, "batch size for --bench throughput (default 32)"},
	{"--profile", NULL, FLAG, NULL, NULL,
	 "with --bench: time and GFLOP/s per layer, as the runs fuse them (a "
	 "layer folded into another's step: 0 ms, \"step\" names that layer)"},
	{"--quiet", "-q", FLAG, NULL, NULL, "print errors only (no progress, no predictions)"},
	{"--version", NULL, FLAG, NULL, NULL, "print the version and exit"},
	{"--help", "-h", FLAG, NULL, NULL, "print this help and exit"},
};

#define N_OPTS (sizeof opts / sizeof opts[0])

void cli_usage(FILE *f)
{
	fprintf(f,
		"usage: cnnviz-dump MODEL IMAGE... -o DIR [options]   report per image\n"
		"       cnnviz-dump MODEL --input-npy IN.npy --npy-dir DIR  every layer as .npy\n"
		"       cnnviz-dump --summary MODEL                  layer table\n"
		"       cnnviz-dump --bench N MODEL                  speed\n"
		"       cnnviz-dump --list-layers\n\n"
		"MODEL: a Keras .h5/.hdf5 (Keras 1, 2 or 3), a Keras 3 .keras archive, or an\n"
		"architecture .json from model.to_json() with its weights (--weights).\n"
		"IMAGE: JPEG or PNG files, folders (their .jpg/.jpeg/.png files), or globs.\n"
		"Images are converted to the model's input: gray or RGB by its channels,\n"
		"resized to its size, scaled by --preprocess.\n\n"
		"options:\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		char left[80];
		snprintf(left, sizeof left, "%s%s%s%s%s", opts[i].alias ? opts[i].alias : "",
			 opts[i].alias ? ", " : "", opts[i].name,
			 opts[i].metavar ? " " : "", opts[i].metavar ? opts[i].metavar : "");
		fprintf(f, "  %-28s %s\n", left, opts[i].help);
	}
	fprintf(f, "\nExit status: 0 on success, 1 on an error (one line on stderr naming the\n"
		   "file, the layer and the reason), 2 on a usage error. Output files appear\n"
		   "whole or not at all; a report folder is replaced only once complete.\n");
}

int cli_usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "cnnviz-dump: %s%s%s%s\n(see cnnviz-dump --help)\n", what,
		arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
	return 2;
}

static int parse_int(const char *v, int lo, int hi, int *out)
{
	char *end;
	long x = strtol(v, &end, 10);
	if (end == v || *end || x < lo || x > hi)
		return -1;
	*out = (int)x;
	return 0;
}

static int apply(struct args *a, const struct opt *o, const char *v)
{
	const char *n = o->name;
	if (o->key) {
		struct cnnviz_error e;
		if (cnnviz_options_set(a->opts, o->key, v, &e)) {
			fprintf(stderr, "cnnviz-dump: %s: %s\n(see cnnviz-dump --help)\n",
				n, e.message);
			return 2;
		}
		if (strcmp(n, "--threads") == 0)
			a->threads = v;
		return 0;
	}
	if (strcmp(n, "--weights") == 0)
		a->weights = v;
	else if (strcmp(n, "--out") == 0)
		a->out_dir = v;
	else if (strcmp(n, "--labels") == 0)
		a->labels = v;
	else if (strcmp(n, "--top") == 0) {
		if (parse_int(v, 1, 1000000, &a->top))
			return cli_usage_error("--top needs a positive integer, not", v);
	} else if (strcmp(n, "--layers") == 0)
		a->layers = v;
	else if (strcmp(n, "--overlay") == 0)
		a->overlay = v;
	else if (strcmp(n, "--overlay-channel") == 0) {
		int ch;
		if (strcmp(v, "mean") != 0 && parse_int(v, 0, 1 << 24, &ch))
			return cli_usage_error("--overlay-channel needs 'mean' or a channel number, not", v);
		a->overlay_channel = v;
	} else if (strcmp(n, "--save-npy") == 0)
		a->save_npy = v;
	else if (strcmp(n, "--set") == 0) {
		char key[128];
		const char *eq = strchr(v, '=');
		struct cnnviz_error e;
		if (!eq || eq == v || (size_t)(eq - v) >= sizeof key)
			return cli_usage_error("--set needs KEY=VALUE, not", v);
		memcpy(key, v, (size_t)(eq - v));
		key[eq - v] = '\0';
		if (cnnviz_options_set(a->opts, key, eq + 1, &e)) {
			fprintf(stderr, "cnnviz-dump: --set %s: %s\n(see cnnviz-dump --help)\n",
				key, e.message);
			return 2;
		}
	} else if (strcmp(n, "--cam") == 0)
		a->cams = v;
	else if (strcmp(n, "--class") == 0)
		a->cam_class = v;
	else if (strcmp(n, "--output") == 0)
		a->cam_output = v;
	else if (strcmp(n, "--cam-layer") == 0)
		a->cam_layer = v;
	else if (strcmp(n, "--cam-norm") == 0) {
		if (strcmp(v, "relu-max") != 0 && strcmp(v, "minmax") != 0)
			return cli_usage_error("--cam-norm takes relu-max or minmax, not", v);
		a->cam_minmax = strcmp(v, "minmax") == 0;
	} else if (strcmp(n, "--sanity") == 0)
		a->cam_sanity = 1;
	else if (strcmp(n, "--eval") == 0) {
		char *copy = strdup(v), *save = NULL;
		for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
		     t = strtok_r(NULL, ",", &save))
			if (strcmp(t, "deletion") && strcmp(t, "insertion") && strcmp(t, "avgdrop")) {
				/* t points into copy: report, then free */
				int rc = cli_usage_error("--eval takes deletion, insertion, avgdrop, not", t);
				free(copy);
				return rc;
			}
		free(copy);
		a->cam_eval = 1;
	} else if (strcmp(n, "--target-logit") == 0)
		cnnviz_options_set(a->opts, "target_logit", "1", NULL);
	else if (strcmp(n, "--input-npy") == 0) {
		if (a->n_inputs >= MAX_INPUTS)
			return cli_usage_error("too many", n);
		a->inputs[a->n_inputs++] = v;
	} else if (strcmp(n, "--npy-dir") == 0)
		a->npy_dir = v;
	else if (strcmp(n, "--summary") == 0)
		a->summary = 1;
	else if (strcmp(n, "--list-layers") == 0)
		a->list_layers = 1;
	else if (strcmp(n, "--bench") == 0) {
		if (parse_int(v, 1, 1000000, &a->bench))
			return cli_usage_error("--bench needs a positive number of runs, not", v);
	} else if (strcmp(n, "--batch") == 0) {
		if (parse_int(v, 1, 4096, &a->batch))
			return cli_usage_error("--batch needs an integer in 1-4096, not", v);
	} else if (strcmp(n, "--profile") == 0)
		a->profile = 1;
	else if (strcmp(n, "--quiet") == 0)
		a->quiet = 1;
	return 0;
}

int cli_parse_args(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof *a);
	a->top = 5;
	a->batch = 32;
	a->paths = calloc((size_t)(argc > 0 ? argc : 1), sizeof *a->paths);
	if (!a->paths || cnnviz_options_new(&a->opts))
		return cli_usage_error("out of memory", NULL);
	for (int i = 1; i < argc; i++) {
		char *arg = argv[i];
		if (arg[0] != '-' || strcmp(arg, "-") == 0) {
			if (!a->model)
				a->model = arg;
			else
				a->paths[a->n_paths++] = arg;
			continue;
		}
		char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
		size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
		const struct opt *o = NULL;
		for (size_t k = 0; k < N_OPTS && !o; k++) {
			const char *names[2] = {opts[k].name, opts[k].alias};
			for (int j = 0; j < 2; j++)
				if (names[j] && strlen(names[j]) == len &&
				    strncmp(names[j], arg, len) == 0)
					o = &opts[k];
		}
		if (!o)
			return cli_usage_error("unknown option", arg);
		/* main() prints them: the first one given wins */
		if (strcmp(o->name, "--help") == 0 ||
		    strcmp(o->name, "--version") == 0) {
			a->help_or_version = o->name;
			return 0;
		}
		const char *value = NULL;
		if (o->kind == FLAG) {
			if (eq)
				return cli_usage_error("this option takes no value:", o->name);
		} else if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			return cli_usage_error("this option needs a value:", o->name);
		}
		if (value && !*value)
			return cli_usage_error("this option needs a non-empty value:", o->name);
		int rc = apply(a, o, value);
		if (rc)
			return rc;
	}
	return 0;
}

void cli_args_free(struct args *a)
{
	cnnviz_options_free(a->opts);
	free(a->paths);
	a->opts = NULL;
	a->paths = NULL;
}
