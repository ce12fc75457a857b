/*
 * cnnviz-dump's command-line parser (tools/cnnviz-dump/args.c): the input
 * is argv, NUL-separated. Whatever it holds, the parser returns 0 or 2
 * (usage error), never exits, and what it fills stays inside argv.
 */
#include <string.h>

#include "fuzz_common.h"
#include "../../tools/cnnviz-dump/cli.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char *argv[MAX_ARGS + 2];
	int argc = 1;
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	argv[0] = "cnnviz-dump";
	for (char *p = text; argc <= MAX_ARGS && p < text + size;
	     p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	struct args a;
	int rc = cli_parse_args(argc, argv, &a);
	if (rc != 0 && rc != 2)
		abort();
	if (rc == 0 && (a.n_paths > argc || a.n_inputs > MAX_INPUTS))
		abort();
	/* every string it kept points into argv's text */
	const char *kept[] = {a.model, a.weights, a.out_dir, a.npy_dir, a.labels,
			      a.layers, a.cams, a.cam_class, a.threads};
	for (size_t i = 0; rc == 0 && i < sizeof kept / sizeof kept[0]; i++)
		if (kept[i] && (kept[i] < text || kept[i] > text + size))
			abort();
	cli_args_free(&a);
	free(text);
	return 0;
}
