/* Status codes, error records, size arithmetic and shapes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const struct {
	int code;
	const char *name;
	const char *text;
} status_table[] = {
#define STATUS_ROW(name, value, text) {value, #name, text},
	CNNVIZ_STATUS_LIST(STATUS_ROW)
#undef STATUS_ROW
};

#define STATUS_COUNT (sizeof status_table / sizeof status_table[0])

const char *cnnviz_strerror(int code)
{
	for (size_t i = 0; i < STATUS_COUNT; i++)
		if (status_table[i].code == code)
			return status_table[i].text;
	return "unknown status code";
}

const char *cnnviz_status_name(int code)
{
	for (size_t i = 0; i < STATUS_COUNT; i++)
		if (status_table[i].code == code)
			return status_table[i].name;
	return "UNKNOWN";
}

void cnnviz__error_clear(struct cnnviz_error *err)
{
	if (!err)
		return;
	err->code = CNNVIZ_OK;
	err->file[0] = err->where[0] = err->message[0] = '\0';
}

void cnnviz__error_file(struct cnnviz_error *err, const char *file)
{
	if (err && file && !err->file[0])
		snprintf(err->file, sizeof err->file, "%s", file);
}

int cnnviz__fail(struct cnnviz_error *err, int code, const char *where,
		 const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	if (where)
		snprintf(err->where, sizeof err->where, "%s", where);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return code;
}

char *cnnviz_error_format(const struct cnnviz_error *err, char *buf,
			  size_t size)
{
	if (!buf || size == 0)
		return buf;
	buf[0] = '\0';
	if (!err)
		return buf;
	const char *msg = err->message[0] ? err->message
					  : cnnviz_strerror(err->code);
	snprintf(buf, size, "%s%s%s%s%s", err->file, err->file[0] ? ": " : "",
		 err->where, err->where[0] ? ": " : "", msg);
	return buf;
}

int cnnviz__mul_size(size_t a, size_t b, size_t *out)
{
	if (a != 0 && b > SIZE_MAX / a)
		return -1;
	*out = a * b;
	return 0;
}

int cnnviz__add_size(size_t a, size_t b, size_t *out)
{
	if (b > SIZE_MAX - a)
		return -1;
	*out = a + b;
	return 0;
}

size_t cnnviz__shape_count(const struct cnnviz__shape *s)
{
	size_t n = 1;
	for (int i = 0; i < s->rank; i++)
		n *= (size_t)s->d[i];
	return n;
}

int cnnviz__shape_equal(const struct cnnviz__shape *a,
			const struct cnnviz__shape *b)
{
	if (a->rank != b->rank)
		return 0;
	for (int i = 0; i < a->rank; i++)
		if (a->d[i] != b->d[i])
			return 0;
	return 1;
}

const char *cnnviz__shape_str(const struct cnnviz__shape *s, char *buf,
			      size_t size)
{
	size_t n = 0;
	n += (size_t)snprintf(buf, size, "(");
	for (int i = 0; i < s->rank && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64,
				      i ? ", " : "", s->d[i]);
	if (n < size)
		snprintf(buf + n, size - n, s->rank == 1 ? ",)" : ")");
	return buf;
}

void cnnviz_free(void *ptr)
{
	free(ptr);
}
