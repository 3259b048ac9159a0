/*
 * `tsctl exec`: the child sl-monitor forks for a process that joins a running container.
 *
 * The monitor has already joined the container's pid namespace (setns only moves its
 * children) and forked us, so we are a process of the container's pid namespace. Here we
 * join the rest (ipc, uts, net, cgroup, then mount: setns into the mount namespace moves our
 * root and working directory to the container's root, which its init pivot_rooted to), take
 * the container's limits and privileges (rlimits, oom score, capabilities, no_new_privs,
 * seccomp: the launch carries the container's config.json values) and exec. The monitor
 * puts us into the container's cgroups before it lets us go on. Failures reach the monitor
 * through the exec pipe, as the container init's do (monitor_init.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "monitor.h"

extern char **environ;

const char *const sl_exec_ns_names[SL_EXEC_NS] = {"ipc", "uts", "net", "cgroup", "pid", "mnt", "user"};
const int sl_exec_ns_types[SL_EXEC_NS] = {CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWPID, CLONE_NEWNS, CLONE_NEWUSER};

#define MAX_GROUPS 64

void sl_exec_init(const struct sl_launch *launch, const struct sl_child_fds *fds, const struct sl_exec_ns *ns)
{
	sl_init_begin(fds->exec_w);
	struct sl_launch l = *launch;
	/* Through the host's /proc, before the mount namespace changes what /proc is. */
	sl_set_oom_score_adj(&l);

	for (int i = 0; i < SL_EXEC_NS; i++) {
		if (ns->fd[i] < 0 || sl_exec_ns_types[i] == CLONE_NEWPID)
			continue;
		if (setns(ns->fd[i], sl_exec_ns_types[i]) < 0)
			sl_die("setns", sl_exec_ns_names[i]);
		close(ns->fd[i]);
		l.userns |= sl_exec_ns_types[i] == CLONE_NEWUSER;
	}
	/* a container of its own user namespace: the process runs as its mapped ids, never as
	 * the host's root (setns(user) gave capabilities over it only) */
	if (l.userns)
		sl_userns_root();
	if (chdir("/") < 0)
		sl_die("chdir", "/");

	static gid_t groups[MAX_GROUPS];
	char home[1024] = "";
	if (l.user) {
		struct sl_fail f;
		int n = MAX_GROUPS;
		if (sl_resolve_user(l.user, &l.uid, &l.gid, groups, &n, home, sizeof home, &f) < 0) {
			errno = f.errnum;
			sl_die(f.syscall, f.path);
		}
		l.groups = groups;
		l.ngroups = n;
	}

	/* The pipes belong to the process's user, so that /dev/stdout can be reopened. */
	if (!l.inherit_stdio && (fchown(fds->out_w, l.uid, l.gid) < 0 || fchown(fds->err_w, l.uid, l.gid) < 0))
		sl_die("fchown", "stdio pipe");
	if (dup2(fds->devnull, 0) < 0 || dup2(fds->out_w, 1) < 0 || dup2(fds->err_w, 2) < 0)
		sl_die("dup2", "stdio");
	if (fds->tty_sock >= 0)
		sl_tty_child(&l, fds->tty_sock, l.uid);

	sl_set_rlimits(&l);
	sl_drop_privileges(&l);
	if (chdir(l.cwd) < 0)
		sl_die("chdir", l.cwd);

	sl_wait_go(fds);
	if (l.seccomp && l.nnp)
		sl_load_seccomp(&l);

	environ = l.envp;
	/* HOME as runc sets it: the user's home from the container's /etc/passwd, unless given. */
	if (!getenv("HOME") && setenv("HOME", home[0] ? home : "/", 0) < 0)
		sl_die("setenv", "HOME");
	execvp(l.argv[0], l.argv);
	sl_die("exec", l.argv[0]);
}
