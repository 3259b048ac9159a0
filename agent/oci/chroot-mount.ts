// The one mount a container without a mount namespace leaves in its caller's namespace: the
// init's bind of the rootfs onto itself, with everything the config mounted below it
// (native/src/monitor/monitor_init.c, "chroot 1"). The init writes that bind's mount id to
// <state dir>/chroot.mnt; delete detaches it, and only it: the rootfs is opened without
// following a last symlink, and detached through that fd only when the mount the fd is on
// is the recorded one (a path swapped since, or another mount stacked on top, is left alone
// and said so).
import { closeSync, openSync, readFileSync, constants } from 'node:fs';
import { join } from 'node:path';
import { MNT_DETACH, umount2 } from '../../native/libc.js';

const O_PATH = 0o10000000;

/** Pure: the mount id in a chroot.mnt file's text, or undefined. */
export function parseMountId(text: string): number | undefined {
  const m = /^(\d{1,12})\n?$/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Pure: the mnt_id line of a /proc/<pid>/fdinfo/<fd> text. */
export function fdinfoMountId(text: string): number | undefined {
  const m = /^mnt_id:\s*(\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

export type DetachOutcome = 'none' | 'detached' | 'not-here';

/**
 * Detaches the container's rootfs bind (and every mount below it) if the state dir records
 * one. 'none': the container had none (a mount namespace of its own, or the init died
 * before the bind); 'not-here': recorded, but the rootfs in this mount namespace is not on
 * that mount (already gone, another namespace, or something stacked on it).
 */
export function detachChrootMount(stateDir: string, rootfs: string): DetachOutcome {
  let text: string;
  try { text = readFileSync(join(stateDir, 'chroot.mnt'), 'utf8'); } catch { return 'none'; }
  const id = parseMountId(text);
  if (id === undefined) return 'not-here';
  let fd: number;
  try { fd = openSync(rootfs, O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW); } catch { return 'not-here'; }
  try {
    if (fdinfoMountId(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')) !== id) return 'not-here';
    umount2(`/proc/self/fd/${fd}`, MNT_DETACH);
    return 'detached';
  } finally {
    closeSync(fd);
  }
}
