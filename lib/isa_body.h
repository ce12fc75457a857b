/*
 * Kernel bodies shared by the instruction sets: isa_<name>.c defines the
 * vector macros below and includes this file once per vector width (no
 * include guard on purpose). Every function is static, suffixed by SFX().
 *
 * Expected: SFX(name), V (vector type), VL (lanes), MR (tile rows), MR1
 * (rows of one-vector tiles), DW_PX (depthwise pixels per step), UNROLL,
 * V_ZERO(), V_SET1(x), V_BCAST(p) (broadcast *p), V_LOAD(p),
 * V_STORE(p, v), V_LOADN(p, n) / V_STOREN(p, v, n) (first n lanes,
 * 0 < n < VL; loads zero the rest and must not touch memory past n),
 * V_FMA(a, b, c) = a*b+c, V_ADD(a, b), V_MUL(a, b),
 * V_MAX(x, lo) = x > lo ? x : lo, V_MIN(x, hi) = x < hi ? x : hi (so that
 * a NaN becomes lo, as cnnviz__act_forward's ReLU does).
 */

/* n >= VL: a whole vector. */
static inline __attribute__((always_inline)) V SFX(loadx)(const float *p,
							  int n)
{
	return n >= VL ? V_LOAD(p) : V_LOADN(p, n);
}

static inline __attribute__((always_inline)) void SFX(storex)(float *p, V v,
							      int n)
{
	if (n >= VL)
		V_STORE(p, v);
	else
		V_STOREN(p, v, n);
}

/* The epilogue stages after the bias, on one vector (res: its residual). */
static inline __attribute__((always_inline)) V
SFX(post)(V y, unsigned fl, const struct cnnviz__fuse *f, V scale, V shift,
	  const float *res, int n)
{
	if (fl & CNNVIZ__FUSE_CLAMP1)
		y = V_MIN(V_MAX(y, V_SET1(f->lo1)), V_SET1(f->hi1));
	/* Multiply, then add: what the BatchNormalization layer computes,
	   so that fusing it changes no bit. */
	if (fl & CNNVIZ__FUSE_AFFINE)
		y = V_ADD(V_MUL(y, scale), shift);
	if (fl & CNNVIZ__FUSE_RES)
		y = V_ADD(y, SFX(loadx)(res, n));
	if (fl & CNNVIZ__FUSE_CLAMP2)
		y = V_MIN(V_MAX(y, V_SET1(f->lo2)), V_SET1(f->hi2));
	return y;
}

/*
 * R rows x NV vectors, from NP panels (NP > 1 only with R == 1). The
 * accumulators stay in registers: R, NV and NP are constants in every
 * copy, so the loops over them unroll away.
 */
static inline __attribute__((always_inline)) void
SFX(tile_body)(const int R, const int NV, const int NP,
	       const struct cnnviz__tile *t, const struct cnnviz__fuse *f)
{
	/* Flat and no larger than needed: GCC keeps small arrays in
	   registers only. */
	V acc[2 * MR > MR1 ? 2 * MR : MR1];
	const int NT = NV * NP; /* vectors per row */
	const int64_t kc = t->kc, ntaps = t->ntaps, ldc = t->ldc;
	const int64_t ps = NP > 1 ? t->pstride : 0;
	const int cols = t->cols;
	const float *b = t->b;
	float *c = t->c;

	UNROLL for (int r = 0; r < R; r++)
		UNROLL for (int v = 0; v < NT; v++)
			acc[r * NT + v] = V_ZERO();
	for (int64_t tap = 0; tap < ntaps; tap++) {
		const float *ap[MR1 > MR ? MR1 : MR];
		if (t->toff) {
			const int64_t o = t->toff[tap];
			UNROLL for (int r = 0; r < R; r++)
				ap[r] = t->a[r] + o;
		} else {
			UNROLL for (int r = 0; r < R; r++)
				ap[r] = t->a[tap * t->mr + r];
		}
		for (int64_t k = 0; k < kc; k++) {
			V bv[8];
			UNROLL for (int v = 0; v < NT; v++)
				bv[v] = V_LOAD(b + v / NV * ps + v % NV * VL);
			b += NV * VL;
			UNROLL for (int r = 0; r < R; r++) {
				V av = V_BCAST(ap[r] + k);
				UNROLL for (int v = 0; v < NT; v++)
					acc[r * NT + v] = V_FMA(av, bv[v],
								acc[r * NT + v]);
			}
		}
	}
	const unsigned fl = f ? f->kflags : 0;
	UNROLL for (int v = 0; v < NT; v++) {
		const int n = cols - v * VL;
		const int64_t col = t->col0 + v * VL;
		V bias = V_ZERO(), scale = V_ZERO(), shift = V_ZERO();
		if (fl & CNNVIZ__FUSE_BIAS)
			bias = SFX(loadx)(f->bias + col, n);
		if (fl & CNNVIZ__FUSE_AFFINE) {
			scale = SFX(loadx)(f->scale + col, n);
			shift = SFX(loadx)(f->shift + col, n);
		}
		UNROLL for (int r = 0; r < R; r++) {
			V y = acc[r * NT + v];
			if (t->load_c)
				y = V_ADD(SFX(loadx)(c + r * ldc + v * VL, n),
					  y);
			if (fl & CNNVIZ__FUSE_BIAS)
				y = V_ADD(y, bias);
			if (fl & ~CNNVIZ__FUSE_BIAS)
				y = SFX(post)(y, fl, f, scale, shift,
					      fl & CNNVIZ__FUSE_RES
						      ? t->res + r * ldc + v * VL
						      : NULL,
					      n);
			SFX(storex)(c + r * ldc + v * VL, y, n);
		}
	}
}

#define TILE_ROWS_CASE(r, nv)                                                  \
	case r:                                                                \
		SFX(tile_body)(r, nv, 1, t, f);                                \
		break;

/*
 * A strip (t->nrows > 0): full tiles of MRC rows with the kernel inlined,
 * the last, shorter one through edge(). Small-K layers (a 1x1 conv from 16
 * channels) spend as long setting a tile up as computing it.
 */
static inline __attribute__((always_inline)) void
SFX(strip_body)(const int MRC, const int NV, const struct cnnviz__tile *t,
		const struct cnnviz__fuse *f,
		void (*edge)(const struct cnnviz__tile *,
			     const struct cnnviz__fuse *))
{
	struct cnnviz__tile u = *t;
	const float *ab[MR1 > MR ? MR1 : MR];
	const int res = f && (f->kflags & CNNVIZ__FUSE_RES);
	int64_t r0 = 0;

	u.a = ab;
	u.toff = NULL;
	u.nrows = 0;
	u.ntaps = 1;
	for (; r0 < t->nrows; r0 += MRC) {
		u.rows = t->nrows - r0 < MRC ? (int)(t->nrows - r0) : MRC;
		for (int r = 0; r < u.rows; r++)
			ab[r] = t->pa + (r0 + r) * t->lda;
		u.c = t->c + r0 * t->ldc;
		u.res = res ? t->res + r0 * t->ldc : NULL;
		if (u.rows == MRC)
			SFX(tile_body)(MRC, NV, 1, &u, f);
		else
			edge(&u, f);
	}
}

static void SFX(tile_nv1)(const struct cnnviz__tile *t,
			  const struct cnnviz__fuse *f);

static void SFX(strip_nv1)(const struct cnnviz__tile *t,
			   const struct cnnviz__fuse *f)
{
	if (t->mr == MR1)
		SFX(strip_body)(MR1, 1, t, f, SFX(tile_nv1));
	else
		SFX(strip_body)(MR, 1, t, f, SFX(tile_nv1));
}

/* One copy per row count: edge tiles waste no arithmetic. */
static __attribute__((unused)) void SFX(tile_nv1)(const struct cnnviz__tile *t,
						  const struct cnnviz__fuse *f)
{
	if (t->nrows) {
		SFX(strip_nv1)(t, f);
		return;
	}
	switch (t->rows) {
		TILE_ROWS_CASE(1, 1)
		TILE_ROWS_CASE(2, 1)
		TILE_ROWS_CASE(3, 1)
		TILE_ROWS_CASE(4, 1)
#if MR1 > 4
		TILE_ROWS_CASE(5, 1)
		TILE_ROWS_CASE(6, 1)
		TILE_ROWS_CASE(7, 1)
		TILE_ROWS_CASE(8, 1)
#endif
#if MR1 > 8
		TILE_ROWS_CASE(9, 1)
		TILE_ROWS_CASE(10, 1)
		TILE_ROWS_CASE(11, 1)
		TILE_ROWS_CASE(12, 1)
#endif
#if MR1 > 12
		TILE_ROWS_CASE(13, 1)
		TILE_ROWS_CASE(14, 1)
		TILE_ROWS_CASE(15, 1)
		TILE_ROWS_CASE(16, 1)
#endif
	default:
		break;
	}
}

static void SFX(tile_nv2)(const struct cnnviz__tile *t,
			  const struct cnnviz__fuse *f);

static void SFX(strip_nv2)(const struct cnnviz__tile *t,
			   const struct cnnviz__fuse *f)
{
	SFX(strip_body)(MR, 2, t, f, SFX(tile_nv2));
}

static __attribute__((unused)) void SFX(tile_nv2)(const struct cnnviz__tile *t,
						  const struct cnnviz__fuse *f)
{
	if (t->nrows) {
		SFX(strip_nv2)(t, f);
		return;
	}
	if (t->np > 1) {
		/* one row across several panels */
		if (t->np == 2)
			SFX(tile_body)(1, 2, 2, t, f);
		else if (t->np == 3)
			SFX(tile_body)(1, 2, 3, t, f);
		else
			SFX(tile_body)(1, 2, 4, t, f);
		return;
	}
	switch (t->rows) {
		TILE_ROWS_CASE(1, 2)
		TILE_ROWS_CASE(2, 2)
		TILE_ROWS_CASE(3, 2)
		TILE_ROWS_CASE(4, 2)
#if MR > 4
		TILE_ROWS_CASE(5, 2)
		TILE_ROWS_CASE(6, 2)
#endif
#if MR > 6
		TILE_ROWS_CASE(7, 2)
		TILE_ROWS_CASE(8, 2)
#endif
	default:
		break;
	}
}
#undef TILE_ROWS_CASE

/* ------------------------------------------------------------ depthwise */

/*
 * Interior pixels [ox, hi) of a 3x3 depthwise row, stride S, DW_PX at a
 * time: the input columns they share are loaded once (loads, not
 * multiply-adds, bound this kernel). r0..r2 point at pixel ox's window.
 * Returns the first pixel not done.
 */
static inline __attribute__((always_inline)) int64_t
SFX(dw3_run)(const int S, int64_t ox, int64_t hi, const float *r0,
	     const float *r1, const float *r2, int64_t C, const V *w, V bias,
	     unsigned fl, const struct cnnviz__fuse *f, V scale, V shift,
	     const float *res, float *y, int nn)
{
	const float *rr[3] = {r0, r1, r2};
	for (; ox + DW_PX <= hi; ox += DW_PX) {
		V a[DW_PX];
		UNROLL for (int q = 0; q < DW_PX; q++)
			a[q] = bias;
		UNROLL for (int i = 0; i < 3; i++) {
			V col[(DW_PX - 1) * 2 + 3];
			UNROLL for (int c = 0; c < (DW_PX - 1) * S + 3; c++)
				col[c] = SFX(loadx)(rr[i] + c * C, nn);
			UNROLL for (int q = 0; q < DW_PX; q++)
				UNROLL for (int j = 0; j < 3; j++)
					a[q] = V_FMA(col[q * S + j], w[i * 3 + j],
						     a[q]);
			rr[i] += DW_PX * S * C;
		}
		UNROLL for (int q = 0; q < DW_PX; q++) {
			if (fl & ~CNNVIZ__FUSE_BIAS)
				a[q] = SFX(post)(a[q], fl, f, scale, shift,
						 res ? res + (ox + q) * C : NULL,
						 nn);
			SFX(storex)(y + (ox + q) * C, a[q], nn);
		}
	}
	return ox;
}

/* Input row iy (inside the image) of d, from channel c0 on. */
static inline __attribute__((always_inline)) const float *
SFX(dw_in_row)(const struct cnnviz__dw_row *d, int64_t iy, int64_t c0)
{
	return (d->rows ? d->rows[iy - d->row0]
			: d->x + iy * d->g->w * d->g->cin) + c0;
}

/* One pixel of a 3x3 window that hangs over the padding: its taps inside
   the input, in (i, j) order, the weights in registers. */
static inline __attribute__((always_inline)) V
SFX(dw3_edge)(const struct cnnviz__dw_row *d, int64_t c0, int64_t iy0,
	      int64_t ix0, const V *w, V acc, int nn)
{
	const struct cnnviz__conv_geom *g = d->g;
	const int64_t C = g->cin;
	UNROLL for (int i = 0; i < 3; i++) {
		const int64_t iy = iy0 + i * g->dh;
		if (iy < 0 || iy >= g->h)
			continue;
		const float *row = SFX(dw_in_row)(d, iy, c0);
		UNROLL for (int j = 0; j < 3; j++) {
			const int64_t ix = ix0 + j * g->dw;
			if (ix < 0 || ix >= g->w)
				continue;
			acc = V_FMA(SFX(loadx)(row + ix * C, nn), w[i * 3 + j],
				    acc);
		}
	}
	return acc;
}

static inline __attribute__((always_inline)) void
SFX(dw_store)(float *y, const float *res, int64_t ox, int64_t C, V acc,
	      unsigned fl, const struct cnnviz__fuse *f, V scale, V shift,
	      int nn)
{
	if (fl & ~CNNVIZ__FUSE_BIAS)
		acc = SFX(post)(acc, fl, f, scale, shift,
				res ? res + ox * C : NULL, nn);
	SFX(storex)(y + ox * C, acc, nn);
}

/*
 * Channels [c0, c0+n) of one output row, n <= VL (full: n == VL, a
 * constant in each copy). Each output starts from the bias and adds the
 * taps inside the input in (i, j) order. 3x3 kernels keep their weights
 * in registers and run the interior columns [lo, hi) without checks.
 */
static inline __attribute__((always_inline)) void
SFX(dw_body)(const int full, const struct cnnviz__dw_row *d,
	     const struct cnnviz__fuse *f, int64_t c0, int n)
{
	const struct cnnviz__conv_geom *g = d->g;
	const int64_t C = g->cin, kw = g->kw;
	const unsigned fl = f ? f->kflags : 0;
	const int nn = full ? VL : n;
	V bias = V_ZERO(), scale = V_ZERO(), shift = V_ZERO();
	if (fl & CNNVIZ__FUSE_BIAS)
		bias = SFX(loadx)(f->bias + c0, nn);
	if (fl & CNNVIZ__FUSE_AFFINE) {
		scale = SFX(loadx)(f->scale + c0, nn);
		shift = SFX(loadx)(f->shift + c0, nn);
	}
	const int64_t iy0 = d->oy * g->sh - g->pad_t;
	const float *k = d->k + c0;
	float *y = d->y + c0;
	const float *res = d->res ? d->res + c0 : NULL;

/* Output pixel ox's epilogue and store. */
#define DW_STORE(ox, acc)                                                      \
	SFX(dw_store)(y, res, ox, C, acc, fl, f, scale, shift, nn)

	if (g->kh == 3 && kw == 3) {
		V w[9];
		UNROLL for (int q = 0; q < 9; q++)
			w[q] = SFX(loadx)(k + q * C, nn);
		/* The interior needs all three kernel rows inside. */
		const int rows_in = iy0 >= 0 && iy0 + 2 * g->dh < g->h;
		const int64_t lo = rows_in ? d->lo : g->ow;
		const int64_t hi = rows_in ? d->hi : g->ow;
		int64_t ox = 0;
		for (; ox < lo; ox++)
			DW_STORE(ox, SFX(dw3_edge)(d, c0, iy0,
						   ox * g->sw - g->pad_l, w,
						   bias, nn));
		if (lo < hi) {
			const int64_t step = g->sw * C, dC = g->dw * C;
			const int64_t at = (lo * g->sw - g->pad_l) * C;
			const float *r0 = SFX(dw_in_row)(d, iy0, c0) + at;
			const float *r1 = SFX(dw_in_row)(d, iy0 + g->dh, c0) + at;
			const float *r2 =
				SFX(dw_in_row)(d, iy0 + 2 * g->dh, c0) + at;
			if (g->dw == 1 && g->sw == 1)
				ox = SFX(dw3_run)(1, ox, hi, r0, r1, r2, C, w,
						  bias, fl, f, scale, shift, res,
						  y, nn);
			else if (g->dw == 1 && g->sw == 2)
				ox = SFX(dw3_run)(2, ox, hi, r0, r1, r2, C, w,
						  bias, fl, f, scale, shift, res,
						  y, nn);
			r0 += (ox - lo) * step;
			r1 += (ox - lo) * step;
			r2 += (ox - lo) * step;
			for (; ox < hi; ox++, r0 += step, r1 += step,
			     r2 += step) {
				V acc = bias;
				acc = V_FMA(SFX(loadx)(r0, nn), w[0], acc);
				acc = V_FMA(SFX(loadx)(r0 + dC, nn), w[1], acc);
				acc = V_FMA(SFX(loadx)(r0 + 2 * dC, nn), w[2],
					    acc);
				acc = V_FMA(SFX(loadx)(r1, nn), w[3], acc);
				acc = V_FMA(SFX(loadx)(r1 + dC, nn), w[4], acc);
				acc = V_FMA(SFX(loadx)(r1 + 2 * dC, nn), w[5],
					    acc);
				acc = V_FMA(SFX(loadx)(r2, nn), w[6], acc);
				acc = V_FMA(SFX(loadx)(r2 + dC, nn), w[7], acc);
				acc = V_FMA(SFX(loadx)(r2 + 2 * dC, nn), w[8],
					    acc);
				DW_STORE(ox, acc);
			}
		}
		for (; ox < g->ow; ox++)
			DW_STORE(ox, SFX(dw3_edge)(d, c0, iy0,
						   ox * g->sw - g->pad_l, w,
						   bias, nn));
		return;
	}
	/* Any other kernel: every tap checked. */
	for (int64_t ox = 0; ox < g->ow; ox++) {
		const int64_t ix0 = ox * g->sw - g->pad_l;
		V acc = bias;
		for (int64_t i = 0; i < g->kh; i++) {
			const int64_t iy = iy0 + i * g->dh;
			if (iy < 0 || iy >= g->h)
				continue;
			const float *row = SFX(dw_in_row)(d, iy, c0);
			for (int64_t j = 0; j < kw; j++) {
				int64_t ix = ix0 + j * g->dw;
				if (ix < 0 || ix >= g->w)
					continue;
				acc = V_FMA(SFX(loadx)(row + ix * C, nn),
					    SFX(loadx)(k + (i * kw + j) * C, nn),
					    acc);
			}
		}
		DW_STORE(ox, acc);
	}
#undef DW_STORE
}

static __attribute__((unused)) void SFX(dw_full)(const struct cnnviz__dw_row *d,
			 const struct cnnviz__fuse *f, int64_t c0)
{
	SFX(dw_body)(1, d, f, c0, VL);
}

static __attribute__((unused)) void SFX(dw_part)(const struct cnnviz__dw_row *d,
			 const struct cnnviz__fuse *f, int64_t c0, int n)
{
	SFX(dw_body)(0, d, f, c0, n);
}

/* ---------------------------------------------------------------- pooling */

static __attribute__((unused)) void
SFX(pool_px)(const float *x, int64_t dx, int64_t dy, int64_t kh, int64_t kw,
	     int64_t c, int avg, float scale, float *y)
{
	for (int64_t c0 = 0; c0 < c; c0 += VL) {
		const int n = c - c0 < VL ? (int)(c - c0) : VL;
		const float *p = x + c0;
		V m = SFX(loadx)(p, n);
		for (int64_t i = 0; i < kh; i++)
			for (int64_t j = 0; j < kw; j++) {
				if (i == 0 && j == 0)
					continue;
				V v = SFX(loadx)(p + i * dy + j * dx, n);
				/* v > m ? v : m, as the portable loops */
				m = avg ? V_ADD(m, v) : V_MAX(v, m);
			}
		if (avg && kh * kw > 1)
			m = V_MUL(m, V_SET1(scale));
		SFX(storex)(y + c0, m, n);
	}
}
