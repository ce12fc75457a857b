/*
 * Pooling kernels on NHWC tensors. The 2-D poolings run each output
 * pixel's window through the running instruction set's vector kernel
 * (isa_body.h); the global ones stay here, their inner loops over the
 * channels in blocks of 8 with a fixed trip count, which GCC vectorises
 * even at -O2 (its "very cheap" cost model refuses unknown trip counts).
 */
#include <string.h>

#include "isa.h"

#define BLK 8

/* y[i] = max(y[i], x[i]) for i < c. */
static inline void row_max(float *restrict y, const float *restrict x,
			   int64_t c)
{
	int64_t i = 0;
	for (; i + BLK <= c; i += BLK)
		for (int k = 0; k < BLK; k++)
			y[i + k] = x[i + k] > y[i + k] ? x[i + k] : y[i + k];
	for (; i < c; i++)
		y[i] = x[i] > y[i] ? x[i] : y[i];
}

int cnnviz__pool_geometry(int64_t n, int64_t k, int64_t s, int same,
			  int64_t *out, int64_t *pad_before)
{
	/* Bounds keep every product below in int64_t (n is at most 2^40). */
	if (n < 1 || k < 1 || s < 1 || k > (INT64_C(1) << 30) ||
	    s > (INT64_C(1) << 30))
		return -1;
	if (!same) {
		if (n < k)
			return -1;
		*out = (n - k) / s + 1;
		*pad_before = 0;
		return 0;
	}
	/* TensorFlow's rule: the odd pixel of padding goes after. */
	int64_t o = (n + s - 1) / s;
	int64_t total = (o - 1) * s + k - n;
	*out = o;
	*pad_before = total > 0 ? total / 2 : 0;
	return 0;
}

/*
 * Window of output position o along one axis, clipped to the input:
 * [*lo, *hi). With TF 'same' padding pad_before < k and (o-1)*s < n, so
 * every window holds at least one real element.
 */
static inline void window(int64_t o, int64_t s, int64_t k, int64_t pad,
			  int64_t n, int64_t *lo, int64_t *hi)
{
	int64_t a = o * s - pad;
	int64_t b = a + k;
	*lo = a < 0 ? 0 : a;
	*hi = b > n ? n : b;
}

/* Both 2-D poolings: every output pixel's clipped window through the
   vectorised pixel kernel of the running instruction set. */
static void pool2d(const struct cnnviz__pool2d *p, int64_t n, const float *x,
		   float *y, int avg)
{
	const struct cnnviz__isa *isa = cnnviz__isa_best();
	const int64_t c = p->c;
	for (int64_t b = 0; b < n; b++) {
		const float *xb = x + b * p->h * p->w * c;
		for (int64_t oy = 0; oy < p->oh; oy++) {
			int64_t y0, y1;
			window(oy, p->sh, p->kh, p->pad_t, p->h, &y0, &y1);
			for (int64_t ox = 0; ox < p->ow; ox++) {
				int64_t x0, x1;
				window(ox, p->sw, p->kw, p->pad_l, p->w, &x0,
				       &x1);
				int64_t cnt = (y1 - y0) * (x1 - x0);
				isa->pool_px(xb + (y0 * p->w + x0) * c, c,
					     p->w * c, y1 - y0, x1 - x0, c, avg,
					     (float)(1.0 / (double)cnt), y);
				y += c;
			}
		}
	}
}

/* x is (N,H,W,C), y is (N,OH,OW,C). Padding is -inf: it never wins, so
   the clipped window gives the same maximum. */
void cnnviz__pool_max2d(const struct cnnviz__pool2d *p, int64_t n,
			const float *restrict x, float *restrict y)
{
	pool2d(p, n, x, y, 0);
}

/*
 * x is (N,H,W,C), y is (N,OH,OW,C). Divides by the number of real
 * elements in the window, as TensorFlow does for 'same' padding.
 */
void cnnviz__pool_avg2d(const struct cnnviz__pool2d *p, int64_t n,
			const float *restrict x, float *restrict y)
{
	pool2d(p, n, x, y, 1);
}

/*
 * Channel chunk summed at once in double: large maps (224x224) lose
 * several digits when summed in float, and a fixed-size chunk lets the
 * accumulators live on the stack.
 */
#define GCHUNK 64

/* x is (N,HW,C), y is (N,C): the mean over HW. */
void cnnviz__pool_global_avg(int64_t n, int64_t hw, int64_t c,
			     const float *restrict x, float *restrict y)
{
	double acc[GCHUNK];
	for (int64_t b = 0; b < n; b++) {
		const float *xb = x + b * hw * c;
		for (int64_t c0 = 0; c0 < c; c0 += GCHUNK) {
			int64_t m = c - c0 < GCHUNK ? c - c0 : GCHUNK;
			memset(acc, 0, sizeof acc);
			const float *xp = xb + c0;
			if (m == GCHUNK) {
				for (int64_t i = 0; i < hw; i++, xp += c)
					for (int k = 0; k < GCHUNK; k++)
						acc[k] += xp[k];
			} else {
				for (int64_t i = 0; i < hw; i++, xp += c)
					for (int64_t k = 0; k < m; k++)
						acc[k] += xp[k];
			}
			for (int64_t k = 0; k < m; k++)
				y[c0 + k] = (float)(acc[k] / (double)hw);
		}
		y += c;
	}
}

/* x is (N,HW,C), y is (N,C): the maximum over HW. */
void cnnviz__pool_global_max(int64_t n, int64_t hw, int64_t c,
			     const float *restrict x, float *restrict y)
{
	for (int64_t b = 0; b < n; b++) {
		const float *xb = x + b * hw * c;
		memcpy(y, xb, (size_t)c * sizeof *y);
		for (int64_t i = 1; i < hw; i++)
			row_max(y, xb + i * c, c);
		y += c;
	}
}
