/*
 * Explanations: identities and a planted ground truth.
 *
 *  - planted: tests/fixtures/planted (gen_planted.py) is a model whose
 *    output depends only on a known off-centre region of a 24x36 input;
 *    every method must put its maximum there (layer maps: within the 3x3
 *    conv's one-pixel halo; occlusion: within a patch) and most of its
 *    positive mass too. A bright distractor outside the region must not
 *    matter.
 *  - Grad-CAM = CAM / (h*w) on GAP->Dense heads: correlation > 0.999 on
 *    the planted model (linear and softmax heads, the latter through
 *    target_logit) and on real models when ../shared/models is present.
 *  - Integrated Gradients completeness within 1%.
 *  - a class with no positive evidence: a flag, never NaN.
 *  - contrasts are linear; the randomisation test and faithfulness
 *    scores behave on the planted model.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <cnnviz.h>

#include "util/refcheck.h"

#define PLANTED "tests/fixtures/planted/planted.h5"
#define PLANTED_SOFTMAX "tests/fixtures/planted/planted_softmax.h5"
#define PLANTED_INPUT "tests/fixtures/planted/input.npy"
/* gen_planted.py: rows [5, 11), columns [22, 30) of the 24 x 36 input */
#define R0 5
#define R1 11
#define C0 22
#define C1 30

static cnnviz_model *open_model(const char *path)
{
	struct cnnviz_error err;
	cnnviz_model *m = NULL;
	if (cnnviz_model_open(path, NULL, &m, &err)) {
		char buf[1200];
		printf("  %s\n", cnnviz_error_format(&err, buf, sizeof buf));
		return NULL;
	}
	return m;
}

static float *planted_input(void)
{
	struct cnnviz_error err;
	float *x = NULL;
	int rank;
	int64_t shape[CNNVIZ_MAX_RANK];
	assert_int_equal(cnnviz_npy_read(PLANTED_INPUT, &x, &rank, shape, &err), 0);
	assert_int_equal(rank, 4);
	assert_true(shape[1] == 24 && shape[2] == 36 && shape[3] == 1);
	return x;
}

static double corr(const float *a, const float *b, int64_t n)
{
	double ma = 0, mb = 0, ab = 0, aa = 0, bb = 0;
	for (int64_t i = 0; i < n; i++) {
		ma += a[i];
		mb += b[i];
	}
	ma /= (double)n;
	mb /= (double)n;
	for (int64_t i = 0; i < n; i++) {
		ab += (a[i] - ma) * (b[i] - mb);
		aa += (a[i] - ma) * (a[i] - ma);
		bb += (b[i] - mb) * (b[i] - mb);
	}
	return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

static int run_cam(cnnviz_explainer *ex, const char *method, int layer,
		   const float *x, struct cnnviz_target *t,
		   const cnnviz_options *o, float **map, int64_t *h, int64_t *w,
		   struct cnnviz_cam_info *info)
{
	struct cnnviz_error err;
	char buf[1200];
	int rc = cnnviz_cam_size(ex, method, layer, h, w, &err);
	if (rc) {
		printf("  %s: %s\n", method, cnnviz_error_format(&err, buf, sizeof buf));
		return rc;
	}
	*map = malloc((size_t)(*h * *w) * sizeof **map);
	rc = cnnviz_cam(ex, method, layer, &x, t, o, *map, (size_t)(*h * *w), info, &err);
	if (rc)
		printf("  %s: %s\n", method, cnnviz_error_format(&err, buf, sizeof buf));
	return rc;
}

/* --------------------------------------------------------------- planted */

static void planted_every_method(void **state)
{
	(void)state;
	struct cnnviz_error err;
	cnnviz_model *m = open_model(PLANTED);
	assert_non_null(m);
	float *x = planted_input();
	cnnviz_explainer *ex = NULL;
	assert_int_equal(cnnviz_explainer_new(m, 8, NULL, &ex, &err), 0);
	cnnviz_options *o = NULL;
	cnnviz_options_new(&o);
	cnnviz_options_set(o, "occlusion_patch", "3", NULL);
	cnnviz_options_set(o, "occlusion_stride", "1", NULL);
	int conv = cnnviz_model_find_layer(m, "conv");
	assert_true(conv >= 0);
	assert_int_equal(cnnviz_cam_default_layer(m), conv);
	for (int i = 0; cnnviz_cam_method(i); i++) {
		const char *meth = cnnviz_cam_method(i);
		int input = cnnviz_cam_method_is_input(meth);
		struct cnnviz_target t = {-1, 0, -1};
		struct cnnviz_cam_info info;
		float *map = NULL;
		int64_t h, w;
		assert_int_equal(run_cam(ex, meth, input ? -1 : conv, x, &t, o, &map,
					 &h, &w, &info), 0);
		assert_true(h == 24 && w == 36); /* same 'same' conv resolution */
		/* halo: the conv sees one pixel around the region; occlusion
		   patches reach patch - 1 pixels out */
		int halo = !strcmp(meth, "occlusion") ? 2 : input ? 0 : 1;
		int64_t best = 0;
		double in_mass = 0, mass = 0;
		for (int64_t p = 0; p < h * w; p++) {
			assert_true(isfinite(map[p]));
			if (map[p] > map[best])
				best = p;
			int64_t r = p / w, c = p % w;
			int inside = r >= R0 - halo && r < R1 + halo && c >= C0 - halo &&
				     c < C1 + halo;
			if (map[p] > 0) {
				mass += map[p];
				in_mass += inside ? map[p] : 0;
			}
		}
		int64_t br = best / w, bc = best % w;
		double frac = mass > 0 ? in_mass / mass : 0;
		printf("  %-16s peak at (%2lld, %2lld)  positive mass in region %.4f  f %.5f  runs %lld%s\n",
		       meth, (long long)br, (long long)bc, frac, info.score,
		       (long long)info.forward_runs,
		       info.flags & CNNVIZ_CAM_NO_POSITIVE ? "  NO POSITIVE" : "");
		assert_true(br >= R0 - halo && br < R1 + halo && bc >= C0 - halo &&
			    bc < C1 + halo);
		assert_true(frac >= 0.99);
		assert_false(info.flags & CNNVIZ_CAM_NO_POSITIVE);
		if (!strcmp(meth, "ig")) {
			printf("  ig completeness: sum %.6f, f(x) - f(0) %.6f, error %.2e (%lld intervals)\n",
			       info.ig_sum, info.ig_delta, info.ig_error,
			       (long long)info.ig_steps);
			assert_true(info.ig_error < 0.01);
		}
		free(map);
	}
	cnnviz_options_free(o);
	cnnviz_explainer_free(ex);
	free(x);
	cnnviz_model_free(m);
}

/* A class with no positive evidence: flagged, finite, never NaN. */
static void planted_no_evidence(void **state)
{
	(void)state;
	struct cnnviz_error err;
	cnnviz_model *m = open_model(PLANTED);
	assert_non_null(m);
	float *x = planted_input();
	cnnviz_explainer *ex = NULL;
	assert_int_equal(cnnviz_explainer_new(m, 4, NULL, &ex, &err), 0);
	const char *methods[] = {"gradcam", "gradcam++", "layercam", "hirescam", "cam"};
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		struct cnnviz_target t = {-1, 1, -1};
		struct cnnviz_cam_info info;
		float *map;
		int64_t h, w;
		assert_int_equal(run_cam(ex, methods[i], -1, x, &t, NULL, &map, &h,
					 &w, &info), 0);
		for (int64_t p = 0; p < h * w; p++)
			assert_true(isfinite(map[p]) && map[p] <= 0.0f);
		printf("  %-10s unit 1: flags %#x (NO_POSITIVE%s)\n", methods[i],
		       info.flags, info.flags & CNNVIZ_CAM_FLAT ? ", FLAT" : "");
		assert_true(info.flags & CNNVIZ_CAM_NO_POSITIVE);
		free(map);
	}
	cnnviz_explainer_free(ex);
	free(x);
	cnnviz_model_free(m);
}

static void gradcam_vs_cam(cnnviz_model *m, int layer, struct cnnviz_target *t,
			   const float *x, const cnnviz_options *o, const char *label)
{
	struct cnnviz_error err;
	cnnviz_explainer *ex = NULL;
	assert_int_equal(cnnviz_explainer_new(m, 1, o, &ex, &err), 0);
	float *g, *c;
	int64_t h, w;
	assert_int_equal(run_cam(ex, "gradcam", layer, x, t, o, &g, &h, &w, NULL), 0);
	assert_int_equal(run_cam(ex, "cam", layer, x, t, o, &c, &h, &w, NULL), 0);
	double r = corr(g, c, h * w), ratio = 0;
	int64_t best = 0;
	for (int64_t p = 0; p < h * w; p++)
		best = fabsf(c[p]) > fabsf(c[best]) ? p : best;
	ratio = c[best] != 0 ? g[best] * (double)(h * w) / c[best] : 0;
	printf("  %-44s %lldx%lld  corr(Grad-CAM, CAM) %.7f  Grad-CAM*hw/CAM %.6f\n",
	       label, (long long)h, (long long)w, r, ratio);
	assert_true(r > 0.999);
	assert_true(fabs(ratio - 1.0) < 1e-3);
	free(g);
	free(c);
	cnnviz_explainer_free(ex);
}

static void planted_gradcam_is_cam(void **state)
{
	(void)state;
	float *x = planted_input();
	cnnviz_model *m = open_model(PLANTED);
	assert_non_null(m);
	struct cnnviz_target t = {-1, 0, -1};
	gradcam_vs_cam(m, -1, &t, x, NULL, "planted (linear head), unit 0");
	t.minus = 1;
	gradcam_vs_cam(m, -1, &t, x, NULL, "planted, contrast unit 0 - unit 1");
	cnnviz_model_free(m);
	m = open_model(PLANTED_SOFTMAX);
	assert_non_null(m);
	cnnviz_options *o = NULL;
	cnnviz_options_new(&o);
	cnnviz_options_set(o, "target_logit", "1", NULL);
	t.minus = -1;
	gradcam_vs_cam(m, -1, &t, x, o, "planted softmax head, target_logit");
	cnnviz_options_free(o);
	/* a layer that does not feed the GAP directly: refused */
	struct cnnviz_error err;
	cnnviz_explainer *ex = NULL;
	assert_int_equal(cnnviz_explainer_new(m, 1, NULL, &ex, &err), 0);
	float map[24 * 36];
	int pad = cnnviz_model_find_layer(m, "pad");
	const float *xs = x;
	assert_int_equal(cnnviz_cam(ex, "cam", pad, &xs, &t, NULL, map, 24 * 36,
				    NULL, &err), CNNVIZ_ERR_UNSUPPORTED);
	printf("  cam at 'pad' refused: %s\n", err.message);
	assert_int_equal(cnnviz_cam(ex, "nope", pad, &xs, &t, NULL, map, 24 * 36,
				    NULL, &err), CNNVIZ_ERR_ARG);
	assert_int_equal(cnnviz_cam(ex, "saliency", pad, &xs, &t, NULL, map, 24 * 36,
				    NULL, &err), CNNVIZ_ERR_ARG);
	cnnviz_explainer_free(ex);
	cnnviz_model_free(m);
	free(x);
}

/* Grad-CAM of a contrast is the difference of the two Grad-CAMs. */
static void contrast_is_linear(void **state)
{
	(void)state;
	struct cnnviz_error err;
	float *x = planted_input();
	cnnviz_model *m = open_model(PLANTED);
	assert_non_null(m);
	cnnviz_explainer *ex = NULL;
	assert_int_equal(cnnviz_explainer_new(m, 1, NULL, &ex, &err), 0);
	float *a, *b, *d;
	int64_t h, w;
	struct cnnviz_target ta = {-1, 0, -1}, tb = {-1, 1, -1}, td = {-1, 0, 1};
	assert_int_equal(run_cam(ex, "gradcam", -1, x, &ta, NULL, &a, &h, &w, NULL), 0);
	assert_int_equal(run_cam(ex, "gradcam", -1, x, &tb, NULL, &b, &h, &w, NULL), 0);
	assert_int_equal(run_cam(ex, "gradcam", -1, x, &td, NULL, &d, &h, &w, NULL), 0);
	double e = 0, s = 0;
	for (int64_t p = 0; p < h * w; p++) {
		e = fmax(e, fabs(d[p] - (a[p] - b[p])));
		s = fmax(s, fabs(d[p]));
	}
	printf("  max|gradcam(0-1) - (gradcam(0) - gradcam(1))| = %.2e of %.2e\n", e, s);
	assert_true(e <= 1e-6 * s);
	free(a);
	free(b);
	free(d);
	cnnviz_explainer_free(ex);
	cnnviz_model_free(m);
	free(x);
}

static void planted_sanity_and_faithfulness(void **state)
{
	(void)state;
	struct cnnviz_error err;
	float *x = planted_input();
	const float *xs = x;
	struct cnnviz_target t = {-1, 0, -1};
	const char *methods[] = {"gradcam", "saliency", "guided_backprop"};
	for (size_t i = 0; i < 3; i++) {
		struct cnnviz_sanity_step steps[8];
		int n = 0;
		assert_int_equal(cnnviz_sanity_cascade(PLANTED, NULL, methods[i], -1,
						       &xs, &t, NULL, steps, 8, &n,
						       &err), 0);
		assert_int_equal(n, 2); /* logits, then conv */
		printf("  randomisation %-16s", methods[i]);
		for (int k = 0; k < n; k++)
			printf("  after layer %d: spearman %+.3f", steps[k].layer,
			       steps[k].spearman);
		printf("\n");
		/* the crop mask is parameter-free and survives any weights: the
		   input-space maps keep their zeros outside the region, so only
		   the layer map is held to a drop here */
		if (i == 0)
			assert_true(steps[n - 1].spearman < 0.5);
	}
	cnnviz_model *m = open_model(PLANTED);
	cnnviz_explainer *ex = NULL;
	assert_int_equal(cnnviz_explainer_new(m, 8, NULL, &ex, &err), 0);
	float *map;
	int64_t h, w;
	assert_int_equal(run_cam(ex, "gradcam", -1, x, &t, NULL, &map, &h, &w, NULL), 0);
	struct cnnviz_faithfulness f;
	assert_int_equal(cnnviz_faithfulness(ex, &xs, &t, map, h, w, NULL, &f, &err), 0);
	printf("  faithfulness gradcam: deletion %.5f (random %.5f), insertion %.5f (random %.5f), avg drop %.2f%% (random %.2f%%), f %.5f\n",
	       f.deletion, f.random_deletion, f.insertion, f.random_insertion,
	       f.avg_drop, f.random_avg_drop, f.score);
	assert_true(f.deletion < f.random_deletion);
	assert_true(f.insertion > f.random_insertion);
	assert_true(f.avg_drop < f.random_avg_drop);
	free(map);
	cnnviz_explainer_free(ex);
	cnnviz_model_free(m);
	free(x);
}

/* ---------------------------------------------------------- real models */

static char shared_path[1200];

static const char *shared_model(const char *file)
{
	const char *dir = refcheck_shared_dir();
	if (!dir)
		return NULL;
	snprintf(shared_path, sizeof shared_path, "%s/models/%s", dir, file);
	FILE *f = fopen(shared_path, "rb");
	if (!f)
		return NULL;
	fclose(f);
	return shared_path;
}

static float *uniform_input(const cnnviz_model *m)
{
	struct cnnviz_layer_info info;
	cnnviz_model_layer(m, cnnviz_model_input_layer(m, 0), &info);
	size_t n = 1;
	for (int k = 1; k < info.rank; k++)
		n *= (size_t)info.shape[k];
	float *x = malloc(n * sizeof *x);
	uint64_t s = 99;
	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		x[i] = (float)((double)(s >> 11) / 9007199254740992.0);
	}
	return x;
}

/* The unit of `layer` with the largest value (an active ReLU unit). */
static int64_t top_unit(cnnviz_model *m, int layer, const float *x)
{
	struct cnnviz_error err;
	cnnviz_explainer *ex = NULL;
	struct cnnviz_target t = {layer, 0, -1};
	struct cnnviz_tensor a;
	assert_int_equal(cnnviz_explainer_new(m, 1, NULL, &ex, &err), 0);
	assert_int_equal(cnnviz_explainer_run(ex, &x, 1, &t, &err), 0);
	assert_int_equal(cnnviz_explainer_activation(ex, layer, &a), 0);
	int64_t best = 0;
	for (size_t i = 1; i < a.count; i++)
		best = a.data[i] > a.data[best] ? (int64_t)i : best;
	cnnviz_explainer_free(ex);
	return best;
}

static void real_gradcam_is_cam(void **state)
{
	(void)state;
	const char *p = shared_model("fer_seq_bn_gap_k3.10.h5");
	if (!p) {
		skip();
		return;
	}
	cnnviz_model *m = open_model(p);
	assert_non_null(m);
	float *x = uniform_input(m);
	/* max_pooling2d_21 -> GAP -> dense_11: CAM is exact for dense_11 */
	int layer = cnnviz_model_find_layer(m, "max_pooling2d_21");
	int dense = cnnviz_model_find_layer(m, "dense_11");
	assert_true(layer >= 0 && dense >= 0);
	struct cnnviz_target t = {dense, top_unit(m, dense, x), -1};
	gradcam_vs_cam(m, layer, &t, x, NULL, "fer_seq_bn_gap_k3.10 dense_11 (top unit)");
	free(x);
	cnnviz_model_free(m);

	p = shared_model("mobilenetv2_a035_teachable_k2.4.h5");
	if (!p)
		return;
	m = open_model(p);
	assert_non_null(m);
	x = uniform_input(m);
	layer = cnnviz_model_find_layer(m, "sequential_1/model1/out_relu");
	dense = cnnviz_model_find_layer(m, "sequential_3/dense_Dense1");
	assert_true(layer >= 0 && dense >= 0);
	t = (struct cnnviz_target){dense, top_unit(m, dense, x), -1};
	gradcam_vs_cam(m, layer, &t, x, NULL, "mobilenetv2_a035 out_relu -> GAP -> Dense1");
	free(x);
	cnnviz_model_free(m);
}

/* Grad-CAM at Conv_1 of MobileNetV2 (the age-model user's request). */
static void real_mobilenet_conv1(void **state)
{
	(void)state;
	const char *p = shared_model("mobilenetv2_a035_teachable_k2.4.h5");
	if (!p) {
		skip();
		return;
	}
	struct cnnviz_error err;
	cnnviz_model *m = open_model(p);
	assert_non_null(m);
	float *x = uniform_input(m);
	int layer = cnnviz_model_find_layer(m, "sequential_1/model1/Conv_1");
	assert_true(layer >= 0);
	cnnviz_explainer *ex = NULL;
	assert_int_equal(cnnviz_explainer_new(m, 8, NULL, &ex, &err), 0);
	const char *methods[] = {"gradcam", "gradcam++", "layercam", "hirescam",
				 "eigencam", "saliency"};
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		struct cnnviz_target t = {-1, 0, -1};
		struct cnnviz_cam_info info;
		float *map;
		int64_t h, w;
		struct timespec t0, t1;
		int input = cnnviz_cam_method_is_input(methods[i]);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(run_cam(ex, methods[i], input ? -1 : layer, x, &t,
					 NULL, &map, &h, &w, &info), 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double lo = map[0], hi = map[0];
		for (int64_t q = 0; q < h * w; q++) {
			assert_true(isfinite(map[q]));
			lo = fmin(lo, map[q]);
			hi = fmax(hi, map[q]);
		}
		printf("  mobilenetv2 %-10s %lldx%lld  range [%.3g, %.3g]  f %.4f  %.0f ms\n",
		       methods[i], (long long)h, (long long)w, lo, hi, info.score,
		       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
		assert_true(input ? h == 224 && w == 224 : h == 7 && w == 7);
		assert_true(hi > lo);
		free(map);
	}
	cnnviz_explainer_free(ex);
	free(x);
	cnnviz_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(planted_every_method),
		cmocka_unit_test(planted_no_evidence),
		cmocka_unit_test(planted_gradcam_is_cam),
		cmocka_unit_test(contrast_is_linear),
		cmocka_unit_test(planted_sanity_and_faithfulness),
		cmocka_unit_test(real_gradcam_is_cam),
		cmocka_unit_test(real_mobilenet_conv1),
	};
	return cmocka_run_group_tests_name("explanations", tests, NULL, NULL);
}
