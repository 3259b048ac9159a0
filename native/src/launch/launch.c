/*
 * tsctl as a command (/usr/local/bin/tsctl links here): the client of the warm tsctl
 * (tsctl/warm.ts) in C. A call the warm process serves (`run`, `image pull`, `rm`) then costs no
 * node start (~40-60 ms, most of `tsctl run --rm busybox true`): this speaks the same
 * JSON-lines protocol as warm() in bin/tsctl.cjs, to the same socket, after the same checks.
 *
 * Whenever it is not sure it would do exactly what bin/tsctl.cjs does, it does not try: it
 * execs bin/tsctl.cjs (found beside its own real path) with the same arguments, which then
 * runs as if called directly. So it is never wrong, only sometimes not faster: any other
 * command, no socket or a dead one, a directory that is not private, an argument or variable
 * that is not UTF-8, an environment or path whose name the JS would spell otherwise.
 * After the warm process was asked and did not take the call (it declined, sent junk, went
 * away) the launcher is told so (TSCTL_WARM_ASKED=1) and runs the call without asking again,
 * as warm() would.
 *
 * The peer is trusted as much as by the JS client: it is this uid's (the directory is private),
 * but nothing it sends may overflow anything here: a line is at most FRAME_MAX bytes (as in
 * bin/tsctl.cjs), parsed in place, without recursion.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "json.h"

/* the longest line either client accepts from the warm process (bin/tsctl.cjs FRAME_MAX) */
#define FRAME_MAX (16u << 20)
/* as bin/tsctl.cjs: a longer socket path runs the call here (sun_path holds 108) */
#define SOCK_MAX 100

extern char **environ;

static char launcher[PATH_MAX];
static char **args;
static int sock = -1;
static volatile sig_atomic_t forwards; /* {run} frames seen: warm() adds one listener per frame */

/* bin/tsctl.cjs runs the call (`asked`: the warm process had it and did not take it). */
static _Noreturn void fallback(int asked)
{
	if (asked)
		setenv("TSCTL_WARM_ASKED", "1", 1);
	execv(launcher, args);
	fprintf(stderr, "tsctl: cannot run %s: %s\n", launcher, strerror(errno));
	_exit(125);
}

/* A growing byte buffer for the request; an allocation failure just runs the call in node. */
struct sb {
	char *p;
	size_t len, cap;
};

static void put(struct sb *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *p = realloc(b->p, cap);
		if (!p)
			fallback(0);
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}
static void puts_(struct sb *b, const char *s) { put(b, s, strlen(s)); }
static void printf_(struct sb *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	put(b, tmp, (size_t)n);
}

/* A JSON string as JSON.stringify writes it (the input is valid UTF-8: checked before). */
static void put_json(struct sb *b, const char *s, size_t n)
{
	puts_(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			put(b, e, 2);
		} else if (c < 0x20)
			printf_(b, "\\u%04x", c);
		else
			put(b, (const char *)&c, 1);
	}
	puts_(b, "\"");
}

/* Whether s is UTF-8 as node reads it unchanged (else node would put U+FFFD where we cannot). */
static int utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p, n, lo = 0x80, hi = 0xbf;
		if (c < 0x80) { p++; continue; }
		if (c >= 0xc2 && c <= 0xdf) n = 1;
		else if (c >= 0xe0 && c <= 0xef) { n = 2; if (c == 0xe0) lo = 0xa0; if (c == 0xed) hi = 0x9f; }
		else if (c >= 0xf0 && c <= 0xf4) { n = 3; if (c == 0xf0) lo = 0x90; if (c == 0xf4) hi = 0x8f; }
		else return 0;
		p++;
		for (unsigned k = 0; k < n; k++, p++) {
			if (*p < lo || *p > hi)
				return 0;
			lo = 0x80, hi = 0xbf;
		}
	}
	return 1;
}

/* Whether an environment entry's name is one sh keeps ([A-Za-z_][A-Za-z0-9_]*=): dash drops the others. */
static size_t shell_name(const char *e)
{
	size_t i = 0;
	if (!(e[0] == '_' || (e[0] >= 'A' && e[0] <= 'Z') || (e[0] >= 'a' && e[0] <= 'z')))
		return 0;
	for (i = 1; e[i] == '_' || (e[i] >= 'A' && e[i] <= 'Z') || (e[i] >= 'a' && e[i] <= 'z') || (e[i] >= '0' && e[i] <= '9'); i++)
		;
	return e[i] == '=' ? i : 0;
}

/*
 * node's process.env as the launcher's sh line leaves it: names sh keeps, the last of a
 * repeated one (dash's), no NODE_EXTRA_CA_CERTS (unset), and PWD as dash exports it: the
 * inherited one if it is absolute and names ".", else the physical directory.
 */
static void put_env(struct sb *b, const char *cwd)
{
	struct stat a, d;
	const char *pwd = getenv("PWD");
	if (!pwd || pwd[0] != '/' || stat(pwd, &a) || stat(".", &d) || a.st_dev != d.st_dev || a.st_ino != d.st_ino)
		pwd = cwd;
	if (!utf8(pwd))
		fallback(0);
	puts_(b, "{\"PWD\":");
	put_json(b, pwd, strlen(pwd));
	for (char **e = environ; *e; e++) {
		size_t n = shell_name(*e);
		if (!n || (n == 3 && !strncmp(*e, "PWD", 3)) || (n == 19 && !strncmp(*e, "NODE_EXTRA_CA_CERTS", 19)))
			continue;
		int later = 0;
		for (char **f = e + 1; *f && !later; f++)
			later = shell_name(*f) == n && !strncmp(*e, *f, n);
		if (later)
			continue;
		if (!utf8(*e))
			fallback(0);
		puts_(b, ",");
		put_json(b, *e, n);
		puts_(b, ":");
		put_json(b, *e + n + 1, strlen(*e + n + 1));
	}
	puts_(b, "}");
}

/* path.join(base, name) for a base path.join leaves as it is (absolute, no ., .., //, trailing /); else 0. */
static int join(char *out, size_t size, const char *base, const char *name)
{
	size_t n = strlen(base);
	if (base[0] != '/' || strstr(base, "//") || strstr(base, "/./") || strstr(base, "/../") || (n > 1 && base[n - 1] == '/') ||
	    (n >= 2 && !strcmp(base + n - 2, "/.")) || (n >= 3 && !strcmp(base + n - 3, "/..")))
		return 0;
	return snprintf(out, size, "%s/%s", n == 1 ? "" : base, name) < (int)size;
}

/* node as the sh line finds it (PATH, in order, the first executable file), as process.execPath names it. */
static int find_node(char *out)
{
	const char *path = getenv("PATH");
	if (!path || strchr(path, '%')) /* dash's default path and its %func entries: leave those to sh */
		return 0;
	for (const char *p = path;; p++) {
		const char *q = strchrnul(p, ':');
		char cand[PATH_MAX];
		struct stat st;
		int n = q == p ? snprintf(cand, sizeof cand, "node") : snprintf(cand, sizeof cand, "%.*s/node", (int)(q - p), p);
		if (n < (int)sizeof cand && !stat(cand, &st) && S_ISREG(st.st_mode) && !access(cand, X_OK))
			return realpath(cand, out) != NULL;
		if (!*q)
			return 0;
		p = q;
	}
}

/*
 * The warm socket's name, as warmSocket in bin/tsctl.cjs: a hash of what makes a warm process
 * the one this call would start (its bundle and that file's identity, node's binary and its
 * identity, node's flags, the uid). Two FNV-1a-like lanes over the UTF-8 bytes.
 */
static int socket_name(char *out, size_t size, const char *dir, const char *root)
{
	char warm[PATH_MAX], node[PATH_MAX];
	struct stat b, n;
	if (snprintf(warm, sizeof warm, "%s/dist/tsctl-run.cjs", root) >= (int)sizeof warm || stat(warm, &b) || !find_node(node) || stat(node, &n))
		return 0;
	const char *o = getenv("NODE_OPTIONS");
	struct sb id = { 0 };
	put(&id, warm, strlen(warm) + 1);
	printf_(&id, "%llu", (unsigned long long)b.st_ino);
	put(&id, "", 1);
	printf_(&id, "%lld", (long long)b.st_mtim.tv_sec * 1000000000LL + b.st_mtim.tv_nsec);
	put(&id, "", 1);
	printf_(&id, "%lld", (long long)b.st_ctim.tv_sec * 1000000000LL + b.st_ctim.tv_nsec);
	put(&id, "", 1);
	put(&id, node, strlen(node) + 1);
	printf_(&id, "%llu", (unsigned long long)n.st_ino);
	put(&id, "", 1);
	printf_(&id, "%lld", (long long)n.st_size);
	put(&id, "", 1);
	printf_(&id, "%lld", (long long)n.st_mtim.tv_sec * 1000000000LL + n.st_mtim.tv_nsec);
	put(&id, "", 1);
	puts_(&id, o && strstr(o, "--use-bundled-ca") ? "" : "--use-openssl-ca");
	put(&id, "", 1);
	printf_(&id, "%u", (unsigned)getuid());
	uint32_t x = 0x811c9dc5, y = 0x01000193;
	for (size_t i = 0; i < id.len; i++) {
		x = (x ^ (unsigned char)id.p[i]) * 0x01000193u;
		y = (y ^ (unsigned char)id.p[i]) * 0x2c9277b5u;
	}
	free(id.p);
	return snprintf(out, size, "%s/tsctl-%x%x.sock", dir, x, y) < (int)size;
}

/* privateDir in bin/tsctl.cjs: this uid's own directory (no link), in one no one else can swap it out of. */
static int private_dir(const char *dir, const char *base)
{
	struct stat st, up;
	uid_t uid = getuid();
	if (lstat(dir, &st) || !S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 077))
		return 0;
	return !lstat(base, &up) && S_ISDIR(up.st_mode) && (up.st_uid == uid || up.st_uid == 0) &&
	       (!(up.st_mode & 022) || (up.st_mode & S_ISVTX));
}

/* All of a frame's bytes to fd 1 or 2; a failed write ends tsctl as node's unhandled EPIPE does (exit 1). */
static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			dprintf(2, "tsctl: write to fd %d: %s\n", fd, strerror(errno));
			_exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

static void on_signal(int sig)
{
	const char *line = sig == SIGINT ? "{\"sig\":\"SIGINT\"}\n" : "{\"sig\":\"SIGTERM\"}\n";
	int e = errno;
	for (int i = 0; i < forwards; i++)
		if (send(sock, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			break;
	errno = e;
}

/* warm()'s handling of one line; returns 0 for junk. */
static int frame(char *line, size_t len, int *taken)
{
	struct frame f;
	if (!json_frame(line, len, &f))
		return 0;
	if (f.direct && !*taken)
		fallback(1);
	*taken = 1;
	if (f.run) {
		if (!forwards++) {
			struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
			sigemptyset(&sa.sa_mask);
			sigaction(SIGINT, &sa, NULL);
			sigaction(SIGTERM, &sa, NULL);
		}
	} else if (f.out.is || f.err.is) {
		struct json_str *s = f.out.is ? &f.out : &f.err;
		size_t n = json_base64(s);
		write_all(f.out.is ? 1 : 2, s->p, n);
	} else if (f.kill) {
		close(sock);
		signal(f.kill, SIG_DFL);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, f.kill);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		raise(f.kill);
		_exit(128 + f.kill);
	} else if (f.has_exit) {
		/* process.exit(code): a code beyond a safe integer throws there (uncaught: 1); else its low 8 bits */
		if (fabs(f.exit) > 9007199254740991.0) {
			fprintf(stderr, "tsctl: the warm tsctl process sent exit code %g\n", f.exit);
			_exit(1);
		}
		_exit((int)(long long)f.exit & 0xff);
	}
	return 1;
}

int main(int argc, char **argv)
{
	args = argv;
	char exe[PATH_MAX], root[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		fprintf(stderr, "tsctl: cannot find its own path: %s\n", strerror(errno));
		return 125;
	}
	exe[n] = 0;
	/* native/build/tsctl in the checkout: bin/ and dist/ are two levels up */
	strcpy(root, exe);
	for (int i = 0; i < 3; i++) {
		char *s = strrchr(root, '/');
		if (!s)
			return 125;
		*s = 0;
	}
	if (snprintf(launcher, sizeof launcher, "%s/bin/tsctl.cjs", root) >= (int)sizeof launcher)
		return 125;

	/* the calls bin/tsctl.cjs sends to the warm process, and no others */
	int pull = argc > 2 && !strcmp(argv[1], "image") && !strcmp(argv[2], "pull");
	int rm = argc > 1 && !strcmp(argv[1], "rm");
	if (argc < 2 || !(pull || rm || !strcmp(argv[1], "run")))
		fallback(0);
	const char *w = getenv("TSCTL_WARM");
	if (getenv("TSCTL_WARM_SERVE") || getenv("TSCTL_TRACE") || getenv("TSCTL_WARM_ASKED") || (w && !strcmp(w, "0")))
		fallback(0);
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || (pull && !strcmp(argv[i], "--password-stdin")) || !utf8(argv[i]))
			fallback(0);

	char base[PATH_MAX], dir[PATH_MAX], path[PATH_MAX], cwd[PATH_MAX];
	const char *xdg = getenv("XDG_RUNTIME_DIR"), *home = getenv("HOME");
	if (xdg && *xdg) {
		if (snprintf(base, sizeof base, "%s", xdg) >= (int)sizeof base)
			fallback(0);
	} else if (!home || !*home || !join(base, sizeof base, home, ".cache"))
		fallback(0);
	if (!join(dir, sizeof dir, base, "swarmlite") || !socket_name(path, sizeof path, dir, root) || strlen(path) > SOCK_MAX ||
	    !private_dir(dir, base) || !getcwd(cwd, sizeof cwd) || !utf8(cwd) || !utf8(path))
		fallback(0);
	const char *print = getenv("TSCTL_LAUNCH_PRINT_SOCKET"); /* the tests' view of the name (test/cli-launch-c.test.ts) */
	if (print) {
		puts(path);
		return 0;
	}

	/* the dispositions node gives itself at its start: SIGINT/SIGTERM kill until {run}, whatever
	 * the parent ignored, and a closed stdout is EPIPE (tsctl exits 1), not death by SIGPIPE */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof sa))
		fallback(0);

	struct sb req = { 0 };
	puts_(&req, "{\"v\":1,\"argv\":[");
	for (int i = 1; i < argc; i++) {
		if (i > 1)
			puts_(&req, ",");
		put_json(&req, argv[i], strlen(argv[i]));
	}
	puts_(&req, "],\"env\":");
	put_env(&req, cwd);
	puts_(&req, ",\"cwd\":");
	put_json(&req, cwd, strlen(cwd));
	printf_(&req, ",\"tty\":[%s,%s]}\n", isatty(1) ? "true" : "false", isatty(2) ? "true" : "false");
	for (size_t off = 0; off < req.len;) {
		ssize_t k = send(sock, req.p + off, req.len - off, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			fallback(1);
		off += (size_t)k;
	}
	free(req.p);

	/* the replies, a line at a time, each at most FRAME_MAX */
	size_t cap = 1 << 16, len = 0, scanned = 0;
	char *buf = malloc(cap + 1);
	int taken = 0;
	if (!buf)
		fallback(1);
	for (;;) {
		if (len == cap) {
			char *p = cap > FRAME_MAX ? NULL : realloc(buf, cap * 2 + 1);
			if (!p)
				goto junk;
			buf = p;
			cap *= 2;
		}
		ssize_t r = read(sock, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		char *start = buf, *nl;
		while ((nl = memchr(start + scanned, '\n', len - (size_t)(start - buf) - scanned))) {
			*nl = 0;
			if (!frame(start, (size_t)(nl - start), &taken))
				goto junk;
			start = nl + 1;
			scanned = 0;
		}
		len -= (size_t)(start - buf);
		memmove(buf, start, len);
		scanned = len;
		if (len > FRAME_MAX)
			goto junk;
	}
	if (!taken)
		fallback(1);
	fprintf(stderr, "tsctl: the warm tsctl process (%s) went away during the call; %s\n", path,
		pull ? "the image was not recorded (pulling again resumes its layers)"
		     : rm ? "some containers may not be removed (tsctl ps -a)" : "the container may still run (tsctl ps -a)");
	return 125;
junk:
	if (!taken)
		fallback(1);
	fprintf(stderr, "tsctl: the warm tsctl process sent junk\n");
	return 125;
}
