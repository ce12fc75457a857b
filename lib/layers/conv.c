/*
 * Convolution layers: Conv2D, DepthwiseConv2D, SeparableConv2D,
 * Conv2DTranspose and their Keras 1 names. All are CNNVIZ__OP_SPATIAL:
 * they see NHWC tensors whatever the data_format. Kernels are in
 * conv_kernels.c; this file reads configs, checks shapes and brings the
 * weights into the layout the kernels want.
 */
#include <string.h>

#include "../internal.h"
#include "../kernels.h"
#include "../isa.h"
#include "../model.h"
#include "grad.h"
#include "params.h"

extern const struct cnnviz__op cnnviz__op_zero_padding2d;

enum conv_kind { CONV, DEPTHWISE, SEPARABLE, TRANSPOSE };

struct conv {
	enum conv_kind kind;
	struct cnnviz__conv_geom g;
	struct cnnviz__act act;
	int64_t tile;       /* pixels (rows for SEPARABLE) per tile */
	int w_kernel;       /* kernel or depthwise_kernel slot */
	int w_pw;           /* pointwise_kernel slot, or -1 */
	int w_bias;         /* -1 without bias */
	int oihw;           /* Keras 1 'th' kernel (out, in, rows, cols) */
	int flip;           /* Keras 1 Theano kernel: true convolution */
	/* Set by finish(): the arrays the kernels read. */
	const float *kernel, *pw, *bias;
	/* The fast paths (conv_fast.c): CONV's plan and the floats of its
	   packed kernel and zeros; SEPARABLE's packed pointwise kernel. */
	struct cnnviz__conv_plan plan;
	size_t plan_w, plan_z;
	struct cnnviz__packed pwp;
	const struct cnnviz__isa *isa; /* DEPTHWISE's kernels */
	/* With a ZeroPadding2D folded in (l->can_fold_pad): the geometry on
	   that layer's input, and CONV's plan for it. */
	struct cnnviz__conv_geom gpad;
	struct cnnviz__conv_plan plan_pad;
	size_t plan_pad_w, plan_pad_z;
	/* CONV taking a depthwise conv (l->can_take_dw): rows per tile. */
	int64_t dw_tile;
};

/* Keras 1 class names, whose kernels may be stored the Keras 1 way. */
static int keras1_class(const char *cls)
{
	static const char *const names[] = {"Convolution2D",
					    "AtrousConvolution2D",
					    "Deconvolution2D",
					    "SeparableConvolution2D"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(cls, names[i]) == 0)
			return 1;
	return 0;
}

/* An integer key that must lie in [1, 2^20]. */
static int cfg_count(struct cnnviz__setup *s, const char *key, int64_t def,
		     int64_t *out)
{
	int rc = cnnviz__cfg_int(s, key, def, out);
	if (rc)
		return rc;
	if (*out < 1 || *out > (INT64_C(1) << 20))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "%s must be in [1, 2^20], got %lld%s",
					  key, (long long)*out,
					  def < 0 ? " (is it missing?)" : "");
	return CNNVIZ_OK;
}

/* A pair (an int or a list of 2) whose values lie in [1, 2^20]. */
static int cfg_pair(struct cnnviz__setup *s, const char *key, int64_t def,
		    int64_t v[2])
{
	int rc = cnnviz__cfg_ints(s, key, 2, def, v);
	if (rc)
		return rc;
	for (int i = 0; i < 2; i++)
		if (v[i] < 1 || v[i] > (INT64_C(1) << 20))
			return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
						  "%s must be in [1, 2^20], got (%lld, %lld)%s",
						  key, (long long)v[0],
						  (long long)v[1],
						  def < 0 ? " (is it missing?)" : "");
	return CNNVIZ_OK;
}

/*
 * What every kind shares: one rank-3 input, kernel_size, strides,
 * dilation_rate, padding, use_bias, activation. Fills the geometry but
 * the output size and the channel counts.
 */
static int read_common(struct cnnviz__setup *s, struct conv *p, int *same,
		       int *use_bias)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	int64_t k[2], st[2], d[2];
	char buf[96];
	int rc;

	if (l->n_in != 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "takes 1 input, got %d", l->n_in);
	if (in->rank != 3)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "needs a rank-3 (H, W, C) input, got %s",
					  cnnviz__shape_str(in, buf, sizeof buf));
	if ((rc = cfg_pair(s, "kernel_size", -1, k)) ||
	    (rc = cfg_pair(s, "strides", 1, st)) ||
	    (rc = cfg_pair(s, "dilation_rate", 1, d)) ||
	    (rc = cnnviz__cfg_padding(s, same)) ||
	    (rc = cnnviz__cfg_bool(s, "use_bias", 1, use_bias)) ||
	    (rc = cnnviz__cfg_activation(s, "activation", &p->act)))
		return rc;
	/* Keras refuses this combination when it builds the layer. */
	if ((st[0] > 1 || st[1] > 1) && (d[0] > 1 || d[1] > 1))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "strides (%lld, %lld) together with dilation_rate (%lld, %lld)",
					  (long long)st[0], (long long)st[1],
					  (long long)d[0], (long long)d[1]);
	p->g.h = in->d[0];
	p->g.w = in->d[1];
	p->g.cin = in->d[2];
	p->g.kh = k[0];
	p->g.kw = k[1];
	p->g.sh = st[0];
	p->g.sw = st[1];
	p->g.dh = d[0];
	p->g.dw = d[1];
	p->g.groups = 1;
	p->g.mult = 1;
	p->w_pw = p->w_bias = -1;
	return CNNVIZ_OK;
}

/* Output size of a forward conv, or CNNVIZ_ERR_SHAPE naming the input. */
static int forward_size(struct cnnviz__setup *s, struct conv *p, int same)
{
	struct cnnviz__conv_geom *g = &p->g;
	char buf[96];

	if (cnnviz__conv_geometry(g->h, g->kh, g->sh, g->dh, same, &g->oh,
				  &g->pad_t) ||
	    cnnviz__conv_geometry(g->w, g->kw, g->sw, g->dw, same, &g->ow,
				  &g->pad_l))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "kernel %lldx%lld (dilation %lld, %lld) 'valid' does not fit input %s",
					  (long long)g->kh, (long long)g->kw,
					  (long long)g->dh, (long long)g->dw,
					  cnnviz__shape_str(&s->l->op_in[0], buf,
							    sizeof buf));
	return CNNVIZ_OK;
}

static struct conv *conv_new(struct cnnviz__setup *s, enum conv_kind kind)
{
	struct conv *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p) {
		cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
		return NULL;
	}
	p->kind = kind;
	return p;
}

/* scratch_fixed = a * b * c floats. */
static int set_scratch(struct cnnviz__setup *s, size_t a, size_t b, size_t c)
{
	size_t *n = &s->l->scratch_fixed;
	if (cnnviz__mul_size(a, b, n) || cnnviz__mul_size(*n, c, n))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_LIMIT,
					  "scratch size overflows");
	return CNNVIZ_OK;
}

static int declare_bias(struct cnnviz__setup *s, struct conv *p, int use_bias,
			int64_t n)
{
	if (use_bias && (p->w_bias = cnnviz__weight_decl(s, "bias", 1, &n, 0)) < 0)
		return p->w_bias;
	return CNNVIZ_OK;
}

static int set_out(struct cnnviz__setup *s, struct conv *p)
{
	int64_t dims[3] = {p->g.oh, p->g.ow, p->g.cout};
	s->l->p = p;
	int rc = cnnviz__set_out(s, 3, dims);
	if (!rc && cnnviz__conv_grad_setup(s->l))
		rc = cnnviz__setup_fail(s, CNNVIZ_ERR_LIMIT,
					"backward scratch size overflows");
	return rc;
}

/*
 * A conv whose input comes straight from a ZeroPadding2D can read that
 * layer's input instead, adding the padding to its own: the kernels take
 * every tap outside the image as zero, so no padded copy is written and
 * the sums are the same. fuse.c decides per session whether to do it.
 * Not folding is always correct, so a plan that does not fit is no error.
 */
static void fold_pad_setup(struct cnnviz__setup *s, struct conv *p)
{
	struct cnnviz__layer *l = s->l;
	/* The producer is set up first; a layer built alone has none. */
	if (l->n_in != 1 || l->channels_first || !l->in || l->in[0] < 0 ||
	    l->in[0] >= l->index || !s->m->layers)
		return;
	const struct cnnviz__layer *z = s->m->layers[l->in[0]];
	if (z->op != &cnnviz__op_zero_padding2d || z->channels_first || !z->p)
		return;
	const struct frame2d *f = z->p;
	p->gpad = p->g;
	p->gpad.h = f->h;
	p->gpad.w = f->w;
	p->gpad.pad_t += f->t;
	p->gpad.pad_l += f->l;
	if (p->kind == CONV) {
		size_t scratch;
		if (cnnviz__conv_plan_init(&p->plan_pad, &p->gpad, NULL,
					   &scratch, &p->plan_pad_w,
					   &p->plan_pad_z))
			return;
		if (scratch > l->scratch_fixed)
			l->scratch_fixed = scratch;
	}
	l->can_fold_pad = 1;
}

/*
 * A 1x1 conv over the whole image (the GEMM reads its input in place) can
 * compute the depthwise conv it reads tile by tile, when fuse.c finds that
 * nothing else reads it (MobileNet's depthwise -> project): the expanded
 * tensor then never leaves the cache.
 */
static void take_dw_setup(struct cnnviz__setup *s, struct conv *p)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__conv_geom *g = &p->g;
	size_t floats;
	if (p->plan.path != CNNVIZ__CONV_DIRECT || g->groups != 1 ||
	    l->channels_first || l->n_in != 1)
		return;
	p->dw_tile = cnnviz__dwpw_tile(g);
	if (cnnviz__mul_size((size_t)p->dw_tile, (size_t)(g->w * g->cin),
			     &floats))
		return;
	if (floats > l->scratch_fixed)
		l->scratch_fixed = floats;
	l->can_take_dw = 1;
}

/*
 * A depthwise conv whose input rows can come from a ring (the 1x1 conv
 * that computes them works inside the conv that takes this one): kh rows
 * of its input, for the kernels that read rows through pointers.
 *
 * It pays where the input is large (it would leave the cache between the
 * two convs) and its rows long: each row's 1x1 conv reads all of that
 * conv's weights, which short rows (MobileNetV2 at 14x14, 7x7) cannot
 * amortise. Measured on MobileNetV2-224: streaming every block was slower
 * at 2 threads than not streaming at all.
 */
#define RING_MIN_WIDTH 24
#define RING_MIN_FLOATS (INT64_C(1) << 17)

static void ring_setup(struct cnnviz__setup *s, struct conv *p)
{
	const struct cnnviz__conv_geom *g = &p->g;
	size_t floats;
	if (g->w < RING_MIN_WIDTH || g->h * g->w * g->cin < RING_MIN_FLOATS ||
	    g->mult != 1 || g->dh != 1 || g->kh > CNNVIZ__RING_ROWS ||
	    !p->isa->dw_row || s->l->channels_first ||
	    cnnviz__mul_size((size_t)g->kh, (size_t)(g->w * g->cin), &floats))
		return;
	s->l->ring_floats = floats;
}

/* ---------------------------------------------------------------- Conv2D */

static int conv2d_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	struct conv *p = conv_new(s, CONV);
	int same, use_bias, rc;
	int64_t filters, groups;

	if (!p)
		return CNNVIZ_ERR_NOMEM;
	if ((rc = read_common(s, p, &same, &use_bias)) ||
	    (rc = cfg_count(s, "filters", -1, &filters)) ||
	    (rc = cfg_count(s, "groups", 1, &groups)) ||
	    (rc = forward_size(s, p, same)))
		return rc;
	struct cnnviz__conv_geom *g = &p->g;
	if (g->cin % groups || filters % groups)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "groups %lld does not divide the %lld input channels and %lld filters",
					  (long long)groups, (long long)g->cin,
					  (long long)filters);
	g->cout = filters;
	g->groups = groups;
	if (keras1_class(l->class_name)) {
		p->oihw = l->channels_first;
		p->flip = s->theano_kernels;
	}
	int64_t kdims[4] = {g->kh, g->kw, g->cin / groups, filters};
	if (p->oihw) {
		int64_t t[4] = {filters, g->cin, g->kh, g->kw};
		memcpy(kdims, t, sizeof kdims);
	}
	if ((p->w_kernel = cnnviz__weight_decl(s, "kernel", 4, kdims, 0)) < 0)
		return p->w_kernel;
	if ((rc = declare_bias(s, p, use_bias, filters)))
		return rc;
	p->tile = cnnviz__conv2d_tile(g);
	if (cnnviz__conv_plan_init(&p->plan, g, NULL, &l->scratch_fixed,
				   &p->plan_w, &p->plan_z))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_LIMIT,
					  "scratch size overflows");
	fold_pad_setup(s, p);
	take_dw_setup(s, p);
	return set_out(s, p);
}

/* Kernel floats as declared (validated by cnnviz__weight_decl). */
static size_t weight_floats(const struct cnnviz__layer *l, int slot)
{
	return cnnviz__shape_count(&l->w[slot].shape);
}

/* floats * sizeof(float) zeroed bytes of the model's, or NULL. */
static float *alloc_floats(struct cnnviz__setup *s, size_t floats)
{
	size_t bytes;
	if (cnnviz__mul_size(floats ? floats : 1, sizeof(float), &bytes))
		return NULL;
	return cnnviz__model_alloc(s->m, bytes);
}

/* The kernel packed for a plan, and the padding's zeros. */
static int plan_pack(struct cnnviz__setup *s, const struct conv *p,
		     struct cnnviz__conv_plan *plan, size_t wf, size_t zf)
{
	float *w = alloc_floats(s, wf), *z = alloc_floats(s, zf);
	if (!w || !z)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	cnnviz__conv_plan_pack(plan, p->kernel, w, z);
	return CNNVIZ_OK;
}

/* Plans whose packed kernels are laid out alike: DIRECT and INDIRECT
   both take the GEMM's packing; the other paths have their own. */
static int packing(const struct cnnviz__conv_plan *cp)
{
	return cp->path == CNNVIZ__CONV_INDIRECT ? CNNVIZ__CONV_DIRECT
						 : cp->path;
}

/* Both plans' kernels; the folded plan shares the layout when it can. */
static int conv2d_pack(struct cnnviz__setup *s, struct conv *p)
{
	int rc = plan_pack(s, p, &p->plan, p->plan_w, p->plan_z);
	if (rc || !s->l->can_fold_pad)
		return rc;
	struct cnnviz__conv_plan *q = &p->plan_pad;
	if (packing(q) == packing(&p->plan) && q->pairs == p->plan.pairs &&
	    q->isa == p->plan.isa) {
		q->w = p->plan.w;
		q->zeros = p->plan.zeros;
		return CNNVIZ_OK;
	}
	return plan_pack(s, p, q, p->plan_pad_w, p->plan_pad_z);
}

static int conv2d_finish(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	struct conv *p = l->p;
	const struct cnnviz__conv_geom *g = &p->g;
	float *src = l->w[p->w_kernel].data;

	p->bias = p->w_bias >= 0 ? l->w[p->w_bias].data : NULL;
	p->kernel = src;
	if (!p->oihw && !p->flip)
		return conv2d_pack(s, p);
	/* A new array: a shared layer's weights are finished once per call. */
	float *k = cnnviz__model_alloc(s->m, weight_floats(l, p->w_kernel) *
						     sizeof *k);
	if (!k)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	cnnviz__conv_kernel_to_hwio(g->kh, g->kw, g->cin / g->groups, g->cout,
				    src, p->oihw, p->flip, k);
	p->kernel = k;
	return conv2d_pack(s, p);
}

/* The depthwise conv io->pre, then this 1x1 conv, tile by tile. */
static void dw_then_conv2d(const struct cnnviz__layer *l,
			   const struct cnnviz__io *io)
{
	const struct conv *p = l->p;
	const struct cnnviz__pre *pre = io->pre;
	const struct conv *d = pre->l->p;
	struct cnnviz__conv_geom g = pre->pad_folded ? d->gpad : d->g;
	g.cout = p->g.cout;
	const struct cnnviz__packed pw = {p->plan.isa, p->g.cin, p->g.cout,
					  p->plan.w, p->plan.pairs};
	const struct cnnviz__dw_stage dws = {d->bias, &d->act, pre->post};
	size_t stride = l->scratch_fixed +
			l->scratch_per_sample * (size_t)io->batch;
	struct cnnviz__packed ew;
	struct cnnviz__expand ex;
	if (pre->expand) {
		const struct conv *e = pre->expand->p;
		ew = (struct cnnviz__packed){e->plan.isa, e->g.cin, e->g.cout,
					     e->plan.w, e->plan.pairs};
		ex = (struct cnnviz__expand){&ew, e->bias, &e->act,
					     pre->expand_post, pre->expand_x};
		stride += pre->l->ring_floats;
	}
	cnnviz__separable_run(&g, io->batch, p->dw_tile, pre->x, d->kernel,
			      &pw, p->bias, &p->act, io->post, io->out,
			      io->scratch, stride, io->pool, &dws,
			      pre->expand ? &ex : NULL);
}

static void conv2d_forward(const struct cnnviz__layer *l,
			   const struct cnnviz__io *io)
{
	const struct conv *p = l->p;
	if (io->pre) {
		dw_then_conv2d(l, io);
		return;
	}
	cnnviz__conv_plan_run(io->pad_folded ? &p->plan_pad : &p->plan,
			      io->batch, io->in[0], p->bias,
			      &p->act, io->post, io->out, io->scratch,
			      l->scratch_fixed +
				      l->scratch_per_sample * (size_t)io->batch,
			      io->pool);
}

/* ------------------------------------------------- Depthwise, Separable */

/* The depthwise part both share: depth_multiplier and its kernel. */
static int depthwise_common(struct cnnviz__setup *s, struct conv *p,
			    int *use_bias)
{
	struct cnnviz__layer *l = s->l;
	struct cnnviz__conv_geom *g = &p->g;
	int same, rc;
	int64_t mult;

	if ((rc = read_common(s, p, &same, use_bias)) ||
	    (rc = cfg_count(s, "depth_multiplier", 1, &mult)) ||
	    (rc = forward_size(s, p, same)))
		return rc;
	g->mult = mult;
	/* cin * mult < 2^61; cnnviz__set_out or the pointwise kernel's
	   declaration hold it to max_dim. */
	/* Keras' reference flips Keras 1 (Theano) depthwise kernels too. */
	p->flip = keras1_class(l->class_name) && s->theano_kernels;
	int64_t kdims[4] = {g->kh, g->kw, g->cin, mult};
	if ((p->w_kernel = cnnviz__weight_decl(s, "depthwise_kernel", 4, kdims,
					       0)) < 0)
		return p->w_kernel;
	return CNNVIZ_OK;
}

static int depthwise_conv2d_setup(struct cnnviz__setup *s)
{
	struct conv *p = conv_new(s, DEPTHWISE);
	int use_bias, rc;

	if (!p)
		return CNNVIZ_ERR_NOMEM;
	if ((rc = depthwise_common(s, p, &use_bias)))
		return rc;
	p->g.cout = p->g.cin * p->g.mult;
	if ((rc = declare_bias(s, p, use_bias, p->g.cout)))
		return rc;
	p->isa = cnnviz__isa_best();
	fold_pad_setup(s, p);
	ring_setup(s, p);
	return set_out(s, p);
}

static int separable_conv2d_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	struct conv *p = conv_new(s, SEPARABLE);
	int use_bias, rc;
	int64_t filters;

	if (!p)
		return CNNVIZ_ERR_NOMEM;
	/* Keras 1 'th' files stored these kernels in another layout, one the
	   reference evaluator does not model either. */
	if (keras1_class(l->class_name) && l->channels_first)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "Keras 1 %s with dim_ordering 'th'",
					  l->class_name);
	if ((rc = depthwise_common(s, p, &use_bias)) ||
	    (rc = cfg_count(s, "filters", -1, &filters)))
		return rc;
	struct cnnviz__conv_geom *g = &p->g;
	g->cout = filters;
	int64_t pdims[4] = {1, 1, g->cin * g->mult, filters};
	if ((p->w_pw = cnnviz__weight_decl(s, "pointwise_kernel", 4, pdims,
					   0)) < 0)
		return p->w_pw;
	if ((rc = declare_bias(s, p, use_bias, filters)))
		return rc;
	p->tile = cnnviz__separable_tile(g);
	if ((rc = set_scratch(s, (size_t)p->tile, (size_t)g->ow,
			      (size_t)(g->cin * g->mult))))
		return rc;
	return set_out(s, p);
}

/* SEPARABLE: the pointwise kernel packed for the fast path. */
static int pack_pointwise(struct cnnviz__setup *s, struct conv *p)
{
	const struct cnnviz__isa *isa = cnnviz__isa_best();
	const int64_t k = p->g.cin * p->g.mult;
	size_t n;
	float *w;

	if (!p->pw)
		return CNNVIZ_OK;
	if (cnnviz__pack_floats(isa, k, p->g.cout, &n) ||
	    !(w = alloc_floats(s, n)))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	int pairs = cnnviz__pairs_ok(isa, k, p->g.cout);
	if (pairs)
		cnnviz__pack_pairs(isa, k, p->g.cout, p->pw, p->g.cout, w);
	else
		cnnviz__pack(isa, k, p->g.cout, p->pw, p->g.cout, w);
	p->pwp = (struct cnnviz__packed){isa, k, p->g.cout, w, pairs};
	return CNNVIZ_OK;
}

static int depthwise_finish(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	struct conv *p = l->p;
	const struct cnnviz__conv_geom *g = &p->g;
	float *src = l->w[p->w_kernel].data;

	p->bias = p->w_bias >= 0 ? l->w[p->w_bias].data : NULL;
	p->pw = p->w_pw >= 0 ? l->w[p->w_pw].data : NULL;
	p->kernel = src;
	if (!p->flip)
		return pack_pointwise(s, p);
	float *k = cnnviz__model_alloc(s->m, weight_floats(l, p->w_kernel) *
						     sizeof *k);
	if (!k)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	/* (kh,kw,cin,mult) is laid out as HWIO with mult outputs. */
	cnnviz__conv_kernel_to_hwio(g->kh, g->kw, g->cin, g->mult, src, 0, 1,
				    k);
	p->kernel = k;
	return pack_pointwise(s, p);
}

static void depthwise_conv2d_forward(const struct cnnviz__layer *l,
				     const struct cnnviz__io *io)
{
	const struct conv *p = l->p;
	cnnviz__depthwise_run(p->isa, io->pad_folded ? &p->gpad : &p->g,
			      io->batch, io->in[0], p->kernel,
			      p->bias, &p->act, io->post, io->out, io->pool);
}

static void separable_conv2d_forward(const struct cnnviz__layer *l,
				     const struct cnnviz__io *io)
{
	const struct conv *p = l->p;
	cnnviz__separable_run(&p->g, io->batch, p->tile, io->in[0], p->kernel,
			      &p->pwp, p->bias, &p->act, io->post, io->out,
			      io->scratch,
			      l->scratch_fixed +
				      l->scratch_per_sample * (size_t)io->batch,
			      io->pool, NULL, NULL);
}

/* ------------------------------------------------------- Conv2DTranspose */

/* Keras 1 Deconvolution2D states its output: it must be what we infer. */
static int check_output_shape(struct cnnviz__setup *s, const struct conv *p)
{
	json_t *os = json_object_get(s->cfg, "output_shape");
	if (!json_is_array(os) || json_array_size(os) != 4)
		return CNNVIZ_OK;
	const int64_t want[2] = {p->g.oh, p->g.ow};
	for (int i = 0; i < 2; i++) {
		json_t *v = json_array_get(os, (size_t)i + 1);
		if (json_is_integer(v) && json_integer_value(v) != want[i])
			return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
						  "output_shape rows/cols differ from the inferred (%lld, %lld)",
						  (long long)want[0],
						  (long long)want[1]);
	}
	return CNNVIZ_OK;
}

static int conv2d_transpose_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	struct conv *p = conv_new(s, TRANSPOSE);
	int same, use_bias, rc;
	int64_t filters, groups, op[2];
	char buf[96];

	if (!p)
		return CNNVIZ_ERR_NOMEM;
	if (keras1_class(l->class_name) && l->channels_first)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "Keras 1 %s with dim_ordering 'th'",
					  l->class_name);
	if ((rc = read_common(s, p, &same, &use_bias)) ||
	    (rc = cfg_count(s, "filters", -1, &filters)) ||
	    (rc = cfg_count(s, "groups", 1, &groups)) ||
	    (rc = cnnviz__cfg_ints(s, "output_padding", 2, -1, op)))
		return rc;
	struct cnnviz__conv_geom *g = &p->g;
	if (groups != 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "groups %lld in a transposed convolution",
					  (long long)groups);
	/* null means none (-1); Keras wants 0 <= output_padding < strides. */
	json_t *jop = json_object_get(s->cfg, "output_padding");
	if (jop && !json_is_null(jop) &&
	    (op[0] < 0 || op[1] < 0 || op[0] >= g->sh || op[1] >= g->sw))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "output_padding (%lld, %lld) must be >= 0 and below strides (%lld, %lld)",
					  (long long)op[0], (long long)op[1],
					  (long long)g->sh, (long long)g->sw);
	if (cnnviz__deconv_geometry(g->h, g->kh, g->sh, g->dh, same, op[0],
				    &g->oh, &g->pad_t) ||
	    cnnviz__deconv_geometry(g->w, g->kw, g->sw, g->dw, same, op[1],
				    &g->ow, &g->pad_l))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "kernel %lldx%lld, output_padding (%lld, %lld): empty output for input %s",
					  (long long)g->kh, (long long)g->kw,
					  (long long)op[0], (long long)op[1],
					  cnnviz__shape_str(&l->op_in[0], buf,
							    sizeof buf));
	g->cout = filters;
	if ((rc = check_output_shape(s, p)))
		return rc;
	p->flip = keras1_class(l->class_name) && s->theano_kernels;
	int64_t kdims[4] = {g->kh, g->kw, filters, g->cin};
	if ((p->w_kernel = cnnviz__weight_decl(s, "kernel", 4, kdims, 0)) < 0)
		return p->w_kernel;
	if ((rc = declare_bias(s, p, use_bias, filters)))
		return rc;
	/* Both below 2^20: the product fits. */
	p->tile = cnnviz__conv2d_transpose_tile(g);
	if ((rc = set_scratch(s, (size_t)p->tile, (size_t)(g->kh * g->kw),
			      (size_t)filters)))
		return rc;
	return set_out(s, p);
}

static int conv2d_transpose_finish(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	struct conv *p = l->p;
	float *kt = cnnviz__model_alloc(s->m, weight_floats(l, p->w_kernel) *
						      sizeof *kt);

	if (!kt)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	cnnviz__conv2d_transpose_pack(&p->g, l->w[p->w_kernel].data, p->flip,
				      kt);
	p->kernel = kt;
	p->bias = p->w_bias >= 0 ? l->w[p->w_bias].data : NULL;
	return CNNVIZ_OK;
}

static void conv2d_transpose_forward(const struct cnnviz__layer *l,
				     const struct cnnviz__io *io)
{
	const struct conv *p = l->p;
	cnnviz__conv2d_transpose(&p->g, io->batch, p->tile, io->in[0],
				 p->kernel, p->bias, &p->act, io->out,
				 io->scratch);
}

/* ------------------------------------------------------------------ ops */

#define CONV_FLAGS .flags = CNNVIZ__OP_SPATIAL, \
	.layer_flags = CNNVIZ_LAYER_CONV | CNNVIZ_LAYER_SPATIAL
/* Forward honours io->post (conv_fast.c applies it per output tile). */
#define CONV_FLAGS_EPI .flags = CNNVIZ__OP_SPATIAL | CNNVIZ__OP_EPILOGUE, \
	.layer_flags = CNNVIZ_LAYER_CONV | CNNVIZ_LAYER_SPATIAL

const struct cnnviz__op cnnviz__op_conv2d = {
	.name = "conv2d",
	CONV_FLAGS_EPI,
	.setup = conv2d_setup,
	.finish = conv2d_finish,
	.forward = conv2d_forward,
	.backward = cnnviz__conv2d_backward,
};

const struct cnnviz__op cnnviz__op_depthwise_conv2d = {
	.name = "depthwise_conv2d",
	CONV_FLAGS_EPI,
	.setup = depthwise_conv2d_setup,
	.finish = depthwise_finish,
	.forward = depthwise_conv2d_forward,
	.backward = cnnviz__depthwise_conv2d_backward,
};

const struct cnnviz__op cnnviz__op_separable_conv2d = {
	.name = "separable_conv2d",
	CONV_FLAGS_EPI,
	.setup = separable_conv2d_setup,
	.finish = depthwise_finish,
	.forward = separable_conv2d_forward,
	.backward = cnnviz__separable_conv2d_backward,
};

const struct cnnviz__op cnnviz__op_conv2d_transpose = {
	.name = "conv2d_transpose",
	CONV_FLAGS,
	.setup = conv2d_transpose_setup,
	.finish = conv2d_transpose_finish,
	.forward = conv2d_transpose_forward,
	.backward = cnnviz__conv2d_transpose_backward,
};

/* For conv_grad.c (grad.h): the layer as the file holds it. */
void cnnviz__conv_view(const struct cnnviz__layer *l,
		       struct cnnviz__conv_view *v)
{
	const struct conv *p = l->p;
	static const int kinds[] = {
		[CONV] = CNNVIZ__CONV_PLAIN,
		[DEPTHWISE] = CNNVIZ__CONV_DEPTHWISE,
		[SEPARABLE] = CNNVIZ__CONV_SEPARABLE,
		[TRANSPOSE] = CNNVIZ__CONV_TRANSPOSE,
	};
	v->kind = kinds[p->kind];
	v->g = &p->g;
	v->act = &p->act;
	v->kernel = l->w[p->w_kernel].data;
	v->pw = p->w_pw >= 0 ? l->w[p->w_pw].data : NULL;
	v->bias = p->w_bias >= 0 ? l->w[p->w_bias].data : NULL;
	v->oihw = p->oihw;
	v->flip = p->flip;
}
