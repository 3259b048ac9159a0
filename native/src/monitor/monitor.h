/* sl-monitor internals: the parsed launch description and the pieces that use it. */
#ifndef SL_MONITOR_H
#define SL_MONITOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SL_MAX_NS 8

struct sl_mount {
	const char *dest; /* absolute, inside the container */
	const char *type;
	const char *source;
	const char *data; /* filesystem options that are not MS_* flags, "" if none */
	unsigned long flags;
	unsigned long pflags; /* propagation (MS_PRIVATE, MS_SLAVE, ...) applied after the mount */
};

struct sl_ns {
	int type;         /* CLONE_NEW* */
	const char *path; /* NULL: a new namespace; else setns into this file */
};

struct sl_rlimit {
	int resource;
	uint64_t soft, hard;
};

/* A device node made in the container's /dev after pivot_root (linux.devices). */
struct sl_device {
	const char *path;
	char type; /* 'c', 'b' or 'p' */
	unsigned major, minor;
	unsigned mode;
	uid_t uid;
	gid_t gid;
};

struct sl_launch {
	const char *state, *log, *rootfs, *hostname, *cwd;
	int rootfs_ro;
	unsigned long rootfs_prop;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	int ngroups;
	int has_caps;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	int nnp;
	/* --init: pid 1 is a reaper that forwards signals to the command (run as its child) */
	int init;
	int has_oom;
	int oom_score_adj;
	struct sl_rlimit *rlimits;
	int nrlimits;
	struct sl_device *devices;
	int ndevices;
	/* struct sock_filter[] decoded from hex in place; NULL: no seccomp filter */
	unsigned char *seccomp;
	size_t seccomp_len;
	unsigned seccomp_flags;
	struct sl_ns ns[SL_MAX_NS];
	int nns;
	struct sl_mount *mounts;
	int nmounts;
	const char **masked;
	int nmasked;
	const char **readonly;
	int nreadonly;
	char **argv; /* NULL-terminated */
	int argc;
	char **envp; /* NULL-terminated */
	int envc;
	const char **cgroups;
	int ncgroups;
	/* cgroup files written (in order) after clone, before the init joins: v1 device rules */
	const char **cgw_path, **cgw_value;
	int ncgw;
	/* cgroup v2 device program (struct bpf_insn[]) for cgroup directory bpf_dir; NULL: none */
	const char *bpf_dir;
	unsigned char *bpf;
	size_t bpf_len;
	/* exec into a running container (launch key "exec PID START"): join the namespaces of
	 * PID, whose start time (field 22 of /proc/PID/stat) must be START; 0: a new container */
	pid_t exec_pid;
	unsigned long long exec_start;
	/* "user SPEC": user[:group] (names or numbers) resolved in the container's /etc/passwd
	 * and /etc/group after joining its mount namespace; NULL: uid/gid/group as given */
	const char *user;
	int has_stdin; /* "stdin 1": fd SL_STDIN_FD is the process's stdin, else /dev/null */
	/* --sysctl: files under /proc/sys (relative paths) and their values, written in the
	 * container's namespaces after its /proc is mounted, before /proc/sys is made read-only */
	const char **sysctl_path, **sysctl_value;
	int nsysctl;
	/* "hold FIFO" (sl-runtime create): the init stops right before its exec, reports
	 * "created" and waits for one byte on FIFO (sl-runtime start writes it) */
	const char *hold;
	/* "inherit_stdio 1": the process gets the monitor's own fds 0, 1, 2 (sl-runtime, as runc
	 * passes its stdio through) instead of /dev/null and the log pipes */
	int inherit_stdio;
	/* "chroot 1" (sl-runtime, a config without a mount namespace): no pivot_root and nothing
	 * done to "/": the mounts go under a bind of the rootfs onto itself in the caller's
	 * namespace, then chroot (runc's way without CLONE_NEWNS). The init writes that bind's
	 * mount id to STATE/chroot.mnt, which sl-runtime delete detaches. */
	int chroot;
	/* "caps_exact 1": a non-root user gets the listed capability sets too (runc's OCI meaning,
	 * kept over setuid with PR_SET_KEEPCAPS); without it only root keeps them (docker's) */
	int caps_exact;
	/* "tty ROWS COLS": a pty (monitor_tty.c); fd SL_CTL_FD carries the agent's resize records */
	int tty;
	unsigned tty_rows, tty_cols;
	/* "attach 0|1" (a container's own process with -t or -i): the monitor makes the FIFO
	 * STATE/attach and reads the agent's records from it (monitor_attach.c); 1: its data is
	 * the process's stdin, 0: only resizes count (-t without -i). -1: no attach FIFO */
	int attach;
	/* "idmap uid|gid TEXT" with "ns user": a new user namespace, its uid_map and gid_map
	 * contents (lines "INSIDE OUTSIDE COUNT"), written by the monitor from outside */
	const char *uid_map, *gid_map;
	int userns;
};

/* The largest rows or columns a terminal may be given (the agent refuses more first). */
#define SL_TTY_MAX 4096

/* Where a failure happened, for the one-line error that reaches the agent. */
struct sl_fail {
	int errnum;
	char syscall[32];
	char path[512];
};

/* monitor_launch.c: parses buf in place (buf must stay alive); 0 or -1 with *f set. */
int sl_parse_launch(char *buf, size_t len, struct sl_launch *l, struct sl_fail *f);

/* File descriptors the container init inherits from the monitor. */
struct sl_child_fds {
	int devnull, out_w, err_w;
	int exec_w; /* O_CLOEXEC: closes on a successful exec; failures are written to it */
	int go_r;   /* one byte arrives once the monitor has put us in our cgroups */
	int tty_sock; /* -t: where the child sends the pty master; -1 without a terminal */
	int userns_r; /* a new user namespace: one byte once the monitor wrote its id maps; else -1 */
};

/* monitor_init.c: runs in the cloned child and never returns. */
void sl_container_init(const struct sl_launch *l, const struct sl_child_fds *fds) __attribute__((noreturn));

void sl_set_fail(struct sl_fail *f, const char *syscall, const char *path, int errnum);

/* monitor_init.c: pieces the exec child shares with the container init. sl_init_begin
 * names the exec pipe sl_die reports to; sl_die writes (syscall, path, errno) and exits. */
void sl_init_begin(int exec_w);
void sl_die(const char *syscall, const char *path) __attribute__((noreturn));
void sl_set_oom_score_adj(const struct sl_launch *l);
void sl_set_rlimits(const struct sl_launch *l);
void sl_drop_privileges(const struct sl_launch *l);
/* In a user namespace: become its root (ids 0 are the mapped host ids) before the drop. */
void sl_userns_root(void);
void sl_load_seccomp(const struct sl_launch *l);
/* Restores signal defaults, waits until the monitor has put us in the cgroups, unblocks signals. */
void sl_wait_go(const struct sl_child_fds *fds);

/* The namespaces an exec joins, in the order it joins them (mount after the others: they are
 * opened through the host's /proc; user last: as real root every other setns is allowed, and
 * in the container's user namespace the process's ids are the mapped ones). pid is joined by
 * the monitor, before its fork. */
#define SL_EXEC_NS 7
struct sl_exec_ns {
	int fd[SL_EXEC_NS]; /* -1: the same as the monitor's own, nothing to join */
};
extern const char *const sl_exec_ns_names[SL_EXEC_NS];
extern const int sl_exec_ns_types[SL_EXEC_NS];

/* monitor_exec.c: runs in the forked exec child (already in the container's pid namespace). */
void sl_exec_init(const struct sl_launch *l, const struct sl_child_fds *fds, const struct sl_exec_ns *ns)
	__attribute__((noreturn));

/* monitor_user.c: resolves "user[:group]" in the current root's /etc/passwd and /etc/group.
 * Fills uid, gid, up to *ngroups supplementary groups and home; 0, or -1 with *f set. */
int sl_resolve_user(const char *spec, uid_t *uid, gid_t *gid, gid_t *groups, int *ngroups, char *home, size_t homelen,
		    struct sl_fail *f);

/* monitor_tty.c: in the child (root is the container's, still privileged): a pty from the
 * container's devpts as stdio and controlling terminal, its master sent over sock. */
void sl_tty_child(const struct sl_launch *l, int sock, uid_t uid);
/* monitor_tty.c: in the monitor, the master the child sent (-1 with errno). */
int sl_tty_recv_master(int sock);
int sl_tty_resize(int master, unsigned rows, unsigned cols);

/*
 * monitor_attach.c: the records on a container's attach FIFO. The agent writes whole
 * records of at most PIPE_BUF bytes (one write each, so a write is atomic and two agents,
 * an old one dying and a new one, never interleave inside a record):
 *   [u8 type][u8 0][u16 payload length, little endian][payload]
 *   'd' data for the process's stdin (length 1..SL_ATTACH_DATA_MAX)
 *   'e' end of stdin (length 0)
 *   'r' resize: u16 rows, u16 cols, little endian (length 4)
 */
#define SL_ATTACH_HDR 4
#define SL_ATTACH_DATA_MAX (4096 - SL_ATTACH_HDR)
struct sl_attach_rec {
	char type;
	size_t len;
	const unsigned char *data;
};
/* Takes the first whole record of buf[0..len): its size (header + payload), 0 when more bytes
 * are needed, -1 when the stream is not records (bad type or length: the rest is dropped). */
long sl_attach_next(const unsigned char *buf, size_t len, struct sl_attach_rec *r);

#endif
