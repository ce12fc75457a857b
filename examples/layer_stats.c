/*
 * layer_stats: watch every layer through a hook -- each layer's name,
 * class, output shape and value range, for one input tensor (.npy).
 *   build/examples/layer_stats MODEL.h5 INPUT.npy
 */
#include <math.h>
#include <stdio.h>

#include <cnnviz.h>

static int show(const struct cnnviz_layer_info *layer,
		const struct cnnviz_tensor *out, void *user)
{
	(void)user;
	float lo = INFINITY, hi = -INFINITY;
	for (size_t i = 0; i < out->count; i++) {
		lo = fminf(lo, out->data[i]);
		hi = fmaxf(hi, out->data[i]);
	}
	printf("%3d %-40s %-22s [", layer->index, layer->name, layer->class_name);
	for (int i = 0; i < out->rank; i++)
		printf("%s%lld", i ? "," : "", (long long)out->shape[i]);
	printf("] %.4g .. %.4g\n", lo, hi);
	return 0; /* non-zero would stop the run */
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: layer_stats MODEL INPUT.npy\n");
		return 2;
	}
	struct cnnviz_error e;
	cnnviz_model *m = NULL;
	cnnviz_session *s = NULL;
	float *x = NULL;
	int rank, rc = 1;
	int64_t shape[CNNVIZ_MAX_RANK];
	char buf[1200];
	if (cnnviz_model_open(argv[1], NULL, &m, &e) ||
	    cnnviz_npy_read(argv[2], &x, &rank, shape, &e) ||
	    cnnviz_session_new(m, shape[0], NULL, &s, &e) ||
	    cnnviz_session_run(s, (const float *const *)&x, shape[0], show, NULL, &e))
		fprintf(stderr, "layer_stats: %s\n", cnnviz_error_format(&e, buf, sizeof buf));
	else
		rc = 0;
	cnnviz_free(x);
	cnnviz_session_free(s);
	cnnviz_model_free(m);
	return rc;
}
