/*
 * Parameter structs of the layer families, shared by each family's
 * forward file (<family>.c fills them in setup/finish) and its backward
 * file (<family>_grad.c reads them). conv.c keeps its struct private (it
 * is being tuned) and offers cnnviz__conv_view() instead (grad.h).
 */
#ifndef CNNVIZ_LAYERS_PARAMS_H
#define CNNVIZ_LAYERS_PARAMS_H

#include "../internal.h"

/* ---- dense.c */

struct cnnviz__packed;

struct dense {
	int64_t in, units;
	int64_t rows;       /* per sample: product of the non-last dims */
	int w_kernel, w_bias; /* weight slots; w_bias -1 without bias */
	struct cnnviz__act act;
	const struct cnnviz__packed *kpack; /* kernel packed (finish) */
};

/* ---- norm.c */

/* Folded per-channel map over an (outer, c, inner) view of one sample. */
struct affine {
	int64_t outer, c, inner;
	float *scale, *shift;
	/* BatchNormalization */
	double eps;
	int w_gamma, w_beta, w_mean, w_var; /* weight slots, -1 if absent */
	/* Normalization: keep-axes expansion and config statistics. */
	int nkeep;
	int keep[CNNVIZ__MAX_SRANK];
	int64_t kdim[CNNVIZ__MAX_SRANK]; /* dims of the span first..last kept */
	int span_rank;
	int64_t nstat;               /* elements of mean / variance */
	float *cfg_mean, *cfg_var;   /* from the config (NULL if absent) */
	int64_t cfg_mean_n, cfg_var_n;
};

struct rescale {
	float scale, offset;
};

/* ---- pool.c */

struct global_pool {
	int64_t hw, c;
};

/* ---- activation.c */

/* Activation, ReLU, LeakyReLU, ELU: one cnnviz__act over (rows, cols). */
struct act_layer {
	struct cnnviz__act act;
	size_t rows, cols; /* per sample; cols = last axis (softmax) */
};

struct thresholded {
	float theta;
	size_t count;
};

struct softmax_layer {
	int64_t outer, n, inner; /* per sample, around the softmax axis */
};

struct prelu {
	int64_t count;  /* per sample */
	float *alpha;   /* (count): the weight broadcast over shared axes */
	int slot;       /* of the "alpha" weight */
	struct cnnviz__shape ashape;
};

/* ---- merge.c */

struct merge {
	int kind;
	int n_in;
	size_t count;   /* element-wise: per-sample elements */
	int64_t outer;  /* concat: per sample, before the axis */
	int64_t *len;   /* concat: (n_in) axis size * inner */
};

/* ---- shape.c */

struct permute {
	int rank;
	int perm[CNNVIZ__MAX_SRANK];
	int64_t dims[CNNVIZ__MAX_SRANK]; /* input, per sample */
	int64_t count;
};

struct frame2d {
	int64_t h, w, c;
	int64_t t, b, l, r;  /* padding added / cropping removed */
	int64_t oh, ow;
};

struct upsample {
	int64_t h, w, c, sh, sw;
	int bilinear;
};

#endif /* CNNVIZ_LAYERS_PARAMS_H */
