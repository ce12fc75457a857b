/*
 * Layers that move data without arithmetic: identity (Dropout and the
 * other train-time-only layers), Flatten, Reshape, Permute, and the
 * spatial ZeroPadding2D, Cropping2D, UpSampling2D (CNNVIZ__OP_SPATIAL: the
 * executor hands them NHWC whatever their data_format).
 *
 * CNNVIZ__OP_ALIAS ops have an output that is their input byte for byte:
 * the executor gives both the same buffer and does not call forward, but
 * only while l->p is NULL. An ALIAS op that finds in setup that it must
 * really move data (Flatten of a channels_first tensor) sets l->p, and the
 * executor then calls its forward like any other op. The forwards of the
 * other ALIAS ops copy, so they are right either way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "../kernels.h"
#include "params.h"
#include "grad.h"
#include "../model.h" /* keras_version, limits */

/* ------------------------------------------------------------ kernels */

void cnnviz__shape_permute(int rank, const int64_t *dims, const int *perm,
			   const float *x, float *y)
{
	int64_t stride[CNNVIZ__MAX_SRANK], od[CNNVIZ__MAX_SRANK];
	int64_t os[CNNVIZ__MAX_SRANK], idx[CNNVIZ__MAX_SRANK];
	if (rank == 0) {
		y[0] = x[0];
		return;
	}
	stride[rank - 1] = 1;
	for (int i = rank - 2; i >= 0; i--)
		stride[i] = stride[i + 1] * dims[i + 1];
	/* Output axis i walks input axis perm[i]. */
	for (int i = 0; i < rank; i++) {
		od[i] = dims[perm[i]];
		os[i] = stride[perm[i]];
		idx[i] = 0;
	}
	const int64_t inner = od[rank - 1], is = os[rank - 1];
	int64_t off = 0;
	for (;;) {
		const float *src = x + off;
		for (int64_t j = 0; j < inner; j++)
			y[j] = src[j * is];
		y += inner;
		int k = rank - 2;
		for (; k >= 0; k--) {
			off += os[k];
			if (++idx[k] < od[k])
				break;
			off -= os[k] * od[k];
			idx[k] = 0;
		}
		if (k < 0)
			return;
	}
}

void cnnviz__shape_pad2d(int64_t n, int64_t h, int64_t w, int64_t c,
			 int64_t t, int64_t b, int64_t l, int64_t r,
			 const float *x, float *y)
{
	const int64_t ow = l + w + r, row = ow * c;
	for (int64_t s = 0; s < n; s++) {
		memset(y, 0, (size_t)(t * row) * sizeof *y);
		y += t * row;
		for (int64_t i = 0; i < h; i++) {
			memset(y, 0, (size_t)(l * c) * sizeof *y);
			memcpy(y + l * c, x, (size_t)(w * c) * sizeof *y);
			memset(y + (l + w) * c, 0, (size_t)(r * c) * sizeof *y);
			x += w * c;
			y += row;
		}
		memset(y, 0, (size_t)(b * row) * sizeof *y);
		y += b * row;
	}
}

void cnnviz__shape_crop2d(int64_t n, int64_t h, int64_t w, int64_t c,
			  int64_t t, int64_t l, int64_t oh, int64_t ow,
			  const float *x, float *y)
{
	for (int64_t s = 0; s < n; s++) {
		const float *xs = x + s * h * w * c;
		for (int64_t i = 0; i < oh; i++) {
			memcpy(y, xs + ((t + i) * w + l) * c,
			       (size_t)(ow * c) * sizeof *y);
			y += ow * c;
		}
	}
}

void cnnviz__shape_upsample_nearest(int64_t n, int64_t h, int64_t w,
				    int64_t c, int64_t sh, int64_t sw,
				    const float *x, float *y)
{
	const int64_t row = w * sw * c;
	for (int64_t i = 0; i < n * h; i++) {
		/* One widened row, then sh - 1 copies of it. */
		float *first = y;
		for (int64_t j = 0; j < w; j++, x += c)
			for (int64_t k = 0; k < sw; k++, y += c)
				memcpy(y, x, (size_t)c * sizeof *y);
		for (int64_t k = 1; k < sh; k++, y += row)
			memcpy(y, first, (size_t)row * sizeof *y);
	}
}

/* ---------------------------------------------------------- helpers */

static int one_input(struct cnnviz__setup *s)
{
	if (s->l->n_in != 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "takes 1 input, got %d", s->l->n_in);
	return CNNVIZ_OK;
}

static int need_hwc(struct cnnviz__setup *s)
{
	char buf[96];
	int rc = one_input(s);
	if (rc)
		return rc;
	if (s->l->op_in[0].rank != 3)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "needs a rank-3 (H, W, C) input, got %s",
					  cnnviz__shape_str(&s->l->op_in[0], buf,
							    sizeof buf));
	return CNNVIZ_OK;
}

/* Some writers store whole numbers as reals (3.0). */
static int json_int(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= -9e15 && d <= 9e15 && d == (double)(int64_t)d) {
			*out = (int64_t)d;
			return 0;
		}
	}
	return -1;
}

static void copy_forward(const struct cnnviz__layer *l,
			 const struct cnnviz__io *io)
{
	size_t n = (size_t)io->batch * cnnviz__shape_count(&l->op_out);
	if (io->out != io->in[0])
		memcpy(io->out, io->in[0], n * sizeof *io->out);
}

/* ----------------------------------------------------------- identity */

static int identity_setup(struct cnnviz__setup *s)
{
	int rc = one_input(s);
	if (rc)
		return rc;
	return cnnviz__set_out(s, s->l->op_in[0].rank, s->l->op_in[0].d);
}

const struct cnnviz__op cnnviz__op_identity = {
	.name = "identity",
	.flags = CNNVIZ__OP_ALIAS,
	.setup = identity_setup,
	.forward = copy_forward,
	.backward = cnnviz__copy_backward,
};

/* ------------------------------------------------------------ Permute */

static void permute_forward(const struct cnnviz__layer *l,
			    const struct cnnviz__io *io)
{
	const struct permute *p = l->p;
	for (int64_t b = 0; b < io->batch; b++)
		cnnviz__shape_permute(p->rank, p->dims, p->perm,
				      io->in[0] + b * p->count,
				      io->out + b * p->count);
}

/* Fills p from the input shape; the output is the permuted shape. */
static int permute_init(struct cnnviz__setup *s, struct permute *p)
{
	const struct cnnviz__shape *in = &s->l->op_in[0];
	int64_t od[CNNVIZ__MAX_SRANK];
	p->rank = in->rank;
	memcpy(p->dims, in->d, sizeof p->dims);
	p->count = (int64_t)cnnviz__shape_count(in);
	for (int i = 0; i < p->rank; i++)
		od[i] = in->d[p->perm[i]];
	s->l->p = p;
	cnnviz__permute_grad_setup(s->l);
	return cnnviz__set_out(s, p->rank, od);
}

/*
 * Keras 2+ Flatten with data_format channels_first moves the channel axis
 * (per-sample axis 0) last before flattening, so its output is in HWC
 * order. Keras 1 never did: its configs keep "dim_ordering", which the
 * loader maps to data_format but leaves in place, hence the extra test.
 * Only then is l->p set and the layer a real copy (see the top comment).
 */
static int flatten_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	const char *df;
	int rc;
	if ((rc = one_input(s)) ||
	    (rc = cnnviz__cfg_str(s, "data_format", "channels_last", &df)))
		return rc;
	int64_t n = (int64_t)cnnviz__shape_count(in);
	if (strcmp(df, "channels_first") == 0 && in->rank >= 2 &&
	    !json_object_get(s->cfg, "dim_ordering")) {
		struct permute *p = cnnviz__model_alloc(s->m, sizeof *p);
		if (!p)
			return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM,
						  "out of memory");
		for (int i = 0; i < in->rank; i++)
			p->perm[i] = (i + 1) % in->rank;
		if ((rc = permute_init(s, p)))
			return rc;
	}
	return cnnviz__set_out(s, 1, &n);
}

static void flatten_forward(const struct cnnviz__layer *l,
			    const struct cnnviz__io *io)
{
	if (l->p)
		permute_forward(l, io);
	else
		copy_forward(l, io);
}

const struct cnnviz__op cnnviz__op_flatten = {
	.name = "flatten",
	.flags = CNNVIZ__OP_ALIAS,
	.setup = flatten_setup,
	.forward = flatten_forward,
	.backward = cnnviz__flatten_backward,
};

/* dims: a permutation of 1..rank in Keras numbering (batch = 0). */
static int permute_setup(struct cnnviz__setup *s)
{
	const struct cnnviz__shape *in = &s->l->op_in[0];
	char buf[96];
	int rc = one_input(s);
	if (rc)
		return rc;
	json_t *jd = json_object_get(s->cfg, "dims");
	if (!json_is_array(jd) || json_array_size(jd) != (size_t)in->rank)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "config key 'dims' should list %d axes for input %s",
					  in->rank,
					  cnnviz__shape_str(in, buf, sizeof buf));
	struct permute *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	int seen[CNNVIZ__MAX_SRANK] = {0};
	for (int i = 0; i < in->rank; i++) {
		int64_t d;
		if (json_int(json_array_get(jd, (size_t)i), &d) || d < 1 ||
		    d > in->rank || seen[d - 1]++)
			return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
						  "config key 'dims' is not a permutation of 1..%d",
						  in->rank);
		p->perm[i] = (int)d - 1;
	}
	return permute_init(s, p);
}

const struct cnnviz__op cnnviz__op_permute = {
	.name = "permute",
	.setup = permute_setup,
	.forward = permute_forward,
	.backward = cnnviz__permute_backward,
};

/* ------------------------------------------------------------ Reshape */

/* target_shape: per-sample dims; one -1 (or null) is inferred. */
static int reshape_setup(struct cnnviz__setup *s)
{
	const struct cnnviz__shape *in = &s->l->op_in[0];
	char buf[96];
	int rc = one_input(s);
	if (rc)
		return rc;
	json_t *jt = json_object_get(s->cfg, "target_shape");
	if (!json_is_array(jt))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "config key 'target_shape' should be a list of integers");
	size_t rank = json_array_size(jt);
	if (rank > CNNVIZ__MAX_SRANK)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "target_shape of rank %zu (at most %d)",
					  rank, CNNVIZ__MAX_SRANK);
	int64_t d[CNNVIZ__MAX_SRANK];
	int unknown = -1;
	size_t known = 1, count = cnnviz__shape_count(in);
	int overflow = 0;
	for (size_t i = 0; i < rank; i++) {
		json_t *v = json_array_get(jt, i);
		if (json_is_null(v))
			d[i] = -1;
		else if (json_int(v, &d[i]) || d[i] < -1 || d[i] == 0)
			return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
						  "config key 'target_shape' should hold integers >= 1 or one -1");
		if (d[i] == -1) {
			if (unknown >= 0)
				return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
							  "target_shape has more than one unknown (-1) dimension");
			unknown = (int)i;
		} else if (cnnviz__mul_size(known, (size_t)d[i], &known)) {
			overflow = 1;
		}
	}
	if (!overflow && unknown >= 0 && count % known == 0) {
		d[unknown] = (int64_t)(count / known);
		known = count;
	}
	if (overflow || known != count) {
		char want[160];
		size_t used = 0;
		want[0] = 0;
		for (size_t i = 0; i < rank && used < sizeof want; i++)
			used += (size_t)snprintf(want + used, sizeof want - used,
						 "%s%lld", i ? ", " : "",
						 (long long)d[i]);
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "cannot reshape %s (%zu elements) to (%s)",
					  cnnviz__shape_str(in, buf, sizeof buf), count,
					  want);
	}
	return cnnviz__set_out(s, (int)rank, d);
}

const struct cnnviz__op cnnviz__op_reshape = {
	.name = "reshape",
	.flags = CNNVIZ__OP_ALIAS,
	.setup = reshape_setup,
	.forward = copy_forward,
	.backward = cnnviz__copy_backward,
};

/* ----------------------------------------- ZeroPadding2D, Cropping2D */

/*
 * The amounts of ZeroPadding2D 'padding' / Cropping2D 'cropping' as
 * (top, bottom, left, right): an int for all four; (a, b): a rows at top
 * and bottom, b columns at left and right; ((t, b), (l, r)); Keras 1 also
 * wrote (t, b, l, r) and {"top_pad": ..., "left_pad": ...}.
 */
static int frame_amounts(struct cnnviz__setup *s, const char *key,
			 int64_t def, int64_t out[4])
{
	json_t *v = json_object_get(s->cfg, key);
	int64_t a[4] = {def, def, def, def};
	int bad = 0;
	if (!v || json_is_null(v)) {
		/* defaults */
	} else if (json_is_object(v)) {
		static const char *const k[4] = {"top_pad", "bottom_pad",
						 "left_pad", "right_pad"};
		for (int i = 0; i < 4; i++) {
			json_t *e = json_object_get(v, k[i]);
			a[i] = 0;
			if (e && json_int(e, &a[i]))
				bad = 1;
		}
	} else if (!json_is_array(v)) {
		bad = json_int(v, &a[0]);
		a[1] = a[2] = a[3] = a[0];
	} else if (json_array_size(v) == 4) {
		for (int i = 0; i < 4; i++)
			bad |= json_int(json_array_get(v, (size_t)i), &a[i]);
	} else if (json_array_size(v) == 2) {
		for (int i = 0; i < 2; i++) {
			json_t *e = json_array_get(v, (size_t)i);
			if (json_is_array(e) && json_array_size(e) == 2) {
				bad |= json_int(json_array_get(e, 0), &a[2 * i]);
				bad |= json_int(json_array_get(e, 1), &a[2 * i + 1]);
			} else {
				bad |= json_int(e, &a[2 * i]);
				a[2 * i + 1] = a[2 * i];
			}
		}
	} else {
		bad = 1;
	}
	for (int i = 0; i < 4; i++)
		if (a[i] < 0 || a[i] > s->m->limits.max_dim)
			bad = 1;
	if (bad)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "config key '%s' should be an int >= 0, 2 ints or 2 pairs of ints",
					  key);
	memcpy(out, a, sizeof a);
	return CNNVIZ_OK;
}

static int frame_setup(struct cnnviz__setup *s, const char *key, int64_t def,
		       int crop)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	char buf[96];
	int64_t a[4] = {0};
	int rc;
	if ((rc = need_hwc(s)) || (rc = frame_amounts(s, key, def, a)))
		return rc;
	struct frame2d *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	p->h = in->d[0];
	p->w = in->d[1];
	p->c = in->d[2];
	p->t = a[0];
	p->b = a[1];
	p->l = a[2];
	p->r = a[3];
	/* Every term <= max_dim (< 2^62): the sums cannot overflow. */
	int64_t sign = crop ? -1 : 1;
	p->oh = p->h + sign * (p->t + p->b);
	p->ow = p->w + sign * (p->l + p->r);
	if (p->oh < 1 || p->ow < 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "cropping (%lld, %lld), (%lld, %lld) leaves nothing of input %s",
					  (long long)p->t, (long long)p->b,
					  (long long)p->l, (long long)p->r,
					  cnnviz__shape_str(in, buf, sizeof buf));
	l->p = p;
	int64_t dims[3] = {p->oh, p->ow, p->c};
	return cnnviz__set_out(s, 3, dims);
}

static int zero_padding2d_setup(struct cnnviz__setup *s)
{
	return frame_setup(s, "padding", 1, 0);
}

static int cropping2d_setup(struct cnnviz__setup *s)
{
	return frame_setup(s, "cropping", 0, 1);
}

static void zero_padding2d_forward(const struct cnnviz__layer *l,
				   const struct cnnviz__io *io)
{
	const struct frame2d *p = l->p;
	cnnviz__shape_pad2d(io->batch, p->h, p->w, p->c, p->t, p->b, p->l,
			    p->r, io->in[0], io->out);
}

static void cropping2d_forward(const struct cnnviz__layer *l,
			       const struct cnnviz__io *io)
{
	const struct frame2d *p = l->p;
	cnnviz__shape_crop2d(io->batch, p->h, p->w, p->c, p->t, p->l, p->oh,
			     p->ow, io->in[0], io->out);
}

const struct cnnviz__op cnnviz__op_zero_padding2d = {
	.name = "zero_padding2d",
	.flags = CNNVIZ__OP_SPATIAL,
	.layer_flags = CNNVIZ_LAYER_SPATIAL,
	.setup = zero_padding2d_setup,
	.forward = zero_padding2d_forward,
	.backward = cnnviz__zero_padding2d_backward,
};

const struct cnnviz__op cnnviz__op_cropping2d = {
	.name = "cropping2d",
	.flags = CNNVIZ__OP_SPATIAL,
	.layer_flags = CNNVIZ_LAYER_SPATIAL,
	.setup = cropping2d_setup,
	.forward = cropping2d_forward,
	.backward = cnnviz__cropping2d_backward,
};

/* ------------------------------------------------------- UpSampling2D */

/*
 * Bilinear UpSampling2D is tf.image.resize with half-pixel centres in
 * Keras 3 and in tf.keras >= 2.4; standalone Keras 2.2/2.3 and tf.keras of
 * TF 1.x used the legacy resize_bilinear (no half-pixel offset), and the
 * version string does not tell them apart reliably: those are refused.
 */
static int half_pixel_bilinear(const struct cnnviz__setup *s)
{
	if (s->keras_major >= 3)
		return 1;
	if (s->keras_major != 2)
		return 0;
	const char *v = s->m->keras_version, *dot = strchr(v, '.');
	return dot && atoi(v) == 2 && atoi(dot + 1) >= 4;
}

static int upsampling2d_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	const char *interp;
	int64_t sz[2];
	int rc;
	if ((rc = need_hwc(s)) ||
	    (rc = cnnviz__cfg_ints(s, "size", 2, 2, sz)) ||
	    (rc = cnnviz__cfg_str(s, "interpolation", "nearest", &interp)))
		return rc;
	if (sz[0] < 1 || sz[1] < 1 || sz[0] > s->m->limits.max_dim ||
	    sz[1] > s->m->limits.max_dim)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "bad size (%lld, %lld)", (long long)sz[0],
					  (long long)sz[1]);
	int bilinear = strcmp(interp, "bilinear") == 0;
	if (!bilinear && strcmp(interp, "nearest") != 0)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "interpolation '%s' is not supported (nearest, bilinear)",
					  interp);
	if (bilinear && !half_pixel_bilinear(s))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "interpolation 'bilinear' of Keras %s (before 2.4 it depended on the TensorFlow version)",
					  s->m->keras_version[0] ? s->m->keras_version
								 : "of unknown version");
	struct upsample *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	p->h = in->d[0];
	p->w = in->d[1];
	p->c = in->d[2];
	p->sh = sz[0];
	p->sw = sz[1];
	p->bilinear = bilinear;
	l->p = p;
	size_t oh, ow;
	if (cnnviz__mul_size((size_t)p->h, (size_t)p->sh, &oh) ||
	    cnnviz__mul_size((size_t)p->w, (size_t)p->sw, &ow) ||
	    oh > (size_t)s->m->limits.max_dim || ow > (size_t)s->m->limits.max_dim)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_LIMIT,
					  "output is larger than the limits (max_dim %lld)",
					  (long long)s->m->limits.max_dim);
	int64_t dims[3] = {(int64_t)oh, (int64_t)ow, p->c};
	return cnnviz__set_out(s, 3, dims);
}

static void upsampling2d_forward(const struct cnnviz__layer *l,
				 const struct cnnviz__io *io)
{
	const struct upsample *p = l->p;
	if (!p->bilinear) {
		cnnviz__shape_upsample_nearest(io->batch, p->h, p->w, p->c,
					       p->sh, p->sw, io->in[0], io->out);
		return;
	}
	const int64_t oh = p->h * p->sh, ow = p->w * p->sw;
	for (int64_t b = 0; b < io->batch; b++)
		cnnviz__resize_bilinear(io->in[0] + b * p->h * p->w * p->c,
					p->h, p->w, p->c,
					io->out + b * oh * ow * p->c, oh, ow);
}

const struct cnnviz__op cnnviz__op_upsampling2d = {
	.name = "upsampling2d",
	.flags = CNNVIZ__OP_SPATIAL,
	.layer_flags = CNNVIZ_LAYER_SPATIAL,
	.setup = upsampling2d_setup,
	.forward = upsampling2d_forward,
	.backward = cnnviz__upsampling2d_backward,
};
