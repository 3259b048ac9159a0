// Performs the snapshotter's mount descriptions through libc (never the mount command).
import { mount, umount2, fsMount, MNT_DETACH } from '../../native/libc.js';
import { mountPlan, type MountSpec } from './snapshotter.js';

export function mountAll(mounts: MountSpec[], target: string): void {
  for (const m of mounts) {
    const plan = mountPlan(m);
    if (plan.kind === 'mount') mount(m.source, target, m.type, 0, plan.data);
    else fsMount(m.type, plan.options, target);
  }
}

export function unmount(target: string): void {
  // lazy: a container that still holds the mount (a zombie monitor, a shell in /proc) must not block removal
  umount2(target, MNT_DETACH);
}

export { isMountPoint as isMounted } from '../mountinfo.js';
