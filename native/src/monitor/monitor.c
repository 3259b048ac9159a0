/*
 * sl-monitor: one per container, like conmon. Started by sl_spawn (src/lib/spawn.c)
 * with the launch description on fd 3 and a report pipe on fd 4 (monitor_proto.h).
 *
 * It forks once more and the first process exits, so the monitor is re-parented away
 * from the agent and survives it. Then it clones the container init (monitor_init.c),
 * puts it in its cgroups, reports "running" (or the failure) on fd 4, copies the
 * container's stdout/stderr into the log file and records the exit in the state dir.
 *
 * State directory files (each written to a temporary name and renamed, so a reader sees
 * all of a file or none of it):
 *   running.json  {"pid":N,"monitorPid":N,"pidStart":T,"monitorStart":T,"runningAtUs":N}
 *                 pidStart/monitorStart are field 22 of /proc/<pid>/stat (clock ticks since
 *                 boot): with the pid they name the process even after pid reuse.
 *   exit.json     {"code":N,"signal":"SIGKILL"|null,"exitedAtUs":N}
 *                 code is the exit status, or 128+signal when killed (as Docker reports it).
 *
 * Log file format (append-only, shared by stdout and stderr so their order is kept):
 *   frame = [u8 stream: 1 stdout, 2 stderr][u32 LE payload length][u64 LE time, µs since
 *            the epoch (CLOCK_REALTIME) when the monitor read it][payload bytes]
 * Each frame goes out in one write() on an O_APPEND descriptor; a reader must still
 * accept a partial trailing frame (agent/runtime/logfile.ts).
 *
 * It never touches the network and allocates only the launch buffer and one 64 KiB
 * copy buffer, so it stays at a few hundred KiB of RSS.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/cgroup_bpf.h"
#include "monitor.h"
#include "monitor_proto.h"

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void report(const struct sl_report *r)
{
	ssize_t w;
	while ((w = write(SL_REPORT_FD, r, sizeof *r)) < 0 && errno == EINTR)
		;
	close(SL_REPORT_FD);
}

static void __attribute__((noreturn)) report_fail(const struct sl_fail *f, pid_t pid)
{
	struct sl_report r;
	memset(&r, 0, sizeof r);
	r.status = SL_REPORT_FAILED;
	r.errnum = f->errnum;
	r.monitor_pid = getpid();
	r.pid = pid;
	memcpy(r.syscall, f->syscall, sizeof r.syscall);
	memcpy(r.path, f->path, sizeof r.path);
	report(&r);
	_exit(1);
}

static void __attribute__((noreturn)) fail_now(const char *syscall, const char *path, pid_t child)
{
	struct sl_fail f;
	sl_set_fail(&f, syscall, path, errno ? errno : EINVAL);
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	report_fail(&f, child);
}

/* Writes dir/name atomically: a reader (the agent, maybe restarted) sees old or new, never half. */
static int write_state(const char *dir, const char *name, const char *text)
{
	char tmp[4096], dst[4096];
	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
	snprintf(dst, sizeof dst, "%s/%s", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t n = strlen(text);
	if (write(fd, text, n) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	close(fd);
	return rename(tmp, dst);
}

/* Field 22 of /proc/<pid>/stat; the comm field may hold spaces and ')', so parse after the last ')'. */
static unsigned long long start_time(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* after ")" come fields 3.. ; starttime is field 22, i.e. the 20th after ")" */
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

static int write_frame(int logfd, uint8_t stream, const char *data, size_t len)
{
	uint8_t hdr[13];
	uint64_t us = (uint64_t)(now_ns() / 1000);
	hdr[0] = stream;
	for (int i = 0; i < 4; i++)
		hdr[1 + i] = (uint8_t)(len >> (8 * i));
	for (int i = 0; i < 8; i++)
		hdr[5 + i] = (uint8_t)(us >> (8 * i));
	struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)data, len}};
	ssize_t w;
	while ((w = writev(logfd, iov, 2)) < 0 && errno == EINTR)
		;
	return w < 0 ? -1 : 0;
}

static char *read_launch(size_t *len, struct sl_fail *f)
{
	struct stat st;
	if (fstat(SL_LAUNCH_FD, &st) < 0 || st.st_size <= 0 || (size_t)st.st_size > SL_LAUNCH_MAX) {
		sl_set_fail(f, "fstat", "launch fd", errno ? errno : EINVAL);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t r = pread(SL_LAUNCH_FD, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			sl_set_fail(f, "read", "launch fd", r < 0 ? errno : EIO);
			return NULL;
		}
		got += (size_t)r;
	}
	close(SL_LAUNCH_FD);
	*len = got;
	return buf;
}

/*
 * An exec's namespaces: the ones of the container's init, opened through a /proc/PID
 * directory fd taken after its start time was checked, so a reused pid cannot hand us a
 * stranger's namespaces (the fd keeps naming the old process, whose files then fail).
 * A namespace the monitor already shares (net of --network host) is not joined.
 */
static void open_exec_ns(const struct sl_launch *l, struct sl_exec_ns *ens)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d", (int)l->exec_pid);
	int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		errno = errno == ENOENT ? ESRCH : errno;
		fail_now("open", path, 0);
	}
	if (start_time(l->exec_pid) != l->exec_start) {
		errno = ESRCH;
		fail_now("exec", path, 0);
	}
	for (int i = 0; i < SL_EXEC_NS; i++) {
		char rel[32], self[64];
		snprintf(rel, sizeof rel, "ns/%s", sl_exec_ns_names[i]);
		snprintf(self, sizeof self, "/proc/self/ns/%s", sl_exec_ns_names[i]);
		ens->fd[i] = openat(dir, rel, O_RDONLY | O_CLOEXEC);
		if (ens->fd[i] < 0) {
			if (errno == ENOENT) /* a kernel without this namespace type */
				continue;
			snprintf(path, sizeof path, "/proc/%d/%s", (int)l->exec_pid, rel);
			fail_now("open", path, 0);
		}
		struct stat a, b;
		if (fstat(ens->fd[i], &a) == 0 && stat(self, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
			close(ens->fd[i]);
			ens->fd[i] = -1;
		}
	}
	/* still the same process once every fd is open */
	if (start_time(l->exec_pid) != l->exec_start) {
		errno = ESRCH;
		fail_now("exec", path, 0);
	}
	close(dir);
}

/*
 * A new user namespace (runc's order): the init waits on usp until its uid_map and gid_map
 * are written from here, outside (as root of the parent namespace: any mapping the launch
 * names). setgroups stays "allow", as runc leaves it for a privileged runtime, so the
 * container's root can set its mapped groups. What the init can no longer do for itself
 * once it is unprivileged towards the host is done here too: oom_score_adj below the
 * monitor's and raised hard rlimits need capabilities in the host's namespace.
 */
static void map_userns(const struct sl_launch *l, pid_t child, int usp[2])
{
	close(usp[0]);
	const char *file[2] = {"uid_map", "gid_map"}, *text[2] = {l->uid_map, l->gid_map};
	char path[64];
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "/proc/%d/%s", (int)child, file[i]);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		ssize_t n = (ssize_t)strlen(text[i]);
		if (fd < 0 || write(fd, text[i], (size_t)n) != n)
			fail_now("write", path, child);
		close(fd);
	}
	if (l->has_oom) {
		snprintf(path, sizeof path, "/proc/%d/oom_score_adj", (int)child);
		char v[16];
		int n = snprintf(v, sizeof v, "%d", l->oom_score_adj);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, v, (size_t)n) != n)
			fail_now("write", path, child);
		close(fd);
	}
	for (int i = 0; i < l->nrlimits; i++) {
		struct rlimit rl = {(rlim_t)l->rlimits[i].soft, (rlim_t)l->rlimits[i].hard};
		if (prlimit(child, l->rlimits[i].resource, &rl, NULL) < 0)
			fail_now("prlimit", "rlimit", child);
	}
	if (write(usp[1], "u", 1) != 1) {
		/* the init died: its reason, if any, is on the exec pipe */
	}
	close(usp[1]);
}

int main(void)
{
	/* Double fork: the agent reaps the first process at once; the monitor belongs to init. */
	pid_t p = fork();
	if (p < 0)
		fail_now("fork", "sl-monitor", 0);
	if (p > 0)
		_exit(0);
	setsid();
	if (chdir("/") < 0)
		fail_now("chdir", "/", 0);
	/* Anything the agent leaked without O_CLOEXEC must not reach the container (fd 5 is an
	 * exec's stdin when its launch asks for one, fd 6 a terminal's resize pipe; closed below
	 * otherwise). */
	syscall(SYS_close_range, SL_CTL_FD + 1, ~0u, 0);

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);

	struct sl_fail f;
	size_t len = 0;
	char *buf = read_launch(&len, &f);
	struct sl_launch l;
	if (!buf || sl_parse_launch(buf, len, &l, &f) < 0)
		report_fail(&f, 0);

	if (!l.has_stdin)
		close(SL_STDIN_FD);
	/* sl-runtime: the caller's stdio goes to the process, as runc's does (copies above the
	 * launch fds, close-on-exec: the child dup2s them onto 0, 1, 2) */
	int std_in = -1, std_out = -1, std_err = -1;
	if (l.inherit_stdio) {
		std_in = fcntl(0, F_DUPFD_CLOEXEC, 10);
		std_out = fcntl(1, F_DUPFD_CLOEXEC, 10);
		std_err = fcntl(2, F_DUPFD_CLOEXEC, 10);
		if (std_in < 0 || std_out < 0 || std_err < 0)
			fail_now("fcntl", "stdio", 0);
	}
	if (!l.tty)
		close(SL_CTL_FD);
	/*
	 * A container's -i / -t: the agent's stdin and resize records come through the FIFO
	 * STATE/attach (monitor_attach.c), which the monitor keeps, not through pipes of the agent:
	 * an agent that restarts opens it again and the session goes on. With -i and no terminal
	 * the process reads a pipe the monitor feeds; with a terminal the data goes into the master.
	 */
	int attach_fd = -1;
	char attach_path[4096] = "";
	int inp[2] = {-1, -1};
	if (l.attach >= 0 && !l.exec_pid) {
		snprintf(attach_path, sizeof attach_path, "%s/attach", l.state);
		unlink(attach_path); /* a start again: the last run's */
		if (mkfifo(attach_path, 0600) < 0)
			fail_now("mkfifo", attach_path, 0);
		/* O_RDWR: the monitor is a writer too, so an agent that goes (or dies) is no EOF */
		if ((attach_fd = open(attach_path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0)
			fail_now("open", attach_path, 0);
		if (l.attach == 1 && !l.tty && pipe2(inp, O_CLOEXEC) < 0)
			fail_now("pipe2", "stdin", 0);
	}
	/* -t: the child sends the pty master it made in the container over this pair */
	int ttyp[2] = {-1, -1};
	if (l.tty && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ttyp) < 0)
		fail_now("socketpair", "pty", 0);
	struct sl_exec_ns ens;
	if (l.exec_pid)
		open_exec_ns(&l, &ens);

	int logfd = open(l.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (logfd < 0)
		fail_now("open", l.log, 0);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fail_now("signalfd", "", 0);

	int outp[2], errp[2], execp[2], gop[2], usp[2] = {-1, -1};
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(execp, O_CLOEXEC) < 0 ||
	    pipe2(gop, O_CLOEXEC) < 0 || (l.userns && pipe2(usp, O_CLOEXEC) < 0))
		fail_now("pipe2", "", 0);

	unsigned long cflags = 0;
	for (int i = 0; i < l.nns; i++) {
		if (!l.ns[i].path) {
			cflags |= (unsigned long)l.ns[i].type;
		} else if (l.ns[i].type == CLONE_NEWPID) {
			int fd = open(l.ns[i].path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				fail_now("open", l.ns[i].path, 0);
			if (setns(fd, CLONE_NEWPID) < 0)
				fail_now("setns", l.ns[i].path, 0);
			close(fd);
		}
	}

	/* An exec joins the container's pid namespace here: setns(pid) moves only our children. */
	if (l.exec_pid && ens.fd[4] >= 0) {
		if (setns(ens.fd[4], CLONE_NEWPID) < 0)
			fail_now("setns", "pid", 0);
		close(ens.fd[4]);
		ens.fd[4] = -1;
	}

	/* Raw clone with no stack behaves as fork() but takes the namespace flags. */
	pid_t child = (pid_t)syscall(SYS_clone, cflags | SIGCHLD, NULL, NULL, NULL, NULL);
	if (child < 0)
		fail_now("clone", l.rootfs ? l.rootfs : "exec", 0);
	if (child == 0) {
		close(outp[0]);
		close(errp[0]);
		close(execp[0]);
		close(gop[1]);
		if (usp[1] >= 0)
			close(usp[1]);
		close(SL_REPORT_FD);
		close(logfd);
		close(sfd);
		if (attach_fd >= 0)
			close(attach_fd);
		if (inp[1] >= 0)
			close(inp[1]);
		if (l.tty) {
			/* the terminal's input and size are the monitor's to write, not the process's */
			close(ttyp[0]);
			if (l.has_stdin)
				close(SL_STDIN_FD);
			close(SL_CTL_FD);
		}
		struct sl_child_fds fds = {inp[0] >= 0 ? inp[0] : l.has_stdin && !l.tty ? SL_STDIN_FD : 0, outp[1], errp[1], execp[1], gop[0],
					   ttyp[1], usp[0]};
		if (l.inherit_stdio) {
			fds.devnull = std_in;
			fds.out_w = std_out;
			fds.err_w = std_err;
		}
		if (l.exec_pid)
			sl_exec_init(&l, &fds, &ens);
		sl_container_init(&l, &fds);
	}
	close(outp[1]);
	close(errp[1]);
	close(execp[1]);
	close(gop[0]);
	if (l.userns) {
		/* fault injection for the crash test: the monitor dies between the clone and the maps */
		const char *fp = getenv("SWARMLITE_FAILPOINTS");
		if (fp && strstr(fp, "monitor:userns-before-map"))
			raise(SIGKILL);
		map_userns(&l, child, usp);
	}
	/* the process holds stdin now: the agent closing its end is its EOF (a terminal's input
	 * goes through the monitor, which keeps it) */
	if (l.has_stdin && !l.tty)
		close(SL_STDIN_FD);
	if (inp[0] >= 0) {
		close(inp[0]);
		fcntl(inp[1], F_SETFL, fcntl(inp[1], F_GETFL) | O_NONBLOCK);
	}
	/* The monitor outlives the caller: it must not hold the caller's pipes open, or a
	 * reader of sl-runtime's output would wait for the container's exit. */
	if (l.inherit_stdio) {
		int dn = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (dn < 0 || dup2(dn, 0) < 0 || dup2(dn, 1) < 0 || dup2(dn, 2) < 0)
			fail_now("dup2", "/dev/null", child);
		close(dn);
		close(std_in);
		close(std_out);
		close(std_err);
	}
	if (l.tty)
		close(ttyp[1]);
	if (l.exec_pid)
		for (int i = 0; i < SL_EXEC_NS; i++)
			if (ens.fd[i] >= 0)
				close(ens.fd[i]);

	/*
	 * Device rules, before the init joins: v1 lines or the v2 program. Done here, after the
	 * clone, so they overlap with the init's mounts instead of adding to the start.
	 */
	for (int i = 0; i < l.ncgw; i++) {
		int fd = open(l.cgw_path[i], O_WRONLY | O_CLOEXEC);
		ssize_t vl = (ssize_t)strlen(l.cgw_value[i]);
		if (fd < 0 || write(fd, l.cgw_value[i], (size_t)vl) != vl)
			fail_now("write", l.cgw_path[i], child);
		close(fd);
	}
	if (l.bpf) {
		const char *step = "";
		int rc = sl_attach_device_prog(l.bpf_dir, l.bpf, l.bpf_len, NULL, 0, &step);
		if (rc < 0) {
			errno = -rc;
			fail_now(step, l.bpf_dir, child);
		}
	}

	/* cgroup v1: one write per hierarchy, before the container's own code runs. */
	char pidstr[16];
	int pidlen = snprintf(pidstr, sizeof pidstr, "%d", (int)child);
	for (int i = 0; i < l.ncgroups; i++) {
		int fd = open(l.cgroups[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, pidstr, (size_t)pidlen) != pidlen)
			fail_now("write", l.cgroups[i], child);
		close(fd);
	}
	if (write(gop[1], "g", 1) != 1) {
		/* the child died during setup: its reason is waiting in the exec pipe */
	}
	close(gop[1]);

	struct sl_fail cf;
	size_t got = 0;
	/*
	 * An exec whose container was paused after the agent looked is frozen before its exec
	 * and would hold the agent's caller forever: give it SL_EXEC_WAIT_MS, then report and
	 * leave it killed (SIGKILL pends until a thaw; init reaps it then).
	 */
	if (l.exec_pid) {
		struct pollfd ep = {execp[0], POLLIN, 0};
		int n;
		while ((n = poll(&ep, 1, SL_EXEC_WAIT_MS)) < 0 && errno == EINTR)
			;
		if (n == 0) {
			kill(child, SIGKILL);
			struct sl_fail tf;
			sl_set_fail(&tf, "exec", "the process did not start (is the container paused?)", ETIMEDOUT);
			report_fail(&tf, child);
		}
	}
	while (got < sizeof cf) {
		ssize_t r = read(execp[0], (char *)&cf + got, sizeof cf - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(execp[0]);
	int64_t running_at = now_ns();
	/* "hold": the init reports that it waits before its exec (sl-runtime's created state);
	 * from here on it is a running process of the monitor as after an exec. */
	if (got == sizeof cf && cf.errnum == 0 && !strcmp(cf.syscall, "created"))
		got = 0;
	if (got > 0) {
		if (got != sizeof cf)
			sl_set_fail(&cf, "init", "short failure report", EPROTO);
		cf.syscall[sizeof cf.syscall - 1] = 0;
		cf.path[sizeof cf.path - 1] = 0;
		waitpid(child, NULL, 0);
		report_fail(&cf, child);
	}
	/*
	 * EOF with no report: the exec happened. (An init killed during setup also closes the
	 * pipe silently; it then shows up as an exit by that signal, which is what it was.)
	 * The container may already have exited: it is reaped below, not here.
	 */

	char text[512];
	snprintf(text, sizeof text,
		 "{\"pid\":%d,\"monitorPid\":%d,\"pidStart\":%llu,\"monitorStart\":%llu,\"runningAtUs\":%lld}\n",
		 (int)child, (int)getpid(), start_time(child), start_time(getpid()), (long long)(running_at / 1000));
	if (write_state(l.state, "running.json", text) < 0) {
		char path[4096];
		snprintf(path, sizeof path, "%s/running.json", l.state);
		fail_now("write", path, child);
	}

	/* sent before the exec, so it is waiting in the socket now */
	int master = -1;
	if (l.tty) {
		if ((master = sl_tty_recv_master(ttyp[0])) < 0)
			fail_now("recvmsg", "pty master", child);
		close(ttyp[0]);
		fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	}

	struct sl_report r;
	memset(&r, 0, sizeof r);
	r.status = SL_REPORT_RUNNING;
	r.monitor_pid = getpid();
	r.pid = child;
	r.running_at_ns = running_at;
	report(&r);

	/*
	 * Copy output until the container has exited and its pipes (and pty) are drained. With a
	 * terminal the agent's stdin bytes go into the master (non-blocking, one pending chunk:
	 * a process that reads no input must not stop its output from being copied) and its
	 * resize records become TIOCSWINSZ.
	 */
	static char io[65536];
	static char in[4096];
	size_t inlen = 0, inoff = 0;
	unsigned char rec[4];
	size_t reclen = 0;
	/* the attach FIFO's bytes not yet taken as records, and whether stdin has ended */
	static unsigned char abuf[8192];
	size_t alen = 0;
	int in_eof = 0;
	enum { P_OUT, P_ERR, P_SIG, P_PTY, P_IN, P_CTL, P_ATT, P_INW, P_N };
	struct pollfd pf[P_N] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}, {sfd, POLLIN, 0},
				 {master, POLLIN, 0}, {l.tty && l.has_stdin ? SL_STDIN_FD : -1, POLLIN, 0},
				 {l.tty ? SL_CTL_FD : -1, POLLIN, 0}, {attach_fd, POLLIN, 0}, {inp[1], 0, 0}};
	int status = 0, exited = 0;
	int64_t exited_at = 0;
	while (pf[P_OUT].fd >= 0 || pf[P_ERR].fd >= 0 || pf[P_PTY].fd >= 0 || !exited) {
		/* Records in order, one data chunk pending at a time (a resize after input waits for it);
		 * taken before the poll, so a chunk just written makes room for the next at once. */
		while (alen > 0 && inlen <= inoff) {
			struct sl_attach_rec ar;
			long used = sl_attach_next(abuf, alen, &ar);
			if (used == 0)
				break;
			if (used < 0) {
				/* only the agent writes here, in whole records: not records, nothing to resync on */
				alen = 0;
				break;
			}
			int open_in = l.attach == 1 && !in_eof && (l.tty ? master >= 0 : pf[P_INW].fd >= 0);
			if (ar.type == 'r' && master >= 0) {
				unsigned rows = ar.data[0] | (unsigned)ar.data[1] << 8, cols = ar.data[2] | (unsigned)ar.data[3] << 8;
				sl_tty_resize(master, rows, cols); /* out of range: ignored */
			} else if (ar.type == 'd' && open_in) {
				memcpy(in, ar.data, ar.len);
				inoff = 0;
				inlen = ar.len;
			} else if (ar.type == 'e' && l.attach == 1) {
				in_eof = 1; /* a terminal stays open: its EOF is a key (^D), as docker's */
			}
			memmove(abuf, abuf + used, alen - (size_t)used);
			alen -= (size_t)used;
		}
		if (pf[P_INW].fd >= 0 && in_eof && inlen <= inoff) {
			close(pf[P_INW].fd); /* the process's EOF */
			pf[P_INW].fd = -1;
		}
		/* After the exit, leftover writers (processes that joined a shared pid namespace) get 200 ms. */
		int timeout = exited ? 200 : -1;
		if (pf[P_PTY].fd >= 0)
			pf[P_PTY].events = POLLIN | (inlen > inoff ? POLLOUT : 0);
		/* no more input read while a chunk waits for the terminal */
		if (pf[P_IN].fd >= 0)
			pf[P_IN].events = inlen > inoff ? 0 : POLLIN;
		if (pf[P_ATT].fd >= 0)
			pf[P_ATT].events = alen < sizeof abuf ? POLLIN : 0;
		if (pf[P_INW].fd >= 0)
			pf[P_INW].events = inlen > inoff ? POLLOUT : 0;
		int n = poll(pf, P_N, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			ssize_t rd = read(pf[i].fd, io, sizeof io);
			if (rd > 0) {
				write_frame(logfd, (uint8_t)(i + 1), io, (size_t)rd);
			} else if (rd == 0 || (errno != EINTR && errno != EAGAIN)) {
				close(pf[i].fd);
				pf[i].fd = -1;
			}
		}
		if (pf[P_PTY].fd >= 0 && (pf[P_PTY].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t rd = read(master, io, sizeof io);
			if (rd > 0) {
				write_frame(logfd, 1, io, (size_t)rd);
			} else if (rd == 0 || (errno != EINTR && errno != EAGAIN)) {
				/* EIO: every holder of the slave has closed it */
				close(master);
				pf[P_PTY].fd = master = -1;
				if (pf[P_IN].fd >= 0)
					close(pf[P_IN].fd);
				pf[P_IN].fd = -1;
			}
		}
		if (master >= 0 && inlen > inoff && (pf[P_PTY].revents & POLLOUT)) {
			ssize_t w = write(master, in + inoff, inlen - inoff);
			if (w > 0)
				inoff += (size_t)w;
			else if (w < 0 && errno != EINTR && errno != EAGAIN)
				inoff = inlen;
		}
		/* a resize before input that came with it: what the input runs sees the new size */
		if (pf[P_CTL].fd >= 0 && pf[P_CTL].revents) {
			ssize_t rd = read(pf[P_CTL].fd, io, 512);
			if (rd > 0) {
				for (ssize_t k = 0; k < rd; k++) {
					rec[reclen++] = (unsigned char)io[k];
					if (reclen < 4)
						continue;
					reclen = 0;
					uint16_t rows, cols;
					memcpy(&rows, rec, 2);
					memcpy(&cols, rec + 2, 2);
					if (master >= 0)
						sl_tty_resize(master, rows, cols); /* out of range: ignored */
				}
			} else if (rd == 0 || (errno != EINTR && errno != EAGAIN)) {
				close(pf[P_CTL].fd);
				pf[P_CTL].fd = -1;
			}
		}
		if (pf[P_IN].fd >= 0 && pf[P_IN].revents && inlen <= inoff) {
			ssize_t rd = read(pf[P_IN].fd, in, sizeof in);
			if (rd > 0) {
				inoff = 0;
				inlen = (size_t)rd;
				ssize_t w = master >= 0 ? write(master, in, inlen) : (ssize_t)inlen;
				if (w > 0)
					inoff = (size_t)w;
			} else if (rd == 0 || (errno != EINTR && errno != EAGAIN)) {
				close(pf[P_IN].fd);
				pf[P_IN].fd = -1;
			}
		}
		if (pf[P_ATT].fd >= 0 && (pf[P_ATT].revents & POLLIN)) {
			ssize_t rd = read(attach_fd, abuf + alen, sizeof abuf - alen);
			if (rd > 0)
				alen += (size_t)rd;
		}
		if (pf[P_INW].fd >= 0 && inlen > inoff && (pf[P_INW].revents & (POLLOUT | POLLERR))) {
			ssize_t w = write(pf[P_INW].fd, in + inoff, inlen - inoff);
			if (w > 0) {
				inoff += (size_t)w;
			} else if (w < 0 && errno != EINTR && errno != EAGAIN) {
				/* EPIPE: the process closed its stdin; what comes later is dropped */
				inoff = inlen;
				in_eof = 1;
			}
		}
		if (pf[P_INW].fd >= 0 && in_eof && inlen <= inoff) {
			close(pf[P_INW].fd);
			pf[P_INW].fd = -1;
		}
		if (pf[P_SIG].fd >= 0 && pf[P_SIG].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == sizeof si)
				;
			if (!exited && waitpid(child, &status, WNOHANG) == child) {
				exited = 1;
				exited_at = now_ns();
				pf[P_SIG].fd = -1;
				/* no input for a process that is gone; only its output is drained */
				pf[P_IN].fd = pf[P_CTL].fd = pf[P_ATT].fd = -1;
				if (pf[P_INW].fd >= 0)
					close(pf[P_INW].fd);
				pf[P_INW].fd = -1;
			}
		}
	}
	if (!exited) {
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
		exited_at = now_ns();
	}

	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	char sig[40] = "null";
	if (WIFSIGNALED(status)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(status));
		if (abbrev)
			snprintf(sig, sizeof sig, "\"SIG%s\"", abbrev);
		else
			snprintf(sig, sizeof sig, "\"SIG%d\"", WTERMSIG(status));
	}
	/* gone before the exit is: an agent's open of it from now on fails (ENOENT or ENXIO) */
	if (attach_path[0])
		unlink(attach_path);
	snprintf(text, sizeof text, "{\"code\":%d,\"signal\":%s,\"exitedAtUs\":%lld}\n", code, sig,
		 (long long)(exited_at / 1000));
	write_state(l.state, "exit.json", text);
	return 0;
}
