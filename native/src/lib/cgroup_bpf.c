/*
 * cgroup v2 device control: loads a BPF_PROG_TYPE_CGROUP_DEVICE program (built by
 * agent/cgroups/v2/devices.ts as raw struct bpf_insn bytes) and attaches it to a cgroup
 * directory with BPF_F_ALLOW_MULTI, as runc and crun do. The attachment holds the program,
 * so both descriptors are closed before returning: the program lives as long as the group.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

/*
 * 0, or -errno with *step naming the call that failed; the verifier's complaint (if any)
 * goes to log (NUL-terminated, may be truncated).
 */
int sl_cgroup_device_attach(const char *cgroup_dir, const uint8_t *insns, size_t len, char *log, int loglen,
			    char *step, int steplen)
{
	if (loglen > 0)
		log[0] = 0;
	if (len == 0 || len % sizeof(struct bpf_insn)) {
		snprintf(step, (size_t)steplen, "program length");
		return -EINVAL;
	}
	int dir = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		int e = errno;
		snprintf(step, (size_t)steplen, "open");
		return -e;
	}
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	a.insns = (uint64_t)(uintptr_t)insns;
	a.insn_cnt = (uint32_t)(len / sizeof(struct bpf_insn));
	a.license = (uint64_t)(uintptr_t) "Apache";
	a.log_buf = (uint64_t)(uintptr_t)log;
	a.log_size = loglen > 0 ? (uint32_t)loglen : 0;
	a.log_level = loglen > 0 ? 1 : 0;
	int prog = (int)sys_bpf(BPF_PROG_LOAD, &a);
	if (prog < 0 && errno == ENOSPC && loglen > 0) {
		/* the log was too small for the verifier's whole story: load again without it */
		a.log_buf = 0;
		a.log_size = 0;
		a.log_level = 0;
		prog = (int)sys_bpf(BPF_PROG_LOAD, &a);
	}
	if (prog < 0) {
		int e = errno;
		close(dir);
		snprintf(step, (size_t)steplen, "bpf(BPF_PROG_LOAD)");
		return -e;
	}
	memset(&a, 0, sizeof a);
	a.target_fd = (uint32_t)dir;
	a.attach_bpf_fd = (uint32_t)prog;
	a.attach_type = BPF_CGROUP_DEVICE;
	a.attach_flags = BPF_F_ALLOW_MULTI;
	int rc = (int)sys_bpf(BPF_PROG_ATTACH, &a);
	int e = errno;
	close(prog);
	close(dir);
	if (rc < 0) {
		snprintf(step, (size_t)steplen, "bpf(BPF_PROG_ATTACH)");
		return -e;
	}
	return 0;
}
