// Moving a task between cgroups takes the kernel's cgroup_threadgroup_rwsem for writing,
// and by default that waits for an RCU grace period (~10-20 ms here) unless another move
// happened just before. For an engine that moves one task per container start, that wait
// is most of the start time. The cgroup2 mount option `favordynmods` (Linux 6.3+) makes
// the lock favour such moves (at a small cost to fork and exit), as the kernel documents
// for hosts with dynamic cgroup changes. It is global: setting it on the cgroup2 mount
// speeds up v1 hierarchies too. The remount keeps every other option of the mount.
import { readFileSync } from 'node:fs';
import { parseMountinfo } from './detect.js';
import { mount, MS_REMOUNT } from '../../native/libc.js';

/** Pure: the option string to remount a cgroup2 mount with, or undefined if already set. */
export function favorDynmodsData(superOptions: string[]): string | undefined {
  if (superOptions.includes('favordynmods')) return undefined;
  const keep = superOptions.filter((o) => o !== 'rw' && o !== 'ro' && o !== '');
  return [...keep, 'favordynmods'].join(',');
}

/** Sets favordynmods on the host's cgroup2 mount. Returns whether it is on afterwards. */
export function enableFavorDynmods(mountinfo = '/proc/self/mountinfo'): boolean {
  const cg2 = parseMountinfo(readFileSync(mountinfo, 'utf8')).find((m) => m.fsType === 'cgroup2');
  if (!cg2) return false;
  const data = favorDynmodsData(cg2.superOptions);
  if (data === undefined) return true;
  try {
    mount(null, cg2.mountPoint, null, MS_REMOUNT, data);
    return true;
  } catch {
    return false; // older kernel: the option is unknown; starts are slower, not wrong
  }
}
