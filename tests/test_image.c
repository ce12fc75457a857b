/*
 * Image input: decoding of PNG and JPEG files that the test writes itself
 * (libpng, TurboJPEG) into a temporary folder, refusal of other formats,
 * damaged files and oversize headers (preprocessing is in test_resize.c).
 * The photos in ../shared/images (or $CNNVIZ_SHARED/images) are used when
 * present, skipped otherwise.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/testopts.h"
#include <png.h>
#include <turbojpeg.h>

#include "cnnviz.h"

/* ------------------------------------------------------------ helpers */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char buf[8][256];
	static int k;
	char *p = buf[k++ % 8];
	snprintf(p, 256, "%s/%s", tmpdir, name);
	return p;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static unsigned urand(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)((rng >> 11) % n);
}

static void write_bytes(const char *path, const void *d, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(d, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *d = malloc((size_t)len + 1);
	assert_non_null(d);
	assert_int_equal(fread(d, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return d;
}

/*
 * Writes a PNG with libpng directly. rows: height rows of raw samples in
 * the given format (16-bit samples big-endian, as PNG stores them).
 */
struct png_spec {
	int w, h, depth, type, interlace;
	const uint8_t *rows;
	const png_color *palette;
	int n_palette;
	const uint8_t *trns;
	int n_trns;
};

static void write_png(const char *path, const struct png_spec *s)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
						  NULL, NULL);
	png_infop info = png_create_info_struct(png);
	assert_non_null(info);
	if (setjmp(png_jmpbuf(png)))
		fail_msg("libpng failed writing the test image");
	png_init_io(png, f);
	png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h,
		     s->depth, s->type, s->interlace,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	if (s->palette)
		png_set_PLTE(png, info, s->palette, s->n_palette);
	if (s->trns)
		png_set_tRNS(png, info, s->trns, s->n_trns, NULL);
	png_write_info(png, info);
	int ch = s->type == PNG_COLOR_TYPE_RGB ? 3
		 : s->type == PNG_COLOR_TYPE_RGBA ? 4
		 : s->type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
	size_t rb = ((size_t)s->w * (size_t)ch * (size_t)s->depth + 7) / 8;
	png_bytep *rows = malloc(sizeof *rows * (size_t)s->h);
	for (int y = 0; y < s->h; y++)
		rows[y] = (png_bytep)s->rows + rb * (size_t)y;
	png_write_image(png, rows);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	free(rows);
	fclose(f);
}

/* JPEG of pixels (w*h*3 RGB or w*h gray) at quality q, 4:4:4. */
static unsigned char *make_jpeg(const uint8_t *px, int w, int h, int gray,
				int q, unsigned long *size)
{
	tjhandle tj = tjInitCompress();
	unsigned char *buf = NULL;
	assert_non_null(tj);
	assert_int_equal(tjCompress2(tj, px, w, 0, h,
				     gray ? TJPF_GRAY : TJPF_RGB, &buf, size,
				     gray ? TJSAMP_GRAY : TJSAMP_444, q,
				     TJFLAG_ACCURATEDCT), 0);
	tjDestroy(tj);
	return buf;
}

static cnnviz_image *load_ok(const char *path, const cnnviz_options *o)
{
	cnnviz_image *img = NULL;
	struct cnnviz_error e;
	int rc = cnnviz_image_load(path, o, &img, &e);
	if (rc)
		print_error("%s: %s\n", path, e.message);
	assert_int_equal(rc, CNNVIZ_OK);
	assert_non_null(img);
	return img;
}

/* Loads expecting `code`; the message must contain `word` (if given). */
static void load_fails(const void *d, size_t n, const cnnviz_options *o,
		       int code, const char *word)
{
	cnnviz_image *img = (cnnviz_image *)1;
	struct cnnviz_error e;
	int rc = cnnviz_image_load_memory(d, n, "case.bin", o, &img, &e);
	if (rc != code || (word && !strstr(e.message, word)))
		print_error("got %s '%s', want %s with '%s'\n",
			    cnnviz_status_name(rc), e.message,
			    cnnviz_status_name(code), word ? word : "");
	assert_int_equal(rc, code);
	assert_null(img);
	assert_string_equal(e.file, "case.bin");
	if (word)
		assert_non_null(strstr(e.message, word));
}

static const char *shared_images(void)
{
	static char buf[512];
	const char *s = getenv("CNNVIZ_SHARED");
	struct stat st;
	snprintf(buf, sizeof buf, "%s/images", s ? s : "../shared");
	return stat(buf, &st) == 0 ? buf : NULL;
}

/* ----------------------------------------------------------- PNG input */

static void test_png_gray_rgb(void **state)
{
	(void)state;
	const uint8_t gray[] = {0, 1, 2, 127, 128, 255};
	struct png_spec s = {3, 2, 8, PNG_COLOR_TYPE_GRAY, 0, gray, NULL, 0,
			     NULL, 0};
	write_png(tmp_path("g.png"), &s);
	cnnviz_image *img = load_ok(tmp_path("g.png"), NULL);
	assert_int_equal(cnnviz_image_width(img), 3);
	assert_int_equal(cnnviz_image_height(img), 2);
	assert_int_equal(cnnviz_image_channels(img), 1);
	assert_string_equal(cnnviz_image_format(img), "png");
	assert_memory_equal(cnnviz_image_pixels(img), gray, 6);
	cnnviz_image_free(img);

	uint8_t rgb[5 * 4 * 3];
	for (size_t i = 0; i < sizeof rgb; i++)
		rgb[i] = (uint8_t)urand(256);
	s = (struct png_spec){5, 4, 8, PNG_COLOR_TYPE_RGB, 0, rgb, NULL, 0,
			      NULL, 0};
	write_png(tmp_path("rgb.png"), &s);
	img = load_ok(tmp_path("rgb.png"), NULL);
	assert_int_equal(cnnviz_image_channels(img), 3);
	assert_memory_equal(cnnviz_image_pixels(img), rgb, sizeof rgb);
	cnnviz_image_free(img);

	/* Adam7 interlacing gives the same pixels. */
	s.interlace = PNG_INTERLACE_ADAM7;
	write_png(tmp_path("rgbi.png"), &s);
	img = load_ok(tmp_path("rgbi.png"), NULL);
	assert_memory_equal(cnnviz_image_pixels(img), rgb, sizeof rgb);
	cnnviz_image_free(img);
}

static void test_png_16bit_and_1bit(void **state)
{
	(void)state;
	const uint16_t v[4] = {0, 0x1234, 0xffff, 0x8080};
	uint8_t be[8];
	for (int i = 0; i < 4; i++) {
		be[2 * i] = (uint8_t)(v[i] >> 8);
		be[2 * i + 1] = (uint8_t)v[i];
	}
	struct png_spec s = {4, 1, 16, PNG_COLOR_TYPE_GRAY, 0, be, NULL, 0,
			     NULL, 0};
	write_png(tmp_path("g16.png"), &s);
	cnnviz_image *img = load_ok(tmp_path("g16.png"), NULL);
	assert_int_equal(cnnviz_image_channels(img), 1);
	for (int i = 0; i < 4; i++) /* rounded, not truncated */
		assert_int_equal(cnnviz_image_pixels(img)[i],
				 (int)floor(v[i] * 255.0 / 65535.0 + 0.5));
	cnnviz_image_free(img);

	/* 1-bit gray: 10110001 01000000 over a width of 10. */
	const uint8_t bits[] = {0xb1, 0x40};
	s = (struct png_spec){10, 1, 1, PNG_COLOR_TYPE_GRAY, 0, bits, NULL, 0,
			      NULL, 0};
	write_png(tmp_path("g1.png"), &s);
	img = load_ok(tmp_path("g1.png"), NULL);
	const uint8_t want[10] = {255, 0, 255, 255, 0, 0, 0, 255, 0, 255};
	assert_memory_equal(cnnviz_image_pixels(img), want, 10);
	cnnviz_image_free(img);
}

static void test_png_palette_alpha(void **state)
{
	(void)state;
	const png_color pal[3] = {{255, 0, 0}, {0, 200, 0}, {10, 20, 30}};
	const uint8_t idx[4] = {0, 1, 2, 1};
	const uint8_t trns[3] = {255, 128, 0};
	struct png_spec s = {2, 2, 8, PNG_COLOR_TYPE_PALETTE, 0, idx, pal, 3,
			     NULL, 0};
	write_png(tmp_path("pal.png"), &s);
	cnnviz_image *img = load_ok(tmp_path("pal.png"), NULL);
	assert_int_equal(cnnviz_image_channels(img), 3);
	for (int i = 0; i < 4; i++) {
		const uint8_t *p = cnnviz_image_pixels(img) + i * 3;
		assert_int_equal(p[0], pal[idx[i]].red);
		assert_int_equal(p[1], pal[idx[i]].green);
		assert_int_equal(p[2], pal[idx[i]].blue);
	}
	cnnviz_image_free(img);

	/* Palette transparency: dropped by default, else composited. */
	s.trns = trns;
	s.n_trns = 3;
	write_png(tmp_path("palt.png"), &s);
	const char *modes[3] = {"drop", "black", "white"};
	for (int m = 0; m < 3; m++) {
		cnnviz_options *o = opts_with("png_alpha", modes[m]);
		img = load_ok(tmp_path("palt.png"), o);
		for (int i = 0; i < 4; i++) {
			const uint8_t *p = cnnviz_image_pixels(img) + i * 3;
			const uint8_t c[3] = {pal[idx[i]].red,
					      pal[idx[i]].green,
					      pal[idx[i]].blue};
			double a = trns[idx[i]], bg = m == 2 ? 255 : 0;
			for (int k = 0; k < 3; k++) {
				double want = m == 0 ? c[k]
					      : floor((c[k] * a +
						       bg * (255 - a)) /
							      255.0 + 0.5);
				assert_int_equal(p[k], (int)want);
			}
		}
		cnnviz_image_free(img);
		cnnviz_options_free(o);
	}

	/* Gray + alpha stays one channel. */
	const uint8_t ga[4] = {200, 128, 50, 255};
	s = (struct png_spec){2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, 0, ga, NULL,
			      0, NULL, 0};
	write_png(tmp_path("ga.png"), &s);
	cnnviz_options *o = opts_with("png_alpha", "white");
	img = load_ok(tmp_path("ga.png"), o);
	assert_int_equal(cnnviz_image_channels(img), 1);
	assert_int_equal(cnnviz_image_pixels(img)[0], 227); /* 100.4 + 127 */
	assert_int_equal(cnnviz_image_pixels(img)[1], 50);
	cnnviz_image_free(img);
	cnnviz_options_free(o);
	img = load_ok(tmp_path("ga.png"), NULL);
	assert_int_equal(cnnviz_image_pixels(img)[0], 200);
	cnnviz_image_free(img);
}

static void test_png_damaged(void **state)
{
	(void)state;
	uint8_t rgb[16 * 16 * 3];
	for (size_t i = 0; i < sizeof rgb; i++)
		rgb[i] = (uint8_t)urand(256);
	struct png_spec s = {16, 16, 8, PNG_COLOR_TYPE_RGB, 0, rgb, NULL, 0,
			     NULL, 0};
	write_png(tmp_path("d.png"), &s);
	size_t n;
	uint8_t *d = read_bytes(tmp_path("d.png"), &n);

	/* Every proper prefix is an error, never a crash or a success. */
	for (size_t len = 0; len < n - 12; len++) /* IEND is not needed */
		load_fails(d, len, NULL, CNNVIZ_ERR_IMAGE, NULL);
	load_fails(d, n / 2, NULL, CNNVIZ_ERR_IMAGE, "truncated");

	/* A flipped byte inside IDAT breaks its CRC. */
	uint8_t *c = malloc(n);
	memcpy(c, d, n);
	c[n - 20] ^= 0x55;
	load_fails(c, n, NULL, CNNVIZ_ERR_IMAGE, "PNG");
	free(c);
	free(d);
}

/* CRC-32 of PNG chunks (ISO 3309), for hand-made headers. */
static uint32_t crc32_png(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
	}
	return c ^ 0xffffffffu;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void test_png_pixel_cap(void **state)
{
	(void)state;
	/* Signature + IHDR claiming 100000 x 100000 RGB, and no data: the
	   cap must trip on the header, before any allocation. */
	uint8_t f[8 + 25] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	uint8_t *ih = f + 8;
	put32(ih, 13);
	memcpy(ih + 4, "IHDR", 4);
	put32(ih + 8, 100000);
	put32(ih + 12, 100000);
	ih[16] = 8;
	ih[17] = 2;
	put32(ih + 21, crc32_png(ih + 4, 17));
	load_fails(f, sizeof f, NULL, CNNVIZ_ERR_LIMIT, "max_pixels");

	uint8_t px[20 * 20] = {0};
	struct png_spec s = {20, 20, 8, PNG_COLOR_TYPE_GRAY, 0, px, NULL, 0,
			     NULL, 0};
	write_png(tmp_path("cap.png"), &s);
	size_t n;
	uint8_t *d = read_bytes(tmp_path("cap.png"), &n);
	cnnviz_options *o = opts_with("max_pixels", "399");
	load_fails(d, n, o, CNNVIZ_ERR_LIMIT, "max_pixels");
	set(o, "max_pixels", "400");
	cnnviz_image *img = NULL;
	assert_int_equal(cnnviz_image_load_memory(d, n, NULL, o, &img, NULL),
			 CNNVIZ_OK);
	cnnviz_image_free(img);
	cnnviz_options_free(o);
	free(d);
}

/* ---------------------------------------------------------- JPEG input */

static void test_jpeg(void **state)
{
	(void)state;
	enum { W = 24, H = 16 };
	uint8_t rgb[W * H * 3], g[W * H];
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++) {
			uint8_t *p = rgb + (y * W + x) * 3;
			p[0] = (uint8_t)(x * 10);
			p[1] = (uint8_t)(y * 15);
			p[2] = (uint8_t)(128 + x - y);
			g[y * W + x] = (uint8_t)(x * 5 + y * 3);
		}
	unsigned long n;
	unsigned char *j = make_jpeg(rgb, W, H, 0, 100, &n);
	write_bytes(tmp_path("c.jpg"), j, n);
	cnnviz_image *img = load_ok(tmp_path("c.jpg"), NULL);
	assert_int_equal(cnnviz_image_width(img), W);
	assert_int_equal(cnnviz_image_height(img), H);
	assert_int_equal(cnnviz_image_channels(img), 3);
	assert_string_equal(cnnviz_image_format(img), "jpeg");
	int worst = 0;
	for (int i = 0; i < W * H * 3; i++) {
		int d = abs(cnnviz_image_pixels(img)[i] - rgb[i]);
		worst = d > worst ? d : worst;
	}
	print_message("JPEG q100 4:4:4 max |decoded - original| = %d\n",
		      worst);
	assert_true(worst <= 4);
	cnnviz_image_free(img);

	/* The same stream under a .png name: content decides. */
	write_bytes(tmp_path("really_jpeg.png"), j, n);
	img = load_ok(tmp_path("really_jpeg.png"), NULL);
	assert_string_equal(cnnviz_image_format(img), "jpeg");
	cnnviz_image_free(img);

	/* Every prefix fails cleanly; half the file says "truncated". */
	for (unsigned long len = 0; len < n - 2; len += 7)
		load_fails(j, len, NULL, CNNVIZ_ERR_IMAGE, NULL);
	load_fails(j, n / 2, NULL, CNNVIZ_ERR_IMAGE, "truncated");

	/* Garbage in the entropy-coded data. */
	unsigned char *c = malloc(n);
	memcpy(c, j, n);
	for (unsigned long i = n / 2; i < n - 2; i++)
		c[i] = (unsigned char)urand(256);
	cnnviz_image *bad = (cnnviz_image *)1;
	int rc = cnnviz_image_load_memory(c, n, "x", NULL, &bad, NULL);
	if (rc == CNNVIZ_OK) /* garbage can decode; then it is well formed */
		cnnviz_image_free(bad);
	else
		assert_int_equal(rc, CNNVIZ_ERR_IMAGE);

	/* A header claiming 60000 x 60000: refused before decoding. */
	memcpy(c, j, n);
	for (unsigned long i = 2; i + 9 < n; i++) {
		if (c[i] == 0xff && c[i + 1] == 0xc0) {
			c[i + 5] = c[i + 7] = 60000 >> 8;
			c[i + 6] = c[i + 8] = 60000 & 0xff;
			break;
		}
	}
	load_fails(c, n, NULL, CNNVIZ_ERR_LIMIT, "max_pixels");
	free(c);
	tjFree(j);
	j = NULL; /* tjCompress2 reuses a non-NULL buffer */

	/* Adobe-style (inverted) CMYK, stored as YCCK: R = C * K / 255. */
	uint8_t cmyk[W * H * 4];
	for (int i = 0; i < W * H; i++) {
		cmyk[i * 4] = 200;
		cmyk[i * 4 + 1] = 100;
		cmyk[i * 4 + 2] = 50;
		cmyk[i * 4 + 3] = 128;
	}
	tjhandle tj = tjInitCompress();
	assert_int_equal(tjCompress2(tj, cmyk, W, 0, H, TJPF_CMYK, &j, &n,
				     TJSAMP_444, 100, 0), 0);
	tjDestroy(tj);
	assert_int_equal(cnnviz_image_load_memory(j, n, "cmyk", NULL, &img,
						  NULL), CNNVIZ_OK);
	assert_int_equal(cnnviz_image_channels(img), 3);
	for (int k = 0; k < 3; k++)
		assert_true(abs(cnnviz_image_pixels(img)[k] -
				cmyk[k] * 128 / 255) <= 2);
	cnnviz_image_free(img);
	tjFree(j);

	j = make_jpeg(g, W, H, 1, 100, &n);
	write_bytes(tmp_path("g.jpg"), j, n);
	img = load_ok(tmp_path("g.jpg"), NULL);
	assert_int_equal(cnnviz_image_channels(img), 1);
	worst = 0;
	for (int i = 0; i < W * H; i++) {
		int d = abs(cnnviz_image_pixels(img)[i] - g[i]);
		worst = d > worst ? d : worst;
	}
	assert_true(worst <= 4);
	cnnviz_image_free(img);
	tjFree(j);
}

/* ------------------------------------------------------ other formats */

static void test_refused_formats(void **state)
{
	(void)state;
	static const struct {
		const char *bytes;
		size_t n;
		const char *word;
	} cases[] = {
		{"RIFF\x10\0\0\0WEBPVP8 ", 16, "WebP"},
		{"GIF89a\1\0\1\0", 10, "GIF"},
		{"BM\x3a\0\0\0\0\0", 8, "BMP"},
		{"II*\0\x08\0\0\0", 8, "TIFF"},
		{"\0\0\0\x1c" "ftypavif", 12, "AVIF"},
		{"\x93NUMPY\1\0", 8, ".npy"},
		{"<!DOCTYPE html>", 15, "HTML"},
		{"P6\n2 2\n255\n", 11, "PNM"},
		{"hello world", 11, "unknown format"},
		{"", 0, "empty"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		load_fails(cases[i].bytes, cases[i].n, NULL, CNNVIZ_ERR_IMAGE,
			   cases[i].word);

	struct cnnviz_error e;
	cnnviz_image *img;
	assert_int_equal(cnnviz_image_load(tmp_path("missing.png"), NULL, &img,
					   &e), CNNVIZ_ERR_IO);
	assert_null(img);
	assert_string_equal(e.file, tmp_path("missing.png"));
	assert_int_equal(cnnviz_image_load(tmpdir, NULL, &img, &e),
			 CNNVIZ_ERR_IO);
	cnnviz_image_free(NULL); /* no-op */
}

static void test_shared_photos(void **state)
{
	(void)state;
	const char *dir = shared_images();
	if (!dir) {
		print_message("SKIP: no ../shared/images (set CNNVIZ_SHARED)\n");
		skip();
	}
	char p[1024];
	struct cnnviz_error e;
	cnnviz_image *img = NULL;

	snprintf(p, sizeof p, "%s/webp_named_as_jpg.jpg", dir);
	assert_int_equal(cnnviz_image_load(p, NULL, &img, &e),
			 CNNVIZ_ERR_IMAGE);
	assert_non_null(strstr(e.message, "WebP"));
	assert_string_equal(e.file, p);
	char line[1100];
	print_message("%s\n", cnnviz_error_format(&e, line, sizeof line));

	static const struct {
		const char *name;
		int w, h, c;
	} ok[] = {
		{"input_face.jpeg", 275, 183, 3},
		{"input_face_gray.png", 275, 183, 1},
		{"smiling_woman.png", 800, 595, 3},
		{"group_12_angry_men.jpg", 1280, 720, 3},
		{"group_test_image.jpg", 1024, 768, 3},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, ok[i].name);
		img = load_ok(p, NULL);
		assert_int_equal(cnnviz_image_width(img), ok[i].w);
		assert_int_equal(cnnviz_image_height(img), ok[i].h);
		assert_int_equal(cnnviz_image_channels(img), ok[i].c);
		cnnviz_image_free(img);
	}

	/* A truncated copy of a real photo. */
	snprintf(p, sizeof p, "%s/group_12_angry_men.jpg", dir);
	size_t n;
	uint8_t *d = read_bytes(p, &n);
	write_bytes(tmp_path("cut.jpg"), d, n * 6 / 10);
	assert_int_equal(cnnviz_image_load(tmp_path("cut.jpg"), NULL, &img,
					   &e), CNNVIZ_ERR_IMAGE);
	assert_non_null(strstr(e.message, "truncated"));
	print_message("%s\n", cnnviz_error_format(&e, line, sizeof line));
	free(d);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/cnnviz-test-image-XXXXXX");
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
		cmocka_unit_test(test_png_gray_rgb),
		cmocka_unit_test(test_png_16bit_and_1bit),
		cmocka_unit_test(test_png_palette_alpha),
		cmocka_unit_test(test_png_damaged),
		cmocka_unit_test(test_png_pixel_cap),
		cmocka_unit_test(test_jpeg),
		cmocka_unit_test(test_refused_formats),
		cmocka_unit_test(test_shared_photos),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
