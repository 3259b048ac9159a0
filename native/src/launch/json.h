/*
 * One line of the warm tsctl process (tsctl/warm.ts), read as warm() in bin/tsctl.cjs reads it:
 * JSON.parse of the line, then the fields it looks at, with JavaScript's meaning (truthiness,
 * typeof, Number.isInteger, the last of a repeated key, Buffer.from(s, 'base64')).
 */
#ifndef SL_LAUNCH_JSON_H
#define SL_LAUNCH_JSON_H

#include <stddef.h>

/* a JSON string's text between its quotes, still escaped; `is`: the field was a string */
struct json_str {
	char *p;
	size_t len;
	int is;
};

struct frame {
	int direct, run; /* truthy */
	int kill;        /* SIGINT or SIGTERM when the field is exactly that name, else 0 */
	int has_exit;    /* exit is an integer (Number.isInteger) */
	double exit;
	struct json_str out, err; /* o, e */
};

/* Whether line[0..len) (NUL at line[len]) is a JSON object or array; its fields in f. */
int json_frame(char *line, size_t len, struct frame *f);
/* A string field's bytes as Buffer.from(s, 'base64') has them, decoded in place at s->p; their count. */
size_t json_base64(struct json_str *s);

#endif
