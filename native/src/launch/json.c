/*
 * JSON.parse for the warm process's lines (json.h). A hostile peer may send anything up to a
 * line's limit: nesting is followed with one byte a level in a buffer as long as the line (no
 * recursion), and every read is bounded by the line's end.
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define DIGIT(c) ((c) >= '0' && (c) <= '9')

static const char *ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int hex(char c)
{
	return DIGIT(c) ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
}

/* Past a string's closing quote (p at its opening one), or NULL. Bytes >= 0x80 are never an error: node's UTF-8 decoder makes U+FFFD of bad ones. */
static const char *str(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		if (++p >= e)
			return NULL;
		if (*p == 'u') {
			for (int i = 1; i <= 4; i++)
				if (p + i >= e || hex(p[i]) < 0)
					return NULL;
			p += 4;
		} else if (!(*p && strchr("\"\\/bfnrt", *p)))
			return NULL;
	}
	return NULL;
}

static const char *num(const char *p, const char *e)
{
	if (p < e && *p == '-')
		p++;
	if (p < e && *p == '0')
		p++;
	else if (p < e && *p >= '1' && *p <= '9')
		while (p < e && DIGIT(*p))
			p++;
	else
		return NULL;
	if (p < e && *p == '.') {
		if (++p >= e || !DIGIT(*p))
			return NULL;
		while (p < e && DIGIT(*p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		if (++p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || !DIGIT(*p))
			return NULL;
		while (p < e && DIGIT(*p))
			p++;
	}
	return p;
}

/* Past `"key" :` (p at the quote), or NULL. */
static const char *key(const char *p, const char *e)
{
	if (p >= e || *p != '"' || !(p = str(p, e)))
		return NULL;
	p = ws(p, e);
	return p < e && *p == ':' ? p + 1 : NULL;
}

/* Past one value at p (after any space), or NULL; `stack` has room for one byte per byte of the line. */
static const char *value(const char *p, const char *e, char *stack)
{
	size_t depth = 0;
	for (;;) {
		p = ws(p, e);
		if (p >= e)
			return NULL;
		if (*p == '{' || *p == '[') {
			char open = *p;
			p = ws(p + 1, e);
			if (p < e && *p == (open == '{' ? '}' : ']')) {
				p++;
			} else {
				stack[depth++] = open;
				if (open == '{' && !(p = key(p, e)))
					return NULL;
				continue;
			}
		} else if (*p == '"') {
			p = str(p, e);
		} else if (*p == '-' || DIGIT(*p)) {
			p = num(p, e);
		} else {
			static const char *const lit[] = { "true", "false", "null" };
			const char *q = NULL;
			for (int i = 0; i < 3 && !q; i++)
				if ((size_t)(e - p) >= strlen(lit[i]) && !memcmp(p, lit[i], strlen(lit[i])))
					q = p + strlen(lit[i]);
			p = q;
		}
		if (!p)
			return NULL;
		/* close what ends here; after a comma, the next member or element */
		for (;;) {
			if (!depth)
				return p;
			p = ws(p, e);
			if (p >= e)
				return NULL;
			if (*p == (stack[depth - 1] == '{' ? '}' : ']')) {
				depth--, p++;
				continue;
			}
			if (*p != ',')
				return NULL;
			p = ws(p + 1, e);
			if (stack[depth - 1] == '{' && !(p = key(p, e)))
				return NULL;
			break;
		}
	}
}

/* A string's UTF-16 code units, as JSON.parse makes them of the UTF-8 text node decoded (bad bytes: U+FFFD). */
struct units {
	const char *p, *e;
	int pending; /* a low surrogate still to come */
};

static int unit(struct units *t)
{
	if (t->pending >= 0) {
		int u = t->pending;
		t->pending = -1;
		return u;
	}
	if (t->p >= t->e)
		return -1;
	unsigned char c = (unsigned char)*t->p++;
	if (c == '\\') {
		char x = *t->p++;
		switch (x) {
		case 'b': return 8;
		case 'f': return 12;
		case 'n': return 10;
		case 'r': return 13;
		case 't': return 9;
		case 'u': {
			int u = hex(t->p[0]) << 12 | hex(t->p[1]) << 8 | hex(t->p[2]) << 4 | hex(t->p[3]);
			t->p += 4;
			return u;
		}
		default: return (unsigned char)x;
		}
	}
	if (c < 0x80)
		return c;
	/* a maximal bad prefix is one U+FFFD, and what broke it starts the next character (WHATWG, as V8) */
	unsigned n, lo = 0x80, hi = 0xbf, cp;
	if (c >= 0xc2 && c <= 0xdf)
		n = 1, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 2, cp = c & 0xf, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 3, cp = c & 7, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0xfffd;
	for (unsigned k = 0; k < n; k++, lo = 0x80, hi = 0xbf) {
		if (t->p >= t->e || (unsigned char)*t->p < lo || (unsigned char)*t->p > hi)
			return 0xfffd;
		cp = cp << 6 | ((unsigned char)*t->p++ & 0x3f);
	}
	if (cp < 0x10000)
		return (int)cp;
	cp -= 0x10000;
	t->pending = 0xdc00 | (cp & 0x3ff);
	return 0xd800 | (int)(cp >> 10);
}

/* Whether the string at p..e (its quotes) is exactly `s` (ASCII). */
static int is(const char *p, const char *e, const char *s)
{
	struct units t = { p + 1, e - 1, -1 };
	for (int u; (u = unit(&t)) >= 0; s++)
		if (!*s || u != (unsigned char)*s)
			return 0;
	return !*s;
}

static int truthy(const char *v, const char *ve)
{
	if (*v == 't' || *v == '{' || *v == '[')
		return 1;
	if (*v == '"')
		return ve - v > 2;
	if (*v == '-' || DIGIT(*v))
		return strtod(v, NULL) != 0; /* 0, -0.0, 1e-400: all 0 in JavaScript too */
	return 0;
}

static void member(struct frame *f, const char *k, const char *ke, char *v, const char *ve)
{
	struct json_str s = { v + 1, *v == '"' ? (size_t)(ve - v) - 2 : 0, *v == '"' };
	if (is(k, ke, "direct"))
		f->direct = truthy(v, ve);
	else if (is(k, ke, "run"))
		f->run = truthy(v, ve);
	else if (is(k, ke, "o"))
		f->out = s;
	else if (is(k, ke, "e"))
		f->err = s;
	else if (is(k, ke, "kill"))
		f->kill = *v != '"' ? 0 : is(v, ve, "SIGINT") ? SIGINT : is(v, ve, "SIGTERM") ? SIGTERM : 0;
	else if (is(k, ke, "exit")) {
		f->exit = *v == '-' || DIGIT(*v) ? strtod(v, NULL) : NAN;
		f->has_exit = isfinite(f->exit) && f->exit == trunc(f->exit);
	}
}

int json_frame(char *line, size_t len, struct frame *f)
{
	memset(f, 0, sizeof *f);
	char *e = line + len, *stack = malloc(len + 1);
	const char *p = ws(line, e);
	int ok = 0;
	if (!stack)
		return 0;
	if (p < e && *p == '[') {
		ok = (p = value(p, e, stack)) != NULL;
	} else if (p < e && *p == '{') {
		p = ws(p + 1, e);
		if (p < e && *p == '}') {
			p++, ok = 1;
		} else {
			for (const char *k = p, *ke, *v; (ke = key(k, e)); k = ws(p + 1, e)) {
				v = ws(ke, e);
				if (!(p = value(v, e, stack)))
					break;
				member(f, k, str(k, e), (char *)v, p);
				p = ws(p, e);
				if (p < e && *p == '}') {
					p++, ok = 1;
					break;
				}
				if (p >= e || *p != ',')
					break;
			}
		}
	}
	free(stack);
	return ok && ws(p, e) == e;
}

static int b64(unsigned char c)
{
	/* node's table: both alphabets (+/ and -_) */
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (DIGIT(c))
		return c - '0' + 52;
	return c == '+' || c == '-' ? 62 : c == '/' || c == '_' ? 63 : -1;
}

size_t json_base64(struct json_str *s)
{
	/* node decodes each UTF-16 unit's low byte, skips what is not base64, and stops at '=';
	 * a unit takes at least one byte of the text and gives at most 6 bits: in place is safe */
	struct units t = { s->p, s->p + s->len, -1 };
	unsigned acc = 0, bits = 0;
	size_t n = 0;
	for (int u; (u = unit(&t)) >= 0;) {
		int v = b64((unsigned char)u);
		if (v < 0) {
			if ((u & 0xff) == '=')
				break;
			continue;
		}
		acc = (acc << 6 | (unsigned)v) & 0xfff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			s->p[n++] = (char)(acc >> bits);
		}
	}
	return n;
}
