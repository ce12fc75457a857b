/*
 * cnnviz-dump: run a Keras model and show what every layer sees. Uses only
 * the public API; the command line is parsed in args.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int main(int argc, char **argv)
{
	struct args a;
	int rc = cli_parse_args(argc, argv, &a);
	if (rc)
		goto out;
	if (a.help_or_version && strcmp(a.help_or_version, "--help") == 0) {
		cli_usage(stdout);
		goto out;
	}
	if (a.help_or_version) {
		printf("cnnviz-dump %s\n", CNNVIZ_VERSION_STRING);
		goto out;
	}
	if (a.list_layers) {
		for (int i = 0; cnnviz_layer_class(i); i++)
			printf("%-26s %s\n", cnnviz_layer_class(i), cnnviz_layer_class_kind(i));
		goto out;
	}
	if (!a.model) {
		rc = cli_usage_error("no MODEL given", NULL);
		goto out;
	}
	int modes = !!a.summary + !!(a.npy_dir || a.n_inputs) + !!a.n_paths + !!a.bench;
	if (modes > 1 && !(a.n_inputs && a.out_dir && !a.n_paths)) {
		rc = cli_usage_error("give one of: IMAGE... -o DIR, --input-npy with --npy-dir, "
				 "--summary, --bench", NULL);
	} else if (a.summary) {
		rc = cli_summary(&a);
	} else if (a.bench) {
		rc = cli_bench(&a);
	} else if (a.npy_dir) {
		rc = a.n_inputs ? cli_dump_npy(&a)
				: cli_usage_error("--npy-dir needs --input-npy", NULL);
	} else if (a.n_paths || a.n_inputs) {
		rc = a.out_dir ? cli_report_images(&a)
			       : cli_usage_error("images need an output folder: -o DIR", NULL);
	} else {
		rc = cli_usage_error("nothing to do: give IMAGE... -o DIR, --input-npy with "
				 "--npy-dir, --summary or --bench", NULL);
	}
out:
	cli_args_free(&a);
	return rc;
}
