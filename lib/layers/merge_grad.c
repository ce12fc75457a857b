/*
 * Backward of the merge layers. Maximum/Minimum send the gradient to the
 * first input holding the extreme value (TensorFlow's maximum gradient
 * prefers its first argument on ties, and Keras folds the inputs left to
 * right). An input listed twice (Add(x, x)) simply receives both shares:
 * every dx[i] is only ever added to.
 */
#include "grad.h"
#include "params.h"

static void elementwise_back(const struct merge *p, size_t n,
			     const float *const *in, const float *dy,
			     float *const *dx)
{
	switch (p->kind) {
	case CNNVIZ__MERGE_ADD:
	case CNNVIZ__MERGE_AVERAGE: {
		float s = p->kind == CNNVIZ__MERGE_AVERAGE ? 1.0f / (float)p->n_in
							   : 1.0f;
		for (int k = 0; k < p->n_in; k++)
			for (size_t i = 0; i < n; i++)
				dx[k][i] += dy[i] * s;
		break;
	}
	case CNNVIZ__MERGE_SUBTRACT:
		for (size_t i = 0; i < n; i++) {
			dx[0][i] += dy[i];
			dx[1][i] -= dy[i];
		}
		break;
	case CNNVIZ__MERGE_MULTIPLY:
		/* product of the others, without dividing (zeros are common) */
		for (int k = 0; k < p->n_in; k++)
			for (size_t i = 0; i < n; i++) {
				float v = dy[i];
				for (int j = 0; j < p->n_in; j++)
					if (j != k)
						v *= in[j][i];
				dx[k][i] += v;
			}
		break;
	case CNNVIZ__MERGE_MAXIMUM:
	case CNNVIZ__MERGE_MINIMUM: {
		int mx = p->kind == CNNVIZ__MERGE_MAXIMUM;
		for (size_t i = 0; i < n; i++) {
			int best = 0;
			for (int k = 1; k < p->n_in; k++)
				if (mx ? in[k][i] > in[best][i] : in[k][i] < in[best][i])
					best = k;
			dx[best][i] += dy[i];
		}
		break;
	}
	}
}

void cnnviz__merge_backward(const struct cnnviz__layer *l,
			    const struct cnnviz__io *io, const float *dy,
			    float *const *dx)
{
	const struct merge *p = l->p;
	if (p->kind != CNNVIZ__MERGE_CONCAT) {
		elementwise_back(p, (size_t)io->batch * p->count, io->in, dy, dx);
		return;
	}
	for (int64_t o = 0; o < io->batch * p->outer; o++)
		for (int k = 0; k < p->n_in; k++) {
			float *d = dx[k] + o * p->len[k];
			for (int64_t i = 0; i < p->len[k]; i++)
				d[i] += dy[i];
			dy += p->len[k];
		}
}
