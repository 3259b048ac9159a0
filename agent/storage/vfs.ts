// The vfs driver: no union filesystem. prepare() copies the image's layers, bottom first, into
// the container's own directory (snapshots/<key>/fs), applying each layer's overlay whiteouts
// (a 0/0 character device deletes what is below) and opaque dirs (trusted.overlay.opaque=y
// empties the dir below) as it goes, keeping modes (setuid too), owners, times, symlinks, hard
// links within a layer and extended attributes; the container's root is a bind mount of that
// copy, so nothing it writes reaches a layer. changes() finds what the container did by
// comparing its copy with the layers: a name the layers have and the copy lacks is deleted, a
// name the layers lack is added, and a name both have was changed when its inode's ctime is
// after the copy was made (the kernel sets ctime on every write, chmod, chown or rename and
// nobody can set it back). The result is an overlay-style layer dir, so diff and commit read
// it as they read an overlay's upper dir.
import { copyFile, chmod, mkdtemp, lchown, link, lstat, lutimes, mkdir, readdir, readlink, rm, symlink, unlink, utimes, writeFile, readFile, constants } from 'node:fs/promises';
import { existsSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { lgetxattr, llistxattr, lsetxattr, mknodWhiteout } from '../../native/libc.js';
import { SnapshotDirs, type Changes, type MountSpec, type Snapshotter } from './snapshotter.js';
import { failpoint } from '../failpoints.js';

const OPAQUE = 'trusted.overlay.opaque';
/** overlayfs's own markers are read as whiteouts and opaque dirs, never copied. */
const copiedXattr = (name: string) => !name.startsWith('trusted.overlay.');

const isWhiteout = (s: { isCharacterDevice(): boolean; rdev: number | bigint }) => s.isCharacterDevice() && Number(s.rdev) === 0;
const opaque = (p: string) => lgetxattr(p, OPAQUE)?.toString() === 'y';

export class VfsError extends Error {
  constructor(message: string, readonly path: string, options?: { cause?: unknown }) { super(message, options); this.name = 'VfsError'; }
}

export class VfsSnapshotter extends SnapshotDirs implements Snapshotter {
  readonly driver = 'vfs' as const;

  fs(key: string): string { return join(this.dir(key), 'fs'); }

  async prepare(key: string, lowerDirs: string[]): Promise<MountSpec[]> {
    const d = this.dir(key);
    // a prepare a crash interrupted starts again from nothing
    await rm(d, { recursive: true, force: true });
    await mkdir(d, { recursive: true, mode: 0o700 });
    this.writeLowers(key, lowerDirs);
    const fs = this.fs(key);
    await mkdir(fs, { mode: 0o755 });
    for (const l of [...lowerDirs].reverse()) await applyLayer(l, fs);
    // the copy's end in the kernel's own clock; the container's writes come after the next tick
    const mark = join(d, 'copied');
    await writeFile(mark, '');
    const t0 = (await lstat(mark, { bigint: true })).ctimeNs;
    for (let i = 0; i < 1000; i++) {
      await writeFile(join(d, 'tick'), '');
      if ((await lstat(join(d, 'tick'), { bigint: true })).ctimeNs > t0) break;
      await new Promise((r) => setTimeout(r, 1));
    }
    await writeFile(mark, t0.toString());
    return this.mounts(key);
  }

  mounts(key: string): MountSpec[] { return [{ type: 'bind', source: this.fs(key), options: ['rbind'] }]; }

  async changes(key: string): Promise<Changes | undefined> {
    const fs = this.fs(key);
    if (!existsSync(fs)) return undefined;
    const lowers = this.readLowers(key);
    const since = BigInt((await readFile(join(this.dir(key), 'copied'), 'utf8')).trim() || '0');
    // one dir per call under the snapshot (removed with it if a caller never releases)
    const out = await mkdtemp(join(this.dir(key), 'changes-'));
    await chmod(out, 0o755);
    try {
      await compare(fs, new Lowers(lowers), out, since);
    } catch (err) {
      await rm(out, { recursive: true, force: true });
      throw err;
    }
    return { dir: out, lowers, release: () => rm(out, { recursive: true, force: true }) };
  }
}

/** Entries of a layer copied at once: each is a few syscalls on libuv's pool, so a copy is not one long queue. */
const COPY_PARALLEL = 16;

/**
 * Copies one layer over `dest`, applying its whiteouts and opaque dirs. The names of one dir are
 * copied side by side (at most COPY_PARALLEL entries in flight in the whole layer); a dir's own
 * metadata is set after its children (their creation would change its times).
 */
export async function applyLayer(layer: string, dest: string): Promise<void> {
  const links = new Map<bigint, Promise<string>>();
  const slots = limiter(COPY_PARALLEL);
  let copied = 0;
  const entry = async (p: string): Promise<void> => {
    const src = join(layer, p), dst = join(dest, p);
    const s = await slots(() => lstat(src, { bigint: true }));
    if (isWhiteout(s)) { await rm(dst, { recursive: true, force: true }); return; }
    const d = await lstat(dst).catch(() => undefined);
    if (s.isDirectory()) {
      if (d && !d.isDirectory()) await rm(dst, { force: true });
      if (!d || !d.isDirectory()) await mkdir(dst);
      else if (opaque(src)) for (const c of await readdir(dst)) await rm(join(dst, c), { recursive: true, force: true });
      await walk(p);
      await meta(src, dst, s);
      return;
    }
    await slots(async () => {
      if (d) await rm(dst, { recursive: true, force: true });
      await copyEntry(src, dst, s, links);
    });
    if (++copied === 50) failpoint('vfs:mid-copy');
  };
  const walk = async (rel: string): Promise<void> => {
    const names = await readdir(join(layer, rel));
    const results = await Promise.allSettled(names.map((n) => entry(join(rel, n))));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  await walk('');
  await meta(layer, dest, await lstat(layer, { bigint: true }));
}

/** Runs at most `n` of the functions it is given at once. */
function limiter(n: number): <T>(f: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(f: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try { return await f(); } finally { active--; waiting.shift()?.(); }
  };
}

/** A file or symlink copied with its metadata; a second name of an inode in the same copy becomes a hard link to the first. */
async function copyEntry(src: string, dst: string, s: BigIntStats, links: Map<bigint, Promise<string>>): Promise<void> {
  if (s.isFile() && s.nlink > 1n) {
    const first = links.get(s.ino);
    if (first) { await link(await first, dst); return; }
    let done!: (p: string) => void, fail!: (e: unknown) => void;
    links.set(s.ino, new Promise<string>((res, rej) => { done = res; fail = rej; }));
    try { await copyPlain(src, dst, s); done(dst); } catch (err) { fail(err); throw err; }
    return;
  }
  await copyPlain(src, dst, s);
}

async function copyPlain(src: string, dst: string, s: BigIntStats): Promise<void> {
  if (s.isSymbolicLink()) {
    await symlink(await readlink(src), dst);
    await lchown(dst, Number(s.uid), Number(s.gid));
    await copyXattrs(src, dst);
    await lutimes(dst, Number(s.atimeMs) / 1000, Number(s.mtimeMs) / 1000);
    return;
  }
  if (!s.isFile()) throw new VfsError(`${src}: only files, dirs, symlinks and whiteouts are copied`, src);
  await copyFile(src, dst, constants.COPYFILE_FICLONE);
  await meta(src, dst, s);
}

/** Owner, then mode (a chown clears setuid), xattrs, then times. */
async function meta(src: string, dst: string, s: BigIntStats): Promise<void> {
  await lchown(dst, Number(s.uid), Number(s.gid));
  await chmod(dst, Number(s.mode) & 0o7777);
  await copyXattrs(src, dst);
  await utimes(dst, Number(s.atimeMs) / 1000, Number(s.mtimeMs) / 1000);
}

async function copyXattrs(src: string, dst: string): Promise<void> {
  for (const name of llistxattr(src)) {
    if (!copiedXattr(name)) continue;
    const v = lgetxattr(src, name);
    if (v) lsetxattr(dst, name, v);
  }
}

/** The image as the layers (topmost first) show it, without mounting them. */
class Lowers {
  constructor(private layers: string[]) {}

  /** The stat of `rel` in the merged image, or undefined when the image has no such name. */
  async stat(rel: string): Promise<BigIntStats | undefined> {
    const parts = rel.split('/').filter(Boolean);
    for (const l of this.layers) {
      const s = await lstat(join(l, rel), { bigint: true }).catch(() => undefined);
      if (s) return isWhiteout(s) ? undefined : s;
      // an ancestor in this layer that is not a dir, a whiteout or opaque hides every layer below
      let p = l;
      for (const c of parts.slice(0, -1)) {
        p = join(p, c);
        const a = await lstat(p).catch(() => undefined);
        if (!a) break;
        if (!a.isDirectory() || opaque(p)) return undefined;
      }
    }
    return undefined;
  }

  /** The names in dir `rel` of the merged image. */
  async names(rel: string): Promise<Set<string>> {
    const out = new Set<string>();
    const hidden = new Set<string>();
    for (const l of this.layers) {
      const d = join(l, rel);
      const s = await lstat(d).catch(() => undefined);
      if (!s) continue;
      if (!s.isDirectory()) break;
      for (const n of await readdir(d)) {
        if (out.has(n) || hidden.has(n)) continue;
        const e = await lstat(join(d, n));
        (isWhiteout(e) ? hidden : out).add(n);
      }
      if (opaque(d)) break;
    }
    return out;
  }
}

/** Writes into `out` the overlay-style layer that turns the image into `fs`. */
async function compare(fs: string, lowers: Lowers, out: string, since: bigint): Promise<void> {
  const copyAll = async (rel: string): Promise<void> => {
    const s = await lstat(join(fs, rel), { bigint: true });
    if (s.isDirectory()) {
      await mkdir(join(out, rel));
      for (const n of await readdir(join(fs, rel))) await copyAll(join(rel, n));
      await meta(join(fs, rel), join(out, rel), s);
    } else await copyPlain(join(fs, rel), join(out, rel), s);
  };
  /** Walks a dir both have; true when anything under it went into `out`. */
  const walk = async (rel: string): Promise<boolean> => {
    let any = false;
    const here = new Set(await readdir(join(fs, rel)));
    const ensureDir = async () => { if (!existsSync(join(out, rel))) await mkdir(join(out, rel), { recursive: true }); };
    for (const n of await lowers.names(rel)) {
      if (here.has(n)) continue;
      await ensureDir();
      mknodWhiteout(join(out, rel, n));
      any = true;
    }
    for (const n of [...here].sort()) {
      const p = join(rel, n);
      const s = await lstat(join(fs, p), { bigint: true });
      const l = await lowers.stat(p);
      if (!l || (s.mode & 0o170000n) !== (l.mode & 0o170000n)) {
        await ensureDir();
        await copyAll(p);
        any = true;
      } else if (s.isDirectory()) {
        if (await walk(p) || s.ctimeNs > since) {
          await ensureDir();
          if (!existsSync(join(out, p))) await mkdir(join(out, p));
          await meta(join(fs, p), join(out, p), s);
          any = true;
        }
      } else if (s.ctimeNs > since) {
        await ensureDir();
        await copyPlain(join(fs, p), join(out, p), s);
        any = true;
      }
    }
    return any;
  };
  await walk('');
}
