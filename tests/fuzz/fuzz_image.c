/*
 * Image decoding from bytes (JPEG through libjpeg-turbo, PNG through
 * libpng, everything else refused), then the decoded picture through
 * preprocessing into a 17x13 tensor. Seeds: small PNG/JPEG files made by
 * tests/fuzz/seeds.py and tests/bad's images.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cnnviz_options *opts;
	if (!opts)
		opts = fuzz_options();
	cnnviz_image *img = NULL;
	struct cnnviz_error e;
	if (cnnviz_image_load_memory(data, size, "fuzz.img", opts, &img, &e) !=
	    CNNVIZ_OK) {
		if (e.code == CNNVIZ_OK || e.code == CNNVIZ_ERR_INTERNAL)
			abort();
		return 0;
	}
	float t[17 * 13 * 3];
	int ch = size % 2 ? 1 : 3;
	if (cnnviz_image_to_tensor(img, 17, 13, ch, opts, t, sizeof t / sizeof t[0],
				   NULL, NULL) != CNNVIZ_OK)
		abort();
	cnnviz_image_free(img);
	return 0;
}
