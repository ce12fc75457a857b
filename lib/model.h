/* The loaded model, shared by model.c, keras_config.c, weights.c, run.c. */
#ifndef CNNVIZ_MODEL_H
#define CNNVIZ_MODEL_H

#include "h5.h"
#include "internal.h"

struct cnnviz__block;

/* Warnings kept per model; the last one counts any beyond. */
#define CNNVIZ__MAX_WARNINGS 32

struct cnnviz_model {
	char *source;            /* file name for messages */
	char keras_version[32];
	int keras_major;
	int keras1_config;       /* Keras 1 key names seen */
	int theano_kernels;
	struct cnnviz__limits limits;

	int n_layers, cap_layers;
	struct cnnviz__layer **layers;
	int n_inputs, n_outputs;
	int *inputs, *outputs;   /* layer indices */

	struct cnnviz__block *blocks; /* cnnviz__model_alloc */
	float *weights;               /* one arena for all parameters */
	int64_t total_params;

	/* cnnviz_model_warning(): texts in the model arena */
	const char *warnings[CNNVIZ__MAX_WARNINGS];
	int n_warnings;
	int64_t warnings_dropped;
};

/* Weights come from a legacy Keras HDF5 group or a Keras 3 zip's file. */
enum cnnviz__wformat { WEIGHTS_LEGACY, WEIGHTS_ZIP };

/* keras_config.c: config JSON -> m->layers, m->inputs, m->outputs. */
int cnnviz__build_graph(struct cnnviz_model *m, json_t *root,
			struct cnnviz_error *err);
/* Parses JSON text (double-encoded too) under the limits. *out: new ref. */
int cnnviz__parse_config(const char *text, size_t len,
			 const struct cnnviz__limits *lim, json_t **out,
			 struct cnnviz_error *err);
/* Non-zero if Keras 1 key names occur anywhere in the config. */
int cnnviz__config_is_keras1(const json_t *root);

/* weights.c: match and read every declared weight. */
int cnnviz__load_weights(struct cnnviz_model *m, struct cnnviz__h5 *h,
			 enum cnnviz__wformat fmt, const char *group,
			 struct cnnviz_error *err);
/* Keras 1 Theano files: weight names lack the ':0' suffix. 1 if so, 0 if
   not, CNNVIZ_ERR_NOMEM when that could not be found out. */
int cnnviz__weights_look_theano(struct cnnviz__h5 *h, const char *group,
				const struct cnnviz__limits *lim);

/* model.c: shapes and weights declared for every layer / finish() run. */
int cnnviz__model_setup(struct cnnviz_model *m, struct cnnviz_error *err);
int cnnviz__model_finish(struct cnnviz_model *m, struct cnnviz_error *err);

/* Appends a zeroed layer; NULL on OOM or when over the layer limit. */
struct cnnviz__layer *cnnviz__layer_new(struct cnnviz_model *m,
					struct cnnviz_error *err);
char *cnnviz__model_strdup(struct cnnviz_model *m, const char *s);

/*
 * For fuzzing and tests: a model from config text alone, every declared
 * weight present and zero, so that config -> graph -> shapes -> run can be
 * exercised without an HDF5 file. *out: new (cnnviz_model_free).
 */
int cnnviz__model_from_config(const char *text, size_t len,
			      const cnnviz_options *opts, cnnviz_model **out,
			      struct cnnviz_error *err);

#endif
