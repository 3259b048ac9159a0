// Which cgroup layout this host has, read from /proc/self/mountinfo. Apart from the
// managers (as in youki) so the choice is made once, tested on fake mount tables, and
// so a manager never guesses.
import { join } from 'node:path';
import { CgroupError } from './errors.js';
import { readOptional, readText } from './fs.js';
import { parseMountinfo, type MountEntry } from '../mountinfo.js';

export { parseMountinfo, type MountEntry };

export type CgroupKind = 'v1' | 'hybrid' | 'v2';


export interface Detection {
  kind: CgroupKind;
  /** The directory the mounts were looked for under (normally /sys/fs/cgroup). */
  root: string;
  /**
   * Controller → the directory to create groups under. v1: each controller's hierarchy
   * mount (co-mounted controllers share one). v2: every controller maps to the unified mount.
   */
  mounts: Record<string, string>;
  /** The cgroup2 mount, if any. In 'hybrid' it usually has no controllers and is not used. */
  unified?: string;
}

const NOT_CONTROLLERS = new Set(['rw', 'ro', 'nosuid', 'nodev', 'noexec', 'relatime', 'clone_children', 'noprefix', 'xattr']);

/**
 * Pure: the layout implied by a mount table, looking only at mounts at or under `root`
 * (other agents' or containers' bind mounts elsewhere are not ours to use).
 * `v2Controllers` is the content of the unified mount's cgroup.controllers.
 */
export function detectFromMounts(mounts: MountEntry[], root: string, v2Controllers = ''): Detection {
  const base = root.replace(/\/+$/, '') || '/';
  const under = (p: string) => p === base || p.startsWith(base === '/' ? '/' : base + '/');
  const v1: Record<string, string> = {};
  let unified: string | undefined;
  for (const m of mounts) {
    if (!under(m.mountPoint)) continue;
    if (m.fsType === 'cgroup2') unified ??= m.mountPoint;
    else if (m.fsType === 'cgroup') {
      for (const o of m.superOptions) {
        // name=systemd and friends are named hierarchies without a controller.
        if (NOT_CONTROLLERS.has(o) || o.includes('=')) continue;
        v1[o] ??= m.mountPoint;
      }
    }
  }
  if (Object.keys(v1).length > 0) return { kind: unified ? 'hybrid' : 'v1', root: base, mounts: v1, ...(unified ? { unified } : {}) };
  if (unified) {
    const mounts: Record<string, string> = {};
    for (const c of v2Controllers.trim().split(/\s+/)) if (c) mounts[c] = unified;
    return { kind: 'v2', root: base, mounts, unified };
  }
  throw new CgroupError(`cgroup: no cgroup filesystem is mounted under ${base}`, base, 'ENOENT');
}

/** Reads the mount table (and, for v2, the available controllers) and detects the layout. */
export function detect(root = '/sys/fs/cgroup', mountinfoPath = '/proc/self/mountinfo'): Detection {
  const mounts = parseMountinfo(readText(mountinfoPath));
  const first = detectFromMounts(mounts, root);
  if (first.kind !== 'v2' || !first.unified) return first;
  return detectFromMounts(mounts, root, readOptional(join(first.unified, 'cgroup.controllers')) ?? '');
}
