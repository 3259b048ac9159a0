// The launch description: everything sl-monitor needs to start one container, as
// NUL-terminated tokens (native/src/monitor/monitor_launch.c parses it in place).
//
//   "swarmlite-launch-2"  then records: a key token followed by a fixed number of values
//   state DIR | log PATH | rootfs DIR | rootfs_ro 0|1 | rootfs_prop FLAGS
//   hostname NAME | cwd DIR | uid N | gid N | group N... | nnp 0|1 | init 0|1 | oom N
//   caps BOUNDING EFFECTIVE PERMITTED INHERITABLE AMBIENT   (HEX64 each)
//   rlimit RESOURCE SOFT HARD            (decimal; RLIM_INFINITY = 18446744073709551615)
//   device PATH TYPE MAJOR MINOR MODE UID GID   (TYPE c b p; node made in the container)
//   seccomp FLAGS HEX                    (a compiled cBPF program: struct sock_filter[] in hex)
//   cgwrite PATH VALUE | cgbpf DIR HEX    device rules the monitor applies between clone and join
//   ns TYPE PATH                         TYPE: pid net ipc uts mount cgroup user; PATH "" = new (user: new only)
//   idmap uid|gid TEXT                   a new user namespace's uid_map / gid_map ("IN OUT COUNT" lines)
//   mount DEST TYPE SOURCE FLAGS PFLAGS DATA     FLAGS/PFLAGS: decimal MS_* bits
//   masked PATH... | readonly PATH... | arg S... | env K=V... | cgroup PROCS_FILE...
//   sysctl PATH VALUE                    (linux.sysctl; PATH under /proc/sys: net/ipv4/ip_forward)
//   hold FIFO | inherit_stdio 0|1        sl-runtime's created state and passed-through stdio
//   chroot 1                             sl-runtime, a config without a mount namespace: mounts under a
//                                        self-bind of the rootfs in the caller's namespace, then chroot
//   caps_exact 0|1                       sl-runtime: a non-root user keeps the listed capabilities (runc's meaning)
//
// Everything that needs judgement (option strings → MS_* flags, relative root paths,
// capability names → bits) happens here, in pure TypeScript, so the C side stays a
// loop of mount() calls.
import { isAbsolute, resolve } from 'node:path';
import * as F from '../../native/mount-flags.js';
import { compileSeccomp, SeccompError, type CompiledSeccomp } from './seccomp/compile.js';
import { RESOLVED_PROFILES } from './seccomp/default-profile.js';
import type { OciSeccomp } from './seccomp/types.js';
import type { OciMount, OciSpec } from './spec.js';

export const LAUNCH_MAGIC = 'swarmlite-launch-2';
export const LAUNCH_MAX_BYTES = 4 << 20; // SL_LAUNCH_MAX in monitor_proto.h

export class LaunchError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`invalid launch: ${field}: ${reason}`);
    this.name = 'LaunchError';
  }
}

export interface LaunchOptions {
  stateDir: string;
  logPath: string;
  cgroupProcs: string[];
  /** Resolves a relative spec.root.path, as runc does against the bundle. */
  bundleDir?: string;
  /** cgroup files the monitor writes, in order, before the init joins (v1 device rules). */
  cgroupWrites?: { path: string; value: string }[];
  /** A cgroup v2 device program (struct bpf_insn[]) the monitor attaches to dir before the init joins. */
  deviceProgram?: { dir: string; program: Buffer };
  /** sl-runtime create: the init waits before its exec for a byte on this FIFO (start writes it). */
  hold?: string;
  /** sl-runtime: the process's stdio is the monitor's own (the caller's), not the log. */
  inheritStdio?: boolean;
  /** sl-runtime: a non-root user keeps the listed capability sets (runc's meaning; docker's drops them). */
  exactCaps?: boolean;
  /**
   * sl-runtime, a config without a mount namespace (agent/oci/bundle.ts decides): the init
   * mounts under a bind of the rootfs onto itself in the caller's namespace and chroots,
   * never touching "/". The agent's own containers always have a mount namespace.
   */
  chroot?: boolean;
  /**
   * The agent's own containers with -t or -i (not sl-runtime's): the monitor makes the FIFO
   * <state>/attach for stdin (1) and resize (0 and 1) records (native/src/monitor/monitor_attach.c).
   */
  attach?: 0 | 1;
}

export interface LaunchMount { dest: string; type: string; source: string; flags: number; pflags: number; data: string }

/** The decoded form, for tests and debugging; field names follow the keys. */
export interface Launch {
  state: string; log: string; rootfs: string; rootfsReadonly: boolean; rootfsPropagation: number;
  hostname: string; cwd: string; uid: number; gid: number; groups: number[];
  caps?: { bounding: bigint; effective: bigint; permitted: bigint; inheritable: bigint; ambient: bigint };
  noNewPrivileges: boolean; oomScoreAdj?: number; init?: boolean;
  rlimits: { resource: number; soft: bigint; hard: bigint }[];
  devices: { path: string; type: string; major: number; minor: number; mode: number; uid: number; gid: number }[];
  seccomp?: { flags: number; program: Buffer };
  cgroupWrites: { path: string; value: string }[];
  deviceProgram?: { dir: string; program: Buffer };
  namespaces: { type: string; path: string }[];
  mounts: LaunchMount[];
  masked: string[]; readonly: string[]; args: string[]; env: string[]; cgroupProcs: string[];
  /** An exec's (agent/runtime/exec-launch.ts): the container's init to join, user[:group], stdin. */
  exec?: { pid: number; pidStart: number }; user?: string; stdin?: boolean;
  sysctls?: { path: string; value: string }[];
  /** sl-runtime's (agent/oci/): wait on this FIFO before the exec; stdio passed through. */
  hold?: string; inheritStdio?: boolean; exactCaps?: boolean; chroot?: boolean;
  /** -i / -t of the agent's containers: the attach FIFO, with stdin (1) or resizes only (0). */
  attach?: 0 | 1;
  /** -t (native/src/monitor/monitor_tty.c): a pty of this first size. */
  tty?: { rows: number; cols: number };
  /** a new user namespace's uid_map and gid_map texts */
  idmaps?: { uid?: string; gid?: string };
}

/** The largest rows or columns of a terminal (SL_TTY_MAX in monitor.h). */
export const TTY_MAX = 4096;

/** A terminal size as the launch's `tty ROWS COLS`; a LaunchError out of 0..TTY_MAX. */
export function ttyTokens(t: { rows: number; cols: number }): [string, string] {
  for (const [k, v] of Object.entries({ rows: t.rows, cols: t.cols })) {
    if (!Number.isInteger(v) || v < 0 || v > TTY_MAX) throw new LaunchError(`tty.${k}`, `${String(v).slice(0, 20)} is not 0..${TTY_MAX}`);
  }
  return [String(t.rows), String(t.cols)];
}

const FLAG_OPTIONS: Record<string, [set: boolean, flag: number]> = {
  ro: [true, F.MS_RDONLY], rw: [false, F.MS_RDONLY],
  nosuid: [true, F.MS_NOSUID], suid: [false, F.MS_NOSUID],
  nodev: [true, F.MS_NODEV], dev: [false, F.MS_NODEV],
  noexec: [true, F.MS_NOEXEC], exec: [false, F.MS_NOEXEC],
  sync: [true, F.MS_SYNCHRONOUS], async: [false, F.MS_SYNCHRONOUS],
  dirsync: [true, F.MS_DIRSYNC], remount: [true, F.MS_REMOUNT],
  mand: [true, F.MS_MANDLOCK], nomand: [false, F.MS_MANDLOCK],
  atime: [false, F.MS_NOATIME], noatime: [true, F.MS_NOATIME],
  diratime: [false, F.MS_NODIRATIME], nodiratime: [true, F.MS_NODIRATIME],
  bind: [true, F.MS_BIND], rbind: [true, F.MS_BIND | F.MS_REC],
  relatime: [true, F.MS_RELATIME], norelatime: [false, F.MS_RELATIME],
  strictatime: [true, F.MS_STRICTATIME], nostrictatime: [false, F.MS_STRICTATIME],
  defaults: [true, 0],
};

export const PROPAGATION: Record<string, number> = {
  private: F.MS_PRIVATE, rprivate: F.MS_PRIVATE | F.MS_REC,
  slave: F.MS_SLAVE, rslave: F.MS_SLAVE | F.MS_REC,
  shared: F.MS_SHARED, rshared: F.MS_SHARED | F.MS_REC,
  unbindable: F.MS_UNBINDABLE, runbindable: F.MS_UNBINDABLE | F.MS_REC,
};

/** Capability numbers from linux/capability.h. */
export const CAPABILITIES: Record<string, number> = Object.fromEntries([
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
].map((n, i) => [`CAP_${n}`, i]));

/** setrlimit(2) resource numbers (asm-generic/resource.h; the same on x86). */
export const RLIMITS: Record<string, number> = Object.fromEntries([
  'CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE', 'MEMLOCK', 'AS', 'LOCKS', 'SIGPENDING',
  'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME',
].map((n, i) => [`RLIMIT_${n}`, i]));
const RLIM_INFINITY = 0xffffffffffffffffn;

const NS_NAMES: Record<string, string> = { pid: 'pid', network: 'net', ipc: 'ipc', uts: 'uts', mount: 'mount', cgroup: 'cgroup', user: 'user' };

/** The kernel's limit of lines in a uid_map or gid_map. */
const IDMAP_MAX_LINES = 340;

/**
 * linux.uidMappings / gidMappings as the map file's text. As runc: container id 0 must be
 * mapped (the init becomes the namespace's root to set it up), ranges are whole ids.
 */
export function idMapText(field: string, maps: unknown): string {
  if (!Array.isArray(maps) || maps.length === 0) throw new LaunchError(field, 'a user namespace needs at least one mapping');
  if (maps.length > IDMAP_MAX_LINES) throw new LaunchError(field, `${maps.length} mappings, more than ${IDMAP_MAX_LINES}`);
  const lines = maps.map((m, i) => {
    const f = `${field}[${i}]`;
    const o = (m ?? {}) as Record<string, unknown>;
    const id = (k: string, min: number) => {
      const v = o[k];
      if (!Number.isInteger(v) || (v as number) < min || (v as number) > 0xffffffff) throw new LaunchError(`${f}.${k}`, `${String(v).slice(0, 20)} is not an id`);
      return v as number;
    };
    const c = id('containerID', 0), h = id('hostID', 0), n = id('size', 1);
    if (c + n > 0x100000000 || h + n > 0x100000000) throw new LaunchError(f, 'range past 2^32');
    return [c, h, n] as const;
  });
  if (!lines.some(([c, , n]) => c === 0 && n >= 1)) throw new LaunchError(field, 'container id 0 is not mapped');
  return lines.map((l) => l.join(' ')).join('\n') + '\n';
}

/** Splits OCI mount options into MS_* flags, propagation flags and the filesystem's data string. */
export function parseMountOptions(options: string[]): { flags: number; pflags: number; data: string } {
  let flags = 0, pflags = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = FLAG_OPTIONS[o];
    if (f) flags = f[0] ? flags | f[1] : flags & ~f[1];
    else if (o in PROPAGATION) pflags |= PROPAGATION[o];
    else data.push(o);
  }
  return { flags: flags >>> 0, pflags: pflags >>> 0, data: data.join(',') };
}

function text(field: string, v: unknown, max = 4096): string {
  if (typeof v !== 'string') throw new LaunchError(field, 'not a string');
  if (v.includes('\0')) throw new LaunchError(field, 'contains a NUL byte');
  if (Buffer.byteLength(v) > max) throw new LaunchError(field, `longer than ${max} bytes`);
  return v;
}

function absPath(field: string, v: unknown): string {
  const s = text(field, v);
  if (!isAbsolute(s)) throw new LaunchError(field, `not an absolute path: ${JSON.stringify(s)}`);
  return s;
}

function id32(field: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 0xfffffffe) throw new LaunchError(field, `not a uid/gid: ${String(v)}`);
  return v as number;
}

function capMask(field: string, names: string[]): bigint {
  let mask = 0n;
  for (const n of names) {
    const bit = CAPABILITIES[n];
    if (bit === undefined) throw new LaunchError(field, `unknown capability ${JSON.stringify(n)}`);
    mask |= 1n << BigInt(bit);
  }
  return mask;
}

/** A JSON number as rlim_t; JSON cannot hold 2^64-1 exactly, so anything from 2^64 on is "unlimited". */
function rlimValue(field: string, v: unknown): bigint {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new LaunchError(field, `not a non-negative integer: ${String(v)}`);
  const b = BigInt(v);
  return b >= RLIM_INFINITY ? RLIM_INFINITY : b;
}

/**
 * Compiling Docker's profile takes a few hundred microseconds; every container with the
 * same capabilities has the same profile, so the program is built once and kept.
 */
const seccompCache = new Map<string, CompiledSeccomp & { hex: string }>();
/** defaultSeccomp's (deeply frozen) profiles are looked up by identity first: no serialising per start. */
const byIdentity = new WeakMap<OciSeccomp, CompiledSeccomp & { hex: string }>();
export function compiledSeccomp(s: OciSeccomp): CompiledSeccomp & { hex: string } {
  const known = byIdentity.get(s);
  if (known) return known;
  const key = JSON.stringify(s);
  let c = seccompCache.get(key);
  if (!c) {
    try {
      const p = compileSeccomp(s);
      c = { ...p, hex: p.program.toString('hex') };
    } catch (e) {
      if (e instanceof SeccompError) throw new LaunchError(`linux.seccomp.${e.field}`, e.reason);
      throw e;
    }
    if (seccompCache.size >= 16) seccompCache.delete(seccompCache.keys().next().value!);
    seccompCache.set(key, c);
  }
  if (RESOLVED_PROFILES.has(s)) byIdentity.set(s, c);
  return c;
}

function mountRecord(i: number, m: OciMount): string[] {
  const f = `mounts[${i}]`;
  const dest = absPath(`${f}.destination`, m.destination);
  const opts = (m.options ?? []).map((o, j) => text(`${f}.options[${j}]`, o));
  let { flags, pflags, data } = parseMountOptions(opts);
  const type = text(`${f}.type`, m.type ?? (flags & F.MS_BIND ? 'none' : ''), 64);
  if (type === 'bind') flags |= F.MS_BIND; // runc accepts type "bind" without a bind option
  const source = text(`${f}.source`, m.source ?? type);
  if (flags & F.MS_BIND && !isAbsolute(source)) throw new LaunchError(`${f}.source`, `bind source not absolute: ${JSON.stringify(source)}`);
  if (!type && !(flags & F.MS_BIND)) throw new LaunchError(`${f}.type`, 'missing');
  return ['mount', dest, flags & F.MS_BIND ? 'none' : type, source, String(flags >>> 0), String(pflags >>> 0), data];
}

export function encodeLaunch(spec: OciSpec, opts: LaunchOptions): Buffer {
  const t: string[] = [LAUNCH_MAGIC];
  const p = spec.process;
  if (!p) throw new LaunchError('process', 'missing');
  if (!Array.isArray(p.args) || p.args.length === 0 || !p.args[0]) throw new LaunchError('process.args', 'empty');

  let root = text('root.path', spec.root?.path);
  if (!isAbsolute(root)) {
    if (!opts.bundleDir) throw new LaunchError('root.path', 'relative and no bundle directory given');
    root = resolve(absPath('bundleDir', opts.bundleDir), root);
  }
  t.push('state', absPath('stateDir', opts.stateDir), 'log', absPath('logPath', opts.logPath), 'rootfs', root);
  t.push('rootfs_ro', spec.root.readonly ? '1' : '0');
  const prop = spec.linux?.rootfsPropagation;
  if (prop) {
    if (!(prop in PROPAGATION)) throw new LaunchError('linux.rootfsPropagation', `unknown ${JSON.stringify(prop)}`);
    t.push('rootfs_prop', String(PROPAGATION[prop]));
  }
  if (spec.hostname !== undefined) {
    const h = text('hostname', spec.hostname, 64);
    t.push('hostname', h);
  }
  t.push('cwd', absPath('process.cwd', p.cwd || '/'));
  t.push('uid', String(id32('process.user.uid', p.user?.uid ?? 0)), 'gid', String(id32('process.user.gid', p.user?.gid ?? 0)));
  (p.user?.additionalGids ?? []).forEach((g, i) => t.push('group', String(id32(`process.user.additionalGids[${i}]`, g))));
  if (p.capabilities) {
    const c = p.capabilities;
    const sets = (['bounding', 'effective', 'permitted', 'inheritable', 'ambient'] as const).map((k) => {
      const v = c[k] ?? [];
      if (!Array.isArray(v)) throw new LaunchError(`process.capabilities.${k}`, 'not a list');
      return capMask(`process.capabilities.${k}`, v);
    });
    t.push('caps', ...sets.map((m) => m.toString(16)));
  }
  if (p.noNewPrivileges) t.push('nnp', '1');
  if (p.init) t.push('init', '1');
  if (p.terminal) t.push('tty', ...ttyTokens({ rows: p.consoleSize?.height ?? 0, cols: p.consoleSize?.width ?? 0 }));
  if (p.oomScoreAdj !== undefined) {
    if (!Number.isInteger(p.oomScoreAdj) || p.oomScoreAdj < -1000 || p.oomScoreAdj > 1000) throw new LaunchError('process.oomScoreAdj', `${String(p.oomScoreAdj)} not in -1000..1000`);
    t.push('oom', String(p.oomScoreAdj));
  }
  const rlSeen = new Set<string>();
  for (const [i, r] of (p.rlimits ?? []).entries()) {
    const f = `process.rlimits[${i}]`;
    const res = RLIMITS[r?.type];
    if (res === undefined) throw new LaunchError(`${f}.type`, `unknown ${JSON.stringify(r?.type)}`);
    if (rlSeen.has(r.type)) throw new LaunchError(`${f}.type`, `duplicate ${r.type}`);
    rlSeen.add(r.type);
    const soft = rlimValue(`${f}.soft`, r.soft), hard = rlimValue(`${f}.hard`, r.hard);
    if (soft > hard) throw new LaunchError(f, `soft ${soft} above hard ${hard}`);
    t.push('rlimit', String(res), soft.toString(), hard.toString());
  }
  for (const [i, d] of (spec.linux?.devices ?? []).entries()) {
    const f = `linux.devices[${i}]`;
    const path = absPath(`${f}.path`, d.path);
    if (path.split('/').includes('..')) throw new LaunchError(`${f}.path`, 'contains ".."');
    const type = d.type === 'u' ? 'c' : d.type;
    if (type !== 'c' && type !== 'b' && type !== 'p') throw new LaunchError(`${f}.type`, `unknown ${JSON.stringify(d.type)}`);
    const int = (k: string, v: unknown, max: number, dflt: number) => {
      if (v === undefined) return dflt;
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > max) throw new LaunchError(`${f}.${k}`, String(v));
      return v as number;
    };
    t.push('device', path, type, String(int('major', d.major, 0xfff, 0)), String(int('minor', d.minor, 0xfffff, 0)),
      String(int('fileMode', d.fileMode, 0o7777, 0o666)), String(int('uid', d.uid, 0xfffffffe, 0)), String(int('gid', d.gid, 0xfffffffe, 0)));
  }
  if (spec.linux?.seccomp) {
    const c = compiledSeccomp(spec.linux.seccomp);
    t.push('seccomp', String(c.flags), c.hex);
  }

  const seen = new Set<string>();
  for (const [i, ns] of (spec.linux?.namespaces ?? []).entries()) {
    const name = NS_NAMES[ns.type];
    if (!name) throw new LaunchError(`linux.namespaces[${i}].type`, `unsupported ${JSON.stringify(ns.type)}`);
    if (seen.has(name)) throw new LaunchError(`linux.namespaces[${i}].type`, `duplicate ${ns.type}`);
    seen.add(name);
    if (name === 'user' && ns.path) throw new LaunchError(`linux.namespaces[${i}].path`, 'joining a user namespace is not supported (a new one with mappings is)');
    t.push('ns', name, ns.path ? absPath(`linux.namespaces[${i}].path`, ns.path) : '');
  }
  if (seen.has('user')) {
    t.push('idmap', 'uid', idMapText('linux.uidMappings', spec.linux?.uidMappings));
    t.push('idmap', 'gid', idMapText('linux.gidMappings', spec.linux?.gidMappings));
  } else if (spec.linux?.uidMappings?.length || spec.linux?.gidMappings?.length) {
    throw new LaunchError('linux.uidMappings', 'mappings without a new user namespace');
  }
  for (const [k, v] of Object.entries(spec.linux?.sysctl ?? {})) t.push('sysctl', sysctlPath(k), text(`linux.sysctl.${k}`, v, 4096));
  (spec.mounts ?? []).forEach((m, i) => t.push(...mountRecord(i, m)));
  (spec.linux?.maskedPaths ?? []).forEach((m, i) => t.push('masked', absPath(`linux.maskedPaths[${i}]`, m)));
  (spec.linux?.readonlyPaths ?? []).forEach((m, i) => t.push('readonly', absPath(`linux.readonlyPaths[${i}]`, m)));
  p.args.forEach((a, i) => t.push('arg', text(`process.args[${i}]`, a, 128 << 10)));
  (p.env ?? []).forEach((e, i) => {
    const s = text(`process.env[${i}]`, e, 128 << 10);
    if (s.indexOf('=') <= 0) throw new LaunchError(`process.env[${i}]`, `not K=V: ${JSON.stringify(s.slice(0, 40))}`);
    t.push('env', s);
  });
  (opts.cgroupWrites ?? []).forEach((w, i) => t.push('cgwrite', absPath(`cgroupWrites[${i}].path`, w.path), text(`cgroupWrites[${i}].value`, w.value, 256)));
  if (opts.deviceProgram) {
    const p = opts.deviceProgram.program;
    if (p.length === 0 || p.length % 8) throw new LaunchError('deviceProgram', `${p.length} bytes is not a whole number of instructions`);
    t.push('cgbpf', absPath('deviceProgram.dir', opts.deviceProgram.dir), p.toString('hex'));
  }
  opts.cgroupProcs.forEach((c, i) => t.push('cgroup', absPath(`cgroupProcs[${i}]`, c)));
  if (opts.hold !== undefined) t.push('hold', absPath('hold', opts.hold));
  if (opts.inheritStdio) t.push('inherit_stdio', '1');
  if (opts.exactCaps) t.push('caps_exact', '1');
  if (opts.chroot) {
    if ((spec.linux?.namespaces ?? []).some((n) => n.type === 'mount' || n.type === 'user')) throw new LaunchError('chroot', 'only for a container without a mount or user namespace');
    t.push('chroot', '1');
  }
  if (opts.attach !== undefined) t.push('attach', String(opts.attach));

  const buf = Buffer.from(t.join('\0') + '\0');
  if (buf.length > LAUNCH_MAX_BYTES) throw new LaunchError('launch', `${buf.length} bytes, more than ${LAUNCH_MAX_BYTES}`);
  return buf;
}

/**
 * A linux.sysctl key as its file under /proc/sys: dots are slashes (runc's rule); words of
 * letters, digits, _ and - only, so no key is absolute, empty in a part, or "..".
 */
export function sysctlPath(key: string): string {
  if (typeof key !== 'string' || key.length > 256 || !/^[A-Za-z0-9_-]+([./][A-Za-z0-9_-]+)*$/.test(key)) {
    throw new LaunchError(`linux.sysctl.${String(key).slice(0, 64)}`, 'not a sysctl name (words separated by dots)');
  }
  return key.replaceAll('.', '/');
}

const ARITY: Record<string, number> = { mount: 6, ns: 2, caps: 5, rlimit: 3, device: 7, seccomp: 2, cgwrite: 2, cgbpf: 2, exec: 2, sysctl: 2, tty: 2, idmap: 2 };

/** Inverse of encodeLaunch (tests, debugging); throws LaunchError on anything the C side would reject. */
export function decodeLaunch(buf: Buffer): Launch {
  if (buf.length === 0 || buf[buf.length - 1] !== 0) throw new LaunchError('launch', 'not NUL-terminated');
  const tok = buf.subarray(0, buf.length - 1).toString().split('\0');
  if (tok[0] !== LAUNCH_MAGIC) throw new LaunchError('launch', 'bad magic');
  const l: Launch = {
    state: '', log: '', rootfs: '', rootfsReadonly: false, rootfsPropagation: 0, hostname: '', cwd: '/', uid: 0, gid: 0,
    groups: [], noNewPrivileges: false, rlimits: [], devices: [], cgroupWrites: [], namespaces: [], mounts: [], masked: [], readonly: [], args: [], env: [], cgroupProcs: [],
  };
  for (let i = 1; i < tok.length;) {
    const k = tok[i++];
    const n = ARITY[k] ?? 1;
    if (i + n > tok.length) throw new LaunchError(k, 'truncated');
    const a = tok.slice(i, i + n);
    i += n;
    switch (k) {
      case 'state': l.state = a[0]; break;
      case 'log': l.log = a[0]; break;
      case 'rootfs': l.rootfs = a[0]; break;
      case 'rootfs_ro': l.rootfsReadonly = a[0] === '1'; break;
      case 'rootfs_prop': l.rootfsPropagation = Number(a[0]); break;
      case 'hostname': l.hostname = a[0]; break;
      case 'cwd': l.cwd = a[0]; break;
      case 'uid': l.uid = Number(a[0]); break;
      case 'gid': l.gid = Number(a[0]); break;
      case 'group': l.groups.push(Number(a[0])); break;
      case 'caps': {
        const [bounding, effective, permitted, inheritable, ambient] = a.map((x) => BigInt(`0x${x}`));
        l.caps = { bounding: bounding!, effective: effective!, permitted: permitted!, inheritable: inheritable!, ambient: ambient! };
        break;
      }
      case 'nnp': l.noNewPrivileges = a[0] === '1'; break;
      case 'init': l.init = a[0] === '1'; break;
      case 'oom': l.oomScoreAdj = Number(a[0]); break;
      case 'rlimit': l.rlimits.push({ resource: Number(a[0]), soft: BigInt(a[1]!), hard: BigInt(a[2]!) }); break;
      case 'device': l.devices.push({ path: a[0]!, type: a[1]!, major: Number(a[2]), minor: Number(a[3]), mode: Number(a[4]), uid: Number(a[5]), gid: Number(a[6]) }); break;
      case 'seccomp': l.seccomp = { flags: Number(a[0]), program: Buffer.from(a[1]!, 'hex') }; break;
      case 'cgwrite': l.cgroupWrites.push({ path: a[0]!, value: a[1]! }); break;
      case 'cgbpf': l.deviceProgram = { dir: a[0]!, program: Buffer.from(a[1]!, 'hex') }; break;
      case 'ns': l.namespaces.push({ type: a[0], path: a[1] }); break;
      case 'mount': l.mounts.push({ dest: a[0], type: a[1], source: a[2], flags: Number(a[3]), pflags: Number(a[4]), data: a[5] }); break;
      case 'masked': l.masked.push(a[0]); break;
      case 'readonly': l.readonly.push(a[0]); break;
      case 'arg': l.args.push(a[0]); break;
      case 'env': l.env.push(a[0]); break;
      case 'cgroup': l.cgroupProcs.push(a[0]); break;
      case 'exec': l.exec = { pid: Number(a[0]), pidStart: Number(a[1]) }; break;
      case 'user': l.user = a[0]; break;
      case 'stdin': l.stdin = a[0] === '1'; break;
      case 'sysctl': (l.sysctls ??= []).push({ path: a[0]!, value: a[1]! }); break;
      case 'hold': l.hold = a[0]; break;
      case 'inherit_stdio': l.inheritStdio = a[0] === '1'; break;
      case 'caps_exact': l.exactCaps = a[0] === '1'; break;
      case 'chroot': l.chroot = a[0] === '1'; break;
      case 'attach': l.attach = a[0] === '1' ? 1 : 0; break;
      case 'tty': l.tty = { rows: Number(a[0]), cols: Number(a[1]) }; break;
      case 'idmap': (l.idmaps ??= {})[a[0] === 'uid' ? 'uid' : 'gid'] = a[1]!; break;
      default: throw new LaunchError(k, 'unknown key');
    }
  }
  return l;
}
