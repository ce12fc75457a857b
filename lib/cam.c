/*
 * cnnviz_cam(): the CAM family on a layer's feature map A (h, w, K) and
 * the gradient G = dF/dA of the target. Maps are returned raw -- signed,
 * at the layer's resolution -- and never hold NaN: a class with no
 * positive evidence is reported by a flag, not hidden by a division.
 * The input-space methods live in attrib.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "kernels.h"
#include "layers/params.h"

static const char *const methods[] = {
	"gradcam", "gradcam++", "layercam", "hirescam", "cam", "scorecam",
	"ablationcam", "eigencam", "occlusion", "saliency", "smoothgrad",
	"ig", "guided_backprop",
};
#define N_METHODS (int)(sizeof methods / sizeof methods[0])
#define FIRST_INPUT_METHOD 8

const char *cnnviz_cam_method(int i)
{
	return i >= 0 && i < N_METHODS ? methods[i] : NULL;
}

static int method_index(const char *m)
{
	for (int i = 0; m && i < N_METHODS; i++)
		if (strcmp(methods[i], m) == 0)
			return i;
	return -1;
}

int cnnviz_cam_method_is_input(const char *method)
{
	return method_index(method) >= FIRST_INPUT_METHOD;
}

/* Marks which layers lead to layer `to` (need[] of n layers). */
static void leads_to(const cnnviz_model *m, int to, unsigned char *need)
{
	need[to] = 1;
	for (int i = to; i >= 0; i--) {
		struct cnnviz_layer_info info;
		if (!need[i] || cnnviz_model_layer(m, i, &info))
			continue;
		for (int k = 0; k < info.n_inputs; k++)
			need[info.inputs[k]] = 1;
		if (info.alias_of >= 0)
			need[info.alias_of] = 1;
	}
}

int cnnviz_cam_default_layer(const cnnviz_model *m)
{
	int n = m ? cnnviz_model_layer_count(m) : 0, out;
	if (n <= 0 || (out = cnnviz_model_output_layer(m, 0)) < 0)
		return -1;
	unsigned char *need = calloc((size_t)n, 1);
	if (!need)
		return -1;
	leads_to(m, out, need);
	int best = -1;
	for (int i = 0; i < n; i++) {
		struct cnnviz_layer_info info;
		if (need[i] && !cnnviz_model_layer(m, i, &info) &&
		    info.rank == 4 && !(info.flags & CNNVIZ_LAYER_INPUT))
			best = i;
	}
	free(need);
	return best;
}

/* ------------------------------------------------------------ plumbing */

void cnnviz__ex_fill(cnnviz_explainer *ex, const float *const *inputs,
		     int64_t batch)
{
	for (int i = 0; i < cnnviz_model_input_count(ex->m); i++)
		for (int64_t b = 0; b < batch; b++)
			memcpy(ex->inputs[i] + b * (int64_t)ex->in_count[i],
			       inputs[i], ex->in_count[i] * sizeof(float));
}

static int resolve(const cnnviz_explainer *ex, int mi, int li, int *out,
		   int64_t *h, int64_t *w, struct cnnviz_error *err)
{
	int64_t c, sy, sx, sc;
	if (mi < 0)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "unknown explanation method");
	if (mi >= FIRST_INPUT_METHOD) {
		if (li < 0)
			li = cnnviz_model_input_layer(ex->m, 0);
		struct cnnviz_layer_info info;
		if (li >= ex->n_layers || cnnviz_model_layer(ex->m, li, &info) ||
		    !(info.flags & CNNVIZ_LAYER_INPUT))
			return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
					    "%s works on a model input; layer %d is none",
					    methods[mi], li);
	} else if (li < 0) {
		li = cnnviz_cam_default_layer(ex->m);
	}
	if (li < 0 || li >= ex->n_layers)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "no layer with an image-like output for %s", methods[mi]);
	if (cnnviz__ex_spatial(ex, li, h, w, &c, &sy, &sx, &sc)) {
		struct cnnviz_layer_info info;
		cnnviz_model_layer(ex->m, li, &info);
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, info.name,
				    "%s needs an image-like (rank-4) tensor", methods[mi]);
	}
	*out = li;
	return CNNVIZ_OK;
}

int cnnviz_cam_size(const cnnviz_explainer *ex, const char *method, int li,
		    int64_t *h, int64_t *w, struct cnnviz_error *err)
{
	int l;
	cnnviz__error_clear(err);
	if (!ex || !h || !w)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "NULL argument");
	return resolve(ex, method_index(method), li, &l, h, w, err);
}

/* A's layout for one sample. */
struct fmap {
	const float *a, *g;   /* activation, gradient (may be NULL) */
	int64_t h, w, k, sy, sx, sc;
};

static int fmap_of(cnnviz_explainer *ex, int li, int64_t sample,
		   struct fmap *f)
{
	struct cnnviz_tensor t;
	if (cnnviz__ex_spatial(ex, li, &f->h, &f->w, &f->k, &f->sy, &f->sx, &f->sc) ||
	    cnnviz_explainer_activation(ex, li, &t))
		return -1;
	size_t n = (size_t)(f->h * f->w * f->k);
	f->a = t.data + (size_t)sample * n;
	f->g = NULL;
	if (!cnnviz_explainer_gradient(ex, li, &t))
		f->g = t.data + (size_t)sample * n;
	return 0;
}

static double at(const float *x, const struct fmap *f, int64_t i, int64_t j,
		 int64_t k)
{
	return x[i * f->sy + j * f->sx + k * f->sc];
}

/* map (h,w) = sum_k wk[k] A_k */
static void weighted_sum(const struct fmap *f, const double *wk, float *map)
{
	for (int64_t i = 0; i < f->h; i++)
		for (int64_t j = 0; j < f->w; j++) {
			double s = 0.0;
			for (int64_t k = 0; k < f->k; k++)
				s += wk[k] * at(f->a, f, i, j, k);
			map[i * f->w + j] = (float)s;
		}
}

/* ------------------------------------------------------ gradient methods */

static void gradcam(const struct fmap *f, double *wk, float *map)
{
	const double inv = 1.0 / (double)(f->h * f->w);
	for (int64_t k = 0; k < f->k; k++) {
		double s = 0.0;
		for (int64_t i = 0; i < f->h; i++)
			for (int64_t j = 0; j < f->w; j++)
				s += at(f->g, f, i, j, k);
		wk[k] = s * inv;
	}
	weighted_sum(f, wk, map);
}

static void gradcam_pp(const struct fmap *f, double *wk, float *map)
{
	for (int64_t k = 0; k < f->k; k++) {
		double sa = 0.0, s = 0.0;
		for (int64_t i = 0; i < f->h; i++)
			for (int64_t j = 0; j < f->w; j++)
				sa += at(f->a, f, i, j, k);
		for (int64_t i = 0; i < f->h; i++)
			for (int64_t j = 0; j < f->w; j++) {
				double g = at(f->g, f, i, j, k), g2 = g * g;
				double den = 2.0 * g2 + sa * g2 * g;
				double alpha = den != 0.0 ? g2 / den : 0.0;
				s += alpha * (g > 0.0 ? g : 0.0);
			}
		wk[k] = s;
	}
	weighted_sum(f, wk, map);
}

/* layercam (relu_g) or hirescam: per position sum_k g A. */
static void elementwise_cam(const struct fmap *f, int relu_g, float *map)
{
	for (int64_t i = 0; i < f->h; i++)
		for (int64_t j = 0; j < f->w; j++) {
			double s = 0.0;
			for (int64_t k = 0; k < f->k; k++) {
				double g = at(f->g, f, i, j, k);
				if (relu_g && g < 0.0)
					g = 0.0;
				s += g * at(f->a, f, i, j, k);
			}
			map[i * f->w + j] = (float)s;
		}
}

/* ------------------------------------------------------------------ CAM */

extern const struct cnnviz__op cnnviz__op_global_avg_pool2d, cnnviz__op_dense,
	cnnviz__op_softmax, cnnviz__op_activation;

/* The Dense of a GAP->Dense head on top of layer li, or NULL. */
static const struct cnnviz__layer *cam_head(const cnnviz_explainer *ex, int li)
{
	const struct cnnviz__layer *d = cnnviz__model_layer(ex->m, ex->t.layer);
	if (d->op == &cnnviz__op_softmax ||
	    (d->op == &cnnviz__op_activation && d->p &&
	     ((const struct act_layer *)d->p)->act.kind == CNNVIZ__ACT_SOFTMAX))
		d = cnnviz__model_layer(ex->m, ex->root[d->in[0]]);
	if (d->op != &cnnviz__op_dense || d->n_in != 1)
		return NULL;
	const struct cnnviz__layer *p = cnnviz__model_layer(ex->m, ex->root[d->in[0]]);
	if (p->op != &cnnviz__op_global_avg_pool2d || p->n_in != 1 ||
	    ex->root[p->in[0]] != ex->root[li])
		return NULL;
	const struct dense *dp = d->p;
	int64_t h, w, c, sy, sx, sc;
	if (cnnviz__ex_spatial(ex, li, &h, &w, &c, &sy, &sx, &sc) ||
	    dp->rows != 1 || dp->in != c)
		return NULL;
	return d;
}

static int cam(cnnviz_explainer *ex, int li, const struct fmap *f,
	       double *wk, float *map, struct cnnviz_error *err)
{
	const struct cnnviz__layer *d = cam_head(ex, li);
	if (!d) {
		struct cnnviz_layer_info info;
		cnnviz_model_layer(ex->m, li, &info);
		return cnnviz__fail(err, CNNVIZ_ERR_UNSUPPORTED, info.name,
				    "CAM needs this layer to feed GlobalAveragePooling2D -> the target Dense; use gradcam (equal up to scale on such heads)");
	}
	const struct dense *dp = d->p;
	const float *k = d->w[dp->w_kernel].data;
	/* units: the target's unit (a Dense output or its softmax's) */
	for (int64_t c = 0; c < f->k; c++) {
		wk[c] = k[c * dp->units + ex->t.unit];
		if (ex->t.minus >= 0)
			wk[c] -= k[c * dp->units + ex->t.minus];
	}
	weighted_sum(f, wk, map);
	return CNNVIZ_OK;
}

/* ------------------------------------------------------------- Eigen-CAM */

/* Top eigenvector of the symmetric n x n matrix s by power iteration. */
static void top_eigvec(const double *s, int64_t n, double *v, double *tmp)
{
	for (int64_t i = 0; i < n; i++)
		v[i] = 1.0 + 1e-3 * (double)(i % 7);
	for (int it = 0; it < 500; it++) {
		double norm = 0.0, diff = 0.0;
		for (int64_t i = 0; i < n; i++) {
			double a = 0.0;
			for (int64_t j = 0; j < n; j++)
				a += s[i * n + j] * v[j];
			tmp[i] = a;
			norm += a * a;
		}
		norm = sqrt(norm);
		if (norm == 0.0)
			return;
		for (int64_t i = 0; i < n; i++) {
			double x = tmp[i] / norm;
			diff += fabs(x - v[i]);
			v[i] = x;
		}
		if (diff < 1e-12 * (double)n)
			return;
	}
}

static int eigencam(const struct fmap *f, float *map,
		    struct cnnviz_error *err)
{
	const int64_t P = f->h * f->w, K = f->k, n = P < K ? P : K;
	double *x = malloc((size_t)(P * K + n * n + 2 * (n > P ? n : P)) * sizeof *x);
	if (!x)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	double *s = x + P * K, *v = s + n * n, *tmp = v + (n > P ? n : P);
	for (int64_t k = 0; k < K; k++) {
		double mean = 0.0;
		for (int64_t p = 0; p < P; p++)
			mean += at(f->a, f, p / f->w, p % f->w, k);
		mean /= (double)P;
		for (int64_t p = 0; p < P; p++)
			x[p * K + k] = at(f->a, f, p / f->w, p % f->w, k) - mean;
	}
	/* The smaller Gram matrix: X^T X (K x K) or X X^T (P x P). */
	for (int64_t i = 0; i < n; i++)
		for (int64_t j = 0; j <= i; j++) {
			double a = 0.0;
			if (K <= P)
				for (int64_t p = 0; p < P; p++)
					a += x[p * K + i] * x[p * K + j];
			else
				for (int64_t k = 0; k < K; k++)
					a += x[i * K + k] * x[j * K + k];
			s[i * n + j] = s[j * n + i] = a;
		}
	top_eigvec(s, n, v, tmp);
	double corr = 0.0;
	for (int64_t p = 0; p < P; p++) {
		double proj = 0.0, mean = 0.0;
		if (K <= P) {
			for (int64_t k = 0; k < K; k++)
				proj += x[p * K + k] * v[k];
		} else {
			proj = v[p];
		}
		for (int64_t k = 0; k < K; k++)
			mean += at(f->a, f, p / f->w, p % f->w, k);
		tmp[p] = proj;
		corr += proj * mean;
	}
	/* X X^T's eigenvector is the projection up to the singular value. */
	double scale = 1.0;
	if (K > P) {
		double l = 0.0;
		for (int64_t i = 0; i < n; i++)
			for (int64_t j = 0; j < n; j++)
				l += v[i] * s[i * n + j] * v[j];
		scale = sqrt(l > 0.0 ? l : 0.0);
	}
	if (corr < 0.0)
		scale = -scale;
	for (int64_t p = 0; p < P; p++)
		map[p] = (float)(tmp[p] * scale);
	free(x);
	return CNNVIZ_OK;
}

/* ------------------------------------------------- Score-CAM, Ablation */

static int cmp_desc(const void *a, const void *b)
{
	const double *x = a, *y = b;
	return x[0] < y[0] ? 1 : x[0] > y[0] ? -1 : (x[1] > y[1]) - (x[1] < y[1]);
}

/* Channel indices by decreasing mean activation. */
static int64_t *top_channels(const struct fmap *f)
{
	double *kv = malloc((size_t)f->k * 2 * sizeof *kv);
	int64_t *idx = malloc((size_t)f->k * sizeof *idx);
	if (!kv || !idx) {
		free(kv);
		free(idx);
		return NULL;
	}
	for (int64_t k = 0; k < f->k; k++) {
		double s = 0.0;
		for (int64_t p = 0; p < f->h * f->w; p++)
			s += at(f->a, f, p / f->w, p % f->w, k);
		kv[2 * k] = s;
		kv[2 * k + 1] = (double)k;
	}
	qsort(kv, (size_t)f->k, 2 * sizeof *kv, cmp_desc);
	for (int64_t k = 0; k < f->k; k++)
		idx[k] = (int64_t)kv[2 * k + 1];
	free(kv);
	return idx;
}

static int scorecam(struct cnnviz__cam_call *c, struct fmap *f, double *wk,
		    int64_t *runs)
{
	cnnviz_explainer *ex = c->ex;
	int in_layer = cnnviz_model_input_layer(ex->m, 0);
	int64_t H, W, C, sy, sx, sc;
	if (cnnviz__ex_spatial(ex, in_layer, &H, &W, &C, &sy, &sx, &sc))
		return cnnviz__fail(c->err, CNNVIZ_ERR_UNSUPPORTED, NULL,
				    "Score-CAM needs an image-like first model input");
	int64_t top = cnnviz__opt_int(c->opts, "scorecam_top", 0);
	int64_t nk = top > 0 && top < f->k ? top : f->k;
	const int64_t B = ex->max_batch, hw = f->h * f->w;
	/* A is copied: the forward runs below overwrite the session's buffers */
	float *a = malloc((size_t)(hw * f->k + hw + H * W) * sizeof *a);
	double *sk = malloc((size_t)nk * sizeof *sk);
	int64_t *idx = top_channels(f);
	int rc = CNNVIZ_OK;
	if (!a || !sk || !idx) {
		rc = cnnviz__fail(c->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	float *ak = a + hw * f->k, *up = ak + hw;
	for (int64_t p = 0; p < hw; p++)
		for (int64_t k = 0; k < f->k; k++)
			a[k * hw + p] = (float)at(f->a, f, p / f->w, p % f->w, k);
	for (int64_t k0 = 0; k0 < nk; k0 += B) {
		int64_t nb = nk - k0 < B ? nk - k0 : B;
		cnnviz__ex_fill(ex, c->inputs, nb);
		for (int64_t b = 0; b < nb; b++) {
			memcpy(ak, a + idx[k0 + b] * hw, (size_t)hw * sizeof *ak);
			cnnviz__resize_bilinear(ak, f->h, f->w, 1, up, H, W);
			float lo = up[0], hi = up[0];
			for (int64_t p = 1; p < H * W; p++) {
				lo = up[p] < lo ? up[p] : lo;
				hi = up[p] > hi ? up[p] : hi;
			}
			float *x = ex->inputs[0] + b * (int64_t)ex->in_count[0];
			for (int64_t p = 0; p < H * W; p++) {
				float m = hi > lo ? (up[p] - lo) / (hi - lo) : 0.0f;
				for (int64_t ch = 0; ch < C; ch++)
					x[(p / W) * sy + (p % W) * sx + ch * sc] *= m;
			}
		}
		if ((rc = cnnviz__ex_forward(ex, nb, c->err)))
			goto out;
		*runs += nb;
		for (int64_t b = 0; b < nb; b++)
			sk[k0 + b] = ex->scores[b];
	}
	/* softmax over the channels' scores */
	double mx = -INFINITY, sum = 0.0;
	for (int64_t k = 0; k < nk; k++)
		mx = isfinite(sk[k]) && sk[k] > mx ? sk[k] : mx;
	for (int64_t k = 0; k < f->k; k++)
		wk[k] = 0.0;
	for (int64_t k = 0; k < nk; k++) {
		double e = isfinite(sk[k]) ? exp(sk[k] - mx) : 0.0;
		wk[idx[k]] = e;
		sum += e;
	}
	for (int64_t k = 0; k < f->k; k++)
		wk[k] = sum > 0.0 ? wk[k] / sum : 0.0;
	/* f->a now points at overwritten buffers: use the copy */
	for (int64_t p = 0; p < hw; p++) {
		double s = 0.0;
		for (int64_t k = 0; k < f->k; k++)
			s += wk[k] * a[k * hw + p];
		c->map[p] = (float)s;
	}
out:
	free(a);
	free(sk);
	free(idx);
	return rc;
}

static int ablationcam(struct cnnviz__cam_call *c, struct fmap *f,
		       double *wk, double y, int64_t *runs)
{
	cnnviz_explainer *ex = c->ex;
	const int64_t B = ex->max_batch < f->k ? ex->max_batch : f->k;
	const size_t n = (size_t)(f->h * f->w * f->k);
	int rc;
	cnnviz__ex_fill(ex, c->inputs, B);
	if ((rc = cnnviz__ex_forward(ex, B, c->err)))
		return rc;
	*runs += B;
	float *buf = cnnviz__session_buffer_mut(ex->s, c->layer);
	float *save = malloc(n * (size_t)B * sizeof *save);
	if (!buf || !save) {
		free(save);
		return cnnviz__fail(c->err, buf ? CNNVIZ_ERR_NOMEM : CNNVIZ_ERR_ARG,
				    NULL, buf ? "out of memory"
					      : "Ablation-CAM cannot ablate a model input");
	}
	memcpy(save, buf, n * (size_t)B * sizeof *save);
	double den = fabs(y) > 1e-12 ? fabs(y) : 1.0;
	for (int64_t k0 = 0; k0 < f->k; k0 += B) {
		int64_t nb = f->k - k0 < B ? f->k - k0 : B;
		memcpy(buf, save, n * (size_t)B * sizeof *buf);
		for (int64_t b = 0; b < nb; b++)
			for (int64_t p = 0; p < f->h * f->w; p++)
				buf[b * (int64_t)n + (p / f->w) * f->sy +
				    (p % f->w) * f->sx + (k0 + b) * f->sc] = 0.0f;
		cnnviz__ex_rerun_after(ex, c->layer);
		*runs += nb;
		for (int64_t b = 0; b < nb; b++)
			wk[k0 + b] = (y - ex->scores[b]) / den;
	}
	memcpy(buf, save, n * (size_t)B * sizeof *buf);
	free(save);
	weighted_sum(f, wk, c->map);
	return CNNVIZ_OK;
}

/* ------------------------------------------------------------- dispatch */

static void finish_map(float *map, int64_t n, struct cnnviz_cam_info *info)
{
	int nonfinite = 0;
	float lo = INFINITY, hi = -INFINITY;
	for (int64_t i = 0; i < n; i++) {
		if (!isfinite(map[i])) {
			map[i] = 0.0f;
			nonfinite = 1;
		}
		lo = map[i] < lo ? map[i] : lo;
		hi = map[i] > hi ? map[i] : hi;
	}
	if (nonfinite)
		info->flags |= CNNVIZ_CAM_NONFINITE;
	if (!(hi > 0.0f))
		info->flags |= CNNVIZ_CAM_NO_POSITIVE;
	if (hi == lo)
		info->flags |= CNNVIZ_CAM_FLAT;
}

static int layer_method(struct cnnviz__cam_call *c, int mi)
{
	cnnviz_explainer *ex = c->ex;
	struct fmap f;
	int rc;
	int64_t runs = 1;
	int gradient = mi <= 3;
	const char *m = methods[mi];

	cnnviz__ex_fill(ex, c->inputs, 1);
	if ((rc = cnnviz__ex_forward(ex, 1, c->err)))
		return rc;
	if (gradient && (rc = cnnviz__ex_backward(ex, c->err)))
		return rc;
	double y = ex->scores[0];
	c->info->score = y;
	fmap_of(ex, c->layer, 0, &f);
	double *wk = malloc((size_t)(f.k > 0 ? f.k : 1) * sizeof *wk);
	if (!wk)
		return cnnviz__fail(c->err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	if (!strcmp(m, "gradcam"))
		gradcam(&f, wk, c->map);
	else if (!strcmp(m, "gradcam++"))
		gradcam_pp(&f, wk, c->map);
	else if (!strcmp(m, "layercam"))
		elementwise_cam(&f, 1, c->map);
	else if (!strcmp(m, "hirescam"))
		elementwise_cam(&f, 0, c->map);
	else if (!strcmp(m, "cam"))
		rc = cam(ex, c->layer, &f, wk, c->map, c->err);
	else if (!strcmp(m, "eigencam"))
		rc = eigencam(&f, c->map, c->err);
	else if (!strcmp(m, "scorecam"))
		rc = scorecam(c, &f, wk, &runs);
	else
		rc = ablationcam(c, &f, wk, y, &runs);
	c->info->forward_runs = runs;
	free(wk);
	return rc;
}

int cnnviz_cam(cnnviz_explainer *ex, const char *method, int li,
	       const float *const *inputs, const struct cnnviz_target *target,
	       const cnnviz_options *opts, float *map, size_t map_count,
	       struct cnnviz_cam_info *info, struct cnnviz_error *err)
{
	struct cnnviz_cam_info own;
	cnnviz__error_clear(err);
	if (!info)
		info = &own;
	memset(info, 0, sizeof *info);
	info->score = info->ig_sum = info->ig_delta = info->ig_error = NAN;
	if (!ex || !inputs || !map)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "NULL argument");
	for (int i = 0; i < cnnviz_model_input_count(ex->m); i++)
		if (!inputs[i])
			return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "input %d is NULL", i);
	int mi = method_index(method), rc;
	struct cnnviz__cam_call c = {ex, method, -1, inputs, opts, map, 0, 0,
				     info, err};
	if (mi < 0)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, method ? method : "(null)",
				    "unknown explanation method");
	if ((rc = resolve(ex, mi, li, &c.layer, &c.h, &c.w, err)))
		return rc;
	info->height = c.h;
	info->width = c.w;
	if (map_count < (size_t)(c.h * c.w))
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, method,
				    "map holds %zu floats, needs %lld x %lld",
				    map_count, (long long)c.h, (long long)c.w);
	if ((rc = cnnviz__ex_prepare(ex, target, err)))
		return rc;
	rc = mi >= FIRST_INPUT_METHOD ? cnnviz__attrib(&c) : layer_method(&c, mi);
	ex->guided = 0;
	if (rc) {
		memset(map, 0, (size_t)(c.h * c.w) * sizeof *map);
		return rc;
	}
	finish_map(map, c.h * c.w, info);
	return CNNVIZ_OK;
}
