// Performs the snapshotter's mount descriptions through libc (never the mount command).
import { mount, umount2, MNT_DETACH } from '../../native/libc.js';
import type { MountSpec } from './snapshotter.js';

export function mountAll(mounts: MountSpec[], target: string): void {
  for (const m of mounts) mount(m.source, target, m.type, 0, m.options.join(','));
}

export function unmount(target: string): void {
  // lazy: a container that still holds the mount (a zombie monitor, a shell in /proc) must not block removal
  umount2(target, MNT_DETACH);
}

export { isMountPoint as isMounted } from '../mountinfo.js';
