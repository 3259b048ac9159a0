/*
 * Parser of the launch description written by agent/runtime/launch.ts.
 *
 * Format: NUL-terminated tokens. Token 0 is SL_LAUNCH_MAGIC. Then records, each a key
 * followed by a fixed number of value tokens:
 *   state DIR | log PATH | rootfs DIR | rootfs_ro 0|1 | rootfs_prop FLAGS
 *   hostname NAME | cwd DIR | uid N | gid N | group N (repeated)
 *   caps BOUNDING EFFECTIVE PERMITTED INHERITABLE AMBIENT (HEX64 each) | nnp 0|1 | oom N
 *   rlimit RESOURCE SOFT HARD (decimal)
 *   device PATH TYPE MAJOR MINOR MODE UID GID      (TYPE c b p)
 *   seccomp FLAGS HEX      (struct sock_filter[]; decoded in place over the hex)
 *   cgwrite PATH VALUE     (written by the monitor before the init joins its cgroups)
 *   cgbpf DIR HEX          (struct bpf_insn[]: a cgroup v2 device program attached to DIR)
 *   ns TYPE PATH           TYPE in pid net ipc uts mount cgroup user; PATH "" = new namespace
 *                          (user: new only, and with both idmap records)
 *   idmap uid|gid TEXT     the new user namespace's uid_map or gid_map: lines "IN OUT COUNT"
 *   mount DEST TYPE SOURCE FLAGS PFLAGS DATA   (FLAGS, PFLAGS decimal MS_* bits)
 *   masked PATH | readonly PATH | arg S | env K=V | cgroup PROCS_FILE   (repeated, in order)
 *   exec PID START         an exec into the running container PID (START: its start time)
 *   user SPEC              user[:group], resolved inside the container | stdin 0|1
 *   sysctl PATH VALUE      written to /proc/sys/PATH in the container's namespaces (PATH relative, no "..")
 *   hold FIFO              stop before the exec until a byte arrives on FIFO (sl-runtime create/start)
 *   inherit_stdio 0|1      the process's stdio is the monitor's fds 0, 1, 2 (sl-runtime)
 *   chroot 0|1             no mount namespace: mounts under a self-bind of the rootfs, then chroot
 *                          (sl-runtime; only with no "ns mount" and no user namespace)
 *   caps_exact 0|1         a non-root user keeps the listed capability sets (sl-runtime, runc's meaning)
 *   tty ROWS COLS          a pty as stdio (monitor_tty.c), first window size (0 0: unset)
 *   attach 0|1             the FIFO STATE/attach for the agent's stdin (1) and resize records
 * An exec's launch has no rootfs, ns, mount, masked or readonly records: it joins PID's.
 * Unknown keys are an error: a newer agent must not silently lose isolation settings.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"
#include "monitor_proto.h"

static int num(const char *s, int base, unsigned long long max, unsigned long long *v)
{
	char *end;
	if (!*s)
		return -1;
	errno = 0;
	unsigned long long x = strtoull(s, &end, base);
	if (errno || *end || x > max)
		return -1;
	*v = x;
	return 0;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes hex over itself (the bytes are half as long); -1 on odd length or a bad digit. */
static long unhex(char *s)
{
	size_t n = strlen(s);
	if (n % 2)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int h = hexval(s[2 * i]), l = hexval(s[2 * i + 1]);
		if (h < 0 || l < 0)
			return -1;
		s[i] = (char)(h << 4 | l);
	}
	return (long)(n / 2);
}

static int ns_type(const char *s)
{
	static const struct { const char *n; int t; } map[] = {
		{"pid", CLONE_NEWPID}, {"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC},
		{"uts", CLONE_NEWUTS}, {"mount", CLONE_NEWNS}, {"cgroup", CLONE_NEWCGROUP}, {"user", CLONE_NEWUSER},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (!strcmp(map[i].n, s))
			return map[i].t;
	return 0;
}

int sl_parse_launch(char *buf, size_t len, struct sl_launch *l, struct sl_fail *f)
{
	memset(l, 0, sizeof *l);
	if (len == 0 || buf[len - 1] != 0) {
		sl_set_fail(f, "launch", "not NUL-terminated", EINVAL);
		return -1;
	}
	size_t ntok = 0;
	for (size_t i = 0; i < len; i++)
		ntok += buf[i] == 0;
	char **tok = calloc(ntok + 1, sizeof *tok);
	/* Upper bounds: every list is at most ntok long. */
	l->argv = calloc(ntok + 1, sizeof *l->argv);
	l->envp = calloc(ntok + 1, sizeof *l->envp);
	l->mounts = calloc(ntok / 7 + 1, sizeof *l->mounts);
	l->masked = calloc(ntok + 1, sizeof *l->masked);
	l->readonly = calloc(ntok + 1, sizeof *l->readonly);
	l->cgroups = calloc(ntok + 1, sizeof *l->cgroups);
	l->groups = calloc(ntok + 1, sizeof *l->groups);
	l->rlimits = calloc(ntok / 4 + 1, sizeof *l->rlimits);
	l->devices = calloc(ntok / 8 + 1, sizeof *l->devices);
	l->cgw_path = calloc(ntok / 3 + 1, sizeof *l->cgw_path);
	l->cgw_value = calloc(ntok / 3 + 1, sizeof *l->cgw_value);
	l->sysctl_path = calloc(ntok / 3 + 1, sizeof *l->sysctl_path);
	l->sysctl_value = calloc(ntok / 3 + 1, sizeof *l->sysctl_value);
	if (!l->sysctl_path || !l->sysctl_value) {
		sl_set_fail(f, "calloc", "launch", ENOMEM);
		return -1;
	}
	if (!tok || !l->argv || !l->envp || !l->mounts || !l->masked || !l->readonly || !l->cgroups || !l->groups ||
	    !l->rlimits || !l->devices || !l->cgw_path || !l->cgw_value) {
		sl_set_fail(f, "calloc", "launch", ENOMEM);
		return -1;
	}
	size_t n = 0;
	for (char *p = buf; p < buf + len; p += strlen(p) + 1)
		tok[n++] = p;

	if (n == 0 || strcmp(tok[0], SL_LAUNCH_MAGIC)) {
		sl_set_fail(f, "launch", "bad magic", EINVAL);
		return -1;
	}
	l->rootfs_prop = 0;
	l->cwd = "/";
	l->attach = -1;
	for (size_t i = 1; i < n;) {
		const char *k = tok[i++];
		unsigned long long v;
		size_t need = !strcmp(k, "mount")    ? 6
			      : !strcmp(k, "device") ? 7
			      : !strcmp(k, "caps")   ? 5
			      : !strcmp(k, "rlimit") ? 3
			      : !strcmp(k, "ns") || !strcmp(k, "exec") || !strcmp(k, "tty") || !strcmp(k, "seccomp") || !strcmp(k, "cgwrite") || !strcmp(k, "cgbpf") || !strcmp(k, "sysctl") || !strcmp(k, "idmap") ? 2
							   : 1;
		if (i + need > n) {
			sl_set_fail(f, "launch", k, EINVAL);
			return -1;
		}
		char **a = &tok[i];
		i += need;
		if (!strcmp(k, "state"))
			l->state = a[0];
		else if (!strcmp(k, "log"))
			l->log = a[0];
		else if (!strcmp(k, "rootfs"))
			l->rootfs = a[0];
		else if (!strcmp(k, "rootfs_ro"))
			l->rootfs_ro = a[0][0] == '1';
		else if (!strcmp(k, "hostname"))
			l->hostname = a[0];
		else if (!strcmp(k, "cwd"))
			l->cwd = a[0];
		else if (!strcmp(k, "nnp"))
			l->nnp = a[0][0] == '1';
		else if (!strcmp(k, "init"))
			l->init = a[0][0] == '1';
		else if (!strcmp(k, "arg"))
			l->argv[l->argc++] = a[0];
		else if (!strcmp(k, "env"))
			l->envp[l->envc++] = a[0];
		else if (!strcmp(k, "masked"))
			l->masked[l->nmasked++] = a[0];
		else if (!strcmp(k, "readonly"))
			l->readonly[l->nreadonly++] = a[0];
		else if (!strcmp(k, "cgroup"))
			l->cgroups[l->ncgroups++] = a[0];
		else if (!strcmp(k, "user") && a[0][0])
			l->user = a[0];
		else if (!strcmp(k, "stdin"))
			l->has_stdin = a[0][0] == '1';
		else if (!strcmp(k, "hold") && a[0][0] == '/')
			l->hold = a[0];
		else if (!strcmp(k, "inherit_stdio"))
			l->inherit_stdio = a[0][0] == '1';
		else if (!strcmp(k, "chroot"))
			l->chroot = a[0][0] == '1';
		else if (!strcmp(k, "caps_exact"))
			l->caps_exact = a[0][0] == '1';
		else if (!strcmp(k, "attach"))
			l->attach = a[0][0] == '1';
		else if (!strcmp(k, "tty")) {
			unsigned long long rows, cols;
			if (num(a[0], 10, SL_TTY_MAX, &rows) || num(a[1], 10, SL_TTY_MAX, &cols)) {
				sl_set_fail(f, "launch", "tty", EINVAL);
				return -1;
			}
			l->tty = 1;
			l->tty_rows = (unsigned)rows;
			l->tty_cols = (unsigned)cols;
		} else if (!strcmp(k, "exec")) {
			unsigned long long pid, start;
			if (num(a[0], 10, 4194304, &pid) || pid < 2 || num(a[1], 10, ~0ull, &start)) {
				sl_set_fail(f, "launch", "exec", EINVAL);
				return -1;
			}
			l->exec_pid = (pid_t)pid;
			l->exec_start = start;
		}
		else if (!strcmp(k, "rootfs_prop") && !num(a[0], 10, 0xffffffffu, &v))
			l->rootfs_prop = v;
		else if (!strcmp(k, "uid") && !num(a[0], 10, 0xfffffffeu, &v))
			l->uid = (uid_t)v;
		else if (!strcmp(k, "gid") && !num(a[0], 10, 0xfffffffeu, &v))
			l->gid = (gid_t)v;
		else if (!strcmp(k, "group") && !num(a[0], 10, 0xfffffffeu, &v))
			l->groups[l->ngroups++] = (gid_t)v;
		else if (!strcmp(k, "caps")) {
			unsigned long long c[5];
			for (int j = 0; j < 5; j++)
				if (num(a[j], 16, ~0ull, &c[j])) {
					sl_set_fail(f, "launch", "caps", EINVAL);
					return -1;
				}
			l->has_caps = 1;
			l->cap_bounding = c[0];
			l->cap_effective = c[1];
			l->cap_permitted = c[2];
			l->cap_inheritable = c[3];
			l->cap_ambient = c[4];
		} else if (!strcmp(k, "oom") && (a[0][0] == '-' ? !num(a[0] + 1, 10, 1000, &v) : !num(a[0], 10, 1000, &v))) {
			l->has_oom = 1;
			l->oom_score_adj = a[0][0] == '-' ? -(int)v : (int)v;
		} else if (!strcmp(k, "rlimit")) {
			unsigned long long res, soft, hard;
			if (num(a[0], 10, 63, &res) || num(a[1], 10, ~0ull, &soft) || num(a[2], 10, ~0ull, &hard)) {
				sl_set_fail(f, "launch", "rlimit", EINVAL);
				return -1;
			}
			l->rlimits[l->nrlimits++] = (struct sl_rlimit){(int)res, soft, hard};
		} else if (!strcmp(k, "device")) {
			unsigned long long ma, mi, mode, uid, gid;
			if ((strcmp(a[1], "c") && strcmp(a[1], "b") && strcmp(a[1], "p")) || a[0][0] != '/' ||
			    num(a[2], 10, 0xfff, &ma) || num(a[3], 10, 0xfffff, &mi) || num(a[4], 10, 07777, &mode) ||
			    num(a[5], 10, 0xfffffffeu, &uid) || num(a[6], 10, 0xfffffffeu, &gid)) {
				sl_set_fail(f, "launch", a[0], EINVAL);
				return -1;
			}
			l->devices[l->ndevices++] =
				(struct sl_device){a[0], a[1][0], (unsigned)ma, (unsigned)mi, (unsigned)mode, (uid_t)uid, (gid_t)gid};
		} else if (!strcmp(k, "cgwrite") && a[0][0] == '/') {
			l->cgw_path[l->ncgw] = a[0];
			l->cgw_value[l->ncgw++] = a[1];
		} else if (!strcmp(k, "sysctl")) {
			/* relative, no ".." part: the init opens it beneath /proc/sys, this is a second fence */
			if (!a[0][0] || a[0][0] == '/' || !strcmp(a[0], "..") || !strncmp(a[0], "../", 3) || strstr(a[0], "/../") ||
			    (strlen(a[0]) >= 3 && !strcmp(a[0] + strlen(a[0]) - 3, "/.."))) {
				sl_set_fail(f, "launch", "sysctl", EINVAL);
				return -1;
			}
			l->sysctl_path[l->nsysctl] = a[0];
			l->sysctl_value[l->nsysctl++] = a[1];
		} else if (!strcmp(k, "cgbpf") && a[0][0] == '/') {
			long n = unhex(a[1]);
			if (n <= 0 || n % 8) {
				sl_set_fail(f, "launch", "cgbpf", EINVAL);
				return -1;
			}
			l->bpf_dir = a[0];
			l->bpf = (unsigned char *)a[1];
			l->bpf_len = (size_t)n;
		} else if (!strcmp(k, "seccomp")) {
			unsigned long long fl;
			long n = unhex(a[1]);
			/* struct sock_filter is 8 bytes; the kernel takes at most 4096 of them */
			if (num(a[0], 10, 0xffffffffu, &fl) || n <= 0 || n % 8 || n > 4096 * 8) {
				sl_set_fail(f, "launch", "seccomp", EINVAL);
				return -1;
			}
			l->seccomp = (unsigned char *)a[1];
			l->seccomp_len = (size_t)n;
			l->seccomp_flags = (unsigned)fl;
		} else if (!strcmp(k, "idmap") && (!strcmp(a[0], "uid") || !strcmp(a[0], "gid"))) {
			/* digits, spaces and newlines only: the kernel parses the rest (a map file takes
			 * one write of less than a page) */
			size_t ml = strlen(a[1]);
			if (ml == 0 || ml >= 4096 || strspn(a[1], "0123456789 \n") != ml) {
				sl_set_fail(f, "launch", "idmap", EINVAL);
				return -1;
			}
			*(a[0][0] == 'u' ? &l->uid_map : &l->gid_map) = a[1];
		} else if (!strcmp(k, "ns") && ns_type(a[0]) && l->nns < SL_MAX_NS && (ns_type(a[0]) != CLONE_NEWUSER || !a[1][0])) {
			l->ns[l->nns].type = ns_type(a[0]);
			l->ns[l->nns++].path = a[1][0] ? a[1] : NULL;
		} else if (!strcmp(k, "mount")) {
			struct sl_mount *m = &l->mounts[l->nmounts];
			unsigned long long fl, pf;
			if (num(a[3], 10, 0xffffffffu, &fl) || num(a[4], 10, 0xffffffffu, &pf)) {
				sl_set_fail(f, "launch", a[0], EINVAL);
				return -1;
			}
			m->dest = a[0];
			m->type = a[1];
			m->source = a[2];
			m->flags = fl;
			m->pflags = pf;
			m->data = a[5];
			l->nmounts++;
		} else {
			sl_set_fail(f, "launch", k, EINVAL);
			return -1;
		}
	}
	free(tok);
	for (int i = 0; i < l->nns; i++)
		l->userns |= l->ns[i].type == CLONE_NEWUSER;
	if (l->userns != (l->uid_map && l->gid_map)) {
		sl_set_fail(f, "launch", "a user namespace needs uid and gid maps, and maps a user namespace", EINVAL);
		return -1;
	}
	for (int i = 0; l->chroot && i < l->nns; i++) {
		if (l->ns[i].type == CLONE_NEWNS || l->ns[i].type == CLONE_NEWUSER) {
			sl_set_fail(f, "launch", "chroot is for a container without a mount or user namespace", EINVAL);
			return -1;
		}
	}
	if (!l->state || !l->log || (!l->rootfs && !l->exec_pid) || l->argc == 0) {
		sl_set_fail(f, "launch", "missing state, log, rootfs or arg", EINVAL);
		return -1;
	}
	return 0;
}
