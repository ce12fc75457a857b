/*
 * Fusion: which layers fold into the epilogue of a preceding convolution
 * or dense layer when no hook watches the layers in between.
 *
 * A chain starts at an op that honours io->post (CNNVIZ__OP_EPILOGUE) and
 * takes, in this order and each at most once: a BatchNormalization on the
 * last axis, an Add of two inputs whose other input is already computed,
 * an element-wise activation layer. Identity layers in between (Dropout,
 * nested-model entries) are passed over. Every value inside a chain must
 * have exactly one reader and must not be a model output. The epilogue
 * performs the very float operations the folded layers would, in the same
 * order, so fused and unfused runs give bit-identical results.
 *
 * A ZeroPadding2D read only by a convolution that can absorb it
 * (l->can_fold_pad) is not run either: the convolution reads the padding
 * layer's input and takes the padded taps as zeros, adding nothing.
 *
 * A DepthwiseConv2D chain whose result only a 1x1 conv reads (MobileNet's
 * depthwise -> project) is computed by that conv, tile by tile
 * (l->can_take_dw), with the same operations: the expanded tensor stays
 * in cache and one pass over the threads is saved. When a 1x1 conv chain
 * (MobileNet's expand) computes that depthwise conv's input and nothing
 * else reads it, the taking conv computes it too, row by row into a ring
 * (the depthwise layer's ring_floats): the expanded tensor is never
 * stored whole.
 */
#include <stdlib.h>
#include <string.h>

#include "fuse.h"
#include "kernels.h"
#include "layers/params.h"
#include "model.h"

extern const struct cnnviz__op cnnviz__op_batch_norm, cnnviz__op_add,
	cnnviz__op_activation, cnnviz__op_relu, cnnviz__op_leaky_relu,
	cnnviz__op_elu, cnnviz__op_dense, cnnviz__op_depthwise_conv2d;

void cnnviz__epilogue_apply(const struct cnnviz__epilogue *p, float *y,
			    const float *residual, int64_t rows, int64_t c)
{
	if (p->scale)
		cnnviz__norm_affine(rows, c, 1, y, p->scale, p->shift, y);
	if (residual) {
		const float *in[2] = {y, residual};
		cnnviz__merge_elementwise(CNNVIZ__MERGE_ADD, 2, (size_t)(rows * c), in, y);
	}
	if (p->act.kind != CNNVIZ__ACT_LINEAR)
		cnnviz__act_forward(&p->act, y, y, (size_t)rows, (size_t)c);
}

/* Ops whose output the epilogue can follow: natively, or as a post-pass. */
int cnnviz__fusion_can_start(const struct cnnviz__layer *l)
{
	return (l->op->flags & CNNVIZ__OP_EPILOGUE) ||
	       (l->flags & CNNVIZ_LAYER_CONV) || l->op == &cnnviz__op_dense;
}

void cnnviz__fusion_free(struct cnnviz__fusion *f)
{
	free(f->skip);
	free(f->dest);
	free(f->post);
	free(f->has_post);
	free(f->residual);
	free(f->pad_folded);
	free(f->pre);
	free(f->expand);
	free(f->owner);
	memset(f, 0, sizeof *f);
}

/*
 * Layers that compute from the value in root r's buffer (identity layers
 * share that buffer and compute nothing, so they do not count).
 */
static int readers(const struct cnnviz_model *m, const int *root, int r,
		   int *only)
{
	int n = 0;
	for (int j = 0; j < m->n_layers; j++) {
		const struct cnnviz__layer *l = m->layers[j];
		if (root[j] != j || l->input_slot >= 0)
			continue;
		for (int k = 0; k < l->n_in; k++) {
			if (root[l->in[k]] == r) {
				n++;
				*only = j;
				break;
			}
		}
	}
	return n;
}

static int is_output(const struct cnnviz_model *m, const int *root, int r)
{
	for (int o = 0; o < m->n_outputs; o++)
		if (root[m->outputs[o]] == r)
			return 1;
	return 0;
}

static int is_elementwise_act(const struct cnnviz__layer *l)
{
	if (l->op != &cnnviz__op_activation && l->op != &cnnviz__op_relu &&
	    l->op != &cnnviz__op_leaky_relu && l->op != &cnnviz__op_elu)
		return 0;
	const struct act_layer *p = l->p;
	return p && p->act.kind != CNNVIZ__ACT_SOFTMAX;
}

/* The one layer computing from root r, or -1 if r has other uses. */
static int next_in_chain(const struct cnnviz_model *m, const int *root, int r)
{
	int only = -1;
	if (is_output(m, root, r) || readers(m, root, r, &only) != 1)
		return -1;
	return only;
}

static int take_depthwise(const struct cnnviz_model *m, const int *root,
			  struct cnnviz__fusion *f)
{
	const int n = m->n_layers;
	int *start = malloc((size_t)n * sizeof *start); /* chain by result */
	if (!start)
		return CNNVIZ_ERR_NOMEM;
	for (int v = 0; v < n; v++)
		start[v] = -1;
	for (int j = 0; j < n; j++)
		if (!f->skip[j] && m->layers[j]->op)
			start[f->dest[j]] = j;
	for (int i = 0; i < n; i++) {
		const struct cnnviz__layer *l = m->layers[i];
		if (!l->can_take_dw || root[i] != i || f->skip[i] ||
		    f->pad_folded[i])
			continue;
		int v = root[l->in[0]], j = start[v];
		if (j < 0 || m->layers[j]->op != &cnnviz__op_depthwise_conv2d ||
		    m->layers[j]->channels_first || f->residual[j] >= 0 ||
		    next_in_chain(m, root, v) != i)
			continue;
		f->skip[j] = 1;
		f->owner[j] = i;
		f->pre[i] = j;
		f->any = 1;
	}
	for (int i = 0; i < n; i++) {
		const int j = f->pre[i];
		if (j < 0 || !m->layers[j]->ring_floats)
			continue;
		/* The depthwise conv reads v, through its padding or not. */
		const int reader = f->pad_folded[j] ? m->layers[j]->in[0] : j;
		const int v = root[m->layers[reader]->in[0]], e = start[v];
		const struct cnnviz__layer *el = e >= 0 ? m->layers[e] : NULL;
		if (!el || !el->can_take_dw || f->skip[e] || f->pad_folded[e] ||
		    f->pre[e] >= 0 || f->residual[e] >= 0 ||
		    next_in_chain(m, root, v) != reader)
			continue;
		f->skip[e] = 1;
		f->owner[e] = i;
		f->expand[i] = e;
	}
	/* What a taken conv's step computed (its chain, its padding) is now
	   computed in its reader's. */
	for (int c = 0; c < n; c++)
		if (f->owner[c] != c && f->skip[f->owner[c]])
			f->owner[c] = f->owner[f->owner[c]];
	free(start);
	return CNNVIZ_OK;
}

int cnnviz__fusion_plan(const struct cnnviz_model *m, const int *root,
			struct cnnviz__fusion *f)
{
	int n = m->n_layers;
	memset(f, 0, sizeof *f);
	f->skip = calloc((size_t)n, sizeof *f->skip);
	f->dest = malloc((size_t)n * sizeof *f->dest);
	f->post = calloc((size_t)n, sizeof *f->post);
	f->has_post = calloc((size_t)n, sizeof *f->has_post);
	f->residual = malloc((size_t)n * sizeof *f->residual);
	f->pad_folded = calloc((size_t)n, sizeof *f->pad_folded);
	f->pre = malloc((size_t)n * sizeof *f->pre);
	f->owner = malloc((size_t)n * sizeof *f->owner);
	f->expand = malloc((size_t)n * sizeof *f->expand);
	if (!f->skip || !f->dest || !f->post || !f->has_post || !f->residual ||
	    !f->pad_folded || !f->pre || !f->owner || !f->expand) {
		cnnviz__fusion_free(f);
		return CNNVIZ_ERR_NOMEM;
	}
	for (int i = 0; i < n; i++) {
		f->dest[i] = i;
		f->residual[i] = -1;
		f->pre[i] = -1;
		f->expand[i] = -1;
		f->owner[i] = i;
	}
	for (int i = 0; i < n; i++) {
		const struct cnnviz__layer *l = m->layers[i];
		if (!l->can_fold_pad || root[i] != i || l->input_slot >= 0)
			continue;
		int z = l->in[0];
		if (root[z] != z || next_in_chain(m, root, z) != i)
			continue;
		f->skip[z] = 1;
		f->owner[z] = i;
		f->pad_folded[i] = 1;
		f->any = 1;
	}
	for (int i = 0; i < n; i++) {
		const struct cnnviz__layer *l = m->layers[i];
		if (!l->op || !cnnviz__fusion_can_start(l) || root[i] != i ||
		    l->channels_first || l->input_slot >= 0 || f->skip[i])
			continue;
		struct cnnviz__epilogue post = {0};
		post.act.kind = CNNVIZ__ACT_LINEAR;
		int end = i, stage = 0, resid = -1; /* stage: what may come next */
		int64_t channels = l->op_out.d[l->op_out.rank - 1];
		for (;;) {
			int c = next_in_chain(m, root, root[end]);
			if (c < 0)
				break;
			const struct cnnviz__layer *cl = m->layers[c];
			if (stage == 0 && cl->op == &cnnviz__op_batch_norm) {
				const struct affine *p = cl->p;
				if (p->inner != 1 || p->c != channels)
					break;
				post.scale = p->scale;
				post.shift = p->shift;
				stage = 1;
			} else if (stage <= 1 && cl->op == &cnnviz__op_add && cl->n_in == 2) {
				/* The other input must exist before the chain starts. */
				int other = root[cl->in[0]] == root[end] ? cl->in[1] : cl->in[0];
				if (root[cl->in[0]] == root[cl->in[1]] || root[other] >= i ||
				    !cnnviz__shape_equal(&cl->out, &l->op_out))
					break;
				resid = root[other];
				stage = 2;
			} else if (stage <= 2 && is_elementwise_act(cl)) {
				post.act = ((const struct act_layer *)cl->p)->act;
				stage = 3;
			} else {
				break;
			}
			f->skip[c] = 1;
			f->owner[c] = i;
			end = c;
			if (stage == 3)
				break;
		}
		if (end == i)
			continue;
		f->has_post[i] = 1;
		f->post[i] = post; /* post.residual is set per run from residual[] */
		f->residual[i] = resid;
		f->dest[i] = end;
		f->any = 1;
	}
	if (take_depthwise(m, root, f)) {
		cnnviz__fusion_free(f);
		return CNNVIZ_ERR_NOMEM;
	}
	return CNNVIZ_OK;
}
