/*
 * Shared by the libFuzzer targets: options with limits lowered so that one
 * input cannot make the fuzzer allocate gigabytes or run for seconds, and
 * running a model that opened (a model that opens must run).
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>

#include <cnnviz.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline cnnviz_options *fuzz_options(void)
{
	static const char *const kv[][2] = {
		{"max_layers", "300"},        {"max_dim", "4096"},
		{"max_elements", "65536"},    {"max_weight_bytes", "16777216"},
		{"max_json_bytes", "1048576"}, {"max_json_depth", "64"},
		{"max_pixels", "4194304"},
	};
	cnnviz_options *o = NULL;
	if (cnnviz_options_new(&o))
		abort();
	for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
		if (cnnviz_options_set(o, kv[i][0], kv[i][1], NULL))
			abort();
	return o;
}

/* Runs m once on a batch of 2 (inputs all 0.5); the run must succeed. */
static inline void fuzz_run(const cnnviz_model *m)
{
	int n = cnnviz_model_input_count(m);
	const float *in[64] = {NULL};
	float *buf[64] = {NULL};
	cnnviz_session *s = NULL;
	if (n < 1 || n > 64)
		abort(); /* the loader guarantees 1..64 inputs */
	for (int i = 0; i < n; i++) {
		struct cnnviz_layer_info li;
		if (cnnviz_model_layer(m, cnnviz_model_input_layer(m, i), &li))
			abort();
		size_t count = 2;
		for (int k = 1; k < li.rank; k++)
			count *= (size_t)li.shape[k];
		buf[i] = malloc(count * sizeof(float));
		if (!buf[i])
			goto out;
		for (size_t k = 0; k < count; k++)
			buf[i][k] = 0.5f;
		in[i] = buf[i];
	}
	/* A session may fail for want of memory, never otherwise. */
	int rc = cnnviz_session_new(m, 2, NULL, &s, NULL);
	if (rc == CNNVIZ_OK) {
		if (cnnviz_session_run(s, in, 2, NULL, NULL, NULL) != CNNVIZ_OK)
			abort();
	} else if (rc != CNNVIZ_ERR_NOMEM && rc != CNNVIZ_ERR_LIMIT) {
		abort();
	}
out:
	cnnviz_session_free(s);
	for (int i = 0; i < n; i++)
		free(buf[i]);
}

#endif
