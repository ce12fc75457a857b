/*
 * The project's own small Keras files (tests/fixtures/cases, made by
 * tests/fixtures/gen_fixtures.py with expected values from the independent
 * reference keras_ref.py): one layer option per case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "util/refcheck.h"

static void check_case(void **state)
{
	const struct refcase *c = *state;
	struct refresult r;
	int rc = refcheck_run(c, &r);
	if (!c->expect_error)
		printf("  %-36s worst layer %.2e (%s), final %.2e\n", c->name,
		       r.worst_layer, r.worst_name, r.final_rel);
	assert_int_equal(rc, 0);
}

int main(void)
{
	struct refcase *cases;
	int n;
	if (refcheck_fixture_cases("tests/fixtures/cases", &cases, &n) || n == 0) {
		printf("no fixtures in tests/fixtures/cases (run from the project root)\n");
		return 1;
	}
	struct CMUnitTest *tests = calloc((size_t)n, sizeof *tests);
	for (int i = 0; i < n; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = check_case;
		tests[i].initial_state = &cases[i];
	}
	int failed = _cmocka_run_group_tests("fixtures", tests, (size_t)n, NULL, NULL);
	free(tests);
	free(cases);
	return failed;
}
