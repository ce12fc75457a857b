/* --layers / --overlay / --save-npy: which layers a spec names. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 200 || lb > 200)
		return 1000;
	size_t row[201];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* "unknown layer 'x' in --layers; closest: a, b, c" */
static int unknown(const cnnviz_model *m, const char *item, const char *what)
{
	int n = cnnviz_model_layer_count(m);
	int best[3] = {-1, -1, -1};
	size_t dist[3] = {(size_t)-1, (size_t)-1, (size_t)-1};
	for (int i = 0; i < n; i++) {
		struct cnnviz_layer_info li;
		cnnviz_model_layer(m, i, &li);
		size_t d = edit_distance(item, li.name);
		for (int k = 0; k < 3; k++) {
			if (d < dist[k]) {
				for (int j = 2; j > k; j--) {
					dist[j] = dist[j - 1];
					best[j] = best[j - 1];
				}
				dist[k] = d;
				best[k] = i;
				break;
			}
		}
	}
	char list[800] = "";
	size_t o = 0;
	for (int k = 0; k < 3 && best[k] >= 0; k++) {
		struct cnnviz_layer_info li;
		cnnviz_model_layer(m, best[k], &li);
		o += (size_t)snprintf(list + o, sizeof list - o, "%s'%s'", k ? ", " : "",
				      li.name);
		if (o >= sizeof list)
			break;
	}
	return cli_fail("%s: no layer '%s' in %s; closest names: %s "
			"(see cnnviz-dump --summary)", "layer selection", item, what, list);
}

static int parse_index(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || *end || v < 0 || v > 1000000)
		return -1;
	*out = (int)v;
	return 0;
}

int cli_select_layers(const cnnviz_model *m, const char *spec,
		      const char *what, unsigned char *sel)
{
	int n = cnnviz_model_layer_count(m);
	memset(sel, 0, (size_t)n);
	char *copy = strdup(spec ? spec : "");
	if (!copy)
		return cli_fail("out of memory");
	int rc = 0;
	char *save = NULL;
	for (char *item = strtok_r(copy, ",", &save); item && !rc;
	     item = strtok_r(NULL, ",", &save)) {
		int hit = 0, lo, hi;
		char *dash = strchr(item, '-');
		if (strcmp(item, "none") == 0) {
			hit = 1;
		} else if (strcmp(item, "all") == 0) {
			memset(sel, 1, (size_t)n);
			hit = 1;
		} else if (strcmp(item, "conv") == 0 || strcmp(item, "last-conv") == 0) {
			int last = -1;
			for (int i = 0; i < n; i++) {
				struct cnnviz_layer_info li;
				cnnviz_model_layer(m, i, &li);
				if ((li.flags & CNNVIZ_LAYER_CONV) && (li.flags & CNNVIZ_LAYER_SPATIAL)) {
					last = i;
					if (item[0] == 'c')
						sel[i] = 1;
				}
			}
			if (item[0] == 'l' && last >= 0)
				sel[last] = 1;
			hit = last >= 0;
			if (!hit)
				rc = cli_fail("%s: the model has no convolution layer with a spatial output",
					      what);
			continue;
		} else if (dash && dash != item && !parse_index(dash + 1, &hi) &&
			   (*dash = '\0', !parse_index(item, &lo))) {
			if (lo > hi || hi >= n) {
				rc = cli_fail("%s: index range %d-%d is outside 0-%d", what, lo, hi,
					      n - 1);
				continue;
			}
			for (int i = lo; i <= hi; i++)
				sel[i] = 1;
			hit = 1;
		} else if (dash) {
			*dash = '-'; /* not a range after all: a name with a dash */
		}
		if (hit)
			continue;
		if (!parse_index(item, &lo)) {
			if (lo >= n) {
				rc = cli_fail("%s: layer index %d is outside 0-%d", what, lo, n - 1);
				continue;
			}
			sel[lo] = 1;
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct cnnviz_layer_info li;
			cnnviz_model_layer(m, i, &li);
			if (strcmp(li.name, item) == 0 || fnmatch(item, li.name, 0) == 0) {
				sel[i] = 1;
				hit = 1;
			}
		}
		if (!hit)
			rc = unknown(m, item, what);
	}
	free(copy);
	return rc;
}
