/*
 * Every libpng call lives here. libpng reports errors by longjmp; each
 * setjmp is set in a small *_body() function that only touches state
 * through its context struct, and no longjmp ever leaves this file.
 * libpng's warnings (which it would print) are dropped.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "picture.h"

struct png_ctx {
	png_structp png;
	png_infop info;
	char msg[256]; /* libpng's error text */

	/* Reading */
	const uint8_t *data;
	size_t size, pos;
	int64_t max_pixels;
	int alpha_mode;
	int over_limit;
	png_uint_32 w, h;
	int channels;      /* after the transforms: 1..4 */
	uint8_t *buf;      /* w * h * channels */
	png_bytep *rows;

	/* Writing */
	FILE *f;
	const cnnviz_image *img;
};

static void on_error(png_structp png, png_const_charp msg)
{
	struct png_ctx *c = png_get_error_ptr(png);

	snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown error");
	png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void on_read(png_structp png, png_bytep out, size_t len)
{
	struct png_ctx *c = png_get_io_ptr(png);

	if (len > c->size - c->pos)
		png_error(png, "truncated PNG data (the file ends early)");
	memcpy(out, c->data + c->pos, len);
	c->pos += len;
}

/* Returns 0, or -1 after a libpng error (c->msg), -2 over max_pixels. */
static int decode_body(struct png_ctx *c)
{
	png_structp png = c->png;
	png_infop info = c->info;

	if (setjmp(png_jmpbuf(png)))
		return -1;
	png_set_read_fn(png, c, on_read);
	png_read_info(png, info);
	c->w = png_get_image_width(png, info);
	c->h = png_get_image_height(png, info);
	if ((int64_t)c->w > c->max_pixels / (int64_t)c->h) {
		c->over_limit = 1;
		return -2;
	}
	/* Palette -> RGB, 1/2/4-bit gray -> 8, tRNS -> an alpha channel. */
	png_set_expand(png);
	if (png_get_bit_depth(png, info) == 16)
		png_set_scale_16(png);
	if (c->alpha_mode == CNNVIZ__ALPHA_DROP)
		png_set_strip_alpha(png);
	png_set_interlace_handling(png);
	png_read_update_info(png, info);
	c->channels = png_get_channels(png, info);
	if (c->channels < 1 || c->channels > 4 ||
	    png_get_rowbytes(png, info) != (size_t)c->w * (size_t)c->channels)
		png_error(png, "unexpected row layout after conversion");
	size_t row = (size_t)c->w * (size_t)c->channels;
	c->buf = malloc(row * c->h);
	c->rows = malloc(sizeof *c->rows * c->h);
	if (!c->buf || !c->rows)
		png_error(png, "out of memory for the pixels");
	for (png_uint_32 y = 0; y < c->h; y++)
		c->rows[y] = c->buf + row * y;
	png_read_image(png, c->rows);
	return 0;
}

/* Gray+alpha or RGBA in c->buf -> 1 or 3 channels in img. */
static void flatten(const struct png_ctx *c, cnnviz_image *img)
{
	size_t n = (size_t)c->w * (size_t)c->h;
	int ci = c->channels, co = img->channels;
	unsigned bg = c->alpha_mode == CNNVIZ__ALPHA_WHITE ? 255 : 0;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *s = c->buf + i * (size_t)ci;
		uint8_t *d = img->px + i * (size_t)co;
		if (ci == co) {
			memcpy(d, s, (size_t)co);
			continue;
		}
		unsigned a = s[co];
		for (int k = 0; k < co; k++)
			d[k] = (uint8_t)((s[k] * a + bg * (255 - a) + 127) /
					 255);
	}
}

int cnnviz__png_decode(const uint8_t *data, size_t size, int64_t max_pixels,
		       int alpha_mode, cnnviz_image **out,
		       struct cnnviz_error *err)
{
	struct png_ctx c;
	cnnviz_image *img = NULL;
	int rc;

	/*
	 * IHDR is always the first chunk: check the cap from its bytes, as
	 * png_read_info() would first read on to the image data.
	 */
	if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
		uint32_t w = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 |
			     (uint32_t)data[18] << 8 | data[19];
		uint32_t h = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 |
			     (uint32_t)data[22] << 8 | data[23];
		if (w && h && (int64_t)w > max_pixels / (int64_t)h)
			return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, "max_pixels",
					    "image of %lux%lu pixels is larger "
					    "than max_pixels = %lld",
					    (unsigned long)w, (unsigned long)h,
					    (long long)max_pixels);
	}
	memset(&c, 0, sizeof c);
	c.data = data;
	c.size = size;
	c.max_pixels = max_pixels;
	c.alpha_mode = alpha_mode;
	c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error,
				       on_warning);
	if (c.png)
		c.info = png_create_info_struct(c.png);
	if (!c.png || !c.info) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				  "cannot start libpng");
		goto out_destroy;
	}
	rc = decode_body(&c);
	if (rc == -2) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_LIMIT, "max_pixels",
				  "image of %lux%lu pixels is larger than "
				  "max_pixels = %lld",
				  (unsigned long)c.w, (unsigned long)c.h,
				  (long long)max_pixels);
		goto out_destroy;
	}
	if (rc) {
		int oom = strstr(c.msg, "out of memory") != NULL;
		rc = cnnviz__fail(err, oom ? CNNVIZ_ERR_NOMEM : CNNVIZ_ERR_IMAGE,
				  NULL, "%s%s", oom ? "" : "corrupt PNG: ",
				  c.msg);
		goto out_destroy;
	}
	rc = cnnviz__image_alloc(c.w, c.h, c.channels <= 2 ? 1 : 3,
				 max_pixels, &img, err);
	if (rc)
		goto out_destroy;
	img->format = "png";
	flatten(&c, img);
	*out = img;
out_destroy:
	png_destroy_read_struct(c.png ? &c.png : NULL,
				c.info ? &c.info : NULL, NULL);
	free(c.rows);
	free(c.buf);
	return rc;
}

/* ------------------------------------------------------------- writing */

static int encode_body(struct png_ctx *c)
{
	png_structp png = c->png;
	const cnnviz_image *img = c->img;

	if (setjmp(png_jmpbuf(png)))
		return -1;
	png_init_io(png, c->f);
	png_set_IHDR(png, c->info, (png_uint_32)img->width,
		     (png_uint_32)img->height, 8,
		     img->channels == 1 ? PNG_COLOR_TYPE_GRAY
					: PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		     PNG_FILTER_TYPE_DEFAULT);
	/* Everything that shapes the bytes is fixed here, not defaulted. */
	png_set_compression_level(png, 6);
	png_set_compression_mem_level(png, 8);
	png_set_compression_window_bits(png, 15);
	png_set_compression_strategy(png, 1 /* Z_FILTERED */);
	png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_ALL_FILTERS);
	png_write_info(png, c->info);
	size_t row = (size_t)img->width * (size_t)img->channels;
	for (int64_t y = 0; y < img->height; y++)
		png_write_row(png, img->px + row * (size_t)y);
	png_write_end(png, NULL);
	return 0;
}

/* "dir/.name.tmp-PID-N" for "dir/name". */
int cnnviz_image_write_png(const cnnviz_image *img, const char *path,
			   struct cnnviz_error *err)
{
	struct png_ctx c;
	struct cnnviz__outfile o;
	int rc;

	cnnviz__error_clear(err);
	if (!img || !path || !path[0])
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "image or path is missing");
	if (img->width > PNG_UINT_31_MAX || img->height > PNG_UINT_31_MAX) {
		cnnviz__error_file(err, path);
		return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, NULL,
				    "image too large for PNG");
	}
	if ((rc = cnnviz__outfile_open(&o, path, err)))
		return rc;
	memset(&c, 0, sizeof c);
	c.img = img;
	c.f = o.f;
	c.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, on_error,
					on_warning);
	if (c.png)
		c.info = png_create_info_struct(c.png);
	if (!c.png || !c.info)
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				  "cannot start libpng");
	else if (encode_body(&c))
		rc = cnnviz__fail(err, CNNVIZ_ERR_IO, NULL,
				  "cannot write PNG: %s (%s)", c.msg,
				  strerror(errno));
	png_destroy_write_struct(c.png ? &c.png : NULL,
				 c.info ? &c.info : NULL);
	if (rc) {
		cnnviz__outfile_discard(&o);
		cnnviz__error_file(err, path);
		return rc;
	}
	return cnnviz__outfile_commit(&o, 1, err);
}
