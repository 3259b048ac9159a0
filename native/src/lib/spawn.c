/*
 * sl_spawn: start one container through its own sl-monitor process.
 *
 * Called by native/spawn.ts on a libuv worker thread (koffi async), so it may block
 * and several calls may run at once. Everything it creates is O_CLOEXEC until
 * posix_spawn places it on fds 3/4 of the monitor: a report pipe leaking into a
 * concurrently spawned process would hold our read end open and hang us.
 *
 * posix_spawn (vfork-like clone in glibc) keeps the cost in the agent near zero even
 * though Node's address space is large. The spawned process forks the real monitor and
 * exits at once (double fork), so the monitor is re-parented to init / the subreaper,
 * never becomes the agent's zombie, and outlives it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../monitor/monitor_proto.h"

struct sl_result {
	int32_t pid;
	int32_t monitor_pid;
	int64_t running_at_ns;
	int32_t errnum;
	char syscall[32];
	char path[512];
};

static int fail(struct sl_result *out, char *err, int errlen, const char *syscall, const char *path, int errnum)
{
	out->errnum = errnum;
	snprintf(out->syscall, sizeof out->syscall, "%s", syscall);
	snprintf(out->path, sizeof out->path, "%s", path ? path : "");
	if (err && errlen > 0) {
		const char *name = strerrorname_np(errnum);
		snprintf(err, (size_t)errlen, "%s%s%s: %s (%s)", syscall, path && *path ? " " : "", path ? path : "",
			 name ? name : "E?", strerrordesc_np(errnum) ? strerrordesc_np(errnum) : "unknown error");
	}
	return -errnum;
}

/* Moves fd to >= 6 so that placing it on 3, 4 or 5 in the child cannot clobber another. */
static int lift(int fd)
{
	if (fd >= 7)
		return fd;
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, 7);
	int saved = errno;
	close(fd);
	errno = saved;
	return hi;
}

static int spawn_with(const char *monitor_path, const uint8_t *launch, size_t launch_len, struct sl_result *out,
		      char *err, int errlen, int in_fd, int ctl_fd);

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * stdin_fd: NULL, or where the write end of a pipe whose read end the monitor passes to an
 * exec as its stdin goes (O_CLOEXEC; the caller owns it; closing it is the process's EOF).
 */
/* A pipe whose read end goes to the monitor (lifted above its fixed fds) and write end to the caller. */
static int io_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if ((p[0] = lift(p[0])) < 0) {
		int e = errno;
		close(p[1]);
		p[1] = -1;
		errno = e;
		return -1;
	}
	return 0;
}

/*
 * ctl_fd: NULL, or where the write end of a terminal's resize pipe goes (monitor_proto.h,
 * SL_CTL_FD), for a launch with "tty".
 */
static int spawn_monitor(const char *monitor_path, const uint8_t *launch, size_t launch_len, struct sl_result *out,
			 char *err, int errlen, int *stdin_fd, int *ctl_fd)
{
	memset(out, 0, sizeof *out);
	int inp[2] = {-1, -1}, ctl[2] = {-1, -1};
	if (stdin_fd) {
		*stdin_fd = -1;
		if (io_pipe(inp) < 0)
			return fail(out, err, errlen, "pipe2", "stdin", errno);
	}
	if (ctl_fd) {
		*ctl_fd = -1;
		if (io_pipe(ctl) < 0) {
			int e = errno;
			if (inp[0] >= 0) {
				close(inp[0]);
				close(inp[1]);
			}
			return fail(out, err, errlen, "pipe2", "tty control", e);
		}
	}
	int rc = spawn_with(monitor_path, launch, launch_len, out, err, errlen, inp[0], ctl[0]);
	if (inp[0] >= 0)
		close(inp[0]);
	if (ctl[0] >= 0)
		close(ctl[0]);
	if (stdin_fd && rc == 0)
		*stdin_fd = inp[1];
	else if (inp[1] >= 0)
		close(inp[1]);
	if (ctl_fd && rc == 0)
		*ctl_fd = ctl[1];
	else if (ctl[1] >= 0)
		close(ctl[1]);
	return rc;
}

int sl_spawn(const char *monitor_path, const uint8_t *launch, size_t launch_len, struct sl_result *out, char *err,
	     int errlen)
{
	return spawn_monitor(monitor_path, launch, launch_len, out, err, errlen, NULL, NULL);
}

int sl_spawn_exec(const char *monitor_path, const uint8_t *launch, size_t launch_len, int want_stdin,
		  struct sl_result *out, char *err, int errlen, int *stdin_fd)
{
	return spawn_monitor(monitor_path, launch, launch_len, out, err, errlen, want_stdin ? stdin_fd : NULL, NULL);
}

/* A start or exec with its stdin pipe and, for a terminal, its resize pipe (either optional). */
int sl_spawn_io(const char *monitor_path, const uint8_t *launch, size_t launch_len, int want_stdin, int want_tty,
		struct sl_result *out, char *err, int errlen, int *stdin_fd, int *ctl_fd)
{
	return spawn_monitor(monitor_path, launch, launch_len, out, err, errlen, want_stdin ? stdin_fd : NULL,
			     want_tty ? ctl_fd : NULL);
}

static int spawn_with(const char *monitor_path, const uint8_t *launch, size_t launch_len, struct sl_result *out,
		      char *err, int errlen, int in_fd, int ctl_fd)
{
	if (err && errlen > 0)
		err[0] = 0;
	if (launch_len == 0 || launch_len > SL_LAUNCH_MAX)
		return fail(out, err, errlen, "launch", "", EINVAL);

	int mfd = memfd_create("sl-launch", MFD_CLOEXEC);
	if (mfd < 0)
		return fail(out, err, errlen, "memfd_create", "", errno);
	if ((mfd = lift(mfd)) < 0)
		return fail(out, err, errlen, "fcntl", "", errno);
	if (write_all(mfd, launch, launch_len) < 0) {
		int e = errno;
		close(mfd);
		return fail(out, err, errlen, "write", "memfd:sl-launch", e);
	}

	int rp[2];
	if (pipe2(rp, O_CLOEXEC) < 0) {
		int e = errno;
		close(mfd);
		return fail(out, err, errlen, "pipe2", "", e);
	}
	if ((rp[1] = lift(rp[1])) < 0) {
		int e = errno;
		close(mfd);
		close(rp[0]);
		return fail(out, err, errlen, "fcntl", "", e);
	}

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
	posix_spawn_file_actions_adddup2(&fa, 0, 1);
	posix_spawn_file_actions_adddup2(&fa, 0, 2);
	posix_spawn_file_actions_adddup2(&fa, mfd, SL_LAUNCH_FD);
	posix_spawn_file_actions_adddup2(&fa, rp[1], SL_REPORT_FD);
	if (in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, in_fd, SL_STDIN_FD);
	if (ctl_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, ctl_fd, SL_CTL_FD);

	/* Node ignores SIGPIPE and its threads may block signals; neither must reach the container. */
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);

	char *const argv[] = {(char *)"sl-monitor", NULL};
	char *const envp[] = {NULL};
	pid_t mid;
	int rc = posix_spawn(&mid, monitor_path, &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(mfd);
	close(rp[1]);
	if (rc != 0) {
		close(rp[0]);
		return fail(out, err, errlen, "posix_spawn", monitor_path, rc);
	}

	/* The intermediate exits right after forking the monitor; reap it so it is no zombie. */
	int st = 0;
	while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
		;

	struct sl_report rep;
	size_t got = 0;
	while (got < sizeof rep) {
		ssize_t r = read(rp[0], (char *)&rep + got, sizeof rep - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(rp[0]);

	if (got != sizeof rep) {
		if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
			return fail(out, err, errlen, "sl-monitor", monitor_path, WEXITSTATUS(st) == 127 ? ENOEXEC : EPROTO);
		return fail(out, err, errlen, "sl-monitor", monitor_path, EPIPE);
	}
	rep.syscall[sizeof rep.syscall - 1] = 0;
	rep.path[sizeof rep.path - 1] = 0;
	out->monitor_pid = rep.monitor_pid;
	out->pid = rep.pid;
	if (rep.status != SL_REPORT_RUNNING)
		return fail(out, err, errlen, rep.syscall, rep.path, rep.errnum ? rep.errnum : EPROTO);
	out->running_at_ns = rep.running_at_ns;
	return 0;
}
