/*
 * --bench N: speed, one JSON object per line so other tools can compare.
 * The machine's peak is measured here with independent FMA chains, the way
 * ../shared/anchors/peak.c measures it, so "% of peak" needs no outside
 * figure. --profile adds one line per layer: the time of its step in the
 * runs --bench times (fused: a layer folded into another's step shows 0 ms
 * and names that step), from the library's own step clock.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "cli.h"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double quantile(double *v, int n, double q)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	int i = (int)floor(q * (n - 1) + 0.5);
	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* ------------------------------------------------------------ peak */

/* 16 independent chains, each in its own register: an array would spill. */
#define CHAINS 16
#define R16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
	X(12) X(13) X(14) X(15)

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float fma_avx512(long iters)
{
#define DECL(i) __m512 a##i = _mm512_set1_ps(1.0f + (float)(i) * 1e-3f);
	R16(DECL)
#undef DECL
	const __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
	for (long n = 0; n < iters; n++) {
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, b, c);
		R16(STEP)
#undef STEP
	}
	__m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, a##i);
	R16(SUM)
#undef SUM
	return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters)
{
#define DECL(i) __m256 a##i = _mm256_set1_ps(1.0f + (float)(i) * 1e-3f);
	R16(DECL)
#undef DECL
	const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
	for (long n = 0; n < iters; n++) {
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, b, c);
		R16(STEP)
#undef STEP
	}
	__m256 s = _mm256_setzero_ps();
#define SUM(i) s = _mm256_add_ps(s, a##i);
	R16(SUM)
#undef SUM
	float out[8], t = 0;
	_mm256_storeu_ps(out, s);
	for (int i = 0; i < 8; i++)
		t += out[i];
	return t;
}
#endif

/* Practical FP32 peak of one core in GFLOP/s, and the instruction set. */
static double peak_gflops(const char **isa)
{
	float (*fn)(long) = NULL;
	int lanes = 1;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) {
		fn = fma_avx512;
		lanes = 16;
		*isa = "avx512";
	} else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
		fn = fma_avx2;
		lanes = 8;
		*isa = "avx2";
	}
#endif
	if (!fn) {
		*isa = "unknown";
		return 0;
	}
	double best = 0;
	volatile float sink = 0;
	for (int trial = 0; trial < 5; trial++) {
		long iters = 2000000;
		double t0 = now_s();
		sink += fn(iters);
		double dt = now_s() - t0;
		double g = (double)iters * CHAINS * lanes * 2 / dt / 1e9;
		if (g > best)
			best = g;
	}
	(void)sink;
	return best;
}

/* Prints o as one compact JSON line and releases it. */
static void print_line(json_t *o)
{
	char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)
		       : NULL;
	if (line)
		printf("%s\n", line);
	free(line);
	json_decref(o);
}

/* ---------------------------------------------------------- profile */

/*
 * Mean step time per layer over `runs` hook-less batch-1 runs of a session
 * with option "profile", one JSON line per layer. A step's GFLOP/s count
 * every layer computed in it.
 */
static int profile(const struct args *a, cnnviz_model *m, const float *in0,
		   int runs)
{
	cnnviz_options *o = NULL;
	cnnviz_session *s = NULL;
	struct cnnviz_error e;
	const int n = cnnviz_model_layer_count(m);
	double *ms = calloc((size_t)n, sizeof *ms);
	double *step_flops = calloc((size_t)n, sizeof *step_flops);
	int *step = malloc((size_t)n * sizeof *step);
	int rc = 1;

	if (!ms || !step_flops || !step || cli_options_copy(a->opts, &o)) {
		cli_fail("out of memory");
		goto out;
	}
	if (cnnviz_options_set(o, "profile", "1", &e) ||
	    cnnviz_session_new(m, 1, o, &s, &e)) {
		cli_report(&e);
		goto out;
	}
	for (int r = 0; r < runs + 10; r++) {
		if (cnnviz_session_run(s, &in0, 1, NULL, NULL, &e)) {
			cli_report(&e);
			goto out;
		}
		for (int i = 0; r >= 10 && i < n; i++) {
			double t;
			cnnviz_session_step_time(s, i, &t, &step[i]);
			ms[i] += t / runs;
		}
	}
	for (int i = 0; i < n; i++) {
		struct cnnviz_layer_info li;
		cnnviz_model_layer(m, i, &li);
		if (step[i] >= 0)
			step_flops[step[i]] += (double)li.flops;
	}
	for (int i = 0; i < n; i++) {
		struct cnnviz_layer_info li, si;
		cnnviz_model_layer(m, i, &li);
		if (step[i] >= 0)
			cnnviz_model_layer(m, step[i], &si);
		print_line(json_pack("{s:s,s:i,s:s,s:s,s:f,s:f,s:f,s:s?}", "profile",
				      a->model, "index", i, "layer", li.name,
				      "class", li.class_name, "ms", ms[i],
				      "mflop", (double)li.flops / 1e6, "gflops",
				      ms[i] > 0 ? step_flops[i] / (ms[i] * 1e6) : 0.0,
				      "step", step[i] >= 0 ? si.name : NULL));
	}
	rc = 0;
out:
	cnnviz_session_free(s);
	cnnviz_options_free(o);
	free(ms);
	free(step_flops);
	free(step);
	return rc;
}

static double rss_mb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_maxrss / 1024.0;
}

int cli_bench(const struct args *a)
{
	const char *isa;
	double peak = peak_gflops(&isa);
	double rss_start = rss_mb();
	/* Load: median of 5 (file in the page cache after the first). */
	double loads[5];
	cnnviz_model *m = NULL;
	for (int i = 0; i < 5; i++) {
		cnnviz_model_free(m);
		m = NULL;
		double t0 = now_s();
		if (cli_open_model(a, &m))
			return 1;
		loads[i] = (now_s() - t0) * 1e3;
	}
	double load_ms = quantile(loads, 5, 0.5);
	int rc = 1;
	cnnviz_session *s = NULL;
	float *x = NULL;
	double *lat = NULL;
	struct cnnviz_error e;
	if (cnnviz_model_input_count(m) != 1) {
		cli_fail("--bench: models with one input only");
		goto out;
	}
	struct cnnviz_layer_info in;
	cnnviz_model_layer(m, cnnviz_model_input_layer(m, 0), &in);
	size_t per = 1;
	for (int i = 1; i < in.rank; i++)
		per *= (size_t)in.shape[i];
	int64_t flops = 0;
	for (int i = 0; i < cnnviz_model_layer_count(m); i++) {
		struct cnnviz_layer_info li;
		cnnviz_model_layer(m, i, &li);
		flops += li.flops;
	}
	int threads = a->threads ? atoi(a->threads) : 0;
	if (threads <= 0)
		threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	int batch = a->batch;
	x = malloc(per * (size_t)batch * sizeof *x);
	lat = malloc((size_t)a->bench * sizeof *lat);
	if (!x || !lat) {
		cli_fail("out of memory");
		goto out;
	}
	/* Deterministic input in [0, 1). */
	uint32_t seed = 12345;
	for (size_t i = 0; i < per * (size_t)batch; i++) {
		seed = seed * 1664525u + 1013904223u;
		x[i] = (float)(seed >> 8) / 16777216.0f;
	}
	const float *in0 = x;
	/* Batch 1 latency. */
	if (cnnviz_session_new(m, 1, a->opts, &s, &e)) {
		cli_report(&e);
		goto out;
	}
	for (int i = 0; i < 10; i++)
		cnnviz_session_run(s, &in0, 1, NULL, NULL, &e);
	for (int i = 0; i < a->bench; i++) {
		double t0 = now_s();
		if (cnnviz_session_run(s, &in0, 1, NULL, NULL, &e)) {
			cli_report(&e);
			goto out;
		}
		lat[i] = (now_s() - t0) * 1e3;
	}
	double med = quantile(lat, a->bench, 0.5);
	double p10 = quantile(lat, a->bench, 0.1), p90 = quantile(lat, a->bench, 0.9);
	double rss_b1 = rss_mb();
	if (a->profile && profile(a, m, in0, a->bench))
		goto out;
	cnnviz_session_free(s);
	s = NULL;
	/* Batch throughput. */
	if (cnnviz_session_new(m, batch, a->opts, &s, &e)) {
		cli_report(&e);
		goto out;
	}
	int rounds = a->bench / 10 < 3 ? 3 : a->bench / 10;
	double *tp = malloc((size_t)rounds * sizeof *tp);
	if (!tp)
		goto out;
	cnnviz_session_run(s, &in0, batch, NULL, NULL, &e);
	for (int i = 0; i < rounds; i++) {
		double t0 = now_s();
		cnnviz_session_run(s, &in0, batch, NULL, NULL, &e);
		tp[i] = now_s() - t0;
	}
	double tmed = quantile(tp, rounds, 0.5);
	free(tp);
	double gf = (double)flops / (med * 1e6);
	json_t *o = json_pack(
		"{s:s,s:i,s:s,s:f,s:f,s:{s:f,s:f,s:f},s:i,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}",
		"model", a->model, "threads", threads, "isa", isa, "load_ms", load_ms,
		"mflop_per_image", (double)flops / 1e6, "latency_ms", "median", med, "p10",
		p10, "p90", p90, "batch", batch, "images_per_s", batch / tmed,
		"gflops_b1", gf, "gflops_batch", (double)flops * batch / tmed / 1e9,
		"peak_gflops", peak * threads, "percent_of_peak_b1",
		peak > 0 ? 100 * gf / (peak * threads) : 0.0, "rss_start_mb", rss_start,
		"peak_rss_b1_mb", rss_b1, "peak_rss_mb", rss_mb());
	print_line(o);
	rc = 0;
out:
	free(lat);
	free(x);
	cnnviz_session_free(s);
	cnnviz_model_free(m);
	return rc;
}
