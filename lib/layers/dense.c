/*
 * Dense: y = act(x . kernel + bias) over the last axis of an input of any
 * rank (Keras applies it to every position of the other axes).
 */
#include <string.h>

#include "../internal.h"
#include "../kernels.h"
#include "params.h"
#include "grad.h"

void cnnviz__dense_fwd(int64_t rows, int64_t in, int64_t units,
		       const float *x, const float *kernel, const float *bias,
		       float *y)
{
	if (!bias) {
		cnnviz__gemm(rows, units, in, x, in, kernel, units, y, units, 0);
		return;
	}
	/* Start from the bias and let the GEMM accumulate onto it: one pass
	   over y instead of two. */
	for (int64_t r = 0; r < rows; r++)
		memcpy(y + r * units, bias, (size_t)units * sizeof *y);
	cnnviz__gemm(rows, units, in, x, in, kernel, units, y, units, 1);
}

static int dense_setup(struct cnnviz__setup *s)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *in = &l->op_in[0];
	int64_t units;
	int use_bias, rc;

	if (l->n_in != 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "takes 1 input, got %d", l->n_in);
	if (in->rank < 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "needs an input of rank >= 1");
	if ((rc = cnnviz__cfg_int(s, "units", -1, &units)) ||
	    (rc = cnnviz__cfg_bool(s, "use_bias", 1, &use_bias)))
		return rc;
	if (units < 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
					  "units must be a positive integer");
	/* LoRA adds lora_kernel_a/b variables we do not merge. */
	json_t *lora = json_object_get(s->cfg, "lora_rank");
	if (lora && !json_is_null(lora))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "lora_rank (LoRA-adapted Dense)");

	struct dense *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	if ((rc = cnnviz__cfg_activation(s, "activation", &p->act)))
		return rc;
	p->in = in->d[in->rank - 1];
	p->units = units;
	p->rows = (int64_t)(cnnviz__shape_count(in) / (size_t)p->in);

	int64_t kdims[2] = {p->in, units};
	size_t kn;
	if (cnnviz__mul_size((size_t)p->in, (size_t)units, &kn))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_LIMIT,
					  "kernel (%lld, %lld) is too large",
					  (long long)p->in, (long long)units);
	if ((p->w_kernel = cnnviz__weight_decl(s, "kernel", 2, kdims, 0)) < 0)
		return p->w_kernel;
	p->w_bias = -1;
	if (use_bias &&
	    (p->w_bias = cnnviz__weight_decl(s, "bias", 1, &units, 0)) < 0)
		return p->w_bias;
	l->p = p;
	cnnviz__dense_grad_setup(l);

	struct cnnviz__shape out = *in;
	out.d[out.rank - 1] = units;
	return cnnviz__set_out(s, out.rank, out.d);
}

/* The kernel packed for the fast GEMM (gemm.c), once per model. */
static int dense_finish(struct cnnviz__setup *s)
{
	struct dense *p = s->l->p;
	const struct cnnviz__isa *isa = cnnviz__isa_best();
	struct cnnviz__packed *kp = cnnviz__model_alloc(s->m, sizeof *kp);
	size_t n, bytes;
	float *w;

	if (!kp || cnnviz__pack_floats(isa, p->in, p->units, &n) ||
	    cnnviz__mul_size(n, sizeof *w, &bytes) ||
	    !(w = cnnviz__model_alloc(s->m, bytes)))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	int pairs = cnnviz__pairs_ok(isa, p->in, p->units);
	if (pairs)
		cnnviz__pack_pairs(isa, p->in, p->units,
				   s->l->w[p->w_kernel].data, p->units, w);
	else
		cnnviz__pack(isa, p->in, p->units, s->l->w[p->w_kernel].data,
			     p->units, w);
	*kp = (struct cnnviz__packed){isa, p->in, p->units, w, pairs};
	p->kpack = kp;
	return CNNVIZ_OK;
}

static void dense_forward(const struct cnnviz__layer *l,
			  const struct cnnviz__io *io)
{
	const struct dense *p = l->p;
	int64_t rows = io->batch * p->rows;
	const float *bias = p->w_bias >= 0 ? l->w[p->w_bias].data : NULL;
	cnnviz__gemm_packed(rows, io->in[0], p->in, p->kpack, bias, &p->act,
			    io->post, io->out, p->units, io->pool);
}

const struct cnnviz__op cnnviz__op_dense = {
	.name = "dense",
	.flags = CNNVIZ__OP_EPILOGUE,
	.setup = dense_setup,
	.finish = dense_finish,
	.forward = dense_forward,
	.backward = cnnviz__dense_backward,
};
