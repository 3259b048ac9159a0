// Docker's copy-up: a volume that is empty when a container first mounts it is filled with
// what the image has at the mount's path (owners, modes, times, symlinks, hard links and
// xattrs kept), so `VOLUME /data` over files a RUN put there starts with those files. A volume
// with anything in it is left as it is (docker copies only into an empty one).
//
// The copy is in steps a crash may cut, so it is staged beside the data, never in it:
//   <volume>/.copyup   being copied: a crash leaves it incomplete, and it is thrown away
//   <volume>/.copied   complete (renamed from .copyup, one atomic step): its entries are moved
//                      into _data, then it is removed; a crash in the moves is finished later
// _data keeps its inode throughout (another container of the node may have it mounted now).
//
// The path is the image's, resolved under the container's root as the container would
// (resolve.ts: a link to "/" or "../../.." stays inside it), so a hostile image's VOLUME or
// links cannot make the copy read the host's files; the copy writes only under <volume>.
import { existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { chmod, lchown, lstat, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { applyLayer } from './vfs.js';
import { resolveInRoot, ResolveError } from './resolve.js';
import { failpoint } from '../failpoints.js';

export class CopyUpError extends Error {
  constructor(message: string, readonly path: string, options?: { cause?: unknown }) { super(message, options); this.name = 'CopyUpError'; }
}

const STAGING = '.copyup', COPIED = '.copied';

/**
 * Fills `<volume>/_data` from `target` in the container's root `rootfs` when it is empty and the
 * image has a directory there; finishes or drops what an earlier, cut copy left first.
 * Returns whether anything was copied.
 */
export function copyUp(volume: string, rootfs: string, target: string): Promise<boolean> {
  // two containers made at once over one volume copy one after the other (the second finds it full)
  const run = (queues.get(volume) ?? Promise.resolve()).then(() => copyUpNow(volume, rootfs, target));
  const tail = run.catch(() => undefined);
  queues.set(volume, tail);
  void tail.then(() => { if (queues.get(volume) === tail) queues.delete(volume); });
  return run;
}

const queues = new Map<string, Promise<unknown>>();

async function copyUpNow(volume: string, rootfs: string, target: string): Promise<boolean> {
  const data = join(volume, '_data');
  mkdirSync(data, { recursive: true, mode: 0o755 });
  if (await recoverCopyUp(volume)) return true;
  if (readdirSync(data).length) return false;
  let at;
  try { at = resolveInRoot(rootfs, target, { follow: true }); } catch (err) {
    // a directory missing on the way: nothing in the image there (the runtime makes the mount point)
    if (err instanceof ResolveError && err.code === 'ENOENT') return false;
    if (err instanceof ResolveError) throw new CopyUpError(`volume ${target}: ${err.message}`, target, { cause: err });
    throw err;
  }
  if (at.name === '') throw new CopyUpError(`volume ${target}: resolves to the image's root (a link to /), which is not copied into a volume`, target);
  const src = join(at.dir, at.name);
  let st;
  try { st = lstatSync(src); } catch { return false; } // nothing in the image there: an empty volume
  if (!st.isDirectory()) throw new CopyUpError(`volume ${target}: the image has a ${st.isSymbolicLink() ? 'link' : 'file'} there, not a directory`, target);
  const staging = join(volume, STAGING);
  await rm(staging, { recursive: true, force: true });
  mkdirSync(staging, { mode: 0o700 });
  try {
    await applyLayer(src, staging);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw new CopyUpError(`volume ${target}: copying the image's content: ${(err as Error).message}`, target, { cause: err });
  }
  failpoint('volume:mid-copyup');
  await rename(staging, join(volume, COPIED));
  failpoint('volume:copyup-copied');
  await recoverCopyUp(volume);
  return true;
}

/**
 * What a crash left of a copy-up: an incomplete staging dir is removed; a complete one has its
 * entries moved into _data and its root's owner and mode given to _data. Returns whether a
 * complete copy was finished. Idempotent.
 */
export async function recoverCopyUp(volume: string): Promise<boolean> {
  await rm(join(volume, STAGING), { recursive: true, force: true });
  const copied = join(volume, COPIED);
  if (!existsSync(copied)) return false;
  const data = join(volume, '_data');
  mkdirSync(data, { recursive: true, mode: 0o755 });
  for (const n of await readdir(copied)) {
    // a name _data has now (written since) stays: the volume's own content wins
    const taken = await lstat(join(data, n)).then(() => true, () => false);
    if (!taken) await rename(join(copied, n), join(data, n));
    else await rm(join(copied, n), { recursive: true, force: true });
  }
  const s = await lstat(copied);
  await lchown(data, s.uid, s.gid);
  await chmod(data, s.mode & 0o7777);
  await rmdir(copied);
  return true;
}
