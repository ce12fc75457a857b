/*
 * Pictures of tensors: the feature-map grid with its legend strip, and the
 * overlay of a scalar map on a photo.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "picture.h"

#define WHITE 0xffffffu
#define BLACK 0x000000u
/* Automatic zoom makes a tile's longer side at least this many pixels. */
#define MIN_TILE 64
#define MAX_UPSCALE 64
#define LEGEND_LINES 4

enum norm_kind { NORM_CHANNEL, NORM_LAYER, NORM_GLOBAL, NORM_FIXED };

struct grid_opts {
	const uint32_t *cmap;
	const char *cmap_name;
	int64_t cols, upscale, sep;
	int legend;
	int norm;
	double lo, hi; /* NORM_GLOBAL, NORM_FIXED */
	int64_t max_pixels;
};

static int read_cmap(const cnnviz_options *opts, const char *key,
		     const char *def, const uint32_t **table,
		     const char **name, struct cnnviz_error *err)
{
	*name = cnnviz__opt_str(opts, key, def);
	*table = cnnviz_colormap(*name);
	if (!*table)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, key,
				    "'%s' is not one of %s", *name,
				    cnnviz__cmap_names());
	return CNNVIZ_OK;
}

static int read_grid_opts(const cnnviz_options *opts, struct grid_opts *g,
			  struct cnnviz_error *err)
{
	int rc = read_cmap(opts, "cmap", "viridis", &g->cmap, &g->cmap_name,
			   err);
	if (rc)
		return rc;
	g->cols = cnnviz__opt_int(opts, "cols", 8);
	g->upscale = cnnviz__opt_int(opts, "upscale", 0);
	g->sep = cnnviz__opt_int(opts, "separator", 1);
	g->legend = cnnviz__opt_int(opts, "legend", 1) != 0;
	g->max_pixels = cnnviz__max_pixels(opts);
	if (g->cols < 1 || g->cols > 256)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "cols",
				    "%lld is not in 1..256",
				    (long long)g->cols);
	if (g->upscale < 0 || g->upscale > MAX_UPSCALE)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "upscale",
				    "%lld is not in 0..64",
				    (long long)g->upscale);
	if (g->sep < 0 || g->sep > 16)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "separator",
				    "%lld is not in 0..16", (long long)g->sep);

	const char *n = cnnviz__opt_str(opts, "norm", "channel");
	if (strcmp(n, "channel") == 0) {
		g->norm = NORM_CHANNEL;
	} else if (strcmp(n, "layer") == 0) {
		g->norm = NORM_LAYER;
	} else if (strcmp(n, "global") == 0) {
		g->norm = NORM_GLOBAL;
		const char *r = cnnviz__opt_str(opts, "global_range", NULL);
		if (!r)
			return cnnviz__fail(err, CNNVIZ_ERR_ARG, "norm",
					    "norm global needs the option "
					    "global_range = \"min,max\" over "
					    "all layers");
		if (cnnviz__parse_range(r, &g->lo, &g->hi))
			return cnnviz__fail(err, CNNVIZ_ERR_ARG,
					    "global_range",
					    "'%s' is not \"a,b\" with a < b",
					    r);
	} else if (strncmp(n, "fixed:", 6) == 0) {
		g->norm = NORM_FIXED;
		if (cnnviz__parse_range(n + 6, &g->lo, &g->hi))
			return cnnviz__fail(err, CNNVIZ_ERR_ARG, "norm",
					    "'%s' is not fixed:a,b with a < b",
					    n);
	} else {
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "norm",
				    "'%s' is not channel, layer, global or "
				    "fixed:a,b", n);
	}
	return CNNVIZ_OK;
}

static const char *const norm_names[] = {"channel", "layer", "global",
					 "fixed"};

/*
 * Per-channel range of the finite values of x (h*w, c) and the flags.
 * A channel without finite values gets min = +inf, max = -inf.
 */
static void channel_stats(const float *x, size_t hw, int64_t c, double *mn,
			  double *mx, uint8_t *flags)
{
	for (int64_t k = 0; k < c; k++) {
		mn[k] = INFINITY;
		mx[k] = -INFINITY;
		flags[k] = 0;
	}
	for (size_t i = 0; i < hw; i++, x += c) {
		for (int64_t k = 0; k < c; k++) {
			double v = x[k];
			if (!isfinite(v)) {
				flags[k] |= CNNVIZ_CHANNEL_NONFINITE;
				continue;
			}
			if (v < mn[k])
				mn[k] = v;
			if (v > mx[k])
				mx[k] = v;
		}
	}
	for (int64_t k = 0; k < c; k++)
		if (!(mx[k] > mn[k]))
			flags[k] |= CNNVIZ_CHANNEL_FLAT;
}

/* Position in [0, 1] of v in lo..hi; 0 for an empty range or NaN. */
static double norm01(double v, double lo, double hi)
{
	if (!(hi > lo) || isnan(v))
		return 0.0;
	return (v - lo) / (hi - lo); /* cnnviz__cmap_rgb clamps */
}

static void fill(uint8_t *rgb, int64_t cw, int64_t x0, int64_t y0,
		 int64_t w, int64_t h, const uint8_t col[3])
{
	for (int64_t y = y0; y < y0 + h; y++) {
		uint8_t *p = rgb + (y * cw + x0) * 3;
		for (int64_t x = 0; x < w; x++, p += 3) {
			p[0] = col[0];
			p[1] = col[1];
			p[2] = col[2];
		}
	}
}

/* The legend's text, one line per entry ("" = no line). */
struct legend {
	char line[LEGEND_LINES][160];
	char lo[32], hi[32];
	int fs;        /* font scale */
	int64_t width; /* widest element plus margins */
	int64_t height;
};

static void legend_text(struct legend *L, const char *label, int64_t h,
			int64_t w, int64_t c, double lmin, double lmax,
			const struct grid_opts *g, int64_t n_flat,
			int64_t n_nonfinite, int64_t grid_w)
{
	memset(L, 0, sizeof *L);
	if (label && label[0])
		snprintf(L->line[0], sizeof L->line[0], "%.100s%s", label,
			 strlen(label) > 100 ? "..." : "");
	snprintf(L->line[1], sizeof L->line[1], "shape (%lld, %lld, %lld)",
		 (long long)h, (long long)w, (long long)c);
	if (lmax >= lmin)
		snprintf(L->line[2], sizeof L->line[2], "min %.4g  max %.4g",
			 lmin, lmax);
	else
		snprintf(L->line[2], sizeof L->line[2], "no finite values");
	int n = snprintf(L->line[3], sizeof L->line[3],
			 "norm %s, cmap %s, %lld flat", norm_names[g->norm],
			 g->cmap_name, (long long)n_flat);
	if (n_nonfinite && n > 0 && (size_t)n < sizeof L->line[3])
		snprintf(L->line[3] + n, sizeof L->line[3] - (size_t)n,
			 ", %lld with NaN/inf", (long long)n_nonfinite);
	if (g->norm == NORM_CHANNEL) {
		snprintf(L->lo, sizeof L->lo, "tile min");
		snprintf(L->hi, sizeof L->hi, "tile max");
	} else {
		double lo = g->norm == NORM_LAYER ? lmin : g->lo;
		double hi = g->norm == NORM_LAYER ? lmax : g->hi;
		snprintf(L->lo, sizeof L->lo, "%.4g", lo);
		snprintf(L->hi, sizeof L->hi, "%.4g", hi);
	}
	L->fs = grid_w >= 320 ? 2 : 1;
	int fs = L->fs;
	int64_t lines = 0, widest = 128 * fs;
	for (int i = 0; i < LEGEND_LINES; i++) {
		if (!L->line[i][0])
			continue;
		lines++;
		int64_t tw = cnnviz__text_width(L->line[i], fs);
		if (tw > widest)
			widest = tw;
	}
	int64_t labels = cnnviz__text_width(L->lo, fs) +
			 cnnviz__text_width(L->hi, fs) + 6 * fs;
	if (labels > widest)
		widest = labels;
	L->width = widest + 8 * fs;
	/* margin, text lines, colour bar, gap, bar labels, margin */
	L->height = 4 * fs + lines * 9 * fs + 8 * fs + 2 * fs + 7 * fs +
		    4 * fs;
}

static void legend_draw(const struct legend *L, const struct grid_opts *g,
			uint8_t *rgb, int64_t cw, int64_t ch, int64_t y0)
{
	int fs = L->fs;
	int64_t x = 4 * fs, y = y0 + 4 * fs;

	for (int i = 0; i < LEGEND_LINES; i++) {
		if (!L->line[i][0])
			continue;
		cnnviz__text_draw(rgb, cw, ch, x, y, L->line[i], fs, BLACK);
		y += 9 * fs;
	}
	int64_t bw = 128 * fs;
	if (bw < L->width - 8 * fs)
		bw = L->width - 8 * fs < 256 * fs ? L->width - 8 * fs
						  : 256 * fs;
	for (int64_t i = 0; i < bw; i++) {
		uint8_t col[3];
		cnnviz__cmap_rgb(g->cmap, ((double)i + 0.5) / (double)bw, col);
		fill(rgb, cw, x + i, y, 1, 8 * fs, col);
	}
	y += 10 * fs;
	cnnviz__text_draw(rgb, cw, ch, x, y, L->lo, fs, BLACK);
	cnnviz__text_draw(rgb, cw, ch, x + bw - cnnviz__text_width(L->hi, fs),
			  y, L->hi, fs, BLACK);
}

int cnnviz_render_grid(const float *data, int64_t height, int64_t width,
		       int64_t channels, const char *label,
		       const cnnviz_options *opts, cnnviz_image **out,
		       uint8_t *flags, struct cnnviz_error *err)
{
	struct grid_opts g;
	struct legend L;
	double *mn = NULL, *mx;
	uint8_t *fl = flags;
	cnnviz_image *img = NULL;
	size_t hw, n;
	int rc;

	cnnviz__error_clear(err);
	if (!out)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "out is NULL");
	*out = NULL;
	if (!data || height < 1 || width < 1 || channels < 1)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "bad feature map (%lld, %lld, %lld)",
				    (long long)height, (long long)width,
				    (long long)channels);
	rc = read_grid_opts(opts, &g, err);
	if (rc)
		return rc;
	if (cnnviz__mul_size((size_t)height, (size_t)width, &hw) ||
	    cnnviz__mul_size(hw, (size_t)channels, &n) ||
	    height > g.max_pixels || width > g.max_pixels)
		return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, "max_pixels",
				    "feature map too large to draw");

	int64_t k = g.upscale;
	if (k == 0) {
		int64_t side = height > width ? height : width;
		k = (MIN_TILE + side - 1) / side;
		if (k > MAX_UPSCALE)
			k = MAX_UPSCALE;
	}
	int64_t tw = width * k, th = height * k;
	int64_t cols = channels < g.cols ? channels : g.cols;
	int64_t rows = (channels + cols - 1) / cols;
	/* Checked in double first: rows * th can exceed int64. */
	double gw = (double)cols * (double)tw + (double)(cols + 1) * g.sep;
	double gh = (double)rows * (double)th + (double)(rows + 1) * g.sep;
	if (gw * gh > (double)g.max_pixels)
		return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, "max_pixels",
				    "a grid of %lldx%lld tiles of %lldx%lld "
				    "pixels is larger than max_pixels = %lld "
				    "(lower upscale or cols)",
				    (long long)cols, (long long)rows,
				    (long long)tw, (long long)th,
				    (long long)g.max_pixels);
	int64_t grid_w = (int64_t)gw, grid_h = (int64_t)gh;

	mn = malloc(sizeof *mn * 2 * (size_t)channels);
	if (!fl)
		fl = malloc((size_t)channels);
	if (!mn || !fl) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				  "out of memory for channel statistics");
		goto out_free;
	}
	mx = mn + channels;
	channel_stats(data, hw, channels, mn, mx, fl);
	double lmin = INFINITY, lmax = -INFINITY;
	int64_t n_flat = 0, n_nonfinite = 0;
	for (int64_t c = 0; c < channels; c++) {
		lmin = mn[c] < lmin ? mn[c] : lmin;
		lmax = mx[c] > lmax ? mx[c] : lmax;
		n_flat += (fl[c] & CNNVIZ_CHANNEL_FLAT) != 0;
		n_nonfinite += (fl[c] & CNNVIZ_CHANNEL_NONFINITE) != 0;
	}

	int64_t cw = grid_w, chh = grid_h;
	if (g.legend) {
		legend_text(&L, label, height, width, channels, lmin, lmax, &g,
			    n_flat, n_nonfinite, grid_w);
		if (L.width > cw)
			cw = L.width;
		chh += L.height;
		if ((double)cw * (double)chh > (double)g.max_pixels) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_LIMIT, "max_pixels",
					  "the picture would be larger than "
					  "max_pixels = %lld",
					  (long long)g.max_pixels);
			goto out_free;
		}
	}
	rc = cnnviz__image_alloc(cw, chh, 3, g.max_pixels, &img, err);
	if (rc)
		goto out_free;
	memset(img->px, 0xff, (size_t)cw * (size_t)chh * 3);

	for (int64_t c = 0; c < channels; c++) {
		double lo = g.lo, hi = g.hi;
		if (g.norm == NORM_CHANNEL) {
			lo = mn[c];
			hi = mx[c];
		} else if (g.norm == NORM_LAYER) {
			lo = lmin;
			hi = lmax;
		}
		int64_t x0 = g.sep + (c % cols) * (tw + g.sep);
		int64_t y0 = g.sep + (c / cols) * (th + g.sep);
		for (int64_t y = 0; y < height; y++) {
			for (int64_t x = 0; x < width; x++) {
				double v = data[(y * width + x) * channels + c];
				uint8_t col[3];
				cnnviz__cmap_rgb(g.cmap, norm01(v, lo, hi), col);
				fill(img->px, cw, x0 + x * k, y0 + y * k, k, k,
				     col);
			}
		}
	}
	if (g.legend)
		legend_draw(&L, &g, img->px, cw, chh, grid_h);
	*out = img;
	img = NULL;
out_free:
	cnnviz_image_free(img);
	if (fl != flags)
		free(fl);
	free(mn);
	return rc;
}

/* ------------------------------------------------------------- overlay */

int cnnviz_render_overlay(const cnnviz_image *photo, const float *map,
			  int64_t map_height, int64_t map_width,
			  const cnnviz_options *opts, cnnviz_image **out,
			  struct cnnviz_error *err)
{
	const uint32_t *cmap;
	const char *cmap_name;
	cnnviz_image *img = NULL;
	float *up = NULL;
	size_t n;
	double lo, hi;
	int rc;

	cnnviz__error_clear(err);
	if (!out)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "out is NULL");
	*out = NULL;
	if (!photo || !map || map_height < 1 || map_width < 1 ||
	    cnnviz__mul_size((size_t)map_height, (size_t)map_width, &n))
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "bad photo or map (%lld, %lld)",
				    (long long)map_height,
				    (long long)map_width);
	double alpha = cnnviz__opt_float(opts, "alpha", 0.4);
	if (!(alpha >= 0.0 && alpha <= 1.0))
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "alpha",
				    "%g is not in 0..1", alpha);
	rc = read_cmap(opts, "overlay_cmap", "jet", &cmap, &cmap_name, err);
	if (rc)
		return rc;
	const char *r = cnnviz__opt_str(opts, "overlay_range", NULL);
	if (r) {
		if (cnnviz__parse_range(r, &lo, &hi))
			return cnnviz__fail(err, CNNVIZ_ERR_ARG,
					    "overlay_range",
					    "'%s' is not \"a,b\" with a < b",
					    r);
	} else {
		/* The map's own range, not the resized one's: both ends
		   may fall between the resized samples. */
		lo = INFINITY;
		hi = -INFINITY;
		for (size_t i = 0; i < n; i++) {
			double v = map[i];
			if (!isfinite(v))
				continue;
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
	}
	int64_t pw = photo->width, ph = photo->height;
	size_t np = (size_t)pw * (size_t)ph; /* the photo exists */
	up = malloc(sizeof *up * np);
	if (!up) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				  "out of memory for the resized map");
		goto out_free;
	}
	rc = cnnviz__image_alloc(pw, ph, 3, INT64_MAX, &img, err);
	if (rc)
		goto out_free;
	cnnviz__resize_bilinear(map, map_height, map_width, 1, up, ph, pw);
	for (size_t i = 0; i < np; i++) {
		uint8_t col[3];
		cnnviz__cmap_rgb(cmap, norm01(up[i], lo, hi), col);
		const uint8_t *p = photo->px + i * (size_t)photo->channels;
		for (int k = 0; k < 3; k++) {
			double base = p[photo->channels == 3 ? k : 0];
			double v = (1.0 - alpha) * base + alpha * col[k];
			img->px[i * 3 + (size_t)k] = (uint8_t)floor(v + 0.5);
		}
	}
	*out = img;
	img = NULL;
out_free:
	cnnviz_image_free(img);
	free(up);
	return rc;
}
