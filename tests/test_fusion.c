/*
 * Fusion must not change a single bit: a run without a hook (BN, residual
 * adds and activations folded into conv/dense epilogues) and a run with a
 * hook (every layer on its own) give identical outputs, for every fixture
 * and, when ../shared is present, every real model. A ZeroPadding2D read
 * only by a conv is folded into that conv, and so is a DepthwiseConv2D read
 * only by a 1x1 conv (checked by name on fixtures and by count on
 * MobileNetV2).
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
#include <cnnviz.h>

#include "internal.h" /* cnnviz__session_folded */
#include "model.h"    /* streaming_exact: the layers' ring_floats */
#include "util/refcheck.h"

static int count_layers(const struct cnnviz_layer_info *li,
			const struct cnnviz_tensor *t, void *user)
{
	(void)li;
	(void)t;
	++*(int *)user;
	return 0;
}

/* 0: identical, 1: differs, -1: not runnable here (refused, no input). */
static int compare(const struct refcase *c, int *seen)
{
	cnnviz_options *o = NULL;
	cnnviz_model *m = NULL;
	cnnviz_session *s = NULL;
	float *in = NULL, *plain = NULL;
	int rank, rc = -1;
	int64_t shape[CNNVIZ_MAX_RANK];
	char path[1100];
	struct cnnviz_tensor t;
	cnnviz_options_new(&o);
	if (c->weights[0])
		cnnviz_options_set(o, "weights", c->weights, NULL);
	snprintf(path, sizeof path, "%s/input.npy", c->expected);
	if (c->expect_error || cnnviz_model_open(c->model, o, &m, NULL) ||
	    cnnviz_npy_read(path, &in, &rank, shape, NULL) ||
	    cnnviz_model_input_count(m) != 1 ||
	    cnnviz_session_new(m, shape[0], NULL, &s, NULL))
		goto out;
	const float *x = in;
	if (cnnviz_session_run(s, &x, shape[0], count_layers, seen, NULL) ||
	    cnnviz_session_output(s, 0, &t))
		goto out;
	plain = malloc(t.count * sizeof *plain);
	memcpy(plain, t.data, t.count * sizeof *plain);
	size_t n = t.count;
	rc = 1;
	if (cnnviz_session_run(s, &x, shape[0], NULL, NULL, NULL) ||
	    cnnviz_session_output(s, 0, &t) || t.count != n)
		goto out;
	rc = memcmp(plain, t.data, n * sizeof *plain) != 0;
	if (rc)
		printf("  %s: fused and unfused outputs differ\n", c->name);
out:
	free(plain);
	cnnviz_free(in);
	cnnviz_session_free(s);
	cnnviz_model_free(m);
	cnnviz_options_free(o);
	return rc;
}

static void check_all(struct refcase *cases, int n, int *compared)
{
	for (int i = 0; i < n; i++) {
		int seen = 0;
		int rc = compare(&cases[i], &seen);
		if (rc >= 0)
			++*compared;
		assert_int_not_equal(rc, 1);
	}
}

static void fixtures_fuse_exactly(void **state)
{
	(void)state;
	struct refcase *cases;
	int n, compared = 0;
	assert_int_equal(refcheck_fixture_cases("tests/fixtures/cases", &cases, &n), 0);
	check_all(cases, n, &compared);
	printf("  %d fixtures: fused == unfused, bit for bit\n", compared);
	assert_true(compared > 100);
	free(cases);
}

static void real_models_fuse_exactly(void **state)
{
	(void)state;
	const char *shared = refcheck_shared_dir();
	if (!shared) {
		printf("  SKIP: ../shared not found\n");
		return;
	}
	struct refcase *cases;
	int n, compared = 0;
	assert_int_equal(refcheck_shared_cases(shared, &cases, &n), 0);
	check_all(cases, n, &compared);
	printf("  %d real models: fused == unfused, bit for bit\n", compared);
	assert_true(compared >= 20);
	free(cases);
}

/*
 * Layers of class cls that a hook-less run folds into others, and all of
 * them; expect_folded: the names that must fold (the others must not).
 */
static void count_folded(const char *model, const char *cls, int *folded,
			 int *pads, const char *const *expect_folded,
			 int n_expect)
{
	cnnviz_model *m = NULL;
	cnnviz_session *s = NULL;
	struct cnnviz_error e;
	char buf[1200];
	if (cnnviz_model_open(model, NULL, &m, &e))
		fail_msg("%s", cnnviz_error_format(&e, buf, sizeof buf));
	assert_int_equal(cnnviz_session_new(m, 1, NULL, &s, NULL), 0);
	*folded = *pads = 0;
	for (int i = 0; i < cnnviz_model_layer_count(m); i++) {
		struct cnnviz_layer_info li;
		cnnviz_model_layer(m, i, &li);
		if (strcmp(li.class_name, cls))
			continue;
		int f = cnnviz__session_folded(s, i);
		++*pads;
		*folded += f;
		int want = 0;
		for (int k = 0; k < n_expect; k++)
			want |= !strcmp(li.name, expect_folded[k]);
		if (n_expect && f != want)
			fail_msg("%s: %s should %sbe folded", model, li.name,
				 want ? "" : "not ");
	}
	cnnviz_session_free(s);
	cnnviz_model_free(m);
}

static void layers_fold(void **state)
{
	(void)state;
	static const char *const pads[] = {"pad_a", "pad_b", "pad_c", "pad_d",
					   "pad_g"};
	static const char *const dws[] = {"dw_a", "dw_b", "dw_c", "dw_e"};
	int folded, all;
	count_folded("tests/fixtures/cases/zeropad_fold/model.h5",
		     "ZeroPadding2D", &folded, &all, pads, 5);
	assert_int_equal(all, 6);
	assert_int_equal(folded, 5);
	count_folded("tests/fixtures/cases/dw_project/model.h5",
		     "DepthwiseConv2D", &folded, &all, dws, 4);
	assert_int_equal(all, 5);
	assert_int_equal(folded, 4);
	/* its expand convs are too small to stream (streaming_exact) */
	count_folded("tests/fixtures/cases/dw_project/model.h5", "Conv2D",
		     &folded, &all, NULL, 0);
	assert_int_equal(folded, 0);
	const char *shared = refcheck_shared_dir();
	if (!shared) {
		printf("  SKIP MobileNetV2: ../shared not found\n");
		return;
	}
	char path[1100];
	snprintf(path, sizeof path, "%s/models/bench/mobilenetv2_224_head.h5",
		 shared);
	static const char *const cls[] = {"ZeroPadding2D", "DepthwiseConv2D"};
	for (int k = 0; k < 2; k++) {
		count_folded(path, cls[k], &folded, &all, NULL, 0);
		printf("  MobileNetV2-224: %d of %d %s folded\n", folded, all,
		       cls[k]);
		assert_true(all > 0);
		assert_int_equal(folded, all);
	}
	/* the expand convs of the blocks at 28x28 and up stream */
	static const char *const expands[] = {
		"block_1_expand", "block_2_expand", "block_3_expand",
		"block_4_expand", "block_5_expand", "block_6_expand"};
	count_folded(path, "Conv2D", &folded, &all, expands, 6);
	printf("  MobileNetV2-224: %d of %d Conv2D folded\n", folded, all);
	assert_int_equal(folded, 6);
}

static int find(const cnnviz_model *m, const char *name)
{
	int i = cnnviz_model_find_layer(m, name);
	if (i < 0)
		fail_msg("no layer %s", name);
	return i;
}

static int noop_hook(const struct cnnviz_layer_info *li,
		     const struct cnnviz_tensor *t, void *user)
{
	(void)li;
	(void)t;
	(void)user;
	return 0;
}

/* cnnviz_session_step_time names the step that computed each layer. */
static void step_times(void **state)
{
	(void)state;
	static const char *const in_step[][2] = {
		/* layer, the layer whose step computes it */
		{"expand", "expand"},       {"expand_bn", "expand"},
		{"expand_relu", "expand"},  {"pad_a", "project_a"},
		{"dw_a", "project_a"},      {"dw_a_bn", "project_a"},
		{"dw_a_relu", "project_a"}, {"project_a", "project_a"},
		{"project_a_bn", "project_a"}, {"add_b", "project_b"},
		{"dw_d", "dw_d"},           {"pool_d", "pool_d"},
	};
	cnnviz_model *m = NULL;
	cnnviz_session *s = NULL;
	cnnviz_options *o = NULL;
	float *x = NULL;
	int rank;
	int64_t shape[CNNVIZ_MAX_RANK];
	double ms;
	int step;
	assert_int_equal(cnnviz_model_open("tests/fixtures/cases/dw_project/model.h5",
					   NULL, &m, NULL), 0);
	assert_int_equal(cnnviz_npy_read("tests/fixtures/cases/dw_project/input.npy",
					 &x, &rank, shape, NULL), 0);
	const float *in = x;
	/* off unless asked for */
	assert_int_equal(cnnviz_session_new(m, 1, NULL, &s, NULL), 0);
	assert_int_equal(cnnviz_session_run(s, &in, 1, NULL, NULL, NULL), 0);
	assert_int_equal(cnnviz_session_step_time(s, 1, &ms, &step),
			 CNNVIZ_ERR_ARG);
	cnnviz_session_free(s);

	assert_int_equal(cnnviz_options_new(&o), 0);
	assert_int_equal(cnnviz_options_set(o, "profile", "1", NULL), 0);
	assert_int_equal(cnnviz_session_new(m, 1, o, &s, NULL), 0);
	assert_int_equal(cnnviz_session_step_time(s, 1, &ms, &step),
			 CNNVIZ_ERR_ARG); /* no run yet */
	assert_int_equal(cnnviz_session_run(s, &in, 1, NULL, NULL, NULL), 0);
	for (size_t k = 0; k < sizeof in_step / sizeof in_step[0]; k++) {
		int i = find(m, in_step[k][0]), want = find(m, in_step[k][1]);
		assert_int_equal(cnnviz_session_step_time(s, i, &ms, &step), 0);
		if (step != want)
			fail_msg("%s: computed in step %d, not %s", in_step[k][0],
				 step, in_step[k][1]);
		if (i == want ? !(ms > 0) : ms != 0)
			fail_msg("%s: %g ms", in_step[k][0], ms);
	}
	assert_int_equal(cnnviz_session_step_time(s, cnnviz_model_input_layer(m, 0),
						  &ms, &step), 0);
	assert_int_equal(step, -1);
	assert_int_equal(cnnviz_session_step_time(s, find(m, "flatten_0"), &ms,
						  &step), 0);
	assert_int_equal(step, -1); /* an alias computes nothing */
	/* With a hook every layer is its own step. */
	assert_int_equal(cnnviz_session_run(s, &in, 1, noop_hook, NULL, NULL), 0);
	int dw = find(m, "dw_a");
	assert_int_equal(cnnviz_session_step_time(s, dw, &ms, &step), 0);
	assert_int_equal(step, dw);
	assert_true(ms > 0);
	assert_int_equal(cnnviz_session_step_time(s, -1, &ms, &step),
			 CNNVIZ_ERR_ARG);
	cnnviz_session_free(s);
	cnnviz_options_free(o);
	cnnviz_model_free(m);
	cnnviz_free(x);
}

/*
 * The expand stage streams only on large tensors (conv.c's ring_setup);
 * here every depthwise conv of the small dw_project fixture is made
 * eligible, so that its blocks (stride 2 after a folded padding, stride 1
 * with a residual Add) take the streaming path: still bit-identical to
 * the unfused run, and within 1e-4 of the reference.
 */
static void streaming_exact(void **state)
{
	(void)state;
	const char *dir = "tests/fixtures/cases/dw_project";
	char path[300];
	cnnviz_model *m = NULL;
	cnnviz_session *s = NULL;
	float *x = NULL, *ref = NULL, *plain = NULL;
	int rank;
	int64_t shape[CNNVIZ_MAX_RANK], oshape[CNNVIZ_MAX_RANK];
	struct cnnviz_tensor t;
	snprintf(path, sizeof path, "%s/model.h5", dir);
	assert_int_equal(cnnviz_model_open(path, NULL, &m, NULL), 0);
	for (int i = 0; i < m->n_layers; i++) {
		struct cnnviz__layer *l = m->layers[i];
		if (strcmp(l->class_name, "DepthwiseConv2D"))
			continue;
		/* kh rows of its input: (kh, kw, cin, mult) kernel */
		const struct cnnviz__shape *k = &l->w[0].shape;
		const struct cnnviz__shape *in = &m->layers[l->in[0]]->out;
		if (k->d[3] == 1)
			l->ring_floats = (size_t)(k->d[0] * in->d[1] * in->d[2]);
	}
	static const char *const streamed[] = {"expand", "expand_e"};
	for (int k = 0; k < 2; k++) {
		int i = cnnviz_model_find_layer(m, streamed[k]);
		assert_true(i >= 0);
		assert_int_equal(cnnviz_session_new(m, 1, NULL, &s, NULL), 0);
		if (!cnnviz__session_folded(s, i))
			fail_msg("%s does not stream", streamed[k]);
		cnnviz_session_free(s);
		s = NULL;
	}
	snprintf(path, sizeof path, "%s/input.npy", dir);
	assert_int_equal(cnnviz_npy_read(path, &x, &rank, shape, NULL), 0);
	snprintf(path, sizeof path, "%s/output.npy", dir);
	assert_int_equal(cnnviz_npy_read(path, &ref, &rank, oshape, NULL), 0);
	const float *in = x;
	for (int threads = 1; threads <= 2; threads++) {
		cnnviz_options *o = NULL;
		char v[8];
		snprintf(v, sizeof v, "%d", threads);
		assert_int_equal(cnnviz_options_new(&o), 0);
		assert_int_equal(cnnviz_options_set(o, "threads", v, NULL), 0);
		assert_int_equal(cnnviz_session_new(m, shape[0], o, &s, NULL), 0);
		cnnviz_options_free(o);
		assert_int_equal(cnnviz_session_run(s, &in, shape[0], noop_hook,
						    NULL, NULL), 0);
		assert_int_equal(cnnviz_session_output(s, 0, &t), 0);
		free(plain);
		plain = malloc(t.count * sizeof *plain);
		assert_non_null(plain);
		memcpy(plain, t.data, t.count * sizeof *plain);
		assert_int_equal(cnnviz_session_run(s, &in, shape[0], NULL, NULL,
						    NULL), 0);
		assert_int_equal(cnnviz_session_output(s, 0, &t), 0);
		assert_memory_equal(plain, t.data, t.count * sizeof *plain);
		double worst = 0;
		for (size_t i = 0; i < t.count; i++) {
			double d = fabs((double)t.data[i] - ref[i]) /
				   (fabs((double)ref[i]) + 1e-3);
			worst = d > worst ? d : worst;
		}
		if (worst > 1e-4)
			fail_msg("streamed output off the reference by %g", worst);
		cnnviz_session_free(s);
		s = NULL;
	}
	free(plain);
	cnnviz_free(x);
	cnnviz_free(ref);
	cnnviz_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fixtures_fuse_exactly),
		cmocka_unit_test(real_models_fuse_exactly),
		cmocka_unit_test(layers_fold),
		cmocka_unit_test(step_times),
		cmocka_unit_test(streaming_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
