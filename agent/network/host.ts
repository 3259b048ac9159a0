// What the network code needs to know about or change on the host itself, without a process:
// sysctls are files under /proc/sys, listening sockets are lines in /proc/net/{tcp,udp}[6].
import { readFileSync, writeFileSync } from 'node:fs';
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

/**
 * Ports that have a socket bound on the host: TCP in LISTEN, UDP any bound socket. Parsed from
 * procfs text (pure apart from reading it), IPv4 and IPv6 together since a v6 wildcard
 * socket also takes the v4 port.
 */
export function boundPorts(proto: 'tcp' | 'udp', procNet = '/proc/net'): Set<number> {
  const ports = new Set<number>();
  for (const f of [proto, `${proto}6`]) {
    let text: string;
    try {
      text = readFileSync(`${procNet}/${f}`, 'utf8');
    } catch {
      continue; // no IPv6 on this host
    }
    for (const p of parseProcNet(text, proto)) ports.add(p);
  }
  return ports;
}

/** Pure parser of one /proc/net/{tcp,udp}[6] file. */
export function parseProcNet(text: string, proto: 'tcp' | 'udp'): number[] {
  const out: number[] = [];
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 4) continue;
    const local = cols[1]!;
    const state = cols[3]!;
    if (proto === 'tcp' && state !== TCP_LISTEN) continue;
    const port = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
    if (Number.isInteger(port) && port > 0) out.push(port);
  }
  return out;
}
