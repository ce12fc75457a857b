/*
 * The explainer: shared by grad.c (forward + backward executor), cam.c
 * (the CAM family and the input-space attributions) and sanity.c
 * (randomisation test, faithfulness scores).
 */
#ifndef CNNVIZ_EXPLAIN_H
#define CNNVIZ_EXPLAIN_H

#include "internal.h"

/* A target resolved against the model (see cnnviz__ex_prepare). */
struct cnnviz__rtarget {
	int layer;        /* root layer whose buffer holds the target units */
	int64_t unit, minus;
	int preact;       /* seed the pre-activation of `layer` (logit of a
			     fused softmax): backward skips its activation */
	int user_layer;   /* the layer the caller named */
};

struct cnnviz_explainer {
	const cnnviz_model *m;
	cnnviz_session *s;
	int64_t max_batch;
	int n_layers;
	int logit;           /* option target_logit */
	int guided;          /* guided backprop for the next backward */

	int *root;           /* per layer: the layer owning its buffer */
	float **grad;        /* per layer: gradient buffer (its root's) */
	float *garena;
	size_t garena_floats;
	unsigned char *need; /* per layer: leads to the last target */

	float *scratch;      /* backward scratch + channels_first temps */
	size_t scratch_floats;
	const float **ins;   /* per-layer pointer arrays (max_in) */
	float **dx;

	float **inputs;      /* own copies of the model inputs */
	const float **in_ptrs;
	size_t *in_count;    /* per input: floats of one sample */

	int64_t batch;       /* of the last forward, 0 before */
	int backward_done;
	struct cnnviz__rtarget t;
	double *scores;      /* per sample: f(x) of the last forward */
};

/* Resolves a public target into ex->t. */
int cnnviz__ex_prepare(cnnviz_explainer *ex, const struct cnnviz_target *t,
		       struct cnnviz_error *err);
/* Forward of ex->inputs (batch samples) and the scores of ex->t. */
int cnnviz__ex_forward(cnnviz_explainer *ex, int64_t batch,
		       struct cnnviz_error *err);
/* Recomputes ex->scores from the session's buffers. */
void cnnviz__ex_scores(cnnviz_explainer *ex);
/* Backward from ex->t after a forward: fills every layer's gradient. */
int cnnviz__ex_backward(cnnviz_explainer *ex, struct cnnviz_error *err);
/* Re-runs the layers after `layer` (their buffers), then the scores. */
int cnnviz__ex_rerun_after(cnnviz_explainer *ex, int layer);

/* Per-sample output shape of a layer in Keras layout. */
const struct cnnviz__shape *cnnviz__ex_shape(const cnnviz_explainer *ex,
					     int layer);
/* H, W, C and the strides of a rank-3 layer output (channels_first aware):
   element (y, x, c) of one sample is at y*sy + x*sx + c*sc. */
int cnnviz__ex_spatial(const cnnviz_explainer *ex, int layer, int64_t *h,
		       int64_t *w, int64_t *c, int64_t *sy, int64_t *sx,
		       int64_t *sc);

/* One cnnviz_cam() call, as cam.c hands it to attrib.c. */
struct cnnviz__cam_call {
	cnnviz_explainer *ex;
	const char *method;
	int layer;                  /* resolved */
	const float *const *inputs; /* the caller's: one sample each */
	const cnnviz_options *opts;
	float *map;                 /* h x w */
	int64_t h, w;
	struct cnnviz_cam_info *info;
	struct cnnviz_error *err;
};

/* Fills the first `batch` samples of every explainer input with the
   caller's single sample. */
void cnnviz__ex_fill(cnnviz_explainer *ex, const float *const *inputs,
		     int64_t batch);
/* attrib.c: occlusion, saliency, smoothgrad, ig, guided_backprop. */
int cnnviz__attrib(struct cnnviz__cam_call *c);

/* Deterministic random numbers (splitmix64). */
struct cnnviz__rng {
	uint64_t s;
};
double cnnviz__rng_uniform(struct cnnviz__rng *r); /* [0, 1) */
double cnnviz__rng_normal(struct cnnviz__rng *r);

#endif /* CNNVIZ_EXPLAIN_H */
