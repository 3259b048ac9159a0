// The launch description of an exec: a process that joins a running container, read by
// the same sl-monitor as a container's start (native/src/monitor/monitor_exec.c).
//
// What it may do is the container's, taken from the bundle's config.json (the spec the
// container was started with): capabilities, no_new_privs, seccomp, rlimits, oom score,
// user and environment. The exec only adds its command, extra environment, working
// directory and user. Namespaces, root and cgroups are the running container's own.
import { isAbsolute } from 'node:path';
import { CAPABILITIES, compiledSeccomp, LaunchError, LAUNCH_MAGIC, LAUNCH_MAX_BYTES, RLIMITS, ttyTokens } from './launch.js';
import type { OciSpec } from './spec.js';

export interface ExecProcess {
  args: string[];
  /** K=V, over the container's environment (a K already there is replaced). */
  env?: string[];
  /** Absolute, in the container; default the container's working directory. */
  workdir?: string;
  /** user[:group], names or numbers, resolved in the container's /etc/passwd and /etc/group. */
  user?: string;
  stdin?: boolean;
  /** -t: a pty in the container as stdio and controlling terminal, of this first size */
  tty?: { rows: number; cols: number };
}

export interface ExecTarget {
  stateDir: string;
  logPath: string;
  /** The container's init (host pid) and its start time: pid-reuse safe. */
  pid: number;
  pidStart: number;
  cgroupProcs: string[];
  /** sl-runtime exec: the process gets the caller's stdio (the monitor's fds 0, 1, 2). */
  inheritStdio?: boolean;
  /** sl-runtime: a non-root user keeps the listed capability sets (runc's meaning). */
  exactCaps?: boolean;
}

const USER_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63})?$/;

function text(field: string, v: unknown, max: number): string {
  if (typeof v !== 'string') throw new LaunchError(field, 'not a string');
  if (v.includes('\0')) throw new LaunchError(field, 'contains a NUL byte');
  if (Buffer.byteLength(v) > max) throw new LaunchError(field, `longer than ${max} bytes`);
  return v;
}

/** The container's environment with the exec's K=V on top (docker exec -e). */
export function mergeEnv(base: string[], extra: string[]): string[] {
  const key = (e: string) => e.slice(0, e.indexOf('='));
  const over = new Map(extra.map((e) => [key(e), e]));
  return [...base.filter((e) => !over.has(key(e))), ...over.values()];
}

function capMask(field: string, names: unknown): string {
  if (!Array.isArray(names)) throw new LaunchError(field, 'not a list');
  let mask = 0n;
  for (const n of names) {
    const bit = CAPABILITIES[n as string];
    if (bit === undefined) throw new LaunchError(field, `unknown capability ${JSON.stringify(n)}`);
    mask |= 1n << BigInt(bit);
  }
  return mask.toString(16);
}

/** Pure: the container's spec and the exec's process → the launch bytes sl-monitor reads. */
export function encodeExecLaunch(spec: OciSpec, p: ExecProcess, t: ExecTarget): Buffer {
  const tok: string[] = [LAUNCH_MAGIC];
  if (!Array.isArray(p.args) || p.args.length === 0 || !p.args[0]) throw new LaunchError('args', 'no command given');
  if (!Number.isInteger(t.pid) || t.pid < 2) throw new LaunchError('pid', String(t.pid));
  const sp = spec.process;
  if (!sp) throw new LaunchError('process', 'missing in the container\'s config.json');
  tok.push('state', t.stateDir, 'log', t.logPath, 'exec', String(t.pid), String(t.pidStart));
  const cwd = text('workdir', p.workdir || sp.cwd || '/', 4096);
  if (!isAbsolute(cwd)) throw new LaunchError('workdir', `not an absolute path: ${JSON.stringify(cwd)}`);
  tok.push('cwd', cwd);
  // the container's user when none is given; resolved in the container either way (HOME, groups)
  const user = p.user !== undefined ? text('user', p.user, 129) : `${sp.user?.uid ?? 0}:${sp.user?.gid ?? 0}`;
  if (!USER_RE.test(user)) throw new LaunchError('user', `not user[:group]: ${JSON.stringify(user.slice(0, 40))}`);
  tok.push('user', user);
  if (sp.capabilities) {
    const c = sp.capabilities;
    tok.push('caps', ...(['bounding', 'effective', 'permitted', 'inheritable', 'ambient'] as const).map((k) => capMask(`process.capabilities.${k}`, c[k] ?? [])));
  }
  if (sp.noNewPrivileges) tok.push('nnp', '1');
  if (sp.oomScoreAdj !== undefined) tok.push('oom', String(sp.oomScoreAdj));
  for (const r of sp.rlimits ?? []) {
    const res = RLIMITS[r.type];
    if (res === undefined) throw new LaunchError('process.rlimits', `unknown ${JSON.stringify(r.type)}`);
    const v = (x: number) => (x >= 2 ** 64 ? 0xffffffffffffffffn : BigInt(x)).toString();
    tok.push('rlimit', String(res), v(r.soft), v(r.hard));
  }
  if (spec.linux?.seccomp) {
    const c = compiledSeccomp(spec.linux.seccomp);
    tok.push('seccomp', String(c.flags), c.hex);
  }
  p.args.forEach((a, i) => tok.push('arg', text(`args[${i}]`, a, 128 << 10)));
  const extra = (p.env ?? []).map((e, i) => {
    const s = text(`env[${i}]`, e, 128 << 10);
    if (s.indexOf('=') <= 0) throw new LaunchError(`env[${i}]`, `not K=V: ${JSON.stringify(s.slice(0, 40))}`);
    return s;
  });
  for (const e of mergeEnv(sp.env ?? [], extra)) tok.push('env', e);
  if (p.stdin) tok.push('stdin', '1');
  if (t.inheritStdio) tok.push('inherit_stdio', '1');
  if (t.exactCaps) tok.push('caps_exact', '1');
  if (p.tty) tok.push('tty', ...ttyTokens(p.tty));
  t.cgroupProcs.forEach((c, i) => {
    if (!isAbsolute(c)) throw new LaunchError(`cgroupProcs[${i}]`, 'not absolute');
    tok.push('cgroup', c);
  });
  const buf = Buffer.from(tok.join('\0') + '\0');
  if (buf.length > LAUNCH_MAX_BYTES) throw new LaunchError('launch', `${buf.length} bytes, more than ${LAUNCH_MAX_BYTES}`);
  return buf;
}
