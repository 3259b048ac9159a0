// The OCI runtime spec (config.json), the subset swarmlite writes and reads, and the
// defaults Docker's createSpec would produce. The same file is a valid bundle for
// `runc run -b <bundle>`, which keeps our runtime honest against the reference.
import type { DeviceRule } from '../cgroups/types.js';
import { defaultDeviceRules } from '../cgroups/device-rules.js';
import { defaultSeccomp } from './seccomp/default-profile.js';
import type { OciSeccomp } from './seccomp/types.js';
import { CAPABILITIES } from './launch.js';
import { hostCapabilityMask, nofileHardCeiling } from './host-limits.js';

export type { OciSeccomp } from './seccomp/types.js';

export interface OciUser { uid: number; gid: number; additionalGids?: number[] }

export interface OciCapabilities {
  bounding?: string[]; effective?: string[]; inheritable?: string[]; permitted?: string[]; ambient?: string[];
}

export interface OciProcess {
  terminal?: boolean;
  user: OciUser;
  args: string[];
  env: string[];
  cwd: string;
  capabilities?: OciCapabilities;
  noNewPrivileges?: boolean;
  rlimits?: OciRlimit[];
  oomScoreAdj?: number;
  /** swarmlite's, not OCI's: pid 1 is the runtime's reaper and the command its child (--init; docker bind-mounts tini for it) */
  init?: boolean;
  /** OCI's (terminal above: a pty from native/src/monitor/monitor_tty.c), its first size */
  consoleSize?: { height: number; width: number };
  /** swarmlite's, not OCI's (docker's OpenStdin, -i): the process reads what its owner sends (agent/attach.ts) */
  stdinOpen?: boolean;
}

/** type: RLIMIT_NOFILE, RLIMIT_NPROC, ... (setrlimit(2) names). */
export interface OciRlimit { type: string; soft: number; hard: number }

/** A device node made in the container (linux.devices). type u is c (unbuffered), p a FIFO. */
export interface OciDevice { path: string; type: 'c' | 'b' | 'u' | 'p'; major: number; minor: number; fileMode?: number; uid?: number; gid?: number }

/** linux.resources.devices: the device cgroup's rules, in order. */
export type OciDeviceCgroup = DeviceRule;

export interface OciMount { destination: string; type?: string; source?: string; options?: string[] }

export type OciNamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';
export interface OciNamespace { type: OciNamespaceType; path?: string }

export interface OciLinux {
  namespaces: OciNamespace[];
  maskedPaths?: string[];
  readonlyPaths?: string[];
  rootfsPropagation?: string;
  cgroupsPath?: string;
  devices?: OciDevice[];
  resources?: { devices?: OciDeviceCgroup[] };
  seccomp?: OciSeccomp;
  /** kernel parameters written in the container's namespaces before its process starts */
  sysctl?: Record<string, string>;
  /** with a new `user` namespace: its uid_map and gid_map (container id 0 must be mapped) */
  uidMappings?: OciIdMapping[];
  gidMappings?: OciIdMapping[];
}

export interface OciIdMapping { containerID: number; hostID: number; size: number }

export interface OciSpec {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: OciMount[];
  linux: OciLinux;
}

export type NetworkConfig = { mode: 'none' } | { mode: 'host' } | { mode: 'path'; path: string };

export interface ContainerConfig {
  id: string;
  hostname: string;
  args: string[];
  env: string[]; // K=V; overrides the defaults below key by key
  cwd: string;
  user?: { uid: number; gid: number; additionalGids?: number[] };
  /** --init: a reaper as pid 1 that forwards signals to the command. */
  init?: boolean;
  /** -t: a pty of this first size. */
  tty?: { rows: number; cols: number };
  /** -i: stdin kept open for its owner's input (agent/attach.ts). */
  stdin?: boolean;
  /** HOME unless env gives one: the user's home from the image's /etc/passwd (--user). */
  home?: string;
  network: NetworkConfig;
  mounts?: { source: string; destination: string; type?: string; options?: string[] }[];
  rootfsPath: string;
  readonlyRootfs?: boolean;
  /** --device: nodes made in the container's /dev, each with an allow rule (see host-device.ts). */
  devices?: DeviceMapping[];
  /** --security-opt seccomp=FILE|unconfined. Absent: Docker's default profile for the container's capabilities. */
  seccomp?: OciSeccomp | 'unconfined';
  /** --security-opt no-new-privileges. Docker's default: false. */
  noNewPrivileges?: boolean;
  /** --ulimit: replace the defaults (DEFAULT_RLIMITS) type by type. */
  rlimits?: OciRlimit[];
  /** --oom-score-adj, -1000..1000. Docker's default: 0 (not whatever the agent has). */
  oomScoreAdj?: number;
  /** --cap-add / --cap-drop: names with or without CAP_, or ALL; applied to DEFAULT_CAPS as Docker does. */
  capAdd?: string[];
  capDrop?: string[];
  /** --pid/--ipc/--uts: the host's namespace ('host') or another's (its /proc/<pid>/ns path); a new one when absent. */
  shared?: { pid?: string; ipc?: string; uts?: string };
  /**
   * --privileged, as docker's: every capability, no seccomp filter, no masked or read-only
   * /proc and /sys paths, /sys writable, a device cgroup that allows everything; the host's
   * device nodes come in `devices` (the node lists them: host-device.ts).
   */
  privileged?: boolean;
  /** --sysctl, namespaced keys only (shared/host-config.ts checked them). */
  sysctls?: Record<string, string>;
  /** --shm-size: /dev/shm's size in bytes; docker's 64 MiB when absent. */
  shmSize?: number;
}

/** One --device: the node's path inside the container, its kind and number, and what the container may do with it. */
export interface DeviceMapping {
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  /** r, w, m; Docker's default rwm. */
  access?: string;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export class SpecError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`invalid container config: ${field}: ${reason}`);
    this.name = 'SpecError';
  }
}
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Docker's default capability set (oci/caps/defaults.go). */
export const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** Docker's masked and read-only /proc and /sys paths (oci/defaults.go). */
export const DEFAULT_MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/interrupts', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** containerd's default (the agent's own NOFILE, 20000 here, must not leak into containers). */
export const DEFAULT_RLIMITS: readonly OciRlimit[] = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 524288 }];

/** Docker's capability arithmetic: ALL in drop empties first, ALL in add gives every capability. */
export function resolveCaps(add: readonly string[] = [], drop: readonly string[] = []): string[] {
  const norm = (field: string) => (n: string) => {
    const up = n.toUpperCase();
    if (up === 'ALL') return up;
    const c = up.startsWith('CAP_') ? up : `CAP_${up}`;
    if (!(c in CAPABILITIES)) throw new SpecError(field, `unknown capability ${JSON.stringify(n)}`);
    return c;
  };
  const a = add.map(norm('capAdd')), d = drop.map(norm('capDrop'));
  let caps = new Set<string>(d.includes('ALL') ? [] : DEFAULT_CAPS);
  if (a.includes('ALL')) caps = new Set(Object.keys(CAPABILITIES));
  for (const c of d) if (c !== 'ALL' && !a.includes(c)) caps.delete(c);
  for (const c of a) if (c !== 'ALL') caps.add(c);
  return Object.keys(CAPABILITIES).filter((c) => caps.has(c));
}

function checkDevice(i: number, d: DeviceMapping): void {
  const f = `devices[${i}]`;
  if (typeof d.path !== 'string' || !d.path.startsWith('/') || d.path.includes('\0') || d.path.split('/').includes('..')) {
    throw new SpecError(`${f}.path`, `not an absolute path without "..": ${JSON.stringify(d.path)}`);
  }
  if (d.type !== 'c' && d.type !== 'b') throw new SpecError(`${f}.type`, `${JSON.stringify(d.type)} is not c or b`);
  if (!Number.isInteger(d.major) || d.major < 0 || d.major > 0xfff) throw new SpecError(`${f}.major`, String(d.major));
  if (!Number.isInteger(d.minor) || d.minor < 0 || d.minor > 0xfffff) throw new SpecError(`${f}.minor`, String(d.minor));
  if (d.access !== undefined && !/^(?!.*(.).*\1)[rwm]{1,3}$/.test(d.access)) throw new SpecError(`${f}.access`, `${JSON.stringify(d.access)} is not a combination of r, w, m`);
}

function checkRlimits(rl: readonly OciRlimit[]): void {
  rl.forEach((r, i) => {
    if (typeof r.type !== 'string' || !/^RLIMIT_[A-Z]+$/.test(r.type)) throw new SpecError(`rlimits[${i}].type`, JSON.stringify(r.type));
    if (!Number.isInteger(r.soft) || !Number.isInteger(r.hard) || r.soft < 0 || r.hard < 0 || r.soft > r.hard) {
      throw new SpecError(`rlimits[${i}]`, `soft ${String(r.soft)} / hard ${String(r.hard)}: need 0 <= soft <= hard`);
    }
  });
}

/**
 * runc's `runc spec` mounts, without the cgroup mount (cgroup v1 would need one bind per
 * hierarchy); /dev/shm of `shmSize` bytes (docker's --shm-size), /sys read-write when privileged.
 */
export function defaultMounts(o: { shmSize?: number; privileged?: boolean } = {}): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', o.shmSize ? `size=${o.shmSize}` : 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', o.privileged ? 'rw' : 'ro'] },
  ];
}

/** Defaults first, the user's values replace them key by key (Docker's order). */
function mergeEnv(hostname: string, uid: number, env: string[], home?: string): string[] {
  const out = new Map<string, string>([
    ['PATH', `PATH=${DEFAULT_PATH}`],
    ['HOSTNAME', `HOSTNAME=${hostname}`],
    ['TERM', 'TERM=xterm'],
    ['HOME', `HOME=${home ?? (uid === 0 ? '/root' : '/')}`],
  ]);
  for (const kv of env) {
    const eq = kv.indexOf('=');
    out.set(eq < 0 ? kv : kv.slice(0, eq), kv);
  }
  return [...out.values()];
}

function userMount(m: NonNullable<ContainerConfig['mounts']>[number]): OciMount {
  const type = m.type ?? 'bind';
  const options = [...(m.options ?? [])];
  if (type === 'bind' && !options.includes('bind') && !options.includes('rbind')) options.unshift('rbind');
  if (type === 'bind' && !options.some((o) => /^r?(private|slave|shared|unbindable)$/.test(o))) options.push('rprivate');
  return { destination: m.destination, type, source: m.source, options };
}

export function createSpec(c: ContainerConfig): OciSpec {
  const user = c.user ?? { uid: 0, gid: 0 };
  // docker's --privileged: every capability whatever --cap-add/--cap-drop say
  const caps = c.privileged ? Object.keys(CAPABILITIES).filter((n) => (hostCapabilityMask() >> BigInt(CAPABILITIES[n]!)) & 1n) : resolveCaps(c.capAdd, c.capDrop);
  if (c.shmSize !== undefined && (!Number.isSafeInteger(c.shmSize) || c.shmSize <= 0)) throw new SpecError('shmSize', `${String(c.shmSize)} is not a size in bytes above zero`);
  (c.devices ?? []).forEach((d, i) => checkDevice(i, d));
  if (c.rlimits) checkRlimits(c.rlimits);
  const oom = c.oomScoreAdj ?? 0;
  if (!Number.isInteger(oom) || oom < -1000 || oom > 1000) throw new SpecError('oomScoreAdj', `${String(c.oomScoreAdj)} not in -1000..1000`);
  const rlimits = new Map(DEFAULT_RLIMITS.map((r) => [r.type, { ...r }]));
  const ceiling = nofileHardCeiling();
  const nofile = rlimits.get('RLIMIT_NOFILE')!;
  if (ceiling !== undefined && nofile.hard > ceiling) rlimits.set('RLIMIT_NOFILE', { ...nofile, hard: ceiling, soft: Math.min(nofile.soft, ceiling) });
  for (const r of c.rlimits ?? []) rlimits.set(r.type, { ...r });
  const devices = (c.devices ?? []).map((d): OciDevice => ({
    path: d.path, type: d.type, major: d.major, minor: d.minor, fileMode: d.fileMode ?? 0o666, uid: d.uid ?? 0, gid: d.gid ?? 0,
  }));
  const deviceRules: OciDeviceCgroup[] = c.privileged ? [{ allow: true, access: 'rwm' }] : [
    ...defaultDeviceRules(),
    ...(c.devices ?? []).map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.access ?? 'rwm' })),
  ];
  const namespaces: OciNamespace[] = [];
  for (const type of ['pid', 'ipc', 'uts'] as const) {
    const m = c.shared?.[type];
    if (m === 'host') continue; // no namespace of its own: the agent's, which is the host's
    namespaces.push(m ? { type, path: m } : { type });
  }
  namespaces.push({ type: 'mount' });
  if (c.network.mode === 'none') namespaces.push({ type: 'network' });
  else if (c.network.mode === 'path') namespaces.push({ type: 'network', path: c.network.path });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids?.length ? { additionalGids: user.additionalGids } : {}) },
      args: [...c.args],
      env: mergeEnv(c.hostname, user.uid, c.env, c.home),
      cwd: c.cwd || '/',
      // Inheritable and ambient stay empty (Docker since CVE-2022-24769): a file's inheritable
      // capabilities must not turn into permitted ones across an exec.
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps], inheritable: [], ambient: [] },
      noNewPrivileges: c.noNewPrivileges ?? false,
      rlimits: [...rlimits.values()],
      oomScoreAdj: oom,
      ...(c.init ? { init: true } : {}),
      ...(c.tty ? { terminal: true, consoleSize: { height: c.tty.rows, width: c.tty.cols } } : {}),
      ...(c.stdin ? { stdinOpen: true } : {}),
    },
    root: { path: c.rootfsPath, readonly: c.readonlyRootfs ?? false },
    hostname: c.hostname,
    mounts: [...defaultMounts({ ...(c.shmSize ? { shmSize: c.shmSize } : {}), ...(c.privileged ? { privileged: true } : {}) }), ...(c.mounts ?? []).map(userMount)],
    linux: {
      namespaces,
      maskedPaths: c.privileged ? [] : [...DEFAULT_MASKED_PATHS],
      readonlyPaths: c.privileged ? [] : [...DEFAULT_READONLY_PATHS],
      // runc's default is rslave; private keeps host mount events out, as the monitor does.
      rootfsPropagation: 'rprivate',
      ...(devices.length ? { devices } : {}),
      resources: { devices: deviceRules },
      // --privileged has no seccomp filter, whatever --security-opt says (docker's WithSeccomp)
      ...(c.seccomp === 'unconfined' || c.privileged ? {} : { seccomp: c.seccomp ?? defaultSeccomp(caps) }),
      ...(c.sysctls && Object.keys(c.sysctls).length ? { sysctl: { ...c.sysctls } } : {}),
    },
  };
}
