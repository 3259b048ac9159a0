/*
 * `exec -u user[:group]`: names are the container's, so they are looked up in its own
 * /etc/passwd and /etc/group, read by the exec child after it joined the container's mount
 * namespace (its root is the container's: an image's symlinks cannot reach the host's files).
 * The rules are runc's (libcontainer/user GetExecUser):
 *   - a numeric user need not exist (gid 0, home "/" when it does not); a name must;
 *   - a group, given, is a number or a name that must exist; otherwise the user's own gid;
 *   - supplementary groups: every group of /etc/group that lists the user's name.
 * No libc NSS: a static binary must not dlopen the host's modules inside a container.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

/* A whole decimal id below 2^32-1, or -1. */
static long long parse_id(const char *s)
{
	if (!*s || strlen(s) > 10)
		return -1;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	unsigned long long v = strtoull(s, NULL, 10);
	return v >= 0xffffffffull ? -1 : (long long)v;
}

/* Splits a colon-separated line in place into at most n fields; returns how many. */
static int fields(char *line, char **f, int n)
{
	int k = 0;
	f[k++] = line;
	for (char *p = line; *p && k < n; p++)
		if (*p == ':') {
			*p = 0;
			f[k++] = p + 1;
		}
	return k;
}

static void chomp(char *s)
{
	s[strcspn(s, "\r\n")] = 0;
}

int sl_resolve_user(const char *spec, uid_t *uid, gid_t *gid, gid_t *groups, int *ngroups, char *home, size_t homelen,
		    struct sl_fail *f)
{
	char user[256], group[256] = "";
	if (strlen(spec) >= sizeof user) {
		sl_set_fail(f, "user", "name too long", EINVAL);
		return -1;
	}
	snprintf(user, sizeof user, "%s", spec);
	char *colon = strchr(user, ':');
	int has_group = colon != NULL;
	if (colon) {
		*colon = 0;
		snprintf(group, sizeof group, "%s", colon + 1);
	}
	if (!user[0] || (has_group && !group[0])) {
		sl_set_fail(f, "user", spec, EINVAL);
		return -1;
	}
	long long unum = parse_id(user), gnum = has_group ? parse_id(group) : -1;
	int found = 0;
	char name[256] = "";
	*gid = 0;
	snprintf(home, homelen, "/");

	static char line[8192];
	FILE *pw = fopen("/etc/passwd", "re");
	while (pw && fgets(line, sizeof line, pw)) {
		chomp(line);
		char *fl[7];
		if (fields(line, fl, 7) < 7)
			continue;
		long long u = parse_id(fl[2]), g = parse_id(fl[3]);
		if (u < 0 || g < 0)
			continue;
		if (unum >= 0 ? u == unum : !strcmp(fl[0], user)) {
			found = 1;
			unum = u;
			*gid = (gid_t)g;
			snprintf(name, sizeof name, "%s", fl[0]);
			snprintf(home, homelen, "%s", fl[5][0] ? fl[5] : "/");
			break;
		}
	}
	if (pw)
		fclose(pw);
	if (unum < 0 || (!found && parse_id(user) < 0)) {
		sl_set_fail(f, "getpwnam", user, ENOENT);
		return -1;
	}
	*uid = (uid_t)unum;

	int max = *ngroups, n = 0;
	int gfound = gnum >= 0;
	FILE *gr = fopen("/etc/group", "re");
	while (gr && fgets(line, sizeof line, gr)) {
		chomp(line);
		char *fl[4];
		if (fields(line, fl, 4) < 4)
			continue;
		long long g = parse_id(fl[2]);
		if (g < 0)
			continue;
		if (has_group && gnum < 0 && !strcmp(fl[0], group)) {
			gnum = g;
			gfound = 1;
		}
		if (!name[0])
			continue;
		for (char *m = strtok(fl[3], ","); m; m = strtok(NULL, ","))
			if (!strcmp(m, name) && n < max)
				groups[n++] = (gid_t)g;
	}
	if (gr)
		fclose(gr);
	if (has_group) {
		if (!gfound) {
			sl_set_fail(f, "getgrnam", group, ENOENT);
			return -1;
		}
		*gid = (gid_t)gnum;
	}
	*ngroups = n;
	return 0;
}
