/* The agent's entry to src/common/cgroup_bpf.h (native/cgroup-bpf.ts), for device rules
 * applied outside a container start. */
#include <stdio.h>

#include "../common/cgroup_bpf.h"

int sl_cgroup_device_attach(const char *cgroup_dir, const uint8_t *insns, size_t len, char *log, int loglen,
			    char *step, int steplen)
{
	const char *s = "";
	int rc = sl_attach_device_prog(cgroup_dir, insns, len, log, loglen > 0 ? (unsigned)loglen : 0, &s);
	if (rc < 0)
		snprintf(step, (size_t)steplen, "%s", s);
	return rc;
}
