/*
 * Whole-model loading from bytes: an HDF5 file image (opened through the
 * HDF5 core driver) or a .keras zip, then one run. Seeds: the fixtures'
 * and tests/bad's model files.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cnnviz_options *opts;
	if (!opts)
		opts = fuzz_options();
	cnnviz_model *m = NULL;
	struct cnnviz_error e;
	if (cnnviz_model_open_memory(data, size, "fuzz.h5", opts, &m, &e) ==
	    CNNVIZ_OK)
		fuzz_run(m);
	else if (e.code == CNNVIZ_OK || e.code == CNNVIZ_ERR_INTERNAL)
		abort();
	cnnviz_model_free(m);
	return 0;
}
