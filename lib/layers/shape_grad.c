/*
 * Backward of the layers that move data: every one is linear with 0/1
 * (or, for bilinear upsampling, fixed) weights, so its backward is its
 * adjoint: copy, inverse permutation, crop <-> pad, and summing each
 * upsampled block (or the bilinear taps) back onto its source pixel.
 */
#include <string.h>

#include "grad.h"
#include "params.h"

static void add(size_t n, const float *dy, float *dx)
{
	for (size_t i = 0; i < n; i++)
		dx[i] += dy[i];
}

void cnnviz__copy_backward(const struct cnnviz__layer *l,
			   const struct cnnviz__io *io, const float *dy,
			   float *const *dx)
{
	add((size_t)io->batch * cnnviz__shape_count(&l->op_out), dy, dx[0]);
}

void cnnviz__permute_grad_setup(struct cnnviz__layer *l)
{
	const struct permute *p = l->p;
	l->bscratch_fixed = (size_t)p->count;
	l->bscratch_per_sample = 0;
}

void cnnviz__permute_backward(const struct cnnviz__layer *l,
			      const struct cnnviz__io *io, const float *dy,
			      float *const *dx)
{
	const struct permute *p = l->p;
	int64_t od[CNNVIZ__MAX_SRANK];
	int inv[CNNVIZ__MAX_SRANK];
	for (int i = 0; i < p->rank; i++) {
		od[i] = p->dims[p->perm[i]];
		inv[p->perm[i]] = i;
	}
	for (int64_t b = 0; b < io->batch; b++) {
		cnnviz__shape_permute(p->rank, od, inv, dy + b * p->count,
				      io->scratch);
		add((size_t)p->count, io->scratch, dx[0] + b * p->count);
	}
}

void cnnviz__flatten_backward(const struct cnnviz__layer *l,
			      const struct cnnviz__io *io, const float *dy,
			      float *const *dx)
{
	if (l->p)
		cnnviz__permute_backward(l, io, dy, dx);
	else
		cnnviz__copy_backward(l, io, dy, dx);
}

/* The inner (h, w) window at (t, l) of the outer (oh, ow) map, c channels:
   crop = 1 adds the outer window onto the inner map, else the reverse. */
static void frame_back(const struct frame2d *p, int64_t n, int crop,
		       const float *dy, float *dx)
{
	/* padding: dy is the big (oh,ow) map; cropping: dx is */
	int64_t bh = crop ? p->h : p->oh, bw = crop ? p->w : p->ow;
	int64_t sh = crop ? p->oh : p->h, sw = crop ? p->ow : p->w;
	for (int64_t b = 0; b < n; b++)
		for (int64_t i = 0; i < sh; i++) {
			int64_t big = ((b * bh + p->t + i) * bw + p->l) * p->c;
			int64_t small = (b * sh + i) * sw * p->c;
			if (crop)
				add((size_t)(sw * p->c), dy + small, dx + big);
			else
				add((size_t)(sw * p->c), dy + big, dx + small);
		}
}

void cnnviz__zero_padding2d_backward(const struct cnnviz__layer *l,
				     const struct cnnviz__io *io,
				     const float *dy, float *const *dx)
{
	frame_back(l->p, io->batch, 0, dy, dx[0]);
}

void cnnviz__cropping2d_backward(const struct cnnviz__layer *l,
				 const struct cnnviz__io *io, const float *dy,
				 float *const *dx)
{
	frame_back(l->p, io->batch, 1, dy, dx[0]);
}

/* The source pixels and weight of output i, as resize.c's bilinear. */
static void tap(int64_t i, double scale, int64_t n, int64_t *i0, int64_t *i1,
		double *f)
{
	double s = ((double)i + 0.5) * scale - 0.5;
	if (s < 0)
		s = 0;
	if (s > (double)(n - 1))
		s = (double)(n - 1);
	*i0 = (int64_t)s;
	*i1 = *i0 + 1 < n ? *i0 + 1 : *i0;
	*f = s - (double)*i0;
}

/* dx (ih,iw,c) += the adjoint of cnnviz__resize_bilinear of dy (oh,ow,c). */
static void bilinear_back(const float *dy, int64_t oh, int64_t ow, int64_t c,
			  float *dx, int64_t ih, int64_t iw)
{
	double sy = (double)ih / (double)oh, sx = (double)iw / (double)ow;
	for (int64_t y = 0; y < oh; y++) {
		int64_t y0, y1;
		double fy;
		tap(y, sy, ih, &y0, &y1, &fy);
		for (int64_t x = 0; x < ow; x++) {
			int64_t x0, x1;
			double fx;
			tap(x, sx, iw, &x0, &x1, &fx);
			const float *g = dy + (y * ow + x) * c;
			float *a = dx + (y0 * iw + x0) * c, *b = dx + (y0 * iw + x1) * c;
			float *e = dx + (y1 * iw + x0) * c, *d = dx + (y1 * iw + x1) * c;
			float w00 = (float)((1 - fy) * (1 - fx)), w01 = (float)((1 - fy) * fx);
			float w10 = (float)(fy * (1 - fx)), w11 = (float)(fy * fx);
			for (int64_t k = 0; k < c; k++) {
				a[k] += g[k] * w00;
				b[k] += g[k] * w01;
				e[k] += g[k] * w10;
				d[k] += g[k] * w11;
			}
		}
	}
}

void cnnviz__upsampling2d_backward(const struct cnnviz__layer *l,
				   const struct cnnviz__io *io,
				   const float *dy, float *const *dx)
{
	const struct upsample *p = l->p;
	const int64_t oh = p->h * p->sh, ow = p->w * p->sw;
	for (int64_t b = 0; b < io->batch; b++) {
		const float *g = dy + b * oh * ow * p->c;
		float *d = dx[0] + b * p->h * p->w * p->c;
		if (p->bilinear) {
			bilinear_back(g, oh, ow, p->c, d, p->h, p->w);
			continue;
		}
		for (int64_t y = 0; y < oh; y++)
			for (int64_t x = 0; x < ow; x++)
				add((size_t)p->c, g + (y * ow + x) * p->c,
				    d + ((y / p->sh) * p->w + x / p->sw) * p->c);
	}
}
