/*
 * Every real Keras model in ../shared/models against the independent
 * float64 reference, layer by layer (max|diff| <= 1e-4 * max|ref| per
 * layer). Skipped with a message when ../shared is absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cnnviz.h>

#include "util/refcheck.h"

static void check_case(void **state)
{
	const struct refcase *c = *state;
	struct refresult r;
	int rc = refcheck_run(c, &r);
	if (!c->expect_error)
		printf("  %-36s worst layer %.2e (%s), final %.2e, argmax %s, %d tensors + %d stats\n",
		       c->name, r.worst_layer, r.worst_name, r.final_rel,
		       r.argmax_ok == 1 ? "same" : "DIFFERS", r.layers_checked,
		       r.stats_checked);
	assert_int_equal(rc, 0);
	if (!c->expect_error)
		assert_int_equal(r.argmax_ok, 1);
}

/* total_params of MANIFEST.tsv (from the source projects) for this file. */
static long long manifest_params(const char *shared, const char *file)
{
	char path[1200], line[8192];
	snprintf(path, sizeof path, "%s/models/MANIFEST.tsv", shared);
	FILE *f = fopen(path, "r");
	long long v = -1;
	while (f && fgets(line, sizeof line, f)) {
		/* strsep keeps empty columns (strtok would merge them). */
		char *rest = line, *col = strsep(&rest, "\t");
		if (!col || strcmp(col, file) != 0)
			continue;
		for (int i = 1; i < 12 && col; i++)
			col = strsep(&rest, "\t");
		if (col)
			v = atoll(col);
	}
	if (f)
		fclose(f);
	return v;
}

/* Parameter counts equal what Keras reported for each model. */
static void param_counts(void **state)
{
	const struct refcase *cases = *state;
	const char *shared = refcheck_shared_dir();
	int checked = 0;
	for (const struct refcase *c = cases; c->name[0]; c++) {
		if (c->expect_error || strncmp(c->name, "bench/", 6) == 0)
			continue;
		const char *base = strrchr(c->model, '/') + 1;
		long long want = manifest_params(shared, base);
		if (want < 0)
			continue;
		cnnviz_options *o = NULL;
		cnnviz_model *m = NULL;
		cnnviz_options_new(&o);
		if (c->weights[0])
			cnnviz_options_set(o, "weights", c->weights, NULL);
		assert_int_equal(cnnviz_model_open(c->model, o, &m, NULL), CNNVIZ_OK);
		long long got = (long long)cnnviz_model_param_count(m);
		if (got != want)
			printf("  %s: %lld parameters, MANIFEST says %lld\n", c->name, got, want);
		assert_int_equal(got, want);
		checked++;
		cnnviz_model_free(m);
		cnnviz_options_free(o);
	}
	printf("  parameter counts agree with MANIFEST.tsv for %d models\n", checked);
	assert_true(checked >= 20);
}

int main(void)
{
	const char *shared = refcheck_shared_dir();
	if (!shared) {
		printf("SKIP test_models: ../shared/models not found (set CNNVIZ_SHARED); "
		       "the project's own fixtures still run in test_fixtures\n");
		return 0;
	}
	struct refcase *cases;
	int n;
	if (refcheck_shared_cases(shared, &cases, &n) || n == 0) {
		printf("cannot read %s/models/models.tsv\n", shared);
		return 1;
	}
	/* A terminating empty case for param_counts. */
	struct refcase *grown = realloc(cases, (size_t)(n + 1) * sizeof *grown);
	if (!grown)
		return 1;
	cases = grown;
	memset(&cases[n], 0, sizeof cases[n]);
	struct CMUnitTest *tests = calloc((size_t)n + 1, sizeof *tests);
	for (int i = 0; i < n; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = check_case;
		tests[i].initial_state = &cases[i];
	}
	tests[n].name = "param_counts";
	tests[n].test_func = param_counts;
	tests[n].initial_state = cases;
	int failed = _cmocka_run_group_tests("real_models", tests, (size_t)n + 1, NULL, NULL);
	free(tests);
	free(cases);
	return failed;
}
