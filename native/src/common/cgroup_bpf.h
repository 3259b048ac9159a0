/*
 * cgroup v2 device control, shared by libswarmlite.so (src/lib/cgroup_bpf.c, for the agent)
 * and sl-monitor (which attaches on the start path, in parallel with the container's setup):
 * loads a BPF_PROG_TYPE_CGROUP_DEVICE program (raw struct bpf_insn bytes built by
 * agent/cgroups/v2/devices.ts) and attaches it to a cgroup directory with BPF_F_ALLOW_MULTI,
 * as runc and crun do. The attachment holds the program, so both descriptors are closed
 * before returning: the program lives as long as the group.
 */
#ifndef SL_CGROUP_BPF_H
#define SL_CGROUP_BPF_H

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* 0, or -errno with *step naming the call that failed; the verifier's words go to log. */
static inline int sl_attach_device_prog(const char *cgroup_dir, const void *insns, size_t len, char *log,
					unsigned loglen, const char **step)
{
	if (loglen > 0)
		log[0] = 0;
	*step = "program length";
	if (len == 0 || len % sizeof(struct bpf_insn))
		return -EINVAL;
	*step = "open";
	int dir = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -errno;
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	a.insns = (uint64_t)(uintptr_t)insns;
	a.insn_cnt = (uint32_t)(len / sizeof(struct bpf_insn));
	a.license = (uint64_t)(uintptr_t) "Apache";
	a.log_buf = (uint64_t)(uintptr_t)log;
	a.log_size = loglen;
	a.log_level = loglen > 0 ? 1 : 0;
	*step = "bpf(BPF_PROG_LOAD)";
	int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
	if (prog < 0 && errno == ENOSPC && loglen > 0) {
		/* the verifier had more to say than the log holds: load again without a log */
		a.log_buf = 0;
		a.log_size = 0;
		a.log_level = 0;
		prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
	}
	if (prog < 0) {
		int e = errno;
		close(dir);
		return -e;
	}
	memset(&a, 0, sizeof a);
	a.target_fd = (uint32_t)dir;
	a.attach_bpf_fd = (uint32_t)prog;
	a.attach_type = BPF_CGROUP_DEVICE;
	a.attach_flags = BPF_F_ALLOW_MULTI;
	*step = "bpf(BPF_PROG_ATTACH)";
	int rc = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &a, sizeof a);
	int e = errno;
	close(prog);
	close(dir);
	return rc < 0 ? -e : 0;
}

#endif
