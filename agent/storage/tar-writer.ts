// Writing tars of a container's files: `tsctl export` (the merged root as the container sees
// it) and `tsctl commit` (its writable layer as an OCI layer: overlay whiteouts become
// `.wh.NAME` files and an opaque dir gets `.wh..wh..opq`). Header encoding is pure (ustar,
// with PAX records for what ustar cannot hold: long names, big sizes or ids, non-ASCII,
// security.capability), so it is unit-tested without root; `packDir` walks with lstat only,
// never following a symlink, and reads each file for exactly the size its header says (a
// file that grows or shrinks while the container runs cannot shift the archive).
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { BLOCK, roundUp, WH_OPAQUE, WH_PREFIX } from './tar-header.js';

export interface EntryHeader {
  name: string; mode: number; uid: number; gid: number; size: number; mtime: number;
  /** '0' file, '1' hard link, '2' symlink, '3' char dev, '4' block dev, '5' dir, '6' fifo. */
  type: string; linkname?: string; devmajor?: number; devminor?: number;
  /** PAX xattrs (SCHILY.xattr.NAME). */
  xattrs?: Record<string, Buffer>;
}

const ascii = (s: string) => /^[\x20-\x7e]*$/.test(s);

function field(b: Buffer, off: number, len: number, value: number): void {
  b.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'ascii');
}

/** One PAX record "LEN key=value\n", LEN counting itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function block(h: { name: string; mode: number; uid: number; gid: number; size: number; mtime: number; type: string; linkname: string; devmajor: number; devminor: number }): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0, 100, 'utf8');
  field(b, 100, 8, h.mode & 0o7777);
  field(b, 108, 8, h.uid);
  field(b, 116, 8, h.gid);
  field(b, 124, 12, h.size);
  field(b, 136, 12, h.mtime);
  b.fill(0x20, 148, 156);
  b.write(h.type, 156, 1, 'ascii');
  b.write(h.linkname, 157, 100, 'utf8');
  b.write('ustar\x0000', 257, 8, 'binary');
  field(b, 329, 8, h.devmajor);
  field(b, 337, 8, h.devminor);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return b;
}

/** The header blocks of one entry: a PAX header first when ustar cannot hold it. Pure. */
export function encodeHeader(e: EntryHeader): Buffer {
  const pax: Buffer[] = [];
  const big = (n: number, len: number) => n >= 8 ** (len - 1);
  if (Buffer.byteLength(e.name) > 100 || !ascii(e.name)) pax.push(paxRecord('path', Buffer.from(e.name)));
  if (e.linkname && (Buffer.byteLength(e.linkname) > 100 || !ascii(e.linkname))) pax.push(paxRecord('linkpath', Buffer.from(e.linkname)));
  if (big(e.size, 12)) pax.push(paxRecord('size', Buffer.from(String(e.size))));
  if (big(e.uid, 8)) pax.push(paxRecord('uid', Buffer.from(String(e.uid))));
  if (big(e.gid, 8)) pax.push(paxRecord('gid', Buffer.from(String(e.gid))));
  for (const [k, v] of Object.entries(e.xattrs ?? {})) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const main = block({
    name: ascii(e.name) && Buffer.byteLength(e.name) <= 100 ? e.name : e.name.replace(/[^\x20-\x7e]/g, '_').slice(-100),
    mode: e.mode, uid: big(e.uid, 8) ? 0 : e.uid, gid: big(e.gid, 8) ? 0 : e.gid, size: big(e.size, 12) ? 0 : e.size, mtime: Math.max(0, Math.floor(e.mtime)),
    type: e.type, linkname: e.linkname && ascii(e.linkname) && Buffer.byteLength(e.linkname) <= 100 ? e.linkname : '', devmajor: e.devmajor ?? 0, devminor: e.devminor ?? 0,
  });
  if (!pax.length) return main;
  const data = Buffer.concat(pax);
  const head = block({ name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0, type: 'x', linkname: '', devmajor: 0, devminor: 0 });
  return Buffer.concat([head, data, Buffer.alloc(roundUp(data.length) - data.length), main]);
}

/** The two zero blocks that end an archive. */
export const TAR_END = Buffer.alloc(2 * BLOCK);

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
