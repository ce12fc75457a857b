/* Options for tests: every set must succeed, or the test fails. */
#ifndef TESTOPTS_H
#define TESTOPTS_H

#include <cnnviz.h>

/* New options with key=value set (key may be NULL: empty). */
cnnviz_options *opts_with(const char *key, const char *value);
void set(cnnviz_options *o, const char *key, const char *value);

#endif
