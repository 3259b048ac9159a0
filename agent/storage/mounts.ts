// Performs the snapshotter's mount descriptions through libc (never the mount command).
import { mount, umount2, umountAllAsync, fsMount, MNT_DETACH, MS_BIND, MS_REC } from '../../native/libc.js';
import { SyscallError } from '../../native/errors.js';
import { mountPlan, VOLATILE, type MountSpec } from './snapshotter.js';

export function mountAll(mounts: MountSpec[], target: string): void {
  for (const m of mounts) {
    // vfs: the container's copy, bound where the root goes (a mount point, as pivot_root wants)
    if (m.type === 'bind') { mount(m.source, target, null, MS_BIND | MS_REC, null); continue; }
    try { mountOne(m, target); } catch (err) {
      // a kernel before 5.10 knows no "volatile" (EINVAL): the layer is then mounted as any other
      if (!(err instanceof SyscallError && err.code === 'EINVAL' && m.options.includes(VOLATILE))) throw err;
      mountOne({ ...m, options: m.options.filter((o) => o !== VOLATILE) }, target);
    }
  }
}

function mountOne(m: MountSpec, target: string): void {
  const plan = mountPlan(m);
  if (plan.kind === 'mount') mount(m.source, target, m.type, 0, plan.data);
  else fsMount(m.type, plan.options, target);
}

export function unmount(target: string): void {
  // lazy: a container that still holds the mount (a zombie monitor, a shell in /proc) must not block removal
  umount2(target, MNT_DETACH);
}

/**
 * unmount() on a worker thread, of every mount stacked on `target` (a create retried after a
 * crash may have mounted twice), without reading the mount table: EINVAL says nothing is left.
 * One worker call for the whole loop (native/src/lib/unmount.c swl_umount_all): a trip per
 * umount2 made every removal two, the second only to hear EINVAL.
 */
export async function unmountAll(target: string): Promise<void> {
  await umountAllAsync(target, MNT_DETACH, 16);
}

export { isMountPoint as isMounted } from '../mountinfo.js';
