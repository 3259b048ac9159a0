// What the network code needs to know about or change on the host itself, without a process:
// sysctls are files under /proc/sys, listening sockets are lines in /proc/net/{tcp,udp}[6].
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { SyscallError } from '../../native/errors.js';

/** Writes a sysctl ("net.ipv4.ip_forward") through /proc/sys. */
export function writeSysctl(key: string, value: string, procSys = '/proc/sys'): void {
  if (!/^[A-Za-z0-9_.-]+(\.[A-Za-z0-9_-]+)*$/.test(key) || key.includes('..')) throw new TypeError(`invalid sysctl key "${key}"`);
  // Interface names may contain '.', which sysctl(8) writes as '/'; callers pass path segments instead.
  const path = `${procSys}/${key.replaceAll('.', '/')}`;
  writeFileAt(path, value);
}

/** Writes /proc/sys/net/ipv4/conf/<ifname>/<name>; separate because an interface name may contain '.'. */
export function writeIfSysctl(ifname: string, name: string, value: string, procSys = '/proc/sys'): void {
  if (ifname.includes('/') || ifname.startsWith('.')) throw new TypeError(`invalid interface name "${ifname}"`);
  writeFileAt(`${procSys}/net/ipv4/conf/${ifname}/${name}`, value);
}

function writeFileAt(path: string, value: string): void {
  try {
    writeFileSync(path, value + '\n');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new SyscallError('write', -(err.errno ?? 0) || 0, err.code ?? 'EIO', path);
  }
}

const TCP_LISTEN = '0A';

/** One bound socket from /proc/net: what a refused publish names as the port's holder. */
export interface HostSocket {
  port: number;
  /** local address as ss(8) prints it: "127.0.0.1", "::", "::1" */
  address: string;
  inode: number;
}

/**
 * Sockets bound on the host: TCP in LISTEN, UDP any bound socket. Parsed from procfs text
 * (pure apart from reading it), IPv4 and IPv6 together since a v6 wildcard socket also takes
 * the v4 port.
 */
export function boundSockets(proto: 'tcp' | 'udp', procNet = '/proc/net'): HostSocket[] {
  const out: HostSocket[] = [];
  for (const f of [proto, `${proto}6`]) {
    let text: string;
    try {
      text = readFileSync(`${procNet}/${f}`, 'utf8');
    } catch {
      continue; // no IPv6 on this host
    }
    out.push(...parseProcNetSockets(text, proto));
  }
  return out;
}

/** Pure parser of one /proc/net/{tcp,udp}[6] file: the bound ports. */
export function parseProcNet(text: string, proto: 'tcp' | 'udp'): number[] {
  return parseProcNetSockets(text, proto).map((s) => s.port);
}

/** Pure parser of one /proc/net/{tcp,udp}[6] file: bound sockets with address and inode. */
export function parseProcNetSockets(text: string, proto: 'tcp' | 'udp'): HostSocket[] {
  const out: HostSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10) continue;
    const local = cols[1]!;
    const state = cols[3]!;
    if (proto === 'tcp' && state !== TCP_LISTEN) continue;
    const colon = local.lastIndexOf(':');
    const port = parseInt(local.slice(colon + 1), 16);
    if (!Number.isInteger(port) || port <= 0) continue;
    out.push({ port, address: procAddress(local.slice(0, colon)), inode: Number(cols[9]) || 0 });
  }
  return out;
}

/**
 * procfs prints an address as 32-bit words in host byte order (little-endian on every machine
 * this runs on): "0100007F" is 127.0.0.1; IPv6 is four such words.
 */
function procAddress(hex: string): string {
  if (!/^[0-9A-Fa-f]{8}$|^[0-9A-Fa-f]{32}$/.test(hex)) return hex;
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16));
  }
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${bytes.slice(12).join('.')}`;
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16));
  // the longest run of zero groups (two or more) becomes "::", as inet_ntop writes it
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/**
 * "pid 1234 (nginx)" for the process holding socket inode, by scanning /proc/<pid>/fd. Only
 * on the refusal path (a few ms for a few hundred processes); undefined when nobody visible
 * holds it (another pid namespace, or it closed meanwhile).
 */
export function socketHolder(inode: number, proc = '/proc'): string | undefined {
  if (!inode) return undefined;
  const target = `socket:[${inode}]`;
  let pids: string[];
  try {
    pids = readdirSync(proc).filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`${proc}/${pid}/fd`);
    } catch {
      continue; // exited, or not ours to read
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`${proc}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (link !== target) continue;
      let comm = '';
      try {
        // any process names itself: keep the refusal one printable line
        comm = readFileSync(`${proc}/${pid}/comm`, 'utf8').trim().replace(/[^\x20-\x7e]/g, '?');
      } catch {
        // exited between the two reads: the pid alone still helps
      }
      return comm ? `pid ${pid} (${comm})` : `pid ${pid}`;
    }
  }
  return undefined;
}
