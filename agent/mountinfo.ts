// The host's mount table, parsed once in one place (proc(5) mountinfo): cgroup detection,
// the storage layer's "is it mounted" and node teardown all read it through here.
import { readFileSync } from 'node:fs';

export interface MountEntry {
  mountPoint: string;
  /** The part of the filesystem mounted there ('/' unless we are inside another container). */
  root: string;
  fsType: string;
  superOptions: string[];
}

// mountinfo escapes space, tab, newline and backslash in paths as \ooo octal.
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Parses /proc/<pid>/mountinfo text. Malformed lines are skipped. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || f.length < sep + 4) continue;
    out.push({
      root: unescape(f[3]!),
      mountPoint: unescape(f[4]!),
      fsType: f[sep + 1]!,
      superOptions: f[sep + 3]!.split(','),
    });
  }
  return out;
}

export function readMounts(path = '/proc/self/mountinfo'): MountEntry[] {
  return parseMountinfo(readFileSync(path, 'utf8'));
}

export function isMountPoint(target: string, mounts = readMounts()): boolean {
  return mounts.some((m) => m.mountPoint === target);
}

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
export function mountsUnder(dir: string, mounts = readMounts()): string[] {
  return mounts.map((m) => m.mountPoint).filter((p) => p === dir || p.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}
