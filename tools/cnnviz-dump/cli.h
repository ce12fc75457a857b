/* cnnviz-dump internals shared by its source files. Public API only. */
#ifndef CNNVIZ_DUMP_CLI_H
#define CNNVIZ_DUMP_CLI_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include <jansson.h>

#include <cnnviz.h>

#define MAX_INPUTS 16

struct args {
	const char *model;
	const char *weights;
	const char **paths;      /* images, folders, globs (argv) */
	int n_paths;
	const char *inputs[MAX_INPUTS]; /* --input-npy */
	int n_inputs;
	const char *npy_dir;
	const char *out_dir;     /* -o */
	int summary, list_layers, quiet;
	const char *help_or_version; /* "--help" or "--version" given */
	/* report */
	const char *labels;
	int top;
	const char *layers;      /* grids */
	const char *overlay;     /* overlay layers */
	const char *overlay_channel; /* "mean" or a number */
	const char *save_npy;    /* layers whose tensors are saved */
	/* explanations */
	const char *cams;        /* --cam methods, comma-separated */
	const char *cam_class;
	const char *cam_output;
	const char *cam_layer;
	int cam_minmax, cam_sanity, cam_eval;
	cnnviz_options *opts;    /* image/render/run option keys */
	/* bench */
	int bench;               /* runs, 0 = off */
	int batch;
	int profile;
	const char *threads;
};

/*
 * args.c: fills *a from argv (a is reset first; free with cli_args_free
 * whatever the result). 0, or 2 after printing a usage error. Never exits:
 * --help and --version are reported in a->help_or_version.
 */
int cli_parse_args(int argc, char **argv, struct args *a);
void cli_args_free(struct args *a);
void cli_usage(FILE *f);
/* Prints "cnnviz-dump: what 'arg'" and the --help hint; returns 2. */
int cli_usage_error(const char *what, const char *arg);

/* One line "cnnviz-dump: file: where: message" on stderr; returns 1. */
int cli_report(const struct cnnviz_error *e);
/* Prints "cnnviz-dump: <fmt...>" on stderr; returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cli_open_model(const struct args *a, cnnviz_model **m);
void cli_shape_text(const int64_t *shape, int rank, int batch_none, char *buf,
		    size_t size);
/* "outer/inner#2" -> "outer__inner_call2" + ext */
void cli_file_name(const char *layer, const char *ext, char *buf, size_t size);

/* Folders that appear whole or not at all. */
int cli_stage_dir(const char *parent, char *stage, size_t size);
int cli_publish_dir(const char *stage, const char *dir);
int cli_publish_files(const char *stage, const char *dir);
void cli_remove_tree(const char *dir);
int cli_mkdir_p(const char *dir);
/* *out: a new copy of every option set in src; -1 when out of memory. */
int cli_options_copy(const cnnviz_options *src, cnnviz_options **out);
/* JSON and text written whole or not at all (cnnviz_file_write). */
int cli_write_json(json_t *doc, const char *path);
int cli_write_text(const char *path, const char *text, size_t len);

/* Layer selection: "all", "conv", "last-conv", "none", "3-7", names,
   globs; comma-separated. sel[i] set for chosen layers. */
int cli_select_layers(const cnnviz_model *m, const char *spec,
		      const char *what, unsigned char *sel);

/* SHA-256 of a file as 64 hex digits; "" if unreadable. */
void cli_sha256_file(const char *path, char hex[65]);

/* Modes. */
int cli_summary(const struct args *a);
int cli_dump_npy(const struct args *a);
int cli_report_images(const struct args *a);
int cli_bench(const struct args *a);

#endif
