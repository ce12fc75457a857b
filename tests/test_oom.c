/*
 * Allocation-failure injection. Linked with -Wl,--wrap=malloc,calloc,
 * realloc,free,strdup,strndup,aligned_alloc (TEST_LDFLAGS_test_oom in the
 * Makefile), so every allocation made from libcnnviz's own code (and from
 * this file) goes through the wrappers below. For N = 1, 2, ... the Nth
 * allocation of "options + open a model + new session + run" fails; each
 * attempt must end in CNNVIZ_ERR_NOMEM with nothing leaked -- the wrappers
 * track every live block, so a leak is found without ASan too -- and no
 * HDF5 handle left open. An attempt whose failed allocation was optional
 * may succeed, but then must give the same outputs, bit for bit.
 *
 * libhdf5, jansson, libzip, libpng and libjpeg are shared libraries: their
 * internal mallocs are not wrapped (--wrap only redirects references
 * resolved at this link), which is fine -- their own failure paths are
 * their business; ours are what this test is for.
 *
 * The wrappers hold one lock: the counter and the live set are shared by
 * every thread that allocates, and a race there would miscount a failure
 * point or report a leak that is not there.
 *
 * CNNVIZ_QUICK=1 tries every k-th N only on the large models (at most
 * about 150 attempts per model); CNNVIZ_OOM_STRIDE=k forces a stride.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cnnviz.h>
#include <hdf5.h>

/* ------------------------------------------------------------ wrappers */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

static int armed;       /* count allocations, fail the fail_at-th */
static long n_allocs, fail_at;
static int tracking;    /* record live blocks */
static long n_live;

/* Open addressing; TOMB marks a freed slot. Cleared between attempts. */
#define SET_SIZE (1u << 18)
#define TOMB ((void *)1)
static void *live[SET_SIZE];
static long set_used;   /* slots not empty (live or tomb) */
static int set_full;

static size_t slot_of(const void *p)
{
	uintptr_t h = (uintptr_t)p;
	h ^= h >> 17;
	h *= 0x9e3779b97f4a7c15u;
	return (size_t)(h >> 20) & (SET_SIZE - 1);
}

static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;

static void track_add_locked(void *p)
{
	if (!tracking || !p)
		return;
	if (set_used >= (long)(SET_SIZE * 3 / 4)) {
		set_full = 1;
		return;
	}
	size_t i = slot_of(p);
	while (live[i] && live[i] != TOMB)
		i = (i + 1) & (SET_SIZE - 1);
	if (!live[i])
		set_used++;
	live[i] = p;
	n_live++;
}

static void track_add(void *p)
{
	pthread_mutex_lock(&alloc_lock);
	track_add_locked(p);
	pthread_mutex_unlock(&alloc_lock);
}

static void track_del_locked(void *p)
{
	if (!tracking || !p)
		return;
	for (size_t i = slot_of(p); live[i]; i = (i + 1) & (SET_SIZE - 1)) {
		if (live[i] == p) {
			live[i] = TOMB;
			n_live--;
			return;
		}
	}
}

static void track_del(void *p)
{
	pthread_mutex_lock(&alloc_lock);
	track_del_locked(p);
	pthread_mutex_unlock(&alloc_lock);
}

/* Where the failed allocation was made: "test_oom+0x1234" for addr2line. */
static const void *fail_site;

#define INJECT() inject(__builtin_return_address(0))

static int inject(const void *caller)
{
	pthread_mutex_lock(&alloc_lock);
	int hit = armed && ++n_allocs == fail_at;
	if (hit)
		fail_site = caller;
	pthread_mutex_unlock(&alloc_lock);
	return hit;
}

static const char *site_name(char *buf, size_t size)
{
	Dl_info di;
	if (fail_site && dladdr(fail_site, &di) && di.dli_fname)
		snprintf(buf, size, "%s+%#lx", strrchr(di.dli_fname, '/') ?
			 strrchr(di.dli_fname, '/') + 1 : di.dli_fname,
			 (unsigned long)((const char *)fail_site -
					 (const char *)di.dli_fbase));
	else
		snprintf(buf, size, "?");
	return buf;
}

void *__wrap_malloc(size_t n)
{
	if (INJECT())
		return NULL;
	void *p = __real_malloc(n);
	track_add(p);
	return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
	if (INJECT())
		return NULL;
	void *p = __real_calloc(n, size);
	track_add(p);
	return p;
}

void *__wrap_realloc(void *p, size_t n)
{
	if (INJECT())
		return NULL;
	void *q = __real_realloc(p, n);
	if (q || n == 0) {
		track_del(p);
		track_add(q);
	}
	return q;
}

void __wrap_free(void *p)
{
	track_del(p);
	__real_free(p);
}

char *__wrap_strdup(const char *s)
{
	if (INJECT())
		return NULL;
	char *p = __real_strdup(s);
	track_add(p);
	return p;
}

char *__wrap_strndup(const char *s, size_t n)
{
	if (INJECT())
		return NULL;
	char *p = __real_strndup(s, n);
	track_add(p);
	return p;
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
	if (INJECT())
		return NULL;
	void *p = __real_aligned_alloc(align, n);
	track_add(p);
	return p;
}

/* ------------------------------------------------------------ the test */

struct target {
	const char *name;
	const char *model;
	const char *weights; /* NULL: none */
	int large;           /* CNNVIZ_QUICK samples N */
};

/* What one attempt produced. */
struct outcome {
	int rc;
	int model_null_on_error;
	char version[32];
	int layers;
	float *out;          /* all outputs, concatenated (real malloc) */
	size_t count;
};

static float input_value(size_t i)
{
	uint32_t x = (uint32_t)i * 2654435761u + 12345u;
	x ^= x >> 13;
	x *= 0x5bd1e995u;
	x ^= x >> 15;
	return (float)(x & 0xffff) / 32768.0f - 1.0f;
}

/*
 * Options, open, session, run. Inputs are allocated by the caller before
 * arming; the outputs are copied out with the real allocator after.
 */
static void attempt(const struct target *t, float *const *inputs,
		    struct outcome *o)
{
	cnnviz_options *opts = NULL;
	cnnviz_model *m = (cnnviz_model *)&opts; /* must become NULL */
	cnnviz_session *s = NULL;
	struct cnnviz_error e;
	memset(o, 0, sizeof *o);
	int rc = cnnviz_options_new(&opts);
	if (!rc && t->weights)
		rc = cnnviz_options_set(opts, "weights", t->weights, &e);
	if (!rc) {
		rc = cnnviz_model_open(t->model, opts, &m, &e);
		o->model_null_on_error = rc == CNNVIZ_OK || m == NULL;
	} else {
		m = NULL;
		o->model_null_on_error = 1;
	}
	if (!rc)
		rc = cnnviz_session_new(m, 1, NULL, &s, &e);
	if (!rc)
		rc = cnnviz_session_run(s, (const float *const *)inputs, 1, NULL,
					NULL, &e);
	armed = 0;
	o->rc = rc;
	if (!rc) {
		snprintf(o->version, sizeof o->version, "%s",
			 cnnviz_model_keras_version(m));
		o->layers = cnnviz_model_layer_count(m);
		int n_out = cnnviz_model_output_count(m);
		struct cnnviz_tensor tt;
		for (int i = 0; i < n_out; i++) {
			cnnviz_session_output(s, i, &tt);
			o->count += tt.count;
		}
		o->out = __real_malloc(o->count * sizeof(float) + 1);
		size_t at = 0;
		for (int i = 0; o->out && i < n_out; i++) {
			cnnviz_session_output(s, i, &tt);
			memcpy(o->out + at, tt.data, tt.count * sizeof(float));
			at += tt.count;
		}
	}
	cnnviz_session_free(s);
	cnnviz_model_free(rc == CNNVIZ_OK || o->model_null_on_error ? m : NULL);
	cnnviz_options_free(opts);
}

static int exists(const char *p)
{
	return access(p, R_OK) == 0;
}

static float **make_inputs(const struct target *t, int *n_in)
{
	cnnviz_options *opts = NULL;
	cnnviz_model *m = NULL;
	cnnviz_options_new(&opts);
	if (t->weights)
		cnnviz_options_set(opts, "weights", t->weights, NULL);
	struct cnnviz_error e;
	char buf[1200];
	if (cnnviz_model_open(t->model, opts, &m, &e)) {
		cnnviz_options_free(opts);
		fail_msg("%s: %s", t->name, cnnviz_error_format(&e, buf, sizeof buf));
	}
	*n_in = cnnviz_model_input_count(m);
	float **in = calloc((size_t)*n_in, sizeof *in);
	for (int i = 0; i < *n_in; i++) {
		struct cnnviz_layer_info li;
		cnnviz_model_layer(m, cnnviz_model_input_layer(m, i), &li);
		size_t count = 1;
		for (int k = 1; k < li.rank; k++)
			count *= (size_t)li.shape[k];
		in[i] = malloc(count * sizeof(float));
		for (size_t k = 0; k < count; k++)
			in[i][k] = input_value(k + (size_t)i * 7919);
	}
	cnnviz_model_free(m);
	cnnviz_options_free(opts);
	return in;
}

static void start_tracking(void)
{
	memset(live, 0, sizeof live);
	set_used = 0;
	set_full = 0;
	n_live = 0;
	tracking = 1;
}

static void run_target(void **state)
{
	const struct target *t = *state;
	if (!exists(t->model) || (t->weights && !exists(t->weights))) {
		printf("  %s: %s is absent, skipped\n", t->name, t->model);
		skip();
	}
	int n_in = 0;
	float **inputs = make_inputs(t, &n_in);

	/* The reference attempt: nothing fails; count the allocations. */
	struct outcome ref;
	start_tracking();
	armed = 1;
	n_allocs = 0;
	fail_at = 0;
	attempt(t, inputs, &ref);
	tracking = 0;
	long total = n_allocs;
	assert_int_equal(ref.rc, CNNVIZ_OK);
	assert_int_equal(n_live, 0);
	assert_false(set_full);

	long stride = 1;
	const char *q = getenv("CNNVIZ_QUICK"), *st = getenv("CNNVIZ_OOM_STRIDE");
	if (st && atol(st) > 0)
		stride = atol(st);
	else if (q && atoi(q) && t->large)
		stride = total / 150 + 1;

	long tried = 0, tolerated = 0, bad = 0;
	for (long n = 1; n <= total; n += stride) {
		struct outcome o;
		start_tracking();
		armed = 1;
		n_allocs = 0;
		fail_site = NULL;
		fail_at = n;
		attempt(t, inputs, &o);
		tracking = 0;
		tried++;
		int injected = n_allocs >= n;
		const char *why = NULL;
		if (!o.model_null_on_error)
			why = "*out is not NULL after a failure";
		else if (n_live != 0)
			why = "leaked memory";
		else if (set_full)
			why = "too many live blocks to track";
		else if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0)
			why = "left an HDF5 object open";
		else if (o.rc != CNNVIZ_OK && o.rc != CNNVIZ_ERR_NOMEM)
			why = "a failed allocation was reported as something else";
		else if (o.rc == CNNVIZ_OK && injected &&
			 (o.count != ref.count || o.layers != ref.layers ||
			  strcmp(o.version, ref.version) != 0 ||
			  memcmp(o.out, ref.out, ref.count * sizeof(float)) != 0))
			why = "a failed allocation was ignored and changed the result";
		char site[256];
		if (o.rc == CNNVIZ_OK && injected) {
			tolerated++;
			if (getenv("CNNVIZ_OOM_VERBOSE"))
				printf("  %s: allocation %ld (at %s) failed, the run succeeded\n",
				       t->name, n, site_name(site, sizeof site));
		}
		if (why) {
			bad++;
			printf("  %s: allocation %ld of %ld (at %s): %s (status %s, %ld blocks live)\n",
			       t->name, n, total, site_name(site, sizeof site), why,
			       cnnviz_status_name(o.rc), n_live);
		}
		__real_free(o.out);
	}
	printf("  %-34s %ld allocations, %ld failure points tried (stride %ld), "
	       "%ld survived with identical results, %ld bad\n",
	       t->name, total, tried, stride, tolerated, bad);
	__real_free(ref.out);
	for (int i = 0; i < n_in; i++)
		free(inputs[i]);
	free(inputs);
	assert_int_equal(bad, 0);
}

#define FIX "tests/fixtures/cases/"
#define SHARED "../shared/models/"

static const struct target targets[] = {
	{"fixture merge_dag (.h5)", FIX "merge_dag/model.h5", NULL, 0},
	{"fixture nested_func_in_seq", FIX "nested_func_in_seq/model.h5", NULL, 0},
	{"fixture fmt_k3_zip_seq (.keras)", FIX "fmt_k3_zip_seq/model.keras", NULL, 0},
	{"fixture fmt_json_pair_k24 (JSON)", FIX "fmt_json_pair_k24/model.json",
	 FIX "fmt_json_pair_k24/model.weights.h5", 0},
	{"fixture k1_th_theano_flip (JSON)", FIX "k1_th_theano_flip/model.json",
	 FIX "k1_th_theano_flip/model.weights.h5", 0},
	{"fer_sepconv_functional_k3.13", SHARED "fer_sepconv_functional_k3.13.hdf5",
	 NULL, 1},
	{"mobilenetv2_a035_teachable_k2.4", SHARED "mobilenetv2_a035_teachable_k2.4.h5",
	 NULL, 1},
};

int main(void)
{
	struct CMUnitTest tests[sizeof targets / sizeof targets[0]];
	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
		memset(&tests[i], 0, sizeof tests[i]);
		tests[i].name = targets[i].name;
		tests[i].test_func = run_target;
		tests[i].initial_state = (void *)&targets[i];
	}
	return _cmocka_run_group_tests("oom", tests,
				       sizeof targets / sizeof targets[0], NULL,
				       NULL);
}
