/*
 * From a decoded picture to one model input: centre crop, channel
 * conversion, resampling, per-channel scale and offset.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "picture.h"

/* ------------------------------------------------------------ kernels */

/* Source coordinate of output index i: half-pixel centres, clamped. */
static void bilinear_tap(int64_t i, double scale, int64_t n, int64_t *i0,
			 int64_t *i1, double *f)
{
	double s = ((double)i + 0.5) * scale - 0.5;

	if (s < 0)
		s = 0;
	if (s > (double)(n - 1))
		s = (double)(n - 1);
	*i0 = (int64_t)s;
	*i1 = *i0 + 1 < n ? *i0 + 1 : *i0;
	*f = s - (double)*i0;
}

void cnnviz__resize_bilinear(const float *in, int64_t ih, int64_t iw,
			     int64_t c, float *out, int64_t oh, int64_t ow)
{
	double sy = (double)ih / (double)oh, sx = (double)iw / (double)ow;

	for (int64_t y = 0; y < oh; y++) {
		int64_t y0, y1;
		double fy;
		bilinear_tap(y, sy, ih, &y0, &y1, &fy);
		const float *r0 = in + y0 * iw * c, *r1 = in + y1 * iw * c;
		for (int64_t x = 0; x < ow; x++) {
			int64_t x0, x1;
			double fx;
			bilinear_tap(x, sx, iw, &x0, &x1, &fx);
			float *o = out + (y * ow + x) * c;
			for (int64_t k = 0; k < c; k++) {
				double top = r0[x0 * c + k] +
					     fx * (r0[x1 * c + k] -
						   r0[x0 * c + k]);
				double bot = r1[x0 * c + k] +
					     fx * (r1[x1 * c + k] -
						   r1[x0 * c + k]);
				o[k] = (float)(top + fy * (bot - top));
			}
		}
	}
}

void cnnviz__resize_nearest(const float *in, int64_t ih, int64_t iw,
			    int64_t c, float *out, int64_t oh, int64_t ow)
{
	for (int64_t y = 0; y < oh; y++) {
		int64_t sy = (int64_t)(((double)y + 0.5) * (double)ih /
				       (double)oh);
		if (sy > ih - 1)
			sy = ih - 1;
		for (int64_t x = 0; x < ow; x++) {
			int64_t sx = (int64_t)(((double)x + 0.5) * (double)iw /
					       (double)ow);
			if (sx > iw - 1)
				sx = iw - 1;
			memcpy(out + (y * ow + x) * c, in + (sy * iw + sx) * c,
			       sizeof *out * (size_t)c);
		}
	}
}

/* Input cells [*first, *last) overlapping output cell i of n -> size. */
static void area_span(int64_t i, int64_t n, int64_t size, double *lo,
		      double *hi, int64_t *first, int64_t *last)
{
	*lo = (double)i * (double)size / (double)n;
	*hi = (double)(i + 1) * (double)size / (double)n;
	*first = (int64_t)floor(*lo);
	*last = (int64_t)ceil(*hi);
	if (*last > size)
		*last = size;
	if (*first >= *last)
		*first = *last - 1;
}

void cnnviz__resize_area(const float *in, int64_t ih, int64_t iw, int64_t c,
			 float *out, int64_t oh, int64_t ow)
{
	for (int64_t y = 0; y < oh; y++) {
		double ylo, yhi;
		int64_t y0, y1;
		area_span(y, oh, ih, &ylo, &yhi, &y0, &y1);
		for (int64_t x = 0; x < ow; x++) {
			double xlo, xhi;
			int64_t x0, x1;
			area_span(x, ow, iw, &xlo, &xhi, &x0, &x1);
			float *o = out + (y * ow + x) * c;
			for (int64_t k = 0; k < c; k++) {
				double sum = 0, wsum = 0;
				for (int64_t iy = y0; iy < y1; iy++) {
					double wy = fmin(iy + 1.0, yhi) -
						    fmax((double)iy, ylo);
					for (int64_t ix = x0; ix < x1; ix++) {
						double wx = fmin(ix + 1.0, xhi) -
							    fmax((double)ix, xlo);
						sum += wy * wx *
						       in[(iy * iw + ix) * c + k];
						wsum += wy * wx;
					}
				}
				o[k] = (float)(sum / wsum);
			}
		}
	}
}

/* --------------------------------------------------------- preprocessing */

/*
 * Parses "v" or "v1,v2,...": one value for every channel, or exactly n.
 * Returns 0 or -1.
 */
static int parse_list(const char *s, int n, double *v)
{
	char *end;
	int k = 0;

	for (;;) {
		if (k == n)
			return -1;
		v[k] = strtod(s, &end);
		if (end == s || !isfinite(v[k]))
			return -1;
		k++;
		if (*end == '\0')
			break;
		if (*end != ',')
			return -1;
		s = end + 1;
	}
	if (k == 1)
		for (int i = 1; i < n; i++)
			v[i] = v[0];
	else if (k != n)
		return -1;
	return 0;
}

int cnnviz_image_preprocessing(const cnnviz_options *opts, int channels,
			       double *scale, double *offset, int *bgr,
			       struct cnnviz_error *err)
{
	/* ImageNet statistics as keras.applications uses them. */
	static const double caffe_mean_bgr[3] = {103.939, 116.779, 123.68};
	static const double torch_mean[3] = {0.485, 0.456, 0.406};
	static const double torch_std[3] = {0.229, 0.224, 0.225};
	const char *p = cnnviz__opt_str(opts, "preprocess", "unit");
	const char *s;

	cnnviz__error_clear(err);
	if (!scale || !offset || !bgr || (channels != 1 && channels != 3))
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "a model input needs 1 or 3 channels, "
				    "not %d", channels);
	*bgr = 0;
	for (int c = 0; c < channels; c++) {
		scale[c] = 1.0;
		offset[c] = 0.0;
	}
	if (strcmp(p, "caffe") == 0 || strcmp(p, "torch") == 0) {
		if (channels != 3)
			return cnnviz__fail(err, CNNVIZ_ERR_ARG, "preprocess",
					    "'%s' needs an RGB (3-channel) "
					    "input; this one has 1 channel",
					    p);
	}
	if (strcmp(p, "unit") == 0) {
		for (int c = 0; c < channels; c++)
			scale[c] = 1.0 / 255.0;
	} else if (strcmp(p, "mobilenet") == 0) {
		for (int c = 0; c < channels; c++) {
			scale[c] = 1.0 / 127.5;
			offset[c] = -1.0;
		}
	} else if (strcmp(p, "caffe") == 0) {
		*bgr = 1;
		for (int c = 0; c < 3; c++)
			offset[c] = -caffe_mean_bgr[c];
	} else if (strcmp(p, "torch") == 0) {
		for (int c = 0; c < 3; c++) {
			scale[c] = 1.0 / (255.0 * torch_std[c]);
			offset[c] = -torch_mean[c] / torch_std[c];
		}
	} else if (strcmp(p, "raw") != 0) {
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "preprocess",
				    "'%s' is not unit, mobilenet, caffe, "
				    "torch or raw", p);
	}
	s = cnnviz__opt_str(opts, "scale", NULL);
	if (s && parse_list(s, channels, scale))
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "scale",
				    "'%s' is not one number or %d numbers "
				    "separated by commas", s, channels);
	s = cnnviz__opt_str(opts, "offset", NULL);
	if (s && parse_list(s, channels, offset))
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "offset",
				    "'%s' is not one number or %d numbers "
				    "separated by commas", s, channels);
	return CNNVIZ_OK;
}

enum resize_kind { RESIZE_BILINEAR, RESIZE_NEAREST, RESIZE_AREA };

static int read_options(const cnnviz_options *opts, int *kind, int *center,
			struct cnnviz_error *err)
{
	const char *r = cnnviz__opt_str(opts, "resize", "bilinear");
	const char *c = cnnviz__opt_str(opts, "crop", "none");

	if (strcmp(r, "bilinear") == 0)
		*kind = RESIZE_BILINEAR;
	else if (strcmp(r, "nearest") == 0)
		*kind = RESIZE_NEAREST;
	else if (strcmp(r, "area") == 0)
		*kind = RESIZE_AREA;
	else
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "resize",
				    "'%s' is not bilinear, nearest or area",
				    r);
	if (strcmp(c, "none") == 0)
		*center = 0;
	else if (strcmp(c, "center") == 0)
		*center = 1;
	else
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, "crop",
				    "'%s' is not none or center", c);
	return CNNVIZ_OK;
}

/*
 * The crop region (x0, y0, cw, ch) of the largest centred rectangle with
 * the aspect ratio width:height.
 */
static void center_crop(int64_t iw, int64_t ih, int64_t width,
			int64_t height, int64_t r[4])
{
	r[0] = r[1] = 0;
	r[2] = iw;
	r[3] = ih;
	/* Compare iw/ih with width/height without rounding. */
	if ((double)iw * (double)height > (double)width * (double)ih) {
		int64_t cw = llround((double)ih * (double)width /
				     (double)height);
		r[2] = cw < 1 ? 1 : cw;
		r[0] = (iw - r[2]) / 2;
	} else if ((double)iw * (double)height <
		   (double)width * (double)ih) {
		int64_t ch = llround((double)iw * (double)height /
				     (double)width);
		r[3] = ch < 1 ? 1 : ch;
		r[1] = (ih - r[3]) / 2;
	}
}

/* The crop region as floats with `channels` channels; src is (r[3], r[2]). */
static void to_float(const cnnviz_image *img, const int64_t r[4],
		     int channels, float *dst)
{
	int ci = img->channels;

	for (int64_t y = 0; y < r[3]; y++) {
		const uint8_t *s = img->px + ((size_t)(y + r[1]) *
						      (size_t)img->width +
					      (size_t)r[0]) * (size_t)ci;
		for (int64_t x = 0; x < r[2]; x++, s += ci, dst += channels) {
			if (ci == channels) {
				for (int k = 0; k < channels; k++)
					dst[k] = s[k];
			} else if (channels == 1) {
				/* ITU-R BT.601 luma, unrounded. */
				dst[0] = (float)(0.299 * s[0] + 0.587 * s[1] +
						 0.114 * s[2]);
			} else {
				dst[0] = dst[1] = dst[2] = s[0];
			}
		}
	}
}

int cnnviz_image_to_tensor(const cnnviz_image *img, int64_t height,
			   int64_t width, int channels,
			   const cnnviz_options *opts, float *out,
			   size_t out_count, cnnviz_image **seen,
			   struct cnnviz_error *err)
{
	double scale[3], offset[3];
	int bgr = 0, kind = RESIZE_BILINEAR, center = 0, rc;
	int64_t r[4];
	size_t n_in, n_out;
	float *src = NULL, *dst = NULL;

	if (seen)
		*seen = NULL;
	rc = cnnviz_image_preprocessing(opts, channels, scale, offset, &bgr,
					err);
	if (rc)
		return rc;
	if (!img || !out || height < 1 || width < 1)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "bad image, output or size %lldx%lld",
				    (long long)width, (long long)height);
	rc = read_options(opts, &kind, &center, err);
	if (rc)
		return rc;
	if (cnnviz__mul_size((size_t)height, (size_t)width, &n_out) ||
	    cnnviz__mul_size(n_out, (size_t)channels, &n_out))
		return cnnviz__fail(err, CNNVIZ_ERR_LIMIT, NULL,
				    "tensor size overflows");
	if (out_count < n_out)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "output holds %zu floats, %zu needed",
				    out_count, n_out);
	if (center) {
		center_crop(img->width, img->height, width, height, r);
	} else {
		r[0] = r[1] = 0;
		r[2] = img->width;
		r[3] = img->height;
	}
	/* The image exists, so its pixel count times 3 fits in size_t. */
	n_in = (size_t)r[2] * (size_t)r[3] * (size_t)channels;
	src = malloc(sizeof *src * n_in);
	if (seen)
		dst = malloc(sizeof *dst * n_out);
	if (!src || (seen && !dst)) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				  "out of memory converting the image");
		goto out_free;
	}
	float *res = seen ? dst : out;
	to_float(img, r, channels, src);
	if (kind == RESIZE_NEAREST)
		cnnviz__resize_nearest(src, r[3], r[2], channels, res, height,
				       width);
	else if (kind == RESIZE_AREA)
		cnnviz__resize_area(src, r[3], r[2], channels, res, height,
				    width);
	else
		cnnviz__resize_bilinear(src, r[3], r[2], channels, res, height,
					width);
	if (seen) {
		rc = cnnviz__image_alloc(width, height, channels, INT64_MAX,
					 seen, err);
		if (rc)
			goto out_free;
		for (size_t i = 0; i < n_out; i++) {
			float v = dst[i];
			(*seen)->px[i] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255
						   : (int)(v + 0.5f));
		}
		memcpy(out, dst, sizeof *out * n_out);
	}
	for (size_t i = 0; i < n_out; i += (size_t)channels) {
		float px[3];
		for (int k = 0; k < channels; k++)
			px[k] = out[i + (size_t)k];
		for (int k = 0; k < channels; k++) {
			int from = bgr ? channels - 1 - k : k;
			out[i + (size_t)k] =
				(float)(px[from] * scale[k] + offset[k]);
		}
	}
out_free:
	free(src);
	free(dst);
	return rc;
}

int cnnviz_resize_map(const float *map, int64_t height, int64_t width,
		      float *out, int64_t out_height, int64_t out_width,
		      struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!map || !out || height < 1 || width < 1 || out_height < 1 || out_width < 1)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "resize needs two maps of at least 1x1");
	cnnviz__resize_bilinear(map, height, width, 1, out, out_height, out_width);
	return CNNVIZ_OK;
}
