/*
 * Every libhdf5 call lives here.
 *
 * libhdf5's own error printing is silenced around each call (H5E_BEGIN_TRY),
 * never globally, and all calls are serialised by one mutex: Debian's
 * serial libhdf5 is not built thread-safe, and models may be opened from
 * several threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "h5.h"

struct cnnviz__h5 {
	hid_t file;
};

static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;

#define LOCKED_BEGIN                                                           \
	pthread_mutex_lock(&h5_lock);                                          \
	H5E_BEGIN_TRY
#define LOCKED_END                                                             \
	H5E_END_TRY;                                                           \
	pthread_mutex_unlock(&h5_lock)

static int open_with(const char *name, hid_t fapl, struct cnnviz__h5 **out,
		     struct cnnviz_error *err)
{
	struct cnnviz__h5 *h = calloc(1, sizeof *h);
	if (!h)
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL, "out of memory");
	h->file = H5Fopen(name, H5F_ACC_RDONLY, fapl);
	if (h->file < 0) {
		free(h);
		return cnnviz__fail(err, CNNVIZ_ERR_FORMAT, NULL,
				    "not a readable HDF5 file (corrupt or truncated)");
	}
	*out = h;
	return CNNVIZ_OK;
}

int cnnviz__h5_is_hdf5(const void *head, size_t len)
{
	static const unsigned char magic[8] = {0x89, 'H', 'D', 'F',
					       '\r', '\n', 0x1a, '\n'};
	return len >= 8 && memcmp(head, magic, 8) == 0;
}

int cnnviz__h5_open(const char *path, struct cnnviz__h5 **out,
		    struct cnnviz_error *err)
{
	int rc;
	/* libhdf5 says "unable to open" alike for a missing and a bad file. */
	FILE *f = fopen(path, "rb");
	if (!f)
		return cnnviz__fail(err, CNNVIZ_ERR_IO, NULL, "cannot open: %s",
				    strerror(errno));
	fclose(f);
	LOCKED_BEGIN
	{
		rc = open_with(path, H5P_DEFAULT, out, err);
	}
	LOCKED_END;
	return rc;
}

int cnnviz__h5_open_image(const void *buf, size_t len, const char *name,
			  struct cnnviz__h5 **out, struct cnnviz_error *err)
{
	int rc = CNNVIZ_ERR_NOMEM;
	LOCKED_BEGIN
	{
		/* The core driver reads from a private copy of the image. */
		hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
		if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 16, 0) < 0 ||
		    H5Pset_file_image(fapl, (void *)buf, len) < 0)
			rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
					  "cannot set up an in-memory HDF5 file");
		else
			rc = open_with(name, fapl, out, err);
		if (fapl >= 0)
			H5Pclose(fapl);
	}
	LOCKED_END;
	return rc;
}

void cnnviz__h5_close(struct cnnviz__h5 *h)
{
	if (!h)
		return;
	LOCKED_BEGIN
	{
		H5Fclose(h->file);
	}
	LOCKED_END;
	free(h);
}

/* Link-by-link existence test: H5Lexists fails on a missing parent. */
static int exists_unlocked(hid_t file, const char *path)
{
	char buf[1024];
	size_t n = strlen(path);
	if (n == 0 || (n == 1 && path[0] == '/'))
		return 1;
	if (n >= sizeof buf)
		return 0;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (H5Lexists(file, buf, H5P_DEFAULT) <= 0)
				return 0;
			if (H5Oexists_by_name(file, buf, H5P_DEFAULT) <= 0)
				return 0;
			*p = c;
			if (c == '\0')
				return 1;
		}
	}
}

int cnnviz__h5_exists(struct cnnviz__h5 *h, const char *path)
{
	int r;
	LOCKED_BEGIN
	{
		r = exists_unlocked(h->file, path);
	}
	LOCKED_END;
	return r;
}

int cnnviz__h5_is_group(struct cnnviz__h5 *h, const char *path)
{
	int r = 0;
	LOCKED_BEGIN
	{
		H5O_info_t info;
		if (exists_unlocked(h->file, path) &&
		    H5Oget_info_by_name(h->file, path, &info, H5P_DEFAULT) >= 0)
			r = info.type == H5O_TYPE_GROUP;
	}
	LOCKED_END;
	return r;
}

/*
 * Reads the strings of an attribute (scalar or 1-D; fixed or variable
 * length) and appends them to *list. Absent: appends nothing, returns 1.
 */
static int read_attr_strings(hid_t obj, const char *name, size_t max_bytes,
			     char ***list, int *n, const char *where,
			     struct cnnviz_error *err)
{
	if (H5Aexists(obj, name) <= 0)
		return 1;
	int rc = CNNVIZ_OK;
	hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
	hid_t type = attr >= 0 ? H5Aget_type(attr) : -1;
	hid_t space = attr >= 0 ? H5Aget_space(attr) : -1;
	hid_t mtype = -1;
	char *raw = NULL;
	char **vl = NULL;
	if (attr < 0 || type < 0 || space < 0) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_FORMAT, where,
				  "cannot read attribute '%s'", name);
		goto out;
	}
	hssize_t count = H5Sget_simple_extent_npoints(space);
	int srank = H5Sget_simple_extent_ndims(space);
	if (count < 0 || srank > 1) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_FORMAT, where,
				  "attribute '%s' is not a list of strings", name);
		goto out;
	}
	if (count == 0)
		goto out; /* Keras writes empty lists as empty arrays of any type */
	if (H5Tget_class(type) != H5T_STRING) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_FORMAT, where,
				  "attribute '%s' is not a string", name);
		goto out;
	}
	if ((size_t)count > max_bytes) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_LIMIT, where,
				  "attribute '%s' has too many entries", name);
		goto out;
	}
	char **grown = realloc(*list, (size_t)(*n + count) * sizeof *grown);
	if (!grown) {
		rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, where, "out of memory");
		goto out;
	}
	*list = grown;
	if (H5Tis_variable_str(type) > 0) {
		mtype = H5Tcopy(H5T_C_S1);
		H5Tset_size(mtype, H5T_VARIABLE);
		/* h5py writes str as UTF-8; HDF5 converts no charsets. */
		H5Tset_cset(mtype, H5Tget_cset(type));
		vl = calloc((size_t)count, sizeof *vl);
		if (!vl || H5Aread(attr, mtype, vl) < 0) {
			rc = cnnviz__fail(err, vl ? CNNVIZ_ERR_FORMAT : CNNVIZ_ERR_NOMEM,
					  where, "cannot read attribute '%s'", name);
			free(vl);
			vl = NULL;
			goto out;
		}
		for (hssize_t i = 0; i < count; i++) {
			size_t len = vl[i] ? strlen(vl[i]) : 0;
			if (len > max_bytes) {
				rc = cnnviz__fail(err, CNNVIZ_ERR_LIMIT, where,
						  "attribute '%s' is larger than the limit of %zu bytes",
						  name, max_bytes);
				goto out;
			}
			char *s = strndup(vl[i] ? vl[i] : "", len);
			if (!s) {
				rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, where, "out of memory");
				goto out;
			}
			(*list)[(*n)++] = s;
		}
	} else {
		size_t size = H5Tget_size(type), total;
		if (size == 0 || cnnviz__mul_size(size, (size_t)count, &total) ||
		    total > max_bytes) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_LIMIT, where,
					  "attribute '%s' is larger than the limit of %zu bytes",
					  name, max_bytes);
			goto out;
		}
		mtype = H5Tcopy(H5T_C_S1);
		H5Tset_size(mtype, size);
		H5Tset_cset(mtype, H5Tget_cset(type));
		H5Tset_strpad(mtype, H5T_STR_NULLPAD);
		raw = malloc(total);
		if (!raw || H5Aread(attr, mtype, raw) < 0) {
			rc = cnnviz__fail(err, raw ? CNNVIZ_ERR_FORMAT : CNNVIZ_ERR_NOMEM,
					  where, "cannot read attribute '%s'", name);
			goto out;
		}
		for (hssize_t i = 0; i < count; i++) {
			char *s = strndup(raw + (size_t)i * size, size);
			if (!s) {
				rc = cnnviz__fail(err, CNNVIZ_ERR_NOMEM, where, "out of memory");
				goto out;
			}
			(*list)[(*n)++] = s;
		}
	}
out:
	if (vl) {
		H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, vl);
		free(vl);
	}
	free(raw);
	if (mtype >= 0)
		H5Tclose(mtype);
	if (space >= 0)
		H5Sclose(space);
	if (type >= 0)
		H5Tclose(type);
	if (attr >= 0)
		H5Aclose(attr);
	return rc;
}

static hid_t open_obj(hid_t file, const char *path)
{
	return exists_unlocked(file, path) ? H5Oopen(file, path, H5P_DEFAULT)
					   : -1;
}

int cnnviz__h5_attr_strings(struct cnnviz__h5 *h, const char *obj,
			    const char *attr, size_t max_bytes, char ***list,
			    int *n, struct cnnviz_error *err)
{
	int rc = CNNVIZ_OK;
	*list = NULL;
	*n = 0;
	LOCKED_BEGIN
	{
		hid_t o = open_obj(h->file, obj);
		if (o < 0) {
			rc = 1;
		} else {
			rc = read_attr_strings(o, attr, max_bytes, list, n, obj, err);
			/* Keras splits long lists into attr0, attr1, ... */
			if (rc == 1) {
				char chunk[128];
				for (int i = 0;; i++) {
					snprintf(chunk, sizeof chunk, "%s%d", attr, i);
					int r = read_attr_strings(o, chunk, max_bytes,
								  list, n, obj, err);
					if (r == 1) {
						rc = i == 0 ? 1 : CNNVIZ_OK;
						break;
					}
					if (r < 0) {
						rc = r;
						break;
					}
				}
			}
			H5Oclose(o);
		}
	}
	LOCKED_END;
	if (rc < 0) {
		cnnviz__strings_free(*list, *n);
		*list = NULL;
		*n = 0;
	}
	return rc;
}

int cnnviz__h5_attr_string(struct cnnviz__h5 *h, const char *obj,
			   const char *attr, size_t max_bytes, char **out,
			   struct cnnviz_error *err)
{
	char **list;
	int n;
	*out = NULL;
	int rc = cnnviz__h5_attr_strings(h, obj, attr, max_bytes, &list, &n, err);
	if (rc)
		return rc;
	if (n != 1) {
		cnnviz__strings_free(list, n);
		return cnnviz__fail(err, CNNVIZ_ERR_FORMAT, obj,
				    "attribute '%s' holds %d strings, expected one",
				    attr, n);
	}
	*out = list[0];
	free(list);
	return CNNVIZ_OK;
}

void cnnviz__strings_free(char **list, int n)
{
	if (!list)
		return;
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

int cnnviz__h5_dataset_shape(struct cnnviz__h5 *h, const char *path,
			     struct cnnviz__shape *shape,
			     struct cnnviz_error *err)
{
	int rc = CNNVIZ_OK;
	LOCKED_BEGIN
	{
		/* Errors are silenced: a missing path just fails to open. */
		hid_t d = H5Dopen2(h->file, path, H5P_DEFAULT);
		hid_t type = d >= 0 ? H5Dget_type(d) : -1;
		hid_t space = d >= 0 ? H5Dget_space(d) : -1;
		hsize_t dims[H5S_MAX_RANK];
		int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
		H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
		if (d < 0) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_WEIGHTS, path,
					  "weight dataset is missing");
		} else if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_WEIGHTS, path,
					  "weight dataset is not numeric");
		} else if (rank < 0 || rank > CNNVIZ__MAX_SRANK) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_WEIGHTS, path,
					  "weight dataset has an unsupported rank");
		} else {
			H5Sget_simple_extent_dims(space, dims, NULL);
			shape->rank = rank;
			for (int i = 0; i < rank; i++) {
				if (dims[i] > (hsize_t)INT64_MAX / 2) {
					rc = cnnviz__fail(err, CNNVIZ_ERR_LIMIT, path,
							  "absurd dimension");
					break;
				}
				shape->d[i] = (int64_t)dims[i];
			}
		}
		if (space >= 0)
			H5Sclose(space);
		if (type >= 0)
			H5Tclose(type);
		if (d >= 0)
			H5Dclose(d);
	}
	LOCKED_END;
	return rc;
}

int cnnviz__h5_read_float(struct cnnviz__h5 *h, const char *path, float *dst,
			  size_t count, struct cnnviz_error *err)
{
	int rc = CNNVIZ_OK;
	LOCKED_BEGIN
	{
		hid_t d = H5Dopen2(h->file, path, H5P_DEFAULT);
		hid_t space = d >= 0 ? H5Dget_space(d) : -1;
		hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
		if (d < 0 || n < 0 || (size_t)n != count) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_WEIGHTS, path,
					  "cannot read weight dataset");
		} else if (count > 0 &&
			   H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
				   H5P_DEFAULT, dst) < 0) {
			rc = cnnviz__fail(err, CNNVIZ_ERR_WEIGHTS, path,
					  "cannot read weight data (corrupt file?)");
		}
		if (space >= 0)
			H5Sclose(space);
		if (d >= 0)
			H5Dclose(d);
	}
	LOCKED_END;
	return rc;
}

struct iter_ctx {
	char **names;
	int n;
	int max;
	int failed;
};

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info,
		      void *data)
{
	struct iter_ctx *c = data;
	if (c->n >= c->max) {
		c->failed = CNNVIZ_ERR_LIMIT;
		return 1;
	}
	char **grown = realloc(c->names, (size_t)(c->n + 1) * sizeof *grown);
	char *s = strdup(name);
	if (!grown || !s) {
		if (grown)
			c->names = grown;
		free(s);
		c->failed = CNNVIZ_ERR_NOMEM;
		return 1;
	}
	c->names = grown;
	c->names[c->n++] = s;
	return 0;
}

int cnnviz__h5_children(struct cnnviz__h5 *h, const char *group, int max,
			char ***names, int *n, struct cnnviz_error *err)
{
	struct iter_ctx c = {NULL, 0, max, 0};
	int rc = CNNVIZ_OK;
	LOCKED_BEGIN
	{
		hid_t g = exists_unlocked(h->file, group)
				  ? H5Gopen2(h->file, group, H5P_DEFAULT)
				  : -1;
		if (g < 0) {
			rc = 1;
		} else {
			hsize_t idx = 0;
			if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx,
				       collect, &c) < 0 && !c.failed)
				c.failed = CNNVIZ_ERR_FORMAT;
			H5Gclose(g);
		}
	}
	LOCKED_END;
	if (c.failed) {
		cnnviz__strings_free(c.names, c.n);
		return cnnviz__fail(err, c.failed, group,
				    "cannot list the group's members");
	}
	*names = c.names;
	*n = c.n;
	return rc;
}
