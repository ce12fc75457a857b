/*
 * Picture output: colour-map tables, the bitmap font, feature-map grid
 * geometry and colours (recomputed here pixel by pixel), flat and
 * non-finite channels, the legend strip, overlay blending against an
 * independent float64 computation, and PNG files (read back with libpng,
 * byte-identical twice, no stray chunks or temporary files).
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <png.h>

#include "cnnviz.h"
#include "picture.h"

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char buf[4][256];
	static int k;
	char *p = buf[k++ % 4];
	snprintf(p, 256, "%s/%s", tmpdir, name);
	return p;
}

static cnnviz_options *opts_of(const char *const *kv)
{
	cnnviz_options *o;
	struct cnnviz_error e;
	assert_int_equal(cnnviz_options_new(&o), CNNVIZ_OK);
	for (; kv && kv[0]; kv += 2) {
		int rc = cnnviz_options_set(o, kv[0], kv[1], &e);
		if (rc)
			print_error("%s=%s: %s\n", kv[0], kv[1], e.message);
		assert_int_equal(rc, CNNVIZ_OK);
	}
	return o;
}

static uint32_t rgb_at(const cnnviz_image *img, int64_t x, int64_t y)
{
	const uint8_t *p = cnnviz_image_pixels(img) +
			   (y * cnnviz_image_width(img) + x) * 3;
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* matplotlib's rule, written out again: floor(t * 256), 1.0 -> 255. */
static uint32_t ref_colour(const uint32_t *table, double v, double lo,
			   double hi)
{
	double t = hi > lo && !isnan(v) ? (v - lo) / (hi - lo) : 0;
	int i = t <= 0 ? 0 : t >= 1 ? 255 : (int)floor(t * 256);
	return table[i > 255 ? 255 : i];
}

/* --------------------------------------------------------- colour maps */

static void test_colormaps(void **state)
{
	(void)state;
	const uint32_t *v = cnnviz_colormap("viridis");
	assert_non_null(v);
	assert_int_equal(v[0], 0x440154);
	assert_int_equal(v[255], 0xfde725);
	const uint32_t *m = cnnviz_colormap("magma");
	assert_int_equal(m[0], 0x000004);
	assert_int_equal(m[255], 0xfcfdbf);
	const uint32_t *t = cnnviz_colormap("turbo");
	assert_int_equal(t[0], 0x30123b);
	assert_int_equal(t[255], 0x7a0403);
	const uint32_t *g = cnnviz_colormap("gray");
	for (int i = 0; i < 256; i++)
		assert_int_equal(g[i], (uint32_t)i * 0x010101u);
	assert_null(cnnviz_colormap("Viridis"));
	assert_null(cnnviz_colormap(NULL));

	/*
	 * jet from matplotlib's segment definition, interpolated here. Where
	 * a channel lands exactly on k + 0.5, the
	 * table follows matplotlib's own float rounding, so either k or
	 * k + 1 is accepted there.
	 */
	static const double seg[3][6][2] = {
		{{0, 0}, {0.35, 0}, {0.66, 1}, {0.89, 1}, {1, 0.5}, {2, 0}},
		{{0, 0}, {0.125, 0}, {0.375, 1}, {0.64, 1}, {0.91, 0}, {1, 0}},
		{{0, 0.5}, {0.11, 1}, {0.34, 1}, {0.65, 0}, {1, 0}, {2, 0}},
	};
	const uint32_t *j = cnnviz_colormap("jet");
	int ties = 0;
	for (int i = 0; i < 256; i++) {
		double x = i / 255.0;
		for (int c = 0; c < 3; c++) {
			int s = 0;
			while (seg[c][s + 1][0] < x)
				s++;
			double x0 = seg[c][s][0], x1 = seg[c][s + 1][0];
			double y = 255 * (seg[c][s][1] +
					  (x - x0) / (x1 - x0) *
						  (seg[c][s + 1][1] -
						   seg[c][s][1]));
			int got = (int)(j[i] >> (16 - 8 * c) & 0xff);
			int want = (int)floor(y + 0.5);
			double frac = y - floor(y);
			if (fabs(frac - 0.5) < 1e-9) {
				int below = (int)floor(y + 0.5 - 1e-6);
				ties++;
				assert_true(got == below || got == below + 1);
				continue;
			}
			if (got != want)
				print_error("jet[%d][%d] = %d, want %d\n", i,
					    c, got, want);
			assert_int_equal(got, want);
		}
	}
	print_message("jet: %d channel values on an exact .5 tie\n", ties);

	uint8_t rgb[3];
	static const struct {
		double t;
		int i;
	} lookups[] = {{0, 0},      {-3, 0},    {NAN, 0},  {1, 255},
		       {7, 255},    {0.5, 128}, {0.999, 255}, {0.0039, 0},
		       {0.004, 1}, {INFINITY, 255}};
	for (size_t k = 0; k < sizeof lookups / sizeof lookups[0]; k++) {
		cnnviz__cmap_rgb(v, lookups[k].t, rgb);
		uint32_t c = (uint32_t)rgb[0] << 16 | rgb[1] << 8 | rgb[2];
		assert_int_equal(c, v[lookups[k].i]);
	}
}

static void test_font(void **state)
{
	(void)state;
	for (int c = 32; c < 127; c++) {
		const uint8_t *g = cnnviz__font_glyph(c);
		int on = 0;
		for (int r = 0; r < CNNVIZ__FONT_H; r++) {
			assert_int_equal(g[r] & ~0x1f, 0); /* 5 columns */
			on += g[r] != 0;
		}
		assert_true(c == ' ' ? on == 0 : on > 0);
		for (int d = 32; d < c; d++) /* every glyph distinct */
			assert_memory_not_equal(g, cnnviz__font_glyph(d),
						CNNVIZ__FONT_H);
	}
	assert_ptr_equal(cnnviz__font_glyph(200), cnnviz__font_glyph('?'));
	assert_int_equal(cnnviz__text_width("", 2), 0);
	assert_int_equal(cnnviz__text_width("ab", 1), 11);
	assert_int_equal(cnnviz__text_width("ab", 2), 22);

	/* 'L' drawn at 2x: the left column and the bottom row. */
	uint8_t px[12 * 16 * 3];
	memset(px, 0xff, sizeof px);
	cnnviz__text_draw(px, 12, 16, 1, 1, "L", 2, 0x000000);
	for (int y = 0; y < 16; y++)
		for (int x = 0; x < 12; x++) {
			int ink = x >= 1 && x < 3 && y >= 1 && y < 15;
			ink |= y >= 13 && y < 15 && x >= 1 && x < 11;
			assert_int_equal(px[(y * 12 + x) * 3], ink ? 0 : 255);
		}
}

/* ------------------------------------------------------------- grids */

enum { GH = 3, GW = 4, GC = 5 };

static void fill_tensor(float *d)
{
	for (int y = 0; y < GH; y++)
		for (int x = 0; x < GW; x++) {
			float *p = d + (y * GW + x) * GC;
			p[0] = (float)(y * GW + x);          /* ramp 0..11 */
			p[1] = (float)sin(y * 7.1 + x * 1.3); /* varied */
			p[2] = 0;                            /* dead */
			p[3] = 3.5f;                         /* constant */
			p[4] = (float)(x - y);               /* NaN/inf */
		}
	d[(1 * GW + 1) * GC + 4] = NAN;
	d[(2 * GW + 3) * GC + 4] = INFINITY;
}

/* Checks every pixel of a legend-less grid against a recomputation. */
static void check_grid(const cnnviz_image *img, const float *d, int cols,
		       int k, int sep, const uint32_t *table, int norm_layer,
		       double flo, double fhi)
{
	int rows = (GC + cols - 1) / cols;
	int tw = GW * k, th = GH * k;
	assert_int_equal(cnnviz_image_width(img), cols * tw + (cols + 1) * sep);
	assert_int_equal(cnnviz_image_height(img), rows * th + (rows + 1) * sep);
	assert_int_equal(cnnviz_image_channels(img), 3);
	double lo[GC], hi[GC], llo = INFINITY, lhi = -INFINITY;
	for (int c = 0; c < GC; c++) {
		lo[c] = INFINITY;
		hi[c] = -INFINITY;
		for (int i = 0; i < GH * GW; i++) {
			double v = d[i * GC + c];
			if (isfinite(v)) {
				lo[c] = fmin(lo[c], v);
				hi[c] = fmax(hi[c], v);
			}
		}
		llo = fmin(llo, lo[c]);
		lhi = fmax(lhi, hi[c]);
	}
	for (int64_t y = 0; y < cnnviz_image_height(img); y++)
		for (int64_t x = 0; x < cnnviz_image_width(img); x++) {
			uint32_t want = 0xffffff; /* separator / empty */
			int64_t col = x / (tw + sep), row = y / (th + sep);
			int64_t tx = x - col * (tw + sep) - sep;
			int64_t ty = y - row * (th + sep) - sep;
			int c = (int)(row * cols + col);
			if (tx >= 0 && ty >= 0 && col < cols && c < GC) {
				double v = d[((ty / k) * GW + tx / k) * GC + c];
				double a = norm_layer == 1 ? llo
					   : norm_layer == 2 ? flo : lo[c];
				double b = norm_layer == 1 ? lhi
					   : norm_layer == 2 ? fhi : hi[c];
				want = ref_colour(table, v, a, b);
			}
			if (rgb_at(img, x, y) != want)
				print_error("pixel (%lld,%lld) = %06x, want "
					    "%06x\n", (long long)x,
					    (long long)y, rgb_at(img, x, y),
					    want);
			assert_int_equal(rgb_at(img, x, y), want);
		}
}

static void test_grid_geometry(void **state)
{
	(void)state;
	float d[GH * GW * GC];
	uint8_t flags[GC];
	cnnviz_image *img;
	struct cnnviz_error e;
	fill_tensor(d);

	const char *kv[] = {"cols", "2", "upscale", "3", "legend", "0", NULL};
	cnnviz_options *o = opts_of(kv);
	assert_int_equal(cnnviz_render_grid(d, GH, GW, GC, "x", o, &img, flags,
					    &e), CNNVIZ_OK);
	/* 2 columns of 12-pixel tiles, 3 rows of 9: 27 x 31. */
	assert_int_equal(cnnviz_image_width(img), 27);
	assert_int_equal(cnnviz_image_height(img), 31);
	check_grid(img, d, 2, 3, 1, cnnviz_colormap("viridis"), 0, 0, 0);
	assert_int_equal(flags[0], 0);
	assert_int_equal(flags[1], 0);
	assert_int_equal(flags[2], CNNVIZ_CHANNEL_FLAT);
	assert_int_equal(flags[3], CNNVIZ_CHANNEL_FLAT);
	assert_int_equal(flags[4], CNNVIZ_CHANNEL_NONFINITE);
	/* Flat tiles (channels 2, 3) are the low colour; in channel 4 the
	   NaN at (1, 1) is low, the +inf at (2, 3) high. */
	assert_int_equal(rgb_at(img, 1, 11), 0x440154);
	assert_int_equal(rgb_at(img, 14, 11), 0x440154);
	assert_int_equal(rgb_at(img, 1 + 3, 21 + 3), 0x440154);
	assert_int_equal(rgb_at(img, 1 + 11, 21 + 8), 0xfde725);
	/* The ramp's ends. */
	assert_int_equal(rgb_at(img, 1, 1), 0x440154);
	assert_int_equal(rgb_at(img, 12, 9), 0xfde725);
	cnnviz_image_free(img);
	cnnviz_options_free(o);

	/* Layer norm, gray, no separators, 3 columns. */
	const char *kv2[] = {"cols",     "3",    "upscale", "2",
			     "separator", "0",   "norm",    "layer",
			     "cmap",     "gray", "legend",  "0", NULL};
	o = opts_of(kv2);
	assert_int_equal(cnnviz_render_grid(d, GH, GW, GC, NULL, o, &img, NULL,
					    NULL), CNNVIZ_OK);
	check_grid(img, d, 3, 2, 0, cnnviz_colormap("gray"), 1, 0, 0);
	cnnviz_image_free(img);
	cnnviz_options_free(o);

	/* Fixed range clamps; cols larger than the channel count. */
	const char *kv3[] = {"cols", "50", "upscale", "1", "norm",
			     "fixed:-1,2.5", "legend", "0", "cmap", "magma",
			     NULL};
	o = opts_of(kv3);
	assert_int_equal(cnnviz_render_grid(d, GH, GW, GC, NULL, o, &img, NULL,
					    NULL), CNNVIZ_OK);
	check_grid(img, d, GC, 1, 1, cnnviz_colormap("magma"), 2, -1, 2.5);
	cnnviz_image_free(img);

	/* global needs global_range, then behaves like fixed. */
	struct cnnviz_error e2;
	assert_int_equal(cnnviz_options_set(o, "norm", "global", NULL),
			 CNNVIZ_OK);
	assert_int_equal(cnnviz_render_grid(d, GH, GW, GC, NULL, o, &img, NULL,
					    &e2), CNNVIZ_ERR_ARG);
	assert_null(img);
	assert_string_equal(e2.where, "norm");
	assert_int_equal(cnnviz_options_set(o, "global_range", "-1,2.5", NULL),
			 CNNVIZ_OK);
	assert_int_equal(cnnviz_render_grid(d, GH, GW, GC, NULL, o, &img, NULL,
					    NULL), CNNVIZ_OK);
	check_grid(img, d, GC, 1, 1, cnnviz_colormap("magma"), 2, -1, 2.5);
	cnnviz_image_free(img);
	assert_int_equal(cnnviz_options_set(o, "norm", "fixed:3,1", NULL),
			 CNNVIZ_OK);
	assert_int_equal(cnnviz_render_grid(d, GH, GW, GC, NULL, o, &img, NULL,
					    &e2), CNNVIZ_ERR_ARG);
	cnnviz_options_free(o);
}

static void test_grid_upscale_and_limits(void **state)
{
	(void)state;
	static const struct {
		int h, w, k;
	} cases[] = {{3, 4, 16}, {48, 48, 2}, {7, 7, 10}, {100, 7, 1},
		     {1, 1, 64}, {64, 64, 1}, {63, 2, 2}};
	const char *kv[] = {"cols", "1", "separator", "0", "legend", "0",
			    NULL};
	cnnviz_options *o = opts_of(kv);
	float *d = calloc(100 * 100, sizeof *d);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cnnviz_image *img;
		assert_int_equal(cnnviz_render_grid(d, cases[i].h, cases[i].w,
						    1, NULL, o, &img, NULL,
						    NULL), CNNVIZ_OK);
		assert_int_equal(cnnviz_image_width(img),
				 cases[i].w * cases[i].k);
		assert_int_equal(cnnviz_image_height(img),
				 cases[i].h * cases[i].k);
		cnnviz_image_free(img);
	}
	cnnviz_options_free(o);

	/* 64 tiles of 512 x 512 over a cap of one million pixels. */
	const char *kv2[] = {"upscale", "64", "max_pixels", "1000000", NULL};
	o = opts_of(kv2);
	cnnviz_image *img = (cnnviz_image *)1;
	struct cnnviz_error e;
	assert_int_equal(cnnviz_render_grid(d, 8, 8, 64, "big", o, &img, NULL,
					    &e), CNNVIZ_ERR_LIMIT);
	assert_null(img);
	assert_int_equal(cnnviz_render_grid(NULL, 8, 8, 64, "x", o, &img, NULL,
					    &e), CNNVIZ_ERR_ARG);
	assert_int_equal(cnnviz_render_grid(d, 0, 8, 1, "x", o, &img, NULL,
					    &e), CNNVIZ_ERR_ARG);
	cnnviz_options_free(o);
	free(d);
}

static void test_grid_legend(void **state)
{
	(void)state;
	float d[GH * GW * GC];
	cnnviz_image *img, *bare;
	fill_tensor(d);
	const char *kv[] = {"upscale", "2", "cols", "3", NULL};
	cnnviz_options *o = opts_of(kv);
	assert_int_equal(cnnviz_render_grid(d, GH, GW, GC, "block1_conv2", o,
					    &img, NULL, NULL), CNNVIZ_OK);
	assert_int_equal(cnnviz_options_set(o, "legend", "0", NULL), CNNVIZ_OK);
	assert_int_equal(cnnviz_render_grid(d, GH, GW, GC, "block1_conv2", o,
					    &bare, NULL, NULL), CNNVIZ_OK);
	int64_t gw = cnnviz_image_width(bare), gh = cnnviz_image_height(bare);
	int64_t w = cnnviz_image_width(img), h = cnnviz_image_height(img);
	/* The grid is 28 wide; the text "norm channel, cmap viridis, 2 flat,
	   1 with NaN/inf" (1x font) widens the picture to fit, margins 4. */
	int64_t text = cnnviz__text_width(
		"norm channel, cmap viridis, 2 flat, 1 with NaN/inf", 1);
	assert_int_equal(w, text + 8);
	/* 4 margin + 4 lines of 9 + bar 8 + 2 + labels 7 + 4 margin. */
	assert_int_equal(h, gh + 4 + 36 + 8 + 2 + 7 + 4);
	/* The grid itself is unchanged, left-aligned. */
	for (int64_t y = 0; y < gh; y++)
		for (int64_t x = 0; x < gw; x++)
			assert_int_equal(rgb_at(img, x, y), rgb_at(bare, x, y));
	/* Text ink in the strip, and the colour bar's two ends. */
	int64_t black = 0;
	for (int64_t y = gh; y < h; y++)
		for (int64_t x = 0; x < w; x++)
			black += rgb_at(img, x, y) == 0;
	assert_true(black > 100);
	int64_t bar_y = gh + 4 + 36;
	assert_int_equal(rgb_at(img, 4, bar_y), 0x440154);
	/* The bar widens with the text, up to 256 pixels. */
	assert_int_equal(rgb_at(img, 4 + 255, bar_y), 0xfde725);
	assert_int_equal(rgb_at(img, 4 + 256, bar_y), 0xffffff);
	cnnviz_image_free(img);
	cnnviz_image_free(bare);
	cnnviz_options_free(o);
}

/* ------------------------------------------------------------ overlay */

static double ref_bilinear1(const float *m, int ih, int iw, int oy, int ox,
			    int oh, int ow)
{
	double fy = fmin(fmax((oy + 0.5) * ih / oh - 0.5, 0), ih - 1);
	double fx = fmin(fmax((ox + 0.5) * iw / ow - 0.5, 0), iw - 1);
	int y0 = (int)fy, x0 = (int)fx;
	int y1 = y0 + 1 < ih ? y0 + 1 : y0, x1 = x0 + 1 < iw ? x0 + 1 : x0;
	double ly = fy - y0, lx = fx - x0;
	return (1 - ly) * (1 - lx) * m[y0 * iw + x0] +
	       (1 - ly) * lx * m[y0 * iw + x1] +
	       ly * (1 - lx) * m[y1 * iw + x0] + ly * lx * m[y1 * iw + x1];
}

static void test_overlay(void **state)
{
	(void)state;
	enum { PH = 5, PW = 7, MH = 2, MW = 3 };
	uint8_t photo_px[PH * PW * 3];
	for (int i = 0; i < PH * PW * 3; i++)
		photo_px[i] = (uint8_t)(i * 37 % 256);
	const float map[MH * MW] = {0.5f, -1, 2, 4, 1.25f, 0};
	cnnviz_image *photo, *out;
	assert_int_equal(cnnviz_image_new(PW, PH, 3, photo_px, &photo, NULL),
			 CNNVIZ_OK);
	const uint32_t *jet = cnnviz_colormap("jet");
	static const char *alphas[] = {"0.4", "0", "1", "0.75"};
	int worst = 0;
	for (int a = 0; a < 4; a++) {
		const char *kv[] = {"alpha", alphas[a], NULL};
		cnnviz_options *o = opts_of(a ? kv : NULL);
		double al = atof(alphas[a]);
		assert_int_equal(cnnviz_render_overlay(photo, map, MH, MW, o,
						       &out, NULL), CNNVIZ_OK);
		assert_int_equal(cnnviz_image_width(out), PW);
		assert_int_equal(cnnviz_image_height(out), PH);
		for (int y = 0; y < PH; y++)
			for (int x = 0; x < PW; x++) {
				float v = (float)ref_bilinear1(map, MH, MW, y,
							       x, PH, PW);
				uint32_t c = ref_colour(jet, v, -1, 4);
				for (int k = 0; k < 3; k++) {
					double p = photo_px[(y * PW + x) * 3 + k];
					double cc = (c >> (16 - 8 * k)) & 0xff;
					int want = (int)floor((1 - al) * p +
							      al * cc + 0.5);
					int got = cnnviz_image_pixels(
						out)[(y * PW + x) * 3 + k];
					worst = abs(got - want) > worst
							? abs(got - want)
							: worst;
				}
			}
		if (al == 0)
			assert_memory_equal(cnnviz_image_pixels(out), photo_px,
					    sizeof photo_px);
		cnnviz_image_free(out);
		cnnviz_options_free(o);
	}
	print_message("overlay vs float64 reference: max |d| = %d\n", worst);
	assert_int_equal(worst, 0);

	/* Gray photo, flat map: every pixel 0.6 * g + 0.4 * jet[0]. */
	uint8_t g[4] = {0, 100, 200, 255};
	cnnviz_image *gp;
	assert_int_equal(cnnviz_image_new(2, 2, 1, g, &gp, NULL), CNNVIZ_OK);
	const float flat[1] = {7};
	assert_int_equal(cnnviz_render_overlay(gp, flat, 1, 1, NULL, &out,
					       NULL), CNNVIZ_OK);
	assert_int_equal(cnnviz_image_channels(out), 3);
	for (int i = 0; i < 4; i++) {
		const uint8_t *p = cnnviz_image_pixels(out) + i * 3;
		assert_int_equal(p[0], (int)floor(0.6 * g[i] + 0.5));
		assert_int_equal(p[2], (int)floor(0.6 * g[i] + 0.4 * 128 + 0.5));
	}
	cnnviz_image_free(out);

	/* A given range clamps: everything above it is the high colour. */
	const char *kv[] = {"overlay_range", "-10,-5", "alpha", "1",
			    "overlay_cmap", "viridis", NULL};
	cnnviz_options *o = opts_of(kv);
	assert_int_equal(cnnviz_render_overlay(gp, map, MH, MW, o, &out, NULL),
			 CNNVIZ_OK);
	assert_int_equal(rgb_at(out, 1, 1), 0xfde725);
	cnnviz_image_free(out);
	cnnviz_options_free(o);
	cnnviz_image_free(gp);
	cnnviz_image_free(photo);
}

/* --------------------------------------------------------------- PNG */

static unsigned count_dir(const char *dir)
{
	DIR *d = opendir(dir);
	unsigned n = 0;
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.' || strlen(e->d_name) > 2;
	closedir(d);
	return n;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	uint8_t *b = malloc(1 << 20);
	*n = fread(b, 1, 1 << 20, f);
	fclose(f);
	return b;
}

static void test_png_output(void **state)
{
	(void)state;
	float d[GH * GW * GC];
	cnnviz_image *img;
	fill_tensor(d);
	assert_int_equal(cnnviz_render_grid(d, GH, GW, GC, "layer", NULL, &img,
					    NULL, NULL), CNNVIZ_OK);
	assert_int_equal(cnnviz_image_write_png(img, tmp_path("a.png"), NULL),
			 CNNVIZ_OK);
	assert_int_equal(cnnviz_image_write_png(img, tmp_path("b.png"), NULL),
			 CNNVIZ_OK);
	assert_int_equal(count_dir(tmpdir), 2); /* no temporary left */

	/* Read back with libpng itself. */
	png_image pi;
	memset(&pi, 0, sizeof pi);
	pi.version = PNG_IMAGE_VERSION;
	assert_true(png_image_begin_read_from_file(&pi, tmp_path("a.png")));
	assert_int_equal(pi.width, cnnviz_image_width(img));
	assert_int_equal(pi.height, cnnviz_image_height(img));
	assert_int_equal(pi.format, PNG_FORMAT_RGB);
	pi.format = PNG_FORMAT_RGB;
	size_t n = PNG_IMAGE_SIZE(pi);
	uint8_t *back = malloc(n);
	assert_true(png_image_finish_read(&pi, NULL, back, 0, NULL));
	assert_memory_equal(back, cnnviz_image_pixels(img), n);
	free(back);

	/* Byte-identical, and only IHDR, IDAT and IEND chunks. */
	size_t na, nb;
	uint8_t *a = slurp(tmp_path("a.png"), &na);
	uint8_t *b = slurp(tmp_path("b.png"), &nb);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	print_message("grid PNG: %zu bytes, identical twice\n", na);
	for (size_t p = 8; p + 8 <= na;) {
		uint32_t len = (uint32_t)a[p] << 24 | a[p + 1] << 16 |
			       a[p + 2] << 8 | a[p + 3];
		char type[5] = {0};
		memcpy(type, a + p + 4, 4);
		assert_true(strcmp(type, "IHDR") == 0 ||
			    strcmp(type, "IDAT") == 0 ||
			    strcmp(type, "IEND") == 0);
		p += 12 + len;
	}
	free(a);
	free(b);

	/* Gray round trip through the library's own reader. */
	uint8_t gp[6] = {0, 50, 100, 150, 200, 250};
	cnnviz_image *g, *gb;
	assert_int_equal(cnnviz_image_new(3, 2, 1, gp, &g, NULL), CNNVIZ_OK);
	assert_int_equal(cnnviz_image_write_png(g, tmp_path("a.png"), NULL),
			 CNNVIZ_OK); /* replaces */
	assert_int_equal(cnnviz_image_load(tmp_path("a.png"), NULL, &gb, NULL),
			 CNNVIZ_OK);
	assert_int_equal(cnnviz_image_channels(gb), 1);
	assert_memory_equal(cnnviz_image_pixels(gb), gp, 6);
	cnnviz_image_free(gb);

	/* Failures leave nothing behind. */
	struct cnnviz_error e;
	assert_int_equal(cnnviz_image_write_png(g, tmp_path("no/such.png"),
						&e), CNNVIZ_ERR_IO);
	assert_string_equal(e.file, tmp_path("no/such.png"));
	assert_int_equal(mkdir(tmp_path("adir"), 0755), 0);
	assert_int_equal(cnnviz_image_write_png(g, tmp_path("adir"), &e),
			 CNNVIZ_ERR_IO);
	print_message("%s\n", e.message);
	assert_int_equal(count_dir(tmpdir), 3); /* a, b, adir */
	assert_int_equal(cnnviz_image_write_png(NULL, "x.png", &e),
			 CNNVIZ_ERR_ARG);
	cnnviz_image_free(g);
	cnnviz_image_free(img);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/cnnviz-test-render-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_colormaps),
		cmocka_unit_test(test_font),
		cmocka_unit_test(test_grid_geometry),
		cmocka_unit_test(test_grid_upscale_and_limits),
		cmocka_unit_test(test_grid_legend),
		cmocka_unit_test(test_overlay),
		cmocka_unit_test(test_png_output),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
