/* rm -rf of one directory tree in one call, for a libuv worker (koffi's fn.async). A removal
 * deleted each container's bundle, writable layer, state dir and sandbox files through
 * fs.promises.rm: an lstat, readdir, unlink or rmdir per entry, each a trip through the thread
 * pool and a JS callback on the main thread (with its garbage): ~20 per container, 2,000
 * for 100 removals. Here the whole tree is one call.
 *
 * Never follows a symlink (FTW_PHYS) and never enters another filesystem (FTW_MOUNT): a tree
 * with something still mounted in it fails (the mount point's parent cannot be removed), it
 * is not deleted through the mount. Keeps going past a failure and returns the first one as
 * -errno (errno is the worker's own, unreadable from the main thread); a missing root is 0. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <unistd.h>

static __thread int first_error;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st; (void)ftw;
	int rc;
	switch (type) {
	case FTW_DP:
		rc = rmdir(path);
		break;
	case FTW_DNR: /* unreadable: rmdir says why, or works when it is empty */
		rc = rmdir(path);
		break;
	case FTW_NS: /* gone meanwhile, or cannot be looked at */
		rc = unlink(path);
		break;
	default: /* FTW_F, FTW_SL, FTW_SLN */
		rc = unlink(path);
		break;
	}
	if (rc < 0 && errno != ENOENT && first_error == 0) first_error = errno;
	return 0; /* on with the rest */
}

int swl_rmtree(const char *path)
{
	first_error = 0;
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0) {
		if (errno == ENOENT) return 0;
		return -errno;
	}
	return first_error ? -first_error : 0;
}
