/*
 * Backward (input gradients) of the convolution layers. Conv2D runs the
 * transposed GEMM of its forward: dcol = dpre . W^T per tile of output
 * pixels, scattered back onto dx (col2im). DepthwiseConv2D scatters each
 * output pixel's taps directly; SeparableConv2D first goes back through
 * its pointwise GEMM. Conv2DTranspose's input gradient is an ordinary
 * convolution of dpre: gather (im2col) then one GEMM with the kernel as
 * stored, (kh*kw*cout, cin).
 *
 * The fused activation is differentiated first (dpre = dy * act'). Its
 * derivative mostly comes from the output; swish/gelu need the
 * pre-activation, which is then recomputed with the forward kernels.
 * Weights are read as the file holds them (cnnviz__conv_view), so the
 * forward's packing can change without touching this file.
 */
#include <math.h>
#include <string.h>

#include "grad.h"

/* Output pixels per backward tile: dcol is tile x kh*kw*cin floats. */
#define TILE_FLOATS (1 << 18)

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int64_t tile_for(int64_t row_floats, int64_t limit)
{
	int64_t t = TILE_FLOATS / max64(row_floats, 1);
	return min64(max64(t, 16), max64(limit, 1));
}

static int needs_pre(const struct cnnviz__conv_view *v, int skip_act)
{
	return !skip_act && cnnviz__act_needs_input(v->act);
}

/* Floats a * b * c + d, or -1 on overflow. */
static int muladd(size_t a, size_t b, size_t c, size_t *acc)
{
	size_t t;
	if (cnnviz__mul_size(a, b, &t) || cnnviz__mul_size(t, c, &t) ||
	    cnnviz__add_size(*acc, t, acc))
		return -1;
	return 0;
}

/* -------------------------------------------------------- scratch sizes */

int cnnviz__conv_grad_setup(struct cnnviz__layer *l)
{
	struct cnnviz__conv_view v;
	cnnviz__conv_view(l, &v);
	const struct cnnviz__conv_geom *g = v.g;
	size_t fixed = 0, per = 0, ftile;
	size_t kk = (size_t)(g->kh * g->kw), opx = (size_t)(g->oh * g->ow);
	int pre = needs_pre(&v, 0);
	int rc = 0;

	switch (v.kind) {
	case CNNVIZ__CONV_PLAIN: {
		int64_t cg = g->cin / g->groups;
		size_t kd = kk * (size_t)cg;
		int64_t t = tile_for((int64_t)kd, g->oh * g->ow);
		/* HWIO copy, its transpose, dcol, dpre tile */
		rc |= muladd(kd, (size_t)g->cout, 2, &fixed);
		rc |= muladd((size_t)t, kd, 1, &fixed);
		rc |= muladd((size_t)t, (size_t)g->cout, 1, &fixed);
		if (pre) {
			int64_t ft = cnnviz__conv2d_tile(g);
			rc |= cnnviz__conv2d_scratch(g, ft, &ftile) ||
			      cnnviz__add_size(fixed, ftile, &fixed);
			rc |= muladd(opx, (size_t)g->cout, 1, &per);
		}
		break;
	}
	case CNNVIZ__CONV_DEPTHWISE:
	case CNNVIZ__CONV_SEPARABLE: {
		size_t cm = (size_t)(g->cin * g->mult);
		/* dpre and pre rows, dmid and mid rows, kernel, PW^T */
		rc |= muladd((size_t)g->ow, (size_t)g->cout, 2, &fixed);
		rc |= muladd((size_t)g->ow, cm, 2, &fixed);
		rc |= muladd(kk, cm, 1, &fixed);
		rc |= muladd(cm, (size_t)g->cout, 1, &fixed);
		break;
	}
	case CNNVIZ__CONV_TRANSPOSE: {
		size_t kd = kk * (size_t)g->cout;
		int64_t t = tile_for((int64_t)kd, g->h * g->w);
		/* dcol, flipped kernel, packed kernel + forward tile */
		rc |= muladd((size_t)t, kd, 1, &fixed);
		rc |= muladd(kd, (size_t)g->cin, 2, &fixed);
		rc |= muladd(opx, (size_t)g->cout, 1, &per);
		if (pre) {
			int64_t ft = cnnviz__conv2d_transpose_tile(g);
			rc |= muladd((size_t)ft, kd, 1, &fixed);
			rc |= muladd(opx, (size_t)g->cout, 1, &per);
		}
		break;
	}
	}
	if (rc)
		return -1;
	l->bscratch_fixed = fixed;
	l->bscratch_per_sample = per;
	return 0;
}

/* ------------------------------------------------------------- helpers */

/* dpre (rows, cols) = dy * act'(pre or y); dy itself when nothing to do. */
static const float *act_back(const struct cnnviz__conv_view *v, int skip_act,
			     const float *pre, const float *y, const float *dy,
			     float *buf, size_t rows, size_t cols)
{
	if (skip_act || v->act->kind == CNNVIZ__ACT_LINEAR)
		return dy;
	cnnviz__act_backward(v->act, pre, y, dy, buf, rows, cols, 0);
	return buf;
}

/* The depthwise kernel as it acts (kh,kw,cin,mult): flipped if need be. */
static const float *dw_kernel(const struct cnnviz__conv_view *v, float *buf)
{
	const struct cnnviz__conv_geom *g = v->g;
	if (!v->flip)
		return v->kernel;
	cnnviz__conv_kernel_to_hwio(g->kh, g->kw, g->cin, g->mult, v->kernel,
				    0, 1, buf);
	return buf;
}

/*
 * dx (h,w,cin) of one sample += the depthwise taps of the output row oy
 * whose gradient is drow (ow, cin*mult); k (kh,kw,cin,mult).
 */
static void dw_row_back(const struct cnnviz__conv_geom *g, const float *k,
			int64_t oy, const float *drow, float *dx)
{
	const int64_t c = g->cin, m = g->mult, cm = c * m;
	for (int64_t ky = 0; ky < g->kh; ky++) {
		int64_t iy = oy * g->sh + ky * g->dh - g->pad_t;
		if (iy < 0 || iy >= g->h)
			continue;
		for (int64_t ox = 0; ox < g->ow; ox++) {
			const float *d = drow + ox * cm;
			for (int64_t kx = 0; kx < g->kw; kx++) {
				int64_t ix = ox * g->sw + kx * g->dw - g->pad_l;
				if (ix < 0 || ix >= g->w)
					continue;
				const float *kt = k + (ky * g->kw + kx) * cm;
				float *o = dx + (iy * g->w + ix) * c;
				if (m == 1) {
					for (int64_t ch = 0; ch < c; ch++)
						o[ch] += d[ch] * kt[ch];
					continue;
				}
				for (int64_t ch = 0; ch < c; ch++) {
					float acc = 0.0f;
					for (int64_t j = 0; j < m; j++)
						acc += d[ch * m + j] * kt[ch * m + j];
					o[ch] += acc;
				}
			}
		}
	}
}

/* ---------------------------------------------------------------- Conv2D */

static void conv2d_back(const struct cnnviz__layer *l,
			const struct cnnviz__conv_view *v,
			const struct cnnviz__io *io, const float *dy,
			float *dx, int skip_act)
{
	const struct cnnviz__conv_geom *g = v->g;
	const int64_t cg = g->cin / g->groups, og = g->cout / g->groups;
	const int64_t kd = g->kh * g->kw * cg, ohw = g->oh * g->ow;
	const int64_t total = io->batch * ohw, tile = tile_for(kd, ohw);
	float *hwio = io->scratch, *wt = hwio + kd * g->cout;
	float *dcol = wt + kd * g->cout, *dpre_buf = dcol + tile * kd;
	float *fscratch = dpre_buf + tile * g->cout;
	const float *pre = NULL;

	cnnviz__conv_kernel_to_hwio(g->kh, g->kw, cg, g->cout, v->kernel,
				    v->oihw, v->flip, hwio);
	/* wt (cout, kd) = hwio (kd, cout) transposed */
	for (int64_t r = 0; r < kd; r++)
		for (int64_t o = 0; o < g->cout; o++)
			wt[o * kd + r] = hwio[r * g->cout + o];
	if (needs_pre(v, skip_act)) {
		size_t fs;
		int64_t ft = cnnviz__conv2d_tile(g);
		cnnviz__conv2d_scratch(g, ft, &fs);
		float *p = fscratch + fs;
		cnnviz__conv2d(g, io->batch, ft, io->in[0], hwio, v->bias, NULL,
			       p, fscratch);
		pre = p;
	}
	const int pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 &&
			      g->sw == 1 && g->pad_t == 0 && g->pad_l == 0 &&
			      g->groups == 1 && g->oh == g->h && g->ow == g->w;

	for (int64_t p0 = 0; p0 < total; p0 += tile) {
		int64_t np = min64(tile, total - p0);
		const float *dpre = act_back(v, skip_act,
					     pre ? pre + p0 * g->cout : NULL,
					     io->out + p0 * g->cout,
					     dy + p0 * g->cout, dpre_buf,
					     (size_t)np, (size_t)g->cout);
		if (pointwise) {
			cnnviz__gemm(np, g->cin, g->cout, dpre, g->cout, wt,
				     g->cin, dx + p0 * g->cin, g->cin, 1);
			continue;
		}
		for (int64_t gi = 0; gi < g->groups; gi++) {
			cnnviz__gemm(np, kd, og, dpre + gi * og, g->cout,
				     wt + gi * og * kd, kd, dcol, kd, 0);
			/* col2im: every tap back where it came from */
			for (int64_t q = 0; q < np; q++) {
				int64_t p = p0 + q, b = p / ohw, r = p % ohw;
				int64_t oy = r / g->ow, ox = r % g->ow;
				float *img = dx + b * g->h * g->w * g->cin + gi * cg;
				const float *src = dcol + q * kd;
				for (int64_t i = 0; i < g->kh; i++) {
					int64_t iy = oy * g->sh + i * g->dh - g->pad_t;
					if (iy < 0 || iy >= g->h)
						continue;
					for (int64_t j = 0; j < g->kw; j++) {
						int64_t ix = ox * g->sw + j * g->dw - g->pad_l;
						if (ix < 0 || ix >= g->w)
							continue;
						float *o = img + (iy * g->w + ix) * g->cin;
						const float *s = src + (i * g->kw + j) * cg;
						for (int64_t c = 0; c < cg; c++)
							o[c] += s[c];
					}
				}
			}
		}
	}
}

/* ------------------------------------------------ Depthwise, Separable */

static void depthwise_back(const struct cnnviz__conv_view *v,
			   const struct cnnviz__io *io, const float *dy,
			   float *dx, int skip_act)
{
	const struct cnnviz__conv_geom *g = v->g;
	const int64_t cm = g->cin * g->mult, sep = v->kind == CNNVIZ__CONV_SEPARABLE;
	const int64_t row = g->ow * g->cout, in_px = g->h * g->w * g->cin;
	float *dpre_buf = io->scratch, *pre_row = dpre_buf + row;
	float *dmid = pre_row + row, *mid = dmid + g->ow * cm;
	float *kbuf = mid + g->ow * cm, *pwt = kbuf + g->kh * g->kw * cm;
	const float *k = dw_kernel(v, kbuf);
	const int pre = needs_pre(v, skip_act);

	if (sep)
		for (int64_t r = 0; r < cm; r++)
			for (int64_t o = 0; o < g->cout; o++)
				pwt[o * cm + r] = v->pw[r * g->cout + o];
	for (int64_t b = 0; b < io->batch; b++) {
		const float *x = io->in[0] + b * in_px;
		for (int64_t oy = 0; oy < g->oh; oy++) {
			int64_t off = (b * g->oh + oy) * row;
			if (pre && !sep) {
				cnnviz__depthwise_rows(g, x, k, v->bias, oy,
						       oy + 1, pre_row);
			} else if (pre) {
				cnnviz__depthwise_rows(g, x, k, NULL, oy,
						       oy + 1, mid);
				for (int64_t ox = 0; ox < g->ow; ox++)
					for (int64_t o = 0; o < g->cout; o++)
						pre_row[ox * g->cout + o] =
							v->bias ? v->bias[o] : 0.0f;
				cnnviz__gemm(g->ow, g->cout, cm, mid, cm, v->pw,
					     g->cout, pre_row, g->cout, 1);
			}
			const float *d = act_back(v, skip_act,
						  pre ? pre_row : NULL,
						  io->out + off, dy + off,
						  dpre_buf, (size_t)g->ow,
						  (size_t)g->cout);
			if (sep) {
				cnnviz__gemm(g->ow, cm, g->cout, d, g->cout,
					     pwt, cm, dmid, cm, 0);
				d = dmid;
			}
			dw_row_back(g, k, oy, d, dx + b * in_px);
		}
	}
}

/* ------------------------------------------------------- Conv2DTranspose */

static void transpose_back(const struct cnnviz__conv_view *v,
			   const struct cnnviz__io *io, const float *dy,
			   float *dx, int skip_act)
{
	const struct cnnviz__conv_geom *g = v->g;
	const int64_t kd = g->kh * g->kw * g->cout, hw = g->h * g->w;
	const int64_t opx = g->oh * g->ow, total = io->batch * hw;
	const int64_t tile = tile_for(kd, hw);
	const size_t nout = (size_t)(io->batch * opx * g->cout);
	float *dcol = io->scratch, *kflip = dcol + tile * kd;
	float *packed = kflip + kd * g->cin, *dpre_buf = packed + kd * g->cin;
	const float *k = v->kernel, *pre = NULL;

	if (v->flip) {
		/* (kh,kw,cout,cin) with kh, kw reversed, as the forward uses */
		for (int64_t i = 0; i < g->kh; i++)
			for (int64_t j = 0; j < g->kw; j++)
				memcpy(kflip + (i * g->kw + j) * g->cout * g->cin,
				       v->kernel + ((g->kh - 1 - i) * g->kw +
						    (g->kw - 1 - j)) * g->cout * g->cin,
				       (size_t)(g->cout * g->cin) * sizeof *kflip);
		k = kflip;
	}
	if (needs_pre(v, skip_act)) {
		int64_t ft = cnnviz__conv2d_transpose_tile(g);
		float *fs = dpre_buf + nout, *p = fs + ft * kd;
		cnnviz__conv2d_transpose_pack(g, v->kernel, v->flip, packed);
		cnnviz__conv2d_transpose(g, io->batch, ft, io->in[0], packed,
					 v->bias, NULL, p, fs);
		pre = p;
	}
	const float *dpre = act_back(v, skip_act, pre, io->out, dy, dpre_buf,
				     (size_t)(io->batch * opx), (size_t)g->cout);

	for (int64_t p0 = 0; p0 < total; p0 += tile) {
		int64_t np = min64(tile, total - p0);
		for (int64_t q = 0; q < np; q++) {
			int64_t p = p0 + q, b = p / hw, r = p % hw;
			int64_t iy = r / g->w, ix = r % g->w;
			const float *db = dpre + b * opx * g->cout;
			for (int64_t i = 0; i < g->kh; i++) {
				int64_t oy = iy * g->sh + i * g->dh - g->pad_t;
				for (int64_t j = 0; j < g->kw; j++) {
					int64_t ox = ix * g->sw + j * g->dw - g->pad_l;
					float *d = dcol + q * kd + (i * g->kw + j) * g->cout;
					if (oy < 0 || oy >= g->oh || ox < 0 || ox >= g->ow)
						memset(d, 0, (size_t)g->cout * sizeof *d);
					else
						memcpy(d, db + (oy * g->ow + ox) * g->cout,
						       (size_t)g->cout * sizeof *d);
				}
			}
		}
		cnnviz__gemm(np, g->cin, kd, dcol, kd, k, g->cin,
			     dx + p0 * g->cin, g->cin, 1);
	}
}

/* ------------------------------------------------------------------ ops */

void cnnviz__conv_backward_impl(const struct cnnviz__layer *l,
				const struct cnnviz__io *io, const float *dy,
				float *const *dx, int skip_act)
{
	struct cnnviz__conv_view v;
	cnnviz__conv_view(l, &v);
	switch (v.kind) {
	case CNNVIZ__CONV_PLAIN:
		conv2d_back(l, &v, io, dy, dx[0], skip_act);
		break;
	case CNNVIZ__CONV_DEPTHWISE:
	case CNNVIZ__CONV_SEPARABLE:
		depthwise_back(&v, io, dy, dx[0], skip_act);
		break;
	case CNNVIZ__CONV_TRANSPOSE:
		transpose_back(&v, io, dy, dx[0], skip_act);
		break;
	}
}

void cnnviz__conv2d_backward(const struct cnnviz__layer *l,
			     const struct cnnviz__io *io, const float *dy,
			     float *const *dx)
{
	cnnviz__conv_backward_impl(l, io, dy, dx, 0);
}

void cnnviz__depthwise_conv2d_backward(const struct cnnviz__layer *l,
				       const struct cnnviz__io *io,
				       const float *dy, float *const *dx)
{
	cnnviz__conv_backward_impl(l, io, dy, dx, 0);
}

void cnnviz__separable_conv2d_backward(const struct cnnviz__layer *l,
				       const struct cnnviz__io *io,
				       const float *dy, float *const *dx)
{
	cnnviz__conv_backward_impl(l, io, dy, dx, 0);
}

void cnnviz__conv2d_transpose_backward(const struct cnnviz__layer *l,
				       const struct cnnviz__io *io,
				       const float *dy, float *const *dx)
{
	cnnviz__conv_backward_impl(l, io, dy, dx, 0);
}

double cnnviz__conv_preact_unit(const struct cnnviz__layer *l,
				const float *x, int64_t unit)
{
	struct cnnviz__conv_view v;
	cnnviz__conv_view(l, &v);
	const struct cnnviz__conv_geom *g = v.g;
	if (v.kind != CNNVIZ__CONV_PLAIN || v.oihw || v.flip)
		return NAN;
	const int64_t cg = g->cin / g->groups, og = g->cout / g->groups;
	int64_t co = unit % g->cout, px = unit / g->cout;
	int64_t oy = px / g->ow, ox = px % g->ow, gi = co / og;
	double acc = v.bias ? v.bias[co] : 0.0;
	for (int64_t i = 0; i < g->kh; i++) {
		int64_t iy = oy * g->sh + i * g->dh - g->pad_t;
		if (iy < 0 || iy >= g->h)
			continue;
		for (int64_t j = 0; j < g->kw; j++) {
			int64_t ix = ox * g->sw + j * g->dw - g->pad_l;
			if (ix < 0 || ix >= g->w)
				continue;
			const float *xi = x + (iy * g->w + ix) * g->cin + gi * cg;
			const float *k = v.kernel + (i * g->kw + j) * cg * g->cout;
			for (int64_t c = 0; c < cg; c++)
				acc += (double)xi[c] * k[c * g->cout + co];
		}
	}
	return acc;
}
