/*
 * Normalisation layers: BatchNormalization (inference: moving statistics),
 * the Normalization preprocessing layer and Rescaling. All are per-element
 * affine maps y = x * scale + shift, folded at load time so the forward pass
 * is one multiply-add.
 */
#include <math.h>
#include <string.h>

#include "../internal.h"
#include "../kernels.h"
#include "params.h"
#include "grad.h"

#define BLK 8

/*
 * y[i] = x[i] * s[i] + b[i]. Computed through a block-sized temporary so
 * y may equal x and GCC still vectorises at -O2 (fixed trip count).
 */
static inline void affine_vec(float *y, const float *x, const float *s,
			      const float *b, int64_t n)
{
	int64_t i = 0;
	for (; i + BLK <= n; i += BLK) {
		float t[BLK];
		for (int k = 0; k < BLK; k++)
			t[k] = x[i + k] * s[i + k] + b[i + k];
		for (int k = 0; k < BLK; k++)
			y[i + k] = t[k];
	}
	for (; i < n; i++)
		y[i] = x[i] * s[i] + b[i];
}

/* y[i] = x[i] * s + b. */
static inline void affine_scalar(float *y, const float *x, float s, float b,
				 int64_t n)
{
	int64_t i = 0;
	for (; i + BLK <= n; i += BLK) {
		float t[BLK];
		for (int k = 0; k < BLK; k++)
			t[k] = x[i + k] * s + b;
		for (int k = 0; k < BLK; k++)
			y[i + k] = t[k];
	}
	for (; i < n; i++)
		y[i] = x[i] * s + b;
}

void cnnviz__norm_affine(int64_t outer, int64_t c, int64_t inner,
			 const float *x, const float *scale,
			 const float *shift, float *y)
{
	if (inner == 1) {
		/* Channels last: one contiguous row of C per position. */
		for (int64_t o = 0; o < outer; o++, x += c, y += c)
			affine_vec(y, x, scale, shift, c);
		return;
	}
	for (int64_t o = 0; o < outer; o++)
		for (int64_t j = 0; j < c; j++, x += inner, y += inner)
			affine_scalar(y, x, scale[j], shift[j], inner);
}

void cnnviz__norm_bn_fold(int64_t c, const float *gamma, const float *beta,
			  const float *mean, const float *var, double eps,
			  float *scale, float *shift)
{
	for (int64_t j = 0; j < c; j++) {
		double g = gamma ? gamma[j] : 1.0;
		double b = beta ? beta[j] : 0.0;
		double sc = g / sqrt((double)var[j] + eps);
		scale[j] = (float)sc;
		shift[j] = (float)(b - (double)mean[j] * sc);
	}
}

void cnnviz__norm_standardize_fold(int64_t c, const float *mean,
				   const float *var, float *scale,
				   float *shift)
{
	for (int64_t j = 0; j < c; j++) {
		/* Keras: (x - mean) / max(sqrt(var), epsilon()). */
		double sd = sqrt((double)var[j]);
		double sc = 1.0 / (sd > 1e-7 ? sd : 1e-7);
		scale[j] = (float)sc;
		shift[j] = (float)(-(double)mean[j] * sc);
	}
}

static void affine_forward(const struct cnnviz__layer *l,
			   const struct cnnviz__io *io)
{
	const struct affine *p = l->p;
	cnnviz__norm_affine(io->batch * p->outer, p->c, p->inner, io->in[0],
			    p->scale, p->shift, io->out);
}

static int one_input(struct cnnviz__setup *s)
{
	if (s->l->n_in != 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "takes 1 input, got %d", s->l->n_in);
	if (s->l->op_in[0].rank < 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "needs an input of rank >= 1");
	return CNNVIZ_OK;
}

/* A Keras axis (batch = 0, negative from the end) -> per-sample axis. */
static int keras_axis(struct cnnviz__setup *s, const char *key, json_t *v,
		      int rank, int *out)
{
	if (!json_is_integer(v))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "'%s' must hold integers", key);
	json_int_t a = json_integer_value(v);
	if (a < 0)
		a += rank + 1;
	if (a == 0)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "'%s' names the batch axis", key);
	if (a < 0 || a > rank)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "'%s' = %lld is out of range for rank %d",
					  key, (long long)json_integer_value(v),
					  rank + 1);
	*out = (int)a - 1;
	return CNNVIZ_OK;
}

/* View one sample as (outer, dims first..last, inner). */
static void split_at(const struct cnnviz__shape *sh, int first, int last,
		     int64_t *outer, int64_t *mid, int64_t *inner)
{
	*outer = *mid = *inner = 1;
	for (int i = 0; i < sh->rank; i++) {
		if (i < first)
			*outer *= sh->d[i];
		else if (i <= last)
			*mid *= sh->d[i];
		else
			*inner *= sh->d[i];
	}
}

static struct affine *affine_alloc(struct cnnviz__setup *s, int64_t c)
{
	struct affine *p = cnnviz__model_alloc(s->m, sizeof *p);
	size_t bytes;
	if (!p || cnnviz__mul_size((size_t)c, 2 * sizeof(float), &bytes))
		return NULL;
	p->scale = cnnviz__model_alloc(s->m, bytes);
	if (!p->scale)
		return NULL;
	p->shift = p->scale + c;
	p->w_gamma = p->w_beta = p->w_mean = p->w_var = -1;
	return p;
}

/* -------------------------------------------------- BatchNormalization */

static int batch_norm_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	int axis, center, scale, renorm, rc;
	int64_t mode;
	double eps;

	if ((rc = one_input(s)))
		return rc;
	/* Keras 1 modes 1 and 2 use batch statistics at inference. */
	if ((rc = cnnviz__cfg_int(s, "mode", 0, &mode)))
		return rc;
	if (mode != 0)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "Keras 1 mode=%lld (batch statistics)",
					  (long long)mode);
	/* Keras 2 saves axis as a one-element list after build; the
	   accessor reads that and refuses longer lists. */
	if ((rc = cnnviz__cfg_axis(s, "axis", -1, in->rank, &axis)) ||
	    (rc = cnnviz__cfg_float(s, "epsilon", 1e-3, &eps)) ||
	    (rc = cnnviz__cfg_bool(s, "center", 1, &center)) ||
	    (rc = cnnviz__cfg_bool(s, "scale", 1, &scale)) ||
	    (rc = cnnviz__cfg_bool(s, "renorm", 0, &renorm)))
		return rc;
	/* Renorm adds renorm_* variables the file would carry. */
	if (renorm)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "renorm=true");
	if (!(eps >= 0))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "epsilon %g", eps);

	int64_t c = in->d[axis];
	struct affine *p = affine_alloc(s, c);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	split_at(in, axis, axis, &p->outer, &p->c, &p->inner);
	p->eps = eps;
	if (scale && (p->w_gamma = cnnviz__weight_decl(s, "gamma", 1, &c, 0)) < 0)
		return p->w_gamma;
	if (center && (p->w_beta = cnnviz__weight_decl(s, "beta", 1, &c, 0)) < 0)
		return p->w_beta;
	if ((p->w_mean = cnnviz__weight_decl(s, "moving_mean", 1, &c, 0)) < 0)
		return p->w_mean;
	if ((p->w_var = cnnviz__weight_decl(s, "moving_variance", 1, &c, 0)) < 0)
		return p->w_var;
	l->p = p;
	return cnnviz__set_out(s, in->rank, in->d);
}

static const float *wdata(const struct cnnviz__layer *l, int slot)
{
	return slot >= 0 ? l->w[slot].data : NULL;
}

static int batch_norm_finish(struct cnnviz__setup *s)
{
	const struct cnnviz__layer *l = s->l;
	struct affine *p = l->p;
	cnnviz__norm_bn_fold(p->c, wdata(l, p->w_gamma), wdata(l, p->w_beta),
			     wdata(l, p->w_mean), wdata(l, p->w_var), p->eps,
			     p->scale, p->shift);
	return CNNVIZ_OK;
}

const struct cnnviz__op cnnviz__op_batch_norm = {
	.name = "batch_norm",
	.setup = batch_norm_setup,
	.finish = batch_norm_finish,
	.forward = affine_forward,
	.backward = cnnviz__affine_backward,
};

/* ------------------------------------------------------- Normalization */

/* Counts the numbers in a number or nested list; -1 if anything else. */
static int64_t count_numbers(const json_t *v)
{
	if (json_is_number(v))
		return 1;
	if (!json_is_array(v))
		return -1;
	int64_t n = 0;
	for (size_t i = 0; i < json_array_size(v); i++) {
		int64_t k = count_numbers(json_array_get(v, i));
		if (k < 0)
			return -1;
		n += k;
	}
	return n;
}

static void flatten_numbers(const json_t *v, float **dst)
{
	if (json_is_number(v)) {
		*(*dst)++ = (float)json_number_value(v);
		return;
	}
	for (size_t i = 0; i < json_array_size(v); i++)
		flatten_numbers(json_array_get(v, i), dst);
}

/* Config "mean"/"variance" (Keras 3): a number, or nstat or 1 numbers. */
static int cfg_stats(struct cnnviz__setup *s, const char *key, int64_t nstat,
		     float **out, int64_t *n)
{
	json_t *v = json_object_get(s->cfg, key);
	*out = NULL;
	*n = 0;
	if (!v || json_is_null(v))
		return CNNVIZ_OK;
	int64_t k = count_numbers(v);
	if (k < 0)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "'%s' is neither a number nor a list of numbers",
					  key);
	if (k != 1 && k != nstat)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "'%s' has %lld values, expected 1 or %lld",
					  key, (long long)k, (long long)nstat);
	*out = cnnviz__model_alloc(s->m, (size_t)k * sizeof(float));
	if (!*out)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	float *dst = *out;
	flatten_numbers(v, &dst);
	*n = k;
	return CNNVIZ_OK;
}

/* Reads "axis": an int, a list of ints, or null (one global statistic). */
static int norm_axes(struct cnnviz__setup *s, int rank, int *keep, int *n)
{
	json_t *v = json_object_get(s->cfg, "axis");
	int rc;
	*n = 0;
	if (!v) {
		keep[(*n)++] = rank - 1;
		return CNNVIZ_OK;
	}
	if (json_is_null(v))
		return CNNVIZ_OK;
	if (!json_is_array(v)) {
		(*n)++;
		return keras_axis(s, "axis", v, rank, &keep[0]);
	}
	if (json_array_size(v) > (size_t)rank)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "axis lists %zu axes for rank %d",
					  json_array_size(v), rank + 1);
	for (size_t i = 0; i < json_array_size(v); i++) {
		int a;
		if ((rc = keras_axis(s, "axis", json_array_get(v, i), rank, &a)))
			return rc;
		/* Keras sorts the kept axes. */
		int j = *n;
		for (; j > 0 && keep[j - 1] > a; j--)
			keep[j] = keep[j - 1];
		if (j > 0 && keep[j - 1] == a)
			return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
						  "axis %d listed twice", a + 1);
		keep[j] = a;
		(*n)++;
	}
	return CNNVIZ_OK;
}

static int normalization_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	int keep[CNNVIZ__MAX_SRANK] = {0}, nkeep, invert, rc;

	if ((rc = one_input(s)))
		return rc;
	if ((rc = cnnviz__cfg_bool(s, "invert", 0, &invert)))
		return rc;
	if (invert)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "invert=true");
	if ((rc = norm_axes(s, in->rank, keep, &nkeep)))
		return rc;

	/* The folded arrays span the dims from the first to the last kept
	   axis; with no kept axis (axis=null) one statistic covers all. */
	int first = nkeep ? keep[0] : 0;
	int last = nkeep ? keep[nkeep - 1] : -1;
	int64_t outer, span, inner;
	split_at(in, first, last, &outer, &span, &inner);
	struct affine *p = affine_alloc(s, span);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	p->outer = outer;
	p->c = span;
	p->inner = inner;
	p->nkeep = nkeep;
	p->span_rank = last - first + 1;
	p->nstat = 1;
	int64_t sdims[CNNVIZ__MAX_SRANK];
	for (int i = 0; i < nkeep; i++) {
		p->keep[i] = keep[i] - first;
		sdims[i] = in->d[keep[i]];
		p->nstat *= sdims[i];
	}
	for (int i = 0; i < p->span_rank; i++)
		p->kdim[i] = in->d[first + i];

	if ((rc = cfg_stats(s, "mean", p->nstat, &p->cfg_mean,
			    &p->cfg_mean_n)) ||
	    (rc = cfg_stats(s, "variance", p->nstat, &p->cfg_var,
			    &p->cfg_var_n)))
		return rc;
	if ((p->w_mean = cnnviz__weight_decl(s, "mean", nkeep, sdims, 1)) < 0)
		return p->w_mean;
	if ((p->w_var = cnnviz__weight_decl(s, "variance", nkeep, sdims, 1)) < 0)
		return p->w_var;
	/* The adapt() sample count: stored by Keras, unused at inference. */
	if ((rc = cnnviz__weight_decl(s, "count", 0, sdims, 1)) < 0)
		return rc;
	l->p = p;
	return cnnviz__set_out(s, in->rank, in->d);
}

static int normalization_finish(struct cnnviz__setup *s)
{
	const struct cnnviz__layer *l = s->l;
	struct affine *p = l->p;
	const float *mean, *var;
	int64_t nm, nv;

	int has_m = l->w[p->w_mean].present && l->w[p->w_mean].data;
	int has_v = l->w[p->w_var].present && l->w[p->w_var].data;
	if (has_m != has_v)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_WEIGHTS,
					  "has one of mean/variance but not the other");
	if (has_m) {
		mean = l->w[p->w_mean].data;
		var = l->w[p->w_var].data;
		nm = nv = p->nstat;
	} else if (p->cfg_mean && p->cfg_var) {
		mean = p->cfg_mean;
		var = p->cfg_var;
		nm = p->cfg_mean_n;
		nv = p->cfg_var_n;
	} else {
		return cnnviz__setup_fail(s, CNNVIZ_ERR_WEIGHTS,
					  "no mean/variance weights and none in the config");
	}

	/* Fold per statistic, then spread over the span: element i of the
	   span reads the statistic at its kept-axis coordinates. */
	for (int64_t i = 0; i < p->c; i++) {
		int64_t rem = i, sidx = 0, sstride = 1;
		int k = p->nkeep - 1;
		for (int ax = p->span_rank - 1; ax >= 0; ax--) {
			int64_t coord = rem % p->kdim[ax];
			rem /= p->kdim[ax];
			if (k >= 0 && p->keep[k] == ax) {
				sidx += coord * sstride;
				sstride *= p->kdim[ax];
				k--;
			}
		}
		float m = mean[nm == 1 ? 0 : sidx];
		float v = var[nv == 1 ? 0 : sidx];
		cnnviz__norm_standardize_fold(1, &m, &v, &p->scale[i],
					      &p->shift[i]);
	}
	return CNNVIZ_OK;
}

const struct cnnviz__op cnnviz__op_normalization = {
	.name = "normalization",
	.setup = normalization_setup,
	.finish = normalization_finish,
	.forward = affine_forward,
	.backward = cnnviz__affine_backward,
};

/* ----------------------------------------------------------- Rescaling */

/* A number; a one-element list is accepted (per-channel lists are not). */
static int cfg_scalar(struct cnnviz__setup *s, const char *key, double def,
		      double *out)
{
	json_t *v = json_object_get(s->cfg, key);
	if (json_is_array(v) && json_array_size(v) != 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "'%s' as a list of %zu values", key,
					  json_array_size(v));
	if (json_is_object(v))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "'%s' as a serialized tensor", key);
	return cnnviz__cfg_float(s, key, def, out);
}

static int rescaling_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	double scale, offset;
	int rc;

	if ((rc = one_input(s)))
		return rc;
	if ((rc = cfg_scalar(s, "scale", 1.0, &scale)) ||
	    (rc = cfg_scalar(s, "offset", 0.0, &offset)))
		return rc;
	struct rescale *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	/* Keras casts both to the layer's float32 dtype. */
	p->scale = (float)scale;
	p->offset = (float)offset;
	l->p = p;
	return cnnviz__set_out(s, l->op_in[0].rank, l->op_in[0].d);
}

static void rescaling_forward(const struct cnnviz__layer *l,
			      const struct cnnviz__io *io)
{
	const struct rescale *p = l->p;
	size_t n = cnnviz__shape_count(&l->op_in[0]) * (size_t)io->batch;
	cnnviz__norm_rescale((int64_t)n, io->in[0], p->scale, p->offset,
			     io->out);
}

void cnnviz__norm_rescale(int64_t n, const float *x, float scale,
			  float offset, float *y)
{
	affine_scalar(y, x, scale, offset, n);
}

const struct cnnviz__op cnnviz__op_rescaling = {
	.name = "rescaling",
	.setup = rescaling_setup,
	.forward = rescaling_forward,
	.backward = cnnviz__rescaling_backward,
};
