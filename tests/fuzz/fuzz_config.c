/*
 * model_config JSON text -> graph -> layer setup and shapes -> a run with
 * zero weights (cnnviz__model_from_config, model.h). Seeds: the configs
 * of the project's fixtures.
 */
#include "../../lib/model.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cnnviz_options *opts;
	if (!opts)
		opts = fuzz_options();
	cnnviz_model *m = NULL;
	struct cnnviz_error e;
	if (cnnviz__model_from_config((const char *)data, size, opts, &m, &e) ==
	    CNNVIZ_OK)
		fuzz_run(m);
	else if (e.code == CNNVIZ_OK || e.code == CNNVIZ_ERR_INTERNAL)
		abort(); /* a failure must say why, and not be a bug */
	cnnviz_model_free(m);
	return 0;
}
