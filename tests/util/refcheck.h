/*
 * Compare a model's every layer with reference outputs stored in the
 * layout of ../shared/models/expected/<model>/ (summary.json, input.npy,
 * NNN_<layer>.npy, output.npy).
 */
#ifndef REFCHECK_H
#define REFCHECK_H

#include <stddef.h>

struct refcase {
	char name[256];
	char model[1024];
	char weights[1024];   /* "" if none */
	char expected[1024];  /* folder with summary.json */
	int expect_error;      /* the model must be refused ... */
	char error_layer[256]; /* ... naming this layer (if not "") */
	char error_code[32];   /* ... with this status name (if not "") */
};

struct refresult {
	double worst_layer;   /* max over layers of max|d| / max|ref| */
	char worst_name[256];
	double final_rel;     /* final output */
	int layers_checked;   /* with stored tensors */
	int stats_checked;    /* with statistics only */
	int argmax_ok;
};

/* Tolerance relative to each tensor's largest magnitude. */
#define REFCHECK_TOL 1e-4

/* The shared folder (../shared or $CNNVIZ_SHARED), or NULL if absent. */
const char *refcheck_shared_dir(void);

/* Runs one case; returns 0 when it agrees. Prints the first mismatches. */
int refcheck_run(const struct refcase *c, struct refresult *r);

/* Reads models.tsv of the shared folder: *out new (free). */
int refcheck_shared_cases(const char *shared, struct refcase **out, int *n);
/* Cases under tests/fixtures/cases/<case>/summary.json. */
int refcheck_fixture_cases(const char *root, struct refcase **out, int *n);

#endif
