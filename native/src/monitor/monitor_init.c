/*
 * The container's init, between clone() and exec(): runs in the freshly cloned child
 * (new pid/mount/uts/ipc/net namespaces as the launch asks), builds the root filesystem,
 * pivots into it, drops privileges and execs the user's command.
 *
 * Any failure is written as a struct sl_fail to the exec pipe, whose write end is
 * O_CLOEXEC: the monitor reading EOF with no data means the exec succeeded. The order
 * follows runc's libcontainer (rootfs_linux.go) so that the same config.json behaves
 * the same under both.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monitor.h"

extern char **environ;

static int exec_fd = -1;

static pid_t init_child;

static void forward(int sig)
{
	if (init_child > 0)
		kill(init_child, sig);
}

/*
 * --init, as docker's tini: pid 1 of the container stays here, confined like the command
 * (root, capabilities, seccomp are already the container's), forwards every signal it can
 * catch to the command, reaps every orphan the namespace hands it, and exits as the command
 * does (128+N for a signal). A pid 1 without handlers ignores SIGTERM, so a plain command
 * that installs none cannot be stopped gracefully, and one that never waits leaves zombies.
 */
static void reaper(void)
{
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	init_child = fork();
	if (init_child < 0)
		sl_die("fork", "init");
	if (init_child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return;
	}
	/* the monitor learns of the exec when every copy of the pipe is closed: the command's closes at exec */
	close(exec_fd);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = forward;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP && sig != SIGCHLD)
			sigaction(sig, &sa, NULL); /* glibc's own real-time signals refuse: fine */
	prctl(PR_SET_NAME, "init", 0, 0, 0);
	sigprocmask(SIG_SETMASK, &old, NULL);
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (p == init_child)
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
}

void sl_set_fail(struct sl_fail *f, const char *syscall, const char *path, int errnum)
{
	memset(f, 0, sizeof *f);
	f->errnum = errnum;
	snprintf(f->syscall, sizeof f->syscall, "%s", syscall);
	snprintf(f->path, sizeof f->path, "%s", path ? path : "");
}

void sl_init_begin(int exec_w)
{
	exec_fd = exec_w;
}

void sl_die(const char *syscall, const char *path)
{
	struct sl_fail f;
	sl_set_fail(&f, syscall, path, errno ? errno : EINVAL);
	ssize_t w = write(exec_fd, &f, sizeof f);
	(void)w;
	_exit(127);
}

#define die sl_die

static void join_path(char *out, size_t n, const char *root, const char *p)
{
	snprintf(out, n, "%s%s%s", root, p[0] == '/' ? "" : "/", p);
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return errno = ENAMETOOLONG, -1;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* The MS_* bits the filesystem holding path already has, so a read-only remount keeps them. */
static unsigned long current_flags(const char *path)
{
	struct statvfs sv;
	unsigned long fl = 0;
	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		fl |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		fl |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		fl |= MS_NOEXEC;
	if (sv.f_flag & ST_RDONLY)
		fl |= MS_RDONLY;
	return fl;
}

#define BIND_REMOUNT_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)

/*
 * Paths inside the rootfs are opened relative to it with RESOLVE_IN_ROOT: an image's
 * symlinks (/var/run -> /run, or a hostile /evil -> /etc) resolve as they would inside
 * the container, so nothing is created or mounted on the host's own tree.
 */
static int root_fd = -1;

static int open_in_root(const char *rel, int flags, mode_t mode)
{
	while (*rel == '/')
		rel++;
	struct open_how how = {
		.flags = (unsigned long long)(flags | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	return (int)syscall(SYS_openat2, root_fd, *rel ? rel : ".", &how, sizeof how);
}

/* mkdir -p of a container path, each level resolved inside the rootfs. */
static int mkdir_in_root(const char *dest)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", dest) >= (int)sizeof buf)
		return errno = ENAMETOOLONG, -1;
	char *p = buf;
	while (*p == '/')
		p++;
	for (char *s = p; *p; s++) {
		if (*s != '/' && *s != 0)
			continue;
		char c = *s;
		*s = 0;
		int fd = open_in_root(p, O_PATH | O_DIRECTORY, 0);
		if (fd < 0 && errno == ENOENT) {
			char *slash = strrchr(p, '/');
			if (slash)
				*slash = 0;
			int pfd = open_in_root(slash ? p : "", O_PATH | O_DIRECTORY, 0);
			if (slash)
				*slash = '/';
			if (pfd < 0)
				return -1;
			int rc = mkdirat(pfd, slash ? slash + 1 : p, 0755);
			close(pfd);
			if (rc < 0 && errno != EEXIST)
				return -1;
			fd = open_in_root(p, O_PATH | O_DIRECTORY, 0);
		}
		if (fd < 0)
			return -1;
		close(fd);
		if (c == 0)
			break;
		*s = c;
	}
	return 0;
}

/* A bind of a file needs a file to mount over: create it (and its parents) if missing. */
static int touch_in_root(const char *dest)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", dest);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (mkdir_in_root(dir) < 0)
			return -1;
	}
	int fd = open_in_root(dest, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		return errno == EEXIST || errno == EISDIR ? 0 : -1;
	close(fd);
	return 0;
}

/* /proc/self/fd/N of the mount point as the container sees it (the topmost mount there). */
static int target_fd(const char *dest, char *path, size_t n)
{
	int fd = open_in_root(dest, O_PATH, 0);
	if (fd >= 0)
		snprintf(path, n, "/proc/self/fd/%d", fd);
	return fd;
}

static void do_mount(const struct sl_launch *l, const struct sl_mount *m)
{
	char target[PATH_MAX], at[64];
	join_path(target, sizeof target, l->rootfs, m->dest); /* for messages */
	int bind = (m->flags & MS_BIND) != 0;
	if (bind) {
		struct stat st;
		if (stat(m->source, &st) < 0)
			die("stat", m->source);
		if ((S_ISDIR(st.st_mode) ? mkdir_in_root(m->dest) : touch_in_root(m->dest)) < 0)
			die("mkdir", target);
	} else if (mkdir_in_root(m->dest) < 0) {
		die("mkdir", target);
	}
	int fd = target_fd(m->dest, at, sizeof at);
	if (fd < 0)
		die("open", target);
	unsigned long flags = bind ? (m->flags & (MS_BIND | MS_REC)) : m->flags;
	if (mount(m->source, at, m->type, flags, m->data[0] ? m->data : NULL) < 0)
		die("mount", target);
	close(fd);
	/* the remounts act on the new mount, so reopen the path on top of it */
	if ((bind && (m->flags & BIND_REMOUNT_FLAGS)) || m->pflags) {
		fd = target_fd(m->dest, at, sizeof at);
		if (fd < 0)
			die("open", target);
		/* A bind mount ignores every flag but MS_REC: ro, nosuid, ... need a remount. */
		if (bind && (m->flags & BIND_REMOUNT_FLAGS)) {
			unsigned long rf = MS_REMOUNT | MS_BIND | (m->flags & BIND_REMOUNT_FLAGS) | current_flags(at);
			if (!(m->flags & MS_RDONLY))
				rf &= ~(unsigned long)MS_RDONLY;
			if (mount(NULL, at, NULL, rf, NULL) < 0)
				die("mount(remount)", target);
		}
		if (m->pflags && mount(NULL, at, NULL, m->pflags, NULL) < 0)
			die("mount(propagation)", target);
		close(fd);
	}
}

static const struct { const char *name; unsigned maj, min; } default_devs[] = {
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

/* Whether b is a (strict) sub-path of a: "/dev/pts" of "/dev", not "/devices" of "/dev". */
static int below(const char *a, const char *b)
{
	size_t n = strlen(a);
	while (n > 1 && a[n - 1] == '/')
		n--;
	return strncmp(a, b, n) == 0 && (b[n] == '/' || (n == 1 && a[0] == '/' && b[1])) ;
}

/* User namespace: the mount points that lie in the rootfs itself (not below an earlier
 * mount), made as the host's root before the switch to the namespace's (see the caller). */
static void premake_mount_points(const struct sl_launch *l)
{
	char target[PATH_MAX];
	for (int i = 0; i < l->nmounts; i++) {
		const struct sl_mount *m = &l->mounts[i];
		int inner = 0;
		for (int j = 0; j < i && !inner; j++)
			inner = below(l->mounts[j].dest, m->dest);
		if (inner)
			continue;
		struct stat st;
		int file = (m->flags & MS_BIND) && stat(m->source, &st) == 0 && !S_ISDIR(st.st_mode);
		join_path(target, sizeof target, l->rootfs, m->dest);
		if ((file ? touch_in_root(m->dest) : mkdir_in_root(m->dest)) < 0)
			die("mkdir", target);
	}
}

/* The devices every container gets, as runc's AllowedDevices; /dev is a fresh tmpfs.
 * Made after pivot_root, so an image's symlinks can only lead inside the container. */
static void make_devices(void)
{
	static const struct { const char *name, *to; } links[] = {
		{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
		{"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"}, {"core", "/proc/kcore"},
	};
	char p[PATH_MAX];
	if (mkdir_p("/dev", 0755) < 0)
		die("mkdir", "/dev");
	mode_t old = umask(0);
	for (size_t i = 0; i < sizeof default_devs / sizeof default_devs[0]; i++) {
		snprintf(p, sizeof p, "/dev/%s", default_devs[i].name);
		if (mknod(p, S_IFCHR | 0666, makedev(default_devs[i].maj, default_devs[i].min)) < 0 && errno != EEXIST)
			die("mknod", p);
	}
	umask(old);
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
		snprintf(p, sizeof p, "/dev/%s", links[i].name);
		if (symlink(links[i].to, p) < 0 && errno != EEXIST)
			die("symlink", p);
	}
}

static void bind_device(const char *host, const char *dest)
{
	char at[64];
	if (touch_in_root(dest) < 0)
		die("mknod(bind target)", dest);
	int fd = target_fd(dest, at, sizeof at);
	if (fd < 0)
		die("open", dest);
	if (mount(host, at, NULL, MS_BIND, NULL) < 0)
		die("mount(bind device)", dest);
	close(fd);
}

/* In a user namespace (before pivot_root): the default nodes and linux.devices are bind
 * mounts of the host's nodes of the same path, as runc makes them there; make_devices then
 * finds them present. A linux.devices entry names a host node by its path (runc's rule). */
static void bind_devices(const struct sl_launch *l)
{
	char host[32], dest[32];
	for (size_t i = 0; i < sizeof default_devs / sizeof default_devs[0]; i++) {
		snprintf(host, sizeof host, "/dev/%s", default_devs[i].name);
		snprintf(dest, sizeof dest, "/dev/%s", default_devs[i].name);
		bind_device(host, dest);
	}
	for (int i = 0; i < l->ndevices; i++) {
		struct stat st;
		const struct sl_device *d = &l->devices[i];
		mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
		/* the host's node must be the device asked for, not whatever has that name */
		if (stat(d->path, &st) < 0)
			die("stat", d->path);
		if ((st.st_mode & S_IFMT) != type || (type != S_IFIFO && st.st_rdev != makedev(d->major, d->minor))) {
			errno = ENODEV;
			die("device", d->path);
		}
		bind_device(d->path, d->path);
	}
}

/* linux.devices: extra nodes (--device), made like the defaults after pivot_root. */
static void make_extra_devices(const struct sl_launch *l)
{
	for (int i = 0; l->userns == 0 && i < l->ndevices; i++) {
		const struct sl_device *d = &l->devices[i];
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%s", d->path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = 0;
			if (mkdir_p(dir, 0755) < 0)
				die("mkdir", dir);
		}
		mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
		/* replaces a default node of the same name, as runc does */
		if (unlink(d->path) < 0 && errno != ENOENT)
			die("unlink", d->path);
		mode_t old = umask(0);
		int rc = mknod(d->path, type | (d->mode & 07777), makedev(d->major, d->minor));
		umask(old);
		if (rc < 0)
			die("mknod", d->path);
		if (chown(d->path, d->uid, d->gid) < 0)
			die("chown", d->path);
	}
}

/* oom_score_adj is inherited: without this a container gets the agent's. */
void sl_set_oom_score_adj(const struct sl_launch *l)
{
	if (!l->has_oom)
		return;
	char v[16];
	int n = snprintf(v, sizeof v, "%d", l->oom_score_adj);
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, v, (size_t)n) != n)
		die("write", "/proc/self/oom_score_adj");
	close(fd);
}

/* While CAP_SYS_RESOURCE is still held: the hard NOFILE limit may be above the agent's. */
void sl_set_rlimits(const struct sl_launch *l)
{
	for (int i = 0; i < l->nrlimits; i++) {
		struct rlimit r = {(rlim_t)l->rlimits[i].soft, (rlim_t)l->rlimits[i].hard}, cur;
		int rc = setrlimit(l->rlimits[i].resource, &r);
		/* A host that withholds CAP_SYS_RESOURCE even from root (some sandboxes) cannot raise
		 * a hard limit: keep the hard limit it has, still apply the (lower) soft one. */
		if (rc < 0 && errno == EPERM && getrlimit(l->rlimits[i].resource, &cur) == 0 && r.rlim_max > cur.rlim_max) {
			r.rlim_max = cur.rlim_max;
			if (r.rlim_cur > r.rlim_max)
				r.rlim_cur = r.rlim_max;
			rc = setrlimit(l->rlimits[i].resource, &r);
		}
		if (rc < 0) {
			char what[32];
			snprintf(what, sizeof what, "resource %d", l->rlimits[i].resource);
			die("setrlimit", what);
		}
	}
}

void sl_load_seccomp(const struct sl_launch *l)
{
	struct sock_fprog prog = {
		.len = (unsigned short)(l->seccomp_len / sizeof(struct sock_filter)),
		.filter = (struct sock_filter *)(void *)l->seccomp,
	};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, l->seccomp_flags, &prog) < 0)
		die("seccomp", "");
}

static void loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		die("socket", "lo");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die("ioctl(SIOCGIFFLAGS)", "lo");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die("ioctl(SIOCSIFFLAGS)", "lo");
	close(s);
}

static void pivot(const char *rootfs)
{
	if (chdir(rootfs) < 0)
		die("chdir", rootfs);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		die("pivot_root", rootfs);
	/* The old root is stacked under "."; keep its unmount from propagating to the host. */
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		die("mount(rslave)", "/");
	if (umount2(".", MNT_DETACH) < 0)
		die("umount2", "/");
	if (chdir("/") < 0)
		die("chdir", "/");
}

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

/*
 * "chroot 1": the container has no mount namespace, so it shares the caller's and every
 * mount made here is one the caller's processes see. Nothing touches "/" (no propagation
 * change, no umount, no pivot_root): the rootfs is bound onto itself, that bind made
 * private (or the config's rootfsPropagation) so what is mounted below it stays in this
 * namespace's copy, and its mount id goes to STATE/chroot.mnt for sl-runtime delete, which
 * detaches it with everything below. The rootfs must not be "/" itself.
 */
static void chroot_prepare(const struct sl_launch *l)
{
	struct stat r, s;
	if (stat(l->rootfs, &r) < 0)
		die("stat", l->rootfs);
	if (stat("/", &s) < 0)
		die("stat", "/");
	if (r.st_dev == s.st_dev && r.st_ino == s.st_ino) {
		errno = EINVAL;
		die("chroot(rootfs is /)", l->rootfs);
	}
	if (mount(l->rootfs, l->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		die("mount(bind)", l->rootfs);
	unsigned long prop = l->rootfs_prop & ~(unsigned long)(MS_SHARED | MS_UNBINDABLE);
	if (mount(NULL, l->rootfs, NULL, prop ? prop : MS_REC | MS_PRIVATE, NULL) < 0)
		die("mount(propagation)", l->rootfs);
	struct statx sx;
	if (statx(AT_FDCWD, l->rootfs, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID))
		die("statx(mnt_id)", l->rootfs);
	char path[PATH_MAX], id[32];
	snprintf(path, sizeof path, "%s/chroot.mnt", l->state);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		die("open", path);
	int n = snprintf(id, sizeof id, "%llu\n", (unsigned long long)sx.stx_mnt_id);
	if (write(fd, id, (size_t)n) != n)
		die("write", path);
	close(fd);
}

static void chroot_into(const char *rootfs)
{
	if (chdir(rootfs) < 0)
		die("chdir", rootfs);
	if (chroot(".") < 0)
		die("chroot", rootfs);
	if (chdir("/") < 0)
		die("chdir", "/");
}

/*
 * --sysctl: the container's /proc (its pid namespace's, mounted above) is what the keys are
 * written through; net.* and the IPC keys act on the writer's namespaces, which are the
 * container's by now. Opened beneath /proc/sys with no symlink followed, so a key can name
 * nothing else; the monitor's checks and the agent's are the first two fences.
 */
static void write_sysctls(const struct sl_launch *l)
{
	if (!l->nsysctl)
		return;
	int dir = open("/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		die("open", "/proc/sys");
	for (int i = 0; i < l->nsysctl; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "/proc/sys/%s", l->sysctl_path[i]);
		struct open_how how = {
			.flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
		};
		int fd = (int)syscall(SYS_openat2, dir, l->sysctl_path[i], &how, sizeof how);
		if (fd < 0)
			die("open", path);
		size_t n = strlen(l->sysctl_value[i]);
		ssize_t w = write(fd, l->sysctl_value[i], n);
		if (w < 0)
			die("write", path);
		if ((size_t)w != n) {
			errno = EIO;
			die("write", path);
		}
		close(fd);
	}
	close(dir);
}

static void mask_paths(const struct sl_launch *l)
{
	for (int i = 0; i < l->nmasked; i++) {
		const char *p = l->masked[i];
		struct stat st;
		if (stat(p, &st) < 0) {
			if (errno == ENOENT)
				continue;
			die("stat", p);
		}
		int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL)
					     : mount("/dev/null", p, NULL, MS_BIND, NULL);
		if (rc < 0)
			die("mount(mask)", p);
	}
	for (int i = 0; i < l->nreadonly; i++) {
		const char *p = l->readonly[i];
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			die("mount(bind)", p);
		}
		if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | current_flags(p), NULL) < 0)
			die("mount(remount,ro)", p);
	}
}

void sl_userns_root(void)
{
	/* From the host's root (unmapped here) to the namespace's: capabilities stay (they are
	 * the namespace's), files made from now on belong to the mapped host ids, and the drop
	 * to a container user below clears them as it would for root. */
	if (setresgid(0, 0, 0) < 0)
		die("setresgid(0 in user namespace)", "");
	if (setresuid(0, 0, 0) < 0)
		die("setresuid(0 in user namespace)", "");
}

void sl_drop_privileges(const struct sl_launch *l)
{
	if (l->has_caps) {
		for (int c = 0; c < 64; c++) {
			if (l->cap_bounding & (1ull << c))
				continue;
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
				if (errno == EINVAL)
					break; /* past the kernel's last capability */
				die("prctl(PR_CAPBSET_DROP)", "");
			}
		}
	}
	if (l->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("prctl(PR_SET_NO_NEW_PRIVS)", "");
	/* Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: load it while we have
	 * it (runc's order). With no_new_privs it waits until just before exec (see below). */
	if (l->seccomp && !l->nnp)
		sl_load_seccomp(l);
	if (setgroups((size_t)l->ngroups, l->groups) < 0)
		die("setgroups", "");
	if (setgid(l->gid) < 0)
		die("setgid", "");
	/* caps_exact: permitted survives the setuid below (effective is restored by capset) */
	int keep = l->has_caps && l->caps_exact && l->uid != 0;
	if (keep && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		die("prctl(PR_SET_KEEPCAPS)", "");
	if (setuid(l->uid) < 0)
		die("setuid", "");
	if (keep && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		die("prctl(PR_SET_KEEPCAPS)", "");
	if (l->has_caps) {
		/* A non-root uid has already lost effective and permitted in setuid(); inheritable
		 * survives setuid, so it is cleared explicitly. Root keeps the listed sets, and so does
		 * any user with caps_exact (sl-runtime: the OCI sets mean what they list, as runc's). */
		int listed = l->uid == 0 || l->caps_exact;
		struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
		struct __user_cap_data_struct d[2];
		for (int i = 0; i < 2; i++) {
			int sh = 32 * i;
			d[i].effective = listed ? (uint32_t)(l->cap_effective >> sh) : 0;
			d[i].permitted = listed ? (uint32_t)(l->cap_permitted >> sh) : 0;
			d[i].inheritable = listed ? (uint32_t)(l->cap_inheritable >> sh) : 0;
		}
		if (syscall(SYS_capset, &h, d) < 0)
			die("capset", "");
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
			die("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", "");
		for (int c = 0; c < 64; c++)
			if ((l->cap_ambient & (1ull << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
				die("prctl(PR_CAP_AMBIENT_RAISE)", "");
	}
}

void sl_wait_go(const struct sl_child_fds *fds)
{
	/* Undo the monitor's signal setup: an ignored disposition would survive exec. */
	sigset_t none;
	sigemptyset(&none);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);

	/* Joining the cgroups is the monitor's job; wait for it before the user's code runs. */
	char go;
	ssize_t r;
	while ((r = read(fds->go_r, &go, 1)) < 0 && errno == EINTR)
		;
	if (r != 1)
		_exit(127); /* the monitor gave up and reports why */
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* execvp's lookup, done before the hold so that a missing command fails create, as runc's. */
static int findable(const char *file)
{
	if (strchr(file, '/'))
		return access(file, X_OK) == 0;
	const char *path = getenv("PATH");
	if (!path)
		path = "/bin:/usr/bin";
	char buf[PATH_MAX];
	for (const char *p = path;; p++) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (snprintf(buf, sizeof buf, "%.*s%s%s", (int)n, p, n ? "/" : "", file) < (int)sizeof buf) {
			struct stat st;
			if (access(buf, X_OK) == 0 && stat(buf, &st) == 0 && S_ISREG(st.st_mode))
				return 1;
		}
		if (!end)
			return 0;
		p = end;
	}
}

/*
 * While held, a terminating signal ends the init (exit 128+sig) as it ends runc's (a Go
 * process, whose runtime handles them). As its pid namespace's init without a handler it
 * would ignore them, and `kill ID TERM` of a created container would do nothing.
 */
static const int held_signals[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM };

static void held_signal(int sig)
{
	_exit(128 + sig);
}

static void held_handlers(void (*h)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = h;
	for (size_t i = 0; i < sizeof held_signals / sizeof held_signals[0]; i++)
		sigaction(held_signals[i], &sa, NULL);
}

/*
 * sl-runtime's created state (runc's exec fifo): everything is set up; tell the monitor
 * (a "created" record on the exec pipe, which it takes as the exec), then wait for start's
 * byte. The exec pipe is closed first: a later failure is the process's exit (127).
 */
static void hold_until_start(const struct sl_launch *l, int hold_fd)
{
	if (!findable(l->argv[0])) {
		errno = ENOENT;
		die("exec", l->argv[0]);
	}
	struct sl_fail f;
	sl_set_fail(&f, "created", "", 0);
	f.errnum = 0;
	ssize_t w = write(exec_fd, &f, sizeof f);
	(void)w;
	close(exec_fd);
	exec_fd = -1;
	char b;
	ssize_t r;
	if (getpid() == 1)
		held_handlers(held_signal);
	while ((r = read(hold_fd, &b, 1)) < 0 && errno == EINTR)
		;
	if (r != 1)
		_exit(127);
	close(hold_fd);
	if (getpid() == 1)
		held_handlers(SIG_DFL);
}

/* Whether `path` names this process's mount namespace or pid 1's (a missing path is left to
 * setns to report). Read before any setns, so "this" is the monitor's. */
static int same_ns(const char *path)
{
	struct stat p, q;
	if (stat(path, &p) < 0)
		return 0;
	for (const char *const *o = (const char *const[]){"/proc/self/ns/mnt", "/proc/1/ns/mnt", NULL}; *o; o++)
		if (stat(*o, &q) == 0 && p.st_dev == q.st_dev && p.st_ino == q.st_ino)
			return 1;
	return 0;
}

void sl_container_init(const struct sl_launch *l, const struct sl_child_fds *fds)
{
	exec_fd = fds->exec_w;
	if (l->userns) {
		/* the monitor writes the id maps (and sets oom_score_adj and rlimits) from outside */
		char b;
		ssize_t r;
		while ((r = read(fds->userns_r, &b, 1)) < 0 && errno == EINTR)
			;
		if (r != 1)
			_exit(127); /* the monitor gave up and reports why */
		close(fds->userns_r);
	} else {
		sl_set_oom_score_adj(l);
	}

	/* Everything below mounts, pivot_roots and detaches "/": in the monitor's own mount
	 * namespace or the host's (pid 1's), that is every process there having its root moved.
	 * Whoever built the launch, go on only in a fresh one or another one named by path. */
	int own_mnt = 0, has_mnt = 0;
	for (int i = 0; i < l->nns; i++)
		if (l->ns[i].type == CLONE_NEWNS) {
			has_mnt = 1;
			own_mnt = l->ns[i].path == NULL || !same_ns(l->ns[i].path);
		}
	/* "chroot 1" is the one way without a mount namespace, and only without one (the
	 * parser refuses it with a mount or user namespace; checked again here) */
	if (l->chroot ? has_mnt || l->userns : !own_mnt) {
		errno = EINVAL;
		die("own mount namespace", l->rootfs); /* the record holds 31 bytes */
	}

	int new_net = 0, new_uts = 0;
	for (int i = 0; i < l->nns; i++) {
		const struct sl_ns *n = &l->ns[i];
		if (!n->path) {
			new_net |= n->type == CLONE_NEWNET;
			new_uts |= n->type == CLONE_NEWUTS;
			continue;
		}
		if (n->type == CLONE_NEWPID)
			continue; /* joined by the monitor before clone: setns(pid) only affects children */
		int fd = open(n->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die("open", n->path);
		if (setns(fd, n->type) < 0)
			die("setns", n->path);
		close(fd);
		new_uts |= n->type == CLONE_NEWUTS;
	}

	/* The pipes belong to the container user so that /dev/stdout can be reopened. An
	 * inherited stdio (sl-runtime) is the caller's: chowned for a non-root user only, as
	 * runc does, and a file the caller cannot give away is no reason to fail. */
	if (!l->inherit_stdio && !l->userns && (fchown(fds->out_w, l->uid, l->gid) < 0 || fchown(fds->err_w, l->uid, l->gid) < 0))
		die("fchown", "stdio pipe");
	if ((l->inherit_stdio || l->userns) && l->uid != 0) {
		int rc = fchown(fds->out_w, l->uid, l->gid) + fchown(fds->err_w, l->uid, l->gid);
		(void)rc;
	}
	if (dup2(fds->devnull, 0) < 0 || dup2(fds->out_w, 1) < 0 || dup2(fds->err_w, 2) < 0)
		die("dup2", "stdio");

	/* shared or unbindable on the namespace's copy of the host's tree would make pivot_root
	 * fail (EINVAL: a shared parent) or the rootfs self-bind (EINVAL: unbindable): those two
	 * go on the container's "/" once it is the root, as runc applies rootfsPropagation. */
	int prop_after = (l->rootfs_prop & (MS_SHARED | MS_UNBINDABLE)) != 0;
	if (l->chroot) {
		chroot_prepare(l);
	} else {
		if (mount(NULL, "/", NULL, l->rootfs_prop && !prop_after ? l->rootfs_prop : MS_REC | MS_PRIVATE, NULL) < 0)
			die("mount(propagation)", "/");
		if (mount(l->rootfs, l->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
			die("mount(bind)", l->rootfs);
	}
	/* The hold FIFO is a host path: open it before pivot_root hides the host's tree.
	 * O_RDWR never blocks on a FIFO, and keeps start's O_WRONLY open from blocking. */
	int hold_fd = -1;
	if (l->hold) {
		struct stat st;
		/* made here, not by the caller: a fresh one, in the caller's fresh state dir */
		if (mkfifo(l->hold, 0600) < 0)
			die("mkfifo", l->hold);
		hold_fd = open(l->hold, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (hold_fd < 0 || fstat(hold_fd, &st) < 0)
			die("open", l->hold);
		if (!S_ISFIFO(st.st_mode)) {
			errno = EINVAL;
			die("open(fifo)", l->hold);
		}
	}
	/* opened after the self-bind, so paths under it reach the mount pivot_root will use */
	root_fd = open(l->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		die("open", l->rootfs);
	/* In a user namespace the host's root ids were enough so far (the owner of the state
	 * dir, the hold FIFO and the rootfs: DAC, no capability). The mounts below are the
	 * namespace's filesystems (tmpfs, devpts...): a file made there needs ids mapped in it
	 * (else EOVERFLOW), so from here on this is the namespace's root, as runc's init is from
	 * its start; a bind source must be reachable by the mapped root, as with runc. The mount
	 * points in the rootfs itself (owned by the host's root, which the namespace's root is
	 * not) are made first, while still the host's root. */
	if (l->userns) {
		premake_mount_points(l);
		sl_userns_root();
	}
	for (int i = 0; i < l->nmounts; i++)
		do_mount(l, &l->mounts[i]);

	/* mknod is refused in a user namespace: the nodes are the host's, bound (runc's way),
	 * while the host's /dev is still reachable */
	if (l->userns)
		bind_devices(l);
	if (new_net)
		loopback_up();
	if (new_uts && l->hostname && l->hostname[0] && sethostname(l->hostname, strlen(l->hostname)) < 0)
		die("sethostname", l->hostname);

	/* chroot: "/" from here on is the rootfs self-bind, so the remounts of "/" below
	 * (propagation, read-only) act on it, not on the caller's root */
	if (l->chroot)
		chroot_into(l->rootfs);
	else
		pivot(l->rootfs);
	if (prop_after && mount(NULL, "/", NULL, l->rootfs_prop, NULL) < 0)
		die("mount(propagation)", "/");
	make_devices();
	make_extra_devices(l);
	write_sysctls(l);
	/* -t: the pty comes from the container's own devpts, mounted and reachable by now */
	if (fds->tty_sock >= 0)
		sl_tty_child(l, fds->tty_sock, l->uid);
	/* Create a missing working directory while still root, as runc does; after pivot_root
	 * an image's symlinks cannot lead out of the container. */
	if (mkdir_p(l->cwd, 0755) < 0)
		die("mkdir", l->cwd);
	mask_paths(l);
	if (l->rootfs_ro && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | current_flags("/"), NULL) < 0)
		die("mount(remount,ro)", "/");

	if (!l->userns)
		sl_set_rlimits(l);
	sl_drop_privileges(l);
	if (chdir(l->cwd) < 0)
		die("chdir", l->cwd);

	sl_wait_go(fds);
	/* execvp searches the PATH of the current environment, so install the container's. */
	environ = l->envp;
	if (l->hold)
		hold_until_start(l, hold_fd);
	if (l->seccomp && l->nnp)
		sl_load_seccomp(l);

	if (l->init)
		reaper(); /* returns in the command's process only */
	execvp(l->argv[0], l->argv);
	die("exec", l->argv[0]);
}
