/*
 * Preprocessing: the resampling kernels (bilinear, nearest, area) against
 * golden values and independent float64 loops, and cnnviz_image_to_tensor
 * (centre crop, channel conversion, presets, scale/offset, the image the
 * network saw). Images are made in memory.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/testopts.h"

#include "cnnviz.h"
#include "kernels.h"

/* ------------------------------------------------------------ helpers */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static unsigned urand(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)((rng >> 11) % n);
}

/* --------------------------------------------------------- resampling */

/* Independent bilinear, written the TensorFlow way (lower/upper/lerp). */
static double ref_bilinear(const float *in, int ih, int iw, int c, int oy,
			   int ox, int k, int oh, int ow)
{
	double fy = (oy + 0.5) * ih / oh - 0.5, fx = (ox + 0.5) * iw / ow - 0.5;
	int ylo = (int)floor(fy), xlo = (int)floor(fx);
	double ly = fy - ylo, lx = fx - xlo;
	int y0 = ylo < 0 ? 0 : ylo, y1 = ylo + 1 > ih - 1 ? ih - 1 : ylo + 1;
	int x0 = xlo < 0 ? 0 : xlo, x1 = xlo + 1 > iw - 1 ? iw - 1 : xlo + 1;
	if (ylo < 0)
		ly = 0; /* below the first centre: the edge row itself */
	if (xlo < 0)
		lx = 0;
	if (ylo >= ih - 1)
		ly = 0, y0 = ih - 1;
	if (xlo >= iw - 1)
		lx = 0, x0 = iw - 1;
#define PX(y, x) ((double)in[((y) * iw + (x)) * c + k])
	return (1 - ly) * ((1 - lx) * PX(y0, x0) + lx * PX(y0, x1)) +
	       ly * ((1 - lx) * PX(y1, x0) + lx * PX(y1, x1));
}

/* Independent area average: replicate each input pixel oh x ow times,
   then average blocks of ih x iw sub-pixels (exact for any ratio). */
static double ref_area(const float *in, int ih, int iw, int c, int oy,
		       int ox, int k, int oh, int ow)
{
	double s = 0;
	for (int sy = oy * ih; sy < (oy + 1) * ih; sy++)
		for (int sx = ox * iw; sx < (ox + 1) * iw; sx++)
			s += PX(sy / oh, sx / ow);
	return s / ((double)ih * iw);
}
#undef PX

static void test_resize_golden(void **state)
{
	(void)state;
	/* 2x2 -> 4x4: source coordinates -0.25 0.25 0.75 1.25, clamped. */
	const float in[4] = {0, 1, 2, 3};
	const float want[16] = {0,   0.25, 0.75, 1,   0.5, 0.75, 1.25, 1.5,
				1.5, 1.75, 2.25, 2.5, 2,   2.25, 2.75, 3};
	float out[16];
	cnnviz__resize_bilinear(in, 2, 2, 1, out, 4, 4);
	for (int i = 0; i < 16; i++)
		assert_float_equal(out[i], want[i], 1e-6);
	/* Same size is the identity for every method. */
	const float id[6] = {1, 2, 3, 4, 5, 6};
	float o6[6];
	cnnviz__resize_bilinear(id, 2, 3, 1, o6, 2, 3);
	assert_memory_equal(o6, id, sizeof id);
	cnnviz__resize_area(id, 2, 3, 1, o6, 2, 3);
	assert_memory_equal(o6, id, sizeof id);
	/* Nearest 4 -> 3: centres 0.667 2.0 3.33 -> 0, 2, 3. */
	const float row[4] = {10, 20, 30, 40};
	float o3[3];
	cnnviz__resize_nearest(row, 1, 4, 1, o3, 1, 3);
	assert_float_equal(o3[0], 10, 0);
	assert_float_equal(o3[1], 30, 0);
	assert_float_equal(o3[2], 40, 0);
	/* Area 3 -> 2: weights (1, 1/2) and (1/2, 1) over 1.5. */
	cnnviz__resize_area(row, 1, 3, 1, o3, 1, 2);
	assert_float_equal(o3[0], (10 + 0.5 * 20) / 1.5, 1e-5);
	assert_float_equal(o3[1], (0.5 * 20 + 30) / 1.5, 1e-5);
	/* Bilinear halving of 4 samples averages pairs (no antialiasing
	   needed at exactly 2x). */
	cnnviz__resize_bilinear(row, 1, 4, 1, o3, 1, 2);
	assert_float_equal(o3[0], 15, 1e-6);
	assert_float_equal(o3[1], 35, 1e-6);
}

static void test_resize_random(void **state)
{
	(void)state;
	static const int sizes[][4] = {{5, 7, 3, 4},   {5, 7, 11, 13},
				       {1, 9, 4, 3},   {48, 48, 7, 7},
				       {13, 3, 13, 8}, {6, 6, 6, 6},
				       {7, 5, 2, 1}};
	double worst_b = 0, worst_a = 0;
	for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
		int ih = sizes[t][0], iw = sizes[t][1];
		int oh = sizes[t][2], ow = sizes[t][3], c = 3;
		float *in = malloc(sizeof *in * (size_t)(ih * iw * c));
		float *out = malloc(sizeof *out * (size_t)(oh * ow * c));
		for (int i = 0; i < ih * iw * c; i++)
			in[i] = (float)urand(25600) / 100.0f;
		cnnviz__resize_bilinear(in, ih, iw, c, out, oh, ow);
		for (int y = 0; y < oh; y++)
			for (int x = 0; x < ow; x++)
				for (int k = 0; k < c; k++) {
					double r = ref_bilinear(in, ih, iw, c,
								y, x, k, oh,
								ow);
					double d = fabs(out[(y * ow + x) * c +
							    k] - r);
					worst_b = d > worst_b ? d : worst_b;
				}
		cnnviz__resize_area(in, ih, iw, c, out, oh, ow);
		for (int y = 0; y < oh; y++)
			for (int x = 0; x < ow; x++)
				for (int k = 0; k < c; k++) {
					double r = ref_area(in, ih, iw, c, y,
							    x, k, oh, ow);
					double d = fabs(out[(y * ow + x) * c +
							    k] - r);
					worst_a = d > worst_a ? d : worst_a;
				}
		free(in);
		free(out);
	}
	print_message("resize vs float64 reference, values 0..256: "
		      "bilinear max|d| = %.3g, area max|d| = %.3g\n",
		      worst_b, worst_a);
	assert_true(worst_b <= 256 * 1e-6);
	assert_true(worst_a <= 256 * 1e-6);
}

/* ------------------------------------------------------- to a tensor */

static void test_tensor_presets(void **state)
{
	(void)state;
	const uint8_t px[3] = {10, 20, 30};
	cnnviz_image *img;
	float t[3];
	assert_int_equal(cnnviz_image_new(1, 1, 3, px, &img, NULL), CNNVIZ_OK);

	static const struct {
		const char *preset;
		float want[3];
	} cases[] = {
		{"unit", {10 / 255.f, 20 / 255.f, 30 / 255.f}},
		{"mobilenet", {10 / 127.5f - 1, 20 / 127.5f - 1,
			       30 / 127.5f - 1}},
		{"caffe", {30 - 103.939f, 20 - 116.779f, 10 - 123.68f}},
		{"torch", {(10 / 255.f - 0.485f) / 0.229f,
			   (20 / 255.f - 0.456f) / 0.224f,
			   (30 / 255.f - 0.406f) / 0.225f}},
		{"raw", {10, 20, 30}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cnnviz_options *o = opts_with("preprocess", cases[i].preset);
		assert_int_equal(cnnviz_image_to_tensor(img, 1, 1, 3, o, t, 3,
							NULL, NULL),
				 CNNVIZ_OK);
		for (int k = 0; k < 3; k++)
			assert_float_equal(t[k], cases[i].want[k], 1e-5);
		cnnviz_options_free(o);
	}

	/* Grayscale: BT.601 luma, unrounded. */
	assert_int_equal(cnnviz_image_to_tensor(img, 1, 1, 1, NULL, t, 1, NULL,
						NULL), CNNVIZ_OK);
	assert_float_equal(t[0], (0.299 * 10 + 0.587 * 20 + 0.114 * 30) / 255,
			   1e-6);

	/* scale/offset lists override the preset. */
	cnnviz_options *o = opts_with("scale", "2,3,4");
	set(o, "offset", "-1");
	assert_int_equal(cnnviz_image_to_tensor(img, 1, 1, 3, o, t, 3, NULL,
						NULL), CNNVIZ_OK);
	assert_float_equal(t[0], 19, 1e-5);
	assert_float_equal(t[1], 59, 1e-5);
	assert_float_equal(t[2], 119, 1e-5);
	struct cnnviz_error e;
	set(o, "scale", "1,2");
	assert_int_equal(cnnviz_image_to_tensor(img, 1, 1, 3, o, t, 3, NULL,
						&e), CNNVIZ_ERR_ARG);
	assert_string_equal(e.where, "scale");
	cnnviz_options_free(o);

	o = opts_with("preprocess", "caffe");
	assert_int_equal(cnnviz_image_to_tensor(img, 1, 1, 1, o, t, 1, NULL,
						&e), CNNVIZ_ERR_ARG);
	cnnviz_options_free(o);
	assert_int_equal(cnnviz_image_to_tensor(img, 2, 2, 3, NULL, t, 3, NULL,
						&e), CNNVIZ_ERR_ARG);
	assert_non_null(strstr(e.message, "12 needed"));

	double sc[3], of[3];
	int bgr;
	o = opts_with("preprocess", "caffe");
	assert_int_equal(cnnviz_image_preprocessing(o, 3, sc, of, &bgr, NULL),
			 CNNVIZ_OK);
	assert_int_equal(bgr, 1);
	assert_float_equal(of[0], -103.939, 1e-12);
	cnnviz_options_free(o);
	cnnviz_image_free(img);
}

static void test_tensor_crop_resize(void **state)
{
	(void)state;
	/* 6 wide x 4 high gray, value = 10 * x + y. */
	uint8_t px[24];
	for (int y = 0; y < 4; y++)
		for (int x = 0; x < 6; x++)
			px[y * 6 + x] = (uint8_t)(10 * x + y);
	cnnviz_image *img, *seen;
	assert_int_equal(cnnviz_image_new(6, 4, 1, px, &img, NULL), CNNVIZ_OK);

	/* Centre crop to 1:1 keeps columns 1..4; nearest 4 -> 2 then
	   picks source 1 and 3 of the crop. */
	cnnviz_options *o = opts_with("crop", "center");
	set(o, "resize", "nearest");
	set(o, "preprocess", "raw");
	float t[4 * 3];
	assert_int_equal(cnnviz_image_to_tensor(img, 2, 2, 1, o, t, 4, &seen,
						NULL), CNNVIZ_OK);
	const float want[4] = {21, 41, 23, 43};
	for (int i = 0; i < 4; i++)
		assert_float_equal(t[i], want[i], 0);
	assert_int_equal(cnnviz_image_width(seen), 2);
	assert_int_equal(cnnviz_image_channels(seen), 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(cnnviz_image_pixels(seen)[i], (int)want[i]);
	cnnviz_image_free(seen);

	/* Area 4x4 crop -> 2x2: means of 2x2 blocks. */
	set(o, "resize", "area");
	assert_int_equal(cnnviz_image_to_tensor(img, 2, 2, 1, o, t, 4, NULL,
						NULL), CNNVIZ_OK);
	assert_float_equal(t[0], (10 + 20 + 11 + 21) / 4.0, 1e-5);
	assert_float_equal(t[3], (32 + 42 + 33 + 43) / 4.0, 1e-5);

	/* Bilinear, no crop, gray -> 3 channels replicated, and seen is the
	   rounded resized image. */
	cnnviz_options_free(o);
	o = opts_with("preprocess", "raw");
	float t3[3 * 3 * 3];
	assert_int_equal(cnnviz_image_to_tensor(img, 3, 3, 3, o, t3, 27, &seen,
						NULL), CNNVIZ_OK);
	float ref[6 * 4];
	for (int i = 0; i < 24; i++)
		ref[i] = px[i];
	for (int y = 0; y < 3; y++)
		for (int x = 0; x < 3; x++) {
			double r = ref_bilinear(ref, 4, 6, 1, y, x, 0, 3, 3);
			for (int k = 0; k < 3; k++)
				assert_float_equal(t3[(y * 3 + x) * 3 + k], r,
						   1e-4);
			assert_int_equal(cnnviz_image_pixels(seen)[(y * 3 + x) *
								   3],
					 (int)floor(r + 0.5));
		}
	cnnviz_image_free(seen);
	cnnviz_options_free(o);

	/* Upscale for display repeats pixels. */
	cnnviz_image *big;
	assert_int_equal(cnnviz_image_upscale(img, 3, &big, NULL), CNNVIZ_OK);
	assert_int_equal(cnnviz_image_width(big), 18);
	assert_int_equal(cnnviz_image_height(big), 12);
	assert_int_equal(cnnviz_image_pixels(big)[5 * 18 + 17], px[1 * 6 + 5]);
	cnnviz_image_free(big);
	cnnviz_image_free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resize_golden),
		cmocka_unit_test(test_resize_random),
		cmocka_unit_test(test_tensor_presets),
		cmocka_unit_test(test_tensor_crop_resize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
