// libc calls the agent makes itself (not through a helper): mount and umount2, for the
// container's root filesystem. Every failure throws SyscallError; a raw -1 never leaves.
import koffi from 'koffi';
import { SyscallError } from './errors.js';

export * from './mount-flags.js';

interface Libc {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): number;
  umount2(target: string, flags: number): number;
  errnoLocation(): unknown;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const l = koffi.load('libc.so.6');
  libc = {
    mount: l.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: l.func('int umount2(const char *target, int flags)'),
    errnoLocation: l.func('int *__errno_location(void)'),
  };
  return libc;
}

// errno is per thread and these calls run on Node's main thread, so reading it right
// after the failed call (before any other libc call on this thread) gives that call's errno.
function errno(l: Libc): number {
  return koffi.decode(l.errnoLocation(), 'int') as number;
}

/** mount(2). `data` is the filesystem's option string ("lowerdir=...,upperdir=..."), or null. */
export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  const l = load();
  if (l.mount(source, target, fstype, flags, data || null) < 0) throw SyscallError.of('mount', errno(l), target);
}

/** umount2(2) with MNT_* flags. */
export function umount2(target: string, flags = 0): void {
  const l = load();
  if (l.umount2(target, flags) < 0) throw SyscallError.of('umount2', errno(l), target);
}
