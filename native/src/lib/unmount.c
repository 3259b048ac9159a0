/* umount2 for a call on a libuv worker thread (koffi's fn.async): errno is per thread and the
 * main thread cannot read the worker's, so a failure comes back as -errno in the result. */
#include <errno.h>
#include <sys/mount.h>

/* Every mount stacked on `target` (a create retried after a crash may have mounted twice), in
 * one call on one worker: umount2 until it says nothing is left there (EINVAL: not a mount
 * point; ENOENT: no such path), at most `max` times. From JS that loop was a worker trip and
 * a main-thread callback per umount2, the last one only to hear EINVAL. Returns how many were
 * unmounted, or -errno of a failure other than those two. */
int swl_umount_all(const char *target, int flags, int max)
{
	for (int n = 0; n < max; n++) {
		if (umount2(target, flags) < 0) {
			if (errno == EINVAL || errno == ENOENT) return n;
			return -errno;
		}
	}
	return max;
}
