/* Error lines, names, atomic files and folders, SHA-256. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int cli_report(const struct cnnviz_error *e)
{
	char buf[1200];
	fprintf(stderr, "cnnviz-dump: %s\n", cnnviz_error_format(e, buf, sizeof buf));
	return 1;
}

int cli_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("cnnviz-dump: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

int cli_options_copy(const cnnviz_options *src, cnnviz_options **out)
{
	const char *k;
	if (cnnviz_options_new(out))
		return -1;
	for (int i = 0; (k = cnnviz_options_key(src, i)); i++)
		if (cnnviz_options_set(*out, k, cnnviz_options_get(src, k), NULL)) {
			cnnviz_options_free(*out);
			*out = NULL;
			return -1;
		}
	return 0;
}

int cli_open_model(const struct args *a, cnnviz_model **m)
{
	struct cnnviz_error e = {0};
	cnnviz_options *o = NULL;
	int rc = cnnviz_options_new(&o);
	if (rc)
		return cli_fail("out of memory");
	if (a->weights)
		rc = cnnviz_options_set(o, "weights", a->weights, &e);
	if (!rc)
		rc = cnnviz_model_open(a->model, o, m, &e);
	cnnviz_options_free(o);
	if (rc)
		return cli_report(&e);
	/* once per run (--bench opens the model five times) */
	static int warned;
	const char *w;
	for (int i = 0; !a->quiet && !warned && (w = cnnviz_model_warning(*m, i));
	     i++)
		fprintf(stderr, "cnnviz-dump: warning: %s: %s\n", a->model, w);
	warned = 1;
	return 0;
}

void cli_shape_text(const int64_t *shape, int rank, int batch_none, char *buf,
		    size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "(");
	for (int i = 0; i < rank && n < size; i++) {
		if (i == 0 && batch_none)
			n += (size_t)snprintf(buf + n, size - n, "None");
		else
			n += (size_t)snprintf(buf + n, size - n, "%s%lld",
					      i ? ", " : "", (long long)shape[i]);
	}
	if (n < size)
		snprintf(buf + n, size - n, rank == 1 ? ",)" : ")");
}

void cli_file_name(const char *layer, const char *ext, char *buf, size_t size)
{
	size_t o = 0, elen = strlen(ext);
	for (const char *p = layer; *p && o + 6 + elen < size; p++) {
		if (*p == '/') {
			buf[o++] = '_';
			buf[o++] = '_';
		} else if (*p == '#') {
			memcpy(buf + o, "_call", 5);
			o += 5;
		} else {
			buf[o++] = *p;
		}
	}
	snprintf(buf + o, size - o, "%s", ext);
}

int cli_mkdir_p(const char *dir)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
		return -1;
	struct stat st;
	return stat(tmp, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

int cli_stage_dir(const char *parent, char *stage, size_t size)
{
	snprintf(stage, size, "%s/.cnnviz-tmp-XXXXXX", parent);
	if (!mkdtemp(stage)) {
		stage[0] = '\0';
		return -1;
	}
	return 0;
}

void cli_remove_tree(const char *dir)
{
	DIR *dp = opendir(dir);
	if (dp) {
		struct dirent *e;
		char path[4200];
		while ((e = readdir(dp))) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			struct stat st;
			if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
				cli_remove_tree(path);
			else
				unlink(path);
		}
		closedir(dp);
	}
	rmdir(dir);
}

/* Moves each file of stage into dir (which exists), then drops stage. */
int cli_publish_files(const char *stage, const char *dir)
{
	DIR *dp = opendir(stage);
	if (!dp)
		return -1;
	struct dirent *e;
	char from[4200], to[4200];
	int rc = 0;
	while ((e = readdir(dp))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(from, sizeof from, "%s/%s", stage, e->d_name);
		snprintf(to, sizeof to, "%s/%s", dir, e->d_name);
		if (rename(from, to) != 0)
			rc = -1;
	}
	closedir(dp);
	rmdir(stage);
	return rc;
}

/*
 * Replaces dir by stage in one rename; an existing dir is moved aside
 * first and removed only once the new one is in place.
 */
int cli_publish_dir(const char *stage, const char *dir)
{
	char old[4200];
	struct stat st;
	int had = stat(dir, &st) == 0;
	if (had) {
		snprintf(old, sizeof old, "%s.old-%ld", dir, (long)getpid());
		if (rename(dir, old) != 0)
			return -1;
	}
	if (rename(stage, dir) != 0) {
		if (had)
			rename(old, dir);
		return -1;
	}
	if (had)
		cli_remove_tree(old);
	return 0;
}

int cli_write_text(const char *path, const char *text, size_t len)
{
	/* the caller names what failed */
	return cnnviz_file_write(path, text, len, NULL) ? -1 : 0;
}

int cli_write_json(json_t *doc, const char *path)
{
	char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	if (!text)
		return -1;
	size_t n = strlen(text);
	text[n] = '\n'; /* replaces the terminator; length passed explicitly */
	int rc = cli_write_text(path, text, n + 1);
	free(text);
	return rc;
}

/* ------------------------------------------------------------ SHA-256
 * FIPS 180-4. The constants are the fractional parts of the square and
 * cube roots of the first primes; they are computed, not typed in.
 */
static uint32_t K[64], H0[8];

static void sha_init_constants(void)
{
	int found = 0;
	for (int n = 2; found < 64; n++) {
		int prime = 1;
		for (int d = 2; d * d <= n; d++)
			if (n % d == 0)
				prime = 0;
		if (!prime)
			continue;
		long double c = cbrtl((long double)n);
		K[found] = (uint32_t)((c - floorl(c)) * 4294967296.0L);
		if (found < 8) {
			long double s = sqrtl((long double)n);
			H0[found] = (uint32_t)((s - floorl(s)) * 4294967296.0L);
		}
		found++;
	}
}

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const unsigned char *p)
{
	uint32_t w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5],
		 g = h[6], k = h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) +
			      ((e & f) ^ (~e & g)) + K[i] + w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) +
			      ((a & b) ^ (a & c) ^ (b & c));
		k = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
	h[5] += f;
	h[6] += g;
	h[7] += k;
}

void cli_sha256_file(const char *path, char hex[65])
{
	hex[0] = '\0';
	if (!K[0])
		sha_init_constants();
	FILE *f = fopen(path, "rb");
	if (!f)
		return;
	uint32_t h[8];
	memcpy(h, H0, sizeof h);
	unsigned char buf[65536 + 128];
	uint64_t total = 0;
	size_t n;
	int done = 0;
	while (!done) {
		n = fread(buf, 1, 65536, f);
		total += n;
		if (n < 65536) {
			if (ferror(f)) {
				fclose(f);
				return;
			}
			/* Padding: 0x80, zeros, the bit length (big-endian). */
			buf[n++] = 0x80;
			while (n % 64 != 56)
				buf[n++] = 0;
			for (int i = 7; i >= 0; i--)
				buf[n++] = (unsigned char)((total * 8) >> (8 * i));
			done = 1;
		}
		for (size_t off = 0; off < n; off += 64)
			sha_block(h, buf + off);
	}
	fclose(f);
	for (int i = 0; i < 8; i++)
		snprintf(hex + 8 * i, 9, "%08x", h[i]);
}
