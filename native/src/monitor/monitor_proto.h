/*
 * The contract between sl_spawn (src/lib/spawn.c, inside the agent) and sl-monitor.
 *
 * sl_spawn starts sl-monitor with exactly these descriptors:
 *   0,1,2  /dev/null
 *   3      the launch description (a sealed-in-spirit memfd, read with pread from 0)
 *   4      the write end of the report pipe
 *   5      an exec's stdin (read end of a pipe), only when the launch says "stdin 1"
 *   6      a terminal's resize records (read end of a pipe), only with "tty ROWS COLS"
 * The monitor writes ONE struct sl_report to fd 4 (smaller than PIPE_BUF, so the
 * write is atomic) and closes it; EOF without a report means the monitor died.
 *
 * Launch description: NUL-terminated tokens. The first token is SL_LAUNCH_MAGIC; then
 * keys, each followed by a fixed number of value tokens (see monitor_launch.c and
 * agent/runtime/launch.ts, which must agree).
 */
#ifndef SL_MONITOR_PROTO_H
#define SL_MONITOR_PROTO_H

#include <stdint.h>

#define SL_LAUNCH_FD 3
#define SL_REPORT_FD 4
/* An exec with stdin (launch key "stdin 1"): the read end of the pipe the agent writes to. */
#define SL_STDIN_FD 5
/* A terminal's control pipe (launch key "tty"): read end; the agent writes 4-byte records,
 * u16 rows then u16 cols in host order, each one TIOCSWINSZ on the pty master. */
#define SL_CTL_FD 6
#define SL_LAUNCH_MAGIC "swarmlite-launch-2"
#define SL_LAUNCH_MAX (4u << 20)
/* How long an exec may take from its fork to its exec before the monitor gives up. */
#define SL_EXEC_WAIT_MS 10000

#define SL_REPORT_RUNNING 0
#define SL_REPORT_FAILED 1

struct sl_report {
	int32_t status;        /* SL_REPORT_RUNNING or SL_REPORT_FAILED */
	int32_t errnum;        /* errno of the failed step */
	int32_t monitor_pid;
	int32_t pid;           /* container init, host pid namespace */
	int64_t running_at_ns; /* CLOCK_REALTIME when the exec was seen to succeed */
	char syscall[32];      /* failed step: "mount", "pivot_root", "exec", ... */
	char path[512];        /* what it was applied to, may be "" */
};

#endif
