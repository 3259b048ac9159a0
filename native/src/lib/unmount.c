/* umount2 for a call on a libuv worker thread (koffi's fn.async): errno is per thread and the
 * main thread cannot read the worker's, so the failure comes back as -errno in the result. */
#include <errno.h>
#include <sys/mount.h>

int swl_umount2(const char *target, int flags)
{
	return umount2(target, flags) < 0 ? -errno : 0;
}
