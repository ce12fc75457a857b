/*
 * GEMM drivers around the per-ISA micro-kernels (isa_*.c).
 *
 * B, the weights, is packed once at load into panels of the micro-kernel's
 * width (struct cnnviz__packed): panel p holds columns [p*NR, p*NR + w) of
 * every row k contiguously, k-major, w the smallest kernel width that
 * covers them (zeros past n); narrow outputs may instead be packed in k
 * pairs (cnnviz__pack_pairs). A is never copied: the micro-kernel reads
 * its rows through pointers, one per row and kernel tap, so the same
 * kernel does a Dense layer, a 1x1 convolution and, with pointers into
 * the image, any convolution (an "indirect GEMM"). Each micro-tile sums
 * K in registers (runs of KBLOCK, added to the stored tile) and applies
 * the epilogue (bias, activation, folded BatchNormalization, residual)
 * before its last store.
 */
#include <math.h>
#include <string.h>

#include "isa.h"

/* Reduction length summed in one run (tile_blocks). */
#define KBLOCK 1024
/* Packed B a job sweeps per row group while it stays in L2. */
#define B_L2_FLOATS (INT64_C(1) << 17)

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* ----------------------------------------------------------- packing */

/* Width of the panel holding `rem` columns (rem > 0): the narrowest
   kernel width that covers them. */
static int panel_width(const struct cnnviz__isa *isa, int64_t rem)
{
	int w = isa->widths[0];
	for (int i = 1; i < 3 && isa->widths[i]; i++)
		if (isa->widths[i] >= rem)
			w = isa->widths[i];
	return w;
}

int cnnviz__job_mr(const struct cnnviz__isa *isa, int64_t n, int pairs)
{
	if (pairs)
		return isa->mr_pairs[n > isa->widths[2]];
	return n <= isa->narrow ? isa->mr_narrow : isa->mr;
}

int cnnviz__pairs_ok(const struct cnnviz__isa *isa, int64_t kc, int64_t n)
{
	return isa->pairs && n <= isa->widths[1] && kc % 2 == 0;
}

void cnnviz__pack_pairs(const struct cnnviz__isa *isa, int64_t k, int64_t n,
			const float *b, int64_t ldb, float *dst)
{
	/* One panel; per k pair its columns j hold (b[k][j], b[k+1][j]). */
	const int w = n <= isa->widths[2] ? isa->widths[2] : isa->widths[1];
	for (int64_t r = 0; r < k; r += 2, dst += 2 * w)
		for (int64_t j = 0; j < w; j++) {
			dst[2 * j] = j < n ? b[r * ldb + j] : 0.0f;
			dst[2 * j + 1] = j < n ? b[(r + 1) * ldb + j] : 0.0f;
		}
}

int64_t cnnviz__panels(const struct cnnviz__isa *isa, int64_t n)
{
	return (n + isa->widths[0] - 1) / isa->widths[0];
}

int cnnviz__pack_floats(const struct cnnviz__isa *isa, int64_t k, int64_t n,
			size_t *floats)
{
	size_t cols = (size_t)(cnnviz__panels(isa, n) * isa->widths[0]);
	return cnnviz__mul_size(cols, (size_t)k, floats);
}

void cnnviz__pack(const struct cnnviz__isa *isa, int64_t k, int64_t n,
		  const float *b, int64_t ldb, float *dst)
{
	const int nr = isa->widths[0];
	for (int64_t j0 = 0; j0 < n; j0 += nr) {
		const int64_t cols = min64(nr, n - j0);
		const int w = panel_width(isa, cols);
		float *d = dst + j0 * k;
		for (int64_t r = 0; r < k; r++, d += w) {
			memcpy(d, b + r * ldb + j0, (size_t)cols * sizeof *d);
			for (int64_t j = cols; j < w; j++)
				d[j] = 0.0f;
		}
	}
}

/* ---------------------------------------------------------- epilogue */

/*
 * An activation min(max(y, lo), hi)? LINEAR is none (returns 0). The
 * kernels' clamps give what cnnviz__act_forward does bit for bit, but
 * for NaN inputs (a clamp makes them lo).
 */
static int as_clamp(const struct cnnviz__act *a, float *lo, float *hi)
{
	if (a->kind == CNNVIZ__ACT_RELU6) {
		*lo = 0.0f;
		*hi = 6.0f;
		return 1;
	}
	if (a->kind == CNNVIZ__ACT_RELU && a->threshold == 0.0f &&
	    a->slope == 0.0f) {
		*lo = 0.0f;
		*hi = a->max_value >= 0.0f ? a->max_value : INFINITY;
		return 1;
	}
	return 0;
}

static const struct cnnviz__act linear = {.kind = CNNVIZ__ACT_LINEAR};

void cnnviz__fuse_init(struct cnnviz__fuse *f, const float *bias,
		       const struct cnnviz__act *act,
		       const struct cnnviz__epilogue *post)
{
	memset(f, 0, sizeof *f);
	f->bias = bias;
	f->act1 = act ? *act : linear;
	f->act2 = post ? post->act : linear;
	f->kflags = bias ? CNNVIZ__FUSE_BIAS : 0;
	f->cstage = CNNVIZ__STAGE_NONE;
	if (post) {
		f->scale = post->scale;
		f->shift = post->shift;
		f->residual = post->residual;
	}
	f->rowwise = f->act1.kind == CNNVIZ__ACT_SOFTMAX ||
		     f->act2.kind == CNNVIZ__ACT_SOFTMAX;
	if (f->act1.kind != CNNVIZ__ACT_LINEAR) {
		if (!as_clamp(&f->act1, &f->lo1, &f->hi1)) {
			f->cstage = CNNVIZ__STAGE_ACT1;
			return;
		}
		f->kflags |= CNNVIZ__FUSE_CLAMP1;
	}
	if (f->scale)
		f->kflags |= CNNVIZ__FUSE_AFFINE;
	if (f->residual)
		f->kflags |= CNNVIZ__FUSE_RES;
	if (f->act2.kind != CNNVIZ__ACT_LINEAR) {
		if (as_clamp(&f->act2, &f->lo2, &f->hi2))
			f->kflags |= CNNVIZ__FUSE_CLAMP2;
		else
			f->cstage = CNNVIZ__STAGE_ACT2;
	}
}

void cnnviz__fuse_rows(const struct cnnviz__fuse *f, float *c, int64_t rows,
		       int64_t cols, int64_t ldc, int64_t col0,
		       const float *res)
{
	const int s = f->cstage;
	if (s == CNNVIZ__STAGE_NONE)
		return;
	for (int64_t r = 0; r < rows; r++) {
		float *y = c + r * ldc;
		if (s <= CNNVIZ__STAGE_ACT1)
			cnnviz__act_forward(&f->act1, y, y, 1, (size_t)cols);
		if (s <= CNNVIZ__STAGE_AFFINE && f->scale)
			for (int64_t j = 0; j < cols; j++)
				y[j] = y[j] * f->scale[col0 + j] +
				       f->shift[col0 + j];
		if (s <= CNNVIZ__STAGE_RES && f->residual)
			for (int64_t j = 0; j < cols; j++)
				y[j] += res[r * ldc + j];
		if (s <= CNNVIZ__STAGE_ACT2)
			cnnviz__act_forward(&f->act2, y, y, 1, (size_t)cols);
	}
}

/* --------------------------------------------------------------- jobs */

/*
 * A long K in blocks of about KBLOCK: each block's sum is added to the
 * stored tile, the epilogue comes with the last. Short runs bound how the
 * float32 rounding error grows with K (a Dense layer of 25088 inputs),
 * as the portable GEMM's blocking did.
 */
static void tile_blocks(void (*kernel)(const struct cnnviz__tile *,
				       const struct cnnviz__fuse *),
			const struct cnnviz__tile *t,
			const struct cnnviz__fuse *f)
{
	struct cnnviz__tile u = *t;
	if (t->ntaps > 1) {
		const int64_t tb = t->kc >= KBLOCK ? 1 : KBLOCK / t->kc;
		for (int64_t t0 = 0; t0 < t->ntaps; t0 += tb) {
			u.ntaps = min64(tb, t->ntaps - t0);
			u.b = t->b + t0 * t->kc * t->width;
			u.a = t->toff ? t->a : t->a + t0 * t->mr;
			u.toff = t->toff ? t->toff + t0 : NULL;
			u.load_c = t->load_c || t0 > 0;
			kernel(&u, t0 + u.ntaps < t->ntaps ? NULL : f);
		}
		return;
	}
	const float *ab[CNNVIZ__MR_MAX];
	const int64_t off = t->toff ? t->toff[0] : 0;
	u.a = ab;
	u.toff = NULL;
	for (int64_t k0 = 0; k0 < t->kc; k0 += KBLOCK) {
		for (int r = 0; r < t->rows; r++)
			ab[r] = t->a[r] + off + k0;
		u.kc = min64(KBLOCK, t->kc - k0);
		u.b = t->b + k0 * t->width;
		u.load_c = t->load_c || k0 > 0;
		kernel(&u, k0 + u.kc < t->kc ? NULL : f);
	}
}

/* The tile of rows [ra, ra+t->rows) and panels pa.. pa+np-1 (np > 1:
   one row, full panels); t->a already points at those rows. */
static void run_tile(const struct cnnviz__gemm_job *j, struct cnnviz__tile *t,
		     int64_t ra, int64_t pa, int np, int tail, int res)
{
	const struct cnnviz__isa *isa = j->isa;
	const int nr = isa->widths[0];
	const int64_t cols = np > 1 ? np * nr : min64(nr, j->n - pa * nr);
	t->np = np;
	t->pstride = j->ntaps * j->kc * nr;
	t->cols = (int)cols;
	t->width = np > 1 ? nr : panel_width(isa, cols);
	t->b = j->b + pa * nr * j->ntaps * j->kc;
	t->c = j->c + ra * j->ldc + pa * nr;
	t->res = res ? j->res + ra * j->ldc + pa * nr : NULL;
	t->col0 = pa * nr;
	void (*kernel)(const struct cnnviz__tile *, const struct cnnviz__fuse *) =
		j->pairs ? isa->tile_pairs : isa->tile;
	if (j->ntaps * j->kc <= KBLOCK)
		kernel(t, j->f);
	else
		tile_blocks(kernel, t, j->f);
	if (tail)
		cnnviz__fuse_rows(j->f, t->c, t->rows, cols, j->ldc, t->col0,
				  t->res);
}

void cnnviz__gemm_run(const struct cnnviz__gemm_job *j, int64_t r0,
		      int64_t r1, int64_t p0, int64_t p1, const float **abuf)
{
	const int mr = j->mr, nr = j->isa->widths[0];
	const struct cnnviz__fuse *f = j->f;
	const int tail = f && f->cstage != CNNVIZ__STAGE_NONE && !f->rowwise;
	const int res = f && f->residual &&
			((f->kflags & CNNVIZ__FUSE_RES) || tail);
	struct cnnviz__tile t = {
		.mr = mr, .np = 1, .ntaps = j->ntaps, .kc = j->kc, .a = abuf,
		.ldc = j->ldc,
	};

	if (r1 - r0 == 1) {
		/* A GEMV: up to four full panels at once, for more sums in
		   flight than one panel's two vectors. */
		t.rows = 1;
		t.toff = j->rows(j->ctx, r0, 1, abuf) ? j->toff : NULL;
		for (int64_t pa = p0; pa < p1;) {
			int np = 1;
			while (np < 4 && pa + np < p1 && (pa + np + 1) * nr <= j->n)
				np++;
			if ((pa + 1) * nr > j->n)
				np = 1;
			run_tile(j, &t, r0, pa, np, tail, res);
			pa += np;
		}
		return;
	}
	if (j->rows == cnnviz__plain_rows && j->ntaps * j->kc <= KBLOCK) {
		/* Rows in place and a short K: a whole strip of rows per
		   kernel call and panel. */
		const struct cnnviz__plain_rows *pr = j->ctx;
		t.pa = pr->a + (r0 - pr->r_base) * pr->lda;
		t.lda = pr->lda;
		t.nrows = r1 - r0;
		for (int64_t pa = p0; pa < p1; pa++)
			run_tile(j, &t, r0, pa, 1, 0, res);
		for (int64_t pa = p0; tail && pa < p1; pa++)
			cnnviz__fuse_rows(f, j->c + r0 * j->ldc + pa * nr,
					  r1 - r0, min64(nr, j->n - pa * nr),
					  j->ldc, pa * nr,
					  res ? j->res + r0 * j->ldc + pa * nr
					      : NULL);
		return;
	}
	if ((p1 - p0) * j->ntaps * j->kc * nr <= B_L2_FLOATS) {
		/* The panels stay in L2: row groups outer, each group's
		   pointers built once. */
		for (int64_t ra = r0; ra < r1; ra += mr) {
			t.rows = (int)min64(mr, r1 - ra);
			t.toff = j->rows(j->ctx, ra, t.rows, abuf) ? j->toff
								     : NULL;
			for (int64_t pa = p0; pa < p1; pa++)
				run_tile(j, &t, ra, pa, 1, tail, res);
		}
		return;
	}
	/* One panel at a time stays in L2 while the rows stream by. */
	for (int64_t pa = p0; pa < p1; pa++)
		for (int64_t ra = r0; ra < r1; ra += mr) {
			t.rows = (int)min64(mr, r1 - ra);
			t.toff = j->rows(j->ctx, ra, t.rows, abuf) ? j->toff
								     : NULL;
			run_tile(j, &t, ra, pa, 1, tail, res);
		}
}

/* ------------------------------------------------------ task splitting */

/* Multiply-adds a task aims at: enough to amortise taking it (and to
   keep a small layer on one thread), few enough to balance two cores. */
#define TASK_FMAS (INT64_C(1) << 17)
#define MAX_TASKS 64

void cnnviz__gemm_split(const struct cnnviz__isa *isa, int64_t m, int64_t n,
			int64_t k, int pairs, struct cnnviz__split *s)
{
	const int mr = cnnviz__job_mr(isa, n, pairs);
	const int64_t panels = cnnviz__panels(isa, n);
	const int64_t groups = (m + mr - 1) / mr;
	double work = (double)m * (double)(panels * isa->widths[0]) *
		      (double)k;
	int64_t want = (int64_t)(work / (double)TASK_FMAS);
	want = want < 1 ? 1 : want > MAX_TASKS ? MAX_TASKS : want;

	/*
	 * Each row task reads all of its panels, each panel task all of its
	 * rows: cut the larger operand finer. Weights larger than the rows
	 * (few pixels, wide layers) go to tasks by panels, read once.
	 */
	int64_t nrt, npg;
	/* Consecutive tasks (on one core, mostly) then take the same
	   panels for other rows, which are still in L2. */
	s->panel_major = (double)n > (double)m;
	if (s->panel_major) {
		npg = min64(panels, want);
		nrt = min64(groups, want / npg);
	} else {
		nrt = min64(groups, want);
		npg = min64(panels, want / nrt);
	}
	nrt = nrt < 1 ? 1 : nrt;
	npg = npg < 1 ? 1 : npg;
	s->rows = (groups + nrt - 1) / nrt * mr;
	s->row_tasks = (m + s->rows - 1) / s->rows;
	s->panels = (panels + npg - 1) / npg;
	s->panel_tasks = (panels + s->panels - 1) / s->panels;
	s->n_panels = panels;
	s->tasks = s->row_tasks * s->panel_tasks;
}

void cnnviz__split_task(const struct cnnviz__split *s, int64_t task,
			int64_t m, int64_t *r0, int64_t *r1, int64_t *p0,
			int64_t *p1)
{
	int64_t ri = task / s->panel_tasks, pi = task % s->panel_tasks;
	if (s->panel_major) {
		pi = task / s->row_tasks;
		ri = task % s->row_tasks;
	}
	*r0 = ri * s->rows;
	*r1 = min64(m, *r0 + s->rows);
	*p0 = pi * s->panels;
	*p1 = min64(s->n_panels, *p0 + s->panels);
}

/* ------------------------------------------------------- plain GEMMs */

int cnnviz__plain_rows(const void *ctx, int64_t r0, int rows,
		       const float **a)
{
	const struct cnnviz__plain_rows *p = ctx;
	for (int r = 0; r < rows; r++)
		a[r] = p->a + (r0 + r - p->r_base) * p->lda;
	return 0;
}

struct packed_task {
	const struct cnnviz__gemm_job *job;
	const struct cnnviz__split *split;
	int64_t m;
};

static void packed_task(void *ctx, int64_t task, int worker)
{
	const struct packed_task *pt = ctx;
	const float *abuf[CNNVIZ__MR_MAX];
	int64_t r0, r1, p0, p1;
	cnnviz__split_task(pt->split, task, pt->m, &r0, &r1, &p0, &p1);
	cnnviz__gemm_run(pt->job, r0, r1, p0, p1, abuf);
}

void cnnviz__gemm_packed(int64_t m, const float *x, int64_t ldx,
			 const struct cnnviz__packed *w, const float *bias,
			 const struct cnnviz__act *act,
			 const struct cnnviz__epilogue *post, float *y,
			 int64_t ldy, struct cnnviz__pool *pool)
{
	struct cnnviz__fuse f;
	struct cnnviz__split split;
	struct cnnviz__plain_rows pr = {x, ldx, 0};

	if (m <= 0)
		return;
	cnnviz__fuse_init(&f, bias, act, post);
	struct cnnviz__gemm_job job = {
		.isa = w->isa, .mr = cnnviz__job_mr(w->isa, w->n, w->pairs),
		.pairs = w->pairs, .n = w->n, .ntaps = 1, .kc = w->k,
		.b = w->data, .c = y, .ldc = ldy, .res = f.residual, .f = &f,
		.rows = cnnviz__plain_rows, .ctx = &pr,
	};
	cnnviz__gemm_split(w->isa, m, w->n, w->k, w->pairs, &split);
	struct packed_task pt = {&job, &split, m};
	cnnviz__parallel_for(pool, split.tasks, packed_task, &pt);
	if (f.rowwise)
		for (int64_t r = 0; r < m; r++)
			cnnviz__fuse_rows(&f, y + r * ldy, 1, w->n, ldy, 0,
					  f.residual ? f.residual + r * ldy
						     : NULL);
}

/* The unpacked GEMM packs B a KC x NR strip at a time on the stack. */
#define KC 256
#define A_L2_FLOATS (INT64_C(1) << 16)

void cnnviz__gemm(int64_t M, int64_t N, int64_t K, const float *A,
		  int64_t lda, const float *B, int64_t ldb, float *C,
		  int64_t ldc, int accumulate)
{
	_Alignas(64) float bpack[KC * CNNVIZ__NR_MAX];
	const float *abuf[CNNVIZ__MR_MAX];
	const struct cnnviz__isa *isa = cnnviz__isa_best();
	const int mr = cnnviz__job_mr(isa, N, 0), nr = isa->widths[0];

	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) {
		if (!accumulate)
			for (int64_t i = 0; i < M; i++)
				memset(C + i * ldc, 0, (size_t)N * sizeof *C);
		return;
	}
	for (int64_t pc = 0; pc < K; pc += KC) {
		const int64_t kc = min64(KC, K - pc);
		/* A block of rows that stays in L2 across the strips. */
		int64_t mc = A_L2_FLOATS / kc / mr * mr;
		mc = mc < mr ? mr : mc;
		struct cnnviz__tile t = {
			.mr = mr, .np = 1, .ntaps = 1, .kc = kc, .a = abuf,
			.ldc = ldc,
			.load_c = accumulate || pc > 0, .b = bpack,
		};
		for (int64_t ic = 0; ic < M; ic += mc) {
			const int64_t ie = min64(M, ic + mc);
			for (int64_t jc = 0; jc < N; jc += nr) {
				const int64_t cols = min64(nr, N - jc);
				t.cols = (int)cols;
				t.width = panel_width(isa, cols);
				cnnviz__pack(isa, kc, cols, B + pc * ldb + jc,
					     ldb, bpack);
				for (int64_t i = ic; i < ie; i += mr) {
					t.rows = (int)min64(mr, ie - i);
					for (int r = 0; r < t.rows; r++)
						abuf[r] = A + (i + r) * lda + pc;
					t.c = C + i * ldc + jc;
					isa->tile(&t, NULL);
				}
			}
		}
	}
}
