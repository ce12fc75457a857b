/*
 * Files the library writes (npy, PNG) appear whole or not at all: the
 * bytes go to a hidden name next to the target, reach the disk, and only
 * then does a rename give them the target's name. A crash or a full disk
 * leaves the old file (or none), never a truncated one. Every error names
 * the target and says "cannot write: <why>".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* ".<name>.tmp-<pid>-<n>" in path's directory. */
static int temp_name(const char *path, char *buf, size_t size)
{
	static atomic_uint counter;
	const char *slash = strrchr(path, '/');
	size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
	unsigned n = atomic_fetch_add(&counter, 1);
	int len = snprintf(buf, size, "%.*s.%s.tmp-%ld-%u", (int)dir, path,
			   path + dir, (long)getpid(), n);

	return len < 0 || (size_t)len >= size ? -1 : 0;
}

int cnnviz__outfile_open(struct cnnviz__outfile *o, const char *path,
			 struct cnnviz_error *err)
{
	int fd = -1;

	o->f = NULL;
	o->path = path;
	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		if (temp_name(path, o->tmp, sizeof o->tmp)) {
			cnnviz__error_file(err, path);
			return cnnviz__fail(err, CNNVIZ_ERR_IO, NULL,
					    "cannot write: path too long");
		}
		/* 0666 under the umask, as for any new file */
		fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		cnnviz__error_file(err, path);
		return cnnviz__fail(err, CNNVIZ_ERR_IO, NULL,
				    "cannot write: cannot create a temporary "
				    "file next to it: %s",
				    strerror(errno));
	}
	o->f = fdopen(fd, "wb");
	if (!o->f) {
		int saved = errno;
		close(fd);
		unlink(o->tmp);
		cnnviz__error_file(err, path);
		return cnnviz__fail(err, CNNVIZ_ERR_NOMEM, NULL,
				    "cannot write: cannot open a stream: %s",
				    strerror(saved));
	}
	return CNNVIZ_OK;
}

int cnnviz__outfile_commit(struct cnnviz__outfile *o, int written,
			   struct cnnviz_error *err)
{
	const char *what = written ? NULL : "write error";
	int saved = errno; /* the failed write's, when !written */

	/* Data on disk before the rename makes the new name visible. */
	if (!what && (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0)) {
		what = "write error";
		saved = errno;
	}
	if (fclose(o->f) != 0 && !what) {
		what = "write error";
		saved = errno;
	}
	o->f = NULL;
	if (!what && rename(o->tmp, o->path) != 0) {
		what = "cannot rename the finished file into place";
		saved = errno;
	}
	if (!what)
		return CNNVIZ_OK;
	unlink(o->tmp);
	cnnviz__error_file(err, o->path);
	return cnnviz__fail(err, CNNVIZ_ERR_IO, NULL, "cannot write: %s: %s",
			    what, strerror(saved));
}

void cnnviz__outfile_discard(struct cnnviz__outfile *o)
{
	if (!o->f)
		return;
	fclose(o->f);
	o->f = NULL;
	unlink(o->tmp);
}

int cnnviz_file_write(const char *path, const void *data, size_t size,
		      struct cnnviz_error *err)
{
	struct cnnviz__outfile o;
	int rc;

	cnnviz__error_clear(err);
	if (!path || !path[0] || (!data && size))
		return cnnviz__fail(err, CNNVIZ_ERR_ARG, NULL,
				    "data or path is missing");
	if ((rc = cnnviz__outfile_open(&o, path, err)))
		return rc;
	return cnnviz__outfile_commit(
		&o, !size || fwrite(data, 1, size, o.f) == size, err);
}
