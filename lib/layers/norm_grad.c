/*
 * Backward of the normalisation layers. At inference every one of them is
 * a per-element affine map, so dx += dy * scale.
 */
#include "grad.h"
#include "params.h"

/* BatchNormalization, Normalization: scale[j] over (outer, c, inner). */
void cnnviz__affine_backward(const struct cnnviz__layer *l,
			     const struct cnnviz__io *io, const float *dy,
			     float *const *dx)
{
	const struct affine *p = l->p;
	float *d = dx[0];
	if (p->inner == 1) { /* channels last: a loop the compiler vectorises */
		for (int64_t o = 0; o < io->batch * p->outer; o++, d += p->c,
			     dy += p->c)
			for (int64_t j = 0; j < p->c; j++)
				d[j] += dy[j] * p->scale[j];
		return;
	}
	for (int64_t o = 0; o < io->batch * p->outer; o++)
		for (int64_t j = 0; j < p->c; j++) {
			const float s = p->scale[j];
			for (int64_t i = 0; i < p->inner; i++, d++, dy++)
				*d += *dy * s;
		}
}

void cnnviz__rescaling_backward(const struct cnnviz__layer *l,
				const struct cnnviz__io *io, const float *dy,
				float *const *dx)
{
	const struct rescale *p = l->p;
	size_t n = cnnviz__shape_count(&l->op_in[0]) * (size_t)io->batch;
	for (size_t i = 0; i < n; i++)
		dx[0][i] += dy[i] * p->scale;
}
