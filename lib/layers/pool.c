/*
 * Pooling layers: MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
 * GlobalMaxPooling2D. All are CNNVIZ__OP_SPATIAL: the executor hands them
 * NHWC tensors whatever the layer's data_format.
 */
#include "../internal.h"
#include "../kernels.h"
#include "params.h"
#include "grad.h"

static int pool2d_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	char buf[96];
	int64_t k[2], st[2];
	int same, rc;

	if (l->n_in != 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "takes 1 input, got %d", l->n_in);
	if (in->rank != 3)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "needs a rank-3 (H, W, C) input, got %s",
					  cnnviz__shape_str(in, buf, sizeof buf));
	if ((rc = cnnviz__cfg_ints(s, "pool_size", 2, 2, k)))
		return rc;
	/* strides: missing or null means pool_size. */
	json_t *jst = json_object_get(s->cfg, "strides");
	if (!jst || json_is_null(jst)) {
		st[0] = k[0];
		st[1] = k[1];
	} else if ((rc = cnnviz__cfg_ints(s, "strides", 2, 1, st))) {
		return rc;
	}
	if ((rc = cnnviz__cfg_padding(s, &same)))
		return rc;
	for (int i = 0; i < 2; i++)
		if (k[i] < 1 || st[i] < 1 || k[i] > (1 << 30) ||
		    st[i] > (1 << 30))
			return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
						  "bad pool_size (%lld, %lld) or strides (%lld, %lld)",
						  (long long)k[0], (long long)k[1],
						  (long long)st[0], (long long)st[1]);

	struct cnnviz__pool2d *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	p->h = in->d[0];
	p->w = in->d[1];
	p->c = in->d[2];
	p->kh = k[0];
	p->kw = k[1];
	p->sh = st[0];
	p->sw = st[1];
	if (cnnviz__pool_geometry(p->h, p->kh, p->sh, same, &p->oh,
				  &p->pad_t) ||
	    cnnviz__pool_geometry(p->w, p->kw, p->sw, same, &p->ow,
				  &p->pad_l))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "pool %lldx%lld 'valid' does not fit input %s",
					  (long long)k[0], (long long)k[1],
					  cnnviz__shape_str(in, buf, sizeof buf));
	l->p = p;
	int64_t dims[3] = {p->oh, p->ow, p->c};
	return cnnviz__set_out(s, 3, dims);
}

static void max_pool2d_forward(const struct cnnviz__layer *l,
			       const struct cnnviz__io *io)
{
	cnnviz__pool_max2d(l->p, io->batch, io->in[0], io->out);
}

static void avg_pool2d_forward(const struct cnnviz__layer *l,
			       const struct cnnviz__io *io)
{
	cnnviz__pool_avg2d(l->p, io->batch, io->in[0], io->out);
}

const struct cnnviz__op cnnviz__op_max_pool2d = {
	.name = "max_pool2d",
	.flags = CNNVIZ__OP_SPATIAL,
	.layer_flags = CNNVIZ_LAYER_SPATIAL,
	.setup = pool2d_setup,
	.forward = max_pool2d_forward,
	.backward = cnnviz__max_pool2d_backward,
};

const struct cnnviz__op cnnviz__op_avg_pool2d = {
	.name = "avg_pool2d",
	.flags = CNNVIZ__OP_SPATIAL,
	.layer_flags = CNNVIZ_LAYER_SPATIAL,
	.setup = pool2d_setup,
	.forward = avg_pool2d_forward,
	.backward = cnnviz__avg_pool2d_backward,
};

/* ---------------------------------------------------------- global pools */

static int global_pool_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	char buf[96];
	int keep, rc;

	if (l->n_in != 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "takes 1 input, got %d", l->n_in);
	if (in->rank != 3)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "needs a rank-3 (H, W, C) input, got %s",
					  cnnviz__shape_str(in, buf, sizeof buf));
	if ((rc = cnnviz__cfg_bool(s, "keepdims", 0, &keep)))
		return rc;
	struct global_pool *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	p->hw = in->d[0] * in->d[1]; /* within max_elements: no overflow */
	p->c = in->d[2];
	l->p = p;
	if (keep) {
		int64_t dims[3] = {1, 1, p->c};
		return cnnviz__set_out(s, 3, dims);
	}
	return cnnviz__set_out(s, 1, &p->c);
}

static void global_avg_pool2d_forward(const struct cnnviz__layer *l,
				      const struct cnnviz__io *io)
{
	const struct global_pool *p = l->p;
	cnnviz__pool_global_avg(io->batch, p->hw, p->c, io->in[0], io->out);
}

static void global_max_pool2d_forward(const struct cnnviz__layer *l,
				      const struct cnnviz__io *io)
{
	const struct global_pool *p = l->p;
	cnnviz__pool_global_max(io->batch, p->hw, p->c, io->in[0], io->out);
}

const struct cnnviz__op cnnviz__op_global_avg_pool2d = {
	.name = "global_avg_pool2d",
	.flags = CNNVIZ__OP_SPATIAL,
	.setup = global_pool_setup,
	.forward = global_avg_pool2d_forward,
	.backward = cnnviz__global_avg_pool2d_backward,
};

const struct cnnviz__op cnnviz__op_global_max_pool2d = {
	.name = "global_max_pool2d",
	.flags = CNNVIZ__OP_SPATIAL,
	.setup = global_pool_setup,
	.forward = global_max_pool2d_forward,
	.backward = cnnviz__global_max_pool2d_backward,
};
