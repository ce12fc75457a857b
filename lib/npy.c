/*
 * NumPy .npy files (format versions 1-3), C order. Read: float16/32/64 and
 * integer types, converted to float32. Write: float32, atomically.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NPY_MAX_HEADER 65536
#define NPY_MAX_ELEMENTS ((int64_t)1 << 32)

static float half_to_float(uint16_t h)
{
	int e = (h >> 10) & 0x1f, f = h & 0x3ff;
	float v = e == 0 ? ldexpf((float)f, -24)
		 : e == 31 ? (f ? NAN : INFINITY)
			   : ldexpf((float)(f | 0x400), e - 25);
	return (h & 0x8000) ? -v : v;
}

/* Value of 'key': in the header dict, or NULL. */
static const char *dict_value(const char *h, const char *key)
{
	char pat[32];
	snprintf(pat, sizeof pat, "'%s'", key);
	const char *p = strstr(h, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	return p;
}

static int parse_header(const char *h, char *descr, size_t dsize, int *rank,
			int64_t shape[CNNVIZ_MAX_RANK])
{
	const char *d = dict_value(h, "descr");
	const char *f = dict_value(h, "fortran_order");
	const char *s = dict_value(h, "shape");
	if (!d || !f || !s || *d != '\'' || *s != '(')
		return -1;
	const char *e = strchr(d + 1, '\'');
	if (!e || (size_t)(e - d - 1) >= dsize)
		return -1;
	memcpy(descr, d + 1, (size_t)(e - d - 1));
	descr[e - d - 1] = '\0';
	if (strncmp(f, "False", 5) != 0)
		return -2;
	*rank = 0;
	const char *p = s + 1;
	for (;;) {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == ')')
			break;
		if (*rank >= CNNVIZ_MAX_RANK || *p < '0' || *p > '9')
			return -1;
		char *end;
		errno = 0;
		long long v = strtoll(p, &end, 10);
		if (errno || v < 0 || v > NPY_MAX_ELEMENTS)
			return -1;
		shape[(*rank)++] = v;
		p = end;
	}
	return 0;
}

int cnnviz_npy_read(const char *path, float **data, int *rank,
		    int64_t shape[CNNVIZ_MAX_RANK], struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!path || !data || !rank || !shape)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "NULL argument");
	*data = NULL;
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		cnnviz__error_file(err, path);
		return cnnviz__fail(err, CNNVIZ_ERR_IO, NULL, "cannot open: %s",
				    strerror(errno));
	}
	unsigned char pre[12];
	char *hdr = NULL;
	void *raw = NULL;
	float *out = NULL;
	int rc = CNNVIZ_ERR_FORMAT;
	const char *why = "not a .npy file";
	if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
		goto fail;
	size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
	if (pre[6] >= 2) {
		if (fread(pre + 10, 1, 2, fp) != 2)
			goto fail;
		hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
	}
	why = "header too large or truncated";
	if (hlen > NPY_MAX_HEADER || !(hdr = calloc(1, hlen + 1)) ||
	    fread(hdr, 1, hlen, fp) != hlen)
		goto fail;
	char descr[16];
	int pr = parse_header(hdr, descr, sizeof descr, rank, shape);
	why = pr == -2 ? "Fortran-order arrays are not supported"
		       : "malformed header";
	if (pr)
		goto fail;
	size_t count = 1;
	for (int i = 0; i < *rank; i++)
		if (cnnviz__mul_size(count, (size_t)shape[i], &count) ||
		    count > (size_t)NPY_MAX_ELEMENTS) {
			why = "array too large";
			rc = CNNVIZ_ERR_LIMIT;
			goto fail;
		}
	static const struct {
		const char *descr;
		size_t size;
	} types[] = {{"<f4", 4}, {"<f8", 8}, {"<f2", 2}, {"|u1", 1}, {"|i1", 1},
		     {"<i4", 4}, {"<i8", 8}, {"<u2", 2}, {"<i2", 2}};
	size_t esize = 0;
	int t = -1;
	for (int i = 0; i < (int)(sizeof types / sizeof types[0]); i++)
		if (strcmp(descr, types[i].descr) == 0) {
			esize = types[i].size;
			t = i;
		}
	why = "unsupported dtype (need little-endian float or integer)";
	rc = CNNVIZ_ERR_FORMAT;
	if (t < 0)
		goto fail;
	raw = malloc(count * esize + 1);
	out = malloc(count * sizeof *out + 1);
	if (!raw || !out) {
		why = "out of memory";
		rc = CNNVIZ_ERR_NOMEM;
		goto fail;
	}
	why = "data is truncated";
	if (fread(raw, esize, count, fp) != count)
		goto fail;
	const unsigned char *r = raw;
	for (size_t i = 0; i < count; i++, r += esize) {
		switch (t) {
		case 0: { float v; memcpy(&v, r, 4); out[i] = v; break; }
		case 1: { double v; memcpy(&v, r, 8); out[i] = (float)v; break; }
		case 2: { uint16_t v; memcpy(&v, r, 2); out[i] = half_to_float(v); break; }
		case 3: out[i] = (float)r[0]; break;
		case 4: out[i] = (float)(int8_t)r[0]; break;
		case 5: { int32_t v; memcpy(&v, r, 4); out[i] = (float)v; break; }
		case 6: { int64_t v; memcpy(&v, r, 8); out[i] = (float)v; break; }
		case 7: { uint16_t v; memcpy(&v, r, 2); out[i] = (float)v; break; }
		default: { int16_t v; memcpy(&v, r, 2); out[i] = (float)v; break; }
		}
	}
	free(raw);
	free(hdr);
	fclose(fp);
	*data = out;
	return CNNVIZ_OK;
fail:
	free(raw);
	free(out);
	free(hdr);
	fclose(fp);
	cnnviz__error_file(err, path);
	return cnnviz__fail(err, rc, NULL, "%s", why);
}

int cnnviz_npy_write(const char *path, const float *data, int rank,
		     const int64_t *shape, struct cnnviz_error *err)
{
	cnnviz__error_clear(err);
	if (!path || (!data && rank) || rank < 0 || rank > CNNVIZ_MAX_RANK)
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "bad argument");
	char hdr[512];
	int n = snprintf(hdr, sizeof hdr,
			 "{'descr': '<f4', 'fortran_order': False, 'shape': (");
	size_t count = 1;
	for (int i = 0; i < rank; i++) {
		if (shape[i] < 0 || cnnviz__mul_size(count, (size_t)shape[i], &count))
			return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL, "bad shape");
		n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld%s",
			      (long long)shape[i], rank == 1 ? "," : (i + 1 < rank ? ", " : ""));
	}
	n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
	/* Pad so that the data starts at a multiple of 64 bytes. */
	size_t total = 10 + (size_t)n + 1;
	size_t pad = (64 - total % 64) % 64;
	memset(hdr + n, ' ', pad);
	hdr[(size_t)n + pad] = '\n';
	size_t hlen = (size_t)n + pad + 1;
	unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
				 (unsigned char)(hlen & 0xff),
				 (unsigned char)(hlen >> 8)};
	struct cnnviz__outfile o;
	int rc = cnnviz__outfile_open(&o, path, err);
	if (rc)
		return rc;
	return cnnviz__outfile_commit(
		&o,
		fwrite(pre, 1, 10, o.f) == 10 && fwrite(hdr, 1, hlen, o.f) == hlen &&
			(!count || fwrite(data, sizeof *data, count, o.f) == count),
		err);
}
