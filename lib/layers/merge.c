/*
 * Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum,
 * Concatenate and the Keras 1 Merge layer (mode sum/mul/ave/max/concat).
 * They work on tensors as Keras holds them, any rank, no data_format.
 */
#include <string.h>

#include "../internal.h"
#include "../kernels.h"
#include "params.h"
#include "grad.h"

#if defined(__GNUC__) && !defined(__clang__)
/* See activation.c: -O2 alone leaves these loops scalar. */
#define VEC_LOOP                                                               \
	__attribute__((optimize("tree-loop-vectorize", "vect-cost-model=cheap", \
				"no-trapping-math")))
#else
#define VEC_LOOP
#endif

/* ------------------------------------------------------------ kernels */

/* y = a op b, element-wise; y may equal a. */
static VEC_LOOP void pair(int kind, size_t n, const float *a, const float *b,
			  float *y)
{
	switch (kind) {
	case CNNVIZ__MERGE_ADD:
	case CNNVIZ__MERGE_AVERAGE:
		for (size_t i = 0; i < n; i++)
			y[i] = a[i] + b[i];
		break;
	case CNNVIZ__MERGE_SUBTRACT:
		for (size_t i = 0; i < n; i++)
			y[i] = a[i] - b[i];
		break;
	case CNNVIZ__MERGE_MULTIPLY:
		for (size_t i = 0; i < n; i++)
			y[i] = a[i] * b[i];
		break;
	case CNNVIZ__MERGE_MAXIMUM:
		for (size_t i = 0; i < n; i++)
			y[i] = a[i] > b[i] ? a[i] : b[i];
		break;
	case CNNVIZ__MERGE_MINIMUM:
		for (size_t i = 0; i < n; i++)
			y[i] = a[i] < b[i] ? a[i] : b[i];
		break;
	}
}

static VEC_LOOP void divide(size_t n, float d, float *y)
{
	for (size_t i = 0; i < n; i++)
		y[i] /= d;
}

void cnnviz__merge_elementwise(int kind, int n_in, size_t n,
			       const float *const *in, float *y)
{
	if (n_in == 1) {
		if (y != in[0])
			memcpy(y, in[0], n * sizeof *y);
	} else {
		pair(kind, n, in[0], in[1], y);
		for (int k = 2; k < n_in; k++)
			pair(kind, n, y, in[k], y);
	}
	/* Keras divides the sum (it does not scale each input). */
	if (kind == CNNVIZ__MERGE_AVERAGE)
		divide(n, (float)n_in, y);
}

void cnnviz__merge_concat(int64_t outer, int n_in, const int64_t *len,
			  const float *const *in, float *y)
{
	for (int64_t o = 0; o < outer; o++)
		for (int k = 0; k < n_in; k++) {
			memcpy(y, in[k] + o * len[k], (size_t)len[k] * sizeof *y);
			y += len[k];
		}
}

/* ------------------------------------------------------------- layers */

static struct merge *merge_alloc(struct cnnviz__setup *s)
{
	struct merge *p = cnnviz__model_alloc(s->m, sizeof *p);
	if (!p)
		cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	return p;
}

static int elementwise_setup_kind(struct cnnviz__setup *s, int kind)
{
	struct cnnviz__layer *l = s->l;
	char a[96], b[96];
	if (kind == CNNVIZ__MERGE_SUBTRACT ? l->n_in != 2 : l->n_in < 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "takes %s inputs, got %d",
					  kind == CNNVIZ__MERGE_SUBTRACT ? "exactly 2"
									 : "1 or more",
					  l->n_in);
	/* Keras broadcasts only in corner cases no CNN relies on: refuse. */
	for (int i = 1; i < l->n_in; i++)
		if (!cnnviz__shape_equal(&l->op_in[0], &l->op_in[i]))
			return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
						  "inputs 1 and %d differ in shape: %s and %s",
						  i + 1,
						  cnnviz__shape_str(&l->op_in[0], a, sizeof a),
						  cnnviz__shape_str(&l->op_in[i], b, sizeof b));
	struct merge *p = merge_alloc(s);
	if (!p)
		return CNNVIZ_ERR_NOMEM;
	p->kind = kind;
	p->n_in = l->n_in;
	p->count = cnnviz__shape_count(&l->op_in[0]);
	l->p = p;
	return cnnviz__set_out(s, l->op_in[0].rank, l->op_in[0].d);
}

/* Concatenation along Keras axis `key` (default -1, batch axis = 0). */
static int concat_setup_key(struct cnnviz__setup *s, const char *key)
{
	struct cnnviz__layer *l = s->l;
	const struct cnnviz__shape *s0 = &l->op_in[0];
	char a[96], b[96];
	int axis, rc;
	if (l->n_in < 1)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
					  "takes 1 or more inputs, got %d", l->n_in);
	if ((rc = cnnviz__cfg_axis(s, key, -1, s0->rank, &axis)))
		return rc;
	int64_t dims[CNNVIZ__MAX_SRANK];
	memcpy(dims, s0->d, sizeof dims);
	dims[axis] = 0;
	for (int i = 0; i < l->n_in; i++) {
		const struct cnnviz__shape *si = &l->op_in[i];
		int ok = si->rank == s0->rank;
		for (int k = 0; ok && k < s0->rank; k++)
			ok = k == axis || si->d[k] == s0->d[k];
		if (!ok)
			return cnnviz__setup_fail(s, CNNVIZ_ERR_SHAPE,
						  "cannot concatenate %s and %s on axis %d",
						  cnnviz__shape_str(s0, a, sizeof a),
						  cnnviz__shape_str(si, b, sizeof b),
						  axis + 1);
		dims[axis] += si->d[axis]; /* each <= max_dim: no overflow */
	}
	struct merge *p = merge_alloc(s);
	if (!p)
		return CNNVIZ_ERR_NOMEM;
	p->len = cnnviz__model_alloc(s->m, (size_t)l->n_in * sizeof *p->len);
	if (!p->len)
		return cnnviz__setup_fail(s, CNNVIZ_ERR_NOMEM, "out of memory");
	int64_t inner = 1;
	p->outer = 1;
	for (int k = 0; k < axis; k++)
		p->outer *= s0->d[k];
	for (int k = axis + 1; k < s0->rank; k++)
		inner *= s0->d[k];
	/* Set the output first: it bounds outer * dims[axis] * inner. */
	if ((rc = cnnviz__set_out(s, s0->rank, dims)))
		return rc;
	for (int i = 0; i < l->n_in; i++)
		p->len[i] = l->op_in[i].d[axis] * inner;
	p->kind = CNNVIZ__MERGE_CONCAT;
	p->n_in = l->n_in;
	l->p = p;
	return CNNVIZ_OK;
}

static void merge_forward(const struct cnnviz__layer *l,
			  const struct cnnviz__io *io)
{
	const struct merge *p = l->p;
	if (p->kind == CNNVIZ__MERGE_CONCAT)
		cnnviz__merge_concat(io->batch * p->outer, p->n_in, p->len,
				     io->in, io->out);
	else
		cnnviz__merge_elementwise(p->kind, p->n_in,
					  (size_t)io->batch * p->count,
					  io->in, io->out);
}

static int add_setup(struct cnnviz__setup *s)
{
	return elementwise_setup_kind(s, CNNVIZ__MERGE_ADD);
}

static int subtract_setup(struct cnnviz__setup *s)
{
	return elementwise_setup_kind(s, CNNVIZ__MERGE_SUBTRACT);
}

static int multiply_setup(struct cnnviz__setup *s)
{
	return elementwise_setup_kind(s, CNNVIZ__MERGE_MULTIPLY);
}

static int average_setup(struct cnnviz__setup *s)
{
	return elementwise_setup_kind(s, CNNVIZ__MERGE_AVERAGE);
}

static int maximum_setup(struct cnnviz__setup *s)
{
	return elementwise_setup_kind(s, CNNVIZ__MERGE_MAXIMUM);
}

static int minimum_setup(struct cnnviz__setup *s)
{
	return elementwise_setup_kind(s, CNNVIZ__MERGE_MINIMUM);
}

static int concatenate_setup(struct cnnviz__setup *s)
{
	return concat_setup_key(s, "axis");
}

/* Keras 1 Merge: the mode picks one of the layers above. */
static int merge_setup(struct cnnviz__setup *s)
{
	static const struct {
		const char *mode;
		int kind;
	} modes[] = {
		{"sum", CNNVIZ__MERGE_ADD},
		{"mul", CNNVIZ__MERGE_MULTIPLY},
		{"ave", CNNVIZ__MERGE_AVERAGE},
		{"max", CNNVIZ__MERGE_MAXIMUM},
		{"concat", CNNVIZ__MERGE_CONCAT},
	};
	json_t *jm = json_object_get(s->cfg, "mode");
	if (jm && !json_is_null(jm) && !json_is_string(jm))
		return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
					  "Merge mode given as a Python function cannot run outside Python");
	const char *mode = jm && json_is_string(jm) ? json_string_value(jm)
						    : "sum";
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		if (strcmp(mode, modes[i].mode) != 0)
			continue;
		if (modes[i].kind == CNNVIZ__MERGE_CONCAT)
			return concat_setup_key(s, "concat_axis");
		return elementwise_setup_kind(s, modes[i].kind);
	}
	return cnnviz__setup_fail(s, CNNVIZ_ERR_UNSUPPORTED,
				  "Merge mode '%s' is not supported (sum, mul, ave, max, concat)",
				  mode);
}

#define MERGE_OP(sym)                                                          \
	const struct cnnviz__op cnnviz__op_##sym = {                           \
		.name = #sym,                                                  \
		.flags = CNNVIZ__OP_MULTI,                                     \
		.setup = sym##_setup,                                          \
		.forward = merge_forward,                                      \
		.backward = cnnviz__merge_backward,                            \
	}

MERGE_OP(add);
MERGE_OP(subtract);
MERGE_OP(multiply);
MERGE_OP(average);
MERGE_OP(maximum);
MERGE_OP(minimum);
MERGE_OP(concatenate);
MERGE_OP(merge);
