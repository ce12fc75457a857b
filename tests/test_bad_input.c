/*
 * Hostile input, table-driven: every folder tests/bad/<case>/ holds the
 * input file(s) and an `expect` file (written by tests/bad/make_bad.py,
 * whose header documents the keys). Each case must fail cleanly with the
 * expected status and a message naming the file (and the layer, where
 * there is one) -- or, for status OK, load and run. The same input is
 * also given with err == NULL and, for model and image files, from memory:
 * the status must not change. No crash and no leak (run under make asan).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
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

#define BAD_DIR "tests/bad"
#define MAX_FRAGS 8
#define MAX_OPTS 4

struct bad_case {
	char name[128];
	char dir[PATH_MAX];
	char kind[16];
	char input[256];
	char status[32];
	char msg[MAX_FRAGS][128];
	int n_msg;
	char where[128];
	char weights[256];
	char file[256];   /* the file the message names, if not input */
	char opt_key[MAX_OPTS][64], opt_val[MAX_OPTS][64];
	int n_opt;
	char run[32];
	char args[512];
	char warning[256]; /* fragment of the model's one warning, if any */
};

static void trim(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
}

static void copy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int read_expect(struct bad_case *c)
{
	char path[PATH_MAX + 16], line[1024];
	snprintf(path, sizeof path, "%s/expect", c->dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	copy(c->kind, sizeof c->kind, "model");
	while (fgets(line, sizeof line, f)) {
		trim(line);
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp = '\0';
		const char *v = sp + 1;
		if (strcmp(line, "kind") == 0) {
			copy(c->kind, sizeof c->kind, v);
		} else if (strcmp(line, "input") == 0) {
			copy(c->input, sizeof c->input, v);
		} else if (strcmp(line, "status") == 0) {
			copy(c->status, sizeof c->status, v);
		} else if (strcmp(line, "message") == 0 && c->n_msg < MAX_FRAGS) {
			copy(c->msg[c->n_msg++], sizeof c->msg[0], v);
		} else if (strcmp(line, "where") == 0) {
			copy(c->where, sizeof c->where, v);
		} else if (strcmp(line, "weights") == 0) {
			copy(c->weights, sizeof c->weights, v);
		} else if (strcmp(line, "file") == 0) {
			copy(c->file, sizeof c->file, v);
		} else if (strcmp(line, "option") == 0 && c->n_opt < MAX_OPTS) {
			const char *sp2 = strchr(v, ' ');
			if (sp2) {
				snprintf(c->opt_key[c->n_opt], sizeof c->opt_key[0],
					 "%.*s", (int)(sp2 - v), v);
				copy(c->opt_val[c->n_opt], sizeof c->opt_val[0], sp2 + 1);
				c->n_opt++;
			}
		} else if (strcmp(line, "run") == 0) {
			copy(c->run, sizeof c->run, v);
		} else if (strcmp(line, "args") == 0) {
			copy(c->args, sizeof c->args, v);
		} else if (strcmp(line, "warning") == 0) {
			copy(c->warning, sizeof c->warning, v);
		}
	}
	fclose(f);
	return c->input[0] && c->status[0] ? 0 : -1;
}

static unsigned char *slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	unsigned char *buf = malloc(cap);
	for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
		n += got;
		if (n == cap) {
			unsigned char *g = realloc(buf, cap *= 2);
			if (!g)
				free(buf);
			buf = g;
		}
	}
	fclose(f);
	*size = n;
	return buf;
}

/* The formatted error holds every fragment, the file and the place. */
static void check_error(const struct bad_case *c, const struct cnnviz_error *e,
			const char *file)
{
	char text[1200];
	cnnviz_error_format(e, text, sizeof text);
	printf("  %-32s %s\n", c->name, text);
	for (int i = 0; i < c->n_msg; i++) {
		if (!strstr(text, c->msg[i]))
			fail_msg("%s: message lacks \"%s\"", c->name, c->msg[i]);
	}
	if (c->where[0] && !strstr(e->where, c->where))
		fail_msg("%s: where is \"%s\", expected it to name \"%s\"",
			 c->name, e->where, c->where);
	if (!e->file[0] || !strstr(text, file))
		fail_msg("%s: the message does not name the file %s", c->name,
			 file);
}

static void check_status(const struct bad_case *c, int rc, const char *how)
{
	if (strcmp(cnnviz_status_name(rc), c->status) != 0)
		fail_msg("%s (%s): status %s, expected %s", c->name, how,
			 cnnviz_status_name(rc), c->status);
}

static cnnviz_options *case_options(const struct bad_case *c)
{
	cnnviz_options *o = NULL;
	assert_int_equal(cnnviz_options_new(&o), CNNVIZ_OK);
	if (c->weights[0]) {
		char w[PATH_MAX + 300];
		snprintf(w, sizeof w, "%s/%s", c->dir, c->weights);
		assert_int_equal(cnnviz_options_set(o, "weights", w, NULL), CNNVIZ_OK);
	}
	for (int i = 0; i < c->n_opt; i++)
		assert_int_equal(cnnviz_options_set(o, c->opt_key[i], c->opt_val[i],
						    NULL), CNNVIZ_OK);
	return o;
}

/* A model that opens must run; "run nonfinite": its output holds NaN/Inf. */
static void run_model(const struct bad_case *c, const cnnviz_model *m)
{
	int n_in = cnnviz_model_input_count(m);
	const float *ins[8] = {NULL};
	float *bufs[8] = {NULL};
	cnnviz_session *s = NULL;
	struct cnnviz_error e;
	assert_true(n_in >= 1 && n_in <= 8);
	for (int i = 0; i < n_in; i++) {
		struct cnnviz_layer_info li;
		assert_int_equal(cnnviz_model_layer(m, cnnviz_model_input_layer(m, i),
						    &li), CNNVIZ_OK);
		size_t count = 1;
		for (int k = 1; k < li.rank; k++)
			count *= (size_t)li.shape[k];
		bufs[i] = calloc(count, sizeof(float));
		assert_non_null(bufs[i]);
		for (size_t k = 0; k < count; k++)
			bufs[i][k] = 1.0f;
		ins[i] = bufs[i];
	}
	assert_int_equal(cnnviz_session_new(m, 1, NULL, &s, &e), CNNVIZ_OK);
	assert_int_equal(cnnviz_session_run(s, ins, 1, NULL, NULL, &e), CNNVIZ_OK);
	struct cnnviz_tensor t;
	assert_int_equal(cnnviz_session_output(s, 0, &t), CNNVIZ_OK);
	size_t nonfinite = 0;
	for (size_t k = 0; k < t.count; k++)
		nonfinite += !isfinite(t.data[k]);
	printf("  %-32s loads and runs; %zu of %zu outputs are NaN/Inf\n",
	       c->name, nonfinite, t.count);
	if (strcmp(c->run, "nonfinite") == 0)
		assert_true(nonfinite > 0);
	cnnviz_session_free(s);
	for (int i = 0; i < n_in; i++)
		free(bufs[i]);
}

static int is_container_file(const unsigned char *d, size_t n)
{
	return n >= 8 && (memcmp(d, "\x89HDF\r\n\x1a\n", 8) == 0 ||
			  memcmp(d, "PK\x03\x04", 4) == 0);
}

static void model_case(const struct bad_case *c, const char *path)
{
	cnnviz_options *o = case_options(c);
	cnnviz_model *m = NULL;
	struct cnnviz_error e;
	int rc = cnnviz_model_open(path, o, &m, &e);
	check_status(c, rc, "file");
	if (rc == CNNVIZ_OK) {
		assert_non_null(m);
		/* exactly the expected warning, or none */
		const char *w = cnnviz_model_warning(m, 0);
		if (c->warning[0] && (!w || !strstr(w, c->warning)))
			fail_msg("%s: warning \"%s\" missing (got \"%s\")", c->name,
				 c->warning, w ? w : "none");
		if (!c->warning[0] && w)
			fail_msg("%s: unexpected warning \"%s\"", c->name, w);
		assert_null(cnnviz_model_warning(m, c->warning[0] ? 1 : 0));
		run_model(c, m);
	} else {
		assert_null(m);
		assert_int_equal(e.code, rc);
		check_error(c, &e, c->file[0] ? c->file : c->input);
	}
	cnnviz_model_free(m);
	m = NULL;

	/* Without an error record the status is the same. */
	rc = cnnviz_model_open(path, o, &m, NULL);
	check_status(c, rc, "err = NULL");
	cnnviz_model_free(m);
	m = NULL;

	/* From memory: the same status, and the given name in the message. */
	size_t size = 0;
	unsigned char *data = slurp(path, &size);
	if (data && is_container_file(data, size)) {
		char name[200];
		snprintf(name, sizeof name, "memory:%s", c->name);
		rc = cnnviz_model_open_memory(data, size, name, o, &m, &e);
		check_status(c, rc, "memory");
		if (rc) {
			char text[1200];
			assert_non_null(strstr(cnnviz_error_format(&e, text, sizeof text),
					       name));
		}
		cnnviz_model_free(m);
	}
	free(data);
	cnnviz_options_free(o);
}

static void image_case(const struct bad_case *c, const char *path)
{
	cnnviz_options *o = case_options(c);
	cnnviz_image *img = NULL;
	struct cnnviz_error e;
	int rc = cnnviz_image_load(path, o, &img, &e);
	check_status(c, rc, "file");
	if (rc) {
		assert_null(img);
		check_error(c, &e, c->input);
	}
	cnnviz_image_free(img);
	img = NULL;
	size_t size = 0;
	unsigned char *data = slurp(path, &size);
	assert_non_null(data);
	rc = cnnviz_image_load_memory(data, size, "memory", o, &img, NULL);
	check_status(c, rc, "memory");
	cnnviz_image_free(img);
	free(data);
	cnnviz_options_free(o);
}

static void npy_case(const struct bad_case *c, const char *path)
{
	float *data = (float *)&data; /* must be set to NULL on failure */
	int rank = -1;
	int64_t shape[CNNVIZ_MAX_RANK];
	struct cnnviz_error e;
	int rc = cnnviz_npy_read(path, &data, &rank, shape, &e);
	check_status(c, rc, "file");
	if (rc) {
		assert_null(data);
		check_error(c, &e, c->input);
	}
	cnnviz_free(data);
}

/* Nothing named [.]<base>.tmp* may be left next to the target. */
static void check_no_temp(const char *target)
{
	char dir[PATH_MAX], base[256], hidden[258];
	const char *slash = strrchr(target, '/');
	snprintf(dir, sizeof dir, "%.*s", (int)(slash - target), target);
	snprintf(base, sizeof base, "%s.tmp", slash + 1);
	snprintf(hidden, sizeof hidden, ".%s", base);
	DIR *d = opendir(dir);
	if (!d)
		return; /* the folder does not exist: nothing could be left */
	struct dirent *de;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, base, strlen(base)) == 0 ||
		    strncmp(de->d_name, hidden, strlen(hidden)) == 0)
			fail_msg("temporary file %s/%s was left behind", dir,
				 de->d_name);
	closedir(d);
}

/* path holds exactly text. */
static void check_content(const char *path, const char *text)
{
	char buf[64];
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	assert_int_equal(n, strlen(text));
	assert_memory_equal(buf, text, n);
}

/*
 * cnnviz_file_write, which every file the library writes goes through:
 * a new file gets the umask's mode (mkstemp's 0600 used to leak out), an
 * existing one is replaced whole, a failure leaves the target and no
 * temporary behind and names the file.
 */
static void file_write_whole_or_nothing(void **state)
{
	(void)state;
	char dir[] = "/tmp/cnnviz-write-XXXXXX", path[PATH_MAX];
	struct cnnviz_error e;
	struct stat st;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/out.json", dir);
	mode_t old = umask(022);
	assert_int_equal(cnnviz_file_write(path, "abc", 3, &e), CNNVIZ_OK);
	umask(old);
	check_content(path, "abc");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(cnnviz_file_write(path, "defg", 4, &e), CNNVIZ_OK);
	check_content(path, "defg");
	check_no_temp(path);
	/* a folder in the way: the old file stays, nothing else appears */
	char blocked[PATH_MAX];
	snprintf(blocked, sizeof blocked, "%s/sub", dir);
	assert_int_equal(mkdir(blocked, 0755), 0);
	assert_int_equal(chmod(blocked, 0555), 0);
	snprintf(blocked, sizeof blocked, "%s/sub/x.npy", dir);
	static const float v[2] = {1, 2};
	static const int64_t shape[1] = {2};
	int rc = cnnviz_npy_write(blocked, v, 1, shape, &e);
	if (geteuid() != 0) { /* root writes into read-only folders */
		assert_int_equal(rc, CNNVIZ_ERR_IO);
		assert_string_equal(e.file, blocked);
		check_no_temp(blocked);
	}
	snprintf(blocked, sizeof blocked, "%s/none/x.json", dir);
	assert_int_equal(cnnviz_file_write(blocked, "x", 1, &e), CNNVIZ_ERR_IO);
	assert_string_equal(e.file, blocked);
	assert_non_null(strstr(e.message, "No such file"));
	assert_int_equal(cnnviz_file_write(NULL, "x", 1, &e), CNNVIZ_ERR_ARG);
	assert_int_equal(cnnviz_file_write(path, NULL, 1, &e), CNNVIZ_ERR_ARG);
	check_content(path, "defg");
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", dir, dir);
	assert_int_equal(system(cmd), 0);
}

static void npy_write_case(const struct bad_case *c, const char *path)
{
	static const float v[6] = {1, 2, 3, 4, 5, 6};
	static const int64_t shape[2] = {2, 3};
	struct cnnviz_error e;
	int rc = cnnviz_npy_write(path, v, 2, shape, &e);
	check_status(c, rc, "file");
	if (rc)
		check_error(c, &e, c->input);
	check_no_temp(path);
}

/* The CLI fails with a message and leaves its output folder empty. */
static void cli_case(const struct bad_case *c)
{
	const char *tool = getenv("CNNVIZ_TOOL");
	char abs_tool[PATH_MAX];
	if (!tool || !realpath(tool, abs_tool)) {
		printf("  %-32s skipped: CNNVIZ_TOOL is not set\n", c->name);
		skip();
	}
	char out[] = "/tmp/cnnviz-bad-XXXXXX";
	char errfile[] = "/tmp/cnnviz-bad-err-XXXXXX";
	assert_non_null(mkdtemp(out));
	int efd = mkstemp(errfile);
	assert_true(efd >= 0);
	close(efd);
	char args[1024] = "", cmd[PATH_MAX * 3 + 1500];
	for (const char *p = c->args; *p;) {
		if (strncmp(p, "{out}", 5) == 0) {
			strncat(args, out, sizeof args - strlen(args) - 1);
			p += 5;
		} else {
			size_t n = strlen(args);
			if (n + 1 < sizeof args) {
				args[n] = *p;
				args[n + 1] = '\0';
			}
			p++;
		}
	}
	snprintf(cmd, sizeof cmd, "cd '%s' && '%s' '%s' %s >/dev/null 2>'%s'",
		 c->dir, abs_tool, c->input, args, errfile);
	int st = system(cmd);
	size_t n = 0;
	char *text = (char *)slurp(errfile, &n);
	unlink(errfile);
	assert_non_null(text);
	text[n ? n - 1 : 0] = '\0';
	printf("  %-32s exit %d: %s\n", c->name, WEXITSTATUS(st), text);
	int left = 0;
	DIR *d = opendir(out);
	for (struct dirent *de; d && (de = readdir(d));)
		left += de->d_name[0] != '.';
	if (d)
		closedir(d);
	char rm[PATH_MAX + 16];
	snprintf(rm, sizeof rm, "rm -rf '%s'", out);
	if (system(rm) != 0)
		printf("cannot remove %s\n", out);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
	for (int i = 0; i < c->n_msg; i++)
		if (!strstr(text, c->msg[i]))
			fail_msg("%s: stderr lacks \"%s\"", c->name, c->msg[i]);
	free(text);
	assert_int_equal(left, 0);
}

static void run_case(void **state)
{
	const struct bad_case *c = *state;
	char path[PATH_MAX + 300];
	snprintf(path, sizeof path, "%s/%s", c->dir, c->input);
	if (strcmp(c->kind, "model") == 0)
		model_case(c, path);
	else if (strcmp(c->kind, "image") == 0)
		image_case(c, path);
	else if (strcmp(c->kind, "npy") == 0)
		npy_case(c, path);
	else if (strcmp(c->kind, "npy_write") == 0)
		npy_write_case(c, path);
	else if (strcmp(c->kind, "cli") == 0)
		cli_case(c);
	else
		fail_msg("%s: unknown kind '%s'", c->name, c->kind);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct bad_case *)a)->name,
		      ((const struct bad_case *)b)->name);
}

int main(void)
{
	DIR *d = opendir(BAD_DIR);
	if (!d) {
		printf("no %s folder (run from the project root)\n", BAD_DIR);
		return 1;
	}
	struct bad_case *cases = NULL;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct bad_case c;
		memset(&c, 0, sizeof c);
		copy(c.name, sizeof c.name, de->d_name);
		snprintf(c.dir, sizeof c.dir, "%s/%s", BAD_DIR, de->d_name);
		if (read_expect(&c))
			continue; /* make_bad.py itself, stray files */
		struct bad_case *g = realloc(cases, (size_t)(n + 1) * sizeof *g);
		if (!g)
			return 1;
		cases = g;
		cases[n++] = c;
	}
	closedir(d);
	if (n == 0) {
		printf("no cases in %s\n", BAD_DIR);
		return 1;
	}
	qsort(cases, (size_t)n, sizeof *cases, by_name);
	struct CMUnitTest *tests = calloc((size_t)n + 1, sizeof *tests);
	if (!tests)
		return 1;
	for (int i = 0; i < n; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = run_case;
		tests[i].initial_state = &cases[i];
	}
	tests[n].name = "file_write_whole_or_nothing";
	tests[n].test_func = file_write_whole_or_nothing;
	int failed = _cmocka_run_group_tests("bad_input", tests, (size_t)n + 1,
					     NULL, NULL);
	free(tests);
	free(cases);
	return failed;
}
