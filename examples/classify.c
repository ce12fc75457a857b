/*
 * classify: the shortest useful libcnnviz program -- open a Keras model,
 * feed it a photo, print the top classes.
 *   build/examples/classify MODEL.h5 PHOTO.jpg
 */
#include <stdio.h>
#include <stdlib.h>

#include <cnnviz.h>

static int fail(const struct cnnviz_error *e)
{
	char buf[1200];
	fprintf(stderr, "classify: %s\n", cnnviz_error_format(e, buf, sizeof buf));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: classify MODEL PHOTO\n");
		return 2;
	}
	struct cnnviz_error e;
	cnnviz_model *m = NULL;
	cnnviz_image *photo = NULL;
	if (cnnviz_model_open(argv[1], NULL, &m, &e))
		return fail(&e);
	/* The model input, batch dimension first: (-1, H, W, C). */
	struct cnnviz_layer_info in;
	cnnviz_model_layer(m, cnnviz_model_input_layer(m, 0), &in);
	if (in.rank != 4) {
		fprintf(stderr, "classify: the model does not take images\n");
		cnnviz_model_free(m);
		return 1;
	}
	int64_t h = in.shape[1], w = in.shape[2], c = in.shape[3];
	float *x = malloc((size_t)(h * w * c) * sizeof *x);
	struct cnnviz_layer_info out;
	cnnviz_model_layer(m, cnnviz_model_output_layer(m, 0), &out);
	size_t n = (size_t)out.shape[out.rank - 1];
	float *y = malloc(n * sizeof *y);
	int rc = 1;
	if (!x || !y)
		goto done;
	/* Default preprocessing: resize (bilinear), pixels / 255. */
	if (cnnviz_image_load(argv[2], NULL, &photo, &e) ||
	    cnnviz_image_to_tensor(photo, h, w, (int)c, NULL, x, (size_t)(h * w * c), NULL, &e) ||
	    cnnviz_run(m, x, 1, NULL, NULL, y, n, &e)) {
		rc = fail(&e);
		goto done;
	}
	for (int k = 0; k < 3 && (size_t)k < n; k++) {
		size_t best = 0;
		for (size_t i = 1; i < n; i++)
			if (y[i] > y[best])
				best = i;
		printf("class %zu: %.4f\n", best, y[best]);
		y[best] = -1e30f;
	}
	rc = 0;
done:
	free(x);
	free(y);
	cnnviz_image_free(photo);
	cnnviz_model_free(m);
	return rc;
}
