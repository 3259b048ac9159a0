/* The writes of a tar extraction (agent/storage/untar.ts), one call per entry, for a libuv
 * worker (koffi's fn.async). Through fs.promises a regular file was an open, a read and a
 * write per 256 KiB, a chown, a chmod, a utimes and a close: each a trip through the thread
 * pool and a promise on the main thread, and every byte copied twice (archive page cache to
 * a JS buffer, buffer to the new file's page cache). Here a file is one call, and its bytes
 * go from the archive to the file inside the kernel (copy_file_range; pread/pwrite where the
 * two files' filesystems cannot do that).
 *
 * Path checks stay in untar.ts (every directory above the entry is a real directory of this
 * extraction); here the last component is never followed (O_CREAT|O_EXCL|O_NOFOLLOW, and
 * *at(AT_SYMLINK_NOFOLLOW)). A failure returns -(step << 12 | errno): errno is the worker's
 * own, unreadable from the main thread, and the step says which call failed. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum { STEP_OPEN = 1, STEP_TRUNCATE, STEP_READ, STEP_WRITE, STEP_CHOWN, STEP_CHMOD, STEP_UTIMES, STEP_CLOSE, STEP_SYMLINK, STEP_ENDED };

#define FAIL(step, e) (-(((step) << 12) | (e)))
#define FALLBACK_BUF (1 << 20)

/* As libuv's uv__fs_to_timespec, so these times equal those fs.utimes sets for directories:
 * microseconds, and a fraction below zero borrows from the seconds. */
static struct timespec timespec_of(double t)
{
	struct timespec ts;
	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	ts.tv_nsec -= ts.tv_nsec % 1000;
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += 1000000000;
		ts.tv_sec -= 1;
	}
	return ts;
}

static __thread char *fallback_buf;

/* len bytes from in@in_off to out@out_off; 0, or FAIL(...). The archive ending early (its file
 * shrank since its size was read) is STEP_ENDED. */
static int copy_range(int in, off_t in_off, int out, off_t out_off, off_t len)
{
	int kernel = 1;
	while (len > 0) {
		ssize_t n;
		if (kernel) {
			loff_t io = in_off, oo = out_off;
			n = copy_file_range(in, &io, out, &oo, (size_t)(len > (1 << 30) ? (1 << 30) : len), 0);
			if (n < 0) {
				if (errno == EINTR) continue;
				/* another filesystem, or one that cannot: copy through memory */
				if (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS) {
					kernel = 0;
					continue;
				}
				return FAIL(STEP_WRITE, errno);
			}
			if (n == 0) return FAIL(STEP_ENDED, 0);
		} else {
			if (!fallback_buf && !(fallback_buf = malloc(FALLBACK_BUF))) return FAIL(STEP_READ, ENOMEM);
			size_t want = len > FALLBACK_BUF ? FALLBACK_BUF : (size_t)len;
			n = pread(in, fallback_buf, want, in_off);
			if (n < 0) {
				if (errno == EINTR) continue;
				return FAIL(STEP_READ, errno);
			}
			if (n == 0) return FAIL(STEP_ENDED, 0);
			for (ssize_t done = 0; done < n;) {
				ssize_t w = pwrite(out, fallback_buf + done, (size_t)(n - done), out_off + done);
				if (w < 0) {
					if (errno == EINTR) continue;
					return FAIL(STEP_WRITE, errno);
				}
				done += w;
			}
		}
		in_off += n;
		out_off += n;
		len -= n;
	}
	return 0;
}

/* A new regular file at path (which must not exist) holding n_ext extents of the archive: the
 * archive's bytes from in_off on, extent i ext[2i+1] bytes long at file offset ext[2i]. A sparse
 * file has real_size >= 0 (its length, holes included). Then owner (uid < 0: kept), mode, times,
 * in that order: chown clears setuid/setgid. */
int swl_put_file(const char *path, int in, double in_off, const double *ext, int n_ext, double real_size,
		 long long uid, long long gid, int mode, double atime, double mtime)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) return FAIL(STEP_OPEN, errno);
	int rc = 0;
	off_t from = (off_t)in_off;
	if (real_size >= 0 && ftruncate(fd, (off_t)real_size) < 0) rc = FAIL(STEP_TRUNCATE, errno);
	for (int i = 0; rc == 0 && i < n_ext; i++) {
		off_t at = (off_t)ext[2 * i], len = (off_t)ext[2 * i + 1];
		rc = copy_range(in, from, fd, at, len);
		from += len;
	}
	if (rc == 0 && uid >= 0 && fchown(fd, (uid_t)uid, (gid_t)gid) < 0) rc = FAIL(STEP_CHOWN, errno);
	if (rc == 0 && fchmod(fd, (mode_t)mode) < 0) rc = FAIL(STEP_CHMOD, errno);
	if (rc == 0) {
		struct timespec ts[2] = { timespec_of(atime), timespec_of(mtime) };
		if (futimens(fd, ts) < 0) rc = FAIL(STEP_UTIMES, errno);
	}
	if (close(fd) < 0 && rc == 0) rc = FAIL(STEP_CLOSE, errno);
	return rc;
}

/* A new symlink at path (which must not exist) to target, then its own owner (uid < 0: kept)
 * and times, never the target's. */
int swl_put_symlink(const char *target, const char *path, long long uid, long long gid, double atime, double mtime)
{
	if (symlink(target, path) < 0) return FAIL(STEP_SYMLINK, errno);
	if (uid >= 0 && fchownat(AT_FDCWD, path, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) < 0) return FAIL(STEP_CHOWN, errno);
	struct timespec ts[2] = { timespec_of(atime), timespec_of(mtime) };
	if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) < 0) return FAIL(STEP_UTIMES, errno);
	return 0;
}
