/*
 * Network namespaces and namespace-scoped netlink sockets for native/netlink.ts.
 *
 * Namespace switches happen in a short-lived pthread: setns/unshare(CLONE_NEWNET)
 * affect only the calling thread, so Node's main thread never leaves the host
 * namespace, and a socket keeps the namespace it was created in after the thread
 * is gone. Every function returns >= 0 or -errno; the TypeScript side turns that into a
 * SyscallError, so a raw -1 never reaches TypeScript callers.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

struct ns_job {
	const char *path;   /* netns file: bind target (create) or namespace to enter (socket) */
	int result;         /* >= 0 or -errno */
	const char *failed; /* name of the step that failed, for the error message */
};

static void *create_thread(void *arg)
{
	struct ns_job *job = arg;
	if (unshare(CLONE_NEWNET) < 0) {
		job->result = -errno;
		job->failed = "unshare";
		return NULL;
	}
	/* The bind mount keeps the namespace alive once this thread exits. */
	if (mount("/proc/thread-self/ns/net", job->path, NULL, MS_BIND, NULL) < 0) {
		job->result = -errno;
		job->failed = "mount";
		return NULL;
	}
	job->result = 0;
	return NULL;
}

static const char *last_step = "";

static int nl_socket_here(void);

/* Like create_thread, then a netlink socket in the new namespace (result = its fd). */
static void *create_nl_thread(void *arg)
{
	struct ns_job *job = arg;
	create_thread(job);
	if (job->result < 0)
		return NULL;
	job->result = nl_socket_here();
	if (job->result < 0) {
		job->failed = "socket";
		umount2(job->path, MNT_DETACH);
	}
	return NULL;
}

/* Name of the step that failed in the last swl_netns_create call. */
const char *swl_netns_last_step(void) { return last_step; }

static int run_in_thread(void *(*fn)(void *), struct ns_job *job)
{
	pthread_t t;
	int rc = pthread_create(&t, NULL, fn, job);
	if (rc != 0) {
		job->failed = "pthread_create";
		return -rc;
	}
	pthread_join(t, NULL);
	return job->result;
}

/* Makes the namespace file, then runs the namespace-creating thread function on it. */
static int create_at(const char *path, void *(*thread_fn)(void *))
{
	struct ns_job job = { .path = path, .result = -EINVAL, .failed = "" };
	int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0) {
		last_step = "open";
		return -errno;
	}
	close(fd);
	int rc = run_in_thread(thread_fn, &job);
	last_step = job.failed;
	if (rc < 0)
		unlink(path);
	return rc;
}

/* Creates a new network namespace bind-mounted on path (the file is created; it must not be a mount point yet). */
int swl_netns_create(const char *path)
{
	return create_at(path, create_thread);
}

/*
 * swl_netns_create, plus a bound NETLINK_ROUTE socket inside the new namespace opened by the
 * same thread: one thread instead of two on the container-start path. Returns the socket fd.
 */
int swl_netns_create_nl(const char *path)
{
	return create_at(path, create_nl_thread);
}

/* Unmounts and unlinks a namespace file. Missing pieces are not errors (idempotent delete). */
int swl_netns_delete(const char *path)
{
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
		last_step = "umount2";
		return -errno;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		last_step = "unlink";
		return -errno;
	}
	return 0;
}

static int nl_socket_here(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	int one = 1;
	/* Error messages from the kernel ("extack") make failures self-explaining;
	 * CAP_ACK keeps the ACK small. Both are best effort on old kernels. */
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
	/* rtnetlink answers synchronously; the timeout only guards against a lost reply. */
	struct timeval tv = { .tv_sec = 5, .tv_usec = 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	int buf = 1 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static void *socket_thread(void *arg)
{
	struct ns_job *job = arg;
	int ns = open(job->path, O_RDONLY | O_CLOEXEC);
	if (ns < 0) {
		job->result = -errno;
		job->failed = "open";
		return NULL;
	}
	if (setns(ns, CLONE_NEWNET) < 0) {
		job->result = -errno;
		job->failed = "setns";
		close(ns);
		return NULL;
	}
	close(ns);
	job->result = nl_socket_here();
	if (job->result < 0)
		job->failed = "socket";
	return NULL;
}

/* A bound NETLINK_ROUTE socket in the namespace at nspath (NULL or "" = the caller's). */
int swl_nl_open(const char *nspath)
{
	if (nspath == NULL || nspath[0] == '\0') {
		int fd = nl_socket_here();
		last_step = fd < 0 ? "socket" : "";
		return fd;
	}
	struct ns_job job = { .path = nspath, .result = -EINVAL, .failed = "" };
	int rc = run_in_thread(socket_thread, &job);
	last_step = job.failed;
	return rc;
}

int swl_nl_send(int fd, const void *buf, int len)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	ssize_t n;
	do
		n = sendto(fd, buf, (size_t)len, 0, (struct sockaddr *)&sa, sizeof sa);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (int)n;
}

int swl_nl_recv(int fd, void *buf, int len)
{
	ssize_t n;
	do
		n = recv(fd, buf, (size_t)len, 0);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (int)n;
}

int swl_close(int fd)
{
	return close(fd) < 0 ? -errno : 0;
}
