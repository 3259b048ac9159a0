// The per-entry writes of a tar extraction (agent/storage/untar.ts), each entry one call
// (native/src/lib/extract.c): a regular file is created, filled from the archive inside the
// kernel (copy_file_range), owned, moded and timed in one trip through the thread pool instead
// of one per syscall and per 256 KiB; a small file or a symlink, in one call on this thread.
// Failures throw SyscallError naming the call.
import koffi from './koffi.js';
import { fileURLToPath } from 'node:url';
import { SyscallError } from './errors.js';

/** The archive ended before an entry's bytes did (it shrank while being extracted). */
export class ArchiveEndedError extends Error {
  constructor(readonly path: string) {
    super(`the archive ended before the bytes of ${path}`);
    this.name = 'ArchiveEndedError';
  }
}

export interface FileSpec {
  /** The archive: an open fd, and where the entry's bytes start in it. */
  fd: number;
  from: number;
  /** Where each run of the entry's bytes goes in the file, in archive order (one for a plain file). */
  extents: { offset: number; size: number }[];
  /** A sparse file's full length (holes included). */
  realSize?: number;
  /** Omitted: the file keeps the extracting process's owner. */
  owner?: { uid: number; gid: number };
  mode: number;
  atime: number;
  mtime: number;
}

type AsyncFn = ((...a: unknown[]) => number) & { async: (...a: unknown[]) => void };
let fns: { putFile: AsyncFn; putSymlink: AsyncFn } | undefined;

function load(): NonNullable<typeof fns> {
  if (fns) return fns;
  const l = koffi.load(fileURLToPath(new URL('../../native/build/libswarmlite.so', import.meta.url)));
  fns = {
    putFile: l.func('int swl_put_file(const char *path, int in, double in_off, const double *ext, int n_ext, double real_size, int64_t uid, int64_t gid, int mode, double atime, double mtime)') as AsyncFn,
    putSymlink: l.func('int swl_put_symlink(const char *target, const char *path, int64_t uid, int64_t gid, double atime, double mtime)') as AsyncFn,
  };
  return fns;
}

// the step numbers of extract.c's FAIL(step, errno)
const STEPS = ['', 'open', 'ftruncate', 'read', 'copy_file_range', 'fchown', 'fchmod', 'futimens', 'close', 'symlink'];
const STEP_ENDED = 10;

function call(f: AsyncFn, args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => f.async(...args, (e: unknown, rc: number) => (e ? reject(e) : resolve(rc))));
}

// uid_t is 32 bits: a larger id would be cut down to another (2**32 to root), as fs.chown refuses
function checkOwner(o: { uid: number; gid: number } | undefined): void {
  if (o && !(Number.isInteger(o.uid) && Number.isInteger(o.gid) && o.uid >= 0 && o.gid >= 0 && o.uid <= 0xffffffff && o.gid <= 0xffffffff)) {
    throw new RangeError(`owner ${o.uid}:${o.gid} out of range`);
  }
}

function check(rc: number, path: string): void {
  if (rc >= 0) return;
  const step = -rc >> 12, errno = -rc & 0xfff;
  if (step === STEP_ENDED) throw new ArchiveEndedError(path);
  throw SyscallError.of(STEPS[step] ?? 'extract', errno, path);
}

function fileArgs(path: string, s: FileSpec): unknown[] {
  checkOwner(s.owner);
  const ext = new Float64Array(s.extents.length * 2);
  s.extents.forEach((x, i) => { ext[2 * i] = x.offset; ext[2 * i + 1] = x.size; });
  return [path, s.fd, s.from, ext, s.extents.length, s.realSize ?? -1, s.owner?.uid ?? -1, s.owner?.gid ?? -1, s.mode, s.atime, s.mtime];
}

/**
 * Creates `path` (which must not exist: EEXIST, and a symlink there is not followed) with
 * the archive's bytes, then its owner, mode and times, on a worker thread.
 */
export async function putFile(path: string, s: FileSpec): Promise<void> {
  check(await call(load().putFile, fileArgs(path, s)), path);
}

/**
 * putFile on the calling thread: for a small file, whose few syscalls take less than the
 * trip to a worker and back (as lsetxattr and mknod of a layer's entries are made).
 */
export function putFileSync(path: string, s: FileSpec): void {
  check(load().putFile(...fileArgs(path, s)), path);
}

/**
 * Creates the symlink `path` → `target` (path must not exist), then its own owner and times,
 * on the calling thread (three syscalls on names, no data: less than a trip to a worker).
 */
export function putSymlinkSync(target: string, path: string, owner: { uid: number; gid: number } | undefined, atime: number, mtime: number): void {
  checkOwner(owner);
  check(load().putSymlink(target, path, owner?.uid ?? -1, owner?.gid ?? -1, atime, mtime), path);
}
