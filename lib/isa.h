/*
 * The hot kernels, compiled once per instruction set (isa_*.c include
 * isa_body.h with different vector macros and -m flags) and chosen at run
 * time by cpu.c. Only the kernel files include this header; layers use
 * the drivers declared in kernels.h.
 *
 * Every path computes one output element as one chain of multiply-adds
 * in k order, whatever the tile it falls in: results do not depend on how
 * the work is cut into tiles, so not on the thread count either.
 */
#ifndef CNNVIZ_ISA_H
#define CNNVIZ_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* Rows of a micro-tile, the most of any instruction set. */
#define CNNVIZ__MR_MAX 16

/* What an output tile's epilogue does in registers (struct cnnviz__fuse). */
#define CNNVIZ__FUSE_BIAS 0x1u   /* y += bias[c] */
#define CNNVIZ__FUSE_CLAMP1 0x2u /* y = min(max(y, lo1), hi1) */
#define CNNVIZ__FUSE_AFFINE 0x4u /* y = y * scale[c] + shift[c] */
#define CNNVIZ__FUSE_RES 0x8u    /* y += residual */
#define CNNVIZ__FUSE_CLAMP2 0x10u

/*
 * An op's own bias and activation followed by the planner's epilogue
 * (struct cnnviz__epilogue), split into what the micro-kernels do while
 * the tile is in registers (kflags) and what is left for plain C on the
 * stored tile (stages from cstage on): activations other than clamps
 * (ReLU, ReLU6) are not vectorised in the kernels.
 */
struct cnnviz__fuse {
	unsigned kflags;
	const float *bias;
	float lo1, hi1, lo2, hi2;
	const float *scale, *shift;
	const float *residual;   /* the op's whole output's residual, or NULL */
	int cstage;              /* first stage C applies (FUSE_STAGE_*) */
	int rowwise;             /* a softmax: C stages run on whole rows */
	struct cnnviz__act act1, act2;
};

enum {
	CNNVIZ__STAGE_ACT1 = 1,
	CNNVIZ__STAGE_AFFINE,
	CNNVIZ__STAGE_RES,
	CNNVIZ__STAGE_ACT2,
	CNNVIZ__STAGE_NONE /* nothing left for C */
};

/*
 * One micro-tile: c (rows, cols) = fuse(sum over taps t and k < kc of
 * A(r, t)[k] * b[(t*kc + k) * width + j]). b is one packed panel. A(r, t)
 * = a[t*mr + r], or a[r] + toff[t] when toff is set (a window inside the
 * image: the taps are the same steps from every row's first one).
 * load_c: add c's values to the sums (K split in blocks).
 */
struct cnnviz__tile {
	int rows, cols, width, load_c;
	int mr;           /* a's stride between taps */
	/* One row only: np (1..4) full panels, pstride floats apart, whose
	   outputs follow each other in c (a GEMV keeps more sums going). */
	int np;
	int64_t pstride;
	/* nrows > 0: a strip of nrows rows pa + r * lda (one tap; a, rows,
	   toff unused), done in tiles of mr rows by one call. */
	int64_t nrows, lda;
	const float *pa;
	int64_t ntaps, kc;
	const float *const *a;
	const int64_t *toff;
	const float *b;
	float *c;
	int64_t ldc;
	const float *res; /* residual tile, stride ldc, when FUSE_RES */
	int64_t col0;     /* column of c[0] in bias, scale, shift */
};

/*
 * One output row oy of a depthwise conv, multiplier 1: y (ow, cin). The
 * input rows it reads are x's, or with `rows` input row iy (inside
 * [0, h)) is rows[iy - row0]: rows computed on the fly (conv_fast.c).
 */
struct cnnviz__dw_row {
	const struct cnnviz__conv_geom *g;
	const float *x;   /* one sample (h, w, cin); unused with rows */
	const float *const *rows;
	int64_t row0;
	const float *k;   /* (kh, kw, cin) */
	int64_t oy;
	float *y;
	const float *res; /* (ow, cin) when FUSE_RES */
	int64_t lo, hi;   /* 3x3: columns whose window is inside the row */
};

/* One output row oy of a Conv2D with one input channel (groups 1, unit
   stride and dilation along x, kh*kw <= CNNVIZ__C1_TAPS, cout <=
   CNNVIZ__C1_COUT): y (ow, cout). */
struct cnnviz__c1_row {
	const struct cnnviz__conv_geom *g;
	const float *x;   /* one sample (h, w) */
	const float *k;   /* (kh*kw, cout rounded up to 8), zeros past cout */
	int64_t oy;
	float *y;
	const float *res; /* (ow, cout) when FUSE_RES */
};
#define CNNVIZ__C1_TAPS 9
#define CNNVIZ__C1_COUT 256
/*
 * The same row for a Conv2D with few input channels (groups 1, dilation 1
 * along x, any stride): x is (h, w, cin), k (kh*kw*cin, cout rounded up to
 * 8); cin <= CNNVIZ__FEWC_CIN, kh <= CNNVIZ__FEWC_KH, cout a multiple of
 * 16 up to CNNVIZ__C1_COUT, and the kh zero-padded input rows an output
 * row reads, cnnviz__fewc_row_floats(g), at most CNNVIZ__FEWC_ROW floats.
 */
#define CNNVIZ__FEWC_CIN 4
#define CNNVIZ__FEWC_KH 7
#define CNNVIZ__FEWC_ROW 2048
#define CNNVIZ__FEWC_PX 8 /* output pixels per step */
static inline int64_t
cnnviz__fewc_row_floats(const struct cnnviz__conv_geom *g)
{
	/* the pixels a row's last step may read past the row, too */
	return ((g->ow + CNNVIZ__FEWC_PX - 1) * g->sw + g->kw) * g->cin;
}

/* lo, hi of struct cnnviz__dw_row for g. */
void cnnviz__dw_columns(const struct cnnviz__conv_geom *g, int64_t *lo,
			int64_t *hi);

struct cnnviz__isa {
	const char *name;
	int mr;          /* rows per micro-tile, <= CNNVIZ__MR_MAX */
	int widths[3];   /* panel widths, widest first; 0 ends the list */
	/* Outputs of at most `narrow` columns take one vector per row, which
	   leaves registers for mr_narrow rows per tile. */
	int narrow, mr_narrow;
	/* f NULL: a plain store (or add, with load_c). */
	void (*tile)(const struct cnnviz__tile *t,
		     const struct cnnviz__fuse *f);
	/*
	 * Optional: narrow panels (widths[1], widths[2]) packed in k pairs,
	 * for outputs of at most widths[1] columns and an even kc: rows per
	 * tile for each of those widths, and the kernel.
	 */
	int pairs;
	int mr_pairs[2];
	void (*tile_pairs)(const struct cnnviz__tile *t,
			   const struct cnnviz__fuse *f);
	/* Applies f's kernel stages; NULL uses the portable loop. */
	void (*dw_row)(const struct cnnviz__dw_row *r,
		       const struct cnnviz__fuse *f);
	/*
	 * y (c) = max, or mean (scale = 1/count, applied when count > 1),
	 * of the kh x kw pixels (c floats each) from x, rows dy and pixels
	 * dx floats apart, taken in row order from the first.
	 */
	void (*pool_px)(const float *x, int64_t dx, int64_t dy, int64_t kh,
			int64_t kw, int64_t c, int avg, float scale, float *y);
	/* Optional: struct cnnviz__c1_row, applying f's kernel stages. */
	/* NULL where the instruction set has none */
	void (*conv_fewc)(const struct cnnviz__c1_row *r,
			  const struct cnnviz__fuse *f);
	void (*conv_c1)(const struct cnnviz__c1_row *r,
			const struct cnnviz__fuse *f);
};

/* Widest panel of any instruction set (the unpacked GEMM's stack strip). */
#define CNNVIZ__NR_MAX 32

/* ------------------------------------------------------------ gemm.c */

void cnnviz__fuse_init(struct cnnviz__fuse *f, const float *bias,
		       const struct cnnviz__act *act,
		       const struct cnnviz__epilogue *post);
/* The stages from f->cstage on, in C, on c (rows, cols) at column col0;
   res: the residual aligned with c. */
void cnnviz__fuse_rows(const struct cnnviz__fuse *f, float *c, int64_t rows,
		       int64_t cols, int64_t ldc, int64_t col0,
		       const float *res);

/* Panels of a packed (k, n) matrix. */
int64_t cnnviz__panels(const struct cnnviz__isa *isa, int64_t n);
/* Rows per tile of a GEMM with n columns (packed in k pairs or not). */
int cnnviz__job_mr(const struct cnnviz__isa *isa, int64_t n, int pairs);

/*
 * c (m, n) = fuse(A . b), b packed (ntaps*kc, n), A's rows given by
 * rows(): a[t*mr + r] = where row r0+r's kc floats of tap t start; or it
 * returns 1 after setting only a[r], the taps being a[r] + toff[t].
 */
struct cnnviz__gemm_job {
	const struct cnnviz__isa *isa;
	int mr;           /* cnnviz__job_mr(isa, n, pairs) */
	int pairs;        /* b packed in k pairs */
	int64_t n, ntaps, kc;
	const float *b;
	float *c;
	int64_t ldc;
	const float *res; /* residual aligned with c, or NULL */
	const struct cnnviz__fuse *f;
	int (*rows)(const void *ctx, int64_t r0, int rows, const float **a);
	const void *ctx;
	const int64_t *toff;
};
/* Rows [r0, r1), panels [p0, p1); abuf: ntaps * mr pointers. */
void cnnviz__gemm_run(const struct cnnviz__gemm_job *j, int64_t r0,
		      int64_t r1, int64_t p0, int64_t p1, const float **abuf);

/* Rows a + (r - r_base) * lda. */
struct cnnviz__plain_rows {
	const float *a;
	int64_t lda, r_base;
};
int cnnviz__plain_rows(const void *ctx, int64_t r0, int rows,
		       const float **a);

/* Work split into tasks of row blocks x panel blocks, from the shape
   only (never the thread count). */
struct cnnviz__split {
	int64_t rows, panels;          /* per task */
	int64_t row_tasks, panel_tasks, tasks, n_panels;
	int panel_major;               /* consecutive tasks share panels */
};
void cnnviz__gemm_split(const struct cnnviz__isa *isa, int64_t m, int64_t n,
			int64_t k, int pairs, struct cnnviz__split *s);
void cnnviz__split_task(const struct cnnviz__split *s, int64_t task,
			int64_t m, int64_t *r0, int64_t *r1, int64_t *p0,
			int64_t *p1);

/* The instruction sets compiled in; NULL when a file was built without
   its flags or for another architecture. */
const struct cnnviz__isa *cnnviz__isa_avx512_table(void);
const struct cnnviz__isa *cnnviz__isa_avx2_table(void);
const struct cnnviz__isa *cnnviz__isa_neon_table(void);
const struct cnnviz__isa *cnnviz__isa_generic_table(void);

#endif /* CNNVIZ_ISA_H */
