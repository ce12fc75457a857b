/*
 * Declarations shared inside lib/. Nothing here is exported: public names
 * are cnnviz_*, these are cnnviz__*.
 */
#ifndef CNNVIZ_INTERNAL_H
#define CNNVIZ_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "cnnviz.h"

#define CNNVIZ__HIDDEN __attribute__((visibility("hidden")))

/* Per-sample rank (batch excluded). */
#define CNNVIZ__MAX_SRANK (CNNVIZ_MAX_RANK - 1)
/* Weight arrays one layer may declare. */
#define CNNVIZ__MAX_WEIGHTS 6

/* ---------------------------------------------------------------- errors */

/* Fills err (if non-NULL) and returns code. where/file may be NULL. */
int cnnviz__fail(struct cnnviz_error *err, int code, const char *where,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sets err->file when it is still empty. */
void cnnviz__error_file(struct cnnviz_error *err, const char *file);
void cnnviz__error_clear(struct cnnviz_error *err);

/* ----------------------------------------------------------------- files */

/*
 * A file written whole or not at all (outfile.c): write to o->f after
 * open, then commit (written: every write succeeded; then flush, fsync,
 * rename over path) or discard. Errors name path.
 */
struct cnnviz__outfile {
	FILE *f;
	const char *path; /* borrowed until commit or discard */
	char tmp[4096];
};
int cnnviz__outfile_open(struct cnnviz__outfile *o, const char *path,
			 struct cnnviz_error *err);
int cnnviz__outfile_commit(struct cnnviz__outfile *o, int written,
			   struct cnnviz_error *err);
void cnnviz__outfile_discard(struct cnnviz__outfile *o);

/* NaN and infinite values among x[0..n) (finite.c). */
void cnnviz__count_nonfinite(const float *x, size_t n, size_t *nan,
			     size_t *inf);

/* ---------------------------------------------------------------- sizes */

/* *out = a * b; returns 0, or -1 on overflow of size_t. */
int cnnviz__mul_size(size_t a, size_t b, size_t *out);
int cnnviz__add_size(size_t a, size_t b, size_t *out);

/* Per-sample tensor shape, in the layout Keras holds the tensor. */
struct cnnviz__shape {
	int rank;
	int64_t d[CNNVIZ__MAX_SRANK];
};

/* Elements of one sample (product of dims). Dims are validated at load. */
size_t cnnviz__shape_count(const struct cnnviz__shape *s);
int cnnviz__shape_equal(const struct cnnviz__shape *a,
			const struct cnnviz__shape *b);
/* "(48, 48, 1)" into buf. */
const char *cnnviz__shape_str(const struct cnnviz__shape *s, char *buf,
			      size_t size);

/* --------------------------------------------------------------- limits */

struct cnnviz__limits {
	int64_t max_layers;
	int64_t max_dim;
	int64_t max_elements;
	int64_t max_weight_bytes;
	int64_t max_json_bytes;
	int64_t max_json_depth;
};

/*
 * Options are a key/value store; every key is declared once in options.c
 * with its type and range, and checked when set.
 */
struct cnnviz__kv {
	char *key;
	char *value;
};

struct cnnviz_options {
	int n;
	struct cnnviz__kv *kv;
};

/* Value of key (NULL opts or unset: def). Values were validated by set. */
const char *cnnviz__opt_str(const cnnviz_options *o, const char *key,
			    const char *def);
int64_t cnnviz__opt_int(const cnnviz_options *o, const char *key,
			int64_t def);
double cnnviz__opt_float(const cnnviz_options *o, const char *key,
			 double def);
/* The load limits from opts (defaults where unset). */
void cnnviz__limits_get(const cnnviz_options *o, struct cnnviz__limits *l);

/* ------------------------------------------------------------ activations */

/* Keras activation functions by name (the "activation" key). */
#define CNNVIZ__ACT_LIST(X)                                                    \
	X(LINEAR, "linear")                                                    \
	X(RELU, "relu")                                                        \
	X(RELU6, "relu6")                                                      \
	X(SIGMOID, "sigmoid")                                                  \
	X(HARD_SIGMOID, "hard_sigmoid")                                        \
	X(TANH, "tanh")                                                        \
	X(SOFTMAX, "softmax")                                                  \
	X(ELU, "elu")                                                          \
	X(SELU, "selu")                                                        \
	X(SOFTPLUS, "softplus")                                                \
	X(SOFTSIGN, "softsign")                                                \
	X(SWISH, "swish")                                                      \
	X(SILU, "silu")                                                        \
	X(GELU, "gelu")                                                        \
	X(EXPONENTIAL, "exponential")                                          \
	X(LEAKY_RELU, "leaky_relu")

enum cnnviz__act_kind {
#define CNNVIZ__ACT_ENUM(id, name) CNNVIZ__ACT_##id,
	CNNVIZ__ACT_LIST(CNNVIZ__ACT_ENUM)
#undef CNNVIZ__ACT_ENUM
	CNNVIZ__ACT_COUNT
};

/*
 * An activation with its parameters. Layers that are activations (ReLU,
 * LeakyReLU, ELU ...) are described with the same struct:
 *   RELU:        y = x >= threshold ? x : slope * (x - threshold),
 *                then min(y, max_value) when max_value >= 0 (max_value < 0
 *                means none)
 *   LEAKY_RELU:  y = x > 0 ? x : alpha * x
 *   ELU:         y = x > 0 ? x : alpha * expm1(x)
 *   HARD_SIGMOID: Keras < 3: clip(0.2x + 0.5, 0, 1); Keras 3: clip(x/6 + 0.5)
 *                (keras3 != 0)
 *   SOFTMAX:     over the last axis
 */
struct cnnviz__act {
	int kind;
	int keras3;
	float alpha;
	float max_value;
	float threshold;
	float slope;
};

/* -------------------------------------------------------------- the graph */

struct cnnviz__weight {
	const char *canon;           /* "kernel", "bias", "gamma", ... */
	struct cnnviz__shape shape;  /* exact shape the file must hold */
	int optional;                /* may be absent from the file */
	int present;                 /* set by the loader */
	float *data;                 /* model's weight arena; NULL if absent */
};

struct cnnviz__op;

struct cnnviz__layer {
	int index;
	char *name;       /* model arena */
	char *class_name; /* as in the file */
	const struct cnnviz__op *op;
	unsigned flags;   /* CNNVIZ_LAYER_* */

	int n_in;
	int *in;          /* producer layer indices */
	int alias_of;     /* containers: aliased layer; -1 */
	int input_slot;   /* InputLayer: model input number; -1 */
	int share_of;     /* k-th call of a shared layer: the first call; -1 */

	/* Keras-layout output shape (per sample). */
	struct cnnviz__shape out;
	/*
	 * Shapes the op works on. Equal to the Keras ones except for
	 * channels_first spatial layers, which the executor runs in NHWC by
	 * transposing around the op.
	 */
	struct cnnviz__shape *op_in; /* n_in shapes */
	struct cnnviz__shape op_out;
	int channels_first;

	/*
	 * Set by setup when l->in[0] is a ZeroPadding2D the op can absorb:
	 * given io->pad_folded it reads that layer's input and treats the
	 * padding as zeros itself (fuse.c decides per session).
	 */
	int can_fold_pad;
	/*
	 * Set by setup when the op can compute a DepthwiseConv2D that only
	 * it reads, tile by tile inside its own loop (io->pre; fuse.c).
	 */
	int can_take_dw;
	/*
	 * DepthwiseConv2D: floats of the ring its input rows need when the
	 * conv taking it also computes its input (io->pre->expand), or 0
	 * when its kernels cannot read rows from a ring.
	 */
	size_t ring_floats;

	/* Scratch floats the op needs: fixed + per_sample * batch. */
	size_t scratch_fixed;
	size_t scratch_per_sample;
	/* The same for backward (set by setup too). */
	size_t bscratch_fixed;
	size_t bscratch_per_sample;

	void *p;          /* op parameters (model arena) */
	int n_w;
	struct cnnviz__weight w[CNNVIZ__MAX_WEIGHTS];
	int64_t params;
	int64_t flops;    /* per sample, 2 x MACs of kernels */

	/* Loading only. */
	json_t *cfg;      /* normalised layer config, borrowed from the root */
	char *wkey;       /* weight source key (see keras_config.c) */
};

/* Everything an op's setup/finish sees. */
struct cnnviz__setup {
	struct cnnviz_model *m;
	struct cnnviz__layer *l;
	json_t *cfg;
	int keras_major;        /* 1, 2 or 3 */
	int theano_kernels;     /* Keras 1 Theano file: conv kernels flipped */
	struct cnnviz_error *err;
};

/*
 * Thread pool (threads.c). parallel_for runs fn(ctx, task, worker) for
 * task = 0..n_tasks-1 on the pool's workers and the caller, and returns
 * when all are done; worker is 0..cnnviz__pool_size(pool)-1, for per-worker
 * scratch. A NULL pool runs every task on the caller (worker 0). Results
 * must not depend on how tasks are spread over workers.
 */
struct cnnviz__pool;
int cnnviz__pool_new(int threads, struct cnnviz__pool **out);
void cnnviz__pool_free(struct cnnviz__pool *pool);
int cnnviz__pool_size(const struct cnnviz__pool *pool);
void cnnviz__parallel_for(struct cnnviz__pool *pool, int64_t n_tasks,
			  void (*fn)(void *ctx, int64_t task, int worker),
			  void *ctx);

/*
 * Work fused onto an op's output by the planner when nobody observes the
 * layers in between (flag CNNVIZ__OP_EPILOGUE), applied per element after
 * the op's own bias and activation, channel c = index along the last axis:
 *   y = y * scale[c] + shift[c]   (a folded BatchNormalization; if scale)
 *   y = y + residual[i]           (an Add; if residual, same layout as y)
 *   y = act(y)                    (an activation layer; LINEAR = none)
 */
struct cnnviz__epilogue {
	const float *scale, *shift;
	const float *residual;
	struct cnnviz__act act;
};

/*
 * The epilogue on rows x c values y (in place), residual rows matching:
 * the same kernels the folded layers run, so results are bit-identical.
 * Kernels may call it on each finished tile (fuse.c).
 */
void cnnviz__epilogue_apply(const struct cnnviz__epilogue *p, float *y,
			    const float *residual, int64_t rows, int64_t c);

/* Executor -> op. Tensors are batch x the op's shapes, contiguous. */
struct cnnviz__io {
	int64_t batch;
	const float *const *in; /* l->n_in inputs */
	float *out;
	/*
	 * l->scratch_* floats, times the pool's size: worker w may use
	 * scratch + w * (l->scratch_fixed + l->scratch_per_sample * batch).
	 */
	float *scratch;
	struct cnnviz__pool *pool; /* NULL: single-threaded */
	const struct cnnviz__epilogue *post; /* NULL: none */
	/* in[0] is the input of the ZeroPadding2D l->in[0] (can_fold_pad) */
	int pad_folded;
	/* can_take_dw: the depthwise conv to compute first; NULL: none */
	const struct cnnviz__pre *pre;
};

/*
 * A DepthwiseConv2D (and the chain folded into its epilogue) whose only
 * reader computes it (can_take_dw): in[0] is then unused.
 */
struct cnnviz__pre {
	const struct cnnviz__layer *l;
	const float *x;  /* its input; NULL with expand */
	int pad_folded;  /* x is the input of its ZeroPadding2D */
	const struct cnnviz__epilogue *post; /* its epilogue; NULL: none */
	/* The 1x1 Conv2D (and chain) computing its input, row by row in
	   the taking conv's scratch (l->ring_floats more per worker); NULL:
	   none. */
	const struct cnnviz__layer *expand;
	const float *expand_x;
	const struct cnnviz__epilogue *expand_post;
};

#define CNNVIZ__OP_ALIAS 0x1u   /* output is the input, byte for byte */
#define CNNVIZ__OP_SPATIAL 0x2u /* honours data_format: channels_first */
#define CNNVIZ__OP_MULTI 0x4u   /* takes 2+ inputs (merges) */
#define CNNVIZ__OP_EPILOGUE 0x8u /* forward honours io->post */

struct cnnviz__op {
	const char *name;
	unsigned flags;
	unsigned layer_flags; /* CNNVIZ_LAYER_* this op contributes */
	/*
	 * Reads the config (s->cfg), checks l->n_in and l->op_in[], sets
	 * l->op_out, l->p, the scratch sizes and declares the weights.
	 */
	int (*setup)(struct cnnviz__setup *s);
	/* After weights are loaded (may be NULL): precompute, reorder. */
	int (*finish)(struct cnnviz__setup *s);
	/* Cannot fail: everything was validated by setup. */
	void (*forward)(const struct cnnviz__layer *l,
			const struct cnnviz__io *io);
	/*
	 * Input gradients (NULL: not differentiable). io holds the forward
	 * inputs and io->out the forward output of this layer; dy is the
	 * gradient of the output; the gradient of input i is ADDED to dx[i]
	 * (an input may feed several layers). Shapes are the op's; scratch
	 * is l->bscratch_fixed + l->bscratch_per_sample * batch floats.
	 */
	void (*backward)(const struct cnnviz__layer *l,
			 const struct cnnviz__io *io, const float *dy,
			 float *const *dx);
};

/*
 * run.c, for the backward pass: a session that keeps every layer's output
 * after a run, and access to those outputs (batch x the Keras shape).
 */
int cnnviz__session_new_retaining(const cnnviz_model *m, int64_t max_batch,
				  const cnnviz_options *opts,
				  cnnviz_session **out, struct cnnviz_error *err);
const float *cnnviz__session_buffer(const cnnviz_session *s, int layer);
int64_t cnnviz__session_batch(const cnnviz_session *s);
/* The layer whose buffer holds `layer`'s output (itself unless an alias). */
int cnnviz__session_root(const cnnviz_session *s, int layer);
/* After a run: the buffer of layer's root, writable; NULL when that is a
   model input (the caller's memory) or nothing ran. */
float *cnnviz__session_buffer_mut(cnnviz_session *s, int layer);
/* Recomputes layers first.. of the last run in place (same batch and
   inputs, no hook): what changed in an earlier buffer flows on. */
int cnnviz__session_rerun(cnnviz_session *s, int first);
/* 1 when a run without a hook does not run `layer` as a step of its own
   (fuse.c folded it into another layer); for tests. */
int cnnviz__session_folded(const cnnviz_session *s, int layer);
/* (B,C,H,W) -> (B,H,W,C), for channels_first layers (run.c). */
void cnnviz__to_hwc(const float *x, float *y, int64_t b, int64_t c, int64_t hw);
/* The model's layers (model.c). */
const struct cnnviz__layer *cnnviz__model_layer(const cnnviz_model *m,
						int index);

/* Registry lookup (lib/layers/registry.c). NULL if unknown. */
const struct cnnviz__op *cnnviz__op_find(const char *class_name);

/* ------------------------------------------------------ setup helpers
 * Config accessors: a missing key or JSON null gives the default; a value
 * of the wrong type is CNNVIZ_ERR_FORMAT naming the layer and key.
 */
int cnnviz__cfg_int(struct cnnviz__setup *s, const char *key, int64_t def,
		    int64_t *out);
/* An int, or a list of n ints (e.g. kernel_size). */
int cnnviz__cfg_ints(struct cnnviz__setup *s, const char *key, int n,
		     int64_t def, int64_t *out);
int cnnviz__cfg_float(struct cnnviz__setup *s, const char *key, double def,
		      double *out);
int cnnviz__cfg_bool(struct cnnviz__setup *s, const char *key, int def,
		     int *out);
/* *out is borrowed from the config. */
int cnnviz__cfg_str(struct cnnviz__setup *s, const char *key,
		    const char *def, const char **out);
/* A JSON integer (or a whole real such as 3.0); -1 if it is neither. */
int cnnviz__json_int(const json_t *v, int64_t *out);
/* "padding": "valid" -> 0, "same" -> 1; anything else is refused. */
int cnnviz__cfg_padding(struct cnnviz__setup *s, int *same);
/* An activation given by name or as a serialized object. */
int cnnviz__cfg_activation(struct cnnviz__setup *s, const char *key,
			   struct cnnviz__act *out);
/* Resolve a Keras axis (negative counts from the end, batch axis = 0 in
   Keras' numbering) to a per-sample axis of rank `rank`. */
int cnnviz__cfg_axis(struct cnnviz__setup *s, const char *key, int64_t def,
		     int rank, int *axis);

/* Fails with code, where = the layer's name. */
int cnnviz__setup_fail(struct cnnviz__setup *s, int code, const char *fmt,
		       ...) __attribute__((format(printf, 3, 4)));
/* Zeroed memory owned by the model (freed with it). NULL on OOM. */
void *cnnviz__model_alloc(struct cnnviz_model *m, size_t size);
/* Declares a weight; returns its slot (0..) or a negative status. */
int cnnviz__weight_decl(struct cnnviz__setup *s, const char *canon, int rank,
			const int64_t *dims, int optional);
/* Checks dims against the limits; fills l->op_out. */
int cnnviz__set_out(struct cnnviz__setup *s, int rank, const int64_t *dims);

/* Activation parsing by name; -1 if unknown. */
int cnnviz__act_from_name(const char *name);
const char *cnnviz__act_name(int kind);

#endif /* CNNVIZ_INTERNAL_H */
