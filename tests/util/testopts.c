/* Option helpers shared by the image and picture tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testopts.h"

void set(cnnviz_options *o, const char *key, const char *value)
{
	struct cnnviz_error e;
	int rc = cnnviz_options_set(o, key, value, &e);
	if (rc)
		print_error("options_set %s=%s: %s\n", key, value, e.message);
	assert_int_equal(rc, CNNVIZ_OK);
}

cnnviz_options *opts_with(const char *key, const char *value)
{
	cnnviz_options *o;
	assert_int_equal(cnnviz_options_new(&o), CNNVIZ_OK);
	if (key)
		set(o, key, value);
	return o;
}
