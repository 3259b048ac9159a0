// Starts a container through native/build/sl-monitor (see native/src/lib/spawn.c and
// native/src/monitor/monitor.c). The call runs on a libuv worker thread through koffi's
// async mode: it blocks for the few ms until the container's exec, and several starts
// can be in flight without holding up the event loop.
import koffi from './koffi.js';
import { closeSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SyscallError } from './errors.js';

export interface Spawned {
  pid: number;        // container init, host pid namespace
  monitorPid: number; // its sl-monitor
  runningAt: number;  // ms since the epoch (fractional) when exec succeeded
}

/** The repository root: compiled code runs from dist/native/, sources from native/. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export function nativePaths(): { lib: string; monitor: string } {
  const build = join(repoRoot(), 'native', 'build');
  return { lib: join(build, 'libswarmlite.so'), monitor: join(build, 'sl-monitor') };
}

type SpawnFn = ((...args: unknown[]) => number) & { async: (...args: unknown[]) => void };
let bound: { fn: SpawnFn; exec: SpawnFn; io: SpawnFn; monitor: string } | undefined;

function bind(): { fn: SpawnFn; exec: SpawnFn; io: SpawnFn; monitor: string } {
  if (bound) return bound;
  const paths = nativePaths();
  const lib = koffi.load(paths.lib);
  koffi.struct('sl_result', {
    pid: 'int32',
    monitor_pid: 'int32',
    running_at_ns: 'int64',
    errnum: 'int32',
    syscall: koffi.array('char', 32, 'String'),
    path: koffi.array('char', 512, 'String'),
  });
  const fn = lib.func('int sl_spawn(const char *monitor_path, const uint8_t *launch, size_t launch_len, _Out_ sl_result *out, char *err, int errlen)') as SpawnFn;
  const exec = lib.func('int sl_spawn_exec(const char *monitor_path, const uint8_t *launch, size_t launch_len, int want_stdin, _Out_ sl_result *out, char *err, int errlen, _Out_ int *stdin_fd)') as SpawnFn;
  const io = lib.func('int sl_spawn_io(const char *monitor_path, const uint8_t *launch, size_t launch_len, int want_stdin, int want_tty, _Out_ sl_result *out, char *err, int errlen, _Out_ int *stdin_fd, _Out_ int *ctl_fd)') as SpawnFn;
  bound = { fn, exec, io, monitor: paths.monitor };
  return bound;
}

interface RawResult { pid: number; monitor_pid: number; running_at_ns: number | bigint; errnum: number; syscall: string; path: string }

function nsToMs(ns: number | bigint): number {
  return typeof ns === 'bigint' ? Number(ns / 1000n) / 1000 : ns / 1e6;
}

/**
 * Starts the container the launch description (agent/runtime/launch.ts) describes and
 * resolves once its command has exec'd. Rejects with a SyscallError naming the step that
 * failed, inside the container setup or in the monitor ("exec /bin/nope: ENOENT ...").
 */
export function spawnContainer(launch: Buffer, tty = false): Promise<Spawned> {
  // a terminal's monitor reads its resize pipe: it gets one (closed here: no resizes for a
  // container's terminal yet, so the monitor sees its end at once)
  if (tty) return spawnExec(launch, false, true).then(({ ctlFd, ...s }) => { if (ctlFd !== undefined) closeSync(ctlFd); return s; });
  const { fn, monitor } = bind();
  const out = {} as RawResult;
  const err = Buffer.alloc(640);
  return new Promise((resolve, reject) => {
    fn.async(monitor, launch, launch.length, out, err, err.length, (e: unknown, rc: number) => {
      if (e) return reject(e);
      if (rc < 0) return reject(SyscallError.of(out.syscall || 'sl_spawn', -rc, out.path || undefined));
      resolve({ pid: out.pid, monitorPid: out.monitor_pid, runningAt: nsToMs(out.running_at_ns) });
    });
  });
}

export interface SpawnedExec extends Spawned {
  /** The write end of the process's stdin (O_CLOEXEC): the caller writes and closes it. */
  stdinFd?: number;
  /** -t: the write end of the terminal's resize pipe (4-byte records: u16 rows, u16 cols, host order). */
  ctlFd?: number;
}

/** One resize record for ctlFd (monitor_proto.h, SL_CTL_FD). Pure. */
export function resizeRecord(rows: number, cols: number): Buffer {
  const b = Buffer.alloc(4);
  const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (le) { b.writeUInt16LE(rows, 0); b.writeUInt16LE(cols, 2); } else { b.writeUInt16BE(rows, 0); b.writeUInt16BE(cols, 2); }
  return b;
}

/**
 * Runs a process in a running container through sl-monitor (an exec launch: launch.ts's
 * encodeExecLaunch) and resolves once it has exec'd. With `stdin`, the process reads a pipe
 * whose write end comes back as stdinFd; without, /dev/null.
 */
export function spawnExec(launch: Buffer, stdin: boolean, tty = false): Promise<SpawnedExec> {
  const { io, monitor } = bind();
  const out = {} as RawResult;
  const fd = [-1];
  const ctl = [-1];
  const err = Buffer.alloc(640);
  return new Promise((resolve, reject) => {
    io.async(monitor, launch, launch.length, stdin ? 1 : 0, tty ? 1 : 0, out, err, err.length, fd, ctl, (e: unknown, rc: number) => {
      if (e) return reject(e);
      if (rc < 0) return reject(SyscallError.of(out.syscall || 'sl_spawn_io', -rc, out.path || undefined));
      resolve({ pid: out.pid, monitorPid: out.monitor_pid, runningAt: nsToMs(out.running_at_ns),
        ...(stdin && fd[0]! >= 0 ? { stdinFd: fd[0] } : {}), ...(tty && ctl[0]! >= 0 ? { ctlFd: ctl[0] } : {}) });
    });
  });
}
