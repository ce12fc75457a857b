/*
 * cnnviz-dump's contracts, by running the built tool ($CNNVIZ_TOOL, set by
 * make test): file names and layers.json of --npy-dir against the
 * reference outputs, report folders, exit statuses, one-line errors, and
 * no partial output after a failure.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cnnviz.h>
#include <jansson.h>

static const char *tool(void)
{
	const char *t = getenv("CNNVIZ_TOOL");
	return t && *t ? t : "build/cnnviz-dump";
}

static char tmpdir[256];

/* Runs the tool with a shell command tail; stderr goes to err_out. */
static int run(const char *args, char *err_out, size_t size)
{
	char cmd[4096], errf[300];
	snprintf(errf, sizeof errf, "%s/stderr.txt", tmpdir);
	snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>%s", tool(), args, errf);
	int st = system(cmd);
	if (err_out) {
		FILE *f = fopen(errf, "r");
		size_t n = f ? fread(err_out, 1, size - 1, f) : 0;
		err_out[n] = '\0';
		if (f)
			fclose(f);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return d ? n : -1;
}

static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* The fixture with a nested model and a shared layer: names with '/'. */
#define NESTED "tests/fixtures/cases/nested_func_twice"

static void npy_dir_matches_reference(void **state)
{
	(void)state;
	char args[1024], out[400], err[2048];
	snprintf(out, sizeof out, "%s/npy", tmpdir);
	snprintf(args, sizeof args, "%s/model.h5 --input-npy %s/input.npy --npy-dir %s",
		 NESTED, NESTED, out);
	assert_int_equal(run(args, err, sizeof err), 0);
	char path[600];
	snprintf(path, sizeof path, "%s/layers.json", out);
	json_t *doc = json_load_file(path, 0, NULL);
	assert_non_null(doc);
	json_t *ref = json_load_file(NESTED "/summary.json", 0, NULL);
	assert_non_null(ref);
	json_t *layers = json_object_get(doc, "layers");
	json_t *rlayers = json_object_get(ref, "layers");
	assert_int_equal(json_array_size(layers), json_array_size(rlayers));
	size_t i;
	json_t *e;
	int compared = 0;
	json_array_foreach(layers, i, e) {
		json_t *r = json_array_get(rlayers, i);
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *file = json_string_value(json_object_get(e, "file"));
		assert_string_equal(name, json_string_value(json_object_get(r, "name")));
		/* '/' -> '__' and '#k' -> '_callk', as the reference names files. */
		const char *rfile = json_string_value(json_object_get(r, "file"));
		if (!rfile || strcmp(rfile, "input.npy") == 0)
			continue;
		/* A nested-model entry shares its output layer's reference file. */
		if (!json_object_get(r, "alias_of"))
			assert_string_equal(file, strchr(rfile, '_') + 1);
		float *a, *b;
		int ra, rb;
		int64_t sa[CNNVIZ_MAX_RANK], sb[CNNVIZ_MAX_RANK];
		char pa[700], pb[700];
		snprintf(pa, sizeof pa, "%s/%s", out, file);
		snprintf(pb, sizeof pb, "%s/%s", NESTED, rfile);
		assert_int_equal(cnnviz_npy_read(pa, &a, &ra, sa, NULL), 0);
		assert_int_equal(cnnviz_npy_read(pb, &b, &rb, sb, NULL), 0);
		assert_int_equal(ra, rb);
		size_t n = 1;
		for (int k = 0; k < ra; k++) {
			assert_int_equal(sa[k], sb[k]);
			n *= (size_t)sa[k];
		}
		double scale = 1e-7, d = 0;
		for (size_t k = 0; k < n; k++) {
			scale = fmax(scale, fabs(b[k]));
			d = fmax(d, fabs((double)a[k] - b[k]));
		}
		assert_true(d <= 1e-4 * scale);
		compared++;
		free(a);
		free(b);
	}
	printf("  %d layer files match the reference\n", compared);
	assert_true(compared >= 5);
	json_decref(doc);
	json_decref(ref);
}

static void errors_are_one_line_and_leave_nothing(void **state)
{
	(void)state;
	char args[1024], out[400], err[2048];
	/* A model refused at load: named file and layer, exit 1, no output. */
	snprintf(out, sizeof out, "%s/refused", tmpdir);
	snprintf(args, sizeof args,
		 "tests/fixtures/cases/err_lambda/model.h5 --input-npy %s/input.npy --npy-dir %s",
		 NESTED, out);
	assert_int_equal(run(args, err, sizeof err), 1);
	assert_int_equal(lines(err), 1);
	assert_non_null(strstr(err, "err_lambda/model.h5"));
	assert_non_null(strstr(err, "'lambda'"));
	assert_true(count_entries(out) <= 0);
	/* An input of the wrong shape: nothing written either. */
	snprintf(args, sizeof args, "%s/model.h5 --input-npy %s/output.npy --npy-dir %s",
		 NESTED, NESTED, out);
	assert_int_equal(run(args, err, sizeof err), 1);
	assert_int_equal(lines(err), 1);
	assert_non_null(strstr(err, "output.npy"));
	assert_true(count_entries(out) <= 0);
	/* A missing model file. */
	assert_int_equal(run("no/such/model.h5 --summary", err, sizeof err), 1);
	assert_non_null(strstr(err, "no/such/model.h5"));
}

static void usage_errors_exit_2(void **state)
{
	(void)state;
	char err[2048];
	assert_int_equal(run("--no-such-option", err, sizeof err), 2);
	assert_non_null(strstr(err, "--no-such-option"));
	assert_int_equal(run("m.h5 x.jpg -o d --cmap rainbow", err, sizeof err), 2);
	assert_non_null(strstr(err, "rainbow"));
	assert_int_equal(run("m.h5 x.jpg -o d --alpha 3", err, sizeof err), 2);
	assert_int_equal(run("m.h5 x.jpg", err, sizeof err), 2);
	assert_int_equal(run("--help", err, sizeof err), 0);
}

/* Every option the parser accepts is documented in --help, and back. */
static void help_lists_every_option(void **state)
{
	(void)state;
	char cmd[512], help[16384];
	snprintf(cmd, sizeof cmd, "%s --help", tool());
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(help, 1, sizeof help - 1, p);
	help[n] = '\0';
	pclose(p);
	static const char *const documented[] = {
		"--weights", "--out", "--labels", "--top", "--layers", "--overlay",
		"--cols", "--cmap", "--norm", "--alpha", "--resize", "--crop",
		"--preprocess", "--input-npy", "--npy-dir", "--summary", "--bench",
		"--threads", "--list-layers", "--quiet"};
	for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++)
		assert_non_null(strstr(help, documented[i]));
}

static void report_folder_is_complete(void **state)
{
	(void)state;
	char args[1024], out[400], err[2048], path[600];
	snprintf(out, sizeof out, "%s/report", tmpdir);
	snprintf(args, sizeof args,
		 "examples/demo/demo_model.h5 examples/demo/demo.png -o %s -q --layers all", out);
	assert_int_equal(run(args, err, sizeof err), 0);
	static const char *const files[] = {"index.html", "manifest.json", "input.npy",
					    "input.png", "stats.csv", "stats.json",
					    "grids/conv_features.png", "overlays/conv_parts.png"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		struct stat st;
		snprintf(path, sizeof path, "%s/demo/%s", out, files[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_true(st.st_size > 0);
	}
	snprintf(path, sizeof path, "%s/demo/manifest.json", out);
	json_t *m = json_load_file(path, 0, NULL);
	assert_non_null(m);
	json_t *pred = json_object_get(m, "predictions");
	assert_int_equal(json_array_size(pred), 4);
	double sum = 0;
	size_t i;
	json_t *v;
	json_array_foreach(pred, i, v)
		sum += json_real_value(v);
	assert_true(fabs(sum - 1.0) < 1e-5); /* softmax head */
	/* model.warnings: always there, empty for finite weights */
	json_t *warn = json_object_get(json_object_get(m, "model"), "warnings");
	assert_true(json_is_array(warn));
	assert_int_equal(json_array_size(warn), 0);
	json_decref(m);
	/* A failing second run leaves the first report as it was. */
	snprintf(args, sizeof args, "examples/demo/demo_model.h5 %s/demo/input.npy -o %s -q",
		 out, out);
	assert_int_equal(run(args, err, sizeof err), 1);
	snprintf(path, sizeof path, "%s/demo/manifest.json", out);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(count_entries(out), 1); /* no staging folder left */
}

static float *load_map(const char *path, size_t *n)
{
	float *d;
	int rank;
	int64_t shape[CNNVIZ_MAX_RANK];
	if (cnnviz_npy_read(path, &d, &rank, shape, NULL) || rank != 2)
		return NULL;
	*n = (size_t)(shape[0] * shape[1]);
	return d;
}

/* The --cam file contract, and Grad-CAM proportional to CAM on the
   demo's GlobalAveragePooling -> Dense head. */
static void cam_files_and_gradcam_equals_cam(void **state)
{
	(void)state;
	char args[1024], out[400], err[2048], path[900];
	snprintf(out, sizeof out, "%s/cam", tmpdir);
	snprintf(args, sizeof args,
		 "examples/demo/demo_model.h5 examples/demo/demo.png -o %s -q "
		 "--cam gradcam,cam,saliency --class 2 --target-logit", out);
	assert_int_equal(run(args, err, sizeof err), 0);
	const char *names[] = {"gradcam/pool2/2", "cam/pool2/2", "saliency/image/2"};
	for (int i = 0; i < 3; i++) {
		const char *ext[] = {".raw.npy", ".npy", ".png"};
		for (int k = 0; k < 3; k++) {
			struct stat st;
			snprintf(path, sizeof path, "%s/demo/cam/%s%s", out, names[i], ext[k]);
			assert_int_equal(stat(path, &st), 0);
		}
	}
	size_t n1 = 0, n2 = 0;
	snprintf(path, sizeof path, "%s/demo/cam/gradcam/pool2/2.raw.npy", out);
	float *g = load_map(path, &n1);
	snprintf(path, sizeof path, "%s/demo/cam/cam/pool2/2.raw.npy", out);
	float *c = load_map(path, &n2);
	assert_non_null(g);
	assert_non_null(c);
	assert_int_equal(n1, n2);
	double sg = 0, sc = 0, sgg = 0, scc = 0, sgc = 0;
	for (size_t i = 0; i < n1; i++) {
		sg += g[i];
		sc += c[i];
		sgg += (double)g[i] * g[i];
		scc += (double)c[i] * c[i];
		sgc += (double)g[i] * c[i];
	}
	double cov = sgc - sg * sc / n1;
	double corr = cov / sqrt((sgg - sg * sg / n1) * (scc - sc * sc / n1));
	printf("  Grad-CAM vs CAM on the demo head: correlation %.9f\n", corr);
	assert_true(corr > 0.999);
	free(g);
	free(c);
}

/*
 * The emotion user's run on a real model and photo: the predictions in
 * manifest.json are what the library gives for the saved input.npy (the
 * tensor the network saw).
 */
static void real_emotion_model_report(void **state)
{
	(void)state;
	const char *shared = getenv("CNNVIZ_SHARED") ? getenv("CNNVIZ_SHARED") : "../shared";
	char model[600], photo[600], args[2048], out[400], err[2048], path[900];
	snprintf(model, sizeof model, "%s/models/fer_mini_xception_48x48.hdf5", shared);
	snprintf(photo, sizeof photo, "%s/images/input_face.jpeg", shared);
	if (access(model, R_OK) || access(photo, R_OK)) {
		printf("  SKIP: %s or %s absent\n", model, photo);
		skip();
	}
	snprintf(out, sizeof out, "%s/fer", tmpdir);
	snprintf(args, sizeof args, "%s %s -o %s -q --labels fer2013 --cam gradcam "
		 "--class happy-vs-neutral", model, photo, out);
	assert_int_equal(run(args, err, sizeof err), 0);
	snprintf(path, sizeof path, "%s/input_face/manifest.json", out);
	json_t *m = json_load_file(path, 0, NULL);
	assert_non_null(m);
	json_t *pred = json_object_get(m, "predictions");
	assert_int_equal(json_array_size(pred), 7);
	assert_string_equal(json_string_value(json_array_get(json_object_get(m, "labels"), 3)),
			    "happy");
	cnnviz_model *mm;
	float *x, y[7];
	int rank;
	int64_t shape[CNNVIZ_MAX_RANK];
	snprintf(path, sizeof path, "%s/input_face/input.npy", out);
	assert_int_equal(cnnviz_npy_read(path, &x, &rank, shape, NULL), 0);
	assert_int_equal(rank, 4);
	assert_int_equal(shape[1], 48);
	assert_int_equal(shape[3], 1);
	assert_int_equal(cnnviz_model_open(model, NULL, &mm, NULL), 0);
	assert_int_equal(cnnviz_run(mm, x, 1, NULL, NULL, y, 7, NULL), 0);
	/* Bit-exact within one instruction set; the tool and this test may
	   use different ones (valgrind has no AVX-512), hence 1e-5. */
	for (int i = 0; i < 7; i++)
		assert_true(fabs(json_real_value(json_array_get(pred, (size_t)i)) - y[i]) <= 1e-5);
	json_t *cam = json_array_get(json_object_get(m, "cam"), 0);
	assert_string_equal(json_string_value(json_object_get(cam, "target")), "3-vs-6");
	snprintf(path, sizeof path, "%s/input_face/cam/gradcam/%s/3-vs-6.raw.npy", out,
		 json_string_value(json_object_get(cam, "layer")));
	assert_int_equal(access(path, R_OK), 0);
	free(x);
	cnnviz_model_free(mm);
	json_decref(m);
}

static long file_size(const char *path, unsigned char **data)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	*data = malloc((size_t)n + 1);
	if (!*data || fread(*data, 1, (size_t)n, f) != (size_t)n)
		n = -1;
	fclose(f);
	return n;
}

/*
 * Regression: CAM overlays once changed the shared overlay range, so the
 * second image's activation overlay came out differently from the first.
 */
static void cam_does_not_change_later_overlays(void **state)
{
	(void)state;
	char args[1024], out[400], err[2048], a[600], b[600];
	snprintf(out, sizeof out, "%s/twice", tmpdir);
	snprintf(args, sizeof args, "examples/demo/demo_model.h5 examples/demo/demo.png "
		 "examples/demo/demo.png -o %s -q --cam gradcam", out);
	assert_int_equal(run(args, err, sizeof err), 0);
	snprintf(a, sizeof a, "%s/demo/overlays/conv_parts.png", out);
	snprintf(b, sizeof b, "%s/demo-2/overlays/conv_parts.png", out);
	unsigned char *da = NULL, *db = NULL;
	long na = file_size(a, &da), nb = file_size(b, &db);
	assert_true(na > 0);
	assert_int_equal(na, nb);
	assert_memory_equal(da, db, (size_t)na);
	free(da);
	free(db);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/cnnviz-test-cli-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A model with NaN/Inf weights runs, with a warning naming the weight
   (not with -q). */
static void nonfinite_weights_warn(void **state)
{
	(void)state;
	char err[2048];
	assert_int_equal(run("--summary tests/bad/nan_inf_weights/model.h5", err,
			     sizeof err), 0);
	assert_non_null(strstr(err, "cnnviz-dump: warning: "
				    "tests/bad/nan_inf_weights/model.h5: layer 'd1': "
				    "weight 'kernel' holds 1 NaN and 1 infinite"));
	assert_int_equal(run("-q --summary tests/bad/nan_inf_weights/model.h5",
			     err, sizeof err), 0);
	assert_string_equal(err, "");
}

/*
 * --bench --profile: one line per layer timed in the fused runs (folded
 * layers: 0 ms and the step that computed them), then the summary line.
 */
static void bench_profile_lines(void **state)
{
	(void)state;
	const char *model = "tests/fixtures/cases/dw_project/model.h5";
	char cmd[1024], path[300];
	snprintf(path, sizeof path, "%s/bench.jsonl", tmpdir);
	snprintf(cmd, sizeof cmd, "%s --bench 5 --batch 2 --threads 2 --profile %s >%s",
		 tool(), model, path);
	assert_int_equal(system(cmd), 0);
	cnnviz_model *m = NULL;
	assert_int_equal(cnnviz_model_open(model, NULL, &m, NULL), 0);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[4096];
	int n_profile = 0, n_summary = 0;
	while (fgets(line, sizeof line, f)) {
		json_t *o = json_loads(line, 0, NULL);
		assert_non_null(o);
		if (json_object_get(o, "profile")) {
			const char *name = json_string_value(json_object_get(o, "layer"));
			json_t *step = json_object_get(o, "step");
			double ms = json_number_value(json_object_get(o, "ms"));
			assert_non_null(name);
			assert_int_equal(cnnviz_model_find_layer(m, name), n_profile);
			if (!strcmp(name, "dw_a") || !strcmp(name, "dw_a_bn")) {
				assert_string_equal(json_string_value(step), "project_a");
				assert_true(ms == 0);
			}
			if (!strcmp(name, "project_a")) {
				assert_string_equal(json_string_value(step), "project_a");
				assert_true(ms > 0);
				assert_true(json_number_value(json_object_get(o, "gflops")) > 0);
			}
			if (!strcmp(name, "flatten_0"))
				assert_true(json_is_null(step));
			n_profile++;
		} else {
			json_t *lat = json_object_get(o, "latency_ms");
			assert_true(json_number_value(json_object_get(lat, "median")) > 0);
			assert_int_equal(json_integer_value(json_object_get(o, "batch")), 2);
			n_summary++;
		}
		json_decref(o);
	}
	fclose(f);
	assert_int_equal(n_profile, cnnviz_model_layer_count(m));
	assert_int_equal(n_summary, 1);
	cnnviz_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(npy_dir_matches_reference),
		cmocka_unit_test(errors_are_one_line_and_leave_nothing),
		cmocka_unit_test(usage_errors_exit_2),
		cmocka_unit_test(help_lists_every_option),
		cmocka_unit_test(report_folder_is_complete),
		cmocka_unit_test(cam_files_and_gradcam_equals_cam),
		cmocka_unit_test(real_emotion_model_report),
		cmocka_unit_test(cam_does_not_change_later_overlays),
		cmocka_unit_test(bench_profile_lines),
		cmocka_unit_test(nonfinite_weights_warn),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
