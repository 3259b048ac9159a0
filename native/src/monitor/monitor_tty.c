/*
 * -t: the process's terminal. The pty is allocated by the child, inside the container (its
 * root is already the container's, whose /dev/pts is a devpts of its own, newinstance), so
 * the slave is /dev/pts/N of the container as with docker. The child makes it its stdin,
 * stdout, stderr and controlling terminal (setsid + TIOCSCTTY) and hands the master to the
 * monitor over a socketpair (SCM_RIGHTS), as runc's console socket does; the monitor then
 * copies master output into the log and the agent's stdin pipe and resize records into it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <termios.h>
#include <unistd.h>

#include "monitor.h"

#ifndef DEVPTS_SUPER_MAGIC
#define DEVPTS_SUPER_MAGIC 0x1cd1
#endif

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

void sl_tty_child(const struct sl_launch *l, int sock, uid_t uid)
{
	if (setsid() < 0)
		sl_die("setsid", "");
	/*
	 * The devpts instance's own ptmx, not /dev/ptmx: in an exec, the container's root may have
	 * replaced /dev/ptmx (it has CAP_MKNOD by default) and this child is not yet in the
	 * container's device cgroup. Nothing can be made inside a devpts, and the filesystem type
	 * is checked on the open file, so what is opened is a pty multiplexer of a devpts.
	 */
	int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NOFOLLOW);
	if (master < 0)
		sl_die("open", "/dev/pts/ptmx");
	struct statfs sf;
	if (fstatfs(master, &sf) < 0)
		sl_die("fstatfs", "/dev/pts/ptmx");
	if (sf.f_type != DEVPTS_SUPER_MAGIC) {
		errno = EPERM;
		sl_die("open", "/dev/pts/ptmx is not on a devpts");
	}
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		sl_die("ioctl(TIOCSPTLCK)", "/dev/ptmx");
	/* the peer of this master, not a path someone could swap under /dev/pts */
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0) {
		unsigned n;
		char path[32];
		if (ioctl(master, TIOCGPTN, &n) < 0)
			sl_die("ioctl(TIOCGPTN)", "/dev/ptmx");
		snprintf(path, sizeof path, "/dev/pts/%u", n);
		if ((slave = open(path, O_RDWR | O_NOCTTY)) < 0)
			sl_die("open", path);
	}
	struct winsize ws = {.ws_row = (unsigned short)l->tty_rows, .ws_col = (unsigned short)l->tty_cols};
	if (l->tty_rows && l->tty_cols && ioctl(master, TIOCSWINSZ, &ws) < 0)
		sl_die("ioctl(TIOCSWINSZ)", "pty");
	/* as docker: the user's own terminal, group tty (the devpts gid=5), mode 620 */
	if (fchown(slave, uid, 5) < 0 || fchmod(slave, 0620) < 0)
		sl_die("fchown", "pty");
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		sl_die("ioctl(TIOCSCTTY)", "pty");
	if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
		sl_die("dup2", "pty");
	if (slave > 2)
		close(slave);

	char one = 't';
	struct iovec iov = {&one, 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &master, sizeof(int));
	ssize_t w;
	while ((w = sendmsg(sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (w != 1)
		sl_die("sendmsg", "pty master");
	close(master);
	close(sock);
}

int sl_tty_recv_master(int sock)
{
	char one;
	struct iovec iov = {&one, 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	ssize_t r;
	while ((r = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (r != 1)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) {
		errno = EPROTO;
		return -1;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
}

int sl_tty_resize(int master, unsigned rows, unsigned cols)
{
	/* the agent checks the range; this is the last guard before the kernel's unsigned short */
	if (rows == 0 || cols == 0 || rows > SL_TTY_MAX || cols > SL_TTY_MAX) {
		errno = EINVAL;
		return -1;
	}
	struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
	return ioctl(master, TIOCSWINSZ, &ws);
}
