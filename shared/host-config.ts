// docker run's host-facing flags as data: --privileged, --sysctl, --shm-size, --dns,
// --dns-search, --dns-option, --add-host. Pure: tsctl checks them before sending, the
// schema bounds each field and refuses a combination that would reach past the container
// (a forged event included), the controller keeps --privileged to admins, the node applies.
import type { Check } from './validate.js';
import { ValidationError, arr, bool, int, opt, readWith, str } from './validate.js';

/** The spec's fields these flags set; every one absent means docker's default. */
export interface HostConfig {
  /** --privileged: every capability, no seccomp, every host device, /sys and /proc unmasked and writable. */
  privileged?: boolean;
  /** --sysctl K=V, namespaced keys only, in the order given (a key given twice: the last). */
  sysctls?: string[];
  /** --shm-size: /dev/shm's size in bytes (docker's default 64 MiB when absent). */
  shmSize?: number;
  /** --dns, --dns-search, --dns-option: the container's /etc/resolv.conf instead of the host's. */
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  /** --add-host NAME:IP (IP may be host-gateway: the container's network gateway). */
  extraHosts?: string[];
}

export class HostFlagError extends Error {
  constructor(readonly flag: string, readonly value: string, why: string) {
    super(`invalid ${flag} ${JSON.stringify(value)}: ${why}`);
    this.name = 'HostFlagError';
  }
}

/** docker's default /dev/shm (64 MiB). */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;
export const MAX_SYSCTLS = 64;
export const MAX_DNS = 16;
export const MAX_EXTRA_HOSTS = 256;

/** The IPC namespace's sysctls docker allows (opts.ValidateSysctl), besides fs.mqueue.*. */
const IPC_SYSCTLS = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);
/** dot-separated words: no "/" and no empty or ".." part, so a key is a path under /proc/sys and nowhere else. */
export const SYSCTL_KEY_RE = /^[a-z][a-z0-9_]*(\.[A-Za-z0-9_-]+){1,8}$/;
/** Printable, one line, no leading or trailing blank: what /proc/sys files take (kernel.sem "250 32000 32 128"). */
export const SYSCTL_VALUE_RE = /^[\x21-\x7e]([\x20-\x7e]{0,254}[\x21-\x7e])?$/;
export const SYSCTL_RE = /^[a-z][a-z0-9_]*(\.[A-Za-z0-9_-]+){1,8}=[\x21-\x7e]([\x20-\x7e]{0,254}[\x21-\x7e])?$/;

const IPV4 = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(\\.(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}';
/** IPv6: two to eight groups of at most four hex digits (one may be empty: "::"), or an IPv4 tail. */
const IPV6 = '([0-9A-Fa-f]{0,4}:){2,7}([0-9A-Fa-f]{1,4}|' + IPV4 + ')?';
export const IP_RE = new RegExp(`^(${IPV4}|${IPV6})$`);
/** A search domain: labels of letters, digits, _ and -, or "." (docker's "no search"). */
export const DNS_SEARCH_RE = /^(\.|[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?)$/;
/** A resolver option: ndots:2, timeout:1, edns0, rotate, use-vc. */
export const DNS_OPTION_RE = /^[A-Za-z][A-Za-z0-9_-]{0,31}(:[0-9]{1,4})?$/;
/** A hosts-file name: as /etc/hosts takes it (the same as agent/network/dns.ts). */
export const HOST_NAME_RE = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,252})$/;
export const EXTRA_HOST_RE = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}:(host-gateway|${IPV4}|${IPV6})$`);

export type SysctlClass = 'ipc' | 'net';

/** Which namespace a sysctl belongs to, or why it is refused (docker's list: the rest reach the host). */
export function sysctlClass(key: string): SysctlClass | string {
  if (!SYSCTL_KEY_RE.test(key)) return 'a sysctl name is words separated by dots (net.ipv4.ip_forward), nothing else';
  if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) return 'ipc';
  if (key.startsWith('net.')) return 'net';
  return `${key} is not a namespaced sysctl: only ${[...IPC_SYSCTLS].join(', ')}, fs.mqueue.* and net.* may be set (the rest are the host's)`;
}

/** --sysctl K=V → "K=V" checked; the namespace it needs is checked with the spec (hostConfigProblem). */
export function parseSysctl(s: string): string {
  const eq = s.indexOf('=');
  const bad = (why: string) => new HostFlagError('--sysctl', s, why);
  if (eq <= 0) throw bad('use KEY=VALUE');
  const key = s.slice(0, eq), value = s.slice(eq + 1);
  const cls = sysctlClass(key);
  if (cls !== 'ipc' && cls !== 'net') throw bad(cls);
  if (!SYSCTL_VALUE_RE.test(value)) throw bad('the value is one line of printable characters (at most 256), without leading or trailing blanks');
  return `${key}=${value}`;
}

/** --shm-size: bytes, more than zero (the caller parses the units). */
export function checkShmSize(n: number, given: string): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new HostFlagError('--shm-size', given, 'a size above zero, e.g. 64m');
  return n;
}

export function parseDns(s: string): string {
  if (!IP_RE.test(s)) throw new HostFlagError('--dns', s, 'an IP address of a name server');
  return s;
}

export function parseDnsSearch(s: string): string {
  if (!DNS_SEARCH_RE.test(s) || s.length > 253) throw new HostFlagError('--dns-search', s, 'a domain name (letters, digits, - and dots), or "." for none');
  return s;
}

export function parseDnsOption(s: string): string {
  if (!DNS_OPTION_RE.test(s)) throw new HostFlagError('--dns-option', s, 'a resolver option such as ndots:2, timeout:1, edns0');
  return s;
}

/** --add-host NAME:IP or NAME=IP (docker takes both); IP may be host-gateway. */
export function parseExtraHost(s: string): string {
  const m = /^([^:=]+)[:=](.+)$/s.exec(s);
  const v = m ? `${m[1]}:${m[2]}` : s;
  if (!EXTRA_HOST_RE.test(v)) throw new HostFlagError('--add-host', s, 'use NAME:IP (or NAME:host-gateway), NAME letters, digits, _ . -');
  return v;
}

/** The extra host's parts; the name is up to the first ":" (an IPv6 address has more). */
export function splitExtraHost(v: string): { name: string; ip: string } {
  const i = v.indexOf(':');
  return { name: v.slice(0, i), ip: v.slice(i + 1) };
}

/** Docker's Sysctls is a map: a key given twice keeps its last value, in first-given order. */
export function sysctlMap(list: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of list) {
    const eq = kv.indexOf('=');
    m.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  return m;
}

/** What these fields need of the rest of the spec; a reason (one line) or undefined. */
export interface SpecModes { network: string; ipcMode?: string; utsMode?: string; pidMode?: string }
export function hostConfigProblem(s: HostConfig & SpecModes): string | undefined {
  const ownNet = !(s.network === 'host' || s.network.startsWith('container:'));
  const ownIpc = s.ipcMode === undefined;
  for (const kv of s.sysctls ?? []) {
    const key = kv.slice(0, kv.indexOf('='));
    const cls = sysctlClass(key);
    if (cls !== 'net' && cls !== 'ipc') return `--sysctl ${cls}`;
    if (cls === 'net' && !ownNet) return `--sysctl ${key} conflicts with --network ${s.network}: net.* sysctls are set in a network namespace of the container's own`;
    if (cls === 'ipc' && !ownIpc) return `--sysctl ${key} conflicts with --ipc ${s.ipcMode}: IPC sysctls are set in an IPC namespace of the container's own`;
  }
  if (s.shmSize !== undefined && !ownIpc) return `--shm-size conflicts with --ipc ${s.ipcMode}: /dev/shm is the container's own only with its own IPC namespace`;
  const resolv = s.dns?.length || s.dnsSearch?.length || s.dnsOptions?.length;
  if ((resolv || s.extraHosts?.length) && (s.network === 'host' || s.network === 'none' || s.network.startsWith('container:'))) {
    return `${resolv ? '--dns' : '--add-host'} conflicts with --network ${s.network}: the container's /etc/resolv.conf and /etc/hosts are its network's (bridge or a user network)`;
  }
  return undefined;
}

/** A check of the whole spec on top of its fields' (the decoded and the streamed path alike). */
export function refine<T>(c: Check<T>, problem: (v: T) => string | undefined): Check<T> {
  const post = (v: T, f: string): T => {
    const why = problem(v);
    if (why) throw new ValidationError(f, why);
    return v;
  };
  const fn = (v: unknown, f: string): T => post(c(v, f), f);
  return Object.assign(fn, { read: (r: Parameters<NonNullable<Check<T>['read']>>[0]) => post(readWith(c, r), '') });
}

/** The fields' checks, in a run request and in a spec alike (shared/schema.ts). */
export const hostConfigShape = {
  privileged: opt(bool),
  sysctls: opt(arr(str(512, SYSCTL_RE), MAX_SYSCTLS)),
  shmSize: opt(int(1, Number.MAX_SAFE_INTEGER)),
  dns: opt(arr(str(64, IP_RE), MAX_DNS)),
  dnsSearch: opt(arr(str(253, DNS_SEARCH_RE), MAX_DNS)),
  dnsOptions: opt(arr(str(40, DNS_OPTION_RE), MAX_DNS)),
  extraHosts: opt(arr(str(320, EXTRA_HOST_RE), MAX_EXTRA_HOSTS)),
};

/** The request's host-config fields that are set, for the spec (absent stays absent). */
export function hostConfigOf(r: HostConfig): HostConfig {
  const out: HostConfig = {};
  if (r.privileged) out.privileged = true;
  if (r.sysctls?.length) out.sysctls = r.sysctls;
  if (r.shmSize !== undefined) out.shmSize = r.shmSize;
  if (r.dns?.length) out.dns = r.dns;
  if (r.dnsSearch?.length) out.dnsSearch = r.dnsSearch;
  if (r.dnsOptions?.length) out.dnsOptions = r.dnsOptions;
  if (r.extraHosts?.length) out.extraHosts = r.extraHosts;
  return out;
}
