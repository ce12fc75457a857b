/*
 * The convolutions' fast paths: Conv2D through the packed GEMM (gemm.c)
 * with its rows read in place or through pointers into the image, or
 * (one input channel) vectorised across output pixels;
 * depthwise rows vectorised across channels; separable = a depthwise tile
 * kept in cache + the pointwise GEMM. Each splits its output into tasks
 * for the pool by shape alone, and every output element is computed the
 * same way whatever task holds it: results do not depend on the threads.
 */
#include <string.h>

#include "isa.h"

/* Floats a pointer takes in scratch. */
#define PTR_FLOATS ((sizeof(void *) + sizeof(float) - 1) / sizeof(float))
/* Multiply-adds per depthwise task. */
#define DW_TASK_FMAS (INT64_C(1) << 18)

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* Rounded up to 16 floats: the next worker's scratch stays 64-byte
   aligned, so the pointers kept in it are aligned too. */
static int round16(size_t n, size_t *out)
{
	if (n > SIZE_MAX - 15)
		return -1;
	*out = (n + 15) & ~(size_t)15;
	return 0;
}

/* ---------------------------------------------------------------- Conv2D */

int cnnviz__conv_plan_init(struct cnnviz__conv_plan *cp,
			   const struct cnnviz__conv_geom *g,
			   const struct cnnviz__isa *isa, size_t *scratch,
			   size_t *wfloats, size_t *zfloats)
{
	const int64_t cg = g->cin / g->groups, og = g->cout / g->groups;
	size_t taps, k, s;

	memset(cp, 0, sizeof *cp);
	cp->g = *g;
	cp->isa = isa ? isa : cnnviz__isa_best();
	/* The most rows a tile can have. */
	const int mr = cp->isa->mr_narrow > cp->isa->mr ? cp->isa->mr_narrow
							: cp->isa->mr;
	if (cnnviz__mul_size((size_t)g->kh, (size_t)g->kw, &taps) ||
	    cnnviz__mul_size(taps, (size_t)cg, &k) || k > INT64_MAX / 64 ||
	    cnnviz__pack_floats(cp->isa, (int64_t)k, og, &cp->group_floats) ||
	    cnnviz__mul_size(cp->group_floats, (size_t)g->groups, wfloats))
		return -1;
	*zfloats = (size_t)cg;
	cp->pairs = cnnviz__pairs_ok(cp->isa, cg, og);
	if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 &&
	    g->pad_t == 0 && g->pad_l == 0 && g->oh == g->h && g->ow == g->w) {
		cp->path = CNNVIZ__CONV_DIRECT;
		s = 0;
	} else if (g->cin == 1 && g->groups == 1 && g->sw == 1 &&
		   g->dw == 1 && g->cout <= CNNVIZ__C1_COUT && cp->isa->conv_c1 &&
		   taps <= CNNVIZ__C1_TAPS) {
		cp->path = CNNVIZ__CONV_CHANNEL1;
		s = 0;
	} else if (g->groups == 1 && g->cin <= CNNVIZ__FEWC_CIN &&
		   g->dw == 1 && g->cout % 16 == 0 &&
		   g->cout <= CNNVIZ__C1_COUT && g->kh <= CNNVIZ__FEWC_KH &&
		   cnnviz__fewc_row_floats(g) <= CNNVIZ__FEWC_ROW &&
		   cp->isa->conv_fewc) {
		cp->path = CNNVIZ__CONV_FEWC;
		s = 0;
	} else {
		cp->path = CNNVIZ__CONV_INDIRECT;
		/* taps * mr pointers, taps steps */
		if (cnnviz__mul_size(taps, ((size_t)mr + 1) * PTR_FLOATS, &s))
			return -1;
	}
	return round16(s, scratch);
}

void cnnviz__conv_plan_pack(struct cnnviz__conv_plan *cp, const float *k,
			    float *w, const float *zeros)
{
	const struct cnnviz__conv_geom *g = &cp->g;
	const int64_t cg = g->cin / g->groups, og = g->cout / g->groups;
	const int64_t kd = g->kh * g->kw * cg;

	cp->w = w;
	cp->zeros = zeros;
	if (cp->path == CNNVIZ__CONV_CHANNEL1 || cp->path == CNNVIZ__CONV_FEWC) {
		/* (taps * cin, cout rounded up to 8); fits: the GEMM's panels
		   are wider */
		const int64_t c8 = (g->cout + 7) / 8 * 8;
		for (int64_t q = 0; q < kd; q++)
			for (int64_t o = 0; o < c8; o++)
				w[q * c8 + o] = o < g->cout ? k[q * g->cout + o]
							    : 0.0f;
		return;
	}
	for (int64_t gi = 0; gi < g->groups; gi++) {
		if (cp->pairs)
			cnnviz__pack_pairs(cp->isa, kd, og, k + gi * og, g->cout,
					   w + (size_t)gi * cp->group_floats);
		else
			cnnviz__pack(cp->isa, kd, og, k + gi * og, g->cout,
				     w + (size_t)gi * cp->group_floats);
	}
}

/* Pointers of rows (output pixels) into the image, per tap. */
struct indirect {
	const struct cnnviz__conv_plan *cp;
	const float *x;
	int64_t c0;
	int mr;
};

/*
 * A tile whose windows all lie inside the image gives each row's first
 * tap; the others are the fixed steps in toff. Otherwise every tap of
 * every row, the padding's pointing at zeros.
 */
static int indirect_rows(const void *ctx, int64_t r0, int rows,
			 const float **a)
{
	const struct indirect *in = ctx;
	const struct cnnviz__conv_geom *g = &in->cp->g;
	const int mr = in->mr;
	const int64_t ohw = g->oh * g->ow, C = g->cin;
	const int64_t ye = (g->kh - 1) * g->dh, xe = (g->kw - 1) * g->dw;
	/* One division for the tile; the pixels follow in order. */
	const int64_t b0 = r0 / ohw, q = r0 % ohw;
	const int64_t oy0 = q / g->ow, ox0 = q % g->ow;
	int64_t b = b0, oy = oy0, ox = ox0;
	int inside = 1;

	for (int r = 0; r < rows; r++) {
		const int64_t iy0 = oy * g->sh - g->pad_t;
		const int64_t ix0 = ox * g->sw - g->pad_l;
		if (iy0 >= 0 && iy0 + ye < g->h && ix0 >= 0 && ix0 + xe < g->w)
			a[r] = in->x + b * g->h * g->w * C + in->c0 +
			       (iy0 * g->w + ix0) * C;
		else
			inside = 0;
		if (++ox == g->ow) {
			ox = 0;
			if (++oy == g->oh) {
				oy = 0;
				b++;
			}
		}
	}
	if (inside)
		return 1;
	b = b0;
	oy = oy0;
	ox = ox0;
	for (int r = 0; r < rows; r++) {
		const int64_t iy0 = oy * g->sh - g->pad_t;
		const int64_t ix0 = ox * g->sw - g->pad_l;
		const float *img = in->x + b * g->h * g->w * C + in->c0;
		const float **ar = a + r;
		for (int64_t i = 0; i < g->kh; i++) {
			int64_t iy = iy0 + i * g->dh;
			int in_y = iy >= 0 && iy < g->h;
			for (int64_t j = 0; j < g->kw; j++, ar += mr) {
				int64_t ix = ix0 + j * g->dw;
				*ar = in_y && ix >= 0 && ix < g->w
					      ? img + (iy * g->w + ix) * C
					      : in->cp->zeros;
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
	return 0;
}

/* toff (kh*kw): the steps from a window's first tap to each tap. */
static void tap_steps(const struct cnnviz__conv_geom *g, int64_t *toff)
{
	for (int64_t i = 0; i < g->kh; i++)
		for (int64_t j = 0; j < g->kw; j++)
			*toff++ = (i * g->dh * g->w + j * g->dw) * g->cin;
}

struct conv_run {
	const struct cnnviz__conv_plan *cp;
	const float *x;
	float *y;
	const struct cnnviz__fuse *f;
	struct cnnviz__split split;
	int64_t m;
	float *scratch;
	size_t stride;
};

static void conv_task(void *ctx, int64_t task, int worker)
{
	const struct conv_run *c = ctx;
	const struct cnnviz__conv_plan *cp = c->cp;
	const struct cnnviz__conv_geom *g = &cp->g;
	const int64_t cg = g->cin / g->groups, og = g->cout / g->groups;
	const int64_t gi = task / c->split.tasks, c0 = gi * cg;
	const float *abuf[CNNVIZ__MR_MAX];
	/* No scratch at all for some geometries: NULL + 0 is undefined. */
	float *scr = c->scratch ? c->scratch + (size_t)worker * c->stride : NULL;
	int64_t r0, r1, p0, p1;

	cnnviz__split_task(&c->split, task % c->split.tasks, c->m, &r0, &r1,
			   &p0, &p1);
	/* This group's columns of the per-channel epilogue arrays. */
	struct cnnviz__fuse f = *c->f;
	if (f.bias)
		f.bias += gi * og;
	if (f.scale) {
		f.scale += gi * og;
		f.shift += gi * og;
	}
	struct cnnviz__gemm_job job = {
		.isa = cp->isa, .mr = cnnviz__job_mr(cp->isa, og, cp->pairs),
		.pairs = cp->pairs, .n = og, .ntaps = 1, .kc = cg,
		.b = cp->w + (size_t)gi * cp->group_floats,
		.c = c->y + gi * og, .ldc = g->cout,
		.res = f.residual ? f.residual + gi * og : NULL, .f = &f,
	};
	if (cp->path == CNNVIZ__CONV_DIRECT) {
		struct cnnviz__plain_rows pr = {c->x + c0, g->cin, 0};
		job.rows = cnnviz__plain_rows;
		job.ctx = &pr;
		cnnviz__gemm_run(&job, r0, r1, p0, p1, abuf);
	} else if (cp->path == CNNVIZ__CONV_INDIRECT) {
		/* scratch: the pointer table, then the tap steps */
		const float **ptrs = (const float **)scr;
		int64_t *toff = (int64_t *)(ptrs + g->kh * g->kw * job.mr);
		struct indirect in = {cp, c->x, c0, job.mr};
		job.ntaps = g->kh * g->kw;
		job.rows = indirect_rows;
		job.ctx = &in;
		job.toff = toff;
		tap_steps(g, toff);
		cnnviz__gemm_run(&job, r0, r1, p0, p1, ptrs);
	}
}

/* CHANNEL1, FEWC: output rows [task * rows, ...) of n * oh. */
static void c1_task(void *ctx, int64_t task, int worker)
{
	const struct conv_run *c = ctx;
	const struct cnnviz__conv_plan *cp = c->cp;
	const struct cnnviz__conv_geom *g = &cp->g;
	const struct cnnviz__fuse *f = c->f;
	const int64_t orow = g->ow * g->cout;
	const int64_t q1 = min64(c->m, (task + 1) * c->split.rows);
	const int tail = f->cstage != CNNVIZ__STAGE_NONE && !f->rowwise;

	for (int64_t q = task * c->split.rows; q < q1; q++) {
		const float *res = f->residual ? f->residual + q * orow : NULL;
		struct cnnviz__c1_row r = {g,
					   c->x + q / g->oh * g->h * g->w * g->cin,
					   cp->w, q % g->oh, c->y + q * orow, res};
		if (cp->path == CNNVIZ__CONV_FEWC)
			cp->isa->conv_fewc(&r, f);
		else
			cp->isa->conv_c1(&r, f);
		if (tail)
			cnnviz__fuse_rows(f, c->y + q * orow, g->ow, g->cout,
					  g->cout, 0, res);
	}
}

void cnnviz__conv_plan_run(const struct cnnviz__conv_plan *cp, int64_t n,
			   const float *x, const float *bias,
			   const struct cnnviz__act *act,
			   const struct cnnviz__epilogue *post, float *y,
			   float *scratch, size_t stride,
			   struct cnnviz__pool *pool)
{
	const struct cnnviz__conv_geom *g = &cp->g;
	const int64_t cg = g->cin / g->groups, og = g->cout / g->groups;
	struct cnnviz__fuse f;
	struct conv_run c = {cp, x, y, &f, {0}, n * g->oh * g->ow, scratch,
			     stride};

	if (c.m <= 0)
		return;
	cnnviz__fuse_init(&f, bias, act, post);
	if (cp->path == CNNVIZ__CONV_CHANNEL1 || cp->path == CNNVIZ__CONV_FEWC) {
		/* tasks of output rows: c.m counts rows here */
		const int64_t row =
			max64(g->ow * g->cout * g->kh * g->kw * g->cin, 1);
		c.m = n * g->oh;
		c.split.rows = max64(DW_TASK_FMAS / row, 1);
		cnnviz__parallel_for(pool, (c.m + c.split.rows - 1) /
					     c.split.rows,
				     c1_task, &c);
		c.m = n * g->oh * g->ow;
	} else {
		cnnviz__gemm_split(cp->isa, c.m, og, g->kh * g->kw * cg,
				   cp->pairs, &c.split);
		cnnviz__parallel_for(pool, c.split.tasks * g->groups, conv_task,
				     &c);
	}
	if (f.rowwise)
		for (int64_t p = 0; p < c.m; p++)
			cnnviz__fuse_rows(&f, y + p * g->cout, 1, g->cout,
					  g->cout, 0,
					  f.residual ? f.residual + p * g->cout
						     : NULL);
}

/* ------------------------------------------------------------ depthwise */

struct dw_run {
	const struct cnnviz__conv_geom *g;
	const struct cnnviz__isa *isa;
	const float *x, *k;
	float *y;
	const struct cnnviz__fuse *f; /* fast path */
	const struct cnnviz__fuse *fc; /* the portable path: all in C */
	int64_t rows;                  /* output rows per task */
	int64_t total;                 /* n * oh */
	int64_t lo, hi;                /* cnnviz__dw_columns */
};

void cnnviz__dw_columns(const struct cnnviz__conv_geom *g, int64_t *lo,
			int64_t *hi)
{
	const int64_t ke = (g->kw - 1) * g->dw;
	*lo = *hi = 0;
	if (g->w <= ke)
		return;
	*lo = min64((g->pad_l + g->sw - 1) / g->sw, g->ow);
	*hi = min64((g->w - 1 - ke + g->pad_l) / g->sw + 1, g->ow);
	*hi = max64(*hi, *lo);
}

static int dw_fast(const struct cnnviz__conv_geom *g,
		   const struct cnnviz__isa *isa)
{
	return g->mult == 1 && isa->dw_row;
}

static void dw_task(void *ctx, int64_t task, int worker)
{
	const struct dw_run *d = ctx;
	const struct cnnviz__conv_geom *g = d->g;
	const int64_t co = g->cin * g->mult, orow = g->ow * co;
	const int64_t in_px = g->h * g->w * g->cin;
	const int64_t q1 = min64(d->total, (task + 1) * d->rows);
	const int fast = dw_fast(g, d->isa);
	const struct cnnviz__fuse *f = fast ? d->f : d->fc;
	const int tail = f->cstage != CNNVIZ__STAGE_NONE && !f->rowwise;

	for (int64_t q = task * d->rows; q < q1; q++) {
		int64_t b = q / g->oh, oy = q % g->oh;
		float *yr = d->y + q * orow;
		const float *res = f->residual ? f->residual + q * orow : NULL;
		if (fast) {
			struct cnnviz__dw_row r = {
				.g = g, .x = d->x + b * in_px, .k = d->k,
				.oy = oy, .y = yr, .res = res, .lo = d->lo,
				.hi = d->hi};
			d->isa->dw_row(&r, f);
		} else {
			cnnviz__depthwise_rows(g, d->x + b * in_px, d->k,
					       f->bias, oy, oy + 1, yr);
		}
		if (tail)
			cnnviz__fuse_rows(f, yr, g->ow, co, co, 0, res);
	}
}

void cnnviz__depthwise_run(const struct cnnviz__isa *isa,
			   const struct cnnviz__conv_geom *g, int64_t n,
			   const float *x, const float *k, const float *bias,
			   const struct cnnviz__act *act,
			   const struct cnnviz__epilogue *post, float *y,
			   struct cnnviz__pool *pool)
{
	struct cnnviz__fuse f, fc;
	const int64_t co = g->cin * g->mult;
	const int64_t row_fmas = max64(g->ow * co * g->kh * g->kw, 1);
	struct dw_run d = {g, isa, x, k, y, &f, &fc,
			   max64(DW_TASK_FMAS / row_fmas, 1), n * g->oh, 0, 0};

	if (d.total <= 0)
		return;
	cnnviz__fuse_init(&f, bias, act, post);
	cnnviz__dw_columns(g, &d.lo, &d.hi);
	/* The portable rows add the bias; C does everything after it. */
	fc = f;
	fc.cstage = CNNVIZ__STAGE_ACT1;
	cnnviz__parallel_for(pool, (d.total + d.rows - 1) / d.rows, dw_task,
			     &d);
	const struct cnnviz__fuse *fr = dw_fast(g, d.isa) ? &f : &fc;
	if (fr->rowwise)
		cnnviz__fuse_rows(fr, y, d.total * g->ow, co, co, 0,
				  fr->residual);
}

/* ------------------------------------------------------------ separable */

struct sep_run {
	const struct cnnviz__conv_geom *g;
	const struct cnnviz__isa *isa;
	int64_t tile_rows, tiles; /* tiles per sample */
	const float *x, *dk;
	const struct cnnviz__packed *pw;
	float *y;
	const struct cnnviz__fuse *f;
	/* the depthwise half's own epilogue (NULL: none), as dw_task has it:
	   df on the fast path, dfc on the portable one */
	const struct cnnviz__fuse *df, *dfc;
	float *scratch;
	size_t stride;
	/* with an expand stage: its 1x1 conv, its epilogue, and row spans
	   per sample (one task each) */
	const struct cnnviz__expand *ex;
	const struct cnnviz__fuse *ef;
	int64_t spans;
};

/* Depthwise output rows [oy0, oy0 + rows) of sample xb into mid, with
   the epilogue applied exactly as cnnviz__depthwise_run applies it. */
static void sep_depthwise(const struct sep_run *s, const float *xb,
			  int64_t oy0, int64_t rows, float *mid)
{
	const struct cnnviz__conv_geom *g = s->g;
	const int64_t cm = g->cin * g->mult;
	const int fast = dw_fast(g, s->isa);
	const struct cnnviz__fuse *f = fast ? s->df : s->dfc;
	const int tail = f && f->cstage != CNNVIZ__STAGE_NONE && !f->rowwise;

	if (fast) {
		int64_t lo, hi;
		cnnviz__dw_columns(g, &lo, &hi);
		for (int64_t oy = oy0; oy < oy0 + rows; oy++) {
			struct cnnviz__dw_row r = {
				.g = g, .x = xb, .k = s->dk, .oy = oy,
				.y = mid + (oy - oy0) * g->ow * cm, .lo = lo,
				.hi = hi};
			s->isa->dw_row(&r, f);
		}
	} else {
		cnnviz__depthwise_rows(g, xb, s->dk, f ? f->bias : NULL, oy0,
				       oy0 + rows, mid);
	}
	for (int64_t oy = 0; tail && oy < rows; oy++)
		cnnviz__fuse_rows(f, mid + oy * g->ow * cm, g->ow, cm, cm, 0,
				  NULL);
	if (f && f->rowwise)
		cnnviz__fuse_rows(f, mid, rows * g->ow, cm, cm, 0, NULL);
}

/* y's rows [oy0, oy0 + rows) of sample b = mid (rows x ow x cm) . pw. */
static void sep_project(const struct sep_run *s, int64_t b, int64_t oy0,
			int64_t rows, const float *mid)
{
	const struct cnnviz__conv_geom *g = s->g;
	const int64_t cm = g->cin * g->mult;
	const float *abuf[CNNVIZ__MR_MAX];
	const int64_t off = (b * g->oh + oy0) * g->ow * g->cout;
	struct cnnviz__plain_rows pr = {mid, cm, 0};
	struct cnnviz__gemm_job job = {
		.isa = s->pw->isa,
		.mr = cnnviz__job_mr(s->pw->isa, g->cout, s->pw->pairs),
		.pairs = s->pw->pairs, .n = g->cout, .ntaps = 1, .kc = cm,
		.b = s->pw->data, .c = s->y + off, .ldc = g->cout,
		.res = s->f->residual ? s->f->residual + off : NULL,
		.f = s->f, .rows = cnnviz__plain_rows, .ctx = &pr,
	};
	cnnviz__gemm_run(&job, 0, rows * g->ow, 0,
			 cnnviz__panels(s->pw->isa, g->cout), abuf);
}

static void sep_task(void *ctx, int64_t task, int worker)
{
	const struct sep_run *s = ctx;
	const struct cnnviz__conv_geom *g = s->g;
	const int64_t b = task / s->tiles;
	const int64_t oy0 = task % s->tiles * s->tile_rows;
	const int64_t rows = min64(s->tile_rows, g->oh - oy0);
	float *mid = s->scratch + (size_t)worker * s->stride;

	sep_depthwise(s, s->x + b * g->h * g->w * g->cin, oy0, rows, mid);
	sep_project(s, b, oy0, rows, mid);
}

/* Input row iy of sample b of the depthwise conv = the expand stage's
   output row, computed as its own conv would compute it. */
static void expand_row(const struct sep_run *s, int64_t b, int64_t iy,
		       float *out)
{
	const struct cnnviz__conv_geom *g = s->g;
	const struct cnnviz__expand *ex = s->ex;
	const struct cnnviz__packed *w = ex->w;
	const float *abuf[CNNVIZ__MR_MAX];
	struct cnnviz__plain_rows pr = {
		ex->x + (b * g->h + iy) * g->w * w->k, w->k, 0};
	struct cnnviz__gemm_job job = {
		.isa = w->isa, .mr = cnnviz__job_mr(w->isa, w->n, w->pairs),
		.pairs = w->pairs, .n = w->n, .ntaps = 1, .kc = w->k,
		.b = w->data, .c = out, .ldc = w->n, .f = s->ef,
		.rows = cnnviz__plain_rows, .ctx = &pr,
	};
	cnnviz__gemm_run(&job, 0, g->w, 0, cnnviz__panels(w->isa, w->n), abuf);
	if (s->ef->rowwise)
		cnnviz__fuse_rows(s->ef, out, g->w, w->n, w->n, 0, NULL);
}

/*
 * With an expand stage: one span of output rows of one sample. The
 * depthwise input rows are computed once each into a ring of kh rows
 * (rows a span shares with the one before are computed by both), the
 * depthwise rows of a tile go to mid, then the tile is projected.
 */
static void sep_stream(void *ctx, int64_t task, int worker)
{
	const struct sep_run *s = ctx;
	const struct cnnviz__conv_geom *g = s->g;
	const int64_t cm = g->cin, b = task / s->spans;
	const int64_t per = (g->oh + s->spans - 1) / s->spans;
	const int64_t r0 = task % s->spans * per, r1 = min64(g->oh, r0 + per);
	float *mid = s->scratch + (size_t)worker * s->stride;
	float *ring = mid + s->tile_rows * g->ow * cm;
	int64_t tag[CNNVIZ__RING_ROWS];
	const float *rows[CNNVIZ__RING_ROWS];
	int64_t lo, hi;
	const int tail = s->df->cstage != CNNVIZ__STAGE_NONE && !s->df->rowwise;

	cnnviz__dw_columns(g, &lo, &hi);
	for (int i = 0; i < CNNVIZ__RING_ROWS; i++)
		tag[i] = -1;
	for (int64_t oy0 = r0; oy0 < r1; oy0 += s->tile_rows) {
		const int64_t n = min64(s->tile_rows, r1 - oy0);
		for (int64_t oy = oy0; oy < oy0 + n; oy++) {
			const int64_t iy0 = oy * g->sh - g->pad_t;
			for (int64_t i = 0; i < g->kh; i++) {
				const int64_t iy = iy0 + i;
				rows[i] = NULL;
				if (iy < 0 || iy >= g->h)
					continue; /* never read */
				const int64_t k = iy % g->kh;
				float *row = ring + k * g->w * cm;
				if (tag[k] != iy) {
					expand_row(s, b, iy, row);
					tag[k] = iy;
				}
				rows[i] = row;
			}
			float *yr = mid + (oy - oy0) * g->ow * cm;
			struct cnnviz__dw_row r = {.g = g, .rows = rows,
						   .row0 = iy0, .k = s->dk,
						   .oy = oy, .y = yr, .lo = lo,
						   .hi = hi};
			s->isa->dw_row(&r, s->df);
			if (tail)
				cnnviz__fuse_rows(s->df, yr, g->ow, cm, cm, 0,
						  NULL);
		}
		if (s->df->rowwise)
			cnnviz__fuse_rows(s->df, mid, n * g->ow, cm, cm, 0, NULL);
		sep_project(s, b, oy0, n, mid);
	}
}

void cnnviz__separable_run(const struct cnnviz__conv_geom *g, int64_t n,
			   int64_t tile_rows, const float *x, const float *dk,
			   const struct cnnviz__packed *pw, const float *bias,
			   const struct cnnviz__act *act,
			   const struct cnnviz__epilogue *post, float *y,
			   float *scratch, size_t stride,
			   struct cnnviz__pool *pool,
			   const struct cnnviz__dw_stage *dws,
			   const struct cnnviz__expand *ex)
{
	struct cnnviz__fuse f, df, dfc, ef;
	const int workers = cnnviz__pool_size(pool);

	if (n <= 0 || g->oh <= 0)
		return;
	if (ex) {
		/* Few long spans: each span's first rows are computed twice. */
		struct sep_run s = {g, pw->isa, tile_rows, 0, NULL, dk, pw, y,
				    &f, &df, NULL, scratch, stride, ex, &ef,
				    workers > 1 ? min64(g->oh, 2 * workers) : 1};
		cnnviz__fuse_init(&f, bias, act, post);
		cnnviz__fuse_init(&df, dws->bias, dws->act, dws->post);
		cnnviz__fuse_init(&ef, ex->bias, ex->act, ex->post);
		cnnviz__parallel_for(pool, n * s.spans, sep_stream, &s);
		if (f.rowwise)
			cnnviz__fuse_rows(&f, y, n * g->oh * g->ow, g->cout,
					  g->cout, 0, f.residual);
		return;
	}
	/* Enough tiles for every worker; smaller ones change no result. */
	if (n * ((g->oh + tile_rows - 1) / tile_rows) < workers)
		tile_rows = min64(max64((g->oh * n + workers - 1) / workers, 1),
				  tile_rows);
	struct sep_run s = {g, pw->isa, tile_rows,
			    (g->oh + tile_rows - 1) / tile_rows, x, dk, pw, y,
			    &f, NULL, NULL, scratch, stride, NULL, NULL, 0};
	cnnviz__fuse_init(&f, bias, act, post);
	if (dws) {
		cnnviz__fuse_init(&df, dws->bias, dws->act, dws->post);
		/* The portable rows add the bias; C does everything after it. */
		dfc = df;
		dfc.cstage = CNNVIZ__STAGE_ACT1;
		s.df = &df;
		s.dfc = &dfc;
	}
	cnnviz__parallel_for(pool, n * s.tiles, sep_task, &s);
	if (f.rowwise)
		cnnviz__fuse_rows(&f, y, n * g->oh * g->ow, g->cout, g->cout,
				  0, f.residual);
}
