/*
 * Declarations shared by the image side of lib/: decoding (image.c,
 * png.c), preprocessing (resize.c), colour maps (colormap.c), the bitmap
 * font (font.c) and the renderers (render.c).
 */
#ifndef CNNVIZ_PICTURE_H
#define CNNVIZ_PICTURE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Pixels are 8-bit, rows top to bottom, channels interleaved, no padding. */
struct cnnviz_image {
	int64_t width;
	int64_t height;
	int channels; /* 1 = gray, 3 = RGB */
	const char *format; /* "jpeg", "png" or "" (static string) */
	uint8_t *px;
};

/* Defaults of the image options (see the "Images and pictures" section). */
#define CNNVIZ__MAX_PIXELS_DEFAULT 100000000
/* Largest image file read into memory before decoding. */
#define CNNVIZ__MAX_IMAGE_FILE ((size_t)1 << 30)

/* The "max_pixels" option. */
int64_t cnnviz__max_pixels(const cnnviz_options *o);

/*
 * A zeroed image; fails with CNNVIZ_ERR_LIMIT when width * height exceeds
 * max_pixels (checked before allocating). *out: new.
 */
int cnnviz__image_alloc(int64_t width, int64_t height, int channels,
			int64_t max_pixels, cnnviz_image **out,
			struct cnnviz_error *err);

/* What to do with a PNG alpha channel (the "png_alpha" option). */
enum cnnviz__alpha_mode {
	CNNVIZ__ALPHA_DROP,
	CNNVIZ__ALPHA_BLACK,
	CNNVIZ__ALPHA_WHITE,
};

/*
 * Decodes a PNG held in memory (png.c). Every libpng call, and libpng's
 * setjmp/longjmp, stays inside png.c. *out: new.
 */
int cnnviz__png_decode(const uint8_t *data, size_t size, int64_t max_pixels,
		       int alpha_mode, cnnviz_image **out,
		       struct cnnviz_error *err);

/* ------------------------------------------------------------ colour maps */

#define CNNVIZ__CMAP_COUNT 5
/* "viridis, magma, ..." for error messages. */
const char *cnnviz__cmap_names(void);
/*
 * The colour of t in [0, 1] (clamped; NaN gives the low end), looked up as
 * matplotlib does: entry floor(t * 256), 1.0 itself giving entry 255.
 */
void cnnviz__cmap_rgb(const uint32_t *table, double t, uint8_t rgb[3]);

/* ------------------------------------------------------------------ font */

#define CNNVIZ__FONT_W 5
#define CNNVIZ__FONT_H 7
/* Horizontal pitch: glyph plus one blank column. */
#define CNNVIZ__FONT_ADVANCE 6

/* The 7 rows of character c (bit 4 = leftmost column). */
const uint8_t *cnnviz__font_glyph(int c);
/* Width in pixels of s drawn at an integer scale (no trailing blank). */
int64_t cnnviz__text_width(const char *s, int scale);
/*
 * Draws s with its top-left corner at (x, y) into an RGB8 canvas of
 * width x height; pixels outside the canvas are clipped.
 */
void cnnviz__text_draw(uint8_t *rgb, int64_t width, int64_t height,
		       int64_t x, int64_t y, const char *s, int scale,
		       uint32_t colour);

/* --------------------------------------------------------------- parsing */

/*
 * Parses "a,b" (two finite numbers, a < b). Returns 0, or -1 when the
 * text is not such a pair.
 */
int cnnviz__parse_range(const char *s, double *a, double *b);

#endif /* CNNVIZ_PICTURE_H */
