/*
 * Options by key: lines "key=value" set with cnnviz_options_set, then
 * read back by the code that parses values further (limits, image
 * preprocessing, feature-map grids, overlays). The CLI's own parser has
 * its target, fuzz_args.c.
 */
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cnnviz_options *o = NULL;
	char *text = malloc(size + 1);
	/* Small pictures unless the input asks otherwise: more execs/s. */
	if (!text || cnnviz_options_new(&o) ||
	    cnnviz_options_set(o, "upscale", "1", NULL) ||
	    cnnviz_options_set(o, "legend", "0", NULL))
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		struct cnnviz_error e;
		int rc = cnnviz_options_set(o, line, eq + 1, &e);
		if (rc != CNNVIZ_OK && rc != CNNVIZ_ERR_ARG)
			abort();
	}
	/* Consumers: each either accepts the value or fails cleanly. */
	double scale[3], offset[3];
	int bgr;
	cnnviz_image_preprocessing(o, 3, scale, offset, &bgr, NULL);
	cnnviz_image_preprocessing(o, 1, scale, offset, &bgr, NULL);
	static const float map[5 * 4 * 3] = {0, 1, 2, 3, -1, 0.5f, 9, 9, 9, 4};
	cnnviz_image *img = NULL, *out = NULL;
	if (cnnviz_render_grid(map, 5, 4, 3, "fuzz", o, &img, NULL, NULL) ==
	    CNNVIZ_OK) {
		float t[6 * 7 * 3];
		cnnviz_image_to_tensor(img, 6, 7, 3, o, t, sizeof t / sizeof t[0],
				       NULL, NULL);
		cnnviz_render_overlay(img, map, 5, 4, o, &out, NULL);
	}
	cnnviz_image_free(out);
	cnnviz_image_free(img);
	cnnviz_options_free(o);
	free(text);
	return 0;
}
