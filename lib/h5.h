/* HDF5 access for the loader; implemented in h5.c (the only libhdf5 user). */
#ifndef CNNVIZ_H5_H
#define CNNVIZ_H5_H

#include "internal.h"

struct cnnviz__h5;

/* Non-zero if the first bytes are the HDF5 signature (at offset 0). */
int cnnviz__h5_is_hdf5(const void *head, size_t len);
int cnnviz__h5_open(const char *path, struct cnnviz__h5 **out,
		    struct cnnviz_error *err);
/* From a file image in memory (copied). */
int cnnviz__h5_open_image(const void *buf, size_t len, const char *name,
			  struct cnnviz__h5 **out, struct cnnviz_error *err);
void cnnviz__h5_close(struct cnnviz__h5 *h);

int cnnviz__h5_exists(struct cnnviz__h5 *h, const char *path);
int cnnviz__h5_is_group(struct cnnviz__h5 *h, const char *path);

/*
 * Strings of attribute `attr` of object `obj`, also when Keras split it
 * into attr0, attr1, ... *list: new (cnnviz__strings_free). Returns 1 with
 * an empty list when neither the object nor the attribute exists.
 */
int cnnviz__h5_attr_strings(struct cnnviz__h5 *h, const char *obj,
			    const char *attr, size_t max_bytes, char ***list,
			    int *n, struct cnnviz_error *err);
/* A single string attribute; *out new (free), 1 if absent. */
int cnnviz__h5_attr_string(struct cnnviz__h5 *h, const char *obj,
			   const char *attr, size_t max_bytes, char **out,
			   struct cnnviz_error *err);
void cnnviz__strings_free(char **list, int n);

/* Shape of a numeric dataset. */
int cnnviz__h5_dataset_shape(struct cnnviz__h5 *h, const char *path,
			     struct cnnviz__shape *shape,
			     struct cnnviz_error *err);
/* Reads count values converted to float32. */
int cnnviz__h5_read_float(struct cnnviz__h5 *h, const char *path, float *dst,
			  size_t count, struct cnnviz_error *err);
/* Member names of a group (at most max); 1 if the group is absent. */
int cnnviz__h5_children(struct cnnviz__h5 *h, const char *group, int max,
			char ***names, int *n, struct cnnviz_error *err);

#endif
