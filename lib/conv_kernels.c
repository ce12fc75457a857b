/*
 * Convolution kernels on NHWC tensors: Conv2D (im2col tile -> GEMM ->
 * epilogue), DepthwiseConv2D (direct), SeparableConv2D (depthwise rows ->
 * pointwise GEMM) and Conv2DTranspose (GEMM -> col2im scatter).
 *
 * Work is done in tiles of output pixels so the im2col matrix, the GEMM
 * output and the bias/activation epilogue all stay in cache, and scratch
 * is bounded whatever the image size. Inner loops over channels run in
 * blocks of VB with a fixed trip count: GCC's -O2 cost model vectorises
 * only loops that need no scalar epilogue or alias check.
 */
#include <string.h>

#include "kernels.h"

#if defined(__AVX512F__)
#define VB 16
#else
#define VB 8
#endif

/*
 * for (i = 0; i < n; i++) BODY(i), as blocks of VB then of 8 then single
 * iterations: narrow layers (8 or 24 channels) still get full vectors.
 */
#if VB > 8
#define BLOCKED(i, n, BODY)                                                    \
	do {                                                                   \
		for (; i + VB <= (n); i += VB)                                 \
			for (int v_ = 0; v_ < VB; v_++)                        \
				BODY(i + v_);                                  \
		for (; i + 8 <= (n); i += 8)                                   \
			for (int v_ = 0; v_ < 8; v_++)                         \
				BODY(i + v_);                                  \
		for (; i < (n); i++)                                           \
			BODY(i);                                               \
	} while (0)
#else
#define BLOCKED(i, n, BODY)                                                    \
	do {                                                                   \
		for (; i + VB <= (n); i += VB)                                 \
			for (int v_ = 0; v_ < VB; v_++)                        \
				BODY(i + v_);                                  \
		for (; i < (n); i++)                                           \
			BODY(i);                                               \
	} while (0)
#endif

/* Scratch floats one tile aims at: 1 MiB, the order of an L2 cache. */
#define TILE_FLOATS (INT64_C(1) << 18)
#define TILE_MIN 64
#define TILE_MAX 1024

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* y[i] += x[i] * w[i], i < n. */
static inline void fma_row(float *restrict y, const float *restrict x,
			   const float *restrict w, int64_t n)
{
	int64_t i = 0;
#define FMA_ROW(j) (y[j] += x[j] * w[j])
	BLOCKED(i, n, FMA_ROW);
#undef FMA_ROW
}

/* y[i] += x[i], i < n. */
static inline void add_row(float *restrict y, const float *restrict x,
			   int64_t n)
{
	int64_t i = 0;
#define ADD_ROW(j) (y[j] += x[j])
	BLOCKED(i, n, ADD_ROW);
#undef ADD_ROW
}

/* y (rows, n): each row += bias (n); then the activation, row-wise. */
static void epilogue(float *y, int64_t rows, int64_t n, const float *bias,
		     const struct cnnviz__act *act)
{
	if (bias)
		for (int64_t r = 0; r < rows; r++)
			add_row(y + r * n, bias, n);
	if (act && act->kind != CNNVIZ__ACT_LINEAR)
		cnnviz__act_apply(act, y, (size_t)rows, (size_t)n);
}

/* ------------------------------------------------------------ geometry */

/* k, s, d beyond this are refused: keeps every product in int64_t. */
#define GEOM_MAX (INT64_C(1) << 20)

int cnnviz__conv_geometry(int64_t n, int64_t k, int64_t s, int64_t d,
			  int same, int64_t *out, int64_t *pad_before)
{
	if (n < 1 || n > (INT64_C(1) << 40) || k < 1 || s < 1 || d < 1 ||
	    k > GEOM_MAX || s > GEOM_MAX || d > GEOM_MAX)
		return -1;
	int64_t ke = (k - 1) * d + 1;
	if (!same) {
		if (n < ke)
			return -1;
		*out = (n - ke) / s + 1;
		*pad_before = 0;
		return 0;
	}
	*out = (n + s - 1) / s;
	*pad_before = max64((*out - 1) * s + ke - n, 0) / 2;
	return 0;
}

int cnnviz__deconv_geometry(int64_t n, int64_t k, int64_t s, int64_t d,
			    int same, int64_t out_pad, int64_t *out,
			    int64_t *crop_before)
{
	if (n < 1 || n > (INT64_C(1) << 40) || k < 1 || s < 1 || d < 1 ||
	    k > GEOM_MAX || s > GEOM_MAX || d > GEOM_MAX || out_pad >= GEOM_MAX)
		return -1;
	int64_t ke = (k - 1) * d + 1;
	int64_t o;
	if (out_pad < 0)
		o = same ? n * s : n * s + max64(ke - s, 0);
	else
		o = (n - 1) * s + ke - 2 * (same ? ke / 2 : 0) + out_pad;
	if (o < 1)
		return -1;
	*out = o;
	/* The padding of the forward conv (o -> n) this transposes. */
	*crop_before = same ? max64((n - 1) * s + ke - o, 0) / 2 : 0;
	return 0;
}

/* ---------------------------------------------------------------- conv2d */

/* 1x1, stride 1, no padding: the input already is the GEMM's A matrix. */
static int conv_is_pointwise(const struct cnnviz__conv_geom *g)
{
	return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 &&
	       g->pad_t == 0 && g->pad_l == 0 && g->oh == g->h &&
	       g->ow == g->w;
}

int64_t cnnviz__conv2d_tile(const struct cnnviz__conv_geom *g)
{
	int64_t kd = g->kh * g->kw * (g->cin / g->groups);
	int64_t t = TILE_FLOATS / max64(kd, 1);
	t = min64(max64(t, TILE_MIN), TILE_MAX);
	return min64(t, g->oh * g->ow);
}

int cnnviz__conv2d_scratch(const struct cnnviz__conv_geom *g, int64_t tile,
			   size_t *floats)
{
	size_t kd;
	if (conv_is_pointwise(g)) {
		*floats = 0;
		return 0;
	}
	if (cnnviz__mul_size((size_t)g->kh, (size_t)g->kw, &kd) ||
	    cnnviz__mul_size(kd, (size_t)(g->cin / g->groups), &kd) ||
	    cnnviz__mul_size(kd, (size_t)tile, floats))
		return -1;
	return 0;
}

/*
 * col (np, kh*kw*cg) = the receptive fields of output pixels p0.. of
 * x (n,h,w,cin), channels [c0, c0+cg); zeros where the window hangs over
 * the padding. Row order (i, j, c) matches the HWIO kernel's rows.
 */
/* d[0..n) = s[0..n) (s NULL: zeros). Runs are short in first layers
   (1-3 channels): a loop beats a library call. */
static inline void copy_run(float *restrict d, const float *restrict s,
			    int64_t n)
{
	if (n > 16) {
		if (s)
			memcpy(d, s, (size_t)n * sizeof *d);
		else
			memset(d, 0, (size_t)n * sizeof *d);
		return;
	}
	for (int64_t i = 0; i < n; i++)
		d[i] = s ? s[i] : 0.0f;
}

void cnnviz__im2col(const struct cnnviz__conv_geom *g, const float *x,
		    int64_t p0, int64_t np, int64_t c0, int64_t cg,
		    float *restrict col)
{
	const int64_t ohw = g->oh * g->ow, kd = g->kh * g->kw * cg;
	/* A whole kernel row is one contiguous run when it does not dilate
	   and takes every channel. */
	const int runs = g->dw == 1 && cg == g->cin;
	int64_t b = p0 / ohw, r = p0 % ohw, oy = r / g->ow, ox = r % g->ow;

	for (int64_t q = 0; q < np; q++) {
		int64_t iy0 = oy * g->sh - g->pad_t, ix0 = ox * g->sw - g->pad_l;
		float *dst = col + q * kd;
		const float *img = x + b * g->h * g->w * g->cin + c0;

		for (int64_t i = 0; i < g->kh; i++) {
			int64_t iy = iy0 + i * g->dh;
			float *d = dst + i * g->kw * cg;
			if (iy < 0 || iy >= g->h) {
				copy_run(d, NULL, g->kw * cg);
				continue;
			}
			const float *row = img + iy * g->w * g->cin;
			if (runs && ix0 >= 0 && ix0 + g->kw <= g->w) {
				copy_run(d, row + ix0 * g->cin, g->kw * cg);
				continue;
			}
			for (int64_t j = 0; j < g->kw; j++) {
				int64_t ix = ix0 + j * g->dw;
				copy_run(d + j * cg,
					 ix < 0 || ix >= g->w ? NULL
							      : row + ix * g->cin,
					 cg);
			}
		}
		if (++ox == g->ow) {
			ox = 0;
			if (++oy == g->oh) {
				oy = 0;
				b++;
			}
		}
	}
}

void cnnviz__conv2d(const struct cnnviz__conv_geom *g, int64_t n,
		    int64_t tile, const float *x, const float *k,
		    const float *bias, const struct cnnviz__act *act, float *y,
		    float *scratch)
{
	const int64_t cg = g->cin / g->groups, og = g->cout / g->groups;
	const int64_t kd = g->kh * g->kw * cg, total = n * g->oh * g->ow;
	const int direct = conv_is_pointwise(g);

	for (int64_t p0 = 0; p0 < total; p0 += tile) {
		int64_t np = min64(tile, total - p0);
		float *yt = y + p0 * g->cout;
		for (int64_t gi = 0; gi < g->groups; gi++) {
			const float *a;
			int64_t lda;
			if (direct) {
				a = x + p0 * g->cin + gi * cg;
				lda = g->cin;
			} else {
				cnnviz__im2col(g, x, p0, np, gi * cg, cg,
					       scratch);
				a = scratch;
				lda = kd;
			}
			cnnviz__gemm(np, og, kd, a, lda, k + gi * og, g->cout,
				     yt + gi * og, g->cout, 0);
		}
		epilogue(yt, np, g->cout, bias, act);
	}
}

/* ------------------------------------------------------------- depthwise */

/* out (cin*mult) = bias + the taps of output pixel (oy, ox) that fall
   inside x (h,w,cin); any kernel size, stride, dilation, multiplier. */
static void dw_pixel(const struct cnnviz__conv_geom *g, const float *x,
		     const float *k, const float *bias, int64_t oy,
		     int64_t ox, float *restrict out)
{
	const int64_t c = g->cin, m = g->mult, co = c * m;
	const int64_t iy0 = oy * g->sh - g->pad_t, ix0 = ox * g->sw - g->pad_l;

	if (bias)
		memcpy(out, bias, (size_t)co * sizeof *out);
	else
		memset(out, 0, (size_t)co * sizeof *out);
	for (int64_t i = 0; i < g->kh; i++) {
		int64_t iy = iy0 + i * g->dh;
		if (iy < 0 || iy >= g->h)
			continue;
		for (int64_t j = 0; j < g->kw; j++) {
			int64_t ix = ix0 + j * g->dw;
			if (ix < 0 || ix >= g->w)
				continue;
			const float *xp = x + (iy * g->w + ix) * c;
			const float *kp = k + (i * g->kw + j) * co;
			if (m == 1) {
				fma_row(out, xp, kp, c);
				continue;
			}
			for (int64_t ci = 0; ci < c; ci++)
				for (int64_t mi = 0; mi < m; mi++)
					out[ci * m + mi] +=
						xp[ci] * kp[ci * m + mi];
		}
	}
}

/*
 * 3x3, dilation 1, multiplier 1, window fully inside: the nine taps in
 * one pass over the channels (r0..r2: the window's top-left pixel on each
 * of its rows; taps of a row are c apart).
 */
static void dw3x3_pixel(int64_t c, const float *restrict r0,
			const float *restrict r1, const float *restrict r2,
			const float *restrict k, const float *restrict bias,
			float *restrict out)
{
	const float *k0 = k, *k1 = k + 3 * c, *k2 = k + 6 * c;
	int64_t i = 0;

#define DW3X3_TAPS(i)                                                          \
	(r0[i] * k0[i] + r0[c + i] * k0[c + i] + r0[2 * c + i] * k0[2 * c + i] + \
	 r1[i] * k1[i] + r1[c + i] * k1[c + i] + r1[2 * c + i] * k1[2 * c + i] + \
	 r2[i] * k2[i] + r2[c + i] * k2[c + i] + r2[2 * c + i] * k2[2 * c + i])
#define DW3X3_BIAS(i) (out[i] = bias[i] + DW3X3_TAPS(i))
#define DW3X3_NOBIAS(i) (out[i] = DW3X3_TAPS(i))
	if (bias)
		BLOCKED(i, c, DW3X3_BIAS);
	else
		BLOCKED(i, c, DW3X3_NOBIAS);
#undef DW3X3_BIAS
#undef DW3X3_NOBIAS
#undef DW3X3_TAPS
}

void cnnviz__depthwise_rows(const struct cnnviz__conv_geom *g,
			    const float *x, const float *k, const float *bias,
			    int64_t oy0, int64_t oy1, float *y)
{
	const int64_t c = g->cin, co = c * g->mult;
	const int fast = g->kh == 3 && g->kw == 3 && g->dh == 1 &&
			 g->dw == 1 && g->mult == 1;
	/* Output columns whose 3-wide window lies inside the row. */
	int64_t lo = 0, hi = 0;
	if (fast && g->w >= 3) {
		lo = min64((g->pad_l + g->sw - 1) / g->sw, g->ow);
		hi = min64((g->w - 3 + g->pad_l) / g->sw + 1, g->ow);
		hi = max64(hi, lo);
	}

	for (int64_t oy = oy0; oy < oy1; oy++) {
		float *yr = y + (oy - oy0) * g->ow * co;
		int64_t iy0 = oy * g->sh - g->pad_t;
		int64_t a = 0, b = 0;
		if (fast && iy0 >= 0 && iy0 + 3 <= g->h) {
			a = lo;
			b = hi;
		}
		for (int64_t ox = 0; ox < a; ox++)
			dw_pixel(g, x, k, bias, oy, ox, yr + ox * co);
		for (int64_t ox = a; ox < b; ox++) {
			const float *r0 = x + (iy0 * g->w + ox * g->sw -
					       g->pad_l) * c;
			dw3x3_pixel(c, r0, r0 + g->w * c, r0 + 2 * g->w * c, k,
				    bias, yr + ox * co);
		}
		for (int64_t ox = b; ox < g->ow; ox++)
			dw_pixel(g, x, k, bias, oy, ox, yr + ox * co);
	}
}

void cnnviz__depthwise_conv2d(const struct cnnviz__conv_geom *g, int64_t n,
			      const float *x, const float *k,
			      const float *bias,
			      const struct cnnviz__act *act, float *y)
{
	const int64_t in_px = g->h * g->w * g->cin;
	const int64_t out_row = g->ow * g->cin * g->mult;

	for (int64_t b = 0; b < n; b++) {
		float *yb = y + b * g->oh * out_row;
		/* Row by row keeps the activation pass in cache. */
		for (int64_t oy = 0; oy < g->oh; oy++) {
			cnnviz__depthwise_rows(g, x + b * in_px, k, bias, oy,
					       oy + 1, yb + oy * out_row);
			epilogue(yb + oy * out_row, g->ow, g->cin * g->mult,
				 NULL, act);
		}
	}
}

/* ------------------------------------------------------------- separable */

/* The depthwise tile stays in L1/L2 while the pointwise GEMM reads it, and
   small images still split into tasks for the threads. */
#define SEP_TILE_FLOATS (INT64_C(1) << 13)

int64_t cnnviz__separable_tile(const struct cnnviz__conv_geom *g)
{
	int64_t row = max64(g->ow * g->cin * g->mult, 1);
	return min64(max64(SEP_TILE_FLOATS / row, 1), g->oh);
}

/* A depthwise output tile that stays in L2 beside the 1x1 kernel. */
#define DWPW_TILE_FLOATS (INT64_C(1) << 14)

int64_t cnnviz__dwpw_tile(const struct cnnviz__conv_geom *pw)
{
	int64_t row = max64(pw->w * pw->cin, 1);
	return min64(max64(DWPW_TILE_FLOATS / row, 1), pw->h);
}

void cnnviz__separable_conv2d(const struct cnnviz__conv_geom *g, int64_t n,
			      int64_t tile_rows, const float *x,
			      const float *dk, const float *pk,
			      const float *bias,
			      const struct cnnviz__act *act, float *y,
			      float *scratch)
{
	const int64_t cm = g->cin * g->mult, in_px = g->h * g->w * g->cin;

	for (int64_t b = 0; b < n; b++) {
		for (int64_t oy = 0; oy < g->oh; oy += tile_rows) {
			int64_t rows = min64(tile_rows, g->oh - oy);
			int64_t np = rows * g->ow;
			float *yt = y + ((b * g->oh + oy) * g->ow) * g->cout;
			cnnviz__depthwise_rows(g, x + b * in_px, dk, NULL, oy,
					       oy + rows, scratch);
			cnnviz__gemm(np, g->cout, cm, scratch, cm, pk, g->cout,
				     yt, g->cout, 0);
			epilogue(yt, np, g->cout, bias, act);
		}
	}
}

/* ------------------------------------------------------------- transpose */

int64_t cnnviz__conv2d_transpose_tile(const struct cnnviz__conv_geom *g)
{
	int64_t t = TILE_FLOATS / max64(g->kh * g->kw * g->cout, 1);
	t = min64(max64(t, TILE_MIN), TILE_MAX);
	return min64(t, g->h * g->w);
}

void cnnviz__conv2d_transpose_pack(const struct cnnviz__conv_geom *g,
				   const float *k, int flip, float *kt)
{
	const int64_t kk = g->kh * g->kw;

	for (int64_t i = 0; i < g->kh; i++)
		for (int64_t j = 0; j < g->kw; j++) {
			int64_t t = flip ? (g->kh - 1 - i) * g->kw +
						   (g->kw - 1 - j)
					 : i * g->kw + j;
			const float *src = k + t * g->cout * g->cin;
			float *dst = kt + (i * g->kw + j) * g->cout;
			for (int64_t o = 0; o < g->cout; o++)
				for (int64_t c = 0; c < g->cin; c++)
					dst[c * kk * g->cout + o] =
						src[o * g->cin + c];
		}
}

void cnnviz__conv2d_transpose(const struct cnnviz__conv_geom *g, int64_t n,
			      int64_t tile, const float *x, const float *kt,
			      const float *bias,
			      const struct cnnviz__act *act, float *y,
			      float *scratch)
{
	const int64_t hw = g->h * g->w, kd = g->kh * g->kw * g->cout;
	const int64_t total = n * hw, opx = g->oh * g->ow;

	/* Start from the bias; every tap is then added where it lands. */
	for (int64_t p = 0; p < n * opx; p++) {
		if (bias)
			memcpy(y + p * g->cout, bias,
			       (size_t)g->cout * sizeof *y);
		else
			memset(y + p * g->cout, 0,
			       (size_t)g->cout * sizeof *y);
	}
	for (int64_t p0 = 0; p0 < total; p0 += tile) {
		int64_t np = min64(tile, total - p0);
		cnnviz__gemm(np, kd, g->cin, x + p0 * g->cin, g->cin, kt, kd,
			     scratch, kd, 0);
		for (int64_t q = 0; q < np; q++) {
			int64_t p = p0 + q, b = p / hw, r = p % hw;
			int64_t iy = r / g->w, ix = r % g->w;
			float *yb = y + b * opx * g->cout;
			for (int64_t i = 0; i < g->kh; i++) {
				int64_t oy = iy * g->sh + i * g->dh - g->pad_t;
				if (oy < 0 || oy >= g->oh)
					continue;
				for (int64_t j = 0; j < g->kw; j++) {
					int64_t ox = ix * g->sw + j * g->dw -
						     g->pad_l;
					if (ox < 0 || ox >= g->ow)
						continue;
					add_row(yb + (oy * g->ow + ox) * g->cout,
						scratch + q * kd +
							(i * g->kw + j) * g->cout,
						g->cout);
				}
			}
		}
	}
	if (act && act->kind != CNNVIZ__ACT_LINEAR)
		cnnviz__act_apply(act, y, (size_t)(n * opx), (size_t)g->cout);
}

/* ---------------------------------------------------------- weight prep */

void cnnviz__conv_kernel_to_hwio(int64_t kh, int64_t kw, int64_t cin,
				 int64_t cout, const float *src, int oihw,
				 int flip, float *dst)
{
	for (int64_t i = 0; i < kh; i++)
		for (int64_t j = 0; j < kw; j++) {
			int64_t si = flip ? kh - 1 - i : i;
			int64_t sj = flip ? kw - 1 - j : j;
			float *d = dst + (i * kw + j) * cin * cout;
			for (int64_t c = 0; c < cin; c++)
				for (int64_t o = 0; o < cout; o++)
					d[c * cout + o] =
						oihw ? src[((o * cin + c) * kh +
							    si) * kw + sj]
						     : src[((si * kw + sj) * cin +
							    c) * cout + o];
		}
}
