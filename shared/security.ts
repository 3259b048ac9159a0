// docker run's confinement flags as data: --device, --security-opt, --ulimit, --cap-add,
// --cap-drop, --oom-score-adj. Pure: tsctl checks them before sending, the controller's
// schema bounds them, and the node resolves what is host-specific (a device's numbers).

/** The confinement part of a container's spec; every field absent means Docker's default. */
export interface SecurityOptions {
  /** --device flags as given (HOST[:CONTAINER][:rwm]); the node reads each node's numbers. */
  devices?: string[];
  /** --security-opt seccomp=unconfined, or a profile (Docker's JSON) as text. */
  seccomp?: string;
  /** --security-opt no-new-privileges */
  noNewPrivileges?: boolean;
  /** --ulimit, as setrlimit(2) names */
  ulimits?: { type: string; soft: number; hard: number }[];
  capAdd?: string[];
  capDrop?: string[];
  oomScoreAdj?: number;
}

export class FlagError extends Error {
  constructor(readonly flag: string, readonly value: string, why: string) {
    super(`invalid ${flag} ${JSON.stringify(value)}: ${why}`);
    this.name = 'FlagError';
  }
}

export interface DeviceFlag { hostPath: string; containerPath: string; access: string }
const ACCESS = /^(?!.*(.).*\1)[rwm]{1,3}$/;

/** Docker's parseDevice: HOST, HOST:CONTAINER, HOST:ACCESS or HOST:CONTAINER:ACCESS. */
export function parseDeviceFlag(s: string): DeviceFlag {
  const parts = s.split(':');
  const bad = (why: string) => new FlagError('--device', s, why);
  if (parts.length > 3 || !parts[0]) throw bad('use /dev/X[:/dev/Y][:rwm]');
  let [hostPath, containerPath, access] = [parts[0], parts[0], 'rwm'];
  if (parts.length === 2) {
    if (ACCESS.test(parts[1]!)) access = parts[1]!;
    else containerPath = parts[1]!;
  } else if (parts.length === 3) {
    containerPath = parts[1]!;
    access = parts[2]!;
  }
  if (!ACCESS.test(access)) throw bad(`access ${JSON.stringify(access)} is not a combination of r, w, m`);
  for (const p of [hostPath, containerPath]) {
    if (!p.startsWith('/') || p.split('/').includes('..') || p.includes('\0')) throw bad(`${JSON.stringify(p)} is not an absolute path without ".."`);
  }
  return { hostPath, containerPath, access };
}

const ULIMITS: Record<string, string> = {
  as: 'RLIMIT_AS', core: 'RLIMIT_CORE', cpu: 'RLIMIT_CPU', data: 'RLIMIT_DATA', fsize: 'RLIMIT_FSIZE', locks: 'RLIMIT_LOCKS',
  memlock: 'RLIMIT_MEMLOCK', msgqueue: 'RLIMIT_MSGQUEUE', nice: 'RLIMIT_NICE', nofile: 'RLIMIT_NOFILE', nproc: 'RLIMIT_NPROC',
  rss: 'RLIMIT_RSS', rtprio: 'RLIMIT_RTPRIO', rttime: 'RLIMIT_RTTIME', sigpending: 'RLIMIT_SIGPENDING', stack: 'RLIMIT_STACK',
};

/** --ulimit nofile=1024[:2048] (soft[:hard]; -1 is unlimited, as docker takes it). */
export function parseUlimit(s: string): { type: string; soft: number; hard: number } {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(s.trim());
  const fix = `use NAME=SOFT[:HARD], NAME one of ${Object.keys(ULIMITS).join(', ')}`;
  if (!m || !Object.hasOwn(ULIMITS, m[1]!)) throw new FlagError('--ulimit', s, fix);
  const v = (x: string) => (Number(x) === -1 ? Number.MAX_SAFE_INTEGER : Number(x));
  const soft = v(m[2]!), hard = m[3] === undefined ? soft : v(m[3]);
  if (soft < 0 || hard < 0 || !Number.isSafeInteger(soft) || !Number.isSafeInteger(hard)) throw new FlagError('--ulimit', s, fix);
  if (soft > hard) throw new FlagError('--ulimit', s, 'the soft limit is above the hard one');
  return { type: ULIMITS[m[1]!]!, soft, hard };
}

/** A capability name as docker takes it: NET_ADMIN, CAP_NET_ADMIN, net_admin, or ALL. */
export function parseCapability(flag: '--cap-add' | '--cap-drop', s: string): string {
  const n = s.trim().toUpperCase();
  if (n === 'ALL') return n;
  if (!/^(CAP_)?[A-Z_]{2,32}$/.test(n)) throw new FlagError(flag, s, 'a capability name such as NET_ADMIN, or ALL');
  return n.startsWith('CAP_') ? n : `CAP_${n}`;
}

/**
 * --security-opt values: seccomp=unconfined | seccomp=<profile JSON> (tsctl reads the file) |
 * no-new-privileges[=true|false] | no-new-privileges:true. Returns what each sets.
 */
export function parseSecurityOpt(s: string, readProfile: (path: string) => string): Pick<SecurityOptions, 'seccomp' | 'noNewPrivileges'> {
  const m = /^(no-new-privileges)(?:[=:](true|false))?$/.exec(s);
  if (m) return { noNewPrivileges: m[2] !== 'false' };
  const sc = /^seccomp[=:](.+)$/s.exec(s);
  if (!sc) throw new FlagError('--security-opt', s, 'use seccomp=FILE, seccomp=unconfined or no-new-privileges');
  if (sc[1] === 'unconfined') return { seccomp: 'unconfined' };
  const text = readProfile(sc[1]!);
  try { JSON.parse(text); } catch (err) { throw new FlagError('--security-opt', s, `the profile is not JSON: ${(err as Error).message}`); }
  return { seccomp: text };
}
