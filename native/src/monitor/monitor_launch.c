/*
 * Parser of the launch description written by agent/runtime/launch.ts.
 *
 * Format: NUL-terminated tokens. Token 0 is SL_LAUNCH_MAGIC. Then records, each a key
 * followed by a fixed number of value tokens:
 *   state DIR | log PATH | rootfs DIR | rootfs_ro 0|1 | rootfs_prop FLAGS
 *   hostname NAME | cwd DIR | uid N | gid N | group N (repeated)
 *   caps HEX64 (bounding = effective = permitted = inheritable) | nnp 0|1
 *   ns TYPE PATH           TYPE in pid net ipc uts mount cgroup; PATH "" = new namespace
 *   mount DEST TYPE SOURCE FLAGS PFLAGS DATA   (FLAGS, PFLAGS decimal MS_* bits)
 *   masked PATH | readonly PATH | arg S | env K=V | cgroup PROCS_FILE   (repeated, in order)
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

static int ns_type(const char *s)
{
	static const struct { const char *n; int t; } map[] = {
		{"pid", CLONE_NEWPID}, {"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC},
		{"uts", CLONE_NEWUTS}, {"mount", CLONE_NEWNS}, {"cgroup", CLONE_NEWCGROUP},
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
	if (!tok || !l->argv || !l->envp || !l->mounts || !l->masked || !l->readonly || !l->cgroups || !l->groups) {
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
	for (size_t i = 1; i < n;) {
		const char *k = tok[i++];
		unsigned long long v;
		size_t need = !strcmp(k, "mount") ? 6 : !strcmp(k, "ns") ? 2 : 1;
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
		else if (!strcmp(k, "rootfs_prop") && !num(a[0], 10, 0xffffffffu, &v))
			l->rootfs_prop = v;
		else if (!strcmp(k, "uid") && !num(a[0], 10, 0xfffffffeu, &v))
			l->uid = (uid_t)v;
		else if (!strcmp(k, "gid") && !num(a[0], 10, 0xfffffffeu, &v))
			l->gid = (gid_t)v;
		else if (!strcmp(k, "group") && !num(a[0], 10, 0xfffffffeu, &v))
			l->groups[l->ngroups++] = (gid_t)v;
		else if (!strcmp(k, "caps") && !num(a[0], 16, ~0ull, &v)) {
			l->has_caps = 1;
			l->caps = v;
		} else if (!strcmp(k, "ns") && ns_type(a[0]) && l->nns < SL_MAX_NS) {
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
	if (!l->state || !l->log || !l->rootfs || l->argc == 0) {
		sl_set_fail(f, "launch", "missing state, log, rootfs or arg", EINVAL);
		return -1;
	}
	return 0;
}
