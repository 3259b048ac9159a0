// What this host is and can do, announced in NodeJoined for the scheduler and for audit.
import { cpus, totalmem, hostname, release } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { readMounts } from './mountinfo.js';

export function nodeFeatures(): string[] {
  const f: string[] = [];
  const fs = safeRead('/proc/filesystems');
  if (/\toverlay$/m.test(fs)) f.push('overlay');
  for (const ns of ['pid', 'uts', 'ipc', 'mnt', 'net', 'cgroup', 'user']) if (existsSync(`/proc/self/ns/${ns}`)) f.push(`ns:${ns}`);
  const types = new Set(readMounts().map((m) => m.fsType));
  if (types.has('cgroup2')) f.push('cgroup2');
  if (types.has('cgroup')) f.push('cgroup1');
  if (existsSync('/usr/lib/x86_64-linux-gnu/libnftables.so.1') || existsSync('/usr/lib/aarch64-linux-gnu/libnftables.so.1')) f.push('nftables');
  return f;
}

export function nodeResources(): { hostname: string; cpus: number; memory: number; kernel: string } {
  return { hostname: hostname(), cpus: cpus().length, memory: totalmem(), kernel: release() };
}

function safeRead(p: string): string {
  try { return readFileSync(p, 'utf8'); } catch { return ''; }
}
