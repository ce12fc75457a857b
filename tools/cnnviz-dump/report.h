/* The report mode's state, shared by report.c and report_files.c. */
#ifndef CNNVIZ_DUMP_REPORT_H
#define CNNVIZ_DUMP_REPORT_H

#include "cli.h"

struct report {
	const struct args *a;
	const cnnviz_model *m;
	cnnviz_session *s;
	char model_sha[65];
	char **labels;
	int n_labels;
	unsigned char *grid_sel, *overlay_sel, *npy_sel;
	/* the model input as an image */
	int64_t in_h, in_w;
	int in_c, in_cf, in_rank2;
	size_t in_count;
	int norm_global, cropped;
	/* per image */
	const char *stage;
	const cnnviz_image *backdrop;
	json_t *layers; /* one object per layer: stats, grid, overlay ... */
	int range_pass;
	double gmin, gmax;
	float *tmp;
	size_t tmp_cap;
	int failed;
	struct cnnviz_error err;
	/* --cam */
	cnnviz_explainer *ex;
	cnnviz_options *cam_opts; /* a->opts + overlay_range 0,1 */
	unsigned char *cam_sel;  /* layers for layer-space methods */
	int cam_layers_first;
	json_t *cams;            /* per image: one object per map */
};

struct report_image {
	const char *path;
	const char *stem;
	const cnnviz_image *photo;
	double preprocess_ms, run_ms, draw_ms, total_ms;
};

/* Non-zero if option key is set to value (in the CLI's options). */
int report_option_is(const struct args *a, const char *key, const char *value);
int report_write_manifest(struct report *r, const struct report_image *im,
			  json_t *pred, json_t *top, const char *stage);
int report_write_stats(struct report *r, const char *stage);
/* cam.c */
int report_cams_setup(struct report *r);
int report_cams(struct report *r, const float *in, json_t *list);
int report_write_html(struct report *r, const struct report_image *im,
		      json_t *pred, json_t *top, const char *stage);

#endif
