// Writing tars of a container's files: `tsctl export` (the merged root as the container sees
// it) and `tsctl commit` (its writable layer as an OCI layer: overlay whiteouts become
// `.wh.NAME` files and an opaque dir gets `.wh..wh..opq`). Header encoding is pure (ustar,
// with PAX records for what ustar cannot hold: long names, big sizes or ids, non-ASCII,
// security.capability; shared/tar-encode.ts, shared with tsctl build), unit-tested without root; `packDir` walks with lstat only,
// never following a symlink, and reads each file for exactly the size its header says (a
// file that grows or shrinks while the container runs cannot shift the archive).
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeHeader, TAR_END } from '../../shared/tar-encode.js';
import type { Writable } from 'node:stream';
import { roundUp, WH_OPAQUE, WH_PREFIX } from './tar-header.js';

export { encodeHeader, TAR_END, type EntryHeader } from '../../shared/tar-encode.js';

export interface PackOptions {
  /** Layer mode: a 0/0 char device is written as `.wh.NAME`; `opaque(dir)` adds `.wh..wh..opq`. */
  layer?: { opaque(path: string): boolean };
  /** security.capability of a file (kept, as docker keeps it), or null. */
  capability?(path: string): Buffer | null;
}

const major = (dev: number) => Number((BigInt(dev) >> 8n) & 0xfffn);
const minor = (dev: number) => Number((BigInt(dev) & 0xffn) | ((BigInt(dev) >> 12n) & 0xfff00n));

/** Writes the tree under `root` to `out` (paths relative, dirs ending in '/'); resolves with sha256 and size of the archive. */
export function packDir(root: string, out: Writable, o: PackOptions = {}): Promise<{ digest: string; size: number; entries: number }> {
  return pack(root, out, o, (t) => t.walk(''));
}

/**
 * Writes one entry of `dir`, `name`, and when it is a directory everything under it, named
 * `name/…` (tsctl cp: the copied path keeps its own name at the top of the archive).
 */
export function packPath(dir: string, name: string, out: Writable, o: PackOptions = {}): Promise<{ digest: string; size: number; entries: number }> {
  return pack(dir, out, o, (t) => t.emit(name));
}

async function pack(root: string, out: Writable, o: PackOptions, what: (t: { walk(rel: string): Promise<void>; emit(p: string): Promise<void> }) => Promise<void>): Promise<{ digest: string; size: number; entries: number }> {
  const hash = createHash('sha256');
  let size = 0, entries = 0;
  const write = async (b: Buffer) => {
    hash.update(b);
    size += b.length;
    if (!out.write(b)) await new Promise<void>((r) => out.once('drain', r));
  };
  const links = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const n of (await readdir(join(root, rel))).sort()) await emit(rel ? `${rel}/${n}` : n);
  };
  const emit = async (p: string): Promise<void> => {
    const full = join(root, p);
    let s;
    try { s = await lstat(full); } catch { return; }
    const base = { mode: s.mode, uid: s.uid, gid: s.gid, mtime: s.mtimeMs / 1000, size: 0 };
    if (o.layer && s.isCharacterDevice() && s.rdev === 0) {
      const slash = p.lastIndexOf('/');
      await write(encodeHeader({ ...base, mode: 0o644, name: `${p.slice(0, slash + 1)}${WH_PREFIX}${p.slice(slash + 1)}`, type: '0' }));
      entries++;
      return;
    }
    if (s.isDirectory()) {
      await write(encodeHeader({ ...base, name: `${p}/`, type: '5' }));
      entries++;
      if (o.layer?.opaque(full)) { await write(encodeHeader({ ...base, mode: 0o644, name: `${p}/${WH_OPAQUE}`, type: '0' })); entries++; }
      await walk(p);
      return;
    }
    if (s.isSymbolicLink()) {
      await write(encodeHeader({ ...base, name: p, type: '2', linkname: await readlink(full) }));
    } else if (s.isFile()) {
      const key = `${s.dev}:${s.ino}`;
      const first = s.nlink > 1 ? links.get(key) : undefined;
      if (first) {
        await write(encodeHeader({ ...base, name: p, type: '1', linkname: first }));
      } else {
        if (s.nlink > 1) links.set(key, p);
        const cap = o.capability?.(full);
        await write(encodeHeader({ ...base, name: p, type: '0', size: s.size, ...(cap ? { xattrs: { 'security.capability': cap } } : {}) }));
        await copyExactly(full, s.size, write);
      }
    } else if (s.isCharacterDevice() || s.isBlockDevice()) {
      await write(encodeHeader({ ...base, name: p, type: s.isCharacterDevice() ? '3' : '4', devmajor: major(s.rdev), devminor: minor(s.rdev) }));
    } else if (s.isFIFO()) {
      await write(encodeHeader({ ...base, name: p, type: '6' }));
    } else {
      return; // sockets are not archived (tar has no type for them)
    }
    entries++;
  };
  await what({ walk, emit });
  await write(TAR_END);
  return { digest: `sha256:${hash.digest('hex')}`, size, entries };
}

/** `size` bytes of a file and the padding to a block: zeros where it shrank, cut where it grew. */
async function copyExactly(path: string, size: number, write: (b: Buffer) => Promise<void>): Promise<void> {
  // a file that became a link since its lstat is read as zeros, never followed
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => undefined);
  let left = size;
  try {
    const buf = Buffer.alloc(1 << 16);
    while (left > 0 && fh) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, left), size - left);
      if (bytesRead === 0) break;
      await write(Buffer.from(buf.subarray(0, bytesRead)));
      left -= bytesRead;
    }
  } finally { await fh?.close(); }
  if (left > 0) await write(Buffer.alloc(left));
  const pad = roundUp(size) - size;
  if (pad) await write(Buffer.alloc(pad));
}
