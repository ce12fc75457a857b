/*
 * Backward of the pooling layers. Max pooling sends each output's
 * gradient to its window's maximum; on ties, to the first one in window
 * order (row by row), as TensorFlow's MaxPoolGrad does. Padding never
 * wins (TF pads with -inf). Average pooling spreads the gradient evenly
 * over the real (non-padded) elements of each window.
 */
#include "grad.h"
#include "params.h"

/* dx (n,h,w,c) += the gradients dy (n,oh,ow,c) routed back through max. */
void cnnviz__pool_max2d_backward(const struct cnnviz__pool2d *p, int64_t n,
				 const float *x, const float *dy, float *dx)
{
	const int64_t in_px = p->h * p->w * p->c;
	for (int64_t b = 0; b < n; b++, x += in_px, dx += in_px)
		for (int64_t oy = 0; oy < p->oh; oy++)
			for (int64_t ox = 0; ox < p->ow; ox++, dy += p->c) {
				int64_t y0 = oy * p->sh - p->pad_t;
				int64_t x0 = ox * p->sw - p->pad_l;
				for (int64_t c = 0; c < p->c; c++) {
					int64_t best = -1;
					float m = 0.0f;
					for (int64_t i = 0; i < p->kh; i++) {
						int64_t iy = y0 + i;
						if (iy < 0 || iy >= p->h)
							continue;
						for (int64_t j = 0; j < p->kw; j++) {
							int64_t ix = x0 + j;
							if (ix < 0 || ix >= p->w)
								continue;
							int64_t at = (iy * p->w + ix) * p->c + c;
							if (best < 0 || x[at] > m) {
								best = at;
								m = x[at];
							}
						}
					}
					if (best >= 0)
						dx[best] += dy[c];
				}
			}
}

void cnnviz__pool_avg2d_backward(const struct cnnviz__pool2d *p, int64_t n,
				 const float *dy, float *dx)
{
	const int64_t in_px = p->h * p->w * p->c;
	for (int64_t b = 0; b < n; b++, dx += in_px)
		for (int64_t oy = 0; oy < p->oh; oy++)
			for (int64_t ox = 0; ox < p->ow; ox++, dy += p->c) {
				int64_t y0 = oy * p->sh - p->pad_t;
				int64_t x0 = ox * p->sw - p->pad_l;
				int64_t ya = y0 < 0 ? 0 : y0, xa = x0 < 0 ? 0 : x0;
				int64_t yb = y0 + p->kh < p->h ? y0 + p->kh : p->h;
				int64_t xb = x0 + p->kw < p->w ? x0 + p->kw : p->w;
				if (yb <= ya || xb <= xa)
					continue;
				float inv = 1.0f / (float)((yb - ya) * (xb - xa));
				for (int64_t iy = ya; iy < yb; iy++)
					for (int64_t ix = xa; ix < xb; ix++) {
						float *d = dx + (iy * p->w + ix) * p->c;
						for (int64_t c = 0; c < p->c; c++)
							d[c] += dy[c] * inv;
					}
			}
}

void cnnviz__max_pool2d_backward(const struct cnnviz__layer *l,
				 const struct cnnviz__io *io, const float *dy,
				 float *const *dx)
{
	cnnviz__pool_max2d_backward(l->p, io->batch, io->in[0], dy, dx[0]);
}

void cnnviz__avg_pool2d_backward(const struct cnnviz__layer *l,
				 const struct cnnviz__io *io, const float *dy,
				 float *const *dx)
{
	cnnviz__pool_avg2d_backward(l->p, io->batch, dy, dx[0]);
}

void cnnviz__global_avg_pool2d_backward(const struct cnnviz__layer *l,
					const struct cnnviz__io *io,
					const float *dy, float *const *dx)
{
	const struct global_pool *p = l->p;
	const float inv = (float)(1.0 / (double)p->hw);
	float *d = dx[0];
	for (int64_t b = 0; b < io->batch; b++, dy += p->c)
		for (int64_t i = 0; i < p->hw; i++, d += p->c)
			for (int64_t c = 0; c < p->c; c++)
				d[c] += dy[c] * inv;
}

/* First maximum over hw, like the forward's scan. */
void cnnviz__global_max_pool2d_backward(const struct cnnviz__layer *l,
					const struct cnnviz__io *io,
					const float *dy, float *const *dx)
{
	const struct global_pool *p = l->p;
	for (int64_t b = 0; b < io->batch; b++) {
		const float *x = io->in[0] + b * p->hw * p->c;
		float *d = dx[0] + b * p->hw * p->c;
		for (int64_t c = 0; c < p->c; c++) {
			int64_t best = 0;
			for (int64_t i = 1; i < p->hw; i++)
				if (x[i * p->c + c] > x[best * p->c + c])
					best = i;
			d[best * p->c + c] += dy[b * p->c + c];
		}
	}
}
