/*
 * Image decoding: format sniffing, JPEG through the TurboJPEG API (PNG is
 * in png.c), and the cnnviz_image handle. libjpeg-turbo 2.1 has no tj3*
 * API yet, so the 2.x calls (tjDecompressHeader3, tjDecompress2) are used.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <turbojpeg.h>

#include "picture.h"

int64_t cnnviz__max_pixels(const cnnviz_options *o)
{
	return cnnviz__opt_int(o, "max_pixels", CNNVIZ__MAX_PIXELS_DEFAULT);
}

int cnnviz__parse_range(const char *s, double *a, double *b)
{
	char *end;

	if (!s)
		return -1;
	*a = strtod(s, &end);
	if (end == s || *end != ',')
		return -1;
	s = end + 1;
	*b = strtod(s, &end);
	if (end == s || *end != '\0')
		return -1;
	if (!isfinite(*a) || !isfinite(*b) || !(*a < *b))
		return -1;
	return 0;
}

int cnnviz__image_alloc(int64_t width, int64_t height, int channels,
			int64_t max_pixels, cnnviz_image **out,
			struct cnnviz_error *err)
{
	size_t n;

	*out = NULL;
	if (width < 1 || height < 1 || (channels != 1 && channels != 3))
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "bad image size %lldx%lld, %d channels",
				    (long long)width, (long long)height,
				    channels);
	/* Division keeps the product itself from overflowing. */
	if (width > max_pixels / height)
		return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, "max_pixels",
				    "image of %lldx%lld pixels is larger than "
				    "max_pixels = %lld",
				    (long long)width, (long long)height,
				    (long long)max_pixels);
	if (cnnviz__mul_size((size_t)width, (size_t)height, &n) ||
	    cnnviz__mul_size(n, (size_t)channels, &n))
		return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, NULL,
				    "image size overflows");
	cnnviz_image *img = calloc(1, sizeof *img);
	if (!img)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				    "out of memory for an image");
	img->px = calloc(n, 1);
	if (!img->px) {
		free(img);
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				    "out of memory for %zu bytes of pixels",
				    n);
	}
	img->width = width;
	img->height = height;
	img->channels = channels;
	img->format = "";
	*out = img;
	return CNNVIZ_OK;
}

int cnnviz_image_new(int64_t width, int64_t height, int channels,
		     const uint8_t *pixels, cnnviz_image **out,
		     struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!out)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "out is NULL");
	int rc = cnnviz__image_alloc(width, height, channels, INT64_MAX, out,
				     err);
	if (rc == CNNVIZ_OK && pixels)
		memcpy((*out)->px, pixels,
		       (size_t)width * (size_t)height * (size_t)channels);
	return rc;
}

void cnnviz_image_free(cnnviz_image *img)
{
	if (!img)
		return;
	free(img->px);
	free(img);
}

int64_t cnnviz_image_width(const cnnviz_image *img)
{
	return img ? img->width : 0;
}

int64_t cnnviz_image_height(const cnnviz_image *img)
{
	return img ? img->height : 0;
}

int cnnviz_image_channels(const cnnviz_image *img)
{
	return img ? img->channels : 0;
}

const uint8_t *cnnviz_image_pixels(const cnnviz_image *img)
{
	return img ? img->px : NULL;
}

const char *cnnviz_image_format(const cnnviz_image *img)
{
	return img ? img->format : "";
}

int cnnviz_image_upscale(const cnnviz_image *img, int factor,
			 cnnviz_image **out, struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!out)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "out is NULL");
	*out = NULL;
	if (!img || factor < 1 || factor > 64)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "upscale factor %d is not in 1..64",
				    factor);
	cnnviz_image *o;
	int rc = cnnviz__image_alloc(img->width * factor,
				     img->height * factor, img->channels,
				     INT64_MAX / 4, &o, err);
	if (rc)
		return rc;
	size_t c = (size_t)img->channels;
	for (int64_t y = 0; y < o->height; y++) {
		const uint8_t *src = img->px + (size_t)(y / factor) *
					       (size_t)img->width * c;
		uint8_t *dst = o->px + (size_t)y * (size_t)o->width * c;
		for (int64_t x = 0; x < o->width; x++)
			memcpy(dst + (size_t)x * c, src + (size_t)(x / factor) * c,
			       c);
	}
	o->format = img->format;
	*out = o;
	return CNNVIZ_OK;
}

/* ------------------------------------------------------------ sniffing */

enum kind { KIND_UNKNOWN, KIND_JPEG, KIND_PNG, KIND_REFUSED };

static int has(const uint8_t *d, size_t n, size_t at, const char *magic,
	       size_t len)
{
	return n >= at + len && memcmp(d + at, magic, len) == 0;
}

/* Recognises the format from the first bytes; *what names refused ones. */
static enum kind sniff(const uint8_t *d, size_t n, const char **what)
{
	static const struct {
		size_t at;
		const char *magic;
		size_t len;
		const char *what;
	} refused[] = {
		{0, "GIF87a", 6, "a GIF file"},
		{0, "GIF89a", 6, "a GIF file"},
		{0, "BM", 2, "a BMP file"},
		{0, "II*\0", 4, "a TIFF file"},
		{0, "MM\0*", 4, "a TIFF file"},
		{4, "ftypheic", 8, "a HEIF (HEIC) file"},
		{4, "ftypheix", 8, "a HEIF (HEIC) file"},
		{4, "ftypmif1", 8, "a HEIF file"},
		{4, "ftypavif", 8, "an AVIF file"},
		{0, "\0\0\0\x0cjP  \r\n\x87\n", 12, "a JPEG 2000 file"},
		{0, "\xff\x4f\xff\x51", 4, "a JPEG 2000 codestream"},
		{0, "\xff\x0a", 2, "a JPEG XL file"},
		{0, "\0\0\0\x0cJXL \r\n\x87\n", 12, "a JPEG XL file"},
		{0, "\0\0\1\0", 4, "an ICO icon"},
		{0, "8BPS", 4, "a Photoshop (PSD) file"},
		{0, "qoif", 4, "a QOI file"},
		{0, "\x93NUMPY", 6, "a .npy array (give it as a tensor, not "
				   "an image)"},
		{0, "%PDF", 4, "a PDF document"},
		{0, "PK\3\4", 4, "a zip archive"},
	};

	*what = NULL;
	if (has(d, n, 0, "\xff\xd8\xff", 3))
		return KIND_JPEG;
	if (has(d, n, 0, "\x89PNG\r\n\x1a\n", 8))
		return KIND_PNG;
	if (has(d, n, 0, "RIFF", 4) && has(d, n, 8, "WEBP", 4)) {
		*what = "a WebP file";
		return KIND_REFUSED;
	}
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		if (has(d, n, refused[i].at, refused[i].magic,
			refused[i].len)) {
			*what = refused[i].what;
			return KIND_REFUSED;
		}
	}
	if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7') {
		*what = "a PNM/PAM file";
		return KIND_REFUSED;
	}
	if (n >= 1 && d[0] == '<') {
		*what = "text (HTML, XML or SVG), not a picture";
		return KIND_REFUSED;
	}
	return KIND_UNKNOWN;
}

/* ---------------------------------------------------------------- JPEG */

/* Whether an end-of-image marker (FF D9) occurs in the data. */
static int has_eoi(const uint8_t *d, size_t n)
{
	for (size_t i = n; i-- > 1;)
		if (d[i] == 0xd9 && d[i - 1] == 0xff)
			return 1;
	return 0;
}

static int jpeg_fail(tjhandle tj, const uint8_t *d, size_t n,
		     struct cnnviz_error *err, const char *what)
{
	const char *msg = tj ? tjGetErrorStr2(tj) : "cannot start libjpeg";
	int fatal = tj ? tjGetErrorCode(tj) == TJERR_FATAL : 1;

	if (!msg)
		msg = "unknown error";
	/* libjpeg's words for a cut file vary with where the cut is. */
	if (strstr(msg, "Premature end") || (tj && !has_eoi(d, n)))
		return cnnviz__fail(err, CNNVIZ_ERR_IMAGE, NULL,
				    "truncated JPEG data: the file ends "
				    "early (libjpeg: %s)", msg);
	return cnnviz__fail(err, CNNVIZ_ERR_IMAGE, NULL, "%s JPEG %s (%s: %s)",
			    fatal ? "corrupt" : "damaged", what,
			    fatal ? "libjpeg error" : "libjpeg warning", msg);
}

/*
 * Adobe writes CMYK inverted (0 = full ink), which libjpeg passes through;
 * the common approximation R = C * K / 255 then holds.
 */
static void cmyk_to_rgb(uint8_t *px, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *s = px + i * 4;
		unsigned k = s[3];
		uint8_t r = (uint8_t)((s[0] * k + 127) / 255);
		uint8_t g = (uint8_t)((s[1] * k + 127) / 255);
		uint8_t b = (uint8_t)((s[2] * k + 127) / 255);
		px[i * 3] = r;
		px[i * 3 + 1] = g;
		px[i * 3 + 2] = b;
	}
}

static int jpeg_decode(const uint8_t *data, size_t size, int64_t max_pixels,
		       cnnviz_image **out, struct cnnviz_error *err)
{
	/* Warnings are errors: a damaged photo must not reach the model. */
	const int flags = TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING |
			  TJFLAG_LIMITSCANS;
	int w = 0, h = 0, subsamp, cs = TJCS_RGB, rc;
	cnnviz_image *img = NULL;
	uint8_t *cmyk = NULL;

	if (size > (unsigned long)-1)
		return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, NULL,
				    "JPEG data too large");
	tjhandle tj = tjInitDecompress();
	if (!tj)
		return jpeg_fail(NULL, data, size, err, "");
	if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h,
				&subsamp, &cs) != 0) {
		rc = jpeg_fail(tj, data, size, err, "header");
		goto out_destroy;
	}
	/* A tables-only or cut stream can "succeed" without a frame. */
	if (w < 1 || h < 1) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_IMAGE, NULL,
				  "truncated JPEG data (no image frame)");
		goto out_destroy;
	}
	int gray = cs == TJCS_GRAY;
	int is_cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
	rc = cnnviz__image_alloc(w, h, gray ? 1 : 3, max_pixels, &img, err);
	if (rc)
		goto out_destroy;
	img->format = "jpeg";
	uint8_t *dst = img->px;
	int pf = gray ? TJPF_GRAY : TJPF_RGB;
	if (is_cmyk) {
		size_t n = (size_t)w * (size_t)h;
		if (cnnviz__mul_size(n, 4, &n) || !(cmyk = malloc(n))) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
					  "out of memory for CMYK pixels");
			goto out_destroy;
		}
		dst = cmyk;
		pf = TJPF_CMYK;
	}
	if (tjDecompress2(tj, data, (unsigned long)size, dst, w, 0, h, pf,
			  flags) != 0) {
		rc = jpeg_fail(tj, data, size, err, "data");
		goto out_destroy;
	}
	if (is_cmyk) {
		cmyk_to_rgb(cmyk, (size_t)w * (size_t)h);
		memcpy(img->px, cmyk, (size_t)w * (size_t)h * 3);
	}
	*out = img;
	img = NULL;
	rc = CNNVIZ_OK;
out_destroy:
	free(cmyk);
	cnnviz_image_free(img);
	tjDestroy(tj);
	return rc;
}

/* -------------------------------------------------------------- entry */

static int alpha_mode(const cnnviz_options *opts, int *mode,
		      struct cnnviz_error *err)
{
	const char *s = cnnviz__opt_str(opts, "png_alpha", "drop");

	if (strcmp(s, "drop") == 0)
		*mode = CNNVIZ__ALPHA_DROP;
	else if (strcmp(s, "black") == 0)
		*mode = CNNVIZ__ALPHA_BLACK;
	else if (strcmp(s, "white") == 0)
		*mode = CNNVIZ__ALPHA_WHITE;
	else
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "png_alpha",
				    "'%s' is not drop, black or white", s);
	return CNNVIZ_OK;
}

int cnnviz_image_load_memory(const void *data, size_t size, const char *name,
			     const cnnviz_options *opts, cnnviz_image **out,
			     struct cnnviz_error *err)
{
	const uint8_t *d = data;
	const char *what;
	int mode = CNNVIZ__ALPHA_DROP, rc;

	cnnviz__error_clear(err);
	if (!out)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "out is NULL");
	*out = NULL;
	if (!data && size)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "data is NULL");
	rc = alpha_mode(opts, &mode, err);
	if (rc)
		return rc;
	int64_t max_pixels = cnnviz__max_pixels(opts);

	switch (sniff(d, size, &what)) {
	case KIND_JPEG:
		rc = jpeg_decode(d, size, max_pixels, out, err);
		break;
	case KIND_PNG:
		rc = cnnviz__png_decode(d, size, max_pixels, mode, out, err);
		break;
	case KIND_REFUSED:
		rc = cnnviz__fail(err, CNNVIZ_ERR_IMAGE, NULL,
				  "this is %s; only JPEG and PNG images are "
				  "read (convert it first)", what);
		break;
	default:
		if (size == 0)
			rc = cnnviz__fail(err, CNNVIZ_ERR_IMAGE, NULL,
					  "empty file");
		else
			rc = cnnviz__fail(err, CNNVIZ_ERR_IMAGE, NULL,
					  "not a JPEG or PNG image (unknown "
					  "format, first bytes %02x %02x "
					  "%02x %02x)",
					  d[0], size > 1 ? d[1] : 0,
					  size > 2 ? d[2] : 0,
					  size > 3 ? d[3] : 0);
		break;
	}
	if (rc)
		cnnviz__error_file(err, name);
	return rc;
}

/* Reads a whole regular file; *buf: new. */
static int read_file(const char *path, uint8_t **buf, size_t *size,
		     struct cnnviz_error *err)
{
	struct stat st;
	int rc = CNNVIZ_OK;
	size_t got = 0;

	*buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cnnviz__fail(err, CNNVIZ_ERR_IO, NULL, "cannot open: %s",
				    strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_IO, NULL, "cannot stat: %s",
				  strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_IO, NULL,
				  "not a regular file");
		goto out_close;
	}
	if ((uint64_t)st.st_size > CNNVIZ__MAX_IMAGE_FILE) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_LIMIT, NULL,
				  "image file of %lld bytes is over the "
				  "1 GiB limit", (long long)st.st_size);
		goto out_close;
	}
	*buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!*buf) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				  "out of memory reading the file");
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, *buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_IO, NULL,
					  "read error: %s", strerror(errno));
			goto out_close;
		}
		if (r == 0)
			break; /* shrank while reading: decode what is there */
		got += (size_t)r;
	}
	*size = got;
out_close:
	if (rc) {
		free(*buf);
		*buf = NULL;
	}
	close(fd);
	return rc;
}

int cnnviz_image_load(const char *path, const cnnviz_options *opts,
		      cnnviz_image **out, struct cnnviz_error *err)
{
	uint8_t *buf;
	size_t size = 0;

	cnnviz__error_clear(err);
	if (!out || !path)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "path or out is NULL");
	*out = NULL;
	int rc = read_file(path, &buf, &size, err);
	if (rc) {
		cnnviz__error_file(err, path);
		return rc;
	}
	rc = cnnviz_image_load_memory(buf, size, path, opts, out, err);
	free(buf);
	return rc;
}
