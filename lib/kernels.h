/*
 * Pure math kernels on float arrays. No allocation, no errors: callers
 * validated every size. Tests and benchmarks call them directly.
 * Shapes are written as comments: x is (N,H,W,C) means NHWC, C fastest.
 */
#ifndef CNNVIZ_KERNELS_H
#define CNNVIZ_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/*
 * C (M,N), row stride ldc  =  A (M,K), row stride lda  x  B (K,N), row
 * stride ldb; added to C when accumulate is non-zero.
 */
void cnnviz__gemm(int64_t M, int64_t N, int64_t K, const float *A,
		  int64_t lda, const float *B, int64_t ldb, float *C,
		  int64_t ldc, int accumulate);

/*
 * Applies an activation in place to `rows` rows of `cols` values
 * (softmax normalises each row).
 */
void cnnviz__act_apply(const struct cnnviz__act *a, float *x, size_t rows,
		       size_t cols);

/* ---- family kernels are declared below, one block per family file ---- */

/* ---- conv_kernels.c (gemm.c above) ---- */

/*
 * One 2-D convolution, NHWC, per sample. Forward convs: pad_t/pad_l are
 * the zero rows/columns before the input. Conv2DTranspose: (h,w,cin) is
 * its input, (oh,ow,cout) its output, pad_t/pad_l the rows/columns
 * cropped from the top/left of the full transposed convolution.
 */
struct cnnviz__conv_geom {
	int64_t h, w, cin;    /* input */
	int64_t oh, ow, cout; /* output (separable: the pointwise filters) */
	int64_t kh, kw;
	int64_t sh, sw;       /* strides */
	int64_t dh, dw;       /* dilation */
	int64_t pad_t, pad_l;
	int64_t groups;       /* Conv2D: cin and cout split into groups */
	int64_t mult;         /* depthwise / separable: depth_multiplier */
};

/*
 * Output length and padding before along one axis: n input, kernel k,
 * stride s, dilation d, TensorFlow rules ('same': ceil(n/s), total pad
 * max((out-1)*s + (k-1)*d+1 - n, 0), the extra one after). -1 if the
 * window does not fit ('valid') or k, s, d are outside [1, 2^20].
 */
int cnnviz__conv_geometry(int64_t n, int64_t k, int64_t s, int64_t d,
			  int same, int64_t *out, int64_t *pad_before);
/*
 * Conv2DTranspose output length (Keras deconv_length; out_pad < 0: none)
 * and the crop before = the forward conv's 'same' padding. -1 if the
 * output would be empty or a value is out of range.
 */
int cnnviz__deconv_geometry(int64_t n, int64_t k, int64_t s, int64_t d,
			    int same, int64_t out_pad, int64_t *out,
			    int64_t *crop_before);

/* Output pixels per im2col tile, and the scratch floats for that tile
   (0 for 1x1 stride-1 convs, which read the input in place). -1: overflow. */
int64_t cnnviz__conv2d_tile(const struct cnnviz__conv_geom *g);
int cnnviz__conv2d_scratch(const struct cnnviz__conv_geom *g, int64_t tile,
			   size_t *floats);
/*
 * y (n,oh,ow,cout) = act(conv(x (n,h,w,cin), k (kh,kw,cin/groups,cout))
 * + bias (cout; NULL: none)). act NULL: linear. scratch: see above.
 */
void cnnviz__conv2d(const struct cnnviz__conv_geom *g, int64_t n,
		    int64_t tile, const float *x, const float *k,
		    const float *bias, const struct cnnviz__act *act, float *y,
		    float *scratch);

/*
 * Output rows [oy0, oy1) of one sample: y (oy1-oy0, ow, cin*mult) =
 * depthwise(x (h,w,cin), k (kh,kw,cin,mult)) + bias (cin*mult; NULL:
 * none); output channel c*mult+m.
 */
void cnnviz__depthwise_rows(const struct cnnviz__conv_geom *g,
			    const float *x, const float *k, const float *bias,
			    int64_t oy0, int64_t oy1, float *y);
/* y (n,oh,ow,cin*mult) = act(depthwise(x (n,h,w,cin)) + bias). */
void cnnviz__depthwise_conv2d(const struct cnnviz__conv_geom *g, int64_t n,
			      const float *x, const float *k,
			      const float *bias,
			      const struct cnnviz__act *act, float *y);

/* Output rows per separable tile; scratch = rows * ow * cin * mult. */
int64_t cnnviz__separable_tile(const struct cnnviz__conv_geom *g);
/*
 * y (n,oh,ow,cout) = act(depthwise(x, dk (kh,kw,cin,mult)) . pk
 * (cin*mult, cout) + bias (cout; NULL: none)).
 */
void cnnviz__separable_conv2d(const struct cnnviz__conv_geom *g, int64_t n,
			      int64_t tile_rows, const float *x,
			      const float *dk, const float *pk,
			      const float *bias,
			      const struct cnnviz__act *act, float *y,
			      float *scratch);

/* Input pixels per Conv2DTranspose tile; scratch = tile*kh*kw*cout. */
int64_t cnnviz__conv2d_transpose_tile(const struct cnnviz__conv_geom *g);
/* kt (cin, kh*kw*cout) = k (kh,kw,cout,cin) regrouped for the GEMM;
   flip: k is a true-convolution (Theano) kernel, reversed in kh, kw. */
void cnnviz__conv2d_transpose_pack(const struct cnnviz__conv_geom *g,
				   const float *k, int flip, float *kt);
/* y (n,oh,ow,cout) = act(conv_transpose(x (n,h,w,cin), kt) + bias). */
void cnnviz__conv2d_transpose(const struct cnnviz__conv_geom *g, int64_t n,
			      int64_t tile, const float *x, const float *kt,
			      const float *bias,
			      const struct cnnviz__act *act, float *y,
			      float *scratch);

/*
 * dst (kh,kw,cin,cout) from src (kh,kw,cin,cout), or from src
 * (cout,cin,kh,kw) when oihw (Keras 1 'th' kernels); flip reverses kh and
 * kw (Keras 1 Theano kernels, true convolution).
 */
void cnnviz__conv_kernel_to_hwio(int64_t kh, int64_t kw, int64_t cin,
				 int64_t cout, const float *src, int oihw,
				 int flip, float *dst);
/*
 * col (np, kh*kw*cg) = the receptive fields of output pixels p0.. (batch
 * included) of x (n,h,w,cin), channels [c0, c0+cg); zeros in the padding.
 */
void cnnviz__im2col(const struct cnnviz__conv_geom *g, const float *x,
		    int64_t p0, int64_t np, int64_t c0, int64_t cg,
		    float *restrict col);

/* ---- cpu.c, gemm.c, conv_fast.c: the fast paths (see lib/isa.h) ---- */

/*
 * Kernels per instruction set, picked once per process: the best the CPU
 * runs, or the environment's CNNVIZ_ISA (avx512, avx2, neon, generic).
 * named: NULL if not compiled in or not supported by this CPU.
 */
struct cnnviz__isa;
const struct cnnviz__isa *cnnviz__isa_best(void);
const struct cnnviz__isa *cnnviz__isa_named(const char *name);
const char *cnnviz__isa_name(const struct cnnviz__isa *isa);

/* B (k, n) packed for isa's micro-kernels (cnnviz__pack). */
struct cnnviz__packed {
	const struct cnnviz__isa *isa;
	int64_t k, n;
	const float *data;
	int pairs; /* packed in k pairs (cnnviz__pack_pairs) */
};
/* Floats of the packed copy of a (k, n) matrix; -1 on overflow. */
int cnnviz__pack_floats(const struct cnnviz__isa *isa, int64_t k, int64_t n,
			size_t *floats);
/* dst = b (k, n), row stride ldb, packed. */
void cnnviz__pack(const struct cnnviz__isa *isa, int64_t k, int64_t n,
		  const float *b, int64_t ldb, float *dst);
/*
 * Whether n columns whose rows are read kc at a time (a conv tap's
 * channels; all of k for a plain GEMM) are best packed in k pairs, for
 * isa's pair kernels (narrow outputs); then cnnviz__pack_pairs packs them
 * in the same number of floats.
 */
int cnnviz__pairs_ok(const struct cnnviz__isa *isa, int64_t kc, int64_t n);
void cnnviz__pack_pairs(const struct cnnviz__isa *isa, int64_t k, int64_t n,
			const float *b, int64_t ldb, float *dst);
/*
 * y (m, n), row stride ldy = post(act(x (m, k), row stride ldx . w +
 * bias)); bias (n) and act (NULL: linear) are the op's own, post the
 * planner's epilogue (NULL: none; its residual laid out like y). Threads
 * split rows and columns, never k: results do not depend on pool.
 */
void cnnviz__gemm_packed(int64_t m, const float *x, int64_t ldx,
			 const struct cnnviz__packed *w, const float *bias,
			 const struct cnnviz__act *act,
			 const struct cnnviz__epilogue *post, float *y,
			 int64_t ldy, struct cnnviz__pool *pool);

/*
 * A Conv2D planned at setup (geometry, kernel path, per-worker scratch)
 * and packed at finish. Paths: DIRECT (1x1, stride 1, no padding: the
 * input is the GEMM's A), INDIRECT (the GEMM reads the image through a
 * pointer per row and tap; copying rows for an im2col GEMM measured
 * slower on every shape, even 1-3 input channels), FEWC (up to 4 input
 * channels, vectors across output channels: RGB stems), CHANNEL1 (one input
 * channel, unit stride along x: vectors across output pixels).
 */
enum {
	CNNVIZ__CONV_DIRECT,
	CNNVIZ__CONV_INDIRECT,
	CNNVIZ__CONV_CHANNEL1,
	CNNVIZ__CONV_FEWC
};
struct cnnviz__conv_plan {
	struct cnnviz__conv_geom g;
	const struct cnnviz__isa *isa;
	int path;
	int pairs;            /* kernel packed in k pairs */
	size_t group_floats;  /* packed kernel floats per group */
	const float *w;       /* groups x packed (kh*kw*cg, cout/groups) */
	const float *zeros;   /* cin/groups zeros: taps in the padding */
};
/* Fills cp (but w, zeros) for isa (NULL: cnnviz__isa_best()); *scratch:
   floats per worker, *wfloats: the packed kernel's, *zfloats: the zeros'.
   -1 on overflow. */
int cnnviz__conv_plan_init(struct cnnviz__conv_plan *cp,
			   const struct cnnviz__conv_geom *g,
			   const struct cnnviz__isa *isa, size_t *scratch,
			   size_t *wfloats, size_t *zfloats);
/* w = k (kh,kw,cin/groups,cout) packed; zeros: zfloats zeroed floats. */
void cnnviz__conv_plan_pack(struct cnnviz__conv_plan *cp, const float *k,
			    float *w, const float *zeros);
/*
 * y (n,oh,ow,cout) = post(act(conv(x (n,h,w,cin)) + bias)); worker i
 * uses scratch + i * stride floats.
 */
void cnnviz__conv_plan_run(const struct cnnviz__conv_plan *cp, int64_t n,
			   const float *x, const float *bias,
			   const struct cnnviz__act *act,
			   const struct cnnviz__epilogue *post, float *y,
			   float *scratch, size_t stride,
			   struct cnnviz__pool *pool);
/* y (n,oh,ow,cin*mult) = post(act(depthwise(x (n,h,w,cin), k) + bias)),
   k (kh,kw,cin,mult), with isa's kernels. */
void cnnviz__depthwise_run(const struct cnnviz__isa *isa,
			   const struct cnnviz__conv_geom *g, int64_t n,
			   const float *x, const float *k, const float *bias,
			   const struct cnnviz__act *act,
			   const struct cnnviz__epilogue *post, float *y,
			   struct cnnviz__pool *pool);
/*
 * A 1x1 conv whose output only the depthwise half reads (MobileNet's
 * expand): computed row by row inside the tiles, into a ring of kh rows
 * per worker (after the tile, tile_rows * ow * cin * mult floats, in
 * scratch: CNNVIZ__RING_ROWS rows at most, multiplier 1, dilation 1, an
 * instruction set with dw_row). No residual in its epilogue.
 */
#define CNNVIZ__RING_ROWS 8
struct cnnviz__expand {
	const struct cnnviz__packed *w; /* (cin of x, cin of the depthwise) */
	const float *bias;              /* NULL: none */
	const struct cnnviz__act *act;
	const struct cnnviz__epilogue *post; /* NULL: none */
	const float *x;                 /* (n, h, w, its cin) */
};

/* The depthwise half's own bias, activation and epilogue. */
struct cnnviz__dw_stage {
	const float *bias; /* NULL: none */
	const struct cnnviz__act *act;
	const struct cnnviz__epilogue *post; /* NULL: none; no residual */
};
/*
 * y (n,oh,ow,cout) = post(act(d . pw + bias)), d = depthwise(x, dk), or
 * with dws d = dws->post(dws->act(depthwise(x, dk) + dws->bias)), the
 * very operations cnnviz__depthwise_run performs: a DepthwiseConv2D read
 * only by a 1x1 Conv2D (fuse.c) never leaves the cache. In tiles of at
 * most tile_rows output rows (cnnviz__separable_tile, cnnviz__dwpw_tile;
 * fewer when the workers need more tiles); worker i's scratch
 * (tile_rows * ow * cin * mult floats) at scratch + i * stride.
 */
void cnnviz__separable_run(const struct cnnviz__conv_geom *g, int64_t n,
			   int64_t tile_rows, const float *x, const float *dk,
			   const struct cnnviz__packed *pw, const float *bias,
			   const struct cnnviz__act *act,
			   const struct cnnviz__epilogue *post, float *y,
			   float *scratch, size_t stride,
			   struct cnnviz__pool *pool,
			   const struct cnnviz__dw_stage *dws,
			   const struct cnnviz__expand *ex);
/* Rows per tile of a 1x1 conv (geometry pw) reading a depthwise conv. */
int64_t cnnviz__dwpw_tile(const struct cnnviz__conv_geom *pw);

/* ---- dense.c ---- */

/* y (rows,units) = x (rows,in) . kernel (in,units) + bias (units; NULL: none). */
void cnnviz__dense_fwd(int64_t rows, int64_t in, int64_t units,
		       const float *x, const float *kernel, const float *bias,
		       float *y);

/* ---- norm.c ---- */

/*
 * y = x * scale[j] + shift[j] over x viewed as (outer, c, inner), j the
 * middle index. y may equal x.
 */
void cnnviz__norm_affine(int64_t outer, int64_t c, int64_t inner,
			 const float *x, const float *scale,
			 const float *shift, float *y);
/*
 * BatchNormalization folded in double: scale = gamma / sqrt(var + eps),
 * shift = beta - mean * scale; gamma/beta NULL mean 1/0. Arrays are (c).
 */
void cnnviz__norm_bn_fold(int64_t c, const float *gamma, const float *beta,
			  const float *mean, const float *var, double eps,
			  float *scale, float *shift);
/* Normalization folded: scale = 1 / max(sqrt(var), 1e-7), shift = -mean * scale. */
void cnnviz__norm_standardize_fold(int64_t c, const float *mean,
				   const float *var, float *scale,
				   float *shift);
/* y (n) = x (n) * scale + offset. y may equal x. */
void cnnviz__norm_rescale(int64_t n, const float *x, float scale,
			  float offset, float *y);

/* ---- pool_kernels.c ---- */

/* One 2-D pooling, NHWC. pad_t/pad_l: padding before (TF 'same'), or 0. */
struct cnnviz__pool2d {
	int64_t h, w, c;   /* input */
	int64_t oh, ow;    /* output */
	int64_t kh, kw;    /* pool_size */
	int64_t sh, sw;    /* strides */
	int64_t pad_t, pad_l;
};

/*
 * Output size and padding before along one axis of n, pool k, stride s;
 * same != 0: TF rule total = max((ceil(n/s)-1)*s + k - n, 0), before =
 * total/2. Returns -1 if the window does not fit ('valid', n < k) or a
 * size is out of range (< 1 or > 2^30 for k, s).
 */
int cnnviz__pool_geometry(int64_t n, int64_t k, int64_t s, int same,
			  int64_t *out, int64_t *pad_before);
/* x (n,h,w,c) -> y (n,oh,ow,c); max ignores padding (TF pads with -inf). */
void cnnviz__pool_max2d(const struct cnnviz__pool2d *p, int64_t n,
			const float *restrict x, float *restrict y);
/* Average over the real (non-padded) elements of each window. */
void cnnviz__pool_avg2d(const struct cnnviz__pool2d *p, int64_t n,
			const float *restrict x, float *restrict y);
/* x (n,hw,c) -> y (n,c): mean (summed in double) / maximum over hw. */
void cnnviz__pool_global_avg(int64_t n, int64_t hw, int64_t c,
			     const float *restrict x, float *restrict y);
void cnnviz__pool_global_max(int64_t n, int64_t hw, int64_t c,
			     const float *restrict x, float *restrict y);

/* ---- layers/activation.c ---- */

/*
 * y (rows,cols) = a(x (rows,cols)); softmax normalises each row. y equals x
 * or does not overlap it. cnnviz__act_apply is the in-place form.
 */
void cnnviz__act_forward(const struct cnnviz__act *a, const float *x,
			 float *y, size_t rows, size_t cols);
/* Softmax of x (outer,n,inner) along n, the sum in double; y may equal x. */
void cnnviz__act_softmax_axis(int64_t outer, int64_t n, int64_t inner,
			      const float *x, float *y);
/* y (batch,count) = x > 0 ? x : alpha[i] * x, alpha (count). */
void cnnviz__act_prelu(int64_t batch, int64_t count, const float *alpha,
		       const float *x, float *y);
/* y (n) = x > theta ? x : 0 (ThresholdedReLU). */
void cnnviz__act_thresholded_relu(size_t n, float theta, const float *x,
				  float *y);

/* ---- layers/merge.c ---- */

enum cnnviz__merge_kind {
	CNNVIZ__MERGE_ADD,
	CNNVIZ__MERGE_SUBTRACT, /* in[0] - in[1] */
	CNNVIZ__MERGE_MULTIPLY,
	CNNVIZ__MERGE_AVERAGE,  /* sum / n_in */
	CNNVIZ__MERGE_MAXIMUM,
	CNNVIZ__MERGE_MINIMUM,
	CNNVIZ__MERGE_CONCAT
};

/*
 * y (n) = in[0] op in[1] op ... in[n_in-1], left to right, every in (n).
 * kind is one of the element-wise kinds (not CONCAT).
 */
void cnnviz__merge_elementwise(int kind, int n_in, size_t n,
			       const float *const *in, float *y);
/*
 * y (outer, sum of len) = the in[i] (outer, len[i]) side by side: a
 * concatenation along an axis, len[i] = that axis' size * inner size.
 */
void cnnviz__merge_concat(int64_t outer, int n_in, const int64_t *len,
			  const float *const *in, float *y);

/* ---- layers/shape.c ---- */

/*
 * y = x (dims[0..rank-1]) transposed: output axis i is input axis perm[i]
 * (0-based, one sample). rank 0..CNNVIZ__MAX_SRANK. y must not overlap x.
 */
void cnnviz__shape_permute(int rank, const int64_t *dims, const int *perm,
			   const float *x, float *y);
/* y (n, t+h+b, l+w+r, c) = x (n,h,w,c) with zeros around it. */
void cnnviz__shape_pad2d(int64_t n, int64_t h, int64_t w, int64_t c,
			 int64_t t, int64_t b, int64_t l, int64_t r,
			 const float *x, float *y);
/* y (n,oh,ow,c) = x (n,h,w,c)[:, t:t+oh, l:l+ow, :]. */
void cnnviz__shape_crop2d(int64_t n, int64_t h, int64_t w, int64_t c,
			  int64_t t, int64_t l, int64_t oh, int64_t ow,
			  const float *x, float *y);
/* y (n, h*sh, w*sw, c): every pixel of x (n,h,w,c) repeated sh x sw. */
void cnnviz__shape_upsample_nearest(int64_t n, int64_t h, int64_t w,
				    int64_t c, int64_t sh, int64_t sw,
				    const float *x, float *y);

/* ---- backward kernels (layers/<family>_grad.c; ops in layers/grad.h) ---- */

/* Non-zero if a's derivative needs the activation's input, not only its
   output (swish, silu, gelu; elu / leaky_relu with alpha < 0). */
int cnnviz__act_needs_input(const struct cnnviz__act *a);
/*
 * dx (rows,cols) = [dx +] dy * a'(x), with y = a(x) the forward output and
 * x its input (x may be NULL unless cnnviz__act_needs_input); softmax is
 * per row. accumulate: add to dx (then dx must not overlap dy), else
 * overwrite (dx may equal dy).
 */
void cnnviz__act_backward(const struct cnnviz__act *a, const float *x,
			  const float *y, const float *dy, float *dx,
			  size_t rows, size_t cols, int accumulate);
/* dx (outer,n,inner) += softmax backward along n, y the softmax output. */
void cnnviz__act_softmax_axis_backward(int64_t outer, int64_t n,
				       int64_t inner, const float *y,
				       const float *dy, float *dx);
/* dx (n,h,w,c) += dy (n,oh,ow,c) sent to each window's first maximum of
   x (n,h,w,c). */
void cnnviz__pool_max2d_backward(const struct cnnviz__pool2d *p, int64_t n,
				 const float *x, const float *dy, float *dx);
/* dx (n,h,w,c) += dy spread evenly over each window's real elements. */
void cnnviz__pool_avg2d_backward(const struct cnnviz__pool2d *p, int64_t n,
				 const float *dy, float *dx);

/* ---- resize.c: image resampling ---- */

/*
 * out (oh,ow,c) = in (ih,iw,c) resampled; all sizes >= 1.
 * bilinear: half-pixel centres, source coordinate (i + 0.5) * in/out - 0.5
 *   clamped to [0, n-1], no antialiasing (OpenCV INTER_LINEAR,
 *   tf.image.resize with half_pixel_centers).
 * nearest: source index floor((i + 0.5) * in/out) (PIL NEAREST).
 * area: mean of the input area the output cell covers, exact fractional
 *   weights (a box filter).
 */
void cnnviz__resize_bilinear(const float *in, int64_t ih, int64_t iw,
			     int64_t c, float *out, int64_t oh, int64_t ow);
void cnnviz__resize_nearest(const float *in, int64_t ih, int64_t iw,
			    int64_t c, float *out, int64_t oh, int64_t ow);
void cnnviz__resize_area(const float *in, int64_t ih, int64_t iw, int64_t c,
			 float *out, int64_t oh, int64_t ow);

#endif /* CNNVIZ_KERNELS_H */
