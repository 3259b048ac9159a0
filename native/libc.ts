// libc calls the agent makes itself (not through a helper): mount and umount2 (and the
// fsopen/fsconfig/fsmount/move_mount API, for overlays too deep for one option string)
// for the container's root filesystem; mknod and lsetxattr for image layers' whiteouts
// and extended attributes. Every failure throws SyscallError; a raw -1 never leaves.
import koffi from './koffi.js';
import { fileURLToPath } from 'node:url';
import { SyscallError } from './errors.js';

export * from './mount-flags.js';

interface Libc {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): number;
  umount2(target: string, flags: number): number;
  /** libswarmlite's swl_rmtree on a libuv worker thread; resolves with 0 or -errno. */
  rmTreeAsync(path: string): Promise<number>;
  /** libswarmlite's swl_umount_all on a libuv worker thread; resolves with a count or -errno. */
  umountAllAsync(target: string, flags: number, max: number): Promise<number>;
  errnoLocation(): unknown;
  mknod(path: string, mode: number, dev: number): number;
  lsetxattr(path: string, name: string, value: Buffer, size: number, flags: number): number;
  lgetxattr(path: string, name: string, value: Buffer, size: number): number;
  llistxattr(path: string, list: Buffer, size: number): number;
  fsopen(fsname: string, flags: number): number;
  fsconfig(fd: number, cmd: number, key: string | null, value: string | null, aux: number): number;
  fsmount(fd: number, flags: number, attrs: number): number;
  move_mount(fromFd: number, fromPath: string, toFd: number, toPath: string, flags: number): number;
  close(fd: number): number;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const l = koffi.load('libc.so.6');
  libc = {
    mount: l.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: l.func('int umount2(const char *target, int flags)'),
    rmTreeAsync: swlRmTree(),
    umountAllAsync: swlUmountAll(),
    errnoLocation: l.func('int *__errno_location(void)'),
    mknod: l.func('int mknod(const char *path, unsigned int mode, unsigned long dev)'),
    lsetxattr: l.func('int lsetxattr(const char *path, const char *name, const uint8_t *value, size_t size, int flags)'),
    lgetxattr: l.func('intptr_t lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)'),
    llistxattr: l.func('intptr_t llistxattr(const char *path, _Out_ uint8_t *list, size_t size)'),
    fsopen: l.func('int fsopen(const char *fsname, unsigned int flags)'),
    fsconfig: l.func('int fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux)'),
    fsmount: l.func('int fsmount(int fd, unsigned int flags, unsigned int attrs)'),
    move_mount: l.func('int move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned int flags)'),
    close: l.func('int close(int fd)'),
  };
  return libc;
}

const libPath = fileURLToPath(new URL('../../native/build/libswarmlite.so', import.meta.url));

/**
 * An async call runs on a libuv worker, whose errno the main thread cannot read:
 * libswarmlite's functions for them return -errno instead.
 */
function swlUmountAll(): (target: string, flags: number, max: number) => Promise<number> {
  const f = koffi.load(libPath).func('int swl_umount_all(const char *target, int flags, int max)') as ((t: string, f: number, m: number) => number) & { async: (...a: unknown[]) => void };
  return (target, flags, max) => new Promise((resolve, reject) => f.async(target, flags, max, (e: unknown, rc: number) => (e ? reject(e) : resolve(rc))));
}

function swlRmTree(): (path: string) => Promise<number> {
  const f = koffi.load(libPath).func('int swl_rmtree(const char *path)') as ((p: string) => number) & { async: (...a: unknown[]) => void };
  return (path) => new Promise((resolve, reject) => f.async(path, (e: unknown, rc: number) => (e ? reject(e) : resolve(rc))));
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

/**
 * Every mount stacked on `target` unmounted, in one call on a worker thread (an overlay's
 * umount waits for the mount lock and can take ms under load): umount2 until EINVAL (not a
 * mount point) or ENOENT, at most `max` times. Resolves with how many there were; another
 * failure throws.
 */
export async function umountAllAsync(target: string, flags = 0, max = 16): Promise<number> {
  const rc = await load().umountAllAsync(target, flags, max);
  if (rc < 0) throw SyscallError.of('umount2', -rc, target);
  return rc;
}

/**
 * rm -rf of `path` in one call on a worker thread (native/src/lib/rmtree.c): no symlink
 * followed, no other filesystem entered (a tree with a mount still in it fails rather than
 * being deleted through it); a missing path is done. Throws the first failure, naming `path`.
 */
export async function rmTreeAsync(path: string): Promise<void> {
  // at most RMTREE_AT_ONCE in flight, the rest wait here: koffi throws past 256 async calls
  // running or queued (a burst of removals asks for one per container and strand), and the
  // worker threads also serve a start's calls
  if (rmTreeActive >= RMTREE_AT_ONCE) await new Promise<void>((r) => rmTreeWaiting.push(r));
  else rmTreeActive++;
  try {
    const rc = await load().rmTreeAsync(path);
    if (rc < 0) throw SyscallError.of('rmtree', -rc, path);
  } finally {
    const next = rmTreeWaiting.shift();
    if (next) next(); else rmTreeActive--; // the slot passes straight to the next call
  }
}

const RMTREE_AT_ONCE = 16;
let rmTreeActive = 0;
const rmTreeWaiting: (() => void)[] = [];

/** umount2(2) with MNT_* flags. */
export function umount2(target: string, flags = 0): void {
  const l = load();
  if (l.umount2(target, flags) < 0) throw SyscallError.of('umount2', errno(l), target);
}

const S_IFCHR = 0o020000;

/** An overlayfs whiteout: a character device 0/0 (mknod(2); needs CAP_MKNOD). */
export function mknodWhiteout(path: string): void {
  const l = load();
  if (l.mknod(path, S_IFCHR | 0o000, 0) < 0) throw SyscallError.of('mknod', errno(l), path);
}

/** lsetxattr(2): never follows a symlink at `path`. */
export function lsetxattr(path: string, name: string, value: Buffer): void {
  const l = load();
  if (l.lsetxattr(path, name, value, value.length, 0) < 0) throw SyscallError.of('lsetxattr', errno(l), path);
}

/** lgetxattr(2): the attribute's value, or null when it is not set (ENODATA). */
export function lgetxattr(path: string, name: string): Buffer | null {
  const l = load();
  const b = Buffer.alloc(64 * 1024);
  const n = l.lgetxattr(path, name, b, b.length);
  if (n < 0) {
    const e = errno(l);
    if (e === 61) return null; // ENODATA
    throw SyscallError.of('lgetxattr', e, path);
  }
  return Buffer.from(b.subarray(0, Number(n)));
}

/** llistxattr(2): the names of the attributes set on `path` (never following a symlink). */
export function llistxattr(path: string): string[] {
  const l = load();
  const b = Buffer.alloc(64 * 1024);
  const n = l.llistxattr(path, b, b.length);
  if (n < 0) {
    const e = errno(l);
    if (e === 95) return []; // EOPNOTSUPP: the filesystem keeps none
    throw SyscallError.of('llistxattr', e, path);
  }
  return b.subarray(0, Number(n)).toString('latin1').split('\0').filter(Boolean);
}

const FSOPEN_CLOEXEC = 1;
const FSCONFIG_SET_FLAG = 0;
const FSCONFIG_SET_STRING = 1;
const FSCONFIG_CMD_CREATE = 6;
const FSMOUNT_CLOEXEC = 1;
const MOVE_MOUNT_F_EMPTY_PATH = 4;
const AT_FDCWD = -100;

/**
 * Mounts a filesystem through the new mount API, one fsconfig(2) string per option (a null
 * value: a flag, such as overlay's "volatile"): repeated keys ("lowerdir+" for each overlay
 * layer, kernel 6.8+) are how a stack of more layers than one page of mount(2) options holds is passed.
 */
export function fsMount(fstype: string, options: [string, string | null][], target: string): void {
  const l = load();
  const fs = l.fsopen(fstype, FSOPEN_CLOEXEC);
  if (fs < 0) throw SyscallError.of('fsopen', errno(l), fstype);
  try {
    for (const [k, v] of options) {
      if (l.fsconfig(fs, v === null ? FSCONFIG_SET_FLAG : FSCONFIG_SET_STRING, k, v, 0) < 0) throw SyscallError.of(`fsconfig ${k}`, errno(l), v ?? undefined);
    }
    if (l.fsconfig(fs, FSCONFIG_CMD_CREATE, null, null, 0) < 0) throw SyscallError.of('fsconfig create', errno(l), target);
    const m = l.fsmount(fs, FSMOUNT_CLOEXEC, 0);
    if (m < 0) throw SyscallError.of('fsmount', errno(l), target);
    try {
      if (l.move_mount(m, '', AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) throw SyscallError.of('move_mount', errno(l), target);
    } finally {
      l.close(m);
    }
  } finally {
    l.close(fs);
  }
}
